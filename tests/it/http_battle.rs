//! Campaign, arena and replays over real HTTP.

use crate::common::{app_at_fixed_time, StoreKind, TestApp};
use chrono::Duration;
use divine_heroes::game::economy::Currency;
use divine_heroes::platform::clock::Clock;
use futures_util::future::join_all;
use serde_json::{json, Value};

async fn fight(app: &TestApp, token: &str, c: u32, s: u32, key: &str) -> (u16, Value) {
    let r = app.post(&format!("/api/battle/campaign/{c}/{s}/fight"), Some(token), Some(key), json!({})).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn campaign_unlocks_in_order_and_pays_first_clear_once(kind: StoreKind) {
    let Some((app, _clock)) = app_at_fixed_time(kind).await else { return };
    let (token, id) = app.register("Campaigner").await;
    let (status, body) = fight(&app, &token, 1, 3, "locked").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("locked"));
    assert_eq!(app.player(&id).await.balances.stamina, 100, "a refused fight costs nothing");

    // Win 1-1 (the first stages are gentle; retry a loss, as a player would).
    let mut won = None;
    for attempt in 0..5 {
        let before = app.player(&id).await.balances;
        let (status, body) = fight(&app, &token, 1, 1, &format!("first-{attempt}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["balances_after"]["stamina"], before.stamina - 6, "1-1 costs 6 stamina");
        if body["winner"] == "attacker" {
            won = Some(body);
            break;
        }
    }
    let won = won.expect("a new team wins 1-1 within five tries");
    assert_eq!(won["rewards"]["first_clear"], true);
    assert_eq!(won["rewards"]["crystals"], 5);
    assert_eq!(won["rewards"]["gold"], 550, "500·1·(1 + 1/10)");
    let crystals_after_first = app.player(&id).await.balances.crystals;
    assert_eq!(crystals_after_first, 305);
    for attempt in 0..3 {
        let (status, body) = fight(&app, &token, 1, 1, &format!("again-{attempt}")).await;
        assert_eq!(status, 200);
        assert_eq!(body["rewards"]["crystals"], 0, "first-clear crystals are paid once");
    }
    assert_eq!(app.player(&id).await.balances.crystals, crystals_after_first);
    let progress: Value = app.get("/api/battle/campaign", Some(&token)).await.json().await.unwrap();
    assert_eq!(progress["cleared"], 1);
    assert_eq!(progress["next"], json!({"chapter": 1, "stage": 2}));

    // The stored battle replays to the same outcome.
    let battle_id = won["battle_id"].as_str().unwrap();
    let replay: Value = app.get(&format!("/api/battle/replays/{battle_id}"), Some(&token)).await.json().await.unwrap();
    assert_eq!(replay["log"], won["log"]);
    let (stranger, _) = app.register("Stranger").await;
    assert_eq!(app.get(&format!("/api/battle/replays/{battle_id}"), Some(&stranger)).await.status(), 404);

    assert_eq!(app.get("/api/battle/campaign/13/1", Some(&token)).await.status(), 404);
    assert_eq!(app.get("/api/battle/campaign/1/22", Some(&token)).await.status(), 404);
    assert_eq!(app.get("/api/battle/campaign/0/1", Some(&token)).await.status(), 404);
    assert_eq!(app.get("/api/battle/campaign/x/1", Some(&token)).await.status(), 404);
    let sweep = |times: Value, key: &'static str| {
        app.post("/api/battle/campaign/1/1/sweep", Some(&token), Some(key), json!({"times": times}))
    };
    assert_eq!(sweep(json!(-1), "s1").await.status(), 422);
    assert_eq!(sweep(json!(11), "s2").await.status(), 422);
    let stars = won["stars"].as_u64().unwrap();
    let r = sweep(json!(2), "s3").await;
    if stars == 3 {
        assert_eq!(r.status(), 200);
    } else {
        assert_eq!(r.status(), 409, "only 3-star stages sweep");
    }
}

async fn concurrent_fights_spend_stamina_exactly(kind: StoreKind) {
    let Some((app, _clock)) = app_at_fixed_time(kind).await else { return };
    let (token, id) = app.register("Rusher").await;
    app.set_balance(&id, Currency::Stamina, 30).await;
    let results = join_all((0..30).map(|i| {
        let (app, token) = (&app, &token);
        async move { fight(app, token, 1, 1, &format!("rush-{i}")).await }
    }))
    .await;
    let fought = results.iter().filter(|(s, _)| *s == 200).count();
    let refused = results.iter().filter(|(s, b)| *s == 409 && b["error"]["code"] == "INSUFFICIENT_FUNDS").count();
    assert_eq!((fought, refused), (5, 25));
    assert_eq!(app.player(&id).await.balances.stamina, 0);
    let ledger: Value = app.get("/api/player/ledger?limit=100", Some(&token)).await.json().await.unwrap();
    let stamina: Vec<i64> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["currency"] == "stamina" && e["reason"] == "campaign_fight")
        .map(|e| e["balance_after"].as_i64().unwrap())
        .collect();
    assert_eq!(stamina.len(), 5);
    assert!(stamina.iter().all(|&b| b >= 0));
}

async fn arena_moves_both_ratings_and_spends_tickets(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (a, a_id) = app.register("Challenger").await;
    let (_b, b_id) = app.register("Defender").await;
    let opponents: Value = app.get("/api/battle/arena/opponents", Some(&a)).await.json().await.unwrap();
    let items = opponents["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "bots fill the list");
    assert!(items.iter().any(|o| o["opponent_id"] == b_id.as_str()));
    assert!(items.iter().all(|o| o["opponent_id"] != a_id.as_str()));

    let r = app.post("/api/battle/arena/challenge", Some(&a), Some("duel-1"), json!({"opponent_id": b_id})).await;
    assert_eq!(r.status(), 200);
    let duel: Value = r.json().await.unwrap();
    let change = if duel["winner"] == "attacker" { 16 } else { -16 };
    assert_eq!(duel["rating_change"], json!({"attacker": change, "defender": -change / 2}), "K = 32 at equal ratings");
    let (pa, pb) = (app.player(&a_id).await, app.player(&b_id).await);
    assert_eq!(pa.arena_rating, 1000 + change);
    assert_eq!(pb.arena_rating, 1000 - change / 2);
    assert_eq!(pa.balances.arena_tickets, 4);
    let battle_id = duel["battle_id"].as_str().unwrap();
    let replay: Value = app.get(&format!("/api/battle/replays/{battle_id}"), Some(&a)).await.json().await.unwrap();
    assert_eq!(replay["battle"]["winner"], duel["winner"]);

    for i in 2..=5 {
        let r = app
            .post("/api/battle/arena/challenge", Some(&a), Some(&format!("duel-{i}")), json!({"opponent_id": b_id}))
            .await;
        assert_eq!(r.status(), 200);
    }
    let sixth = app.post("/api/battle/arena/challenge", Some(&a), Some("duel-6"), json!({"opponent_id": b_id})).await;
    assert_eq!(sixth.status(), 409);
    let e: Value = sixth.json().await.unwrap();
    assert_eq!(e["error"]["code"], "INSUFFICIENT_FUNDS");
    assert_eq!(e["error"]["details"]["currency"], "arena_tickets");
    clock.advance(Duration::days(1));
    let a = app.login("Challenger").await;
    let stale = app.post("/api/battle/arena/challenge", Some(&a), Some("stale"), json!({"opponent_id": b_id})).await;
    assert_eq!(stale.status(), 409, "yesterday's offer has expired");
    let opponents: Value = app.get("/api/battle/arena/opponents", Some(&a)).await.json().await.unwrap();
    let items = opponents["items"].as_array().unwrap();
    let bot = items.iter().find(|o| o["bot"] == true).unwrap()["opponent_id"].as_str().unwrap().to_string();
    let r = app.post("/api/battle/arena/challenge", Some(&a), Some("bot-duel"), json!({"opponent_id": bot})).await;
    assert_eq!(r.status(), 200, "tickets refill at 00:00 UTC");
    assert_eq!(
        app.post("/api/battle/arena/challenge", Some(&a), Some("me"), json!({"opponent_id": a_id})).await.status(),
        422
    );
    assert_eq!(
        app.post("/api/battle/arena/challenge", Some(&a), Some("ghost"), json!({"opponent_id": "nobody"}))
            .await
            .status(),
        409,
        "only an offered opponent"
    );

    // Season rollover: one mail per player per season, rating softly reset.
    let (rating, b_rating) = (app.player(&a_id).await.arena_rating, app.player(&b_id).await.arena_rating);
    clock.advance(Duration::days(10));
    let n = divine_heroes::ops::close_arena_season(&app.writer(), clock.now()).await.unwrap();
    assert!(n >= 1);
    let again = divine_heroes::ops::close_arena_season(&app.writer(), clock.now()).await.unwrap();
    assert_eq!(again, 0, "a season closes once");
    let pa = app.player(&a_id).await;
    assert_eq!(pa.arena_rating, 1000 + (rating - 1000) / 2);
    assert_eq!(pa.mailbox.iter().filter(|m| m.id.starts_with("arena-season-2026-11")).count(), 1);
    // The operator's rollover moved the boards with the ratings, the defender's too
    // (who never attacked, and is reset like everyone).
    app.assert_boards_current(&a_id).await;
    app.assert_boards_current(&b_id).await;
    let pb_after = app.player(&b_id).await;
    assert_eq!(pb_after.arena_rating, 1000 + (b_rating - 1000) / 2, "a defender's rating is reset too");
    let a = app.login("Challenger").await;
    let board: Value = app.get("/api/leaderboards/arena", Some(&a)).await.json().await.unwrap();
    assert_eq!(board["me"]["score"], json!(pa.arena_rating), "{board}");
}

/// A player who only reads the arena after the season ended gets the rollover
/// (reward mail, rating reset) written by that read, not at some later write.
async fn a_read_of_the_arena_closes_an_ended_season(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (a, a_id) = app.register("Reader").await;
    let opponents: Value = app.get("/api/battle/arena/opponents", Some(&a)).await.json().await.unwrap();
    let bot = opponents["items"][0]["opponent_id"].as_str().unwrap().to_string();
    let r = app.post("/api/battle/arena/challenge", Some(&a), Some("once"), json!({"opponent_id": bot})).await;
    assert_eq!(r.status(), 200);
    let rating = app.player(&a_id).await.arena_rating;
    clock.advance(Duration::days(35));
    let a = app.login("Reader").await;
    let arena: Value = app.get("/api/battle/arena", Some(&a)).await.json().await.unwrap();
    assert_eq!(arena["rating"], json!(1000 + (rating - 1000) / 2), "{arena}");
    assert_eq!(arena["battles_this_season"], 0);
    let p = app.player(&a_id).await;
    assert_eq!(p.mailbox.iter().filter(|m| m.id == "arena-season-2026-11").count(), 1, "the reward mail is there");
    app.assert_boards_current(&a_id).await;
}

/// OWASP API6 (unrestricted access to sensitive business flows): the server,
/// not the client, decides whom a challenge fights. Only an opponent from the
/// caller's latest offer is accepted, within its five minutes; a bot fights at
/// the rating the server offered it at (nothing in its id says a rating); a
/// player id never offered is refused, as is a forged "easy bot" id.
async fn api6_a_challenge_fights_only_an_offered_opponent(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (a, _) = app.register("Cheater").await;
    let (_, other_id) = app.register("Bystander").await;
    let forged = |id: &str| json!({"opponent_id": id});
    let before = app.post("/api/battle/arena/challenge", Some(&a), Some("early"), forged("bot:0")).await;
    assert_eq!(before.status(), 409, "no offer yet");
    let e: Value = before.json().await.unwrap();
    assert!(e["error"]["message"].as_str().unwrap().contains("ask for opponents first"), "{e}");

    let offer: Value = app.get("/api/battle/arena/opponents", Some(&a)).await.json().await.unwrap();
    let offered: Vec<String> =
        offer["items"].as_array().unwrap().iter().map(|o| o["opponent_id"].as_str().unwrap().to_string()).collect();
    for (i, id) in ["bot:0:1", "bot:5000:1", "bot:99", "someone-else"].into_iter().enumerate() {
        let r = app.post("/api/battle/arena/challenge", Some(&a), Some(&format!("forged-{i}")), forged(id)).await;
        assert_eq!(r.status(), 409, "{id} was never offered");
    }
    if !offered.contains(&other_id) {
        let r = app.post("/api/battle/arena/challenge", Some(&a), Some("unoffered"), forged(&other_id)).await;
        assert_eq!(r.status(), 409, "a real player who was not offered");
    }
    let rejected_tickets = app.player(&app.state.store.player_by_username("cheater").await.unwrap().unwrap().id).await;
    assert_eq!(rejected_tickets.balances.arena_tickets, 5, "refused challenges cost nothing");

    // A bot fights at its offered rating: the rating change follows from it.
    let bot = offer["items"].as_array().unwrap().iter().find(|o| o["bot"] == true).unwrap().clone();
    let r = app
        .post("/api/battle/arena/challenge", Some(&a), Some("fair"), forged(bot["opponent_id"].as_str().unwrap()))
        .await;
    assert_eq!(r.status(), 200);
    let duel: Value = r.json().await.unwrap();
    let expected = if duel["winner"] == "attacker" { 16 } else { -16 };
    assert_eq!(duel["rating_change"]["attacker"], expected, "K = 32 against a bot offered at the caller's 1000");

    clock.advance(Duration::minutes(6));
    let a = app.login("Cheater").await;
    let late = app
        .post("/api/battle/arena/challenge", Some(&a), Some("late"), forged(bot["opponent_id"].as_str().unwrap()))
        .await;
    assert_eq!(late.status(), 409, "the offer expires after five minutes");
}

/// The operators' "battle queue": a gauge of battle requests being served, by
/// role, back at 0 once they are answered; and `/metrics` laid out for grep,
/// one series per line naming its metric.
#[tokio::test]
async fn battles_in_flight_are_measured_and_metrics_read_by_grep() {
    let app = TestApp::spawn(StoreKind::Embedded).await.unwrap();
    let (token, _) = app.register("Gauged").await;
    assert_eq!(fight(&app, &token, 1, 1, "gauged").await.0, 200);
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let gauge: Vec<&str> =
        text.lines().filter(|l| l.contains("\"name\":\"divine_heroes_battles_in_flight\"")).collect();
    assert_eq!(gauge.len(), 1, "{text}");
    assert!(gauge[0].contains("\"role\":\"all\"") && gauge[0].contains("\"value\":0.0"), "{}", gauge[0]);
    assert!(
        text.lines().filter(|l| l.contains("\"labels\"")).all(|l| l.contains("\"name\":")),
        "every series names itself"
    );
    serde_json::from_str::<Value>(&text).expect("still one JSON document");
}

on_both_stores!(
    api6_a_challenge_fights_only_an_offered_opponent,
    a_read_of_the_arena_closes_an_ended_season,
    campaign_unlocks_in_order_and_pays_first_clear_once,
    concurrent_fights_spend_stamina_exactly,
    arena_moves_both_ratings_and_spends_tickets,
);
