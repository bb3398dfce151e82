//! Purchases with real money (LOOPS.md, Shop): crystal packs credited from a
//! payment provider's signed webhook, once per provider transaction id, and
//! refunds that take back what a purchase granted or record the rest as a debt.
//! The once-only guard is on the player record (it outlives idempotency
//! records), so a provider's redelivery a month later still credits nothing.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::data_error::DataError;
use super::economy::Currency;
use super::error::GameError;
pub use super::loops::PurchaseState;
use super::player::Player;

/// A crystal pack sold for real money.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pack {
    /// The provider's product id.
    pub id: String,
    /// Crystals granted (twice as many on a player's first purchase of the pack).
    pub crystals: i64,
}

/// Checks the packs of `shop.toml`.
pub fn validate(file: &str, packs: &[Pack]) -> Result<(), DataError> {
    let mut ids = BTreeSet::new();
    for p in packs {
        if p.crystals <= 0 || !ids.insert(&p.id) {
            return Err(DataError::new(file, &p.id, "a pack needs a unique id and positive crystals"));
        }
    }
    Ok(())
}

/// What a webhook delivery did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settlement {
    /// The provider's transaction id.
    pub transaction_id: String,
    /// Crystals credited (a purchase) or taken back (a refund, negative) by
    /// this delivery; 0 when the transaction was settled before.
    pub crystals: i64,
    /// Whether this delivery changed anything (false: a redelivery).
    pub applied: bool,
    /// Crystals the player owes after it.
    pub debt: i64,
}

/// Credits a pack once per transaction id; the first purchase of a pack doubles.
pub fn credit(packs: &[Pack], p: &mut Player, transaction_id: &str, pack_id: &str) -> Result<Settlement, GameError> {
    let pack =
        packs.iter().find(|x| x.id == pack_id).ok_or_else(|| GameError::NotFound(format!("no pack {pack_id:?}")))?;
    let s = &mut p.purchases;
    if s.granted.contains_key(transaction_id) {
        return Ok(Settlement { transaction_id: transaction_id.into(), crystals: 0, applied: false, debt: s.debt });
    }
    let crystals = if s.packs.insert(pack.id.clone()) { 2 * pack.crystals } else { pack.crystals };
    s.granted.insert(transaction_id.to_string(), crystals);
    p.balances.credit(Currency::Crystals, crystals);
    Ok(Settlement { transaction_id: transaction_id.into(), crystals, applied: true, debt: p.purchases.debt })
}

/// Takes back what a transaction granted, as far as the balance allows; the
/// rest becomes a debt an operator lists (`divine-heroes purchases debts`).
pub fn refund(p: &mut Player, transaction_id: &str) -> Result<Settlement, GameError> {
    let s = &mut p.purchases;
    let Some(&granted) = s.granted.get(transaction_id) else {
        return Err(GameError::Conflict(format!("transaction {transaction_id} was not credited to this player")));
    };
    if !s.refunded.insert(transaction_id.to_string()) {
        return Ok(Settlement { transaction_id: transaction_id.into(), crystals: 0, applied: false, debt: s.debt });
    }
    let taken = granted.min(p.balances.crystals.max(0));
    s.debt += granted - taken;
    p.balances.debit(Currency::Crystals, taken)?;
    Ok(Settlement { transaction_id: transaction_id.into(), crystals: -taken, applied: true, debt: p.purchases.debt })
}
