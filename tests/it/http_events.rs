//! Live events over real HTTP on both stores, by the clock: double drops
//! double a campaign win's gold and xp, a stamina discount halves (rounded up)
//! a fight's stamina, a login event pays one reward per day while it runs; none
//! applies before its start or from its end.

use crate::common::{app_at, audit, StoreKind, TestApp};
use chrono::{Duration, TimeZone, Utc};
use divine_heroes::platform::clock::Clock;
use serde_json::{json, Value};

async fn stage(app: &TestApp, token: &str) -> Value {
    app.get("/api/battle/campaign/1/1", Some(token)).await.json::<Value>().await.unwrap()["stage"].clone()
}

async fn post(app: &TestApp, token: &str, path: &str, key: &str) -> (u16, Value) {
    let r = app.post(path, Some(token), Some(key), json!({})).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn events_apply_inside_their_windows(kind: StoreKind) {
    let Some((app, clock)) = app_at(kind, Utc.with_ymd_and_hms(2026, 12, 17, 9, 0, 0).unwrap()).await else { return };
    let (token, id) = app.register("Festive").await;
    let events: Value = app.get("/api/events", Some(&token)).await.json().await.unwrap();
    assert_eq!(events["active"], json!([]), "{events}");
    assert_eq!(events["upcoming"].as_array().unwrap().len(), 3, "{events}");
    let plain = stage(&app, &token).await;
    let (gold, xp, stamina) =
        (plain["gold"].as_i64().unwrap(), plain["xp"].as_i64().unwrap(), plain["stamina"].as_i64().unwrap());

    // Double drops: the stage shows, and a win pays, twice the gold and xp.
    clock.advance(Duration::days(1));
    let token = app.login("Festive").await;
    let doubled = stage(&app, &token).await;
    assert_eq!((doubled["gold"].as_i64(), doubled["xp"].as_i64()), (Some(2 * gold), Some(2 * xp)));
    let (s, b) = post(&app, &token, "/api/battle/campaign/1/1/fight", "dd").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["rewards"]["gold"].as_i64(), Some(2 * gold), "{b}");

    // The login event: one reward a day, in order.
    clock.advance(Duration::days(2)); // 2026-12-20
    let token = app.login("Festive").await;
    let g0 = app.player(&id).await.balances.gold;
    let (s, b) = post(&app, &token, "/api/events/winter_login/claim", "day1").await;
    assert_eq!((s, b["day"].as_u64()), (200, Some(1)), "{b}");
    assert_eq!(app.player(&id).await.balances.gold, g0 + 20_000);
    assert_eq!(post(&app, &token, "/api/events/winter_login/claim", "day1-again").await.0, 409, "once a day");
    assert_eq!(post(&app, &token, "/api/events/winter_double_drops/claim", "x").await.0, 404, "not a login event");
    clock.advance(Duration::days(1));
    let token = app.login("Festive").await;
    let (s, b) = post(&app, &token, "/api/events/winter_login/claim", "day2").await;
    assert_eq!((s, &b["reward"]), (200, &json!({"currency": "coins", "amount": 5000})), "{b}");

    // After double drops ended, during the stamina discount: half the stamina, rounded up.
    clock.advance(Duration::days(5)); // 2026-12-26
    let token = app.login("Festive").await;
    let discounted = stage(&app, &token).await;
    assert_eq!(discounted["gold"].as_i64(), Some(gold), "double drops ended");
    assert_eq!(discounted["stamina"].as_i64(), Some((stamina + 1) / 2));
    let before = app.player(&id).await.balances.stamina;
    let (s, b) = post(&app, &token, "/api/battle/campaign/1/1/fight", "discount").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(app.player(&id).await.balances.stamina, before - (stamina + 1) / 2);

    // Past every event: nothing active, the login event refuses.
    clock.advance(Duration::days(8)); // 2027-01-03
    let token = app.login("Festive").await;
    let events: Value = app.get("/api/events", Some(&token)).await.json().await.unwrap();
    assert_eq!(
        (events["active"].as_array().map(Vec::len), events["upcoming"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
    assert_eq!(stage(&app, &token).await["stamina"].as_i64(), Some(stamina));
    assert_eq!(post(&app, &token, "/api/events/winter_login/claim", "late").await.0, 409, "the event ended");
    assert!(audit(&app.state.store, clock.now()).await.clean());
}

crate::on_both_stores!(events_apply_inside_their_windows);
