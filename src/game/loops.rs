//! What a player's record keeps of the daily loops (quests, the shop,
//! purchases with real money), apart from their rules (`quests`, `shop`,
//! `purchases`), which read and change it on a `Player`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::economy::Currency;

/// What the write path counts: one name per kind of player action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// A daily-login claim.
    DailyLogin,
    /// A summon (any banner, any count).
    Summon,
    /// Single pulls (a 10-pull counts 10).
    Pull,
    /// A campaign win (a sweep counts each of its clears).
    CampaignWin,
    /// An arena challenge fought.
    ArenaChallenge,
    /// An arena challenge won.
    ArenaWin,
    /// A hero level-up.
    HeroLevelUp,
    /// An idle-reward claim.
    IdleClaim,
    /// A stamina gift sent to a friend.
    FriendGift,
    /// Stamina spent.
    StaminaSpent,
}

/// A currency grant of the quest tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reward {
    /// Which currency.
    pub currency: Currency,
    /// How much (positive).
    pub amount: i64,
}

/// A player's quest progress. Daily and weekly parts belong to the day and
/// week they name and start again at the first write of a new one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuestState {
    /// The UTC day of `daily`, `claimed`, `points` and `chests`.
    #[serde(default)]
    pub day: Option<NaiveDate>,
    /// Today's counts by activity.
    #[serde(default)]
    pub daily: BTreeMap<Activity, u64>,
    /// Daily quests claimed today.
    #[serde(default)]
    pub claimed: BTreeSet<String>,
    /// Activity points earned today.
    #[serde(default)]
    pub points: u32,
    /// Daily chests opened today (by their points).
    #[serde(default)]
    pub chests: BTreeSet<u32>,
    /// The Monday of `weekly_points` and `weekly_chests`.
    #[serde(default)]
    pub week: Option<NaiveDate>,
    /// Activity points earned this week.
    #[serde(default)]
    pub weekly_points: u32,
    /// Weekly chests opened this week.
    #[serde(default)]
    pub weekly_chests: BTreeSet<u32>,
    /// Counts since quests began, for achievements.
    #[serde(default)]
    pub lifetime: BTreeMap<Activity, u64>,
    /// Achievement tiers claimed (their quest ids).
    #[serde(default)]
    pub achievements: BTreeSet<String>,
}

/// The Monday (UTC) of the week holding `now`.
pub fn week_of(now: DateTime<Utc>) -> NaiveDate {
    let d = now.date_naive();
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

impl QuestState {
    /// Starts the day's and the week's parts over when `now` is past them.
    pub fn roll(&mut self, now: DateTime<Utc>) {
        let today = now.date_naive();
        if self.day != Some(today) {
            self.day = Some(today);
            self.daily.clear();
            self.claimed.clear();
            self.points = 0;
            self.chests.clear();
        }
        let week = week_of(now);
        if self.week != Some(week) {
            self.week = Some(week);
            self.weekly_points = 0;
            self.weekly_chests.clear();
        }
    }

    /// Counts `n` of `activity` at `now`.
    pub fn count(&mut self, activity: Activity, n: u64, now: DateTime<Utc>) {
        if n == 0 {
            return;
        }
        self.roll(now);
        *self.daily.entry(activity).or_default() += n;
        *self.lifetime.entry(activity).or_default() += n;
    }

    /// Today's count of `activity` (zero when the state is of another day).
    pub fn today(&self, activity: Activity, now: DateTime<Utc>) -> u64 {
        if self.day == Some(now.date_naive()) {
            self.daily.get(&activity).copied().unwrap_or(0)
        } else {
            0
        }
    }
}

/// A player's purchases in the current day and week.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShopState {
    /// The UTC day of `today`.
    #[serde(default)]
    pub day: Option<NaiveDate>,
    /// Purchases today by offer id (daily and fixed offers).
    #[serde(default)]
    pub today: BTreeMap<String, u32>,
    /// The Monday of `this_week`.
    #[serde(default)]
    pub week: Option<NaiveDate>,
    /// Medal-shop purchases this week by offer id.
    #[serde(default)]
    pub this_week: BTreeMap<String, u32>,
}

impl ShopState {
    /// Starts the day's and the week's counts over when `now` is past them.
    pub fn roll(&mut self, now: DateTime<Utc>) {
        if self.day != Some(now.date_naive()) {
            self.day = Some(now.date_naive());
            self.today.clear();
        }
        if self.week != Some(week_of(now)) {
            self.week = Some(week_of(now));
            self.this_week.clear();
        }
    }
}

/// A player's purchases with real money.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PurchaseState {
    /// Crystals granted per provider transaction id.
    #[serde(default)]
    pub granted: BTreeMap<String, i64>,
    /// Packs bought at least once (the first purchase pays double).
    #[serde(default)]
    pub packs: BTreeSet<String>,
    /// Transactions refunded.
    #[serde(default)]
    pub refunded: BTreeSet<String>,
    /// Crystals refunds could not take back (the balance was spent): owed.
    #[serde(default)]
    pub debt: i64,
    /// Redeem codes redeemed (each once per player).
    #[serde(default)]
    pub codes: BTreeSet<String>,
}

/// A player's claims of one login event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoginEventState {
    /// Rewards claimed so far.
    pub claimed: u32,
    /// The UTC day of the last claim.
    pub last_day: Option<NaiveDate>,
}

/// A player's pass in the season it names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PassState {
    /// The season (0: none yet).
    pub season: u32,
    /// Pass xp this season.
    pub xp: u64,
    /// The premium track is unlocked this season.
    pub premium: bool,
    /// Free-track levels claimed.
    pub free_claimed: BTreeSet<u32>,
    /// Premium-track levels claimed.
    pub premium_claimed: BTreeSet<u32>,
}

/// A player's abyss tower.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TowerState {
    /// Highest floor cleared (the next one is the only one open).
    pub best_floor: u32,
    /// The weekly board's score of the last clear (week, floor, time).
    pub board_score: u64,
    /// The last week whose board reward was mailed (mailed once per week).
    #[serde(default)]
    pub rewarded_week: u64,
}
