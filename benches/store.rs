//! The embedded store alone, on the real write path: 10-pull summons per
//! second through `Writer::mutate` (rule, ledger, history, outbox, idempotency
//! record, one group commit per batch of waiting writes), by how many writes
//! are in flight at once. Each write has its own Idempotency-Key, as over HTTP.
// criterion_main! generates an undocumented `main`.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use divine_heroes::game::data::GameData;
use divine_heroes::game::economy::Currency;
use divine_heroes::game::player::Player;
use divine_heroes::platform::cache::Cache;
use divine_heroes::roles::gacha::summon_rule;
use divine_heroes::store::embedded::EmbeddedStore;
use divine_heroes::store::{DynStore, IdempotencyRequest};
use divine_heroes::writes::Writer;

const PLAYERS: usize = 256;

fn bench_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store: DynStore = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
    let data = Arc::new(GameData::builtin());
    let cache = Arc::new(Cache::new("bench", None, true, [30, 300, 3600]));
    let now = chrono::Utc::now();
    let ids: Arc<Vec<String>> = Arc::new(rt.block_on(async {
        let mut ids = Vec::with_capacity(PLAYERS);
        for i in 0..PLAYERS {
            let mut p = Player::new(format!("bench-{i}"), &format!("bench_{i}"), "unused".into(), now);
            p.balances.credit(Currency::Coins, 1_000_000_000_000);
            store.create_player(&p).await.expect("player");
            ids.push(p.id);
        }
        ids
    }));
    let banner = "standard".to_string();

    let mut group = c.benchmark_group("store_summon10");
    group.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for in_flight in [1usize, 8, 32, 128] {
        group.bench_with_input(BenchmarkId::from_parameter(in_flight), &in_flight, |b, &in_flight| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..in_flight)
                        .map(|t| {
                            let (store, cache, data, ids, banner) =
                                (store.clone(), cache.clone(), data.clone(), ids.clone(), banner.clone());
                            let share = iters as usize / in_flight + usize::from(t < iters as usize % in_flight);
                            tokio::spawn(async move {
                                let writer = Writer { store: &store, cache: &cache, data: &data };
                                for n in 0..share {
                                    let id = &ids[(t + n * in_flight) % ids.len()];
                                    let key = uuid::Uuid::new_v4().simple().to_string();
                                    let idem = IdempotencyRequest { key: key.clone(), fingerprint: key.clone() };
                                    let rule = summon_rule(
                                        data.clone(),
                                        banner.clone(),
                                        10,
                                        [n as u8; 32],
                                        key,
                                        chrono::Utc::now(),
                                    );
                                    writer.mutate(id, Some(idem), chrono::Utc::now(), rule).await.expect("summon");
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("task");
                    }
                });
                started.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
