//! Engine throughput: single pulls and ten-pulls per second on each banner.
// criterion_main! generates an undocumented `main`.
#![allow(missing_docs)]

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use divine_heroes::game::data::GameData;
use divine_heroes::game::gacha::engine::pull;
use divine_heroes::game::player::PityState;
use divine_heroes::game::rng::seeded;

fn bench_pulls(c: &mut Criterion) {
    let data = GameData::builtin();
    let mut group = c.benchmark_group("gacha_engine");
    for banner in data.banners.all() {
        for count in [1u32, 10] {
            group.throughput(Throughput::Elements(u64::from(count)));
            group.bench_with_input(
                BenchmarkId::new(banner.id.as_str(), format!("{count}-pull")),
                &count,
                |b, &count| {
                    let mut rng = seeded(7);
                    let mut pity = PityState::default();
                    let mut owned: BTreeMap<String, ()> = ["marcus_the_shield", "soren_the_flame", "kai_the_tempest"]
                        .iter()
                        .map(|h| (h.to_string(), ()))
                        .collect();
                    b.iter(|| {
                        let p = pull(banner, pity, &mut owned, count, &mut rng);
                        pity = p.pity;
                        p.results.len()
                    });
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_pulls);
criterion_main!(benches);
