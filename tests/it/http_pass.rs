//! The battle pass over real HTTP on both stores: pass xp from activity points
//! and campaign wins, one claim per (level, track), the premium track unlocked
//! once even when asked twice at once, claim-all, and the season's unclaimed
//! rewards mailed when the next season starts.

use crate::common::{app_at_fixed_time, audit, StoreKind, TestApp};
use chrono::Duration;
use divine_heroes::game::economy::Currency;
use divine_heroes::platform::clock::Clock;
use futures_util::future::join_all;
use serde_json::{json, Value};

async fn post(app: &TestApp, token: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let r = app.post(path, Some(token), Some(key), body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// 1,000 pass xp from one day's play: 10 campaign wins (60 stamina: 600 xp)
/// and three daily quests (daily login 10, campaign wins 20, stamina 10 points: 400 xp).
async fn earn_a_level(app: &TestApp, token: &str, day: &str) {
    assert_eq!(post(app, token, "/api/daily-login/claim", &format!("{day}-login"), json!({})).await.0, 200);
    for i in 0..10 {
        let (s, b) = post(app, token, "/api/battle/campaign/1/1/fight", &format!("{day}-fight-{i}"), json!({})).await;
        assert_eq!((s, b["winner"].as_str()), (200, Some("attacker")), "{b}");
    }
    for q in ["daily_login", "campaign_wins", "stamina_spent"] {
        let (s, b) = post(app, token, &format!("/api/quests/{q}/claim"), &format!("{day}-{q}"), json!({})).await;
        assert_eq!(s, 200, "{q}: {b}");
    }
}

async fn the_pass_levels_claims_and_mails_the_rest(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (token, id) = app.register("Passholder").await;
    let pass: Value = app.get("/api/pass", Some(&token)).await.json().await.unwrap();
    assert_eq!(
        (pass["season"].as_u64(), pass["xp"].as_u64(), pass["level"].as_u64()),
        (Some(1), Some(0), Some(0)),
        "{pass}"
    );
    assert_eq!(pass["levels"].as_array().unwrap().len(), 50);
    let (s, _) = post(&app, &token, "/api/pass/claim", "early", json!({"level": 1, "track": "free"})).await;
    assert_eq!(s, 409, "level 1 is not reached");

    earn_a_level(&app, &token, "d1").await;
    let pass: Value = app.get("/api/pass", Some(&token)).await.json().await.unwrap();
    assert_eq!((pass["xp"].as_u64(), pass["level"].as_u64()), (Some(1000), Some(1)), "{pass}");
    let (s, b) = post(&app, &token, "/api/pass/claim", "free-1", json!({"level": 1, "track": "free"})).await;
    assert_eq!((s, &b["rewards"]), (200, &json!([{"currency": "gold", "amount": 5000}])), "{b}");
    assert_eq!(post(&app, &token, "/api/pass/claim", "free-1b", json!({"level": 1, "track": "free"})).await.0, 409);
    let (s, b) = post(&app, &token, "/api/pass/claim", "prem-1", json!({"level": 1, "track": "premium"})).await;
    assert_eq!(s, 409, "premium is locked: {b}");

    // Two unlocks at once: one pays 980 crystals, the other is refused.
    app.set_balance(&id, Currency::Crystals, 2_000).await;
    let keys = ["unlock-0", "unlock-1"];
    let answers = join_all(keys.iter().map(|k| post(&app, &token, "/api/pass/unlock", k, json!({})))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409], "{answers:?}");
    assert_eq!(app.player(&id).await.balances.crystals, 2_000 - 980);
    let (s, b) = post(&app, &token, "/api/pass/claim-all", "all-1", json!({})).await;
    assert_eq!((s, &b["rewards"]), (200, &json!([{"currency": "coins", "amount": 3000}])), "premium level 1: {b}");
    assert_eq!(post(&app, &token, "/api/pass/claim-all", "all-2", json!({})).await.0, 409, "nothing left");

    // Another day's play reaches level 2; nothing claimed before the season ends.
    clock.advance(Duration::days(1));
    let token = app.login("Passholder").await;
    earn_a_level(&app, &token, "d2").await;
    // 2026-11-30: season 2 starts; level 2 of both tracks arrives by mail.
    clock.advance(Duration::days(3));
    let token = app.login("Passholder").await;
    let pass: Value = app.get("/api/pass", Some(&token)).await.json().await.unwrap();
    assert_eq!(
        (pass["season"].as_u64(), pass["xp"].as_u64(), pass["premium"].as_bool()),
        (Some(2), Some(0), Some(false)),
        "{pass}"
    );
    let mail: Value = app.get("/api/mail", Some(&token)).await.json().await.unwrap();
    let season_mail =
        mail["items"].as_array().unwrap().iter().find(|m| m["id"] == "pass-season-1").expect("the season's mail");
    assert_eq!(
        season_mail["attachments"],
        json!([{"currency": "gold", "amount": 5000}, {"currency": "coins", "amount": 3000}]),
        "{season_mail}"
    );
    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.clean(), "{report}");
}

crate::on_both_stores!(the_pass_levels_claims_and_mails_the_rest);
