//! The player aggregate and the rules that depend only on it and the time
//! passed in: creation, player level, stamina regeneration, ticket refill.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::catalog::{self, Catalog, Stats};
use super::economy::Balances;

/// Stamina regeneration cap.
pub const STAMINA_MAX: i64 = 120;
/// One stamina point per this many seconds.
pub const STAMINA_REGEN_SECS: i64 = 360;
/// Tickets after the daily refill.
pub const ARENA_TICKETS_DAILY: i64 = 5;
/// The starter heroes, one per class, in team order.
pub const STARTER_HEROES: [&str; 3] = ["marcus_the_shield", "soren_the_flame", "kai_the_tempest"];
/// Team slots: 1-3 front row, 4-6 back row.
pub const TEAM_SLOTS: usize = 6;

/// A hero a player owns (at most one instance per hero).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedHero {
    /// Catalog id.
    pub hero_id: String,
    /// Current level.
    pub level: u32,
    /// Current stars.
    pub stars: u32,
    /// Unspent shards.
    pub shards: u32,
    /// When first obtained.
    pub acquired_at: DateTime<Utc>,
}

/// Per-banner pity state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PityState {
    /// Pulls since the last pity-category result.
    pub since_pity: u32,
    /// The next pity-category hero is the featured one (limited banners).
    pub featured_guaranteed: bool,
}

/// Everything the server keeps about one player, stored as one record so that
/// one conditional write changes it atomically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Player {
    /// Server-generated id.
    pub id: String,
    /// Display name as registered.
    pub username: String,
    /// Lower-cased username, unique.
    pub username_lower: String,
    /// argon2id PHC string. Never returned, never logged.
    pub password_hash: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Currency balances.
    pub balances: Balances,
    /// When stamina was last brought up to date (regeneration runs from here).
    pub stamina_at: DateTime<Utc>,
    /// The UTC day whose ticket refill has been applied.
    pub tickets_day: chrono::NaiveDate,
    /// Player level.
    pub level: u32,
    /// Xp into the current level.
    pub xp: u64,
    /// Owned heroes by id.
    pub heroes: BTreeMap<String, OwnedHero>,
    /// Six slots of hero ids.
    pub team: Vec<Option<String>>,
    /// Pity state by banner id.
    pub pity: BTreeMap<String, PityState>,
    /// Bumped on every write; the store's compare-and-set guard.
    pub version: u64,
}

impl Player {
    /// A new player with the starting balances, the three starter heroes and their team.
    pub fn new(id: String, username: &str, password_hash: String, now: DateTime<Utc>) -> Self {
        let heroes = STARTER_HEROES
            .iter()
            .map(|h| {
                (h.to_string(), OwnedHero { hero_id: h.to_string(), level: 1, stars: 1, shards: 0, acquired_at: now })
            })
            .collect();
        let mut team: Vec<Option<String>> = STARTER_HEROES.iter().map(|h| Some(h.to_string())).collect();
        team.resize(TEAM_SLOTS, None);
        Self {
            id,
            username: username.to_string(),
            username_lower: username.to_ascii_lowercase(),
            password_hash,
            created_at: now,
            balances: Balances::starting(),
            stamina_at: now,
            tickets_day: now.date_naive(),
            level: 1,
            xp: 0,
            heroes,
            team,
            pity: BTreeMap::new(),
            version: 0,
        }
    }

    /// Brings stamina and tickets up to `now` (lazy regeneration). Partial
    /// regeneration progress is kept by advancing `stamina_at` only by whole points.
    pub fn refresh(&mut self, now: DateTime<Utc>) {
        let b = &mut self.balances;
        if b.stamina >= STAMINA_MAX {
            self.stamina_at = now;
        } else if now > self.stamina_at {
            let elapsed = (now - self.stamina_at).num_seconds();
            let gained = elapsed / STAMINA_REGEN_SECS;
            let room = STAMINA_MAX - b.stamina;
            if gained >= room {
                b.stamina = STAMINA_MAX;
                self.stamina_at = now;
            } else {
                b.stamina += gained;
                self.stamina_at += Duration::seconds(gained * STAMINA_REGEN_SECS);
            }
        }
        let today = now.date_naive();
        if today > self.tickets_day {
            b.arena_tickets = b.arena_tickets.max(ARENA_TICKETS_DAILY);
            self.tickets_day = today;
        }
    }

    /// Seconds until the next stamina point, or `None` at or above the cap.
    pub fn next_stamina_in(&self, now: DateTime<Utc>) -> Option<i64> {
        (self.balances.stamina < STAMINA_MAX)
            .then(|| STAMINA_REGEN_SECS - (now - self.stamina_at).num_seconds().rem_euclid(STAMINA_REGEN_SECS))
    }

    /// Current stats of an owned hero.
    pub fn hero_stats(&self, catalog: &Catalog, hero_id: &str) -> Option<Stats> {
        let owned = self.heroes.get(hero_id)?;
        let def = catalog.get(hero_id)?;
        Some(catalog::stats_at(def.base_stats(), owned.level, owned.stars))
    }

    /// Sum of the power of the heroes in the team.
    pub fn team_power(&self, catalog: &Catalog) -> u64 {
        self.team.iter().flatten().filter_map(|h| self.hero_stats(catalog, h)).map(catalog::power).sum()
    }

    /// Adds player xp, levelling up while xp reaches `100 × level`.
    pub fn add_xp(&mut self, xp: u64) {
        self.xp += xp;
        while self.xp >= xp_to_next(self.level) {
            self.xp -= xp_to_next(self.level);
            self.level += 1;
        }
    }
}

/// Xp needed to go from `level` to the next: `100 × level`.
pub fn xp_to_next(level: u32) -> u64 {
    100 * level as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, h, m, s).unwrap()
    }

    #[test]
    fn stamina_regenerates_lazily_without_losing_partial_progress() {
        let mut p = Player::new("p".into(), "Ann", String::new(), at(0, 0, 0));
        p.balances.stamina = 10;
        p.refresh(at(0, 9, 0)); // 540 s: one point, 180 s carried over
        assert_eq!(p.balances.stamina, 11);
        assert_eq!(p.next_stamina_in(at(0, 9, 0)), Some(180));
        p.refresh(at(0, 12, 0)); // 180 s more completes the second point
        assert_eq!(p.balances.stamina, 12);
        p.refresh(at(23, 0, 0));
        assert_eq!(p.balances.stamina, STAMINA_MAX);
    }

    #[test]
    fn tickets_refill_once_per_utc_day_and_never_cut_a_surplus() {
        let mut p = Player::new("p".into(), "Ann", String::new(), at(10, 0, 0));
        p.balances.arena_tickets = 1;
        p.refresh(at(23, 59, 59));
        assert_eq!(p.balances.arena_tickets, 1);
        p.refresh(at(23, 59, 59) + Duration::seconds(1));
        assert_eq!(p.balances.arena_tickets, 5);
    }

    #[test]
    fn xp_levels_up_at_100_times_level() {
        let mut p = Player::new("p".into(), "Ann", String::new(), at(0, 0, 0));
        p.add_xp(350);
        assert_eq!((p.level, p.xp), (3, 50));
    }
}
