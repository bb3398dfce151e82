//! The hero catalog and the stat and power formulas (GAME.md, Heroes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::data_error::DataError;

/// Hero rarity, low to high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Rarity {
    /// Super rare.
    #[serde(rename = "SR")]
    Sr,
    /// Super super rare.
    #[serde(rename = "SSR")]
    Ssr,
    /// SSR plus.
    #[serde(rename = "SSR+")]
    SsrPlus,
    /// Ultra rare.
    #[serde(rename = "UR")]
    Ur,
    /// UR plus.
    #[serde(rename = "UR+")]
    UrPlus,
}

impl Rarity {
    /// Every rarity, low to high.
    pub const ALL: [Rarity; 5] = [Rarity::Sr, Rarity::Ssr, Rarity::SsrPlus, Rarity::Ur, Rarity::UrPlus];

    /// Shards granted when a duplicate of this rarity is summoned.
    pub fn duplicate_shards(self) -> u32 {
        match self {
            Rarity::Sr => 10,
            Rarity::Ssr => 20,
            Rarity::SsrPlus => 30,
            Rarity::Ur => 50,
            Rarity::UrPlus => 100,
        }
    }

    /// The label used in data files and responses.
    pub fn label(self) -> &'static str {
        match self {
            Rarity::Sr => "SR",
            Rarity::Ssr => "SSR",
            Rarity::SsrPlus => "SSR+",
            Rarity::Ur => "UR",
            Rarity::UrPlus => "UR+",
        }
    }
}

/// Hero element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[allow(missing_docs)]
pub enum Element {
    Fire,
    Water,
    Earth,
    Wind,
    Light,
    Dark,
}

/// Hero class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[allow(missing_docs)]
pub enum Class {
    Warrior,
    Mage,
    Archer,
}

/// Combat stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stats {
    /// Hit points.
    pub hp: u32,
    /// Attack.
    pub atk: u32,
    /// Defense.
    pub def: u32,
    /// Speed.
    pub spd: u32,
}

/// One hero's static data.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeroDef {
    /// Stable slug, e.g. `azrael_the_fallen`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Rarity.
    pub rarity: Rarity,
    /// Element.
    pub element: Element,
    /// Class.
    pub class: Class,
    /// Base hit points at level 1, 1 star.
    pub hp: u32,
    /// Base attack.
    pub atk: u32,
    /// Base defense.
    pub def: u32,
    /// Base speed.
    pub spd: u32,
    /// Only on banners that feature it.
    #[serde(default)]
    pub limited_only: bool,
}

impl HeroDef {
    /// Base stats at level 1, 1 star.
    pub fn base_stats(&self) -> Stats {
        Stats { hp: self.hp, atk: self.atk, def: self.def, spd: self.spd }
    }
}

/// Lowest and highest star count.
pub const MIN_STARS: u32 = 1;
/// Highest star count.
pub const MAX_STARS: u32 = 6;
/// Star multipliers in hundredths for 1★..6★.
const STAR_MULT_PCT: [u64; 6] = [100, 115, 135, 160, 190, 225];

/// Stats at `level` and `stars`: `base × (1 + 0.05 × (level − 1)) × star_mult`, rounded
/// down. Integer arithmetic so that every machine computes the same value.
pub fn stats_at(base: Stats, level: u32, stars: u32) -> Stats {
    let stars = stars.clamp(MIN_STARS, MAX_STARS);
    let mult = STAR_MULT_PCT[(stars - 1) as usize];
    // (1 + 0.05 (L-1)) = (19 + L) / 20 ; × mult/100  →  × (19 + L) × mult / 2000
    let scale = |v: u32| -> u32 { (u64::from(v) * (19 + u64::from(level)) * mult / 2000) as u32 };
    Stats { hp: scale(base.hp), atk: scale(base.atk), def: scale(base.def), spd: scale(base.spd) }
}

/// Power of a hero on its current stats: `HP/10 + 3·ATK + 2·DEF + SPD`.
pub fn power(s: Stats) -> u64 {
    u64::from(s.hp) / 10 + 3 * u64::from(s.atk) + 2 * u64::from(s.def) + u64::from(s.spd)
}

/// Level cap at a star count: `40 + 10 × stars`.
pub fn level_cap(stars: u32) -> u32 {
    40 + 10 * stars
}

/// Gold to go from level `l` to `l + 1`: `100 + 25·l²`.
pub fn level_up_cost(l: u32) -> u64 {
    100 + 25 * u64::from(l) * u64::from(l)
}

/// Shards to promote to `to_stars` (2..=6): 20, 40, 80, 160, 320.
pub fn promotion_cost(to_stars: u32) -> Option<u32> {
    (2..=MAX_STARS).contains(&to_stars).then(|| 20 << (to_stars - 2))
}

#[derive(Deserialize)]
struct HeroFile {
    hero: Vec<HeroDef>,
}

/// Every hero, by id, in file order too.
#[derive(Debug, Clone)]
pub struct Catalog {
    heroes: Vec<HeroDef>,
    by_id: BTreeMap<String, usize>,
}

impl Catalog {
    /// Parses and validates `heroes.toml`.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, DataError> {
        let parsed: HeroFile = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        let mut by_id = BTreeMap::new();
        for (i, h) in parsed.hero.iter().enumerate() {
            let valid_slug =
                !h.id.is_empty() && h.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_slug {
                return Err(DataError::new(file, &h.id, "id must be a non-empty slug of [a-z0-9_]"));
            }
            if h.hp == 0 || h.atk == 0 || h.def == 0 || h.spd == 0 {
                return Err(DataError::new(file, &h.id, "hp, atk, def and spd must all be positive"));
            }
            if by_id.insert(h.id.clone(), i).is_some() {
                return Err(DataError::new(file, &h.id, "duplicate hero id"));
            }
        }
        if parsed.hero.is_empty() {
            return Err(DataError::new(file, "(file)", "no heroes defined"));
        }
        Ok(Self { heroes: parsed.hero, by_id })
    }

    /// The hero with this id.
    pub fn get(&self, id: &str) -> Option<&HeroDef> {
        self.by_id.get(id).map(|&i| &self.heroes[i])
    }

    /// Every hero in file order.
    pub fn all(&self) -> &[HeroDef] {
        &self.heroes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_follow_the_formula_and_round_down() {
        let base = Stats { hp: 1400, atk: 130, def: 120, spd: 85 };
        assert_eq!(stats_at(base, 1, 1), base);
        // level 10, 2 stars: × 1.45 × 1.15 = × 1.6675
        let s = stats_at(base, 10, 2);
        assert_eq!(s, Stats { hp: 2334, atk: 216, def: 200, spd: 141 });
        assert_eq!(power(base), 140 + 390 + 240 + 85);
    }

    #[test]
    fn costs_match_the_rules() {
        assert_eq!(level_up_cost(1), 125);
        assert_eq!(level_up_cost(10), 2600);
        assert_eq!(level_cap(1), 50);
        assert_eq!(level_cap(6), 100);
        let costs: Vec<_> = (2..=6).map(|s| promotion_cost(s).unwrap()).collect();
        assert_eq!(costs, vec![20, 40, 80, 160, 320]);
        assert_eq!(promotion_cost(7), None);
    }
}
