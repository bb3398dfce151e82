//! Summons over real HTTP: prices, atomicity under concurrency, idempotency,
//! disclosure, pity and history.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::{StoreKind, TestApp};
use divine_heroes::game::economy::Currency;
use futures_util::future::join_all;
use serde_json::{json, Value};

async fn prices_are_the_published_ones(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Pricey").await;
    app.set_balance(&id, Currency::Crystals, 3000).await;
    let cases = [
        ("premium", 1, "crystals", 300),
        ("premium", 10, "crystals", 2700),
        ("standard", 1, "coins", 1000),
        ("standard", 10, "coins", 9000),
        ("divine", 1, "divine_essence", 1),
        ("divine", 10, "divine_essence", 10),
    ];
    app.set_balance(&id, Currency::Coins, 10_000).await;
    app.set_balance(&id, Currency::DivineEssence, 11).await;
    for (i, (banner, count, currency, price)) in cases.into_iter().enumerate() {
        let before = app.player(&id).await.balances.get(currency_of(currency));
        let r = app.summon(&token, banner, count, &format!("price-{i}")).await;
        assert_eq!(r.status(), 200, "{banner} x{count}");
        let receipt: Value = r.json().await.unwrap();
        assert_eq!(receipt["cost"], json!({"currency": currency, "amount": price}));
        assert_eq!(receipt["results"].as_array().unwrap().len(), count as usize);
        let after = receipt["balances_after"][currency].as_i64().unwrap();
        let refunds: i64 = receipt["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["grant"]["type"] == "currency" && r["grant"]["currency"] == currency)
            .map(|r| r["grant"]["amount"].as_i64().unwrap())
            .sum();
        assert_eq!(before - price + refunds, after, "{banner} x{count} charged exactly {price}");
    }
}

fn currency_of(name: &str) -> Currency {
    match name {
        "crystals" => Currency::Crystals,
        "coins" => Currency::Coins,
        _ => Currency::DivineEssence,
    }
}

async fn bad_summons_are_refused_and_change_nothing(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Broke").await;
    let before = app.player(&id).await;
    let r = app.summon(&token, "premium", 10, "too-poor").await;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INSUFFICIENT_FUNDS");
    assert_eq!(body["error"]["details"], json!({"currency": "crystals", "needed": 2700, "has": 300}));
    assert_eq!(app.summon(&token, "premium", 3, "k3").await.status(), 422);
    assert_eq!(app.summon(&token, "nope", 1, "k4").await.status(), 404);
    let r = app.post("/api/gacha/summon", Some(&token), None, json!({"banner_id": "premium", "count": 1})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "IDEMPOTENCY_KEY_INVALID");
    let r = app
        .post("/api/gacha/summon", Some(&token), Some("bad key!"), json!({"banner_id": "premium", "count": 1}))
        .await;
    assert_eq!(r.status(), 400);
    let r = app.post("/api/gacha/summon", Some(&token), Some("k5"), json!({"banner_id": "premium", "count": -1})).await;
    assert_eq!(r.status(), 422);
    assert_eq!(app.player(&id).await, before, "nothing changed");
    // Same key, other body → 409; the first receipt stays the answer for the first body.
    let first: Value = app.summon(&token, "premium", 1, "mine").await.json().await.unwrap();
    let r = app.summon(&token, "standard", 1, "mine").await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
    let again = app.summon(&token, "premium", 1, "mine").await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
}

/// 200 concurrent ten-pulls on a wallet that affords exactly ten.
async fn concurrent_ten_pulls_spend_the_wallet_exactly(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Whale").await;
    app.set_balance(&id, Currency::Crystals, 27_000).await;
    let responses = join_all((0..200).map(|i| {
        let (app, token) = (&app, &token);
        async move {
            let r = app.summon(token, "premium", 10, &format!("burst-{i}")).await;
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let receipts: Vec<&Value> = responses.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
    let refused = responses.iter().filter(|(s, b)| *s == 409 && b["error"]["code"] == "INSUFFICIENT_FUNDS").count();
    assert_eq!(
        (receipts.len(), refused),
        (10, 190),
        "statuses: {:?}",
        responses.iter().map(|r| r.0).collect::<BTreeSet<_>>()
    );

    let player = app.player(&id).await;
    assert_eq!(player.balances.crystals, 0);
    // Heroes and shards are exactly what the receipts granted.
    let mut new_heroes = BTreeSet::new();
    let mut shards: BTreeMap<String, u64> = BTreeMap::new();
    for r in receipts.iter().flat_map(|r| r["results"].as_array().unwrap()) {
        let g = &r["grant"];
        let hero = g["hero_id"].as_str().unwrap().to_string();
        match g["type"].as_str().unwrap() {
            "new_hero" => assert!(new_heroes.insert(hero), "a hero is new only once"),
            "duplicate" => *shards.entry(hero).or_default() += g["shards"].as_u64().unwrap(),
            t => panic!("premium grants only heroes, got {t}"),
        }
    }
    assert_eq!(player.heroes.len(), 3 + new_heroes.len());
    for (hero, owned) in &player.heroes {
        assert_eq!(u64::from(owned.shards), shards.get(hero).copied().unwrap_or(0), "{hero} shards");
    }
    let history = app.get("/api/gacha/history?limit=100", Some(&token)).await.json::<Value>().await.unwrap();
    assert_eq!(history["items"].as_array().unwrap().len(), 100);
    assert!(history["next_cursor"].is_null());
    let ledger: Value = app.get("/api/player/ledger?limit=100", Some(&token)).await.json().await.unwrap();
    let summon_entries: Vec<&Value> =
        ledger["items"].as_array().unwrap().iter().filter(|e| e["reason"] == "summon").collect();
    assert_eq!(summon_entries.len(), 10);
    assert!(summon_entries.iter().all(|e| e["delta"] == -2700 && e["currency"] == "crystals"));
    let receipt_ids: BTreeSet<&str> = receipts.iter().map(|r| r["summon_id"].as_str().unwrap()).collect();
    let ledger_ids: BTreeSet<&str> = summon_entries.iter().map(|e| e["ref_id"].as_str().unwrap()).collect();
    assert_eq!(receipt_ids, ledger_ids);
    // The pity counter continued across the ten summons in order.
    let pity: Value = app.get("/api/gacha/pity", Some(&token)).await.json().await.unwrap();
    let premium = pity["items"].as_array().unwrap().iter().find(|p| p["banner_id"] == "premium").unwrap();
    let results: Vec<&Value> = history["items"].as_array().unwrap().iter().collect();
    let since_last_ur = results.iter().take_while(|r| r["result"]["category"] != "UR").count();
    assert_eq!(premium["pulls_since_pity"], since_last_ur);
}

/// One key sent 20 times at once: one charge, 20 identical receipts.
async fn one_key_twenty_times_charges_once(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Twice").await;
    app.set_balance(&id, Currency::Crystals, 5400).await;
    let bodies = join_all((0..20).map(|_| async {
        let r = app.summon(&token, "premium", 10, "only-once").await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    }))
    .await;
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "identical receipts");
    assert_eq!(app.player(&id).await.balances.crystals, 2700);
    let history: Value = app.get("/api/gacha/history?limit=100", Some(&token)).await.json().await.unwrap();
    assert_eq!(history["items"].as_array().unwrap().len(), 10);
}

async fn history_pages_newest_first(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Historian").await;
    app.set_balance(&id, Currency::DivineEssence, 12).await;
    // A single, a ten (kept as one row) and a single: pages of 3 cut the ten.
    let mut summons = Vec::new();
    for (i, count) in [1, 10, 1].into_iter().enumerate() {
        let r = app.summon(&token, "divine", count, &format!("h{i}")).await;
        assert_eq!(r.status(), 200);
        summons.push((r.json::<Value>().await.unwrap()["summon_id"].as_str().unwrap().to_string(), count));
    }
    let expected: Vec<(String, u64)> =
        summons.iter().rev().flat_map(|(s, n)| (0..u64::from(*n)).rev().map(move |i| (s.clone(), i))).collect();
    let mut seen = Vec::new();
    let mut next = String::new();
    let mut pages = 0;
    loop {
        let path = if next.is_empty() {
            "/api/gacha/history?limit=3".to_string()
        } else {
            format!("/api/gacha/history?limit=3&cursor={next}")
        };
        let page: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|i| (i["summon_id"].as_str().unwrap().to_string(), i["result"]["index"].as_u64().unwrap())),
        );
        match page["next_cursor"].as_str() {
            Some(c) => next = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every pull once, newest summon first, last pull of a summon first");
    let page: Value = app.get("/api/gacha/history?limit=100", Some(&token)).await.json().await.unwrap();
    assert!(page["items"].as_array().unwrap().iter().all(|i| i["rates_version"] == 1), "every row names its table");
    assert_eq!(pages, 4, "12 pulls in pages of 3, no empty page at the end");
    let seen: Vec<String> = seen.into_iter().map(|(s, _)| s).collect();
    let ledger: Value = app.get("/api/player/ledger?limit=3", Some(&token)).await.json().await.unwrap();
    let summons: Vec<&str> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "summon")
        .map(|e| e["ref_id"].as_str().unwrap())
        .collect();
    assert_eq!(summons.first().copied(), seen.first().map(std::string::String::as_str), "newest summon first in both");
    assert_eq!(app.get("/api/gacha/history?cursor=zz", Some(&token)).await.status(), 422);
}

on_both_stores!(
    prices_are_the_published_ones,
    bad_summons_are_refused_and_change_nothing,
    concurrent_ten_pulls_spend_the_wallet_exactly,
    one_key_twenty_times_charges_once,
    history_pages_newest_first,
);

#[tokio::test]
async fn rates_are_disclosed_from_the_engine_tables() {
    let app = TestApp::spawn(StoreKind::Embedded).await.unwrap();
    let rates: Value = app.get("/api/gacha/banners/celestial_descent/rates", None).await.json().await.unwrap();
    let consolidated = rates["consolidated"].as_array().unwrap();
    let total: f64 = consolidated.iter().map(|r| r["consolidated_rate"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9);
    let curve = rates["per_pull_curve"].as_array().unwrap();
    assert_eq!(curve.len(), 80);
    assert!((curve[65]["probabilities"]["UR"].as_f64().unwrap() - 0.082).abs() < 1e-12, "66th pull 8.2%");
    assert_eq!(curve[79]["probabilities"]["UR"], 1.0);
    let f = &rates["featured_expectation"];
    assert!(f["expected_pulls"].as_f64().unwrap() > 60.0 && f["expected_pulls"].as_f64().unwrap() < 160.0);
    // The duplicate rule is disclosed from the shard table the engine uses.
    for r in divine_heroes::game::catalog::Rarity::ALL {
        assert_eq!(rates["rules"]["duplicate_shards"][r.label()], r.duplicate_shards(), "{}", r.label());
        let said = format!("{} {}", r.label(), r.duplicate_shards());
        assert!(rates["rules"]["duplicates"].as_str().unwrap().contains(&said), "{said}");
    }
    // Per item: the featured hero at two thirds of the URs (the guarantee), every
    // item summing to one; pulls and currency to the first featured hero, priced
    // for a buyer of 10-pulls as they are paid.
    let items = rates["items"].as_array().unwrap();
    let total: f64 = items.iter().map(|i| i["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9);
    let featured = items.iter().find(|i| i["item"] == "aethon_the_celestial_blade").unwrap();
    assert_eq!((featured["featured"].as_bool(), featured["percent"].as_str()), (Some(true), Some("1.4104%")));
    assert_eq!(rates["featured_percent"], "1.4104%");
    let to_featured = rates["milestones"].as_array().unwrap().iter().find(|m| m["what"] == "a featured hero").unwrap();
    let ten_only = to_featured["cost_ten_pulls_only"]["mean"].as_f64().unwrap();
    assert!((ten_only - 20_298.67).abs() < 0.01, "{ten_only}");
    assert_eq!(to_featured["pulls"]["max"], 160);
    assert!(rates["precision"].as_str().unwrap().contains("4 decimal places"));
    // The table's version and dates; summons name the version that served them.
    assert_eq!((rates["version"].as_u64(), rates["effective_from"].as_str()), (Some(1), Some("2026-11-15T00:00:00Z")));
    assert_eq!(
        (rates["starts_at"].as_str(), rates["ends_at"].as_str()),
        (Some("2026-11-15T00:00:00Z"), Some("2027-01-15T00:00:00Z"))
    );
    assert_eq!(app.get("/api/gacha/banners/nope/rates", None).await.status(), 404);

    let (token, _) = app.register("Looker").await;
    let banners: Value = app.get("/api/gacha/banners", Some(&token)).await.json().await.unwrap();
    let premium = banners["items"].as_array().unwrap().iter().find(|b| b["id"] == "premium").unwrap();
    assert_eq!((premium["cost_single"].as_i64(), premium["cost_ten"].as_i64()), (Some(300), Some(2700)));
    assert_eq!(premium["pity"]["since_pity"], 0);
    let anonymous: Value = app.get("/api/gacha/banners", None).await.json().await.unwrap();
    assert!(anonymous["items"][0].get("pity").is_none());
}

/// Pity is kept per banner kind (GAME.md: per banner type): the count and the
/// featured guarantee a player built on one limited banner carry over to the
/// next, dated after it. The player's record starts as a store from before
/// this rule left it, with the counters under the old banner's id: they move
/// to the kind on the first read and write.
async fn pity_and_the_guarantee_carry_to_the_next_limited_banner(kind: StoreKind) {
    use chrono::{TimeZone, Utc};
    use divine_heroes::game::player::{PityState, Player};
    use divine_heroes::platform::clock::{Clock, ManualClock};
    use divine_heroes::platform::config::Role;
    use std::sync::Arc;

    // The shipped tables plus a second limited banner after Celestial Descent.
    let data = crate::common::game_data_with(|banners| {
        let start = banners.find("[[banner]]\nid = \"celestial_descent\"").expect("the limited banner");
        let rerun = banners[start..]
            .replace("celestial_descent", "seraphic_rerun")
            .replace("Celestial Descent", "Seraphic Rerun")
            .replace("2026-11-15T00:00:00Z", "2027-01-15T00:00:00Z")
            .replace("2027-01-15T00:00:00Z\"\nfeatured", "2027-03-01T00:00:00Z\"\nfeatured")
            .replace("aethon_the_celestial_blade", "seraphiel_the_radiant");
        format!("{banners}\n{rerun}")
    });

    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap());
    let dir = data.path().to_path_buf();
    let Some(app) = TestApp::spawn_with(kind, Role::All, move |s| s.game_data_dir = dir, Arc::new(clock.clone())).await
    else {
        return;
    };
    let (token, id) = app.register("Faithful").await;
    app.set_balance(&id, Currency::Crystals, 3000).await;
    // 79 pulls into Celestial Descent with the guarantee held, kept by banner id.
    crate::common::direct_write(&app.state.store, &id, clock.now(), |p: &mut Player| {
        p.pity.clear();
        p.pity.insert("celestial_descent".into(), PityState { since_pity: 79, featured_guaranteed: true });
    })
    .await;

    let pity_of = |pity: &Value, banner: &str| {
        pity["items"].as_array().unwrap().iter().find(|b| b["banner_id"] == banner).cloned().unwrap()
    };
    let pity: Value = app.get("/api/gacha/pity", Some(&token)).await.json().await.unwrap();
    for banner in ["celestial_descent", "seraphic_rerun"] {
        let b = pity_of(&pity, banner);
        assert_eq!((b["kind"].as_str(), b["pulls_since_pity"].as_u64()), (Some("limited"), Some(79)), "{b}");
        assert_eq!(b["featured_guaranteed"], true, "{b}");
    }
    assert_eq!(pity_of(&pity, "premium")["pulls_since_pity"], 0, "other kinds keep their own count");
    let rates: Value = app.get("/api/gacha/banners/seraphic_rerun/rates", None).await.json().await.unwrap();
    let rule = rates["rules"]["pity_carry_over"].as_str().unwrap();
    assert!(rule.contains("celestial_descent") && rule.contains("carries over"), "{rule}");

    // Celestial Descent ends; the rerun opens. Its first pull is the 80th.
    clock.advance(chrono::Duration::days(60));
    let token = app.login("Faithful").await;
    let ended = app.summon(&token, "celestial_descent", 1, "too-late").await;
    assert_eq!(ended.status(), 409, "the first limited banner has ended");
    let r = app.summon(&token, "seraphic_rerun", 1, "eightieth").await;
    assert_eq!(r.status(), 200);
    let receipt: Value = r.json().await.unwrap();
    let pull = &receipt["results"][0];
    assert_eq!((pull["category"].as_str(), pull["pity_triggered"].as_bool()), (Some("UR"), Some(true)), "{pull}");
    assert_eq!(pull["featured"], true, "the guarantee held on the old banner gives the new one's featured hero");
    let hero = pull["grant"]["hero_id"].as_str().unwrap();
    assert_eq!(hero, "seraphiel_the_radiant");
    assert_eq!(receipt["pity_after"], json!({"since_pity": 0, "featured_guaranteed": false}));
    assert_eq!(receipt["rates_version"], 1, "the receipt names the table version that served it");
    let stored = app.player(&id).await;
    assert!(stored.pity.contains_key("limited") && !stored.pity.contains_key("celestial_descent"), "{:?}", stored.pity);
}

on_both_stores!(pity_and_the_guarantee_carry_to_the_next_limited_banner);

/// The banner list follows the clock: a limited banner leaves it the moment it
/// ends (it was cached in Redis with its date filter for five minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_list_drops_a_banner_the_moment_it_ends() {
    use chrono::TimeZone;
    use divine_heroes::platform::clock::ManualClock;
    let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2027, 1, 14, 23, 59, 30).unwrap());
    let on_redis = TestApp::spawn_on_redis_with_clock(StoreKind::Embedded, None, std::sync::Arc::new(clock.clone()));
    let Some(app) = on_redis.await else { return };
    let listed = |v: &Value| v["items"].as_array().unwrap().iter().any(|b| b["id"] == "celestial_descent");
    let before: Value = app.get("/api/gacha/banners", None).await.json().await.unwrap();
    assert!(listed(&before));
    clock.advance(chrono::Duration::seconds(31));
    let after: Value = app.get("/api/gacha/banners", None).await.json().await.unwrap();
    assert!(!listed(&after), "ended at 2027-01-15T00:00:00Z");
}

/// A player's monthly cap on crystals spent on summons holds under concurrent
/// summons (checked in each summon's own write), loosens only after its
/// cooling-off, and does not count coins; an account marked as a minor's by an
/// operator cannot summon at all, and a refused summon charges nothing.
async fn spending_cap_and_minor_bar_hold_in_the_summon_write(kind: StoreKind) {
    use chrono::TimeZone;
    let at = chrono::Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
    let Some((app, clock)) = crate::common::app_at(kind, at).await else { return };
    let (token, id) = app.register("Careful").await;
    app.set_balance(&id, Currency::Crystals, 10_000).await;
    app.set_balance(&id, Currency::Coins, 5_000).await;
    let cap = |c: Value| {
        app.http
            .put(app.url("/api/player/spending-cap"))
            .bearer_auth(&token)
            .json(&json!({"monthly_crystals": c}))
            .send()
    };
    let r = cap(json!(3000)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["monthly_cap"], 3000);

    let keys: Vec<String> = (0..20).map(|i| format!("capped-{i}")).collect();
    let results = join_all(keys.iter().map(|k| app.summon(&token, "premium", 1, k))).await;
    let mut codes = BTreeMap::new();
    for r in results {
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        *codes.entry((status, body["error"]["code"].as_str().unwrap_or("").to_string())).or_insert(0) += 1;
    }
    assert_eq!(codes.get(&(200, String::new())), Some(&10), "exactly 3000 / 300 summons pass: {codes:?}");
    assert_eq!(codes.get(&(409, "SPENDING_CAP_REACHED".to_string())), Some(&10), "{codes:?}");
    let p = app.player(&id).await;
    assert_eq!((p.balances.crystals, p.spending.spent), (7_000, 3_000), "refused summons charged nothing");
    assert_eq!(app.summon(&token, "standard", 1, "coins-are-not-capped").await.status(), 200);

    // Raising waits out a day; the view says when.
    let r = cap(json!(6000)).await.unwrap();
    let view: Value = r.json().await.unwrap();
    assert_eq!((view["monthly_cap"].as_i64(), view["pending"]["monthly_cap"].as_i64()), (Some(3000), Some(6000)));
    assert_eq!(app.summon(&token, "premium", 1, "still-capped").await.status(), 409);
    clock.advance(chrono::Duration::hours(25));
    let token = app.login("Careful").await;
    assert_eq!(app.summon(&token, "premium", 1, "after-the-wait").await.status(), 200);
    let me: Value = app.get("/api/player", Some(&token)).await.json().await.unwrap();
    assert_eq!((me["spending"]["monthly_cap"].as_i64(), me["spending"]["spent"].as_i64()), (Some(6000), Some(3300)));
    let negative = app.http.put(app.url("/api/player/spending-cap")).bearer_auth(&token);
    assert_eq!(negative.json(&json!({"monthly_crystals": -5})).send().await.unwrap().status(), 422);

    // An operator marks the account as a minor's: nothing more is spent.
    divine_heroes::ops::set_minor(&app.writer(), "careful", true).await.unwrap();
    let before = app.player(&id).await.balances;
    let r = app.summon(&token, "standard", 1, "barred").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "SUMMONS_BARRED");
    assert_eq!(app.player(&id).await.balances, before);
    divine_heroes::ops::set_minor(&app.writer(), "careful", false).await.unwrap();
    assert_eq!(app.summon(&token, "standard", 1, "allowed-again").await.status(), 200);
}

on_both_stores!(spending_cap_and_minor_bar_hold_in_the_summon_write);
