//! The abyss tower over real HTTP on both stores: floors in order, first-clear
//! rewards once, a loss that costs nothing, replayable battles, and the weekly
//! board (ties by who got there first) with its rewards mailed once.

use std::sync::Arc;

use crate::common::{app_at_fixed_time, audit, direct_write, game_data_editing, StoreKind, TestApp};
use chrono::{Duration, TimeZone};
use divine_heroes::game::player::STARTER_HEROES;
use divine_heroes::ops::Command;
use divine_heroes::platform::clock::{Clock, ManualClock};
use divine_heroes::platform::config::Role;
use divine_heroes::workers;
use serde_json::{json, Value};

async fn fight(app: &TestApp, token: &str, key: &str) -> Value {
    let r = app.post("/api/battle/tower/fight", Some(token), Some(key), json!({})).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Raises the starters to their level cap at 1 star (50; the audit explains
/// stars only by shards, so they stay): the first floors fall.
async fn strengthen(app: &TestApp, id: &str, now: chrono::DateTime<chrono::Utc>) {
    direct_write(&app.state.store, id, now, |p| {
        for h in STARTER_HEROES {
            let hero = p.heroes.get_mut(h).expect("a starter");
            hero.level = 50;
        }
    })
    .await;
}

/// One level-1 starter against five level-20 units of the shipped tower: a
/// loss, which costs nothing and opens no floor.
async fn a_tower_loss_costs_nothing(kind: StoreKind) {
    let Some((app, clock)) = app_at_fixed_time(kind).await else { return };
    let (weak, weak_id) = app.register("Fledgling").await;
    // One level-1 starter against five level-20 units: a loss, which costs nothing.
    direct_write(&app.state.store, &weak_id, clock.now(), |p| {
        p.team = vec![Some(STARTER_HEROES[0].into()), None, None, None, None, None];
    })
    .await;
    let before = app.player(&weak_id).await.balances;
    let lost = fight(&app, &weak, "weak-1").await;
    assert_eq!(
        (lost["winner"].as_str(), lost["best_floor"].as_u64()),
        (Some("defender"), Some(0)),
        "{}",
        lost["rewards"]
    );
    assert_eq!(app.player(&weak_id).await.balances, before, "a loss costs nothing");
}

async fn the_tower_climbs_in_order_and_pays_each_floor_once(kind: StoreKind) {
    // A tower of two level-1 units a floor, so that the starters at level 50 win every fight.
    let data = game_data_editing("battle.toml", |t| {
        t.replace("enemies = 5\n", "enemies = 2\n").replace("level_base = 20\n", "level_base = 1\n")
    });
    let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 26, 9, 30, 0).unwrap());
    let dir = data.path().to_path_buf();
    let tweak = move |s: &mut divine_heroes::platform::config::Settings| s.game_data_dir = dir;
    let Some(app) = TestApp::spawn_with(kind, Role::All, tweak, Arc::new(clock.clone())).await else { return };
    let (token, id) = app.register("Climber").await;
    strengthen(&app, &id, clock.now()).await;
    let view: Value = app.get("/api/battle/tower", Some(&token)).await.json().await.unwrap();
    assert_eq!((view["best_floor"].as_u64(), view["next"]["floor"].as_u64()), (Some(0), Some(1)), "{view}");
    assert_eq!(view["next"]["enemies"].as_array().unwrap().iter().filter(|e| !e.is_null()).count(), 2);
    let gold0 = app.player(&id).await.balances.gold;
    for f in 1..=3u64 {
        let won = fight(&app, &token, &format!("climb-{f}")).await;
        assert_eq!((won["floor"].as_u64(), won["winner"].as_str()), (Some(f), Some("attacker")), "{}", won["rewards"]);
        assert_eq!(won["rewards"]["gold"].as_i64(), Some(1000 * f as i64));
    }
    assert_eq!(app.player(&id).await.balances.gold, gold0 + 1000 + 2000 + 3000, "each floor's first clear once");
    let won: Value = fight(&app, &token, "climb-3").await; // the same key: the same answer, nothing new
    assert_eq!(won["floor"], 3);
    let replay: Value = app
        .get(&format!("/api/battle/replays/{}", won["battle_id"].as_str().unwrap()), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replay["log"], won["log"], "a tower battle replays");

    // The weekly board: a second climber reaches floor 3 later: ranked after.
    clock.advance(Duration::hours(1));
    let (late, late_id) = app.register("Latecomer").await;
    strengthen(&app, &late_id, clock.now()).await;
    for f in 1..=3 {
        fight(&app, &late, &format!("late-{f}")).await;
    }
    let view: Value = app.get("/api/battle/tower", Some(&late)).await.json().await.unwrap();
    let board: Vec<(&str, u64, u64)> = view["weekly_top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["username"].as_str().unwrap(), r["floor"].as_u64().unwrap(), r["rank"].as_u64().unwrap()))
        .collect();
    assert_eq!(board, vec![("Climber", 3, 1), ("Latecomer", 3, 2)], "ties: who got there first");
    assert_eq!(view["me"]["rank"], 2, "{view}");

    // The server's calendar closes only ended weeks: nothing is paid mid-week.
    let mut closed = None;
    assert_eq!(workers::close_tower_week_if_due(&app.state, &mut closed).await.unwrap(), 0);

    // Monday: the board starts over; closing the week mails rank 1 300 and rank 2 200 crystals, once.
    clock.advance(Duration::days(4));
    let token = app.login("Climber").await;
    let view: Value = app.get("/api/battle/tower", Some(&token)).await.json().await.unwrap();
    assert_eq!(
        (view["weekly_top"].as_array().map(Vec::len), view["best_floor"].as_u64()),
        (Some(0), Some(3)),
        "{view}"
    );
    // The server's own calendar pays the ended week (no operator needed), once
    // per process and week; the operator's command re-run after it pays no one.
    let paid = workers::close_tower_week_if_due(&app.state, &mut closed).await.unwrap();
    assert_eq!(paid, 2);
    assert_eq!(workers::close_tower_week_if_due(&app.state, &mut closed).await.unwrap(), 0);
    let again = Command::TowerCloseWeek.run(&app.writer(), clock.now()).await.unwrap();
    assert!(again.contains("mailed to 0 player"), "{again}");
    for (name, id, crystals) in [("Climber", &id, 300), ("Latecomer", &late_id, 200)] {
        let p = app.player(id).await;
        let mail =
            p.mailbox.iter().find(|m| m.id.starts_with("tower-week-")).unwrap_or_else(|| panic!("{name}'s mail"));
        assert_eq!(mail.attachments[0].amount, crystals, "{name}");
    }
    let report = audit(&app.state.store, clock.now()).await;
    assert!(report.clean(), "{report}");
}

crate::on_both_stores!(a_tower_loss_costs_nothing, the_tower_climbs_in_order_and_pays_each_floor_once);
