//! Why a rule refused an action. The HTTP layer maps each to a status and code.

use super::economy::InsufficientFunds;

/// A refusal by the game rules; never a server fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GameError {
    /// A balance would go negative.
    #[error(transparent)]
    InsufficientFunds(#[from] InsufficientFunds),
    /// Not enough shards of a hero.
    #[error("needs {needed} shards of {hero_id}, has {has}")]
    NotEnoughShards {
        /// Which hero.
        hero_id: String,
        /// Shards needed.
        needed: u32,
        /// Shards owned.
        has: u32,
    },
    /// The thing asked for does not exist (or is not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but breaks a rule (count, team shape, ...).
    #[error("{0}")]
    Invalid(String),
    /// The action conflicts with the current state (cap reached, already claimed, inactive banner).
    #[error("{0}")]
    Conflict(String),
    /// The summon would pass the player's own monthly spending cap.
    #[error("this summon costs {cost} crystals; {spent} of your monthly cap of {cap} are spent")]
    SpendingCapReached {
        /// The cap.
        cap: i64,
        /// Spent this month.
        spent: i64,
        /// The summon's price.
        cost: i64,
    },
    /// A purchase limit of the day or week is reached.
    #[error("{0}")]
    LimitReached(String),
    /// The redeem code was redeemed on this account before.
    #[error("{0}")]
    AlreadyRedeemed(String),
    /// The offer is no longer on sale (a daily offer of another day).
    #[error("{0}")]
    OfferExpired(String),
    /// The account is marked as a minor's: no summons.
    #[error("summons are not available on this account")]
    SummonsBarred,
    /// The caller may not do this to that object (another guild's member, a
    /// player who blocked them, a rank that lacks the power).
    #[error("{0}")]
    Forbidden(String),
    /// Stored state the rule cannot read: a bug or corruption, never the caller's fault.
    #[error("{0}")]
    Internal(String),
}
