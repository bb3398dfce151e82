//! Daily quests, activity chests (daily and weekly) and tiered achievements
//! (LOOPS.md, Activity): the table from `config/quests.toml`, the per-player
//! progress and the claims. Progress is counted by the write path in the same
//! atomic write as the action that earns it (the store's `apply_mutation`
//! counts it), so a claim can never race its progress.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::data_error::DataError;
use super::economy::Currency;
use super::error::GameError;
pub use super::loops::{week_of, Activity, QuestState, Reward};
use super::player::Player;

/// One daily quest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyQuest {
    /// Stable id (the claim route's).
    pub id: String,
    /// Shown to the player.
    pub name: String,
    /// What counts towards it.
    pub activity: Activity,
    /// How many of it complete the quest.
    pub target: u64,
    /// Activity points its claim gives (towards the day's and the week's chests).
    pub points: u32,
}

/// A chest opened by activity points.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chest {
    /// Points needed.
    pub points: u32,
    /// What it gives.
    pub reward: Reward,
}

/// What an achievement measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Campaign stages cleared.
    StagesCleared,
    /// Distinct heroes owned.
    HeroesOwned,
    /// Single pulls made (counted from when quests were introduced).
    TotalPulls,
    /// Arena challenges won (likewise).
    ArenaWins,
    /// The stars of the player's best hero.
    BestHeroStars,
    /// Player level.
    PlayerLevel,
}

/// One tier of an achievement.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The measure's value that reaches it.
    pub target: u64,
    /// What its claim gives.
    pub reward: Reward,
}

/// A tiered achievement, each tier claimed once per player.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Achievement {
    /// Stable id; a tier's quest id is `<id>_<target>`.
    pub id: String,
    /// Shown to the player.
    pub name: String,
    /// What it measures.
    pub measure: Measure,
    /// Increasing targets.
    pub tiers: Vec<Tier>,
}

/// `config/quests.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestTable {
    /// Daily quests (reset 00:00 UTC).
    pub daily: Vec<DailyQuest>,
    /// Chests of the day's activity points.
    pub daily_chests: Vec<Chest>,
    /// Chests of the week's activity points (reset Monday 00:00 UTC).
    pub weekly_chests: Vec<Chest>,
    /// Achievements.
    pub achievements: Vec<Achievement>,
}

impl QuestTable {
    /// Parses and validates `quests.toml`: unique quest ids, positive targets,
    /// points and rewards, chests and tiers in increasing order.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, DataError> {
        let t: QuestTable = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        let mut ids = HashSet::new();
        for q in &t.daily {
            if q.target == 0 || q.points == 0 {
                return Err(DataError::new(file, &q.id, "target and points must be positive"));
            }
            if !ids.insert(q.id.clone()) {
                return Err(DataError::new(file, &q.id, "quest id used twice"));
            }
        }
        for (name, chests) in [("daily_chests", &t.daily_chests), ("weekly_chests", &t.weekly_chests)] {
            if chests.windows(2).any(|w| w[0].points >= w[1].points) || chests.iter().any(|c| c.points == 0) {
                return Err(DataError::new(file, name, "chest points must be positive and increasing"));
            }
            if chests.iter().any(|c| c.reward.amount <= 0) {
                return Err(DataError::new(file, name, "rewards must be positive"));
            }
        }
        let daily_max: u32 = t.daily.iter().map(|q| q.points).sum();
        if let Some(c) = t.daily_chests.iter().find(|c| c.points > daily_max) {
            return Err(DataError::new(
                file,
                "daily_chests",
                format!("{} points are more than the quests give", c.points),
            ));
        }
        for a in &t.achievements {
            if a.tiers.is_empty()
                || a.tiers.windows(2).any(|w| w[0].target >= w[1].target)
                || a.tiers.iter().any(|x| x.target == 0 || x.reward.amount <= 0)
            {
                return Err(DataError::new(file, &a.id, "tiers must be increasing, with positive targets and rewards"));
            }
            for tier in &a.tiers {
                if !ids.insert(tier_id(a, tier)) {
                    return Err(DataError::new(file, &a.id, "quest id used twice"));
                }
            }
        }
        Ok(t)
    }
}

/// The quest id of an achievement's tier.
pub fn tier_id(a: &Achievement, t: &Tier) -> String {
    format!("{}_{}", a.id, t.target)
}

/// What a quest's claim gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QuestReward {
    /// Activity points (a daily quest).
    ActivityPoints {
        /// How many.
        points: u32,
    },
    /// Currency (an achievement tier).
    Currency {
        /// Which.
        currency: Currency,
        /// How much.
        amount: i64,
    },
}

/// One quest or achievement tier as the player sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuestView {
    /// Id for the claim route.
    pub quest_id: String,
    /// Shown to the player.
    pub name: String,
    /// Progress (capped at the target).
    pub progress: u64,
    /// Needed.
    pub target: u64,
    /// Claimed already (today, for a daily quest).
    pub claimed: bool,
    /// What the claim gives.
    pub reward: QuestReward,
}

/// A chest as the player sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChestView {
    /// Points that open it (the claim route's).
    pub points: u32,
    /// What it gives.
    pub reward: Reward,
    /// The points are reached.
    pub reachable: bool,
    /// Opened already (this day or week).
    pub opened: bool,
}

/// `GET /api/quests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuestsView {
    /// Daily quests.
    pub daily: Vec<QuestView>,
    /// Activity points today.
    pub daily_points: u32,
    /// Chests of today's points.
    pub daily_chests: Vec<ChestView>,
    /// When the daily part starts again.
    pub daily_resets_at: DateTime<Utc>,
    /// Activity points this week.
    pub weekly_points: u32,
    /// Chests of this week's points.
    pub weekly_chests: Vec<ChestView>,
    /// When the weekly part starts again.
    pub weekly_resets_at: DateTime<Utc>,
    /// Achievement tiers.
    pub achievements: Vec<QuestView>,
}

/// An achievement's measure on the player now.
fn measure(p: &Player, m: Measure) -> u64 {
    let lifetime = |a: Activity| p.quests.lifetime.get(&a).copied().unwrap_or(0);
    match m {
        Measure::StagesCleared => p.stages_cleared() as u64,
        Measure::HeroesOwned => p.heroes.len() as u64,
        Measure::TotalPulls => lifetime(Activity::Pull),
        Measure::ArenaWins => lifetime(Activity::ArenaWin),
        Measure::BestHeroStars => p.heroes.values().map(|h| u64::from(h.stars)).max().unwrap_or(0),
        Measure::PlayerLevel => u64::from(p.level),
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// The player's quests at `now`.
pub fn view(table: &QuestTable, p: &Player, now: DateTime<Utc>) -> QuestsView {
    let mut q = p.quests.clone();
    q.roll(now);
    let chests = |list: &[Chest], points: u32, opened: &BTreeSet<u32>| {
        list.iter()
            .map(|c| ChestView {
                points: c.points,
                reward: c.reward,
                reachable: points >= c.points,
                opened: opened.contains(&c.points),
            })
            .collect()
    };
    QuestsView {
        daily: table
            .daily
            .iter()
            .map(|d| QuestView {
                quest_id: d.id.clone(),
                name: d.name.clone(),
                progress: q.today(d.activity, now).min(d.target),
                target: d.target,
                claimed: q.claimed.contains(&d.id),
                reward: QuestReward::ActivityPoints { points: d.points },
            })
            .collect(),
        daily_points: q.points,
        daily_chests: chests(&table.daily_chests, q.points, &q.chests),
        daily_resets_at: midnight(now.date_naive() + Duration::days(1)),
        weekly_points: q.weekly_points,
        weekly_chests: chests(&table.weekly_chests, q.weekly_points, &q.weekly_chests),
        weekly_resets_at: midnight(week_of(now) + Duration::days(7)),
        achievements: table
            .achievements
            .iter()
            .flat_map(|a| {
                let value = measure(p, a.measure);
                let claimed = &q.achievements;
                a.tiers.iter().map(move |t| QuestView {
                    quest_id: tier_id(a, t),
                    name: format!("{} ({})", a.name, t.target),
                    progress: value.min(t.target),
                    target: t.target,
                    claimed: claimed.contains(&tier_id(a, t)),
                    reward: QuestReward::Currency { currency: t.reward.currency, amount: t.reward.amount },
                })
            })
            .collect(),
    }
}

/// Claims a daily quest (its activity points, counted today and this week) or
/// an achievement tier (its currency); returns what it gave.
pub fn claim(table: &QuestTable, p: &mut Player, quest_id: &str, now: DateTime<Utc>) -> Result<QuestReward, GameError> {
    p.quests.roll(now);
    if let Some(d) = table.daily.iter().find(|d| d.id == quest_id) {
        let progress = p.quests.today(d.activity, now);
        if progress < d.target {
            return Err(GameError::Conflict(format!("quest {quest_id} is not complete: {progress}/{}", d.target)));
        }
        if !p.quests.claimed.insert(d.id.clone()) {
            return Err(GameError::Conflict(format!("quest {quest_id} was already claimed today")));
        }
        p.quests.points += d.points;
        p.quests.weekly_points += d.points;
        return Ok(QuestReward::ActivityPoints { points: d.points });
    }
    for a in &table.achievements {
        if let Some(t) = a.tiers.iter().find(|t| tier_id(a, t) == quest_id) {
            let value = measure(p, a.measure);
            if value < t.target {
                return Err(GameError::Conflict(format!(
                    "achievement {quest_id} is not reached: {value}/{}",
                    t.target
                )));
            }
            if !p.quests.achievements.insert(quest_id.to_string()) {
                return Err(GameError::Conflict(format!("achievement {quest_id} was already claimed")));
            }
            p.balances.credit(t.reward.currency, t.reward.amount);
            return Ok(QuestReward::Currency { currency: t.reward.currency, amount: t.reward.amount });
        }
    }
    Err(GameError::NotFound(format!("no quest {quest_id:?}")))
}

/// Opens the daily or weekly chest of `points` (the daily chests are tried
/// first; the shipped tables use distinct points); returns its reward.
pub fn open_chest(table: &QuestTable, p: &mut Player, points: u32, now: DateTime<Utc>) -> Result<Reward, GameError> {
    p.quests.roll(now);
    let q = &mut p.quests;
    let (chest, have, opened, period) = if let Some(c) = table.daily_chests.iter().find(|c| c.points == points) {
        (c, q.points, &mut q.chests, "today")
    } else if let Some(c) = table.weekly_chests.iter().find(|c| c.points == points) {
        (c, q.weekly_points, &mut q.weekly_chests, "this week")
    } else {
        return Err(GameError::NotFound(format!("no chest at {points} activity points")));
    };
    if have < chest.points {
        return Err(GameError::Conflict(format!("the chest needs {points} activity points; {have} earned {period}")));
    }
    if !opened.insert(points) {
        return Err(GameError::Conflict(format!("the chest at {points} points was already opened {period}")));
    }
    p.balances.credit(chest.reward.currency, chest.reward.amount);
    Ok(chest.reward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn table() -> QuestTable {
        QuestTable::from_toml("quests.toml", include_str!("../../config/quests.toml")).expect("shipped table")
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-26 is a Thursday.
        let thu = Utc.with_ymd_and_hms(2026, 11, 26, 23, 59, 0).unwrap();
        assert_eq!(week_of(thu), NaiveDate::from_ymd_opt(2026, 11, 23).unwrap());
        let mon = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
        assert_eq!(week_of(mon), NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
    }

    #[test]
    fn counts_start_over_each_day_and_points_each_week() {
        let t = table();
        let mut p = Player::new("q".into(), "q", "h".into(), Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap());
        let thu = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
        p.quests.count(Activity::Summon, 1, thu);
        let got = claim(&t, &mut p, "summon_once", thu).expect("complete");
        assert_eq!(got, QuestReward::ActivityPoints { points: 10 });
        assert!(claim(&t, &mut p, "summon_once", thu).is_err(), "once a day");
        let fri = thu + Duration::days(1);
        assert!(claim(&t, &mut p, "summon_once", fri).is_err(), "progress is per day");
        p.quests.count(Activity::Summon, 1, fri);
        claim(&t, &mut p, "summon_once", fri).expect("again the next day");
        assert_eq!((p.quests.points, p.quests.weekly_points), (10, 20));
        let mon = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 1).unwrap();
        p.quests.roll(mon);
        assert_eq!((p.quests.points, p.quests.weekly_points), (0, 0));
        assert_eq!(p.quests.lifetime.get(&Activity::Summon), Some(&2), "lifetime counts stay");
    }

    #[test]
    fn a_table_with_a_chest_out_of_reach_is_refused() {
        let text = include_str!("../../config/quests.toml").replace("points = 100\n", "points = 1000\n");
        let e = QuestTable::from_toml("quests.toml", &text).unwrap_err();
        assert_eq!(e.entry, "daily_chests", "{e}");
    }
}
