//! The battle pass (LOOPS.md, Battle pass): seasons of 28 days, 50 levels of
//! 1,000 pass xp, a free and a premium track. Pass xp comes from activity
//! points (quest claims) and from stamina spent on campaign wins. A season's
//! unclaimed rewards arrive by mail at the player's first pass write after it
//! ended (any xp gain, claim or look at the pass).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::data_error::DataError;
use super::economy::Currency;
use super::error::GameError;
pub use super::loops::PassState;
use super::player::{Attachment, Mail, Player};
use super::quests::Reward;

/// A reward every `every` levels.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milestone {
    /// Levels divisible by this.
    pub every: u32,
    /// Their reward.
    pub reward: Reward,
}

/// A track's rewards: the milestone with the largest `every` dividing the
/// level, or else the default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Track {
    /// Most levels' reward.
    pub default: Reward,
    /// Bigger rewards on round levels.
    #[serde(default)]
    pub milestones: Vec<Milestone>,
}

impl Track {
    /// The reward of `level`.
    pub fn reward(&self, level: u32) -> Reward {
        self.milestones
            .iter()
            .filter(|m| level.is_multiple_of(m.every))
            .max_by_key(|m| m.every)
            .map_or(self.default, |m| m.reward)
    }
}

/// `config/pass.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassTable {
    /// The start of season 1; seasons follow each other without gaps.
    pub first_season_starts_at: DateTime<Utc>,
    /// Days per season.
    pub season_days: i64,
    /// Levels per season.
    pub levels: u32,
    /// Pass xp per level.
    pub xp_per_level: u64,
    /// Pass xp per activity point claimed.
    pub xp_per_activity_point: u64,
    /// Pass xp per stamina spent on a campaign win.
    pub xp_per_stamina: u64,
    /// What unlocks the premium track for a season.
    pub premium_price: Reward,
    /// The free track.
    pub free: Track,
    /// The premium track.
    pub premium: Track,
}

impl PassTable {
    /// Parses and validates `pass.toml`.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, DataError> {
        let t: PassTable = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        if t.season_days < 1 || t.levels == 0 || t.xp_per_level == 0 || t.premium_price.amount <= 0 {
            return Err(DataError::new(
                file,
                "(file)",
                "season_days, levels, xp_per_level and the price must be positive",
            ));
        }
        for (name, track) in [("free", &t.free), ("premium", &t.premium)] {
            let rewards = std::iter::once(track.default).chain(track.milestones.iter().map(|m| m.reward));
            if track.milestones.iter().any(|m| m.every == 0) || rewards.into_iter().any(|r| r.amount <= 0) {
                return Err(DataError::new(file, name, "milestones need every ≥ 1 and every reward a positive amount"));
            }
        }
        Ok(t)
    }

    /// The season running at `now` (1-based; 0 before the first).
    pub fn season_at(&self, now: DateTime<Utc>) -> u32 {
        if now < self.first_season_starts_at {
            return 0;
        }
        let days = (now - self.first_season_starts_at).num_days();
        u32::try_from(days / self.season_days + 1).unwrap_or(u32::MAX)
    }

    /// When `season` ends.
    pub fn season_ends_at(&self, season: u32) -> DateTime<Utc> {
        self.first_season_starts_at + Duration::days(self.season_days * i64::from(season))
    }

    /// The level `xp` reaches (capped).
    pub fn level_of(&self, xp: u64) -> u32 {
        u32::try_from(xp / self.xp_per_level).unwrap_or(u32::MAX).min(self.levels)
    }

    fn track(&self, track: PassTrack) -> &Track {
        match track {
            PassTrack::Free => &self.free,
            PassTrack::Premium => &self.premium,
        }
    }
}

/// A track of the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PassTrack {
    /// Everyone's.
    Free,
    /// Unlocked for crystals.
    Premium,
}

/// Rewards reached and not claimed in the player's pass state.
fn unclaimed(table: &PassTable, s: &PassState) -> Vec<(PassTrack, u32, Reward)> {
    let reached = table.level_of(s.xp);
    let mut out = Vec::new();
    for level in 1..=reached {
        if !s.free_claimed.contains(&level) {
            out.push((PassTrack::Free, level, table.free.reward(level)));
        }
        if s.premium && !s.premium_claimed.contains(&level) {
            out.push((PassTrack::Premium, level, table.premium.reward(level)));
        }
    }
    out
}

/// Brings the player's pass to the season of `now`: an ended season's
/// unclaimed rewards are mailed (summed by currency) and the pass starts over.
/// Returns whether it changed anything.
pub fn roll(table: &PassTable, p: &mut Player, now: DateTime<Utc>, mail_days: i64) -> bool {
    let season = table.season_at(now);
    if p.pass.season == season {
        return false;
    }
    let left = unclaimed(table, &p.pass);
    if p.pass.season > 0 && !left.is_empty() {
        let mut totals: Vec<Attachment> = Vec::new();
        for (_, _, r) in &left {
            match totals.iter_mut().find(|a| a.currency == r.currency) {
                Some(a) => a.amount += r.amount,
                None => totals.push(Attachment { currency: r.currency, amount: r.amount }),
            }
        }
        let old = p.pass.season;
        p.deliver(Mail {
            id: format!("pass-season-{old}"),
            subject: format!("Battle pass season {old}: your unclaimed rewards"),
            body: format!("Season {old} ended with {} rewards unclaimed; here they are.", left.len()),
            attachments: totals,
            sent_at: now,
            expires_at: now + Duration::days(mail_days),
            claimed_at: None,
        });
    }
    p.pass = PassState { season, ..PassState::default() };
    true
}

/// Adds pass xp (after bringing the pass to the current season).
pub fn add_xp(table: &PassTable, p: &mut Player, xp: u64, now: DateTime<Utc>, mail_days: i64) {
    roll(table, p, now, mail_days);
    if p.pass.season > 0 {
        p.pass.xp = p.pass.xp.saturating_add(xp).min(table.xp_per_level * u64::from(table.levels));
    }
}

/// Unlocks the premium track for the running season, once.
pub fn unlock(table: &PassTable, p: &mut Player, now: DateTime<Utc>, mail_days: i64) -> Result<(), GameError> {
    roll(table, p, now, mail_days);
    if p.pass.season == 0 {
        return Err(GameError::Conflict("no pass season is running".into()));
    }
    if p.pass.premium {
        return Err(GameError::Conflict(format!("the premium track of season {} is unlocked already", p.pass.season)));
    }
    p.balances.debit(table.premium_price.currency, table.premium_price.amount)?;
    p.pass.premium = true;
    Ok(())
}

/// Claims one (level, track) reached this season, once.
pub fn claim(
    table: &PassTable,
    p: &mut Player,
    level: u32,
    track: PassTrack,
    now: DateTime<Utc>,
    mail_days: i64,
) -> Result<Reward, GameError> {
    roll(table, p, now, mail_days);
    if level == 0 || level > table.levels {
        return Err(GameError::Invalid(format!("level must be 1-{}", table.levels)));
    }
    let reached = table.level_of(p.pass.xp);
    if level > reached {
        return Err(GameError::Conflict(format!("level {level} is not reached: the pass is at level {reached}")));
    }
    if track == PassTrack::Premium && !p.pass.premium {
        return Err(GameError::Conflict("the premium track is locked this season".into()));
    }
    let claimed = match track {
        PassTrack::Free => &mut p.pass.free_claimed,
        PassTrack::Premium => &mut p.pass.premium_claimed,
    };
    if !claimed.insert(level) {
        return Err(GameError::Conflict(format!("level {level} of the {track:?} track was claimed already")));
    }
    let reward = table.track(track).reward(level);
    p.balances.credit(reward.currency, reward.amount);
    Ok(reward)
}

/// Claims everything reached and unclaimed in one change; the rewards summed by currency.
pub fn claim_all(
    table: &PassTable,
    p: &mut Player,
    now: DateTime<Utc>,
    mail_days: i64,
) -> Result<Vec<Reward>, GameError> {
    roll(table, p, now, mail_days);
    let left = unclaimed(table, &p.pass);
    if left.is_empty() {
        return Err(GameError::Conflict("nothing to claim".into()));
    }
    let mut totals: Vec<Reward> = Vec::new();
    for (track, level, r) in left {
        match track {
            PassTrack::Free => p.pass.free_claimed.insert(level),
            PassTrack::Premium => p.pass.premium_claimed.insert(level),
        };
        p.balances.credit(r.currency, r.amount);
        match totals.iter_mut().find(|t| t.currency == r.currency) {
            Some(t) => t.amount += r.amount,
            None => totals.push(r),
        }
    }
    totals.sort_by_key(|t| Currency::ALL.iter().position(|c| *c == t.currency));
    Ok(totals)
}

/// One level of the pass as the player sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PassLevelView {
    /// Level.
    pub level: u32,
    /// Free reward.
    pub free: Reward,
    /// Premium reward.
    pub premium: Reward,
    /// Reached this season.
    pub reached: bool,
    /// Free reward claimed.
    pub free_claimed: bool,
    /// Premium reward claimed.
    pub premium_claimed: bool,
}

/// `GET /api/pass`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PassView {
    /// The season (0 before the first).
    pub season: u32,
    /// When it ends.
    pub ends_at: DateTime<Utc>,
    /// Pass xp.
    pub xp: u64,
    /// Level reached.
    pub level: u32,
    /// Premium unlocked.
    pub premium: bool,
    /// What unlocks premium.
    pub premium_price: Reward,
    /// Every level.
    pub levels: Vec<PassLevelView>,
}

/// The player's pass (already brought to the current season).
pub fn view(table: &PassTable, p: &Player) -> PassView {
    let s = &p.pass;
    let reached = table.level_of(s.xp);
    PassView {
        season: s.season,
        ends_at: table.season_ends_at(s.season.max(1)),
        xp: s.xp,
        level: reached,
        premium: s.premium,
        premium_price: table.premium_price,
        levels: (1..=table.levels)
            .map(|level| PassLevelView {
                level,
                free: table.free.reward(level),
                premium: table.premium.reward(level),
                reached: level <= reached,
                free_claimed: s.free_claimed.contains(&level),
                premium_claimed: s.premium_claimed.contains(&level),
            })
            .collect(),
    }
}
