//! Idle rewards, daily login, mail and leaderboards over real HTTP, with a clock
//! the tests move instead of sleeping.

use crate::common::{app_at_fixed_time, StoreKind, TestApp};
use chrono::Duration;
use divine_heroes::game::economy::Currency;
use divine_heroes::game::player::Attachment;
use divine_heroes::ops::{send_mail, MailDraft, Recipients};
use divine_heroes::platform::clock::Clock;
use futures_util::future::join_all;
use serde_json::{json, Value};

/// Fires `n` identical claims at once, each with its own key; returns the statuses.
async fn claim_burst(app: &TestApp, token: &str, path: &str, n: usize) -> Vec<u16> {
    join_all((0..n).map(|i| async move {
        app.post(path, Some(token), Some(&format!("burst-{i}")), json!({})).await.status().as_u16()
    }))
    .await
}

async fn idle_pays_twelve_hours_at_most_and_once(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (token, id) = app.register("Idler").await;
    clock.advance(Duration::hours(13));
    let idle: Value = app.get("/api/idle", Some(&token)).await.json().await.unwrap();
    assert_eq!(idle["accrued"], json!({"minutes": 720, "gold": 1200, "xp": 240, "capped": true}));
    let statuses = claim_burst(&app, &token, "/api/idle/claim", 50).await;
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|&s| s == 200 || s == 409));
    let p = app.player(&id).await;
    assert_eq!(p.balances.gold, 5000 + 1200);
    assert_eq!((p.level, p.xp), (2, 140), "240 xp: level 2 at 100, 140 into it");
    clock.advance(Duration::minutes(90));
    let r: Value = app.post("/api/idle/claim", Some(&token), Some("later"), json!({})).await.json().await.unwrap();
    assert_eq!(r["paid"]["gold"], 150, "an hour and a half at 100/h");
}

async fn daily_login_cycles_and_pays_once_a_day(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (token, id) = app.register("Loyal").await;
    let statuses = claim_burst(&app, &token, "/api/daily-login/claim", 50).await;
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    assert_eq!(app.player(&id).await.balances.gold, 5000 + 5000, "day 1 pays 5,000 gold once");
    let mut days = vec![1];
    for d in 2..=8 {
        clock.advance(Duration::days(1));
        let token = app.login("Loyal").await;
        let r: Value = app
            .post("/api/daily-login/claim", Some(&token), Some(&format!("day-{d}")), json!({}))
            .await
            .json()
            .await
            .unwrap();
        days.push(r["day"].as_u64().unwrap());
    }
    assert_eq!(days, vec![1, 2, 3, 4, 5, 6, 7, 1], "the 8th day restarts the cycle");
    clock.advance(Duration::days(2));
    let token = app.login("Loyal").await;
    let status: Value = app.get("/api/daily-login", Some(&token)).await.json().await.unwrap();
    assert_eq!(
        (status["claimable"].as_bool(), status["today_day"].as_u64()),
        (Some(true), Some(1)),
        "a missed day restarts"
    );
}

async fn mail_is_claimed_once_and_expires(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (token, id) = app.register("Postbox").await;
    let (other, _) = app.register("Snoop").await;
    let attach = vec![Attachment { currency: Currency::Crystals, amount: 100 }];
    let n = send_mail(
        &app.writer(),
        Recipients::All,
        MailDraft { subject: "Maintenance".into(), body: "Sorry!".into(), attachments: attach, expiry_days: 30 },
        clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    let inbox: Value = app.get("/api/mail", Some(&token)).await.json().await.unwrap();
    let mail_id = inbox["items"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/mail/{mail_id}/claim");
    let statuses = claim_burst(&app, &token, &path, 50).await;
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    assert_eq!(app.player(&id).await.balances.crystals, 300 + 100);
    // Another player's mail ids mean nothing to this one, and vice versa.
    let theirs: Value = app.get("/api/mail", Some(&other)).await.json().await.unwrap();
    let their_id = theirs["items"][0]["id"].as_str().unwrap();
    assert_eq!(their_id, mail_id, "one broadcast, one id, one copy per player");
    let writer = app.writer();
    let send_one = send_mail(
        &writer,
        Recipients::One("postbox".into()),
        MailDraft {
            subject: "Late".into(),
            body: String::new(),
            attachments: vec![Attachment { currency: Currency::Gold, amount: 7 }],
            expiry_days: 30,
        },
        clock.now(),
    );
    send_one.await.unwrap();
    // Paged like every list: both mails (sent at the same instant) once each, newest first.
    let first: Value = app.get("/api/mail?limit=1", Some(&token)).await.json().await.unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().expect("a second page").to_string();
    let second: Value =
        app.get(&format!("/api/mail?limit=1&cursor={cursor}"), Some(&token)).await.json().await.unwrap();
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    let ids: Vec<&str> = [&first, &second].iter().map(|p| p["items"][0]["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&mail_id.as_str()) && ids[0] != ids[1], "{ids:?}");
    assert_eq!(app.get("/api/mail?cursor=nonsense", Some(&token)).await.status(), 422);
    assert_eq!(app.get("/api/mail?limit=0", Some(&token)).await.status(), 422);
    clock.advance(Duration::days(31));
    let (token, other) = (app.login("Postbox").await, app.login("Snoop").await);
    let inbox: Value = app.get("/api/mail", Some(&token)).await.json().await.unwrap();
    assert!(inbox["items"].as_array().unwrap().is_empty(), "expired after 30 days");
    let late = app.post(&path, Some(&other), Some("late"), json!({})).await;
    assert_eq!(late.status(), 404);
}

async fn leaderboards_rank_and_players_stay_apart(kind: StoreKind) {
    let Some((app, _clock)) = app_at_fixed_time(kind).await else { return };
    let (weak, weak_id) = app.register("Weakling").await;
    let (strong, strong_id) = app.register("Strongarm").await;
    app.set_balance(&strong_id, Currency::Gold, 1_000_000).await;
    let r = app.post("/api/heroes/marcus_the_shield/level-up", Some(&strong), Some("lv"), json!({"levels": 20})).await;
    assert_eq!(r.status(), 200);
    let board: Value = app.get("/api/leaderboards/power?limit=10", Some(&weak)).await.json().await.unwrap();
    let top = board["top"].as_array().unwrap();
    assert_eq!(top[0]["player_id"], strong_id.as_str());
    assert!(top[0]["score"].as_u64() > top[1]["score"].as_u64());
    assert_eq!(board["me"]["rank"], 2);
    assert_eq!(board["me"]["player_id"], weak_id.as_str());
    assert_eq!(app.get("/api/leaderboards/nonsense", Some(&weak)).await.status(), 404);
    let arena: Value = app.get("/api/leaderboards/arena", Some(&weak)).await.json().await.unwrap();
    assert_eq!(arena["me"]["score"], 1000);
    // Each ledger holds only its owner's entries.
    let ledger: Value = app.get("/api/player/ledger?limit=100", Some(&weak)).await.json().await.unwrap();
    assert!(ledger["items"].as_array().unwrap().iter().all(|e| e["player_id"] == weak_id.as_str()));
}

on_both_stores!(
    idle_pays_twelve_hours_at_most_and_once,
    daily_login_cycles_and_pays_once_a_day,
    mail_is_claimed_once_and_expires,
    leaderboards_rank_and_players_stay_apart,
);
