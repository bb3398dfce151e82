//! Heroes, level-ups, promotions and the team over real HTTP.

use std::sync::Arc;

use crate::common::{StoreKind, TestApp};
use divine_heroes::game::catalog::{power, stats_at};
use divine_heroes::game::player::Player;
use divine_heroes::store::{Effects, LedgerReason, Mutation, StoredResponse};
use serde_json::{json, Value};

async fn give_shards(app: &TestApp, player_id: &str, hero: &'static str, shards: u32) {
    let op: Mutation = Arc::new(move |p: &mut Player| {
        if let Some(h) = p.heroes.get_mut(hero) {
            h.shards = shards;
        }
        Ok(Effects {
            reason: LedgerReason::Adjustment,
            event: None,
            ref_id: String::new(),
            history: vec![],
            battles: vec![],
            response: StoredResponse::json(200, &json!({})).unwrap(),
            traceparent: None,
        })
    });
    app.state.store.mutate(player_id, None, app.state.clock.now(), op).await.unwrap();
}

async fn level_up_charges_the_rule_cost_and_raises_stats(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Trainer").await;
    let r = app.post("/api/heroes/marcus_the_shield/level-up", Some(&token), Some("lv-1"), json!({"levels": 4})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    // 100 + 25·L² for L = 1..4
    let cost = 125 + 200 + 325 + 500;
    assert_eq!(body["level_up"]["gold_spent"], cost);
    assert_eq!(body["gold_after"], 5000 - cost);
    let def = app.state.data.catalog.get("marcus_the_shield").unwrap();
    let stats = stats_at(def.base_stats(), 5, 1);
    assert_eq!(body["hero"]["stats"], json!(stats));
    assert_eq!(body["hero"]["power"], power(stats));
    // Replay: same answer, no second charge.
    let again: Value = app
        .post("/api/heroes/marcus_the_shield/level-up", Some(&token), Some("lv-1"), json!({"levels": 4}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, body);
    assert_eq!(app.player(&id).await.balances.gold, 5000 - cost);
    let ledger: Value = app.get("/api/player/ledger?limit=1", Some(&token)).await.json().await.unwrap();
    assert_eq!(ledger["items"][0]["reason"], "hero_level_up");
    assert_eq!(ledger["items"][0]["delta"], -cost);

    let poor =
        app.post("/api/heroes/marcus_the_shield/level-up", Some(&token), Some("lv-2"), json!({"levels": 40})).await;
    assert_eq!(poor.status(), 409);
    let e: Value = poor.json().await.unwrap();
    assert_eq!(e["error"]["code"], "INSUFFICIENT_FUNDS");
    assert_eq!(e["error"]["details"]["has"], 5000 - cost);
    let capped =
        app.post("/api/heroes/marcus_the_shield/level-up", Some(&token), Some("lv-3"), json!({"levels": 46})).await;
    assert_eq!(capped.status(), 409);
    assert_eq!(capped.json::<Value>().await.unwrap()["error"]["code"], "CONFLICT");
    let unknown = app.post("/api/heroes/nobody/level-up", Some(&token), Some("lv-4"), json!({"levels": 1})).await;
    assert_eq!(unknown.status(), 404);
    let not_owned =
        app.post("/api/heroes/apollyon_the_fallen/level-up", Some(&token), Some("lv-5"), json!({"levels": 1})).await;
    assert_eq!(not_owned.status(), 404);
    let zero =
        app.post("/api/heroes/marcus_the_shield/level-up", Some(&token), Some("lv-6"), json!({"levels": 0})).await;
    assert_eq!(zero.status(), 422);
}

async fn promotion_consumes_the_rule_shards(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Promoter").await;
    let r = app.post("/api/heroes/kai_the_tempest/promote", Some(&token), Some("p0"), json!({})).await;
    assert_eq!(r.status(), 409);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "INSUFFICIENT_SHARDS");
    assert_eq!(e["error"]["details"], json!({"hero_id": "kai_the_tempest", "needed": 20, "has": 0}));
    give_shards(&app, &id, "kai_the_tempest", 625).await;
    let mut spent = Vec::new();
    for star in 2..=6 {
        let r =
            app.post("/api/heroes/kai_the_tempest/promote", Some(&token), Some(&format!("p{star}")), json!({})).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["promotion"]["stars"], star);
        spent.push(body["promotion"]["shards_spent"].as_u64().unwrap());
    }
    assert_eq!(spent, vec![20, 40, 80, 160, 320]);
    assert_eq!(app.player(&id).await.heroes["kai_the_tempest"].shards, 5);
    let maxed = app.post("/api/heroes/kai_the_tempest/promote", Some(&token), Some("p7"), json!({})).await;
    assert_eq!(maxed.status(), 409);
}

async fn team_holds_owned_heroes_and_players_stay_apart(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (a, a_id) = app.register("Alpha").await;
    let (b, _) = app.register("Bravo").await;
    let put = |token: &str, slots: Value| {
        let req = app.http.put(app.url("/api/team")).bearer_auth(token.to_string()).json(&json!({"slots": slots}));
        async move { req.send().await.unwrap() }
    };
    let r = put(&a, json!(["kai_the_tempest", null, null, null, null, "marcus_the_shield"])).await;
    assert_eq!(r.status(), 200);
    let team: Value = app.get("/api/team", Some(&a)).await.json().await.unwrap();
    assert_eq!(team["slots"], json!(["kai_the_tempest", null, null, null, null, "marcus_the_shield"]));
    assert_eq!(put(&a, json!(["kai_the_tempest", "kai_the_tempest", null, null, null, null])).await.status(), 422);
    assert_eq!(put(&a, json!([null, null, null, null, null, null])).await.status(), 422);
    assert_eq!(put(&a, json!(["apollyon_the_fallen", null, null, null, null, null])).await.status(), 422);
    assert_eq!(put(&a, json!(["kai_the_tempest"])).await.status(), 422);
    // B's view and B's actions never touch A.
    let b_team: Value = app.get("/api/team", Some(&b)).await.json().await.unwrap();
    assert_eq!(b_team["slots"][0], "marcus_the_shield");
    app.post("/api/heroes/kai_the_tempest/level-up", Some(&b), Some("x"), json!({"levels": 1})).await;
    assert_eq!(app.player(&a_id).await.heroes["kai_the_tempest"].level, 1);
    let heroes: Value = app.get("/api/heroes", Some(&a)).await.json().await.unwrap();
    assert_eq!(heroes["items"].as_array().unwrap().len(), 3);
}

on_both_stores!(
    level_up_charges_the_rule_cost_and_raises_stats,
    promotion_consumes_the_rule_shards,
    team_holds_owned_heroes_and_players_stay_apart,
);

#[tokio::test]
async fn the_catalog_is_cacheable() {
    let app = TestApp::spawn(StoreKind::Embedded).await.unwrap();
    let r = app.get("/api/heroes/catalog", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 23);
    let again = app.http.get(app.url("/api/heroes/catalog")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
}
