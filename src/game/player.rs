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
    /// The player's version when it was obtained (0 for the starters and for
    /// heroes obtained before this was kept): which heroes a summon found owned,
    /// in write order, for re-deriving it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub acquired_version: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Per-banner pity state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PityState {
    /// Pulls since the last pity-category result.
    pub since_pity: u32,
    /// The next pity-category hero is the featured one (limited banners).
    pub featured_guaranteed: bool,
}

/// A currency attachment of a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attachment {
    /// Currency.
    pub currency: super::economy::Currency,
    /// Amount (positive).
    pub amount: i64,
}

/// A system mail in a player's mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mail {
    /// Mail id.
    pub id: String,
    /// Subject line.
    pub subject: String,
    /// Text.
    pub body: String,
    /// Currency attachments.
    pub attachments: Vec<Attachment>,
    /// When sent.
    pub sent_at: DateTime<Utc>,
    /// Claimable until.
    pub expires_at: DateTime<Utc>,
    /// When claimed, once.
    pub claimed_at: Option<DateTime<Utc>>,
}

/// Most mails kept per player; the oldest go first when a new one arrives.
pub const MAILBOX_MAX: usize = 200;

/// Leaderboard scores, recomputed on every write to the player.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scores {
    /// Team power.
    pub power: u64,
    /// Campaign: stages cleared × 10 + total stars, so stars break ties.
    pub campaign: u64,
    /// Arena rating.
    pub arena: u64,
    /// The abyss tower's weekly board: week, highest floor, who got there first.
    #[serde(default)]
    pub tower: u64,
}

/// Starting arena rating.
pub const ARENA_START_RATING: i64 = 1000;

fn start_rating() -> i64 {
    ARENA_START_RATING
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
    /// Best stars of each cleared campaign stage, by stage number − 1 (stages
    /// clear in order, so the cleared ones are a prefix).
    #[serde(default)]
    pub campaign_stars: Vec<u8>,
    /// Idle rewards accrue from here.
    #[serde(default)]
    pub idle_claimed_at: DateTime<Utc>,
    /// Consecutive daily-login claims ending at the last one.
    #[serde(default)]
    pub daily_streak: u32,
    /// UTC day of the last daily-login claim.
    #[serde(default)]
    pub daily_last_claim: Option<chrono::NaiveDate>,
    /// System mail, newest last.
    #[serde(default)]
    pub mailbox: Vec<Mail>,
    /// Arena rating.
    #[serde(default = "start_rating")]
    pub arena_rating: i64,
    /// The arena season ("2026-11") the rating belongs to.
    #[serde(default)]
    pub arena_season: String,
    /// Challenges fought this season.
    #[serde(default)]
    pub arena_season_battles: u32,
    /// Bumped by a logout or a password change: tokens issued for an older
    /// version are refused.
    #[serde(default)]
    pub token_version: u32,
    /// Failed logins in a row (reset by a successful one).
    #[serde(default)]
    pub login_failures: u32,
    /// No login is tried before this time (backs off exponentially with failures).
    #[serde(default)]
    pub login_blocked_until: Option<DateTime<Utc>>,
    /// The opponents last offered: the only ones a challenge may name.
    #[serde(default)]
    pub arena_offer: Option<ArenaOffer>,
    /// Spending and age controls on summons.
    #[serde(default)]
    pub spending: super::spending::SpendingControls,
    /// Provably fair pulls: the committed seed per banner kind, the last revealed ones.
    #[serde(default)]
    pub fairness: super::seeds::Fairness,
    /// Daily quests, activity points and achievements.
    #[serde(default)]
    pub quests: super::loops::QuestState,
    /// Shop purchases of the day and week.
    #[serde(default)]
    pub shop: super::loops::ShopState,
    /// Purchases with real money: transactions credited and refunded, debt.
    #[serde(default)]
    pub purchases: super::loops::PurchaseState,
    /// Claims of login events, by event id.
    #[serde(default)]
    pub login_events: BTreeMap<String, super::loops::LoginEventState>,
    /// The battle pass of the current season.
    #[serde(default)]
    pub pass: super::loops::PassState,
    /// The abyss tower.
    #[serde(default)]
    pub tower: super::loops::TowerState,
    /// Chat is refused until then (an operator's mute).
    #[serde(default)]
    pub chat_muted_until: Option<DateTime<Utc>>,
    /// The last UTC day the player acted (friends see it coarsely).
    #[serde(default)]
    pub active_on: Option<chrono::NaiveDate>,
    /// Leaderboard scores (derived; kept on the record so stores can index them).
    #[serde(default)]
    pub scores: Scores,
    /// Bumped on every write; the store's compare-and-set guard.
    pub version: u64,
}

/// Failed logins allowed in a row before each further one waits.
pub const FREE_LOGIN_FAILURES: u32 = 3;
/// The longest wait after failed logins.
pub const MAX_LOGIN_BACKOFF_SECS: i64 = 900;

impl Player {
    /// Records a failed login at `now`: after [`FREE_LOGIN_FAILURES`], the next
    /// try waits 1 s, then 2, 4, ... up to [`MAX_LOGIN_BACKOFF_SECS`].
    pub fn login_failed(&mut self, now: DateTime<Utc>) {
        self.login_failures = self.login_failures.saturating_add(1);
        if let Some(extra) = self.login_failures.checked_sub(FREE_LOGIN_FAILURES + 1) {
            let wait = 1i64.checked_shl(extra.min(20)).unwrap_or(i64::MAX).min(MAX_LOGIN_BACKOFF_SECS);
            self.login_blocked_until = Some(now + chrono::Duration::seconds(wait));
        }
    }

    /// Clears the failures after a successful login.
    pub fn login_succeeded(&mut self) {
        self.login_failures = 0;
        self.login_blocked_until = None;
    }
}

/// Arena opponents the server offered a player, kept on the player so that a
/// challenge is checked against what the server chose, on any pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArenaOffer {
    /// When it was made (it expires).
    pub at: DateTime<Utc>,
    /// Who was offered.
    pub opponents: Vec<OfferedOpponent>,
}

/// One offered opponent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferedOpponent {
    /// A player id or a bot id (`bot:<n>`).
    pub id: String,
    /// A bot's rating as offered (its strength); `None` for a player.
    pub bot_rating: Option<i64>,
}

impl Player {
    /// A new player with the starting balances, the three starter heroes and their team.
    pub fn new(id: String, username: &str, password_hash: String, now: DateTime<Utc>) -> Self {
        let heroes = STARTER_HEROES
            .iter()
            .map(|h| {
                (
                    h.to_string(),
                    OwnedHero {
                        hero_id: h.to_string(),
                        level: 1,
                        stars: 1,
                        shards: 0,
                        acquired_at: now,
                        acquired_version: 0,
                    },
                )
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
            campaign_stars: Vec::new(),
            idle_claimed_at: now,
            daily_streak: 0,
            daily_last_claim: None,
            mailbox: Vec::new(),
            arena_rating: ARENA_START_RATING,
            arena_season: String::new(),
            arena_season_battles: 0,
            token_version: 0,
            login_failures: 0,
            login_blocked_until: None,
            arena_offer: None,
            spending: super::spending::SpendingControls::default(),
            fairness: super::seeds::Fairness::default(),
            quests: super::loops::QuestState::default(),
            active_on: Some(now.date_naive()),
            chat_muted_until: None,
            shop: super::loops::ShopState::default(),
            purchases: super::loops::PurchaseState::default(),
            login_events: BTreeMap::new(),
            pass: super::loops::PassState::default(),
            tower: super::loops::TowerState::default(),
            scores: Scores::default(),
            version: 0,
        }
    }

    /// Campaign stages cleared.
    pub fn stages_cleared(&self) -> usize {
        self.campaign_stars.len()
    }

    /// Recomputes the leaderboard scores from the current state.
    pub fn recompute_scores(&mut self, catalog: &Catalog) {
        self.scores = Scores {
            power: self.team_power(catalog),
            campaign: self.stages_cleared() as u64 * 10
                + self.campaign_stars.iter().map(|&s| u64::from(s)).sum::<u64>(),
            arena: self.arena_rating.max(0) as u64,
            tower: self.tower.board_score,
        };
    }

    /// Delivers a mail, dropping the oldest beyond the mailbox limit.
    pub fn deliver(&mut self, mail: Mail) {
        self.mailbox.push(mail);
        if self.mailbox.len() > MAILBOX_MAX {
            let excess = self.mailbox.len() - MAILBOX_MAX;
            self.mailbox.drain(..excess);
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
        self.mailbox.retain(|m| m.expires_at > now);
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
    100 * u64::from(level)
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
