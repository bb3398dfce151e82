//! Provably fair pulls over HTTP: the commitment is published before the pulls
//! it serves, every receipt names it, rotation reveals a seed that hashes to
//! it, and each summon re-derives from it exactly.

use sha2::{Digest, Sha256};

use crate::common::{StoreKind, TestApp};
use divine_heroes::game::economy::Currency;
use serde_json::{json, Value};

fn kind_of<'a>(fairness: &'a Value, kind: &str) -> &'a Value {
    fairness["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == kind).unwrap()
}

async fn verify(app: &TestApp, token: &str, summon_id: &str, seed: Option<&str>) -> (u16, Value) {
    let seed = seed.map(|s| format!("&server_seed={s}")).unwrap_or_default();
    let r = app.get(&format!("/api/gacha/verify?summon_id={summon_id}{seed}"), Some(token)).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn every_summon_rederives_from_its_revealed_seed(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Skeptic").await;
    app.set_balance(&id, Currency::Crystals, 3_300).await; // a 10-pull, a single, and one after the rotation
    app.set_balance(&id, Currency::DivineEssence, 30).await;

    // Published before any pull: one commitment per banner kind, nonce 0.
    let before: Value = app.get("/api/gacha/fairness", Some(&token)).await.json().await.unwrap();
    let premium = kind_of(&before, "premium").clone();
    assert_eq!(premium["commitment"].as_str().unwrap().len(), 64);
    assert_eq!((premium["next_nonce"].clone(), premium["client_seed"].clone()), (json!(0), json!("default")));
    assert_ne!(premium["commitment"], kind_of(&before, "divine")["commitment"], "each kind has its own seed");

    let mut premium_ids = vec![];
    for (i, count) in [10, 1].into_iter().enumerate() {
        let receipt: Value = app.summon(&token, "premium", count, &format!("p{i}")).await.json().await.unwrap();
        let proof = &receipt["fairness"];
        assert_eq!(proof["commitment"], premium["commitment"], "the published seed served it");
        assert_eq!(proof["nonce"], json!(i * 10), "nonces follow on: 0..10, then 10");
        premium_ids.push(receipt["summon_id"].as_str().unwrap().to_string());
    }
    let mut divine_ids = vec![];
    for i in 0..3 {
        let receipt: Value = app.summon(&token, "divine", 10, &format!("d{i}")).await.json().await.unwrap();
        divine_ids.push(receipt["summon_id"].as_str().unwrap().to_string());
    }

    // Still secret: not verifiable yet.
    let (status, body) = verify(&app, &token, &premium_ids[0], None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("SEED_NOT_REVEALED")), "{body}");

    // Rotation reveals the seed; its SHA-256 is the commitment published before.
    let r = app
        .post(
            "/api/gacha/fairness/rotate",
            Some(&token),
            Some("r1"),
            json!({"kind": "premium", "client_seed": "lucky-7"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let rotation: Value = r.json().await.unwrap();
    let revealed = &rotation["revealed"];
    let seed_hex = revealed["server_seed"].as_str().unwrap().to_string();
    let hashed = hex::encode(Sha256::digest(hex::decode(&seed_hex).unwrap()));
    assert_eq!(hashed, premium["commitment"].as_str().unwrap());
    assert_eq!(revealed["pulls"], 11);
    assert_eq!(rotation["active"]["client_seed"], "lucky-7");
    assert_eq!(rotation["active"]["next_nonce"], 0);
    assert_ne!(rotation["active"]["commitment"], premium["commitment"]);

    for summon_id in &premium_ids {
        let (status, v) = verify(&app, &token, summon_id, None).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["server_seed"], seed_hex.as_str());
        assert!(v["commitment_matches"].as_bool().unwrap() && v["results_match"].as_bool().unwrap(), "{v}");
        assert_eq!(v["derived"], v["recorded"]);
    }
    // A seed that is not the committed one gives other pulls and fails the check.
    let (status, v) = verify(&app, &token, &premium_ids[0], Some(&"ab".repeat(32))).await;
    assert_eq!(status, 200);
    assert_eq!((v["commitment_matches"].as_bool(), v["results_match"].as_bool()), (Some(false), Some(false)));
    assert_ne!(v["derived"], v["recorded"]);
    let (status, _) = verify(&app, &token, &premium_ids[0], Some("not-hex")).await;
    assert_eq!(status, 422);
    let (status, _) = verify(&app, &token, "no-such-summon", None).await;
    assert_eq!(status, 404);

    // The next summon uses the new commitment and client seed from nonce 0.
    let r = app.summon(&token, "premium", 1, "after").await;
    assert_eq!(r.status(), 200);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["fairness"]["commitment"], rotation["active"]["commitment"], "{receipt}");
    assert_eq!(
        (receipt["fairness"]["client_seed"].clone(), receipt["fairness"]["nonce"].clone()),
        (json!("lucky-7"), json!(0))
    );

    // Divine filler picks among owned heroes: its summons re-derive too, each from
    // the heroes owned just before it.
    let r = app.post("/api/gacha/fairness/rotate", Some(&token), Some("r2"), json!({"kind": "divine"})).await;
    assert_eq!(r.status(), 200);
    // The same key again replays that rotation instead of revealing the next seed.
    let again = app.post("/api/gacha/fairness/rotate", Some(&token), Some("r2"), json!({"kind": "divine"})).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(app.player(&id).await.fairness.kind("divine").index, 1);
    for summon_id in &divine_ids {
        let (status, v) = verify(&app, &token, summon_id, None).await;
        assert_eq!(status, 200, "{v}");
        assert!(v["results_match"].as_bool().unwrap(), "{v}");
    }
    let listed: Value = app.get("/api/gacha/fairness", Some(&token)).await.json().await.unwrap();
    assert_eq!(kind_of(&listed, "premium")["revealed"][0]["server_seed"], seed_hex.as_str());

    // Another player cannot verify (or even find) this player's summons.
    let (other, _) = app.register("Snoop").await;
    let (status, _) = verify(&app, &other, &premium_ids[0], None).await;
    assert_eq!(status, 404);
}

async fn bad_rotations_are_refused(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Rotator").await;
    let before = app.player(&id).await;
    for body in [
        json!({"kind": "premium", "client_seed": "has space"}),
        json!({"kind": "premium", "client_seed": ""}),
        json!({"kind": "premium", "client_seed": "x".repeat(65)}),
        json!({"kind": "mythic"}),
        json!({"kind": "premium", "server_seed": "00"}),
    ] {
        let r = app.post("/api/gacha/fairness/rotate", Some(&token), Some("bad"), body.clone()).await;
        assert_eq!(r.status(), 422, "{body}");
        assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
    }
    assert_eq!(app.player(&id).await.fairness, before.fairness, "nothing rotated");
}

/// The shipped tables with premium at version 2 (URs far likelier) and its
/// version 1 archived: a summon claimed for the wrong version re-derives otherwise.
fn premium_reweighted() -> tempfile::TempDir {
    let mut v1 = String::new();
    let dir = crate::common::game_data_with(|banners| {
        let start = banners.find("[[banner]]\nid = \"premium\"").unwrap();
        let end = start + 1 + banners[start + 1..].find("[[banner]]").unwrap();
        v1 = banners[start..end].to_string();
        let v2 = v1
            .replacen("version = 1\n", "version = 2\n", 1)
            .replacen("weight_ppm = 850000", "weight_ppm = 10000", 1)
            .replacen("weight_ppm = 20000", "weight_ppm = 860000", 1);
        format!("{}{v2}{}", &banners[..start], &banners[end..])
    });
    std::fs::create_dir(dir.path().join("banners-archive")).unwrap();
    std::fs::write(dir.path().join("banners-archive/premium-v1.toml"), v1).unwrap();
    dir
}

/// 1,000 summons on random banners and counts, every one re-derived bit for bit
/// from its revealed seed; each ten-pull fails once its nonce, its seed or (on
/// premium) its table version is tampered with.
async fn a_thousand_summons_rederive_and_tampering_fails(kind: StoreKind) {
    use divine_heroes::game::gacha::engine::SummonRecord;
    use divine_heroes::verify::verify_record;
    use rand::{Rng, SeedableRng};
    let tables = premium_reweighted();
    let path = tables.path().to_path_buf();
    let clock = std::sync::Arc::new(divine_heroes::platform::clock::SystemClock);
    let Some(app) =
        TestApp::spawn_with(kind, divine_heroes::platform::config::Role::All, move |s| s.game_data_dir = path, clock)
            .await
    else {
        return;
    };
    let (token, id) = app.register("Thousand").await;
    for c in [Currency::Crystals, Currency::Coins, Currency::DivineEssence] {
        app.set_balance(&id, c, 1_000_000_000).await;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000);
    for i in 0..1000 {
        let banner = ["standard", "premium", "divine"][rng.gen_range(0..3)];
        let count = if rng.gen_bool(0.5) { 10 } else { 1 };
        let r = app.summon(&token, banner, count, &format!("s{i}")).await;
        assert_eq!(r.status(), 200, "{banner} x{count}");
    }
    for (i, kind) in ["standard", "premium", "divine"].into_iter().enumerate() {
        let r =
            app.post("/api/gacha/fairness/rotate", Some(&token), Some(&format!("rot{i}")), json!({"kind": kind})).await;
        assert_eq!(r.status(), 200);
    }

    let player = app.player(&id).await;
    let data = &app.state.data;
    let (mut verified, mut tampered) = (0, [0; 3]);
    let mut before = None;
    loop {
        let page = app.state.store.history(&id, 100, before).await.unwrap();
        for row in &page.items {
            let record: SummonRecord = serde_json::from_value(row.data.clone()).unwrap();
            let version = row.seq >> 8;
            let v = verify_record(data, &player, &record, version, None, false).unwrap();
            assert!(v.commitment_matches && v.results_match, "{}", serde_json::to_string(&v).unwrap());
            verified += 1;
            if record.results.len() < 10 {
                continue; // one pull may coincide with its neighbour's by chance; ten do not
            }
            let mut moved = record.clone();
            moved.fairness.as_mut().unwrap().nonce += 1;
            let v = verify_record(data, &player, &moved, version, None, false).unwrap();
            assert!(!v.results_match && v.derived != v.recorded, "a moved nonce re-derives otherwise");
            tampered[0] += 1;
            let v = verify_record(data, &player, &record, version, Some([0x5a; 32]), false).unwrap();
            assert!(!v.commitment_matches && !v.results_match && v.derived != v.recorded, "another seed");
            tampered[1] += 1;
            if record.banner_id == "premium" {
                assert_eq!(record.rates_version, Some(2));
                let mut old_table = record.clone();
                old_table.rates_version = Some(1);
                let v = verify_record(data, &player, &old_table, version, None, false).unwrap();
                assert!(!v.results_match, "another table version re-derives otherwise");
                tampered[2] += 1;
            }
        }
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(verified, 1000);
    assert!(tampered.iter().all(|&n| n > 50), "{tampered:?}");
    // The route answers the same for a few of them, found by summon id.
    let page = app.state.store.history(&id, 5, None).await.unwrap();
    for row in page.items {
        let summon_id = row.data["summon_id"].as_str().unwrap().to_string();
        let (status, v) = verify(&app, &token, &summon_id, None).await;
        assert_eq!((status, v["results_match"].as_bool()), (200, Some(true)), "{v}");
    }
}

on_both_stores!(
    every_summon_rederives_from_its_revealed_seed,
    bad_rotations_are_refused,
    a_thousand_summons_rederive_and_tampering_fails
);
