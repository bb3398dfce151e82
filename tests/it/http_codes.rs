//! Redeem codes over real HTTP: operator commands create, list and disable
//! them; players redeem each once; unknown, expired, used-up and disabled
//! codes are distinct refusals; the global count stays exact under concurrent
//! redemptions, across two server processes on one MongoDB.

use std::sync::Arc;

use crate::common::{app_at_fixed_time, audit, open_store, StoreKind, TestApp};
use chrono::Duration;
use divine_heroes::ops::Command;
use divine_heroes::platform::clock::{Clock, SystemClock};
use divine_heroes::platform::config::Role;
use futures_util::future::join_all;
use serde_json::{json, Value};

async fn redeem(app: &TestApp, token: &str, code: &str, key: &str) -> (u16, Value) {
    let r = app.post("/api/codes/redeem", Some(token), Some(key), json!({"code": code})).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn op(app: &TestApp, c: Command, now: chrono::DateTime<chrono::Utc>) -> String {
    c.run(&app.writer(), now).await.expect("the command runs")
}

async fn codes_are_redeemed_once_and_refused_by_name(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let now = clock.now();
    let create = |code: &str, max: u64, expires: Option<&str>| Command::CodesCreate {
        code: code.into(),
        reward: "gold=1000,crystals=50".into(),
        max_uses: max,
        expires: expires.map(str::to_string),
    };
    op(&app, create("launch-2026", 100, Some("2026-11-30")), now).await;
    op(&app, create("ONCE", 1, None), now).await;
    op(&app, create("WITHDRAWN", 100, None), now).await;
    assert!(create("launch-2026", 5, None).run(&app.writer(), now).await.is_err(), "a code exists once");

    let (token, id) = app.register("Redeemer").await;
    let before = app.player(&id).await.balances;
    let (s, b) = redeem(&app, &token, "Launch-2026", "r1").await;
    assert_eq!(s, 200, "case-insensitive: {b}");
    let after = app.player(&id).await.balances;
    assert_eq!((after.gold - before.gold, after.crystals - before.crystals), (1000, 50));
    let (s, b) = redeem(&app, &token, "LAUNCH-2026", "r2").await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("CODE_ALREADY_REDEEMED")), "{b}");
    let (s, b) = redeem(&app, &token, "NO-SUCH-CODE", "r3").await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("CODE_UNKNOWN")), "{b}");
    assert_eq!(redeem(&app, &token, "ONCE", "r4").await.0, 200);

    let (other, _) = app.register("Latecomer").await;
    let (s, b) = redeem(&app, &other, "ONCE", "o1").await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("CODE_USED_UP")), "{b}");
    op(&app, Command::CodesDisable { code: "withdrawn".into() }, now).await;
    let (s, b) = redeem(&app, &other, "WITHDRAWN", "o2").await;
    assert_eq!((s, b["error"]["code"].as_str()), (410, Some("CODE_DISABLED")), "{b}");
    let (s, b) = redeem(&app, &other, "x", "o3").await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("VALIDATION_FAILED")), "{b}");
    // Valid through 2026-11-30 (UTC), refused from December 1st.
    clock.advance(Duration::days(5));
    let other = app.login("Latecomer").await;
    let (s, b) = redeem(&app, &other, "LAUNCH-2026", "o4").await;
    assert_eq!((s, b["error"]["code"].as_str()), (410, Some("CODE_EXPIRED")), "{b}");
    // Five attempts a minute: the sixth is refused before the code is looked at.
    assert_eq!(redeem(&app, &other, "NO-SUCH-CODE", "o5").await.0, 404, "the fifth");
    let (s, b) = redeem(&app, &other, "NO-SUCH-CODE", "o6").await;
    assert_eq!((s, b["error"]["code"].as_str()), (429, Some("RATE_LIMITED")), "{b}");

    let listed = op(&app, Command::CodesList, clock.now()).await;
    let rows: Vec<Value> = listed.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let uses: Vec<(String, u64, bool)> = rows
        .iter()
        .map(|r| {
            (r["code"].as_str().unwrap().to_string(), r["uses"].as_u64().unwrap(), r["enabled"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(
        uses,
        vec![("LAUNCH-2026".into(), 1, true), ("ONCE".into(), 1, true), ("WITHDRAWN".into(), 0, false)],
        "{listed}"
    );
    assert!(audit(&app.state.store, clock.now()).await.clean());
}

/// 100 players redeem a code of 10 uses at once, half through each of two
/// server processes on one MongoDB (one process on the embedded store, whose
/// file has one owner): exactly 10 are paid, the rest told CODE_USED_UP.
async fn a_code_of_ten_uses_pays_ten_of_a_hundred(kind: StoreKind) {
    let Some(store) = open_store(kind).await else { return };
    let second = store.second_mongo_pod().await;
    let a = TestApp::spawn_on_store(store, Role::All, |_| {}, Arc::new(SystemClock), None);
    let b = second.map(|s| TestApp::spawn_on_store(s, Role::All, |_| {}, Arc::new(SystemClock), None));
    let now = chrono::Utc::now();
    let create =
        Command::CodesCreate { code: "RUSH".into(), reward: "crystals=100".into(), max_uses: 10, expires: None };
    op(&a, create, now).await;
    let players = join_all((0..100).map(|i| {
        let app = if i % 2 == 1 { b.as_ref().unwrap_or(&a) } else { &a };
        async move { (app, app.register(&format!("rush{i}")).await) }
    }))
    .await;
    let answers = join_all(players.iter().map(|(app, (token, id))| async move {
        let (s, body) = redeem(app, token, "rush", "k").await;
        (s, body, id.clone())
    }))
    .await;
    let paid: Vec<&String> = answers.iter().filter(|(s, _, _)| *s == 200).map(|(_, _, id)| id).collect();
    assert_eq!(
        paid.len(),
        10,
        "{:?}",
        answers.iter().map(|(s, b, _)| (s, b["error"]["code"].clone())).collect::<Vec<_>>()
    );
    assert!(answers
        .iter()
        .filter(|(s, _, _)| *s != 200)
        .all(|(s, b, _)| *s == 409 && b["error"]["code"] == "CODE_USED_UP"));
    let mut credited = 0;
    for (_, (_, id)) in &players {
        let p = a.player(id).await;
        credited += p.balances.crystals - 300;
        assert_eq!(p.purchases.codes.contains("RUSH"), paid.contains(&id));
    }
    assert_eq!(credited, 10 * 100, "exactly ten rewards paid");
    let listed = op(&a, Command::CodesList, chrono::Utc::now()).await;
    assert!(listed.contains("\"uses\":10"), "{listed}");
}

crate::on_both_stores!(codes_are_redeemed_once_and_refused_by_name, a_code_of_ten_uses_pays_ten_of_a_hundred);
