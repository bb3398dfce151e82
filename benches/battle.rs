//! Battle engine throughput: full 6v6 battles per second on one core.
// criterion_main! generates an undocumented `main`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use divine_heroes::game::battle::{simulate, UnitSnapshot, RULES_VERSION};
use divine_heroes::game::catalog::stats_at;
use divine_heroes::game::data::GameData;

fn six(data: &GameData, offset: usize, level: u32) -> Vec<Option<UnitSnapshot>> {
    let heroes = data.catalog.all();
    (0..6)
        .map(|i| {
            let h = &heroes[(offset + i * 3) % heroes.len()];
            Some(UnitSnapshot {
                hero_id: h.id.clone(),
                element: h.element,
                class: h.class,
                stats: stats_at(h.base_stats(), level, 2),
            })
        })
        .collect()
}

fn bench_battles(c: &mut Criterion) {
    let data = GameData::builtin();
    let (a, d) = (six(&data, 0, 40), six(&data, 1, 40));
    let mut group = c.benchmark_group("battle_engine");
    group.throughput(Throughput::Elements(1));
    let mut seed = 0u64;
    group.bench_function("6v6", |b| {
        b.iter(|| {
            seed += 1;
            simulate(RULES_VERSION, seed, &a, &d).actions.len()
        });
    });
    group.finish();
}

criterion_group!(benches, bench_battles);
criterion_main!(benches);
