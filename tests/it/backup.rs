//! `export` and `import`: a world moved from the embedded store to MongoDB and
//! back is the same world (records, ledgers, histories, idempotency records,
//! battles), the audit passes on each copy, a replay still answers from the
//! restored record, and a file cut short is refused before anything is written.

use std::path::Path;

use crate::common::{app_at_fixed_time, audit, open_store, StoreKind, TestApp};
use divine_heroes::backup::{export_file, import_file};
use divine_heroes::game::economy::Currency;
use divine_heroes::platform::clock::Clock;
use divine_heroes::platform::config::Role;
use divine_heroes::store::DynStore;
use serde_json::{json, Value};

/// The file's lines after the header (which names the store and the time).
fn body(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().skip(1).map(str::to_string).collect()
}

async fn export(store: &DynStore, path: &Path) -> divine_heroes::backup::Moved {
    export_file(store, path, &mut |_| {}).await.expect("export")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_moves_from_the_embedded_store_to_mongodb_and_back() {
    let Some((app, clock)) = app_at_fixed_time(StoreKind::Embedded).await else { return };
    let (token, id) = app.register("Traveller").await;
    app.set_balance(&id, Currency::Crystals, 6_000).await;
    app.set_balance(&id, Currency::DivineEssence, 10).await;
    for (i, (banner, count)) in
        [("premium", 10), ("premium", 1), ("divine", 10), ("standard", 1)].into_iter().enumerate()
    {
        assert_eq!(app.summon(&token, banner, count, &format!("s{i}")).await.status(), 200);
    }
    let fight = app.post("/api/battle/campaign/1/1/fight", Some(&token), Some("f1"), json!({})).await;
    assert_eq!(fight.status(), 200);
    let (other, _) = app.register("Homebody").await;
    assert_eq!(app.post("/api/daily-login/claim", Some(&other), Some("d1"), json!({})).await.status(), 200);
    let mail = divine_heroes::ops::Command::MailSend {
        to: None,
        all: true,
        subject: "Welcome".into(),
        body: "A gift".into(),
        attach: vec!["gold=500".into()],
    };
    mail.run(&app.writer(), clock.now()).await.unwrap();
    let code = divine_heroes::ops::Command::CodesCreate {
        code: "MOVED".into(),
        reward: "gold=100".into(),
        max_uses: 2,
        expires: None,
    };
    code.run(&app.writer(), clock.now()).await.unwrap();
    let redeemed = app.post("/api/codes/redeem", Some(&other), Some("c1"), json!({"code": "moved"})).await;
    assert_eq!(redeemed.status(), 200);
    let first_receipt: Value = app.summon(&token, "premium", 10, "s0").await.json().await.unwrap();
    // Shared documents: a friendship (two friend books), a guild with its name
    // claim and two memberships.
    let ask = app.post("/api/friends/requests", Some(&token), Some("f"), json!({"username": "Homebody"})).await;
    assert_eq!(ask.status(), 200);
    let accept = app.post(&format!("/api/friends/requests/{id}/accept"), Some(&other), Some("f"), json!({})).await;
    assert_eq!(accept.status(), 200);
    app.set_balance(&id, Currency::Gold, 100_000).await;
    let guild = json!({"name": "Movers", "tag": "mov", "join_policy": "open"});
    let founded: Value = app.post("/api/guilds", Some(&token), Some("g"), guild).await.json().await.unwrap();
    let gid = founded["guild"]["guild"]["guild_id"].as_str().unwrap().to_string();
    assert_eq!(app.post(&format!("/api/guilds/{gid}/join"), Some(&other), Some("j"), json!({})).await.status(), 200);

    let dir = tempfile::tempdir().unwrap();
    let source = app.state.store.clone();
    let first = dir.path().join("embedded.jsonl");
    let moved = export(&source, &first).await;
    assert_eq!(moved.players, 2);
    assert!(moved.rows > 20, "{moved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&first).unwrap().permissions().mode() & 0o077, 0, "owner only");
    }

    let Some(mongo) = open_store(StoreKind::Mongo).await else { return };
    assert_eq!(import_file(&mongo.store, &first, &mut |_| {}).await.unwrap(), moved);
    let second = dir.path().join("mongodb.jsonl");
    export(&mongo.store, &second).await;
    assert_eq!(body(&first), body(&second), "MongoDB holds exactly what the embedded store held");

    let back = open_store(StoreKind::Embedded).await.unwrap();
    import_file(&back.store, &second, &mut |_| {}).await.unwrap();
    // Run again: rows are replaced, not doubled.
    import_file(&back.store, &second, &mut |_| {}).await.unwrap();
    let third = dir.path().join("back.jsonl");
    export(&back.store, &third).await;
    assert_eq!(body(&first), body(&third), "and back again, the same");
    for store in [&source, &mongo.store, &back.store] {
        let report = audit(store, clock.now()).await;
        assert!(report.clean(), "{report}");
        let p = store.player_by_username("traveller").await.unwrap().expect("found by name");
        assert_eq!(p, source.player_by_id(&id).await.unwrap().unwrap());
        let rank = store.rank(divine_heroes::store::Board::Power, &id).await.unwrap().unwrap();
        assert_eq!(rank.score, p.scores.power, "the board row came with the player");
    }

    // The restored world serves: the first summon's key still answers its receipt,
    // and the code's count came along: its holder is known, one use is left.
    let restored = TestApp::spawn_on_store(back, Role::All, |_| {}, std::sync::Arc::new(clock.clone()), None);
    let other = restored.login("Homebody").await;
    let again = restored.post("/api/codes/redeem", Some(&other), Some("c2"), json!({"code": "moved"})).await;
    assert_eq!(again.json::<Value>().await.unwrap()["error"]["code"], "CODE_ALREADY_REDEEMED");
    let token = restored.login("Traveller").await;
    assert_eq!(
        restored.post("/api/codes/redeem", Some(&token), Some("c3"), json!({"code": "MOVED"})).await.status(),
        200
    );
    let codes = restored.state.store.codes().await.unwrap();
    assert_eq!((codes[0].uses, codes[0].max_uses), (2, 2), "the last use taken");
    let replay = restored.summon(&token, "premium", 10, "s0").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first_receipt);
    let friends: Value = restored.get("/api/friends", Some(&token)).await.json().await.unwrap();
    assert_eq!(friends["friends"][0]["username"], "Homebody", "{friends}");
    let mine: Value = restored.get("/api/guilds/mine", Some(&other)).await.json().await.unwrap();
    assert_eq!((mine["guild"]["name"].as_str(), mine["members"].as_array().map(Vec::len)), (Some("Movers"), Some(2)));
    let found: Value = restored.get("/api/guilds?q=mov", Some(&other)).await.json().await.unwrap();
    assert_eq!(found["items"][0]["guild_id"], gid.as_str(), "the name claim came too");
    let battle = first_fight_battle(&fight.json::<Value>().await.unwrap());
    let r = restored.get(&format!("/api/battle/replays/{battle}"), Some(&token)).await;
    assert_eq!(r.status(), 200, "the battle record came too");
}

fn first_fight_battle(fight: &Value) -> String {
    fight["battle_id"].as_str().expect("a battle id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_cut_short_is_refused_before_anything_is_written() {
    let Some(app) = TestApp::spawn(StoreKind::Embedded).await else { return };
    let (token, id) = app.register("Halfway").await;
    app.set_balance(&id, Currency::Crystals, 3_000).await;
    assert_eq!(app.summon(&token, "premium", 10, "k").await.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.jsonl");
    export(&app.state.store, &whole).await;
    let text = std::fs::read_to_string(&whole).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n")).unwrap();
    let damaged = dir.path().join("damaged.jsonl");
    std::fs::write(&damaged, text.replacen("\"type\":\"ledger\"", "\"type\":\"ledgr\"", 1)).unwrap();
    let target = open_store(StoreKind::Embedded).await.unwrap();
    for bad in [&cut, &damaged] {
        let err = import_file(&target.store, bad, &mut |_| {}).await.unwrap_err();
        assert!(format!("{err:#}").contains("not a whole export"), "{err:#}");
    }
    assert!(target.store.player_ids(None, 10).await.unwrap().is_empty(), "nothing was written");
}
