//! Guilds over real HTTP on both stores: founding, joining (open and by
//! approval), ranks and their powers, cooldowns, succession and dissolution,
//! donations and the guild shop; 30 members donating at once; 30 members
//! attacking one boss at once from two battle processes (MongoDB: two pods on
//! one database).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::common::{audit, direct_write, game_data_editing, open_store, StoreKind, TestApp};
use chrono::{Duration, TimeZone, Utc};
use divine_heroes::game::battle::{simulate, team_snapshot, RULES_VERSION};
use divine_heroes::game::data::GameData;
use divine_heroes::game::economy::Currency;
use divine_heroes::game::guilds::GuildTable;
use divine_heroes::game::player::{Player, STARTER_HEROES};
use divine_heroes::platform::clock::{Clock, ManualClock, SystemClock};
use divine_heroes::platform::config::{Role, Settings};
use futures_util::future::join_all;
use serde_json::{json, Value};

async fn post(app: &TestApp, token: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let r = app.post(path, Some(token), Some(key), body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn create(app: &TestApp, token: &str, name: &str, policy: &str) -> (u16, Value) {
    let body = json!({"name": name, "tag": "ab", "join_policy": policy});
    post(app, token, "/api/guilds", &format!("create-{}", name.replace(' ', "_")), body).await
}

fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or("")
}

/// Founding, joining, ranks, cooldowns, succession, dissolution, donations and the shop.
async fn guild_rules_hold_over_http(kind: StoreKind) {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap());
    let Some(app) = TestApp::spawn_with(kind, Role::All, |_| {}, Arc::new(clock.clone())).await else { return };
    let (lead, lead_id) = app.register("Leader").await;
    let (mut ann, ann_id) = app.register("Annie").await;
    let (mut dan, dan_id) = app.register("Danny").await;
    let (eve, _) = app.register("Evelyn").await;
    let (s, b) = create(&app, &lead, "Dawn Riders", "open").await;
    assert_eq!((s, code(&b)), (409, "INSUFFICIENT_FUNDS"), "100,000 gold: {b}");
    app.set_balance(&lead_id, Currency::Gold, 150_000).await;
    let (s, b) = create(&app, &lead, "Dawn Riders", "open").await;
    assert_eq!(s, 200, "{b}");
    let gid = b["guild"]["guild"]["guild_id"].as_str().unwrap().to_string();
    assert_eq!((b["balances_after"]["gold"].as_i64(), b["guild"]["my_rank"].as_str()), (Some(50_000), Some("leader")));
    app.set_balance(&ann_id, Currency::Gold, 150_000).await;
    let (s, b) = create(&app, &ann, "dawn riders", "open").await;
    assert_eq!((s, code(&b)), (409, "CONFLICT"), "names are unique case-insensitively: {b}");
    let bad = json!({"name": "Ok name", "tag": "a1", "join_policy": "open"});
    assert_eq!(post(&app, &ann, "/api/guilds", "bad-tag", bad).await.0, 422);
    let found: Value = app.get("/api/guilds?q=DAWN", Some(&eve)).await.json().await.unwrap();
    assert_eq!(found["items"][0]["guild_id"], gid.as_str(), "{found}");
    assert_eq!((found["items"][0]["members"].as_u64(), found["items"][0]["capacity"].as_u64()), (Some(1), Some(30)));

    for (t, k) in [(&ann, "j-ann"), (&dan, "j-dan")] {
        let (s, b) = post(&app, t, &format!("/api/guilds/{gid}/join"), k, json!({})).await;
        assert_eq!((s, b["action"].as_str()), (200, Some("joined")), "{b}");
    }
    // Ranks and their powers.
    let member = |id: &str, action: &str| format!("/api/guilds/mine/members/{id}/{action}");
    let (s, b) = post(&app, &ann, &member(&dan_id, "remove"), "ann-rm", json!({})).await;
    assert_eq!((s, code(&b)), (403, "FORBIDDEN"), "a member removes no one: {b}");
    assert_eq!(post(&app, &lead, &member(&ann_id, "promote"), "p-ann", json!({})).await.0, 200);
    let (s, b) = post(&app, &ann, &member(&dan_id, "promote"), "ann-p", json!({})).await;
    assert_eq!((s, code(&b)), (403, "FORBIDDEN"), "only the leader promotes: {b}");
    let (s, b) = post(&app, &ann, &member(&lead_id, "remove"), "ann-rm-lead", json!({})).await;
    assert_eq!((s, code(&b)), (403, "FORBIDDEN"), "an officer removes members only: {b}");
    let (s, b) = post(&app, &ann, &member(&dan_id, "remove"), "ann-rm-dan", json!({})).await;
    assert_eq!((s, b["action"].as_str()), (200, Some("removed")), "{b}");
    // A removed member waits 24 hours before joining any guild.
    app.set_balance(&dan_id, Currency::Gold, 150_000).await;
    let (s, b) = create(&app, &dan, "Dusk", "approval").await;
    assert_eq!((s, code(&b)), (409, "CONFLICT"), "{b}");
    clock.advance(Duration::hours(24));
    (ann, dan) = (app.login("Annie").await, app.login("Danny").await);
    let lead = app.login("Leader").await;
    let eve = app.login("Evelyn").await;
    let (s, b) = create(&app, &dan, "Dusk", "approval").await;
    assert_eq!(s, 200, "{b}");
    let dusk = b["guild"]["guild"]["guild_id"].as_str().unwrap().to_string();
    // A leader's powers stop at their own guild.
    let (s, b) = post(&app, &dan, &member(&ann_id, "remove"), "dan-rm-ann", json!({})).await;
    assert_eq!((s, code(&b)), (404, "NOT_FOUND"), "Ann is in another guild: {b}");
    // By approval: a request waits; another guild's officer cannot answer it.
    let (s, b) = post(&app, &eve, &format!("/api/guilds/{dusk}/join"), "j-eve", json!({})).await;
    assert_eq!((s, b["action"].as_str()), (200, Some("requested")), "{b}");
    let eve_id = app.state.store.player_by_username("evelyn").await.unwrap().unwrap().id;
    let approve = format!("/api/guilds/mine/requests/{eve_id}/approve");
    let (s, b) = post(&app, &ann, &approve, "ann-approve", json!({})).await;
    assert_eq!((s, code(&b)), (404, "NOT_FOUND"), "Dawn has no such request: {b}");
    let view: Value = app.get(&format!("/api/guilds/{dusk}"), Some(&ann)).await.json().await.unwrap();
    assert!(view["requests"].as_array().unwrap().is_empty(), "requests are for the guild's officers: {view}");
    let view: Value = app.get("/api/guilds/mine", Some(&dan)).await.json().await.unwrap();
    assert_eq!(view["requests"][0]["player_id"], eve_id.as_str());
    assert_eq!(post(&app, &dan, &approve, "dan-approve", json!({})).await.0, 200);

    // Donations: once a day, guild coins and xp; coins buy in the guild shop.
    let (s, b) = post(&app, &ann, "/api/guilds/mine/donate", "d1", json!({"tier": "gold"})).await;
    assert_eq!((s, b["coins"].as_i64(), b["guild_xp"].as_u64()), (200, Some(10), Some(10)), "{b}");
    let (s, b) = post(&app, &ann, "/api/guilds/mine/donate", "d2", json!({"tier": "gold"})).await;
    assert_eq!((s, code(&b)), (409, "LIMIT_REACHED"), "{b}");
    app.set_balance(&ann_id, Currency::GuildCoins, 1_000).await;
    let buy = |n: u32| json!({"offer_id": "guild_gold", "quantity": n});
    let (s, b) = post(&app, &ann, "/api/guilds/mine/shop/buy", "b1", buy(3)).await;
    assert_eq!((s, b["balances_after"]["guild_coins"].as_i64()), (200, Some(1_000 - 240)), "{b}");
    let (s, b) = post(&app, &ann, "/api/guilds/mine/shop/buy", "b2", buy(1)).await;
    assert_eq!((s, code(&b)), (409, "LIMIT_REACHED"), "{b}");
    let (s, _) = post(&app, &eve, "/api/guilds/mine/shop/buy", "b3", buy(1)).await;
    assert_eq!(s, 409, "Eve has no guild coins");

    // Succession: the leader's guild goes to the longest-standing officer; the
    // last one out dissolves it and frees its name.
    let (s, b) = post(&app, &lead, "/api/guilds/mine/leave", "l-lead", json!({})).await;
    assert_eq!((s, b["action"].as_str()), (200, Some("left")), "{b}");
    let view: Value = app.get("/api/guilds/mine", Some(&ann)).await.json().await.unwrap();
    assert_eq!(
        (view["my_rank"].as_str(), view["members"].as_array().map(Vec::len)),
        (Some("leader"), Some(1)),
        "{view}"
    );
    let (s, b) = post(&app, &ann, "/api/guilds/mine/leave", "l-ann", json!({})).await;
    assert_eq!((s, b["action"].as_str(), &b["guild"]), (200, Some("dissolved"), &Value::Null), "{b}");
    assert_eq!(app.get(&format!("/api/guilds/{gid}"), Some(&ann)).await.status(), 404);
    let found: Value = app.get("/api/guilds?q=dawn", Some(&eve)).await.json().await.unwrap();
    assert!(found["items"].as_array().unwrap().is_empty(), "{found}");
    clock.advance(Duration::hours(24));
    let ann = app.login("Annie").await;
    assert_eq!(create(&app, &ann, "Dawn Riders", "open").await.0, 200, "the name is free again");

    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.clean(), "{report}");
}

/// 30 members donating the large tier at once: guild xp and every donor's coins exact.
async fn thirty_members_donate_at_once(kind: StoreKind) {
    let Some(app) = TestApp::spawn_with(kind, Role::All, |_| {}, Arc::new(SystemClock)).await else { return };
    let (lead, lead_id) = app.register("Founder").await;
    app.set_balance(&lead_id, Currency::Gold, 100_000).await;
    let (s, b) = create(&app, &lead, "Thirty", "open").await;
    assert_eq!(s, 200, "{b}");
    let gid = b["guild"]["guild"]["guild_id"].as_str().unwrap().to_string();
    let mut members = vec![(lead, lead_id)];
    for (t, id) in app.players("donor", 30).await {
        members.push((t, id));
    }
    let late = members.pop().expect("a 31st player");
    for (t, _) in &members[1..] {
        assert_eq!(post(&app, t, &format!("/api/guilds/{gid}/join"), "j", json!({})).await.0, 200);
    }
    let (s, b) = post(&app, &late.0, &format!("/api/guilds/{gid}/join"), "j", json!({})).await;
    assert_eq!((s, code(&b)), (409, "LIMIT_REACHED"), "30 members at level 1: {b}");
    for (_, id) in &members {
        app.set_balance(id, Currency::Crystals, 1_000).await;
    }
    let donations = members.iter().map(|(t, _)| {
        let app = &app;
        async move { post(app, t, "/api/guilds/mine/donate", "big", json!({"tier": "crystals_large"})).await.0 }
    });
    let codes = join_all(donations).await;
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    // 30 × 200 xp = 6,000 = 1,000 + 2,000 + 3,000: level 4, 0 into it.
    let view: Value = app.get("/api/guilds/mine", Some(&members[0].0)).await.json().await.unwrap();
    assert_eq!((view["guild"]["level"].as_u64(), view["xp"].as_u64()), (Some(4), Some(0)), "{view}");
    assert_eq!(view["guild"]["capacity"], 36);
    for (_, id) in &members {
        let b = app.player(id).await.balances;
        assert_eq!((b.guild_coins, b.crystals), (250, 800), "{id}");
    }
    let report = audit(&app.state.store, Utc::now()).await;
    assert!(report.clean(), "{report}");
}

/// The average damage of a level-50 starter team against the shipped boss at
/// level 1, from the engine itself: the test's boss HP is set from it so that
/// 32 attacks fell it about twice.
fn average_damage() -> u64 {
    let data = GameData::builtin();
    let mut p = Player::new("probe".into(), "probe", String::new(), Utc::now());
    for h in STARTER_HEROES {
        p.heroes.get_mut(h).unwrap().level = 50;
    }
    let team = team_snapshot(&p, &data.catalog);
    let boss = {
        let mut b = vec![None; 6];
        b[0] = Some(data.guilds.boss_unit(1));
        b
    };
    let total: u64 = (0..20)
        .map(|seed| divine_heroes::game::guilds::damage_dealt(&simulate(RULES_VERSION, seed, &team, &boss)))
        .sum();
    (total / 20).max(1)
}

/// 30 members attack one boss at once, half through a second battle process
/// (on MongoDB, a second pod on the same database), then one of them twice
/// more (a fourth attack that day is refused): each boss's
/// HP lost equals the damage the attacks on it report, a fallen boss's HP is
/// exactly used up, and each damager of a fallen boss is mailed once.
async fn thirty_members_attack_one_boss_from_two_processes(kind: StoreKind) {
    let hp = average_damage() * 13;
    let data =
        game_data_editing("guilds.toml", |t| t.replace("hp_per_level = 5000000", &format!("hp_per_level = {hp}")));
    let table =
        GuildTable::from_toml("guilds.toml", &std::fs::read_to_string(data.path().join("guilds.toml")).unwrap())
            .expect("the edited table");
    assert_eq!(table.boss_hp(1), hp);
    let dir = data.path().to_path_buf();
    let tweak = |d: std::path::PathBuf| move |s: &mut Settings| s.game_data_dir = d;
    let Some(store) = open_store(kind).await else { return };
    let second = store.second_mongo_pod().await;
    let pod_a = TestApp::spawn_on_store(store, Role::All, tweak(dir.clone()), Arc::new(SystemClock), None);
    let pod_b =
        second.map(|s| TestApp::spawn_on_store(s, Role::Battle, tweak(dir.clone()), Arc::new(SystemClock), None));
    let (lead, lead_id) = pod_a.register("BossLead").await;
    pod_a.set_balance(&lead_id, Currency::Gold, 100_000).await;
    let (s, body) = create(&pod_a, &lead, "Boss Hunters", "open").await;
    assert_eq!(s, 200, "{body}");
    let gid = body["guild"]["guild"]["guild_id"].as_str().unwrap().to_string();
    let mut members = vec![(lead, lead_id)];
    for (t, id) in pod_a.players("hunter", 29).await {
        assert_eq!(post(&pod_a, &t, &format!("/api/guilds/{gid}/join"), "j", json!({})).await.0, 200);
        members.push((t, id));
    }
    for (_, id) in &members {
        direct_write(&pod_a.state.store, id, Utc::now(), |p| {
            for h in STARTER_HEROES {
                p.heroes.get_mut(h).expect("a starter").level = 50;
            }
        })
        .await;
    }
    // Every member attacks at once; then one member's other two attacks of the day.
    let mut plan: Vec<(usize, u32)> = (0..members.len()).map(|i| (i, 0)).collect();
    plan.extend([(0, 1), (0, 2)]);
    let attack = |i: usize, n: u32| {
        let app = if i % 2 == 1 { pod_b.as_ref().unwrap_or(&pod_a) } else { &pod_a };
        let token = &members[i].0;
        async move { post(app, token, "/api/battle/guild-boss/attack", &format!("atk-{n}"), json!({})).await }
    };
    let mut answers = join_all(plan[..members.len()].iter().map(|&(i, n)| attack(i, n))).await;
    for &(i, n) in &plan[members.len()..] {
        answers.push(attack(i, n).await);
    }
    assert!(answers.iter().all(|(s, _)| *s == 200), "{:?}", answers.iter().find(|(s, _)| *s != 200));
    let (_, extra) = post(&pod_a, &members[0].0, "/api/battle/guild-boss/attack", "atk-4", json!({})).await;
    assert_eq!(code(&extra), "LIMIT_REACHED", "three attacks a day: {extra}");

    // Per boss: damage reported, kills, and who damaged it.
    let mut by_boss: BTreeMap<u64, (u64, usize, BTreeSet<String>)> = BTreeMap::new();
    for ((i, _), (_, v)) in plan.iter().zip(&answers) {
        let o = &v["outcome"];
        let e = by_boss.entry(o["boss"].as_u64().unwrap()).or_default();
        e.0 += o["damage"].as_u64().unwrap();
        e.1 += usize::from(o["killed"].as_bool().unwrap());
        if o["damage"].as_u64() > Some(0) {
            e.2.insert(members[*i].1.clone());
        }
    }
    // The look at the boss also delivers rewards a crash could have left.
    let boss: Value = pod_a.get("/api/guilds/mine/boss", Some(&members[0].0)).await.json().await.unwrap();
    let current = boss["number"].as_u64().unwrap();
    assert!(current >= 2, "the boss fell at least once: {by_boss:?}");
    let players = join_all(members.iter().map(|(_, id)| pod_a.player(id))).await;
    for (n, (damage, kills, damagers)) in &by_boss {
        if *n < current {
            assert_eq!((*damage, *kills), (hp, 1), "boss {n}: its HP exactly used up, felled once");
            // Each damager of a fallen boss has its reward mail, once.
            let mail_id = format!("guild-boss-{gid}-{n}");
            let mailed: BTreeSet<String> = players
                .iter()
                .filter(|p| p.mailbox.iter().filter(|m| m.id == mail_id).count() == 1)
                .map(|p| p.id.clone())
                .collect();
            assert_eq!(&mailed, damagers, "boss {n}'s rewards");
            assert!(players.iter().all(|p| p.mailbox.iter().filter(|m| m.id == mail_id).count() <= 1));
        } else {
            assert_eq!(*kills, 0);
            assert_eq!(boss["hp"].as_u64(), Some(hp - damage), "boss {n}: HP lost = damage reported: {boss}");
            let board: u64 = boss["damage"].as_array().unwrap().iter().map(|r| r["damage"].as_u64().unwrap()).sum();
            assert_eq!(board, *damage, "the damage board sums the attacks");
        }
    }
    let report = audit(&pod_a.state.store, Utc::now()).await;
    assert!(report.clean(), "{report}");
    drop(pod_b);
}

crate::on_both_stores!(
    guild_rules_hold_over_http,
    thirty_members_donate_at_once,
    thirty_members_attack_one_boss_from_two_processes
);
