//! The integrity check behind `divine-heroes audit` and the fault drills: every
//! player's ledger, replayed from zero, must chain (each entry's `balance_after`
//! is the one before plus its delta) and end at the stored balance, for every
//! currency. A lost, doubled or half-applied write breaks one of the two.

use crate::game::economy::Currency;
use crate::store::{DynStore, LedgerEntry, StoreError};

/// Ledger entries read per page.
const PAGE: usize = 500;
/// Mismatches described in full; the rest are only counted.
const DESCRIBED: usize = 20;

/// What the audit found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Players checked.
    pub players: u64,
    /// Ledger entries checked.
    pub ledger_entries: u64,
    /// Broken chains and balances that differ from their ledger.
    pub mismatches: u64,
    /// The first mismatches, described.
    pub examples: Vec<String>,
}

impl AuditReport {
    /// No mismatch.
    pub fn clean(&self) -> bool {
        self.mismatches == 0
    }

    fn mismatch(&mut self, what: String) {
        self.mismatches += 1;
        if self.examples.len() < DESCRIBED {
            self.examples.push(what);
        }
    }
}

impl std::fmt::Display for AuditReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "audited {} players, {} ledger entries: {} mismatches",
            self.players, self.ledger_entries, self.mismatches
        )?;
        for e in &self.examples {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Checks every player in the store.
pub async fn audit(store: &DynStore) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport::default();
    let mut after = None;
    loop {
        let ids = store.player_ids(after.take(), PAGE).await?;
        let Some(last) = ids.last() else { break };
        after = Some(last.clone());
        for id in &ids {
            audit_player(store, id, &mut report).await?;
        }
    }
    Ok(report)
}

/// Checks one player's ledger against its balances.
pub async fn audit_player(store: &DynStore, id: &str, report: &mut AuditReport) -> Result<(), StoreError> {
    let Some(player) = store.player_by_id(id).await? else { return Ok(()) };
    let mut entries: Vec<LedgerEntry> = Vec::new();
    let mut before = None;
    loop {
        let page = store.ledger(id, PAGE, before).await?;
        entries.extend(page.items);
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    entries.reverse();
    report.players += 1;
    report.ledger_entries += entries.len() as u64;
    let mut running = [0i64; Currency::ALL.len()];
    let mut last_seq = None;
    for e in &entries {
        if last_seq.is_some_and(|s| e.seq <= s) {
            report.mismatch(format!("{}: ledger seq {} out of order", player.username, e.seq));
        }
        last_seq = Some(e.seq);
        let slot = Currency::ALL.iter().position(|&c| c == e.currency).unwrap_or(0);
        if running[slot] + e.delta != e.balance_after {
            report.mismatch(format!(
                "{}: {} entry {} ({}) says {} after {:+}, the chain gives {}",
                player.username,
                e.currency,
                e.seq,
                e.reason.as_str(),
                e.balance_after,
                e.delta,
                running[slot] + e.delta
            ));
        }
        running[slot] = e.balance_after;
    }
    for (slot, &c) in Currency::ALL.iter().enumerate() {
        if player.balances.get(c) != running[slot] {
            report.mismatch(format!(
                "{}: {c} balance {} but its ledger ends at {}",
                player.username,
                player.balances.get(c),
                running[slot]
            ));
        }
    }
    Ok(())
}
