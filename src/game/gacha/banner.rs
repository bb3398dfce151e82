//! Banner tables from `config/banners.toml`, validated into typed form.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::PPM;
use crate::game::catalog::{Catalog, Rarity};
use crate::game::data_error::DataError;
use crate::game::economy::Currency;
use crate::game::player::PityState;

/// A banner's kind. Pity counters and the featured guarantee are kept per kind
/// (GAME.md: per banner type), so they carry from one banner of a kind to the
/// next: the next limited banner starts where the last one left off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BannerKind {
    /// The coin banner.
    Standard,
    /// The crystal banner.
    Premium,
    /// The divine-essence banner.
    Divine,
    /// Dated banners with featured heroes.
    Limited,
}

impl BannerKind {
    /// Every kind.
    pub const ALL: [BannerKind; 4] = [Self::Standard, Self::Premium, Self::Divine, Self::Limited];

    /// The key of the kind's pity in a player's record.
    pub fn pity_key(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Premium => "premium",
            Self::Divine => "divine",
            Self::Limited => "limited",
        }
    }
}

/// What an outcome category grants.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutcomeKind {
    /// A hero of this rarity, uniformly among the banner's pool.
    Hero {
        /// The rarity drawn.
        rarity: Rarity,
    },
    /// A fixed amount of a currency.
    Currency {
        /// Which currency.
        currency: Currency,
        /// How much.
        amount: i64,
    },
    /// One of the banner's filler rewards.
    Filler,
}

/// One outcome category of a banner with its base weight.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    /// Disclosure name ("SR", "crystals_8000", "filler").
    pub id: String,
    /// What it grants.
    #[serde(flatten)]
    pub kind: OutcomeKind,
    /// Base weight in parts per million.
    pub weight_ppm: u32,
}

/// A filler reward.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FillerKind {
    /// A fixed amount of a currency.
    Currency {
        /// Which currency.
        currency: Currency,
        /// How much.
        amount: i64,
    },
    /// Shards of a random owned hero, or the fallback when the player owns none.
    Shards {
        /// Shards granted.
        amount: u32,
        /// Currency granted instead when no hero is owned.
        fallback_currency: Currency,
        /// Amount granted instead.
        fallback_amount: i64,
    },
}

/// A filler reward with its relative weight.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Filler {
    /// What it grants.
    #[serde(flatten)]
    pub kind: FillerKind,
    /// Relative weight among the fillers.
    pub weight: u32,
}

/// Soft pity: from `start_pull` pulls without the pity category, its chance rises by
/// `step_ppm` a pull, taken from the `take_from` categories in order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SoftPity {
    /// The first pull (counted since the last pity result) that is boosted.
    pub start_pull: u32,
    /// Added to the pity category's weight per boosted pull.
    pub step_ppm: u32,
    /// Outcome indices the boost is taken from, in order.
    #[serde(skip)]
    pub take_from: Vec<usize>,
    /// Their ids, for disclosure.
    #[serde(rename = "take_from")]
    pub take_from_ids: Vec<String>,
}

/// A validated banner.
#[derive(Debug, Clone, Serialize)]
pub struct Banner {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its kind: banners of one kind share the player's pity.
    pub kind: BannerKind,
    /// The version of its rate table, named by every receipt and history row.
    pub version: u32,
    /// When this version took effect.
    pub effective_from: DateTime<Utc>,
    /// The currency it costs.
    pub currency: Currency,
    /// Price of one pull.
    pub cost_single: i64,
    /// Price of ten pulls.
    pub cost_ten: i64,
    /// Index of the pity category among `outcomes`.
    #[serde(skip)]
    pub pity_index: usize,
    /// The pity category's id.
    pub pity_category: String,
    /// The `hard_pity`-th pull without the pity category is that category.
    pub hard_pity: u32,
    /// Availability window (none: always on).
    pub starts_at: Option<DateTime<Utc>>,
    /// End of the window.
    pub ends_at: Option<DateTime<Utc>>,
    /// Featured heroes (limited banners).
    pub featured: Vec<String>,
    /// Chance that a pity-category hero is featured, when not guaranteed.
    pub featured_share_ppm: u32,
    /// Outcome categories with base weights.
    pub outcomes: Vec<Outcome>,
    /// Filler rewards.
    pub filler: Vec<Filler>,
    /// Soft pity, if any.
    pub soft_pity: Option<SoftPity>,
    /// Hero ids by rarity in this banner's pool, sorted for determinism.
    pub pools: BTreeMap<Rarity, Vec<String>>,
    /// Weights for pulls 1..=hard_pity, computed once at load.
    #[serde(skip)]
    weight_table: Vec<Vec<u32>>,
}

impl Banner {
    /// Cost of a summon of `count` pulls (1 or 10).
    pub fn cost(&self, count: u32) -> Option<i64> {
        match count {
            1 => Some(self.cost_single),
            10 => Some(self.cost_ten),
            _ => None,
        }
    }

    /// Whether the banner can be pulled at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.starts_at.is_none_or(|s| now >= s) && self.ends_at.is_none_or(|e| now < e)
    }

    /// Outcome weights for the `pull`-th pull since the last pity result (1-based).
    pub fn weights_at(&self, pull: u32) -> &[u32] {
        &self.weight_table[(pull.clamp(1, self.hard_pity) - 1) as usize]
    }

    fn compute_weights(&self, pull: u32) -> Vec<u32> {
        let mut w: Vec<u32> = self.outcomes.iter().map(|o| o.weight_ppm).collect();
        if pull >= self.hard_pity {
            w.fill(0);
            w[self.pity_index] = PPM;
            return w;
        }
        if let Some(sp) = &self.soft_pity {
            if pull >= sp.start_pull {
                let boost = (u64::from(sp.step_ppm) * u64::from(pull - sp.start_pull + 1)).min(u64::from(PPM)) as u32;
                let boost = boost.min(PPM - w[self.pity_index]);
                w[self.pity_index] += boost;
                let mut left = boost;
                for &i in &sp.take_from {
                    let taken = left.min(w[i]);
                    w[i] -= taken;
                    left -= taken;
                }
            }
        }
        w
    }

    /// SHA-256 of everything that decides a pull's odds and price (not the name,
    /// version or dates): the same table, the same fingerprint.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            for k in ["name", "version", "effective_from", "starts_at", "ends_at"] {
                o.remove(k);
            }
        }
        hex::encode(Sha256::digest(v.to_string().as_bytes()))
    }

    /// Hero pool of the pity category without the featured heroes.
    pub fn off_featured_pool(&self, rarity: Rarity) -> Vec<&String> {
        self.pools.get(&rarity).map(|p| p.iter().filter(|h| !self.featured.contains(h)).collect()).unwrap_or_default()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutcome {
    id: String,
    kind: String,
    rarity: Option<Rarity>,
    currency: Option<Currency>,
    amount: Option<i64>,
    weight_ppm: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiller {
    kind: String,
    currency: Option<Currency>,
    amount: i64,
    fallback_currency: Option<Currency>,
    fallback_amount: Option<i64>,
    weight: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSoftPity {
    start_pull: u32,
    step_ppm: u32,
    take_from: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBanner {
    id: String,
    name: String,
    kind: BannerKind,
    version: u32,
    effective_from: DateTime<Utc>,
    currency: Currency,
    cost_single: i64,
    cost_ten: i64,
    pity_category: String,
    hard_pity: u32,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    featured: Vec<String>,
    #[serde(default)]
    featured_share_ppm: u32,
    outcome: Vec<RawOutcome>,
    #[serde(default)]
    filler: Vec<RawFiller>,
    soft_pity: Option<RawSoftPity>,
}

#[derive(Deserialize)]
struct RawFile {
    banner: Vec<RawBanner>,
}

/// Every banner, in file order.
#[derive(Debug, Clone)]
pub struct BannerTable {
    banners: Vec<Banner>,
    /// Earlier versions of the banners' tables, kept to disclose and audit
    /// what served past summons.
    archive: Vec<Banner>,
}

impl BannerTable {
    /// Parses and validates `banners.toml` against the hero catalog.
    pub fn from_toml(file: &str, text: &str, catalog: &Catalog) -> Result<Self, DataError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        let mut banners: Vec<Banner> = Vec::new();
        for rb in raw.banner {
            let b = validate(file, rb, catalog)?;
            if banners.iter().any(|o| o.id == b.id) {
                return Err(DataError::new(file, &b.id, "duplicate banner id"));
            }
            banners.push(b);
        }
        if banners.is_empty() {
            return Err(DataError::new(file, "(file)", "no banners defined"));
        }
        Ok(Self { banners, archive: Vec::new() })
    }

    /// Adds earlier versions of the banners' tables from one archive file (the
    /// same format as `banners.toml`): each must be older than the banner's
    /// current version, and appear once.
    pub fn archive_toml(&mut self, file: &str, text: &str, catalog: &Catalog) -> Result<(), DataError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        for rb in raw.banner {
            let b = validate(file, rb, catalog)?;
            let current = self.get(&b.id).map(|c| c.version);
            if current.is_none_or(|v| b.version >= v) {
                return Err(DataError::new(
                    file,
                    &b.id,
                    format!("archived version {} must be of a current banner and older than its version", b.version),
                ));
            }
            if self.archive.iter().any(|o| o.id == b.id && o.version == b.version) {
                return Err(DataError::new(file, &b.id, format!("version {} archived twice", b.version)));
            }
            self.archive.push(b);
        }
        Ok(())
    }

    /// The banner's table at `version`: the current one or an archived one.
    pub fn version(&self, id: &str, version: u32) -> Option<&Banner> {
        self.banners.iter().chain(&self.archive).find(|b| b.id == id && b.version == version)
    }

    /// The banner with this id.
    pub fn get(&self, id: &str) -> Option<&Banner> {
        self.banners.iter().find(|b| b.id == id)
    }

    /// Every banner in file order.
    pub fn all(&self) -> &[Banner] {
        &self.banners
    }

    /// Moves pity counters a record kept by banner id (before pity was kept by
    /// kind) to their banner's kind. Where two banners of one kind left
    /// counters, the player keeps the further one and any held guarantee.
    pub fn migrate_pity(&self, pity: &mut BTreeMap<String, PityState>) {
        let old: Vec<(String, BannerKind)> = pity
            .keys()
            .filter_map(|k| self.get(k).map(|b| (k.clone(), b.kind)))
            .filter(|(k, kind)| kind.pity_key() != k)
            .collect();
        for (id, kind) in old {
            let Some(moved) = pity.remove(&id) else { continue };
            let kept = pity.entry(kind.pity_key().to_string()).or_insert(moved);
            kept.since_pity = kept.since_pity.max(moved.since_pity);
            kept.featured_guaranteed |= moved.featured_guaranteed;
        }
    }

    /// Checks every banner's table against the fingerprints recorded for its
    /// version in `lock` (lines `<banner> <version> <sha256>`): a table that
    /// changed under a recorded version is refused, so every receipt's version
    /// names exactly one table. Returns the lines of versions not recorded yet.
    pub fn check_versions(&self, file: &str, lock: &str) -> Result<Vec<String>, DataError> {
        let mut recorded = BTreeMap::new();
        for (n, line) in lock.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [banner, version, hash] = parts.as_slice() else {
                return Err(DataError::new(file, format!("line {}", n + 1), "expected: <banner> <version> <sha256>"));
            };
            recorded.insert(((*banner).to_string(), (*version).to_string()), (*hash).to_string());
        }
        let mut unrecorded = Vec::new();
        for b in self.banners.iter().chain(&self.archive) {
            let hash = b.fingerprint();
            match recorded.get(&(b.id.clone(), b.version.to_string())) {
                Some(h) if *h == hash => {}
                Some(_) => {
                    return Err(DataError::new(
                        file,
                        &b.id,
                        format!(
                            "its rate table changed but its version ({}) did not: raise the version, then record it",
                            b.version
                        ),
                    ));
                }
                None => unrecorded.push(format!("{} {} {hash}", b.id, b.version)),
            }
        }
        Ok(unrecorded)
    }

    /// Ids of the banners of `kind`, in file order.
    pub fn of_kind(&self, kind: BannerKind) -> Vec<&str> {
        self.banners.iter().filter(|b| b.kind == kind).map(|b| b.id.as_str()).collect()
    }
}

fn validate(file: &str, rb: RawBanner, catalog: &Catalog) -> Result<Banner, DataError> {
    let id = rb.id.clone();
    let err = |p: String| DataError::new(file, &id, p);
    if rb.cost_single <= 0 || rb.cost_ten <= 0 {
        return Err(err("cost_single and cost_ten must be positive".into()));
    }
    // Records kept pity by banner id before it was kept by kind: an id that names
    // a kind must be that kind, or its old counters would move to the wrong one.
    if let Some(named) = BannerKind::ALL.iter().find(|k| k.pity_key() == id) {
        if *named != rb.kind {
            return Err(err(format!("a banner with id {id:?} must be of kind {id:?}")));
        }
    }
    if (rb.kind == BannerKind::Limited) != (rb.starts_at.is_some() && rb.ends_at.is_some()) {
        return Err(err("a limited banner, and only a limited one, has both starts_at and ends_at".into()));
    }
    if rb.hard_pity < 1 {
        return Err(err(format!("hard_pity must be at least 1, is {}", rb.hard_pity)));
    }
    if let (Some(s), Some(e)) = (rb.starts_at, rb.ends_at) {
        if s >= e {
            return Err(err("starts_at must be before ends_at".into()));
        }
    }
    let mut outcomes = Vec::new();
    for o in rb.outcome {
        let kind = match o.kind.as_str() {
            "hero" => OutcomeKind::Hero {
                rarity: o.rarity.ok_or_else(|| err(format!("outcome {}: hero needs a rarity", o.id)))?,
            },
            "currency" => {
                let currency = o.currency.ok_or_else(|| err(format!("outcome {}: currency missing", o.id)))?;
                let amount = o
                    .amount
                    .filter(|a| *a > 0)
                    .ok_or_else(|| err(format!("outcome {}: amount must be positive", o.id)))?;
                OutcomeKind::Currency { currency, amount }
            }
            "filler" => OutcomeKind::Filler,
            k => return Err(err(format!("outcome {}: unknown kind {k:?} (hero, currency, filler)", o.id))),
        };
        if outcomes.iter().any(|x: &Outcome| x.id == o.id) {
            return Err(err(format!("outcome {} appears twice", o.id)));
        }
        outcomes.push(Outcome { id: o.id, kind, weight_ppm: o.weight_ppm });
    }
    let sum: u64 = outcomes.iter().map(|o| u64::from(o.weight_ppm)).sum();
    if sum != u64::from(PPM) {
        return Err(err(format!("outcome weights sum to {sum} ppm, must be exactly {PPM}")));
    }
    let pity_index = outcomes
        .iter()
        .position(|o| o.id == rb.pity_category)
        .ok_or_else(|| err(format!("pity_category {:?} is not an outcome", rb.pity_category)))?;

    for h in &rb.featured {
        if catalog.get(h).is_none() {
            return Err(err(format!("featured hero {h:?} is not in the hero catalog")));
        }
    }
    if rb.featured_share_ppm > PPM {
        return Err(err(format!("featured_share_ppm {} exceeds {PPM}", rb.featured_share_ppm)));
    }
    if !rb.featured.is_empty() {
        let OutcomeKind::Hero { rarity: pity_rarity } = outcomes[pity_index].kind else {
            return Err(err("featured heroes need a hero pity category".into()));
        };
        for h in &rb.featured {
            if catalog.get(h).map(|d| d.rarity) != Some(pity_rarity) {
                return Err(err(format!("featured hero {h:?} is not of the pity rarity {}", pity_rarity.label())));
            }
        }
    }

    // Pools: every non-limited hero of the rarity plus this banner's featured heroes.
    let mut pools: BTreeMap<Rarity, Vec<String>> = BTreeMap::new();
    for o in &outcomes {
        if let OutcomeKind::Hero { rarity } = o.kind {
            let mut pool: Vec<String> = catalog
                .all()
                .iter()
                .filter(|h| h.rarity == rarity && (!h.limited_only || rb.featured.contains(&h.id)))
                .map(|h| h.id.clone())
                .collect();
            pool.sort();
            if pool.is_empty() {
                return Err(err(format!("outcome {}: no hero of rarity {} in the pool", o.id, rarity.label())));
            }
            pools.insert(rarity, pool);
        }
    }

    let has_filler_outcome = outcomes.iter().any(|o| o.kind == OutcomeKind::Filler);
    let mut filler = Vec::new();
    for f in rb.filler {
        let kind = match f.kind.as_str() {
            "currency" => FillerKind::Currency {
                currency: f.currency.ok_or_else(|| err("filler: currency missing".into()))?,
                amount: f.amount,
            },
            "shards" => FillerKind::Shards {
                amount: u32::try_from(f.amount).map_err(|_| err("filler: shard amount out of range".into()))?,
                fallback_currency: f
                    .fallback_currency
                    .ok_or_else(|| err("filler: shards need fallback_currency".into()))?,
                fallback_amount: f.fallback_amount.ok_or_else(|| err("filler: shards need fallback_amount".into()))?,
            },
            k => return Err(err(format!("filler: unknown kind {k:?} (currency, shards)"))),
        };
        if f.amount <= 0 || f.weight == 0 {
            return Err(err("filler: amount and weight must be positive".into()));
        }
        filler.push(Filler { kind, weight: f.weight });
    }
    if has_filler_outcome == filler.is_empty() {
        return Err(err("a filler outcome needs [[filler]] entries, and filler entries need a filler outcome".into()));
    }

    let soft_pity = match rb.soft_pity {
        None => None,
        Some(sp) => {
            if sp.start_pull < 1 || sp.start_pull >= rb.hard_pity {
                return Err(err(format!("soft_pity.start_pull must be in 1..{}", rb.hard_pity)));
            }
            let mut take_from = Vec::new();
            for t in &sp.take_from {
                let i = outcomes
                    .iter()
                    .position(|o| &o.id == t)
                    .ok_or_else(|| err(format!("soft_pity.take_from: unknown outcome {t:?}")))?;
                if i == pity_index {
                    return Err(err("soft_pity.take_from must not include the pity category".into()));
                }
                take_from.push(i);
            }
            Some(SoftPity { start_pull: sp.start_pull, step_ppm: sp.step_ppm, take_from, take_from_ids: sp.take_from })
        }
    };

    let banner = Banner {
        id: rb.id,
        name: rb.name,
        kind: rb.kind,
        version: rb.version,
        effective_from: rb.effective_from,
        currency: rb.currency,
        cost_single: rb.cost_single,
        cost_ten: rb.cost_ten,
        pity_index,
        pity_category: rb.pity_category,
        hard_pity: rb.hard_pity,
        starts_at: rb.starts_at,
        ends_at: rb.ends_at,
        featured: rb.featured,
        featured_share_ppm: rb.featured_share_ppm,
        outcomes,
        filler,
        soft_pity,
        pools,
        weight_table: Vec::new(),
    };
    let mut banner = banner;
    banner.weight_table = (1..=banner.hard_pity).map(|pull| banner.compute_weights(pull)).collect();
    // Soft pity must be fully funded by its take_from categories at every pull.
    if banner.soft_pity.is_some() {
        for pull in 1..banner.hard_pity {
            let w = banner.weights_at(pull);
            let s: u64 = w.iter().map(|&x| u64::from(x)).sum();
            if s != u64::from(PPM) {
                return Err(err(format!(
                    "soft pity at pull {pull}: weights sum to {s} ppm; take_from cannot fund the boost"
                )));
            }
        }
    }
    Ok(banner)
}

#[cfg(test)]
mod tests {
    use crate::game::data::GameData;

    use super::*;

    #[test]
    fn limited_soft_pity_matches_the_published_curve() {
        let data = GameData::builtin();
        let b = data.banners.get("celestial_descent").unwrap();
        let ur = b.pity_index;
        assert_eq!(b.weights_at(65)[ur], 12_000);
        assert_eq!(b.weights_at(66)[ur], 82_000);
        assert_eq!(b.weights_at(79)[ur], 992_000);
        assert_eq!(b.weights_at(80)[ur], PPM);
        // taken from SR first, then SSR
        let w79 = b.weights_at(79);
        assert_eq!((w79[0], w79[1]), (0, 8_000));
    }

    #[test]
    fn invalid_tables_are_refused_with_file_entry_and_problem() {
        let data = GameData::builtin();
        let base = include_str!("../../../config/banners.toml");
        let bad_sum = base.replacen(
            "weight_ppm = 908000 },\n  { id = \"SSR\",  kind = \"hero\", rarity = \"SSR\",  weight_ppm = 80000",
            "weight_ppm = 908001 },\n  { id = \"SSR\",  kind = \"hero\", rarity = \"SSR\",  weight_ppm = 80000",
            1,
        );
        let e = BannerTable::from_toml("banners.toml", &bad_sum, &data.catalog).unwrap_err();
        assert_eq!((e.file.as_str(), e.entry.as_str()), ("banners.toml", "standard"));
        assert!(e.problem.contains("1000001"), "{e}");

        let zero_pity = base.replacen("hard_pity = 50", "hard_pity = 0", 1);
        let e = BannerTable::from_toml("banners.toml", &zero_pity, &data.catalog).unwrap_err();
        assert!(e.problem.contains("hard_pity"), "{e}");

        let unknown = base.replace("aethon_the_celestial_blade", "nobody");
        let e = BannerTable::from_toml("banners.toml", &unknown, &data.catalog).unwrap_err();
        assert!(e.to_string().contains("celestial_descent: featured hero \"nobody\""), "{e}");
    }
}
