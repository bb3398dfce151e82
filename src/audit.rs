//! The integrity check behind `divine-heroes audit` and the fault drills. For
//! every player:
//! - **ledger**: walked from the newest entry back, each currency's entries chain
//!   (an entry's `balance_after` minus its delta is the entry before's) from the
//!   stored balance down to zero;
//! - **summons**: every summon's pulls in the history are matched by its ledger
//!   entries (the banner's price debited, every currency pull credited), and
//!   every summon debit has its pulls (while the history keeps them);
//! - **heroes**: no hero was granted new twice and every hero granted is owned;
//!   when the player's whole history is kept, the heroes owned are the starters
//!   plus those granted, and each hero's shards plus the shards its stars cost
//!   are the shards its pulls granted;
//! - **idempotency**: every kept answer names effects that exist (a summon's
//!   pulls, a fight's battle record).
//!
//! Ledger and history are read a page at a time, newest first, and merged by the
//! write that made them (the player version in their sequence numbers), so the
//! memory used does not grow with a player's past. A lost, doubled or
//! half-applied write breaks one of these.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::game::catalog;
use crate::game::data::GameData;
use crate::game::economy::Currency;
use crate::game::gacha::engine::{pulls_of_row, Grant};
use crate::game::player::{Player, STARTER_HEROES};
use crate::store::{DynStore, HistoryRow, LedgerEntry, LedgerReason, Page, StoreError};

/// Rows read per page.
const PAGE: usize = 500;
/// Mismatches described in full; the rest are only counted.
const DESCRIBED: usize = 20;

/// What the audit compares the store with.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    /// Banner prices and the catalog.
    pub data: &'a GameData,
    /// Now: with `history_kept`, which summons must still have their pulls.
    pub now: DateTime<Utc>,
    /// How long the history keeps pulls (`HISTORY_RETENTION_DAYS`).
    pub history_kept: Duration,
}

impl Scope<'_> {
    /// Rows written before this may have been pruned from the history.
    fn history_from(&self) -> DateTime<Utc> {
        self.now - chrono::Duration::from_std(self.history_kept).unwrap_or(chrono::Duration::MAX)
    }
}

/// What the audit found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Players checked.
    pub players: u64,
    /// Ledger entries checked.
    pub ledger_entries: u64,
    /// Pulls (history rows) checked.
    pub pulls: u64,
    /// Summons whose ledger entries were checked against their pulls.
    pub summons: u64,
    /// Players whose heroes were checked against a complete history.
    pub heroes_checked: u64,
    /// Summons whose price was not checked: the table version that served them
    /// is neither current nor archived.
    pub unpriced_summons: u64,
    /// Idempotency records checked.
    pub idempotency_records: u64,
    /// Every kind of mismatch.
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
            "audited {} players, {} ledger entries, {} pulls in {} summons ({} not priced: their table \
             version is not kept), the heroes of {} players, {} idempotency records: {} mismatches",
            self.players,
            self.ledger_entries,
            self.pulls,
            self.summons,
            self.unpriced_summons,
            self.heroes_checked,
            self.idempotency_records,
            self.mismatches
        )?;
        for e in &self.examples {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Checks every player in the store.
pub async fn audit(store: &DynStore, scope: &Scope<'_>) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport::default();
    let mut after = None;
    loop {
        let ids = store.player_ids(after.take(), PAGE).await?;
        let Some(last) = ids.last() else { break };
        after = Some(last.clone());
        for id in &ids {
            audit_player(store, scope, id, &mut report).await?;
        }
    }
    Ok(report)
}

/// Checks one player.
pub async fn audit_player(
    store: &DynStore,
    scope: &Scope<'_>,
    id: &str,
    report: &mut AuditReport,
) -> Result<(), StoreError> {
    let Some(player) = store.player_by_id(id).await? else { return Ok(()) };
    report.players += 1;
    let mut check = PlayerCheck::new(&player, scope, report);
    let mut answered = check.idempotency(store).await?;
    let mut ledger = Walk::<LedgerEntry>::new();
    let mut history = Walk::<HistoryRow>::new();
    // Newest write first: take the next version from whichever has it.
    loop {
        let (l, h) = (ledger.next_version(store, id).await?, history.next_version(store, id).await?);
        let Some(version) = l.max(h) else { break };
        let entries = if l == Some(version) { ledger.take(store, id, version).await? } else { Vec::new() };
        let pulls = if h == Some(version) { history.take(store, id, version).await? } else { Vec::new() };
        check.ledger(&entries);
        check.summon(version, &entries, &pulls, &mut answered);
    }
    check.finish(answered);
    Ok(())
}

/// A player's rows, one write (player version) at a time, newest first.
#[async_trait]
trait Sequenced: Sized + Send {
    fn seq(&self) -> u64;
    async fn page(store: &DynStore, player_id: &str, before: Option<u64>) -> Result<Page<Self>, StoreError>;
}

#[async_trait]
impl Sequenced for LedgerEntry {
    fn seq(&self) -> u64 {
        self.seq
    }
    async fn page(store: &DynStore, player_id: &str, before: Option<u64>) -> Result<Page<Self>, StoreError> {
        store.ledger(player_id, PAGE, before).await
    }
}

#[async_trait]
impl Sequenced for HistoryRow {
    fn seq(&self) -> u64 {
        self.seq
    }
    async fn page(store: &DynStore, player_id: &str, before: Option<u64>) -> Result<Page<Self>, StoreError> {
        store.history(player_id, PAGE, before).await
    }
}

/// A newest-first walk holding one page.
struct Walk<T> {
    buf: VecDeque<T>,
    before: Option<u64>,
    exhausted: bool,
}

impl<T: Sequenced> Walk<T> {
    fn new() -> Self {
        Self { buf: VecDeque::new(), before: None, exhausted: false }
    }

    async fn fill(&mut self, store: &DynStore, id: &str) -> Result<(), StoreError> {
        if self.buf.is_empty() && !self.exhausted {
            let page = T::page(store, id, self.before).await?;
            self.buf.extend(page.items);
            self.before = page.next_before;
            self.exhausted = page.next_before.is_none();
        }
        Ok(())
    }

    /// The version of the next (newest unread) row.
    async fn next_version(&mut self, store: &DynStore, id: &str) -> Result<Option<u64>, StoreError> {
        self.fill(store, id).await?;
        Ok(self.buf.front().map(|r| r.seq() >> 8))
    }

    /// Every row of `version`, across a page boundary if need be.
    async fn take(&mut self, store: &DynStore, id: &str, version: u64) -> Result<Vec<T>, StoreError> {
        let mut rows = Vec::new();
        loop {
            self.fill(store, id).await?;
            match self.buf.front() {
                Some(r) if r.seq() >> 8 == version => rows.extend(self.buf.pop_front()),
                _ => return Ok(rows),
            }
        }
    }
}

/// What a hero's pulls granted.
#[derive(Default)]
struct Granted {
    new: u32,
    shards: u64,
}

/// One player's checks, fed a write at a time.
struct PlayerCheck<'a, 'r> {
    player: &'a Player,
    scope: &'a Scope<'a>,
    report: &'r mut AuditReport,
    /// Per currency: what the next older entry's `balance_after` must be.
    expected: [i64; Currency::ALL.len()],
    last_seq: Option<u64>,
    granted: BTreeMap<String, Granted>,
}

impl<'a, 'r> PlayerCheck<'a, 'r> {
    fn new(player: &'a Player, scope: &'a Scope<'a>, report: &'r mut AuditReport) -> Self {
        let expected = Currency::ALL.map(|c| player.balances.get(c));
        Self { player, scope, report, expected, last_seq: None, granted: BTreeMap::new() }
    }

    fn name(&self) -> &str {
        &self.player.username
    }

    /// The player's kept summon answers, by summon id: (idempotency key, pulls).
    /// A fight's answer is checked here against its battle record.
    async fn idempotency(&mut self, store: &DynStore) -> Result<HashMap<String, (String, usize)>, StoreError> {
        let mut summons = HashMap::new();
        let mut after = None;
        loop {
            let records = store.idempotency_records(&self.player.id, after.take(), PAGE).await?;
            let Some(last) = records.last() else { break };
            after = Some(last.key.clone());
            for crate::store::IdempotencyRecord { key, response, .. } in records {
                self.report.idempotency_records += 1;
                if !(200..300).contains(&response.status) {
                    continue;
                }
                let Ok(body) = serde_json::from_str::<serde_json::Value>(response.body.get()) else {
                    let who = self.player.username.clone();
                    self.report.mismatch(format!("{who}: idempotency key {key:?} keeps a response that is not JSON"));
                    continue;
                };
                if let (Some(summon), Some(results)) = (body["summon_id"].as_str(), body["results"].as_array()) {
                    summons.insert(summon.to_string(), (key, results.len()));
                } else if let Some(battle) = body["battle_id"].as_str() {
                    if store.battle(battle).await?.is_none() {
                        let who = self.player.username.clone();
                        self.report.mismatch(format!(
                            "{who}: idempotency key {key:?} answered battle {battle}, which is not stored"
                        ));
                    }
                }
            }
        }
        Ok(summons)
    }

    /// One write's ledger entries, newest first.
    fn ledger(&mut self, entries: &[LedgerEntry]) {
        for e in entries {
            self.report.ledger_entries += 1;
            if self.last_seq.is_some_and(|s| e.seq >= s) {
                let who = self.name().to_string();
                self.report.mismatch(format!("{who}: ledger seq {} out of order", e.seq));
            }
            self.last_seq = Some(e.seq);
            let slot = slot(e.currency);
            if e.balance_after != self.expected[slot] {
                let who = self.name().to_string();
                let after = if self.expected[slot] == self.player.balances.get(e.currency) {
                    "the stored balance or the next entry"
                } else {
                    "the next entry"
                };
                self.report.mismatch(format!(
                    "{who}: {} entry {} ({} {:+}) says {} after it, {after} says {}: entries missing or changed",
                    e.currency,
                    e.seq,
                    e.reason.as_str(),
                    e.delta,
                    e.balance_after,
                    self.expected[slot]
                ));
            }
            self.expected[slot] = e.balance_after - e.delta;
        }
    }

    /// One write's pulls against its summon ledger entries.
    fn summon(
        &mut self,
        version: u64,
        entries: &[LedgerEntry],
        rows: &[HistoryRow],
        answered: &mut HashMap<String, (String, usize)>,
    ) {
        let debits: Vec<&LedgerEntry> = entries.iter().filter(|e| e.reason == LedgerReason::Summon).collect();
        let who = self.name().to_string();
        if rows.is_empty() {
            if let Some(d) = debits.first() {
                if d.at >= self.scope.history_from() {
                    self.report
                        .mismatch(format!("{who}: summon {} was charged but has no pulls in the history", d.ref_id));
                }
            }
            return;
        }
        let mut pulls = Vec::with_capacity(rows.len());
        for r in rows {
            match pulls_of_row(&r.data) {
                Ok(p) => pulls.extend(p),
                Err(e) => self.report.mismatch(format!("{who}: history row {} holds no pulls: {e}", r.seq)),
            }
        }
        let Some(first) = pulls.first() else { return };
        let (summon_id, banner_id) = (first.summon_id.clone(), first.banner_id.clone());
        self.report.pulls += pulls.len() as u64;
        self.report.summons += 1;
        if pulls.iter().any(|p| p.summon_id != summon_id) {
            self.report.mismatch(format!("{who}: write {version} holds pulls of more than one summon"));
        }
        // What the ledger must show: the price, less what currency pulls gave back.
        // Priced by the table version that served it (current or archived; rows from
        // before versioning were version 1); a summon whose version is no longer
        // kept is checked for everything else.
        let mut owed = [0i64; Currency::ALL.len()];
        let version = pulls[0].rates_version.unwrap_or(1);
        let price =
            self.scope.data.banners.version(&banner_id, version).map(|b| (b.currency, b.cost(pulls.len() as u32)));
        match price {
            Some((currency, Some(cost))) => owed[slot(currency)] -= cost,
            Some((_, None)) => self.report.mismatch(format!(
                "{who}: summon {summon_id} has {} pulls on {banner_id}, a count it does not sell",
                pulls.len()
            )),
            None => self.report.unpriced_summons += 1,
        }
        for p in &pulls {
            self.grant(&p.result.grant, &summon_id, &mut owed);
        }

        let mut moved = [0i64; Currency::ALL.len()];
        for d in &debits {
            moved[slot(d.currency)] += d.delta;
            if d.ref_id != summon_id {
                self.report.mismatch(format!("{who}: summon {summon_id}'s ledger entry names {}", d.ref_id));
            }
        }
        for (i, c) in Currency::ALL.iter().enumerate().filter(|_| price.is_some()) {
            if moved[i] != owed[i] {
                self.report.mismatch(format!(
                    "{who}: summon {summon_id} ({} pulls on {banner_id}) moved {c} by {:+} in the ledger, its pulls say {:+}",
                    pulls.len(),
                    moved[i],
                    owed[i]
                ));
            }
        }
        if let Some((key, count)) = answered.remove(&summon_id) {
            if count != pulls.len() {
                self.report.mismatch(format!(
                    "{who}: idempotency key {key:?} answered {count} pulls of summon {summon_id}, the history has {}",
                    pulls.len()
                ));
            }
        }
    }

    fn grant(&mut self, grant: &Grant, summon_id: &str, owed: &mut [i64; Currency::ALL.len()]) {
        match grant {
            Grant::NewHero { hero_id } => {
                let g = self.granted.entry(hero_id.clone()).or_default();
                g.new += 1;
                if g.new == 2 || STARTER_HEROES.contains(&hero_id.as_str()) {
                    let who = self.name().to_string();
                    self.report
                        .mismatch(format!("{who}: {hero_id} was granted as a new hero again (summon {summon_id})"));
                }
            }
            Grant::Duplicate { hero_id, shards } | Grant::Shards { hero_id, shards } => {
                self.granted.entry(hero_id.clone()).or_default().shards += u64::from(*shards);
            }
            Grant::Currency { currency, amount } => owed[slot(*currency)] += amount,
        }
    }

    /// What is left once every row was seen: the ledger's start, the heroes, and
    /// answers whose summon never appeared.
    fn finish(self, answered: HashMap<String, (String, usize)>) {
        let who = self.name().to_string();
        for (i, c) in Currency::ALL.iter().enumerate() {
            if self.expected[i] != 0 {
                self.report.mismatch(format!(
                    "{who}: {c} ledger does not start at 0 but at {} (entries missing at its start, or the balance \
                     changed outside the ledger)",
                    self.expected[i]
                ));
            }
        }
        for (summon, (key, _)) in answered {
            self.report
                .mismatch(format!("{who}: idempotency key {key:?} answered summon {summon}, which has no pulls"));
        }
        for hero in self.granted.iter().filter(|(_, g)| g.new > 0).map(|(h, _)| h) {
            if !self.player.heroes.contains_key(hero) {
                self.report.mismatch(format!("{who}: {hero} was granted but is not owned"));
            }
        }
        // Earlier pulls may have been pruned: then the rest cannot be settled.
        if self.player.created_at < self.scope.history_from() {
            return;
        }
        self.report.heroes_checked += 1;
        for (hero_id, owned) in &self.player.heroes {
            let granted = self.granted.get(hero_id);
            let starter = STARTER_HEROES.contains(&hero_id.as_str());
            if !starter && granted.is_none_or(|g| g.new == 0) {
                self.report.mismatch(format!("{who}: owns {hero_id}, which no pull granted"));
            }
            let spent: u64 = (2..=owned.stars).filter_map(catalog::promotion_cost).map(u64::from).sum();
            let pulled = granted.map_or(0, |g| g.shards);
            if u64::from(owned.shards) + spent != pulled {
                self.report.mismatch(format!(
                    "{who}: {hero_id} holds {} shards and {} stars ({spent} shards spent), its pulls granted {pulled}",
                    owned.shards, owned.stars
                ));
            }
        }
    }
}

fn slot(c: Currency) -> usize {
    Currency::ALL.iter().position(|&x| x == c).unwrap_or(0)
}
