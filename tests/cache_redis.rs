//! The cache on a real Redis: hits are counted, and a write is never followed by
//! a stale read.

// Its own binary: it asserts exact deltas of process-wide counters, which tests
// running beside it in one process would move.
#[allow(unused_macros)]
#[path = "it/common/mod.rs"]
mod common;

use common::{StoreKind, TestApp};
use serde_json::{json, Value};

/// Sum of a counter's series whose labels contain `label` (e.g. `kind="catalog"`).
async fn counter(app: &TestApp, name: &str, label: &str) -> f64 {
    let text = app.get("/metrics/prometheus", None).await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

async fn redis_app(kind: StoreKind) -> Option<TestApp> {
    TestApp::spawn_on_redis(kind, None).await
}

async fn the_second_catalog_read_is_a_hit(kind: StoreKind) {
    let Some(app) = redis_app(kind).await else { return };
    let first = app.get("/api/heroes/catalog", None).await.text().await.unwrap();
    let hits = counter(&app, "divine_heroes_cache_hit", "kind=\"catalog\"").await;
    let second = app.get("/api/heroes/catalog", None).await.text().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(counter(&app, "divine_heroes_cache_hit", "kind=\"catalog\"").await, hits + 1.0);
    let ready: Value = app.get("/health/ready", None).await.json().await.unwrap();
    assert_eq!(ready["checks"]["redis"]["status"], "up");
}

async fn a_write_invalidates_the_cached_profile_at_once(kind: StoreKind) {
    let Some(app) = redis_app(kind).await else { return };
    let (token, _) = app.register("Cached").await;
    let gold = |v: &Value| v["balances"]["gold"].as_i64().unwrap();
    let before: Value = app.get("/api/player", Some(&token)).await.json().await.unwrap();
    let hits = counter(&app, "divine_heroes_cache_hit", "kind=\"player\"").await;
    let again: Value = app.get("/api/player", Some(&token)).await.json().await.unwrap();
    assert_eq!(gold(&again), gold(&before));
    assert!(
        counter(&app, "divine_heroes_cache_hit", "kind=\"player\"").await > hits,
        "the profile is served from the cache"
    );
    for i in 1..=5 {
        let r = app
            .post("/api/heroes/kai_the_tempest/level-up", Some(&token), Some(&format!("lv-{i}")), json!({"levels": 1}))
            .await;
        assert_eq!(r.status(), 200);
        let paid = r.json::<Value>().await.unwrap()["level_up"]["gold_spent"].as_i64().unwrap();
        let now: Value = app.get("/api/player", Some(&token)).await.json().await.unwrap();
        let heroes: Value = app.get("/api/heroes", Some(&token)).await.json().await.unwrap();
        let kai =
            heroes["items"].as_array().unwrap().iter().find(|h| h["hero_id"] == "kai_the_tempest").unwrap().clone();
        assert_eq!(kai["level"], 1 + i, "no stale hero after a write");
        assert_eq!(
            gold(&now),
            gold(&before) - (1..=i).map(|l| 100 + 25 * l * l).sum::<i64>(),
            "no stale balance after a write"
        );
        assert!(paid > 0);
    }
}

/// One test, run in sequence: the counters are per process, and parallel tests
/// would move them under each other's feet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_on_real_redis() {
    for kind in [StoreKind::Embedded, StoreKind::Mongo] {
        the_second_catalog_read_is_a_hit(kind).await;
        a_write_invalidates_the_cached_profile_at_once(kind).await;
    }
}
