//! Rate disclosure computed from the same tables the engine uses.
//!
//! The pity counter makes pulls a Markov chain over "pulls since the last pity
//! result". Its stationary distribution is closed-form: the chance of reaching
//! state k is the product of the chances of missing the pity category before
//! it, so the long-run rates are exact sums over at most `hard_pity` states,
//! not a simulation.

use serde::Serialize;

use super::banner::{Banner, BannerTable, FillerKind, OutcomeKind};
use super::PPM;
use crate::game::data_error::DataError;

/// Probability of each outcome at one point of the pity counter.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    /// The pull number since the last pity result (1-based).
    pub pull: u32,
    /// Probability of each outcome id, in table order.
    pub probabilities: Vec<(String, f64)>,
}

/// Long-run rate of one outcome category.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsolidatedRate {
    /// Outcome id.
    pub id: String,
    /// Base rate from the table.
    pub base_rate: f64,
    /// Long-run rate including pity and soft pity.
    pub consolidated_rate: f64,
}

/// What a player should expect to spend for a featured hero.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeaturedExpectation {
    /// Expected pulls from a fresh state (no pity, no guarantee) to the first featured hero.
    pub expected_pulls: f64,
    /// Worst case in pulls (two hard pities).
    pub max_pulls: u32,
    /// Expected cost buying single pulls.
    pub expected_cost_single_pulls: f64,
    /// Expected cost buying ten-pulls (at the ten-pull price per pull).
    pub expected_cost_ten_pulls: f64,
}

/// Probability of the pity category at the `pull`-th pull since the last one.
fn pity_p(b: &Banner, pull: u32) -> f64 {
    f64::from(b.weights_at(pull)[b.pity_index]) / f64::from(PPM)
}

/// Stationary distribution over the pull number since the last pity result (index k-1 ↔ pull k).
fn stationary(b: &Banner) -> Vec<f64> {
    let mut reach = Vec::with_capacity(b.hard_pity as usize);
    let mut r = 1.0;
    for pull in 1..=b.hard_pity {
        reach.push(r);
        r *= 1.0 - pity_p(b, pull);
    }
    let total: f64 = reach.iter().sum();
    reach.iter().map(|x| x / total).collect()
}

/// Per outcome category, in table order: the standard deviation of its observed
/// share after n pulls, times √n. Pulls are not independent draws (pity ties
/// them together), so the binomial √(r(1−r)) overstates it for the pity
/// category by 2-3×, too wide a band to catch an off-by-one hard pity. Each
/// pity cycle (the pulls up to and including a pity-category result) is a
/// renewal; with T its length and R the category's count in it, the share is
/// asymptotically normal with variance Var(R − r·T) / (E[T]·n) (renewal-reward
/// theorem). Given T = k, the first k−1 pulls are independent draws among the
/// other categories at their pull's weights, so every moment is an exact sum.
pub fn share_sd(b: &Banner) -> Vec<f64> {
    let categories = b.outcomes.len();
    let ppm = f64::from(PPM);
    // Per cycle length k: P(T = k), and per category E[R | T = k] and Var(R | T = k).
    let (mut reach, mut mean, mut var) = (1.0, vec![0.0; categories], vec![0.0; categories]);
    let mut cycles = Vec::with_capacity(b.hard_pity as usize);
    for pull in 1..=b.hard_pity {
        let weights = b.weights_at(pull);
        let pity = f64::from(weights[b.pity_index]) / ppm;
        let mut at_end = mean.clone();
        at_end[b.pity_index] += 1.0;
        cycles.push((reach * pity, at_end, var.clone()));
        reach *= 1.0 - pity;
        if pity < 1.0 {
            let others = ppm - f64::from(weights[b.pity_index]);
            for c in (0..categories).filter(|&c| c != b.pity_index) {
                let share = f64::from(weights[c]) / others;
                mean[c] += share;
                var[c] += share * (1.0 - share);
            }
        }
    }
    let length = |k: usize| (k + 1) as f64;
    let mu: f64 = cycles.iter().enumerate().map(|(k, (chance, ..))| length(k) * chance).sum();
    (0..categories)
        .map(|c| {
            let rate: f64 = cycles.iter().map(|(chance, means, _)| chance * means[c]).sum::<f64>() / mu;
            let second: f64 = cycles
                .iter()
                .enumerate()
                .map(|(k, (chance, means, vars))| chance * (vars[c] + (means[c] - rate * length(k)).powi(2)))
                .sum();
            (second / mu).sqrt()
        })
        .collect()
}

/// The per-pull probability curve for pulls 1..=hard_pity.
pub fn curve(b: &Banner) -> Vec<CurvePoint> {
    (1..=b.hard_pity)
        .map(|pull| CurvePoint {
            pull,
            probabilities: b
                .weights_at(pull)
                .iter()
                .zip(&b.outcomes)
                .map(|(w, o)| (o.id.clone(), f64::from(*w) / f64::from(PPM)))
                .collect(),
        })
        .collect()
}

/// Long-run rate of every outcome category, in table order.
pub fn consolidated(b: &Banner) -> Vec<ConsolidatedRate> {
    let pi = stationary(b);
    let mut rates = vec![0.0; b.outcomes.len()];
    for (k, p) in pi.iter().enumerate() {
        for (i, w) in b.weights_at(k as u32 + 1).iter().enumerate() {
            rates[i] += p * (f64::from(*w) / f64::from(PPM));
        }
    }
    b.outcomes
        .iter()
        .zip(rates)
        .map(|(o, r)| ConsolidatedRate {
            id: o.id.clone(),
            base_rate: f64::from(o.weight_ppm) / f64::from(PPM),
            consolidated_rate: r,
        })
        .collect()
}

/// Expected amount of the banner's own currency handed back per pull, in the long run.
/// For a shards filler the fallback is counted, the most it could return.
pub fn expected_own_currency_per_pull(b: &Banner) -> f64 {
    let filler_total: f64 = b.filler.iter().map(|f| f64::from(f.weight)).sum();
    let filler_return: f64 = b
        .filler
        .iter()
        .map(|f| {
            let amount = match f.kind {
                FillerKind::Currency { currency, amount } if currency == b.currency => amount,
                FillerKind::Shards { fallback_currency, fallback_amount, .. } if fallback_currency == b.currency => {
                    fallback_amount
                }
                _ => 0,
            };
            f64::from(f.weight) / filler_total * amount as f64
        })
        .sum();
    consolidated(b)
        .iter()
        .zip(&b.outcomes)
        .map(|(r, o)| match o.kind {
            OutcomeKind::Currency { currency, amount } if currency == b.currency => r.consolidated_rate * amount as f64,
            OutcomeKind::Filler => r.consolidated_rate * filler_return,
            _ => 0.0,
        })
        .sum()
}

/// Expected pulls and cost to the first featured hero, for banners that feature one.
pub fn featured_expectation(b: &Banner) -> Option<FeaturedExpectation> {
    if b.featured.is_empty() {
        return None;
    }
    let share = f64::from(b.featured_share_ppm) / f64::from(PPM);
    let h = b.hard_pity as usize;
    // e_g[k]: expected further pulls at pull-count k since the last pity result,
    // with the guarantee on; e_f the same without it. Solved backwards from hard pity.
    let mut e_g = vec![0.0; h + 1];
    for k in (0..h).rev() {
        let p = pity_p(b, k as u32 + 1);
        e_g[k] = 1.0 + (1.0 - p) * e_g[k + 1];
    }
    let restart = e_g[0];
    let mut e_f = vec![0.0; h + 1];
    for k in (0..h).rev() {
        let p = pity_p(b, k as u32 + 1);
        e_f[k] = 1.0 + (1.0 - p) * e_f[k + 1] + p * (1.0 - share) * restart;
    }
    let expected = e_f[0];
    Some(FeaturedExpectation {
        expected_pulls: expected,
        max_pulls: 2 * b.hard_pity,
        expected_cost_single_pulls: expected * b.cost_single as f64,
        expected_cost_ten_pulls: expected * b.cost_ten as f64 / 10.0,
    })
}

/// The long-run share of featured heroes among pity-category heroes: without the
/// guarantee a pity hero is featured with chance s, and one that is not makes
/// the next featured, so the guarantee state is a two-state chain whose
/// featured share is 1 / (2 − s) (two thirds at s = ½, not one half).
pub fn featured_fraction(b: &Banner) -> Option<f64> {
    let OutcomeKind::Hero { rarity } = b.outcomes[b.pity_index].kind else { return None };
    if b.featured.is_empty() {
        return None;
    }
    if b.off_featured_pool(rarity).is_empty() {
        return Some(1.0);
    }
    Some(1.0 / (2.0 - f64::from(b.featured_share_ppm) / f64::from(PPM)))
}

/// The long-run chance of one obtainable item per pull.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemOdds {
    /// A hero id, a currency outcome's id, or a filler reward in words.
    pub item: String,
    /// The outcome category it belongs to.
    pub category: String,
    /// Whether it is a featured hero.
    pub featured: bool,
    /// Exact long-run probability per pull (double precision).
    pub probability: f64,
    /// The same as a percentage rounded to 4 decimal places.
    pub percent: String,
}

/// A probability as a percentage with 4 decimals, the precision the disclosure states.
pub fn percent(p: f64) -> String {
    format!("{:.4}%", p * 100.0)
}

/// Every obtainable item with its long-run chance per pull: each hero of a
/// category's pool (uniform within the pool; featured heroes by the featured
/// share with the guarantee), each currency outcome, each filler reward.
pub fn item_odds(b: &Banner) -> Vec<ItemOdds> {
    let mut items = Vec::new();
    let mut push = |item: String, category: &str, featured: bool, probability: f64| {
        items.push(ItemOdds {
            item,
            category: category.to_string(),
            featured,
            probability,
            percent: percent(probability),
        });
    };
    let filler_total: f64 = b.filler.iter().map(|f| f64::from(f.weight)).sum();
    for (i, (o, r)) in b.outcomes.iter().zip(consolidated(b)).enumerate() {
        let rate = r.consolidated_rate;
        match &o.kind {
            OutcomeKind::Hero { rarity } => {
                let pool = b.pools.get(rarity).map(Vec::as_slice).unwrap_or_default();
                match featured_fraction(b).filter(|_| i == b.pity_index) {
                    Some(f) => {
                        for h in &b.featured {
                            push(h.clone(), &o.id, true, rate * f / b.featured.len() as f64);
                        }
                        let off = b.off_featured_pool(*rarity);
                        for h in &off {
                            push((*h).clone(), &o.id, false, rate * (1.0 - f) / off.len() as f64);
                        }
                    }
                    None => {
                        for h in pool {
                            push(h.clone(), &o.id, false, rate / pool.len() as f64);
                        }
                    }
                }
            }
            OutcomeKind::Currency { currency, amount } => push(format!("{amount} {currency}"), &o.id, false, rate),
            OutcomeKind::Filler => {
                for f in &b.filler {
                    let item = match f.kind {
                        FillerKind::Currency { currency, amount } => format!("{amount} {currency}"),
                        FillerKind::Shards { amount, fallback_currency, fallback_amount } => format!(
                            "{amount} shards of a random owned hero ({fallback_amount} {fallback_currency} with none)"
                        ),
                    };
                    push(item, &o.id, false, rate * f64::from(f.weight) / filler_total);
                }
            }
        }
    }
    items
}

/// How many pulls something takes, from a fresh state (no pity count, no guarantee).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PullsTo {
    /// Expected pulls.
    pub mean: f64,
    /// Half of players get there within this many pulls.
    pub p50: u32,
    /// 90% of players.
    pub p90: u32,
    /// 99% of players.
    pub p99: u32,
    /// Every player (the rules guarantee it).
    pub max: u32,
}

/// What that costs, bought as single pulls or only as 10-pulls (a 10-pull buyer
/// pays for the whole 10-pull that brings it).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CostTo {
    /// Expected cost.
    pub mean: f64,
    /// Half of players spend at most this.
    pub p50: i64,
    /// 90% of players.
    pub p90: i64,
    /// 99% of players.
    pub p99: i64,
    /// The most anyone spends.
    pub max: i64,
}

/// Pulls and currency to a milestone.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Milestone {
    /// What is reached (the pity category, or a featured hero).
    pub what: String,
    /// Pulls to it.
    pub pulls: PullsTo,
    /// Currency buying single pulls.
    pub cost_single_pulls: CostTo,
    /// Currency buying only 10-pulls.
    pub cost_ten_pulls_only: CostTo,
}

/// P(first pity-category result at pull n), n = 1..=hard_pity (index n − 1).
fn first_pity_pmf(b: &Banner) -> Vec<f64> {
    let mut reach = 1.0;
    (1..=b.hard_pity)
        .map(|pull| {
            let p = pity_p(b, pull);
            let here = reach * p;
            reach *= 1.0 - p;
            here
        })
        .collect()
}

/// P(the first pity-category result within n pulls), n = 1..=hard_pity, from a
/// fresh state.
pub fn first_pity_cdf(b: &Banner) -> Vec<f64> {
    first_pity_pmf(b)
        .iter()
        .scan(0.0, |acc, p| {
            *acc += p;
            Some(*acc)
        })
        .collect()
}

fn milestone(b: &Banner, what: String, pmf: &[f64]) -> Milestone {
    let at = |q: f64| {
        let mut cdf = 0.0;
        for (i, p) in pmf.iter().enumerate() {
            cdf += p;
            if cdf >= q - 1e-12 {
                return i as u32 + 1;
            }
        }
        pmf.len() as u32
    };
    let max = pmf.iter().rposition(|&p| p > 0.0).map_or(0, |i| i as u32 + 1);
    let mean_of = |f: &dyn Fn(u32) -> f64| pmf.iter().enumerate().map(|(i, p)| p * f(i as u32 + 1)).sum::<f64>();
    let single = |n: u32| i64::from(n) * b.cost_single;
    let tens = |n: u32| i64::from(n.div_ceil(10)) * b.cost_ten;
    let cost = |f: &dyn Fn(u32) -> i64| CostTo {
        mean: mean_of(&|n| f(n) as f64),
        p50: f(at(0.5)),
        p90: f(at(0.9)),
        p99: f(at(0.99)),
        max: f(max),
    };
    Milestone {
        what,
        pulls: PullsTo { mean: mean_of(&f64::from), p50: at(0.5), p90: at(0.9), p99: at(0.99), max },
        cost_single_pulls: cost(&single),
        cost_ten_pulls_only: cost(&tens),
    }
}

/// Pulls and currency to the first pity-category result and, on a banner with
/// featured heroes, to the first featured hero, from a fresh state.
pub fn milestones(b: &Banner) -> Vec<Milestone> {
    let first = first_pity_pmf(b);
    let mut out = vec![milestone(b, format!("the first {}", b.pity_category), &first)];
    if let (Some(_), OutcomeKind::Hero { rarity }) = (featured_fraction(b), &b.outcomes[b.pity_index].kind) {
        // Featured at the first pity result with chance s, else at the second
        // (guaranteed): s·T + (1 − s)·(T₁ + T₂).
        let s = if b.off_featured_pool(*rarity).is_empty() {
            1.0
        } else {
            f64::from(b.featured_share_ppm) / f64::from(PPM)
        };
        let mut pmf = vec![0.0; 2 * first.len()];
        for (i, p) in first.iter().enumerate() {
            pmf[i] += s * p;
            for (j, q) in first.iter().enumerate() {
                pmf[i + j + 1] += (1.0 - s) * p * q;
            }
        }
        out.push(milestone(b, "a featured hero".into(), &pmf));
    }
    out
}

/// Checks that no banner hands back, on average, as much of its own currency as
/// a pull costs (the divine banner refunds essence). Run by the loader once the
/// banners are built, since it needs their exact rates.
pub fn check_payback(file: &str, table: &BannerTable) -> Result<(), DataError> {
    for banner in table.all() {
        let returned = expected_own_currency_per_pull(banner);
        let cheapest = banner.cost_ten as f64 / 10.0;
        if returned >= cheapest.min(banner.cost_single as f64) {
            return Err(DataError::new(
                file,
                &banner.id,
                format!(
                    "expected {} returned per pull is {returned:.4}, must be below its cost {cheapest}",
                    banner.currency
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::data::GameData;

    #[test]
    fn consolidated_rates_sum_to_one_and_exceed_base_for_the_pity_category() {
        let data = GameData::builtin();
        for b in data.banners.all() {
            let rates = consolidated(b);
            let sum: f64 = rates.iter().map(|r| r.consolidated_rate).sum();
            assert!((sum - 1.0).abs() < 1e-12, "{}: {sum}", b.id);
            let p = &rates[b.pity_index];
            assert!(p.consolidated_rate > p.base_rate, "{}", b.id);
        }
    }

    #[test]
    fn hard_pity_alone_matches_the_geometric_closed_form() {
        // premium: UR at 2% with hard pity at 50 and no soft pity:
        // long-run rate = 1 / E[pulls per UR], E = (1 - 0.98^50) / 0.02.
        let data = GameData::builtin();
        let b = data.banners.get("premium").unwrap();
        let ur = consolidated(b)[b.pity_index].consolidated_rate;
        let expected = 0.02 / (1.0 - 0.98f64.powi(50));
        assert!((ur - expected).abs() < 1e-12, "{ur} vs {expected}");
    }

    /// Each banner's long-run rate of its pity category, computed apart from this
    /// code (exact rational arithmetic over the rules in GAME.md: base chance,
    /// soft pity from its start pull, hard pity) and pinned here.
    #[test]
    fn pity_category_rates_equal_independently_derived_constants() {
        let data = GameData::builtin();
        for (banner, expected) in [
            ("standard", 0.026_479_753_406_306),
            ("premium", 0.031_454_932_823_493),
            ("divine", 0.029_113_689_780_135),
            ("celestial_descent", 0.021_155_809_016_951),
        ] {
            let b = data.banners.get(banner).unwrap();
            let r = consolidated(b)[b.pity_index].consolidated_rate;
            assert!((r - expected).abs() < 1e-14, "{banner}: {r} vs {expected}");
        }
    }

    /// For the pity category the renewal-reward deviation is the classic
    /// σ_T / μ_T^{3/2} of a renewal count, well under the binomial one; on these
    /// tables no category's deviation is above its binomial one.
    #[test]
    fn share_deviation_follows_the_renewal_count_and_is_narrower_than_binomial() {
        let data = GameData::builtin();
        for b in data.banners.all() {
            let sd = share_sd(b);
            let mut reach = 1.0;
            let (mut m1, mut m2) = (0.0, 0.0);
            for pull in 1..=b.hard_pity {
                let p = pity_p(b, pull);
                let k = f64::from(pull);
                m1 += reach * p * k;
                m2 += reach * p * k * k;
                reach *= 1.0 - p;
            }
            let renewal = ((m2 - m1 * m1) / m1.powi(3)).sqrt();
            assert!((sd[b.pity_index] - renewal).abs() < 1e-12, "{}: {} vs {renewal}", b.id, sd[b.pity_index]);
            let r = consolidated(b);
            let binomial = (r[b.pity_index].consolidated_rate * (1.0 - r[b.pity_index].consolidated_rate)).sqrt();
            assert!(sd[b.pity_index] < 0.6 * binomial, "{}: {} vs binomial {binomial}", b.id, sd[b.pity_index]);
            for (i, d) in sd.iter().enumerate() {
                let b1 = (r[i].consolidated_rate * (1.0 - r[i].consolidated_rate)).sqrt();
                assert!(*d > 0.0 && *d <= b1 * 1.05, "{} {}: {d} vs {b1}", b.id, r[i].id);
            }
        }
    }

    /// Celestial Descent: the featured hero is two thirds of its URs in the long
    /// run (the guarantee), 1.410387% a pull; a buyer of 10-pulls only spends
    /// 20,298.67 crystals on average to the first featured hero, more than the
    /// 19,143.68 of pricing each pull at a tenth of a 10-pull.
    #[test]
    fn featured_odds_and_the_ten_pull_buyers_cost() {
        let data = GameData::builtin();
        let b = data.banners.get("celestial_descent").unwrap();
        let items = item_odds(b);
        let featured: f64 = items.iter().filter(|i| i.featured).map(|i| i.probability).sum();
        assert!((featured - 0.021_155_809_016_951 * 2.0 / 3.0).abs() < 1e-14, "{featured}");
        assert_eq!(items.iter().find(|i| i.featured).unwrap().percent, "1.4104%");
        let m = milestones(b);
        let to_featured = &m[1];
        assert!(
            (to_featured.cost_ten_pulls_only.mean - 20_298.67).abs() < 0.01,
            "{}",
            to_featured.cost_ten_pulls_only.mean
        );
        let per_pull_priced = featured_expectation(b).unwrap().expected_cost_ten_pulls;
        assert!((per_pull_priced - 19_143.68).abs() < 0.01, "{per_pull_priced}");
        assert!((to_featured.pulls.mean - featured_expectation(b).unwrap().expected_pulls).abs() < 1e-9);
        assert_eq!((to_featured.pulls.max, m[0].pulls.max), (160, 80));
        assert!(m[0].pulls.p50 <= m[0].pulls.p90 && m[0].pulls.p90 <= m[0].pulls.p99 && m[0].pulls.p99 <= 80);
    }

    #[test]
    fn every_banners_items_sum_to_one_and_the_first_pity_result_is_hard_pity_bound() {
        let data = GameData::builtin();
        for b in data.banners.all() {
            let total: f64 = item_odds(b).iter().map(|i| i.probability).sum();
            assert!((total - 1.0).abs() < 1e-12, "{}: {total}", b.id);
            let first = &milestones(b)[0];
            assert_eq!(first.pulls.max, b.hard_pity, "{}", b.id);
            let rate = consolidated(b)[b.pity_index].consolidated_rate;
            assert!((first.pulls.mean - 1.0 / rate).abs() < 1e-9, "{}: the mean cycle is 1 / rate", b.id);
            assert_eq!(first.cost_single_pulls.max, i64::from(b.hard_pity) * b.cost_single);
        }
    }

    #[test]
    fn divine_returns_less_essence_than_it_costs() {
        let data = GameData::builtin();
        let b = data.banners.get("divine").unwrap();
        let r = expected_own_currency_per_pull(b);
        assert!(r > 0.2 && r < 1.0, "{r}");
    }

    #[test]
    fn featured_expectation_is_between_one_and_two_pity_cycles() {
        let data = GameData::builtin();
        let b = data.banners.get("celestial_descent").unwrap();
        let f = featured_expectation(b).unwrap();
        let cycle = 1.0 / consolidated(b)[b.pity_index].consolidated_rate;
        assert!((f.expected_pulls - 1.5 * cycle).abs() < 1e-9, "{} vs {}", f.expected_pulls, 1.5 * cycle);
        assert_eq!(f.max_pulls, 160);
    }
}
