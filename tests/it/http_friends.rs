//! Friends over real HTTP on both stores: requests that lapse, answers, limits
//! under concurrency, daily gifts and their claim limit, blocks, removal, and
//! that no route acts on another player's requests; with a clock the tests move.

use std::sync::Arc;

use crate::common::{audit, game_data_editing, StoreKind, TestApp};
use chrono::{Duration, TimeZone, Utc};
use divine_heroes::platform::clock::{Clock, ManualClock};
use divine_heroes::platform::config::Role;
use futures_util::future::join_all;
use serde_json::{json, Value};

/// An app with small friend limits (3 friends, 2 waiting requests, 2 gift
/// claims a day) and a clock at 2026-12-01 09:00 UTC.
async fn app(kind: StoreKind) -> Option<(TestApp, ManualClock, tempfile::TempDir)> {
    let data = game_data_editing("friends.toml", |t| {
        t.replace("max_friends = 50", "max_friends = 3")
            .replace("max_outgoing = 20", "max_outgoing = 2")
            .replace("claims_per_day = 20", "claims_per_day = 2")
    });
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap());
    let dir = data.path().to_path_buf();
    let tweak = move |s: &mut divine_heroes::platform::config::Settings| s.game_data_dir = dir;
    let app = TestApp::spawn_with(kind, Role::All, tweak, Arc::new(clock.clone())).await?;
    Some((app, clock, data))
}

async fn post(app: &TestApp, token: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let r = app.post(path, Some(token), Some(key), body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn ask(app: &TestApp, token: &str, username: &str, key: &str) -> (u16, Value) {
    post(app, token, "/api/friends/requests", key, json!({"username": username})).await
}

async fn friends(app: &TestApp, token: &str) -> Value {
    let r = app.get("/api/friends", Some(token)).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|f| f["player_id"].as_str().unwrap().to_string()).collect()
}

/// Request, answer, gift, claim, block and removal, with the rules' refusals.
async fn friends_ask_answer_gift_block_and_part(kind: StoreKind) {
    let Some((app, clock, _data)) = app(kind).await else { return };
    let (mut ann, ann_id) = app.register("Ann").await;
    let (mut bob, bob_id) = app.register("Bob").await;
    let (mut cat, cat_id) = app.register("Cat").await;

    let (s, b) = ask(&app, &ann, "BOB", "ask-bob").await;
    assert_eq!((s, b["outcome"].as_str()), (200, Some("request_sent")), "usernames are case-insensitive: {b}");
    assert_eq!(ask(&app, &ann, "Bob", "ask-bob-again").await.0, 409, "one waiting request per pair");
    assert_eq!(ask(&app, &ann, "Ann", "self").await.0, 422);
    assert_eq!(ask(&app, &ann, "Nobody", "nobody").await.0, 404);
    let bobs = friends(&app, &bob).await;
    assert_eq!(ids(&bobs["incoming"]), vec![ann_id.clone()]);
    assert_eq!(bobs["incoming"][0]["username"], "Ann");
    assert_eq!(ids(&friends(&app, &ann).await["outgoing"]), vec![bob_id.clone()]);

    // Object-level authorisation: Cat cannot answer the request Ann sent Bob.
    let path = format!("/api/friends/requests/{ann_id}/accept");
    let (s, b) = post(&app, &cat, &path, "steal", json!({})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{b}");
    assert!(friends(&app, &ann).await["friends"].as_array().unwrap().is_empty());

    let (s, b) = post(&app, &bob, &path, "accept", json!({})).await;
    assert_eq!((s, b["outcome"].as_str()), (200, Some("befriended")), "{b}");
    let (s, again) = post(&app, &bob, &path, "accept", json!({})).await;
    assert_eq!((s, &again), (200, &b), "the same key replays the answer");
    let anns = friends(&app, &ann).await;
    assert_eq!(ids(&anns["friends"]), vec![bob_id.clone()]);
    let bob_card = &anns["friends"][0];
    assert_eq!(
        (bob_card["username"].as_str(), bob_card["level"].as_u64(), bob_card["last_active"].as_str()),
        (Some("Bob"), Some(1), Some("today"))
    );
    assert!(bob_card["team_power"].as_u64().unwrap() > 0);
    assert!(bob_card.get("balances").is_none() && !anns.to_string().contains("password"), "no private data: {anns}");
    assert!(
        anns["outgoing"].as_array().unwrap().is_empty()
            && friends(&app, &bob).await["incoming"].as_array().unwrap().is_empty()
    );

    // Gifts: once a day per friend, free for the sender; claimed with the daily limit.
    let gift = format!("/api/friends/{bob_id}/gift");
    let ann_before = app.player(&ann_id).await.balances;
    assert_eq!(post(&app, &ann, &gift, "gift-1", json!({})).await.0, 200);
    let (s, b) = post(&app, &ann, &gift, "gift-1b", json!({})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("CONFLICT")), "{b}");
    assert_eq!(app.player(&ann_id).await.balances, ann_before, "a gift costs the sender nothing");
    let quests: Value = app.get("/api/quests", Some(&ann)).await.json().await.unwrap();
    let quest = quests["daily"].as_array().unwrap().iter().find(|x| x["quest_id"] == "friend_gift").unwrap().clone();
    assert_eq!(quest["progress"], 1, "the gift counts for the daily quest: {quest}");
    let (s, b) = post(&app, &cat, &format!("/api/friends/{bob_id}/gift"), "cat-gift", json!({})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "only to a friend: {b}");
    for day in 1..=2 {
        clock.advance(Duration::days(1));
        ann = app.login("Ann").await; // tokens live a day on the server's clock
        assert_eq!(post(&app, &ann, &gift, &format!("gift-{}", day + 1), json!({})).await.0, 200);
    }
    bob = app.login("Bob").await;
    let (s, claim) = post(&app, &bob, "/api/friends/gifts/claim", "claim-1", json!({})).await;
    assert_eq!(s, 200, "{claim}");
    assert_eq!(
        (claim["claimed"].as_u64(), claim["stamina"].as_i64(), claim["gifts_waiting"].as_u64()),
        (Some(2), Some(10), Some(1))
    );
    let (s, b) = post(&app, &bob, "/api/friends/gifts/claim", "claim-2", json!({})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("LIMIT_REACHED")), "two claims a day here: {b}");
    clock.advance(Duration::days(1));
    (ann, bob) = (app.login("Ann").await, app.login("Bob").await);
    let (s, claim) = post(&app, &bob, "/api/friends/gifts/claim", "claim-3", json!({})).await;
    assert_eq!((s, claim["claimed"].as_u64()), (200, Some(1)), "the next day: {claim}");
    let ledger: Value = app.get("/api/player/ledger?limit=100", Some(&bob)).await.json().await.unwrap();
    let gifted: i64 = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "friend_gift_claim")
        .map(|e| e["delta"].as_i64().unwrap())
        .sum();
    assert_eq!(gifted, 15, "three gifts of 5 stamina, in the ledger");

    // A request lapses after 7 days.
    assert_eq!(ask(&app, &ann, "Cat", "ask-cat").await.0, 200);
    clock.advance(Duration::days(7) + Duration::seconds(1));
    (ann, bob, cat) = (app.login("Ann").await, app.login("Bob").await, app.login("Cat").await);
    let (s, _) = post(&app, &cat, &format!("/api/friends/requests/{ann_id}/accept"), "late", json!({})).await;
    assert_eq!(s, 404, "lapsed");
    assert!(friends(&app, &ann).await["outgoing"].as_array().unwrap().is_empty());
    let anns = friends(&app, &ann).await;
    assert_eq!(anns["friends"][0]["last_active"], "earlier", "Bob last played 7 days ago");

    // A block ends the friendship and refuses the blocked player's requests.
    let (s, b) = post(&app, &bob, &format!("/api/friends/{ann_id}/block"), "block", json!({})).await;
    assert_eq!((s, b["outcome"].as_str()), (200, Some("blocked")), "{b}");
    assert!(friends(&app, &ann).await["friends"].as_array().unwrap().is_empty());
    let (s, b) = ask(&app, &ann, "Bob", "ask-blocked").await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "{b}");
    assert_eq!(post(&app, &ann, &gift, "gift-blocked", json!({})).await.0, 404);
    let r = app.delete(&format!("/api/friends/{ann_id}/block"), Some(&bob)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(ask(&app, &ann, "Bob", "ask-unblocked").await.0, 200);

    // Either side may end a friendship; the other's list follows.
    assert_eq!(ask(&app, &cat, "Ann", "cat-ann").await.0, 200);
    assert_eq!(post(&app, &ann, &format!("/api/friends/requests/{cat_id}/accept"), "ok-cat", json!({})).await.0, 200);
    assert_eq!(app.delete(&format!("/api/friends/{ann_id}"), Some(&cat)).await.status(), 200);
    assert!(friends(&app, &ann).await["friends"].as_array().unwrap().is_empty());
    assert_eq!(app.delete(&format!("/api/friends/{ann_id}"), Some(&cat)).await.status(), 404);

    let found: Value = app.get("/api/friends/search?q=ca", Some(&ann)).await.json().await.unwrap();
    assert_eq!(ids(&found["items"]), vec![cat_id.clone()]);
    assert_eq!(app.get("/api/friends/search?q=c", Some(&ann)).await.status(), 422);

    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.clean(), "{report}");
}

/// Concurrency: waiting requests stop at the limit; a full list refuses; two
/// players asking each other at once end as friends on both sides, once.
async fn limits_hold_under_concurrency(kind: StoreKind) {
    let Some((app, clock, _data)) = app(kind).await else { return };
    let (ann, ann_id) = app.register("Asker").await;
    let mut names = Vec::new();
    for i in 0..8 {
        let name = format!("Target{i}");
        app.register(&name).await;
        names.push(name);
    }
    let sends = names.iter().enumerate().map(|(i, n)| {
        let (app, ann) = (&app, &ann);
        async move { ask(app, ann, n, &format!("ask-{i}")).await.0 }
    });
    let codes = join_all(sends).await;
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 2, "two waiting requests at most: {codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 409), "{codes:?}");
    assert_eq!(friends(&app, &ann).await["outgoing"].as_array().unwrap().len(), 2);

    // Two players asking each other at the same moment.
    for round in 0..3 {
        let (x, x_id) = app.register(&format!("Mutual{round}x")).await;
        let (y, y_id) = app.register(&format!("Mutual{round}y")).await;
        let (xn, yn) = (format!("Mutual{round}x"), format!("Mutual{round}y"));
        let (a, b) = tokio::join!(ask(&app, &x, &yn, "m"), ask(&app, &y, &xn, "m"));
        let mut outcomes =
            vec![a.1["outcome"].as_str().unwrap().to_string(), b.1["outcome"].as_str().unwrap().to_string()];
        outcomes.sort();
        assert_eq!(outcomes, vec!["befriended", "request_sent"], "{a:?} {b:?}");
        assert_eq!(ids(&friends(&app, &x).await["friends"]), vec![y_id.clone()]);
        assert_eq!(ids(&friends(&app, &y).await["friends"]), vec![x_id.clone()]);
        assert!(friends(&app, &x).await["outgoing"].as_array().unwrap().is_empty());
    }

    // A full list: Ann accepts up to 3 friends; the 4th acceptance is refused.
    let mut askers = Vec::new();
    for i in 0..4 {
        let (t, id) = app.register(&format!("Fan{i}")).await;
        assert_eq!(ask(&app, &t, "Asker", &format!("fan-{i}")).await.0, 200);
        askers.push(id);
    }
    let accepts =
        askers.iter().map(|id| {
            let (app, ann) = (&app, &ann);
            async move {
                post(app, ann, &format!("/api/friends/requests/{id}/accept"), &format!("acc-{id}"), json!({})).await
            }
        });
    let answers = join_all(accepts).await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 3, "{answers:?}");
    let refused: Vec<&Value> = answers.iter().filter(|(s, _)| *s != 200).map(|(_, b)| b).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["error"]["code"], "LIMIT_REACHED");
    assert_eq!(friends(&app, &ann).await["friends"].as_array().unwrap().len(), 3);
    let _ = ann_id;
    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.clean(), "{report}");
}

crate::on_both_stores!(friends_ask_answer_gift_block_and_part, limits_hold_under_concurrency);
