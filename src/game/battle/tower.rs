//! The abyss tower (LOOPS.md, Abyss tower): 300 floors of enemies generated
//! from the floor number, fought in order on the ordinary battle engine, with
//! first-clear rewards and a weekly board by highest floor (ties: who got
//! there first that week).

use chrono::{DateTime, Datelike, Timelike, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{BattleLog, Side, TeamSnapshot, UnitSnapshot};
use crate::game::catalog::{self, Catalog};
use crate::game::data_error::DataError;
use crate::game::economy::Currency;
use crate::game::error::GameError;
use crate::game::player::Player;
use crate::game::rng::seeded;

/// `[tower]` of `battle.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TowerRules {
    /// Floors.
    pub floors: u32,
    /// Enemies per floor.
    pub enemies: usize,
    /// Enemy level: `min(max_level, level_base + floor / level_divisor)`.
    pub level_base: u32,
    /// See `level_base`.
    pub level_divisor: u32,
    /// See `level_base`.
    pub max_level: u32,
    /// Enemy stats ×(100 + pct × floor)/100.
    pub stat_pct_per_floor: u32,
    /// Every this many floors, a boss.
    pub boss_every: u32,
    /// The boss's HP multiplier.
    pub boss_hp_multiplier: u32,
    /// First clear: gold × floor.
    pub gold_per_floor: i64,
    /// First clear of every `crystals_every`th floor: crystals.
    pub crystals_every: u32,
    /// See `crystals_every`.
    pub crystals: i64,
    /// First clear of every `essence_every`th floor: divine essence.
    pub essence_every: u32,
    /// See `essence_every`.
    pub essence: i64,
    /// Enemy rarities by floor: up to `to_floor`, heroes up to `rarity`.
    pub roster_tiers: Vec<RosterTier>,
    /// Weekly board rewards: crystals by rank band, best first.
    pub weekly: Vec<WeeklyBand>,
}

/// Enemies of floors up to `to_floor` come from heroes up to `rarity`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RosterTier {
    /// Last floor of the tier.
    pub to_floor: u32,
    /// Highest rarity met there.
    pub rarity: catalog::Rarity,
}

/// Crystals mailed to the weekly board's ranks up to `to_rank`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyBand {
    /// Last rank of the band.
    pub to_rank: u64,
    /// Crystals.
    pub crystals: i64,
}

impl TowerRules {
    /// Validates the parameters.
    pub fn validate(&self, file: &str) -> Result<(), DataError> {
        let err = |m: &str| Err(DataError::new(file, "tower", m));
        if self.floors == 0 || !(1..=6).contains(&self.enemies) || self.level_divisor == 0 || self.max_level == 0 {
            return err("floors, level_divisor and max_level must be positive and enemies 1-6");
        }
        if self.boss_every == 0 || self.crystals_every == 0 || self.essence_every == 0 || self.boss_hp_multiplier == 0 {
            return err("boss_every, crystals_every, essence_every and boss_hp_multiplier must be positive");
        }
        let tiers_ok = self.roster_tiers.windows(2).all(|w| w[0].to_floor < w[1].to_floor)
            && self.roster_tiers.last().is_some_and(|t| t.to_floor >= self.floors);
        if !tiers_ok {
            return err("roster_tiers must have increasing floors and reach the last floor");
        }
        if self.weekly.windows(2).any(|w| w[0].to_rank >= w[1].to_rank) || self.weekly.iter().any(|b| b.crystals <= 0) {
            return err("weekly bands must have increasing ranks and positive crystals");
        }
        Ok(())
    }

    /// The crystals mailed to `rank` of a week's board, if any.
    pub fn weekly_crystals(&self, rank: u64) -> Option<i64> {
        self.weekly.iter().find(|b| rank <= b.to_rank).map(|b| b.crystals)
    }

    /// Floor `f`: a pure function of its number.
    pub fn floor(&self, catalog: &Catalog, f: u32) -> Option<Floor> {
        if f == 0 || f > self.floors {
            return None;
        }
        let tier = self.roster_tiers.iter().find(|t| f <= t.to_floor).map_or(catalog::Rarity::UrPlus, |t| t.rarity);
        let roster: Vec<_> = catalog.all().iter().filter(|h| !h.limited_only && h.rarity <= tier).collect();
        if roster.is_empty() {
            return None;
        }
        let mut rng = seeded(0x7077_6572_0000_0000 | u64::from(f));
        let level = self.max_level.min(self.level_base + f / self.level_divisor);
        let pct = u64::from(100 + self.stat_pct_per_floor * f);
        let boss = f.is_multiple_of(self.boss_every);
        let mut enemies: TeamSnapshot = vec![None; 6];
        for (slot, e) in enemies.iter_mut().enumerate().take(self.enemies) {
            let def = roster[rng.gen_range(0..roster.len())];
            let s = catalog::stats_at(def.base_stats(), level, 1);
            let scale = |v: u32| u32::try_from((u64::from(v) * pct / 100).max(1)).unwrap_or(u32::MAX);
            let mut stats = catalog::Stats { hp: scale(s.hp), atk: scale(s.atk), def: scale(s.def), spd: s.spd };
            if boss && slot == self.enemies - 1 {
                stats.hp = stats.hp.saturating_mul(self.boss_hp_multiplier);
            }
            *e = Some(UnitSnapshot { hero_id: def.id.clone(), element: def.element, class: def.class, stats });
        }
        let power = enemies.iter().flatten().map(|u| catalog::power(u.stats)).sum();
        Some(Floor { floor: f, boss, level, enemies, power, first_clear: self.first_clear(f) })
    }

    fn first_clear(&self, f: u32) -> FloorRewards {
        FloorRewards {
            gold: self.gold_per_floor * i64::from(f),
            crystals: if f.is_multiple_of(self.crystals_every) { self.crystals } else { 0 },
            divine_essence: if f.is_multiple_of(self.essence_every) { self.essence } else { 0 },
        }
    }
}

/// What a floor's first clear pays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FloorRewards {
    /// Gold.
    pub gold: i64,
    /// Crystals.
    pub crystals: i64,
    /// Divine essence.
    pub divine_essence: i64,
}

/// One floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Floor {
    /// Its number.
    pub floor: u32,
    /// A boss floor.
    pub boss: bool,
    /// The enemies' level.
    pub level: u32,
    /// The enemy team.
    pub enemies: TeamSnapshot,
    /// Its power.
    pub power: u64,
    /// What its first clear pays.
    pub first_clear: FloorRewards,
}

/// Weeks since 1970-01-05 (a Monday), the weekly board's period.
pub fn week_index(now: DateTime<Utc>) -> u64 {
    let monday = crate::game::quests::week_of(now);
    let epoch_monday = chrono::NaiveDate::from_ymd_opt(1970, 1, 5).unwrap_or_default();
    u64::try_from((monday - epoch_monday).num_weeks()).unwrap_or(0)
}

/// Seconds into the week of `now`.
fn secs_into_week(now: DateTime<Utc>) -> u64 {
    u64::from(now.weekday().num_days_from_monday()) * 86_400 + u64::from(now.num_seconds_from_midnight())
}

/// The weekly board's score: the week, then the floor, then who got there
/// first (earlier is higher), so this week's climbers rank above everyone else
/// and a plain best-first read of the board is this week's ranking.
pub fn board_score(week: u64, floor: u32, reached: DateTime<Utc>) -> u64 {
    if floor == 0 {
        return 0;
    }
    (week << 32) | (u64::from(floor) << 20) | (0xF_FFFF - secs_into_week(reached).min(0xF_FFFF))
}

/// The (week, floor) a board score names.
pub fn decode_score(score: u64) -> (u64, u32) {
    (score >> 32, u32::try_from((score >> 20) & 0xFFF).unwrap_or(0))
}

/// Applies a fought floor: a win clears it (first-clear rewards paid, the
/// board score moved); a loss costs nothing.
pub fn apply_fight(
    rules: &TowerRules,
    p: &mut Player,
    floor: &Floor,
    log: &BattleLog,
    now: DateTime<Utc>,
) -> Result<Option<FloorRewards>, GameError> {
    if floor.floor != p.tower.best_floor + 1 {
        return Err(GameError::Conflict(format!("only floor {} can be attempted", p.tower.best_floor + 1)));
    }
    if log.winner != Side::Attacker {
        return Ok(None);
    }
    let r = rules.first_clear(floor.floor);
    p.balances.credit(Currency::Gold, r.gold);
    p.balances.credit(Currency::Crystals, r.crystals);
    p.balances.credit(Currency::DivineEssence, r.divine_essence);
    p.tower.best_floor = floor.floor;
    p.tower.board_score = board_score(week_index(now), floor.floor, now);
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::data::GameData;
    use chrono::TimeZone;

    #[test]
    fn floors_are_a_function_of_their_number_with_bosses_and_rewards() {
        let data = GameData::builtin();
        let rules = &data.battle.tower;
        let f9 = rules.floor(&data.catalog, 9).unwrap();
        assert_eq!(f9, rules.floor(&data.catalog, 9).unwrap(), "deterministic");
        assert_eq!((f9.boss, f9.level, f9.first_clear.crystals), (false, 23, 0));
        let f10 = rules.floor(&data.catalog, 10).unwrap();
        assert!(f10.boss);
        assert_eq!(f10.first_clear, FloorRewards { gold: 10_000, crystals: 10, divine_essence: 0 });
        assert_eq!(rules.floor(&data.catalog, 50).unwrap().first_clear.divine_essence, 1);
        assert_eq!(rules.floor(&data.catalog, 300).unwrap().level, 100, "capped");
        assert!(rules.floor(&data.catalog, 301).is_none() && rules.floor(&data.catalog, 0).is_none());
        let sr_only =
            f9.enemies.iter().flatten().all(|u| data.catalog.get(&u.hero_id).unwrap().rarity == catalog::Rarity::Sr);
        assert!(sr_only, "the first floors field SR heroes");
    }

    #[test]
    fn the_board_score_orders_by_week_then_floor_then_who_came_first() {
        let thu = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
        let w = week_index(thu);
        assert_eq!(week_index(thu + chrono::Duration::days(4)), w + 1, "Monday starts a week");
        let early = board_score(w, 5, thu);
        let late = board_score(w, 5, thu + chrono::Duration::hours(1));
        assert!(early > late && board_score(w, 6, thu + chrono::Duration::days(3)) > early);
        assert!(board_score(w + 1, 1, thu + chrono::Duration::days(4)) > board_score(w, 300, thu));
        assert_eq!(decode_score(late), (w, 5));
    }
}
