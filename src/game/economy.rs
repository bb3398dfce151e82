//! Currencies, balances and the debit/credit rules: a debit fails whole if any
//! balance would go negative.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A currency a player holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Currency {
    /// Soft currency.
    Gold,
    /// Standard banner currency.
    Coins,
    /// Premium currency.
    Crystals,
    /// Divine banner currency.
    DivineEssence,
    /// Campaign energy.
    Stamina,
    /// Arena entries.
    ArenaTickets,
    /// Arena reward currency.
    ArenaMedals,
    /// Guild donations' currency, spent in the guild shop.
    GuildCoins,
}

impl Currency {
    /// Every currency in a fixed order (ledger entries follow it).
    pub const ALL: [Currency; 8] = [
        Currency::Gold,
        Currency::Coins,
        Currency::Crystals,
        Currency::DivineEssence,
        Currency::Stamina,
        Currency::ArenaTickets,
        Currency::ArenaMedals,
        Currency::GuildCoins,
    ];

    /// The snake_case name used on the wire and in data files.
    pub fn name(self) -> &'static str {
        match self {
            Currency::Gold => "gold",
            Currency::Coins => "coins",
            Currency::Crystals => "crystals",
            Currency::DivineEssence => "divine_essence",
            Currency::Stamina => "stamina",
            Currency::ArenaTickets => "arena_tickets",
            Currency::ArenaMedals => "arena_medals",
            Currency::GuildCoins => "guild_coins",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A player's balances. Never negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[allow(missing_docs)]
pub struct Balances {
    pub gold: i64,
    pub coins: i64,
    pub crystals: i64,
    pub divine_essence: i64,
    pub stamina: i64,
    pub arena_tickets: i64,
    pub arena_medals: i64,
    /// Absent on records from before guilds.
    #[serde(default)]
    pub guild_coins: i64,
}

/// A debit that would take a balance below zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("needs {needed} {currency}, has {has}")]
pub struct InsufficientFunds {
    /// Which currency ran short.
    pub currency: Currency,
    /// How much the operation needed.
    pub needed: i64,
    /// How much the player had.
    pub has: i64,
}

impl Balances {
    /// The starting balances of a new player (GAME.md, Currencies).
    pub fn starting() -> Self {
        Self {
            gold: 5_000,
            coins: 10_000,
            crystals: 300,
            divine_essence: 10,
            stamina: 100,
            arena_tickets: 5,
            arena_medals: 0,
            guild_coins: 0,
        }
    }

    /// The balance of one currency.
    pub fn get(&self, c: Currency) -> i64 {
        match c {
            Currency::Gold => self.gold,
            Currency::Coins => self.coins,
            Currency::Crystals => self.crystals,
            Currency::DivineEssence => self.divine_essence,
            Currency::Stamina => self.stamina,
            Currency::ArenaTickets => self.arena_tickets,
            Currency::ArenaMedals => self.arena_medals,
            Currency::GuildCoins => self.guild_coins,
        }
    }

    fn slot(&mut self, c: Currency) -> &mut i64 {
        match c {
            Currency::Gold => &mut self.gold,
            Currency::Coins => &mut self.coins,
            Currency::Crystals => &mut self.crystals,
            Currency::DivineEssence => &mut self.divine_essence,
            Currency::Stamina => &mut self.stamina,
            Currency::ArenaTickets => &mut self.arena_tickets,
            Currency::ArenaMedals => &mut self.arena_medals,
            Currency::GuildCoins => &mut self.guild_coins,
        }
    }

    /// Takes `amount` (≥ 0) of `c`, or fails without changing anything.
    pub fn debit(&mut self, c: Currency, amount: i64) -> Result<(), InsufficientFunds> {
        let has = self.get(c);
        if amount < 0 || has < amount {
            return Err(InsufficientFunds { currency: c, needed: amount, has });
        }
        *self.slot(c) = has - amount;
        Ok(())
    }

    /// Adds `amount` (≥ 0) of `c`, saturating rather than overflowing.
    pub fn credit(&mut self, c: Currency, amount: i64) {
        let slot = self.slot(c);
        *slot = slot.saturating_add(amount.max(0));
    }

    /// The non-zero per-currency changes from `before` to `self`, in `Currency::ALL` order.
    pub fn deltas_since(&self, before: &Balances) -> Vec<(Currency, i64)> {
        Currency::ALL
            .iter()
            .filter_map(|&c| {
                let d = self.get(c) - before.get(c);
                (d != 0).then_some((c, d))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debit_fails_whole_when_short() {
        let mut b = Balances::starting();
        let err = b.debit(Currency::Crystals, 2700).unwrap_err();
        assert_eq!(err.to_string(), "needs 2700 crystals, has 300");
        assert_eq!(b, Balances::starting());
        b.debit(Currency::Crystals, 300).unwrap();
        assert_eq!(b.crystals, 0);
        assert_eq!(b.deltas_since(&Balances::starting()), vec![(Currency::Crystals, -300)]);
    }
}
