//! Spending and age controls on summons: a monthly cap, set by the player, on
//! the crystals summons may spend, and an operator's bar on summons for an
//! account marked as a minor. Both are checked inside the summon's own write,
//! on the record that write will store, so concurrent summons cannot together
//! pass a cap that each alone respects.

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::economy::Currency;
use super::error::GameError;

/// The currency the cap counts: the one players buy.
pub const CAPPED: Currency = Currency::Crystals;
/// A raised or removed cap applies only after this long (a lowered one at once).
pub const COOLING_OFF_HOURS: i64 = 24;

/// A player's spending controls, kept on the player record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SpendingControls {
    /// Crystals a calendar month (UTC) that summons may spend; none: no cap.
    pub monthly_cap: Option<i64>,
    /// A raised or removed cap waiting out its cooling-off.
    pub pending: Option<PendingCap>,
    /// The UTC month ("2026-11") that `spent` counts.
    pub month: String,
    /// Crystals spent on summons in `month`.
    pub spent: i64,
    /// Marked as a minor by an operator: summons are refused.
    pub minor: bool,
}

/// A cap that takes effect later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingCap {
    /// The new cap (none: no cap).
    pub monthly_cap: Option<i64>,
    /// When it applies.
    pub from: DateTime<Utc>,
}

fn month_of(now: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", now.year(), now.month())
}

impl SpendingControls {
    /// Brought up to `now`: a due pending cap applied, a new month started at 0.
    pub fn settled(&self, now: DateTime<Utc>) -> Self {
        let mut s = self.clone();
        if let Some(p) = s.pending.take_if(|p| p.from <= now) {
            s.monthly_cap = p.monthly_cap;
        }
        let month = month_of(now);
        if s.month != month {
            s.month = month;
            s.spent = 0;
        }
        s
    }

    /// Sets the monthly cap: a lower one (or a first one) at once, a higher one
    /// or none after the cooling-off, replacing any cap still waiting.
    pub fn set_cap(&mut self, cap: Option<i64>, now: DateTime<Utc>) -> Result<(), GameError> {
        if cap.is_some_and(|c| !(0..=10_000_000).contains(&c)) {
            return Err(GameError::Invalid("monthly_crystals must be between 0 and 10000000, or null".into()));
        }
        *self = self.settled(now);
        let stricter = match (cap, self.monthly_cap) {
            (Some(new), Some(old)) => new <= old,
            (Some(_), None) => true,
            (None, _) => self.monthly_cap.is_none(),
        };
        if stricter {
            self.monthly_cap = cap;
            self.pending = None;
        } else {
            self.pending = Some(PendingCap { monthly_cap: cap, from: now + Duration::hours(COOLING_OFF_HOURS) });
        }
        Ok(())
    }

    /// Counts a summon costing `cost` of `currency` against the controls, or refuses it.
    pub fn charge(&mut self, currency: Currency, cost: i64, now: DateTime<Utc>) -> Result<(), GameError> {
        if self.minor {
            return Err(GameError::SummonsBarred);
        }
        if currency != CAPPED {
            return Ok(());
        }
        *self = self.settled(now);
        if let Some(cap) = self.monthly_cap {
            if self.spent + cost > cap {
                return Err(GameError::SpendingCapReached { cap, spent: self.spent, cost });
            }
        }
        self.spent += cost;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_cap_counts_crystals_per_month_and_loosens_only_after_the_cooling_off() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let mut s = SpendingControls::default();
        s.set_cap(Some(3000), t0).unwrap();
        s.charge(Currency::Crystals, 2700, t0).unwrap();
        s.charge(Currency::Coins, 9000, t0).unwrap();
        assert_eq!(s.charge(Currency::Crystals, 300, t0), Ok(()), "exactly at the cap is allowed");
        assert_eq!(
            s.charge(Currency::Crystals, 300, t0),
            Err(GameError::SpendingCapReached { cap: 3000, spent: 3000, cost: 300 })
        );
        // Raising waits a day; lowering does not.
        s.set_cap(Some(10_000), t0).unwrap();
        assert!(s.charge(Currency::Crystals, 300, t0 + Duration::hours(23)).is_err());
        assert!(s.charge(Currency::Crystals, 300, t0 + Duration::hours(25)).is_ok());
        s.set_cap(Some(100), t0 + Duration::hours(26)).unwrap();
        assert_eq!(s.monthly_cap, Some(100));
        // A new month starts at zero.
        let december = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert!(s.charge(Currency::Crystals, 100, december).is_ok());
        assert_eq!(s.settled(december).spent, 100);
        s.minor = true;
        assert_eq!(s.charge(Currency::Coins, 1000, december), Err(GameError::SummonsBarred));
        assert!(s.set_cap(Some(-1), december).is_err());
    }
}
