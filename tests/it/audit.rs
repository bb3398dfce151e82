//! `divine-heroes audit` against a real day of play: every check passes after
//! it, and each check names what a hand-made inconsistency broke.

use std::sync::Arc;

use chrono::Duration;
use divine_heroes::game::economy::Currency;
use divine_heroes::game::player::{Attachment, Player, STARTER_HEROES};
use divine_heroes::platform::clock::Clock;
use divine_heroes::platform::config::Role;
use serde_json::{json, Value};

use crate::common::{app_at_fixed_time, audit, direct_write, game_data_with, StoreKind, TestApp};

/// One scripted day of a player who does everything: summons on three banners
/// (singles and tens, one repeated with its key), campaign fights and a sweep, a
/// level-up and a promotion, a team change, idle and daily claims, a mail
/// claim, arena challenges, a logout and a password change. The audit then
/// checks every ledger chain, summon, hero and idempotency answer, and finds
/// nothing wrong.
async fn the_audit_passes_after_a_players_day(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (mut token, id) = app.register("Dayplayer").await;
    app.register("Rival").await;
    app.set_balance(&id, Currency::Crystals, 60_000).await;
    app.set_balance(&id, Currency::Coins, 40_000).await;
    app.set_balance(&id, Currency::DivineEssence, 30).await;
    app.set_balance(&id, Currency::Gold, 2_000_000).await;

    let mut key = 0;
    let mut next_key = || {
        key += 1;
        format!("day-{key}")
    };
    for (banner, count, times) in [("premium", 10, 6), ("premium", 1, 3), ("standard", 10, 2), ("divine", 1, 5)] {
        for _ in 0..times {
            let r = app.summon(&token, banner, count, &next_key()).await;
            assert_eq!(r.status(), 200, "{banner} x{count}: {}", r.text().await.unwrap());
        }
    }
    let replay = app.summon(&token, "premium", 10, "day-1").await;
    assert_eq!(replay.status(), 200, "a repeated key answers the first summon again");

    for stage in 1..=3 {
        let r = app
            .post(&format!("/api/battle/campaign/1/{stage}/fight"), Some(&token), Some(&next_key()), json!({}))
            .await;
        assert_eq!(r.status(), 200, "fight 1-{stage}");
    }
    let sweep = app.post("/api/battle/campaign/1/1/sweep", Some(&token), Some(&next_key()), json!({"times": 2})).await;
    assert!(matches!(sweep.status().as_u16(), 200 | 409), "a sweep, or a refusal without 3 stars");

    let heroes: Value = app.get("/api/heroes", Some(&token)).await.json().await.unwrap();
    let items = heroes["items"].as_array().unwrap();
    assert!(items.len() > STARTER_HEROES.len(), "the summons granted heroes");
    let hero = |i: usize| items[i]["hero_id"].as_str().unwrap().to_string();
    let r = app
        .post(&format!("/api/heroes/{}/level-up", hero(0)), Some(&token), Some(&next_key()), json!({"levels": 5}))
        .await;
    assert_eq!(r.status(), 200);
    let p = app.player(&id).await;
    let promotable = p.heroes.values().find(|h| h.shards >= 20).map(|h| h.hero_id.clone());
    if let Some(h) = &promotable {
        let r = app.post(&format!("/api/heroes/{h}/promote"), Some(&token), Some(&next_key()), json!({})).await;
        assert_eq!(r.status(), 200, "promote {h}");
    }
    let team: Vec<Option<String>> = (0..6).map(|i| items.get(i).map(|_| hero(i))).collect();
    let r = app.http.put(app.url("/api/team")).bearer_auth(&token).json(&json!({"slots": team})).send().await.unwrap();
    assert_eq!(r.status(), 200);

    clock.advance(Duration::hours(8));
    token = app.login("Dayplayer").await;
    assert_eq!(app.post("/api/idle/claim", Some(&token), Some(&next_key()), json!({})).await.status(), 200);
    assert_eq!(app.post("/api/daily-login/claim", Some(&token), Some(&next_key()), json!({})).await.status(), 200);
    let draft = divine_heroes::ops::MailDraft {
        subject: "Maintenance".into(),
        body: "Sorry for the wait".into(),
        attachments: vec![Attachment { currency: Currency::Crystals, amount: 500 }],
        expiry_days: 7,
    };
    divine_heroes::ops::send_mail(
        &app.writer(),
        divine_heroes::ops::Recipients::One("Dayplayer".into()),
        draft,
        clock.now(),
    )
    .await
    .unwrap();
    let mail: Value = app.get("/api/mail", Some(&token)).await.json().await.unwrap();
    let mail_id = mail["items"][0]["id"].as_str().unwrap().to_string();
    let r = app.post(&format!("/api/mail/{mail_id}/claim"), Some(&token), Some(&next_key()), json!({})).await;
    assert_eq!(r.status(), 200);

    for _ in 0..2 {
        let offer: Value = app.get("/api/battle/arena/opponents", Some(&token)).await.json().await.unwrap();
        let opponent = offer["items"][0]["opponent_id"].as_str().unwrap().to_string();
        let r = app
            .post("/api/battle/arena/challenge", Some(&token), Some(&next_key()), json!({"opponent_id": opponent}))
            .await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(app.post("/api/auth/logout", Some(&token), None, json!({})).await.status(), 204);
    token = app.login("Dayplayer").await;
    let r = app
        .post(
            "/api/auth/password",
            Some(&token),
            None,
            json!({"old_password": "correct-horse-1", "new_password": "n3w-horse-2"}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.clean(), "{report}");
    assert_eq!(report.players, 2);
    assert_eq!(report.summons, 16, "every summon checked once, the replay not counted again: {report}");
    assert_eq!(report.pulls, 6 * 10 + 3 + 2 * 10 + 5);
    assert_eq!(report.heroes_checked, 2, "both players' whole history is kept");
    assert!(report.idempotency_records >= 16 + 3 + 2 + 4, "{report}");
}

/// A write the rules never make, straight to the store (an operator's or a
/// bug's), with no currency change: the ledger cannot see it, the audit must.
async fn tamper(app: &TestApp, id: &str, f: impl Fn(&mut Player) + Send + Sync + 'static) {
    direct_write(&app.state.store, id, app.state.clock.now(), f).await;
}

/// Each hero check names the player and the hero: a granted hero gone, shards
/// no pull granted, a hero no pull granted.
async fn the_audit_names_heroes_and_shards_no_pull_explains(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (token, id) = app.register("Tampered").await;
    app.set_balance(&id, Currency::Crystals, 30_000).await;
    for i in 0..3 {
        assert_eq!(app.summon(&token, "premium", 10, &format!("t-{i}")).await.status(), 200);
    }
    assert!(audit(&app.state.store, clock.now()).await.clean());
    let p = app.player(&id).await;
    let pulled = p.heroes.keys().find(|h| !STARTER_HEROES.contains(&h.as_str())).expect("a pulled hero").clone();

    let starter = STARTER_HEROES[0].to_string();
    tamper(&app, &id, move |p| p.heroes.get_mut(&starter).unwrap().shards += 40).await;
    let report = audit(&app.state.store, clock.now()).await;
    assert_eq!(report.mismatches, 1, "{report}");
    assert!(report.examples[0].contains("Tampered") && report.examples[0].contains(STARTER_HEROES[0]), "{report}");
    assert!(report.examples[0].contains("shards"), "{report}");

    let gone = pulled.clone();
    tamper(&app, &id, move |p| {
        p.heroes.remove(&gone);
    })
    .await;
    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.examples.iter().any(|e| e.contains(&pulled) && e.contains("not owned")), "{report}");

    let catalog: Value = app.get("/api/heroes/catalog", None).await.json().await.unwrap();
    let p = app.player(&id).await;
    let never = catalog["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .find(|h| !p.heroes.contains_key(h) && *h != pulled)
        .expect("a hero not owned");
    let gift = never.clone();
    let at = clock.now();
    tamper(&app, &id, move |p| {
        let hero = divine_heroes::game::player::OwnedHero {
            hero_id: gift.clone(),
            level: 1,
            stars: 1,
            shards: 0,
            acquired_at: at,
            acquired_version: 0,
        };
        p.heroes.insert(gift.clone(), hero);
    })
    .await;
    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.examples.iter().any(|e| e.contains(&never) && e.contains("no pull granted")), "{report}");
}

on_both_stores!(the_audit_passes_after_a_players_day, the_audit_names_heroes_and_shards_no_pull_explains);

/// The shipped tables with the premium banner at version 2 and a single pull
/// at 250 crystals instead of 300 (`bump: false`: the same change left at
/// version 1), and with `archive`, version 1 kept in `banners-archive/`.
fn repriced_tables(bump: bool, archive: bool) -> tempfile::TempDir {
    let mut v1 = String::new();
    let dir = game_data_with(|banners| {
        let start = banners.find("[[banner]]\nid = \"premium\"").unwrap();
        let end = start + 1 + banners[start + 1..].find("[[banner]]").unwrap();
        v1 = banners[start..end].to_string();
        let v2 = v1.replacen("cost_single = 300", "cost_single = 250", 1);
        let v2 = if bump { v2.replacen("version = 1\n", "version = 2\n", 1) } else { v2 };
        format!("{}{v2}{}", &banners[..start], &banners[end..])
    });
    if archive {
        std::fs::create_dir(dir.path().join("banners-archive")).unwrap();
        std::fs::write(dir.path().join("banners-archive/premium-v1.toml"), v1).unwrap();
    }
    dir
}

/// A summon is priced by the table version that served it: with version 1
/// archived, summons it served are priced and pass after the price changed
/// under version 2; without the archive they are counted as not priced; the
/// same price change without a new version makes each of them a mismatch. The
/// rate disclosure serves the archived version on `?version=1`.
async fn the_audit_prices_a_summon_by_the_version_that_served_it(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (token, id) = app.register("Versioned").await;
    app.set_balance(&id, Currency::Crystals, 3_000).await;
    for i in 0..2 {
        assert_eq!(app.summon(&token, "premium", 1, &format!("v-{i}")).await.status(), 200);
    }
    let kept = crate::common::test_settings().retention().history;
    let audit_with = |bump: bool, archive: bool| {
        let store = app.state.store.clone();
        let now = clock.now();
        async move {
            let dir = repriced_tables(bump, archive);
            let data = divine_heroes::game::data::GameData::load(dir.path()).expect("valid tables");
            let scope = divine_heroes::audit::Scope { data: &data, now, history_kept: kept };
            divine_heroes::audit::audit(&store, &scope).await.unwrap()
        }
    };
    let archived = audit_with(true, true).await;
    assert!(archived.clean() && archived.unpriced_summons == 0, "{archived}");
    let forgotten = audit_with(true, false).await;
    assert!(forgotten.clean() && forgotten.unpriced_summons == 2, "{forgotten}");
    let silently = audit_with(false, false).await;
    assert_eq!(silently.mismatches, 2, "{silently}");
    assert!(silently.examples[0].contains("moved crystals"), "{silently}");

    let dir = repriced_tables(true, true);
    let path = dir.path().to_path_buf();
    let Some(served) =
        TestApp::spawn_with(kind, Role::All, move |s| s.game_data_dir = path, Arc::new(clock.clone())).await
    else {
        return;
    };
    let now: Value = served.get("/api/gacha/banners/premium/rates", None).await.json().await.unwrap();
    assert_eq!((now["version"].as_u64(), now["cost_single"].as_i64()), (Some(2), Some(250)));
    let then: Value = served.get("/api/gacha/banners/premium/rates?version=1", None).await.json().await.unwrap();
    assert_eq!((then["version"].as_u64(), then["cost_single"].as_i64()), (Some(1), Some(300)));
    assert_eq!(served.get("/api/gacha/banners/premium/rates?version=7", None).await.status(), 404);
}

on_both_stores!(the_audit_prices_a_summon_by_the_version_that_served_it);
