//! The real binary killed between the store write and the publish: the events
//! wait in the outbox, the next process relays them, and the consumers apply
//! each exactly once even though some were already published twice.

use std::sync::Arc;
use std::time::Duration;

use crate::common::procs::start_role;
use crate::common::{Scratch, REDIS_URL};
use divine_heroes::platform::queue::{Queue, RedisStreamQueue};
use divine_heroes::store::embedded::EmbeddedStore;
use divine_heroes::store::events::Event;
use divine_heroes::store::Store;
use serde_json::json;

async fn consumed(base: &str, applied: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics/prometheus")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("divine_heroes_events_consumed_total{")
                && l.contains("kind=\"gacha.summoned\"")
                && l.contains(&format!("applied=\"{applied}\""))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_loses_no_event_and_applies_none_twice() {
    if !crate::common::redis_reachable(REDIS_URL).await {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let scratch = Scratch::new();
    let prefix = scratch.prefix.clone();
    let mut env = vec![
        ("MQ_BACKEND", "redis".to_string()),
        ("REDIS_URL", REDIS_URL.to_string()),
        ("CACHE_PREFIX", prefix.clone()),
        ("METRICS_ENABLED", "true".to_string()),
        ("WORKERS", "false".to_string()),
    ];
    // First process: writes, never publishes, dies hard.
    let mut first = start_role("all", &env, data.path()).await;
    let base = format!("http://127.0.0.1:{}", first.port);
    let http = reqwest::Client::new();
    let token = crate::common::procs::register(&http, &base, "Phoenix", "rise-again-1").await;
    for i in 0..4 {
        let r = http
            .post(format!("{base}/api/gacha/summon"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("pull-{i}"))
            .json(&json!({"banner_id": "divine", "count": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    first.kill();

    // A relay that had published and died before clearing the outbox: the same
    // events are already in the stream once.
    {
        let store = EmbeddedStore::open(data.path()).unwrap();
        let pending: Vec<Event> = store.outbox_batch(1000).await.unwrap().into_iter().map(|e| e.event).collect();
        assert!(
            pending.iter().filter(|e| e.kind() == "gacha.summoned").count() == 4,
            "the summons' events survived the kill"
        );
        let pool =
            deadpool_redis::Config::from_url(REDIS_URL).create_pool(Some(deadpool_redis::Runtime::Tokio1)).unwrap();
        let queue: Arc<dyn Queue> = Arc::new(
            RedisStreamQueue::new(pool, format!("{prefix}:events"), format!("{prefix}:consumers")).await.unwrap(),
        );
        queue.publish(&pending).await.unwrap();
    }
    // The embedded file has one owner: let the writer thread let go of it.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Second process: relays the outbox again and consumes everything.
    env.retain(|(k, _)| *k != "WORKERS");
    let second = start_role("all", &env, data.path()).await;
    let base = format!("http://127.0.0.1:{}", second.port);
    let (mut yes, mut dup) = (0.0, 0.0);
    for _ in 0..100 {
        yes = consumed(&base, "yes").await;
        dup = consumed(&base, "duplicate").await;
        if yes >= 4.0 && dup >= 4.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((yes, dup), (4.0, 4.0), "each summon applied once, its second copy skipped");
    drop(second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = EmbeddedStore::open(data.path()).unwrap();
    let pulls: i64 = store.counters("gacha:divine:").await.unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(pulls, 4);
    assert_eq!(store.audit_count("gacha.summoned").await.unwrap(), 4);
    assert_eq!(store.outbox_len().await.unwrap(), 0);
}
