//! The outbox relay's throughput per broker, in one run on one machine: a
//! scratch embedded store gets `EVENTS` registration events in its outbox,
//! then one relay drains it (claim a batch, mark it unconsumed, publish) and
//! events per second are printed, for the in-process queue and for each broker
//! that answers on loopback (Redis Streams on 6379, RabbitMQ on 5672, Kafka on
//! 9092). `cargo bench --bench relay`; `RELAY_EVENTS=N` sets the count.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use divine_heroes::game::data::GameData;
use divine_heroes::game::player::Player;
use divine_heroes::platform::clock::SystemClock;
use divine_heroes::platform::config::{Role, Settings};
use divine_heroes::platform::kafka::{KafkaQueue, KafkaSettings};
use divine_heroes::platform::queue::{MemoryQueue, Queue, RabbitQueue, RedisStreamQueue};
use divine_heroes::server::Server;
use divine_heroes::store::embedded::EmbeddedStore;
use divine_heroes::store::DynStore;
use divine_heroes::workers::relay_once;

async fn open(name: &str, prefix: &str) -> Option<Arc<dyn Queue>> {
    let reachable = |port: u16| async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() };
    Some(match name {
        "memory" => Arc::new(MemoryQueue::default()),
        "redis" if reachable(6379).await => {
            let pool = deadpool_redis::Config::from_url("redis://127.0.0.1:6379")
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .ok()?;
            Arc::new(RedisStreamQueue::new(pool, format!("{prefix}:events"), format!("{prefix}:group")).await.ok()?)
        }
        "rabbitmq" if reachable(5672).await => Arc::new(
            RabbitQueue::connect("amqp://guest:guest@127.0.0.1:5672/%2f", format!("{prefix}.events")).await.ok()?,
        ),
        "kafka" if reachable(9092).await => Arc::new(
            KafkaQueue::connect(KafkaSettings {
                brokers: "127.0.0.1:9092".into(),
                topic: format!("{prefix}.events"),
                group: format!("{prefix}-group"),
                partitions: 4,
            })
            .await
            .ok()?,
        ),
        _ => return None,
    })
}

fn main() {
    // `cargo bench` passes --bench; `cargo test` runs this once as a smoke test, small.
    let measuring = std::env::args().any(|a| a == "--bench");
    let default = if measuring { 20_000 } else { 100 };
    let events: usize = std::env::var("RELAY_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    println!("{:<10} {:>8} {:>10} {:>12}", "broker", "events", "seconds", "events/s");
    // librdkafka's timed waits never wake under libfaketime (the shifted-clock CI run).
    let faked = std::env::var_os("FAKETIME").is_some();
    for name in ["memory", "redis", "rabbitmq", "kafka"].into_iter().filter(|n| !(faked && *n == "kafka")) {
        rt.block_on(async {
            let prefix = format!("bench-relay-{}", uuid::Uuid::new_v4().simple());
            let Some(queue) = open(name, &prefix).await else {
                println!("{name:<10} not reachable on loopback: skipped");
                return;
            };
            if name == "memory" {
                // The in-process queue holds 10,000 and then makes publishers wait:
                // a consumer empties it, as the process's own consumers would.
                let mut drain = queue.consumer("drain").await.expect("consumer");
                tokio::spawn(async move { while drain.receive(1000).await.is_ok() {} });
            }
            let dir = tempfile::tempdir().expect("scratch dir");
            let store: DynStore = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
            // One registration event per player, written 256 at a time.
            for chunk in (0..events).collect::<Vec<_>>().chunks(256) {
                futures_util::future::join_all(chunk.iter().map(|i| {
                    let store = store.clone();
                    async move {
                        let p =
                            Player::new(format!("r{i}"), &format!("relayed_{i}"), String::new(), chrono::Utc::now());
                        store.create_player(&p).await.expect("player");
                    }
                }))
                .await;
            }
            let mut settings = Settings::defaults();
            settings.port = Some(0);
            settings.game_data_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config").into();
            let data = Arc::new(GameData::load(&settings.game_data_dir).expect("game data"));
            let server =
                Server::build_with(settings, Role::All, Arc::new(SystemClock), store, data).expect("server state");
            let state = server.state();
            let started = Instant::now();
            let mut sent = 0;
            loop {
                let n = relay_once(&state, queue.as_ref(), "bench").await.expect("relay");
                if n == 0 {
                    break;
                }
                sent += n;
            }
            let secs = started.elapsed().as_secs_f64();
            println!("{name:<10} {sent:>8} {secs:>10.2} {:>12.0}", sent as f64 / secs);
        });
    }
}
