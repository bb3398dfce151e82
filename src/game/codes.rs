//! Redeem codes (LOOPS.md, Redeem codes): created by operators, redeemed by
//! players once each. The global use count lives in the store beside the code
//! (`Store::reserve_code_use`, exact across pods); the once-per-player grant is
//! guarded on the player record, so a retried redemption never pays twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::GameError;
use super::player::Player;
use super::quests::Reward;

/// Redemption attempts allowed per player and minute (guessing codes is slow).
pub const REDEEM_ATTEMPTS_PER_MINUTE: u32 = 5;

/// A redeem code as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RedeemCode {
    /// The code, upper-cased.
    pub code: String,
    /// What one redemption gives.
    pub reward: Vec<Reward>,
    /// Redemptions allowed in all.
    pub max_uses: u64,
    /// Redemptions so far.
    pub uses: u64,
    /// No redemption at or after this time.
    pub expires_at: Option<DateTime<Utc>>,
    /// False once an operator disabled it.
    pub enabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Why a code cannot be redeemed (before the player's own record is looked at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    /// No such code.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Every use is taken.
    UsedUp,
    /// Disabled by an operator.
    Disabled,
}

/// What a reservation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// The player holds a use of the code (taken now, or by an earlier try).
    Reserved(RedeemCode),
    /// The code refused.
    Refused(CodeRefusal),
}

impl RedeemCode {
    /// Why a new use would be refused at `now`, if it would.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<CodeRefusal> {
        if !self.enabled {
            Some(CodeRefusal::Disabled)
        } else if self.expires_at.is_some_and(|e| now >= e) {
            Some(CodeRefusal::Expired)
        } else if self.uses >= self.max_uses {
            Some(CodeRefusal::UsedUp)
        } else {
            None
        }
    }
}

/// The stored form of a code a player typed: trimmed and upper-cased; 3-32
/// characters of A-Z, 0-9, `_` and `-`.
pub fn normalize(code: &str) -> Result<String, GameError> {
    let c = code.trim().to_ascii_uppercase();
    let ok = (3..=32).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(c)
    } else {
        Err(GameError::Invalid("a code is 3-32 characters of A-Z, 0-9, _ and -".into()))
    }
}

/// Grants a reserved code's reward once per player.
pub fn redeem(p: &mut Player, code: &RedeemCode) -> Result<Vec<Reward>, GameError> {
    if !p.purchases.codes.insert(code.code.clone()) {
        return Err(GameError::AlreadyRedeemed(format!("code {} was already redeemed on this account", code.code)));
    }
    for r in &code.reward {
        p.balances.credit(r.currency, r.amount);
    }
    Ok(code.reward.clone())
}
