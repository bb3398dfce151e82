//! Offline simulation of one player pulling a banner, for designers and for
//! checking the engine against the published rates.

use std::collections::BTreeMap;

use super::banner::Banner;
use super::engine::pull;
use super::rates;
use crate::game::player::PityState;
use crate::game::rng::seeded;

/// One category's observed count next to its published long-run rate.
#[derive(Debug, Clone)]
pub struct SimulatedRate {
    /// Outcome id.
    pub id: String,
    /// Published consolidated rate.
    pub published: f64,
    /// Observed share.
    pub observed: f64,
    /// Half-width of the 99.9% band around `published`, from the share's
    /// renewal-reward deviation (`rates::share_sd`), not the binomial one.
    pub band: f64,
}

impl SimulatedRate {
    /// Whether the observed share lies inside the band.
    pub fn within_band(&self) -> bool {
        (self.observed - self.published).abs() <= self.band
    }
}

/// z for a two-sided 99.9% normal interval.
pub const Z_999: f64 = 3.2905;

/// Runs `pulls` pulls (in ten-pulls, the rest as singles) from a fresh state.
pub fn simulate(banner: &Banner, pulls: u64, seed: u64) -> Vec<SimulatedRate> {
    simulate_against(banner, banner, pulls, seed)
}

/// Pulls `engine`'s table and compares with what `published` discloses: a
/// check must fail when the engine does not serve the published table.
pub fn simulate_against(published: &Banner, engine: &Banner, pulls: u64, seed: u64) -> Vec<SimulatedRate> {
    let banner = engine;
    let mut rng = seeded(seed);
    let mut owned = BTreeMap::new();
    let mut pity = PityState::default();
    let mut counts = vec![0u64; banner.outcomes.len()];
    let index: BTreeMap<&str, usize> = banner.outcomes.iter().enumerate().map(|(i, o)| (o.id.as_str(), i)).collect();
    let mut left = pulls;
    while left > 0 {
        let n = if left >= 10 { 10 } else { 1 };
        let p = pull(banner, pity, &mut owned, n as u32, &mut rng);
        pity = p.pity;
        for r in &p.results {
            counts[index[r.category.as_str()]] += 1;
        }
        left -= n;
    }
    let n = pulls.max(1) as f64;
    rates::consolidated(published)
        .into_iter()
        .zip(rates::share_sd(published))
        .zip(counts)
        .map(|((r, sd), c)| SimulatedRate {
            id: r.id,
            published: r.consolidated_rate,
            observed: c as f64 / n,
            band: Z_999 * sd / n.sqrt(),
        })
        .collect()
}
