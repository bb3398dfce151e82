//! Idle rewards, the daily login cycle and mail: the rules and their table.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::data_error::DataError;
use super::economy::Currency;
use super::error::GameError;
use super::player::{Mail, Player};

/// Idle accrual rates.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdleRates {
    /// Gold per hour with no stage cleared.
    pub gold_per_hour: i64,
    /// Extra gold per hour per stage cleared.
    pub gold_per_hour_per_stage: i64,
    /// Player xp per hour with no stage cleared.
    pub xp_per_hour: i64,
    /// Extra xp per hour per stage cleared.
    pub xp_per_hour_per_stage: i64,
    /// Accrual stops after this many hours unclaimed.
    pub cap_hours: i64,
}

/// One day of the login cycle.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DailyReward {
    /// Currency granted.
    pub currency: Currency,
    /// Amount granted.
    pub amount: i64,
}

/// Mail settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailRules {
    /// Days a mail stays claimable.
    pub expiry_days: i64,
}

/// The rewards table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RewardTable {
    /// Idle accrual.
    pub idle: IdleRates,
    /// The login cycle, day 1 first.
    pub daily_login: Vec<DailyReward>,
    /// Mail.
    pub mail: MailRules,
}

impl RewardTable {
    /// Parses and validates `rewards.toml`.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, DataError> {
        let t: RewardTable = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        let i = &t.idle;
        if i.gold_per_hour < 0 || i.gold_per_hour_per_stage < 0 || i.xp_per_hour < 0 || i.xp_per_hour_per_stage < 0 {
            return Err(DataError::new(file, "idle", "rates must not be negative"));
        }
        if i.cap_hours < 1 {
            return Err(DataError::new(file, "idle", "cap_hours must be at least 1"));
        }
        if t.daily_login.is_empty() {
            return Err(DataError::new(file, "daily_login", "the cycle needs at least one day"));
        }
        if let Some((n, _)) = t.daily_login.iter().enumerate().find(|(_, d)| d.amount <= 0) {
            return Err(DataError::new(file, format!("daily_login day {}", n + 1), "amount must be positive"));
        }
        if t.mail.expiry_days < 1 {
            return Err(DataError::new(file, "mail", "expiry_days must be at least 1"));
        }
        Ok(t)
    }
}

/// What an idle claim would pay now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdleAccrual {
    /// Whole minutes counted (capped).
    pub minutes: i64,
    /// Gold.
    pub gold: i64,
    /// Player xp.
    pub xp: i64,
    /// Whether the cap was reached.
    pub capped: bool,
}

/// Accrual from the last claim to `now`, in whole minutes, capped.
pub fn idle_accrual(rates: &IdleRates, player: &Player, now: DateTime<Utc>) -> IdleAccrual {
    let elapsed = (now - player.idle_claimed_at).num_minutes().max(0);
    let cap = rates.cap_hours * 60;
    let minutes = elapsed.min(cap);
    let stages = player.stages_cleared() as i64;
    let gold_h = rates.gold_per_hour + rates.gold_per_hour_per_stage * stages;
    let xp_h = rates.xp_per_hour + rates.xp_per_hour_per_stage * stages;
    IdleAccrual { minutes, gold: gold_h * minutes / 60, xp: xp_h * minutes / 60, capped: elapsed >= cap }
}

/// Pays the accrual and moves the claim time: by the minutes paid, so that a
/// part-minute carries over, or to `now` when the cap swallowed the rest.
pub fn claim_idle(rates: &IdleRates, player: &mut Player, now: DateTime<Utc>) -> Result<IdleAccrual, GameError> {
    let a = idle_accrual(rates, player, now);
    if a.minutes == 0 {
        return Err(GameError::Conflict("nothing has accrued since the last claim".into()));
    }
    player.balances.credit(Currency::Gold, a.gold);
    player.add_xp(a.xp as u64);
    player.idle_claimed_at = if a.capped { now } else { player.idle_claimed_at + Duration::minutes(a.minutes) };
    Ok(a)
}

/// Where a player stands in the login cycle today.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DailyStatus {
    /// Whether today's reward can be claimed.
    pub claimable: bool,
    /// The cycle day (1-based) that today's claim pays, or paid.
    pub today_day: usize,
    /// Consecutive days claimed, counting today if claimed.
    pub streak: u32,
    /// The cycle.
    pub cycle: Vec<DailyReward>,
}

fn next_streak(player: &Player, today: NaiveDate) -> u32 {
    match player.daily_last_claim {
        Some(d) if d == today => player.daily_streak,
        Some(d) if d.succ_opt() == Some(today) => player.daily_streak + 1,
        _ => 1,
    }
}

/// Today's position in the cycle.
pub fn daily_status(cycle: &[DailyReward], player: &Player, now: DateTime<Utc>) -> DailyStatus {
    let today = now.date_naive();
    let streak = next_streak(player, today);
    DailyStatus {
        claimable: player.daily_last_claim != Some(today),
        today_day: ((streak.max(1) - 1) as usize % cycle.len()) + 1,
        streak: if player.daily_last_claim == Some(today) { player.daily_streak } else { streak - 1 },
        cycle: cycle.to_vec(),
    }
}

/// Claims today's reward: once per UTC day; the day after the last claim
/// continues the cycle, a missed day restarts it, and day 8 starts it again.
pub fn claim_daily(
    cycle: &[DailyReward],
    player: &mut Player,
    now: DateTime<Utc>,
) -> Result<(usize, DailyReward), GameError> {
    let today = now.date_naive();
    if player.daily_last_claim == Some(today) {
        return Err(GameError::Conflict("today's login reward is already claimed".into()));
    }
    let streak = next_streak(player, today);
    let day = ((streak - 1) as usize % cycle.len()) + 1;
    let reward = cycle[day - 1];
    player.balances.credit(reward.currency, reward.amount);
    player.daily_streak = streak;
    player.daily_last_claim = Some(today);
    Ok((day, reward))
}

/// Claims a mail's attachments, once, before it expires.
pub fn claim_mail(player: &mut Player, mail_id: &str, now: DateTime<Utc>) -> Result<Mail, GameError> {
    let mail = player
        .mailbox
        .iter_mut()
        .find(|m| m.id == mail_id && m.expires_at > now)
        .ok_or_else(|| GameError::NotFound(format!("no mail {mail_id:?} (or it has expired)")))?;
    if mail.claimed_at.is_some() {
        return Err(GameError::Conflict("this mail is already claimed".into()));
    }
    mail.claimed_at = Some(now);
    let mail = mail.clone();
    for a in &mail.attachments {
        player.balances.credit(a.currency, a.amount);
    }
    Ok(mail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::data::GameData;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap()
    }

    #[test]
    fn thirteen_idle_hours_pay_twelve() {
        let data = GameData::builtin();
        let mut p = Player::new("p".into(), "Ann", String::new(), t0());
        let a = claim_idle(&data.rewards.idle, &mut p, t0() + Duration::hours(13)).unwrap();
        assert_eq!((a.minutes, a.gold, a.xp, a.capped), (720, 1200, 240, true));
        assert!(claim_idle(&data.rewards.idle, &mut p, t0() + Duration::hours(13)).is_err(), "pays once");
    }

    #[test]
    fn part_minutes_carry_over() {
        let data = GameData::builtin();
        let mut p = Player::new("p".into(), "Ann", String::new(), t0());
        claim_idle(&data.rewards.idle, &mut p, t0() + Duration::seconds(90)).unwrap();
        assert_eq!(p.idle_claimed_at, t0() + Duration::minutes(1));
    }

    #[test]
    fn the_eighth_day_restarts_the_cycle_and_a_gap_resets_it() {
        let data = GameData::builtin();
        let cycle = &data.rewards.daily_login;
        let mut p = Player::new("p".into(), "Ann", String::new(), t0());
        let days: Vec<usize> =
            (0..8).map(|d| claim_daily(cycle, &mut p, t0() + Duration::days(d)).unwrap().0).collect();
        assert_eq!(days, vec![1, 2, 3, 4, 5, 6, 7, 1]);
        assert!(
            claim_daily(cycle, &mut p, t0() + Duration::days(7) + Duration::hours(10)).is_err(),
            "once per UTC day"
        );
        claim_daily(cycle, &mut p, t0() + Duration::days(8)).unwrap();
        let (day, _) = claim_daily(cycle, &mut p, t0() + Duration::days(10)).unwrap();
        assert_eq!(day, 1, "a missed day restarts");
    }
}
