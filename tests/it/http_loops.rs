//! The daily loops over real HTTP on both stores: quests counted by the actions
//! themselves, activity chests, achievements, pass xp, a tower floor, the
//! shop's limits and daily offers, with a clock the tests move across days and weeks.

use crate::common::{app_at_fixed_time, audit, StoreKind, TestApp};
use chrono::Duration;
use divine_heroes::game::economy::Currency;
use divine_heroes::platform::clock::Clock;
use futures_util::future::join_all;
use serde_json::{json, Value};

async fn quests(app: &TestApp, token: &str) -> Value {
    let r = app.get("/api/quests", Some(token)).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn quest<'a>(q: &'a Value, list: &str, id: &str) -> &'a Value {
    q[list].as_array().unwrap().iter().find(|x| x["quest_id"] == id).unwrap_or_else(|| panic!("{id} in {list}"))
}

async fn claim(app: &TestApp, token: &str, path: &str, key: &str) -> (u16, Value) {
    let r = app.post(path, Some(token), Some(key), json!({})).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A player's day, scripted: the daily login, a summon, campaign wins, a hero
/// level-up and an idle claim each count in their own write; the completed
/// quests give activity points once, the points open chests once; the next
/// day starts over while the week's points stay; Monday starts the week over.
async fn a_players_day_moves_quests_chests_and_the_shop(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (token, id) = app.register("Daily").await;
    app.set_balance(&id, Currency::Crystals, 5_000).await;
    let q = quests(&app, &token).await;
    assert_eq!(quest(&q, "daily", "daily_login")["progress"], 0);
    assert_eq!(q["daily_points"], 0);
    let (status, body) = claim(&app, &token, "/api/quests/daily_login/claim", "early").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("CONFLICT")), "not complete yet: {body}");

    assert_eq!(claim(&app, &token, "/api/daily-login/claim", "login").await.0, 200);
    assert_eq!(app.summon(&token, "standard", 10, "pull").await.status(), 200);
    for i in 0..10 {
        let (s, b) = claim(&app, &token, "/api/battle/campaign/1/1/fight", &format!("fight-{i}")).await;
        assert_eq!(s, 200, "{b}");
    }
    let r = app.post("/api/heroes/marcus_the_shield/level-up", Some(&token), Some("lv"), json!({"levels": 1})).await;
    assert_eq!(r.status(), 200);
    clock.advance(Duration::hours(2));
    assert_eq!(claim(&app, &token, "/api/idle/claim", "idle").await.0, 200);

    let q = quests(&app, &token).await;
    for (quest_id, progress) in [
        ("daily_login", 1),
        ("summon_once", 1),
        ("campaign_wins", 3),
        ("hero_level_up", 1),
        ("idle_claim", 1),
        ("stamina_spent", 60),
        ("arena_challenge", 0),
    ] {
        assert_eq!(quest(&q, "daily", quest_id)["progress"], progress, "{quest_id}: {q}");
    }
    assert_eq!(quest(&q, "achievements", "total_pulls_10")["progress"], 10, "a 10-pull counts 10 pulls");

    // Six quests complete: 10 + 10 + 20 + 10 + 10 + 10 = 70 points, each once.
    for quest_id in ["daily_login", "summon_once", "campaign_wins", "hero_level_up", "idle_claim", "stamina_spent"] {
        let (s, b) = claim(&app, &token, &format!("/api/quests/{quest_id}/claim"), &format!("q-{quest_id}")).await;
        assert_eq!(s, 200, "{quest_id}: {b}");
    }
    let (s, b) = claim(&app, &token, "/api/quests/summon_once/claim", "q-again").await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("CONFLICT")), "{b}");
    let (s, b) = claim(&app, &token, "/api/quests/arena_challenge/claim", "q-arena").await;
    assert_eq!(s, 409, "an incomplete quest: {b}");
    assert_eq!(claim(&app, &token, "/api/quests/no_such_quest/claim", "q-none").await.0, 404);
    let q = quests(&app, &token).await;
    assert_eq!((q["daily_points"].as_u64(), q["weekly_points"].as_u64()), (Some(70), Some(70)));

    let gold_before = app.player(&id).await.balances.gold;
    let (s, b) = claim(&app, &token, "/api/quests/chests/20/claim", "chest-20").await;
    assert_eq!((s, &b["reward"]), (200, &json!({"currency": "gold", "amount": 10000})), "{b}");
    assert_eq!(app.player(&id).await.balances.gold, gold_before + 10_000);
    assert_eq!(claim(&app, &token, "/api/quests/chests/20/claim", "chest-20-again").await.0, 409, "once a day");
    assert_eq!(claim(&app, &token, "/api/quests/chests/80/claim", "chest-80").await.0, 409, "70 points < 80");
    assert_eq!(claim(&app, &token, "/api/quests/chests/300/claim", "chest-300").await.0, 409, "a weekly chest");
    // The same key answers the first claim again, and nothing is paid twice.
    let (s, again) = claim(&app, &token, "/api/quests/chests/20/claim", "chest-20").await;
    assert_eq!((s, &again["balances_after"]), (200, &b["balances_after"]));
    let (s, b) = claim(&app, &token, "/api/quests/total_pulls_10/claim", "ach-10").await;
    assert_eq!((s, &b["reward"]), (200, &json!({"kind": "currency", "currency": "crystals", "amount": 50})), "{b}");
    assert_eq!(claim(&app, &token, "/api/quests/total_pulls_100/claim", "ach-100").await.0, 409, "not reached");

    // Pass xp from the same day: 70 activity points (700) and 60 stamina on wins (600).
    let pass: Value = app.get("/api/pass", Some(&token)).await.json().await.unwrap();
    assert_eq!((pass["xp"].as_u64(), pass["level"].as_u64()), (Some(1300), Some(1)), "{pass}");
    let r = app.post("/api/pass/claim", Some(&token), Some("pass-1"), json!({"level": 1, "track": "free"})).await;
    assert_eq!(r.status(), 200);
    // A tower floor: a win opens the next floor, a loss changes nothing.
    let r = app.post("/api/battle/tower/fight", Some(&token), Some("tower-1"), json!({})).await;
    let tower: Value = r.json().await.unwrap();
    let won = tower["winner"] == "attacker";
    assert_eq!(tower["best_floor"].as_u64(), Some(u64::from(won)), "{}", tower["rewards"]);
    assert_eq!(app.player(&id).await.tower.best_floor, u32::from(won));

    // A shop purchase the same day.
    let shop: Value = app.get("/api/shop", Some(&token)).await.json().await.unwrap();
    assert_eq!(shop["daily"].as_array().unwrap().len(), 6, "{shop}");
    let offer = shop["daily"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["item"]["kind"] == "currency" && o["price"]["currency"] != "arena_medals")
        .cloned();
    if let Some(offer) = offer {
        let r = app.post("/api/shop/buy", Some(&token), Some("daily-1"), json!({"offer_id": offer["offer_id"]})).await;
        assert_eq!(r.status(), 200);
        let r = app.post("/api/shop/buy", Some(&token), Some("daily-2"), json!({"offer_id": offer["offer_id"]})).await;
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], "LIMIT_REACHED", "a daily offer once a day: {b}");
        clock.advance(Duration::days(1));
        let token = app.login("Daily").await;
        let r = app.post("/api/shop/buy", Some(&token), Some("daily-3"), json!({"offer_id": offer["offer_id"]})).await;
        assert_eq!(r.status(), 410, "yesterday's offer");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], "OFFER_EXPIRED");
    } else {
        clock.advance(Duration::days(1));
    }

    // Friday: the day's part starts over, the week's points stay.
    let token = app.login("Daily").await;
    let q = quests(&app, &token).await;
    assert_eq!(quest(&q, "daily", "daily_login")["progress"], 0, "{q}");
    assert_eq!(quest(&q, "daily", "daily_login")["claimed"], false);
    assert_eq!((q["daily_points"].as_u64(), q["weekly_points"].as_u64()), (Some(0), Some(70)));
    assert!(q["daily_chests"].as_array().unwrap().iter().all(|c| c["opened"] == false), "{q}");
    assert_eq!(quest(&q, "achievements", "total_pulls_10")["claimed"], true, "achievements stay claimed");
    // Monday 00:00: the week starts over.
    clock.advance(Duration::days(3));
    let token = app.login("Daily").await;
    let q = quests(&app, &token).await;
    assert_eq!(q["weekly_points"], 0, "{q}");

    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.clean(), "{report}");
}

/// 50 concurrent purchases of the stamina refill (6 a day, 50 crystals more
/// each time): exactly 6 succeed, the crystals paid are exactly 50+100+...+300
/// and the stamina exactly 6 × 120; the rest are LIMIT_REACHED. The next day
/// the limit and the price start over; a purchase the balance cannot pay
/// changes nothing.
async fn concurrent_purchases_stop_at_the_limit(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (token, id) = app.register("Buyer").await;
    app.set_balance(&id, Currency::Crystals, 10_000).await;
    let before = app.player(&id).await.balances;
    let answers = join_all((0..50).map(|i| {
        let (app, token) = (&app, &token);
        async move {
            let r = app
                .post("/api/shop/buy", Some(token), Some(&format!("refill-{i}")), json!({"offer_id": "stamina_refill"}))
                .await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 6, "{answers:?}");
    assert!(answers.iter().filter(|(s, _)| *s != 200).all(|(s, b)| *s == 409 && b["error"]["code"] == "LIMIT_REACHED"));
    let mut paid: Vec<i64> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b["purchase"]["paid"]["amount"].as_i64().unwrap())
        .collect();
    paid.sort_unstable();
    assert_eq!(paid, vec![50, 100, 150, 200, 250, 300], "each refill 50 crystals dearer");
    let after = app.player(&id).await.balances;
    assert_eq!(after.crystals, before.crystals - 1_050);
    assert_eq!(after.stamina, before.stamina + 6 * 120);

    let shop: Value = app.get("/api/shop", Some(&token)).await.json().await.unwrap();
    let refill = shop["fixed"].as_array().unwrap().iter().find(|o| o["offer_id"] == "stamina_refill").unwrap();
    assert_eq!(refill["remaining"], 0);

    clock.advance(Duration::days(1));
    let token = app.login("Buyer").await;
    app.set_balance(&id, Currency::Crystals, 70).await;
    let r = app.post("/api/shop/buy", Some(&token), Some("next-day"), json!({"offer_id": "stamina_refill"})).await;
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["purchase"]["paid"]["amount"], 50, "the price starts over: {b}");
    let r = app.post("/api/shop/buy", Some(&token), Some("too-poor"), json!({"offer_id": "stamina_refill"})).await;
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "INSUFFICIENT_FUNDS", "20 crystals left, 100 asked: {b}");
    assert_eq!(app.player(&id).await.balances.crystals, 20, "a refused purchase changes nothing");
    let r = app
        .post("/api/shop/buy", Some(&token), Some("bad"), json!({"offer_id": "stamina_refill", "quantity": 0}))
        .await;
    assert_eq!(r.status(), 422);
    let r = app.post("/api/shop/buy", Some(&token), Some("none"), json!({"offer_id": "no_such_offer"})).await;
    assert_eq!(r.status(), 404);

    // The medal shop: the buyer names an owned SSR hero; weekly limits.
    let r = app
        .post(
            "/api/shop/buy",
            Some(&token),
            Some("medal-1"),
            json!({"offer_id": "medal_ssr_shards", "hero_id": "marcus_the_shield"}),
        )
        .await;
    assert_eq!(r.status(), 422, "marcus is SR");
    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.clean(), "{report}");
}

crate::on_both_stores!(a_players_day_moves_quests_chests_and_the_shop, concurrent_purchases_stop_at_the_limit);
