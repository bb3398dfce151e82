//! Events: written with their change, relayed, consumed exactly once in effect,
//! over the in-process queue and over a real Redis Stream.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{direct_write, Scratch, StoreKind, TestApp, RABBIT_URL, REDIS_URL};
use divine_heroes::game::gacha::engine::{Grant, PullResult};
use divine_heroes::platform::clock::SystemClock;
use divine_heroes::platform::config::Role;
use divine_heroes::platform::queue::{MemoryQueue, Queue, RabbitQueue, RedisStreamQueue};
use divine_heroes::store::events::{DomainEvent, Event};
use divine_heroes::store::DynStore;
use divine_heroes::workers;
use serde_json::json;

/// Waits (bounded) until the consumers have counted `pulls` pulls and audited `summons` summons.
async fn wait_for_counts(store: &DynStore, pulls: i64, summons: u64) -> (i64, u64) {
    let mut last = (0, 0);
    for _ in 0..200 {
        let counted: i64 = store.counters("gacha:").await.unwrap().iter().map(|(_, n)| n).sum();
        let audited = store.audit_count("gacha.summoned").await.unwrap();
        last = (counted, audited);
        if last == (pulls, summons) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little longer: a duplicate applied late would show now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counted: i64 = store.counters("gacha:").await.unwrap().iter().map(|(_, n)| n).sum();
    (counted, store.audit_count("gacha.summoned").await.unwrap()).max(last)
}

async fn every_summon_reaches_the_consumers_once(kind: StoreKind) {
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::default());
    let Some(app) = TestApp::spawn_full(kind, Role::All, |_| {}, Arc::new(SystemClock), Some(queue)).await else {
        return;
    };
    let (token, id) = app.register("Eventful").await;
    app.set_balance(&id, divine_heroes::game::economy::Currency::DivineEssence, 30).await;
    for i in 0..3 {
        assert_eq!(app.summon(&token, "divine", 10, &format!("ten-{i}")).await.status(), 200);
    }
    assert_eq!(app.summon(&token, "divine", 10, "ten-0").await.status(), 200, "a replay emits nothing");
    assert_eq!(wait_for_counts(&app.state.store, 30, 3).await, (30, 3));
    assert!(
        app.state.store.audit_count("ledger.changed").await.unwrap() >= 4,
        "registration grant is not a ledger event; three summons are"
    );
    assert_eq!(app.state.store.outbox_len().await.unwrap(), 0, "the relay emptied the outbox");
}

on_both_stores!(every_summon_reaches_the_consumers_once);

/// Every pull reaches its banner's public draw record once (a replayed summon
/// adds nothing), newest first across pages, with nothing that names the
/// player or the summon; the observed table counts the same pulls; the record
/// is pruned with the history.
async fn the_public_draw_record_has_every_pull_and_no_player(kind: StoreKind) {
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::default());
    let Some(app) = TestApp::spawn_full(kind, Role::All, |_| {}, Arc::new(SystemClock), Some(queue)).await else {
        return;
    };
    let mut secrets = Vec::new();
    for (name, count, times) in [("Drawer", 10, 2), ("Quiet", 1, 3)] {
        let (token, id) = app.register(name).await;
        app.set_balance(&id, divine_heroes::game::economy::Currency::DivineEssence, 30).await;
        secrets.extend([id, name.to_string(), name.to_lowercase()]);
        for i in 0..times {
            let r = app.summon(&token, "divine", count, &format!("{name}-{i}")).await;
            assert_eq!(r.status(), 200);
            secrets.push(r.json::<serde_json::Value>().await.unwrap()["summon_id"].as_str().unwrap().to_string());
        }
        assert_eq!(app.summon(&token, "divine", count, &format!("{name}-0")).await.status(), 200, "a replay");
    }
    assert_eq!(wait_for_counts(&app.state.store, 23, 5).await, (23, 5));

    let mut draws = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/gacha/banners/divine/draws?limit=10{cursor}");
        let r = app.get(&path, None).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "the record names {secret}: {text}");
        }
        let page: serde_json::Value = serde_json::from_str(&text).unwrap();
        draws.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(draws.len(), 23, "every pull once");
    let ids: Vec<&str> = draws.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats: {ids:?}");
    assert!(draws.iter().all(|d| d["banner_id"] == "divine" && d["item"].as_str().is_some_and(|i| !i.is_empty())));
    assert!(draws.iter().all(|d| d["rates_version"] == 1), "each draw names the table version that served it");

    let observed: serde_json::Value = app.get("/api/gacha/banners/divine/observed", None).await.json().await.unwrap();
    assert_eq!(observed["total_pulls"], 23);
    let categories = observed["categories"].as_array().unwrap();
    let by_record = |c: &str| draws.iter().filter(|d| d["category"] == c).count() as i64;
    for c in categories {
        assert_eq!(c["pulls"].as_i64().unwrap(), by_record(c["category"].as_str().unwrap()), "{c}");
    }
    assert_eq!(app.get("/api/gacha/banners/divine/draws?cursor=zz!", None).await.status(), 422);
    assert_eq!(app.get("/api/gacha/banners/nope/draws", None).await.status(), 404);

    if matches!(kind, StoreKind::Embedded) {
        let later = chrono::Utc::now() + chrono::Duration::days(1);
        app.state.store.prune(later - chrono::Duration::days(400), later, 1000).await.unwrap();
        assert!(app.state.store.draws("divine", None, 10).await.unwrap().is_empty(), "pruned with the history");
    }
}

on_both_stores!(the_public_draw_record_has_every_pull_and_no_player);

/// A shared broker for these tests.
#[derive(Clone, Copy, Debug)]
enum Broker {
    Redis,
    Rabbit,
    Kafka,
}

/// A fresh queue on a real broker (its own stream or queue name), or `None`
/// locally when the broker is not running (CI requires it).
async fn broker_queue(broker: Broker) -> Option<(Scratch, Arc<dyn Queue>)> {
    let scratch = Scratch::new();
    let prefix = scratch.prefix.clone();
    let queue: Arc<dyn Queue> = match broker {
        Broker::Redis => {
            let pool = redis_pool().await?;
            Arc::new(
                RedisStreamQueue::new(pool, format!("{prefix}:events"), format!("{prefix}:consumers")).await.unwrap(),
            )
        }
        Broker::Rabbit => match RabbitQueue::connect(RABBIT_URL, scratch.rabbit_queue()).await {
            Ok(q) => Arc::new(q),
            Err(e) if std::env::var_os("CI").is_some() => panic!("RabbitMQ is required in CI: {e}"),
            Err(e) => {
                eprintln!("skipping: no RabbitMQ ({e})");
                return None;
            }
        },
        // A topic and a group of the test's own (a group whose members all left
        // can wedge on the test broker; topics are never deleted under a fetch).
        Broker::Kafka => {
            if crate::common::under_faketime() {
                eprintln!("skipping: librdkafka under libfaketime");
                return None;
            }
            let settings = divine_heroes::platform::kafka::KafkaSettings {
                brokers: crate::common::KAFKA_BROKERS.into(),
                topic: format!("{prefix}.events"),
                group: format!("{prefix}-group"),
                partitions: 4,
            };
            if tokio::net::TcpStream::connect(crate::common::KAFKA_BROKERS).await.is_err() {
                assert!(std::env::var_os("CI").is_none(), "a Kafka broker is required in CI");
                eprintln!("skipping: no Kafka broker");
                return None;
            }
            Arc::new(divine_heroes::platform::kafka::KafkaQueue::connect(settings).await.unwrap())
        }
    };
    Some((scratch, queue))
}

async fn redis_pool() -> Option<deadpool_redis::Pool> {
    if !crate::common::redis_reachable(REDIS_URL).await {
        return None;
    }
    Some(deadpool_redis::Config::from_url(REDIS_URL).create_pool(Some(deadpool_redis::Runtime::Tokio1)).unwrap())
}

/// The `i`th of a run of made-up one-pull summon events, each with its own id.
fn synthetic_summon(i: u64) -> Event {
    Event {
        id: format!("synthetic-{i}-{}", uuid::Uuid::new_v4().simple()),
        // Eight players: a keyed broker (Kafka) spreads them over its partitions.
        player_id: format!("p{}", i % 8),
        username: "P".into(),
        version: i,
        scores: Default::default(),
        at: chrono::Utc::now(),
        traceparent: None,
        body: DomainEvent::GachaSummoned {
            summon_id: format!("s-{i}"),
            banner_id: "standard".into(),
            results: vec![sr_pull()],
            rates_version: Some(1),
        },
    }
}

/// A crash after the store write and before the publish, and one after the
/// publish and before the outbox was cleared: the relay resends, the consumers
/// skip what they already applied.
async fn a_crash_around_the_publish_loses_and_doubles_nothing(kind: StoreKind, broker: Broker) {
    let Some((_scratch, queue)) = broker_queue(broker).await else { return };
    // No workers in the app: its events stay in the outbox, as after a crash before the publish.
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, _) = app.register("Crashy").await;
    for i in 0..5 {
        assert_eq!(app.summon(&token, "divine", 1, &format!("one-{i}")).await.status(), 200);
    }
    assert!(app.state.store.outbox_len().await.unwrap() >= 10);
    // A relay that published and died before clearing the outbox.
    let pending: Vec<Event> = app.state.store.outbox_batch(1000).await.unwrap().into_iter().map(|e| e.event).collect();
    queue.publish(&pending).await.unwrap();
    // The restarted relay sends everything again; a consumer takes both copies.
    while workers::relay_once(&app.state, queue.as_ref(), "test-relay").await.unwrap() > 0 {}
    assert_eq!(app.state.store.outbox_len().await.unwrap(), 0);
    let mut consumer = queue.consumer("only").await.unwrap();
    let mut handled = 0;
    for _ in 0..50 {
        let n = workers::consume_once(&app.state, consumer.as_mut()).await.unwrap();
        handled += n;
        if n == 0 && handled > 0 {
            break;
        }
    }
    assert!(handled >= 2 * pending.len(), "both copies delivered: {handled} of {}", 2 * pending.len());
    assert_eq!(wait_for_counts(&app.state.store, 5, 5).await, (5, 5), "each summon applied exactly once");
}

/// One SR pull, as a summon event carries it.
fn sr_pull() -> PullResult {
    PullResult {
        index: 0,
        category: "SR".into(),
        rarity: None,
        grant: Grant::Currency { currency: divine_heroes::game::economy::Currency::Gold, amount: 1 },
        pity_triggered: false,
        featured: None,
    }
}

/// Two consumers in one group share a stream: every event is applied once, and
/// both take part.
async fn two_consumers_share_the_queue(kind: StoreKind, broker: Broker) {
    let Some((_scratch, queue)) = broker_queue(broker).await else { return };
    let Some(app) = TestApp::spawn(kind).await else { return };
    let events: Vec<Event> = (0..200).map(synthetic_summon).collect();
    // Both join before the events arrive, as two running pods would.
    let mut consumers = Vec::new();
    for name in ["pod-a", "pod-b"] {
        consumers.push(queue.consumer(name).await.unwrap());
    }
    if matches!(broker, Broker::Kafka) {
        // A Kafka member joins its group by polling: both poll until the group
        // has settled, so that each owns partitions when the events arrive.
        for _ in 0..16 {
            for c in &mut consumers {
                assert!(c.receive(1).await.unwrap().is_empty());
            }
        }
    }
    queue.publish(&events).await.unwrap();
    let total = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for mut consumer in consumers {
        let (state, total) = (app.state.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering;
            let mut mine = 0;
            for _ in 0..100 {
                if total.load(Ordering::SeqCst) >= 200 {
                    break;
                }
                let n = workers::consume_once(&state, consumer.as_mut()).await.unwrap();
                mine += n;
                total.fetch_add(n, Ordering::SeqCst);
                // Let the other consumer take its share.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            mine
        }));
    }
    let mut shares = Vec::new();
    for t in tasks {
        shares.push(t.await.unwrap());
    }
    assert_eq!(shares.iter().sum::<usize>(), 200, "every event handled once: {shares:?}");
    assert!(shares.iter().all(|&n| n > 0), "both consumers took part: {shares:?}");
    assert_eq!(wait_for_counts(&app.state.store, 200, 200).await, (200, 200));
}

mod brokers {
    use super::*;

    macro_rules! on_each_broker {
        ($($name:ident),* $(,)?) => {$(
            mod $name {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis_on_embedded() {
                    super::super::$name(StoreKind::Embedded, Broker::Redis).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis_on_mongo() {
                    super::super::$name(StoreKind::Mongo, Broker::Redis).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn rabbitmq_on_embedded() {
                    super::super::$name(StoreKind::Embedded, Broker::Rabbit).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn rabbitmq_on_mongo() {
                    super::super::$name(StoreKind::Mongo, Broker::Rabbit).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn kafka_on_embedded() {
                    super::super::$name(StoreKind::Embedded, Broker::Kafka).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn kafka_on_mongo() {
                    super::super::$name(StoreKind::Mongo, Broker::Kafka).await;
                }
            }
        )*};
    }

    on_each_broker!(a_crash_around_the_publish_loses_and_doubles_nothing, two_consumers_share_the_queue);
}

/// With Redis on, the consumers keep the boards in sorted sets, and a missing
/// board is rebuilt from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderboards_live_in_redis_sorted_sets() {
    let Some(pool) = redis_pool().await else { return };
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::default());
    let Some(app) = TestApp::spawn_on_redis(StoreKind::Embedded, Some(queue)).await else { return };
    let prefix = app.redis_prefix().to_string();
    let (weak, _) = app.register("RedisWeak").await;
    let (strong, strong_id) = app.register("RedisStrong").await;
    app.set_balance(&strong_id, divine_heroes::game::economy::Currency::Gold, 1_000_000).await;
    let r = app.post("/api/heroes/kai_the_tempest/level-up", Some(&strong), Some("lv"), json!({"levels": 30})).await;
    assert_eq!(r.status(), 200);
    let mut board = serde_json::Value::Null;
    for _ in 0..100 {
        board = app.get("/api/leaderboards/power", Some(&weak)).await.json().await.unwrap();
        // The level-up applied, not only the registrations (equal scores share a rank).
        let ahead = board["top"][0]["score"].as_u64() > board["top"][1]["score"].as_u64();
        if board["source"] == "redis" && board["top"][0]["player_id"] == strong_id.as_str() && ahead {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(board["source"], "redis", "{board}");
    assert_eq!(board["top"][0]["player_id"], strong_id.as_str());
    assert_eq!(board["me"]["rank"], 2);
    // A flushed board is rebuilt from the store on the next read, even when an
    // event (a late or redelivered one) reaches the consumer first: its player
    // alone must not pass for the whole board. Every event is applied first, so
    // that none still on its way puts the other player back by chance.
    for _ in 0..100 {
        let store = &app.state.store;
        if store.outbox_len().await.unwrap() == 0 && store.unconsumed_len().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = pool.get().await.unwrap();
    let _: i64 =
        deadpool_redis::redis::cmd("DEL").arg(format!("{prefix}:board:power")).query_async(&mut c).await.unwrap();
    let player = app.state.store.player_by_id(&strong_id).await.unwrap().expect("registered");
    let late = divine_heroes::store::events::event(
        &player,
        chrono::Utc::now(),
        DomainEvent::PlayerUpdated { reason: divine_heroes::store::LedgerReason::HeroLevelUp },
    );
    divine_heroes::platform::leaderboards::apply(&pool, &prefix, &late).await.unwrap();
    // The read that finds it missing rebuilds it; one that takes over 500 ms (a busy
    // machine) is answered from the store meanwhile, so poll as above.
    let mut rebuilt = serde_json::Value::Null;
    for _ in 0..100 {
        rebuilt = app.get("/api/leaderboards/power", Some(&weak)).await.json().await.unwrap();
        if rebuilt["source"] == "redis" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rebuilt["source"], "redis", "{rebuilt}");
    assert_eq!(rebuilt["top"][0]["player_id"], strong_id.as_str(), "{rebuilt}");
    assert_eq!(rebuilt["top"].as_array().map(Vec::len), Some(2), "{rebuilt}");

    // Redis restarted empty, then an event comes before any read: the event's
    // player alone must not pass for the whole board. The event (a tower floor)
    // also carries the tower score, which the tower board shows from Redis.
    let boards: Vec<String> =
        deadpool_redis::redis::cmd("KEYS").arg(format!("{prefix}:board:*")).query_async(&mut c).await.unwrap();
    let _: i64 = deadpool_redis::redis::cmd("DEL").arg(&boards).query_async(&mut c).await.unwrap();
    direct_write(&app.state.store, &strong_id, chrono::Utc::now(), |p| {
        for h in divine_heroes::game::player::STARTER_HEROES {
            p.heroes.get_mut(h).expect("a starter").level = 50;
        }
    })
    .await;
    let won = app.post("/api/battle/tower/fight", Some(&strong), Some("floor-1"), json!({})).await;
    assert_eq!(won.status(), 200);
    let won: serde_json::Value = won.json().await.unwrap();
    assert_eq!(won["winner"], "attacker", "{won}");
    let mut tower = serde_json::Value::Null;
    for _ in 0..100 {
        tower = app.get("/api/leaderboards/tower", Some(&strong)).await.json().await.unwrap();
        if tower["source"] == "redis" && tower["me"]["score"].as_u64() > Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((tower["source"].as_str(), tower["me"]["rank"].as_u64()), (Some("redis"), Some(1)), "{tower}");
    let power: serde_json::Value = app.get("/api/leaderboards/power", Some(&weak)).await.json().await.unwrap();
    assert_eq!(power["source"], "redis", "{power}");
    assert_eq!(power["top"].as_array().map(Vec::len), Some(2), "rebuilt although the event came first: {power}");
}

/// Redis restarted without its data (here: the stream deleted, its consumer
/// group with it): the running consumer recreates the group and receives what is
/// published afterwards, without a process restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_recovers_when_redis_lost_its_stream() {
    let Some(pool) = redis_pool().await else { return };
    let scratch = Scratch::new();
    let stream = format!("{}:events", scratch.prefix);
    let queue =
        RedisStreamQueue::new(pool.clone(), stream.clone(), format!("{}:consumers", scratch.prefix)).await.unwrap();
    let mut consumer = queue.consumer("pod-a").await.unwrap();
    queue.publish(&[synthetic_summon(0)]).await.unwrap();
    let first = consumer.receive(10).await.unwrap();
    assert_eq!(first.len(), 1);
    consumer.ack(&first).await.unwrap();

    let mut c = pool.get().await.unwrap();
    let _: i64 = deadpool_redis::redis::cmd("DEL").arg(&stream).query_async(&mut c).await.unwrap();
    let sent: Vec<Event> = (1..=5).map(synthetic_summon).collect();
    queue.publish(&sent).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..10 {
        let batch = consumer.receive(10).await.expect("the consumer recovers instead of failing for good");
        consumer.ack(&batch).await.unwrap();
        got.extend(batch.into_iter().map(|d| d.event.id));
        if got.len() >= sent.len() {
            break;
        }
    }
    assert_eq!(got, sent.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), "every event after the reset, in order");
    assert_eq!(queue.resets(), 1, "the reset is counted, for the relay to publish again what it may have lost");
}

/// The broker lost its state (a Redis stream and its group, a RabbitMQ queue)
/// after accepting events no consumer had applied yet: the consumer that finds
/// it gone makes it again and counts a reset, and publishing the unconsumed
/// events again (what the relay does on a reset) brings every one of them back,
/// each applied once.
async fn events_a_broker_reset_lost_are_published_again(broker: Broker) {
    let Some((scratch, queue)) = broker_queue(broker).await else { return };
    let Some(app) = TestApp::spawn(StoreKind::Embedded).await else { return };
    let (token, _) = app.register("Resetter").await;
    for i in 0..4 {
        assert_eq!(app.summon(&token, "divine", 1, &format!("reset-{i}")).await.status(), 200);
    }
    while workers::relay_once(&app.state, queue.as_ref(), "test-relay").await.unwrap() > 0 {}
    let published = app.state.store.unconsumed_len().await.unwrap();
    assert!(published >= 5, "registration and summons published, none consumed: {published}");

    // The broker comes back without its data.
    match broker {
        Broker::Redis => {
            let mut c = redis_pool().await.unwrap().get().await.unwrap();
            let _: i64 = deadpool_redis::redis::cmd("DEL")
                .arg(format!("{}:events", scratch.prefix))
                .query_async(&mut c)
                .await
                .unwrap();
        }
        Broker::Rabbit => {
            let c = lapin::Connection::connect(RABBIT_URL, lapin::ConnectionProperties::default()).await.unwrap();
            let ch = c.create_channel().await.unwrap();
            ch.queue_delete(&scratch.rabbit_queue(), lapin::options::QueueDeleteOptions::default()).await.unwrap();
        }
        // Not run on Kafka: the test broker must not have a topic deleted under a fetch.
        Broker::Kafka => unreachable!("no broker-reset test on Kafka"),
    }
    // A consumer joining now finds the stream or queue gone.
    let mut consumer = queue.consumer("after-reset").await.unwrap();
    assert_eq!(workers::consume_once(&app.state, consumer.as_mut()).await.unwrap(), 0, "nothing left to read");
    assert_eq!(queue.resets(), 1, "the consumer saw the reset");

    let again = workers::republish(&app.state, queue.as_ref(), workers::Replay::Reset).await.unwrap();
    assert_eq!(again as u64, published);
    for _ in 0..50 {
        let n = workers::consume_once(&app.state, consumer.as_mut()).await.unwrap();
        if n == 0 && app.state.store.unconsumed_len().await.unwrap() == 0 {
            break;
        }
    }
    assert_eq!(wait_for_counts(&app.state.store, 4, 4).await, (4, 4), "each summon applied exactly once");
    assert_eq!(app.state.store.unconsumed_len().await.unwrap(), 0, "every published event consumed");
}

mod broker_reset {
    use super::{events_a_broker_reset_lost_are_published_again, Broker};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        events_a_broker_reset_lost_are_published_again(Broker::Redis).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rabbitmq() {
        events_a_broker_reset_lost_are_published_again(Broker::Rabbit).await;
    }
}

/// A RabbitMQ queue deleted under a live consumer (the broker does not always
/// tell it): the idle consumer notices within seconds, the queue is declared
/// again, and the same consumer receives what is published afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_rabbitmq_consumer_recovers_its_deleted_queue() {
    let Some((scratch, queue)) = broker_queue(Broker::Rabbit).await else { return };
    let mut consumer = queue.consumer("live").await.unwrap();
    assert!(consumer.receive(10).await.unwrap().is_empty());
    let c = lapin::Connection::connect(RABBIT_URL, lapin::ConnectionProperties::default()).await.unwrap();
    let ch = c.create_channel().await.unwrap();
    ch.queue_delete(&scratch.rabbit_queue(), lapin::options::QueueDeleteOptions::default()).await.unwrap();
    let started = std::time::Instant::now();
    while queue.resets() == 0 && started.elapsed() < Duration::from_secs(10) {
        let _ = consumer.receive(10).await;
    }
    assert_eq!(queue.resets(), 1, "the consumer noticed, within {:?}", started.elapsed());
    let sent: Vec<Event> = (0..3).map(synthetic_summon).collect();
    queue.publish(&sent).await.expect("publishing works again");
    let mut got = Vec::new();
    for _ in 0..20 {
        if let Ok(batch) = consumer.receive(10).await {
            consumer.ack(&batch).await.unwrap();
            got.extend(batch.into_iter().map(|d| d.event.id));
        }
        if got.len() >= sent.len() {
            break;
        }
    }
    assert_eq!(got, sent.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
}

/// Publishes what `state`'s outbox holds the way relays did before leases: read
/// the oldest batch, mark it, publish it. Returns how many it sent.
async fn unleased_relay_round(state: &divine_heroes::state::AppState, queue: &dyn Queue) -> usize {
    let batch = state.store.outbox_batch(256).await.unwrap();
    if batch.is_empty() {
        return 0;
    }
    state.store.outbox_relayed(&batch).await.unwrap();
    let events: Vec<Event> = batch.into_iter().map(|b| b.event).collect();
    queue.publish(&events).await.unwrap();
    events.len()
}

/// Every event id the memory queue holds, in order.
async fn drain(queue: &dyn Queue) -> Vec<String> {
    let mut consumer = queue.consumer("counter").await.unwrap();
    let mut ids = vec![];
    loop {
        let got = consumer.receive(1000).await.unwrap();
        if got.is_empty() {
            return ids;
        }
        ids.extend(got.into_iter().map(|d| d.event.id));
    }
}

/// Three relays on one store (three api pods) drain an outbox of 300 events at
/// once: with leases each event is published once; without them (each relay
/// reading the outbox as it stands) batches go out more than once. Both
/// figures are printed.
async fn three_relays_publish_each_event_once(kind: StoreKind) {
    use divine_heroes::game::player::Player;
    use futures_util::future::join_all;
    const EVENTS: usize = 300;
    let Some(app) = TestApp::spawn(kind).await else { return };
    let register = |round: &'static str| {
        let store = app.state.store.clone();
        async move {
            for i in 0..EVENTS {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let p = Player::new(id, &format!("{round}{i}"), String::new(), chrono::Utc::now());
                store.create_player(&p).await.unwrap();
            }
        }
    };
    let count = |ids: &[String]| (ids.len(), ids.iter().collect::<std::collections::BTreeSet<_>>().len());

    register("unleased").await;
    let queue = MemoryQueue::default();
    join_all((0..3).map(|_| async { while unleased_relay_round(&app.state, &queue).await > 0 {} })).await;
    let (before_sent, before_distinct) = count(&drain(&queue).await);

    register("leased").await;
    let queue = MemoryQueue::default();
    join_all((0..3).map(|r| {
        let (state, queue) = (&app.state, &queue);
        async move {
            let name = format!("relay-{r}");
            while workers::relay_once(state, queue, &name).await.unwrap() > 0 {}
        }
    }))
    .await;
    let (after_sent, after_distinct) = count(&drain(&queue).await);
    println!(
        "three relays, {EVENTS} events: without leases {before_sent} published ({} duplicates), with leases \
         {after_sent} ({} duplicates)",
        before_sent - before_distinct,
        after_sent - after_distinct
    );
    assert_eq!(before_distinct, EVENTS, "every event went out without leases too");
    assert_eq!((after_sent, after_distinct), (EVENTS, EVENTS), "with leases each event exactly once");
    assert_eq!(app.state.store.outbox_len().await.unwrap(), 0);
}

on_both_stores!(three_relays_publish_each_event_once);
