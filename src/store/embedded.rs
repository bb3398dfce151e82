//! The embedded store: a redb file under `DATA_DIR`, ACID and crash-safe.
//!
//! Writes go through one writer thread that commits in groups: it takes every
//! job waiting in its queue, runs each inside one write transaction (each job
//! sees the ones before it, so they stay serialized and individually atomic:
//! a refused job writes nothing), makes one durable commit, and only then
//! answers each job. One fsync thus serves many concurrent operations.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{mpsc, Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::game::chat::ChatMessage;
use crate::game::player::Scores;

use super::{
    apply_mutation, starting_ledger, Board, BoardEntry, HistoryRow, IdempotencyRecord, IdempotencyRequest, LedgerEntry,
    MutateOutcome, Page, Player, PreparedWrite, Restore, SharedDoc, SharedDocs, SharedMutation, Store, StoreError,
    StoredResponse,
};

const PLAYERS: TableDefinition<&str, &[u8]> = TableDefinition::new("players");
const USERNAMES: TableDefinition<&str, &str> = TableDefinition::new("usernames");
const LEDGER: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("ledger");
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("history");
const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");
const BATTLES: TableDefinition<&str, &[u8]> = TableDefinition::new("battles");
/// Outbox position → event JSON, in write order.
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Event id → event JSON: published, not yet applied by a consumer.
const UNCONSUMED: TableDefinition<&str, &[u8]> = TableDefinition::new("unconsumed");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (consumer, event id) → (): which consumer applied which event.
const CONSUMED: TableDefinition<(&str, &str), ()> = TableDefinition::new("consumed");
const COUNTERS: TableDefinition<&str, i64> = TableDefinition::new("counters");
/// The public draw record: (banner, draw id) → the draw as JSON.
const DRAWS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("draws");
/// (event kind, event id) → unix seconds of the event: that an economy event was
/// audited, once (its data is in the ledger and history already).
const AUDIT: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("audit");
/// (unix seconds written, player id, key): idempotency records by age, for pruning.
const IDEMPOTENCY_BY_TIME: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("idempotency_by_time");
/// (unix seconds written, player id, player version): history rows by age, for
/// pruning; one entry covers the rows of one write (seqs `version << 8 | i`).
const HISTORY_BY_TIME: TableDefinition<(u64, &str, u64), ()> = TableDefinition::new("history_by_time");
/// (board, u64::MAX − score, player id) → username: iterating forward is best first.
const BOARDS: TableDefinition<(&str, u64, &str), &str> = TableDefinition::new("boards");

/// Redeem codes: code → the code as JSON (its use count inside).
const CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("codes");
/// (code, player id) → (): who holds a use of which code.
const CODE_USES: TableDefinition<(&str, &str), ()> = TableDefinition::new("code_uses");
/// Chat: (channel, message id) → the message as JSON; ids sort by time.
const CHAT: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("chat");
/// Chat message id → (channel, sender, sender's Idempotency-Key): lookups by
/// id, and pruning oldest first.
const CHAT_IDS: TableDefinition<&str, (&str, &str, &str)> = TableDefinition::new("chat_ids");
/// (sender, Idempotency-Key) → message id: a repeated send is the first one.
const CHAT_KEYS: TableDefinition<(&str, &str), &str> = TableDefinition::new("chat_keys");
/// Shared documents (friend books, guilds): `kind:id` → `SharedDoc` as JSON.
const SHARED: TableDefinition<&str, &[u8]> = TableDefinition::new("shared");

/// Counts of scores by prefix, for ranks without walking a board: (board,
/// level, prefix) → players whose score's top `level + 1` bytes are `prefix`.
/// The players ahead of a score are, at each of the 8 levels, the counts of the
/// higher siblings of its prefix: at most 8 × 255 rows whatever the board's size.
const RANK_COUNTS: TableDefinition<(&str, u8, u64), u64> = TableDefinition::new("rank_counts");
/// Bytes of a score, one radix level each.
const RANK_LEVELS: u8 = 8;

/// Page cache of the embedded store, MiB, unless `STORE_CACHE_MB` says otherwise.
pub const DEFAULT_CACHE_MB: u64 = 16;

/// Most jobs folded into one commit.
const MAX_GROUP: usize = 512;

/// How to answer a job once its group's commit is known.
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// One queued write.
trait GroupJob: Send {
    /// Runs inside the group's transaction; `Err` after a storage fault, which
    /// aborts the group (the job has then already been answered).
    fn run(self: Box<Self>, txn: &WriteTransaction) -> Result<Reply, ()>;
    /// Answers without running.
    fn fail(self: Box<Self>, e: StoreError);
}

type Job = Box<dyn GroupJob>;

struct WriteJob<F, T> {
    f: F,
    tx: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> GroupJob for WriteJob<F, T>
where
    F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send,
    T: Send + 'static,
{
    fn run(self: Box<Self>, txn: &WriteTransaction) -> Result<Reply, ()> {
        let tx = self.tx;
        match (self.f)(txn) {
            Ok(v) => Ok(Box::new(move |committed: Result<(), StoreError>| {
                let _ = tx.send(committed.map(|()| v));
            })),
            Err(e) => {
                let _ = tx.send(Err(e));
                Err(())
            }
        }
    }

    fn fail(self: Box<Self>, e: StoreError) {
        let _ = self.tx.send(Err(e));
    }
}

#[derive(serde::Deserialize)]
struct IdemRecord {
    fingerprint: String,
    response: StoredResponse,
}

/// An `IdemRecord` to write, borrowing rather than copying the response.
#[derive(Serialize)]
struct IdemRecordRef<'a> {
    fingerprint: &'a str,
    response: &'a StoredResponse,
}

/// A row of the public draw record: a summon's pulls under its event id, or
/// (as versions before kept them) one pull under its own id.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum DrawRow {
    Summon(Vec<super::events::Draw>),
    Pull(super::events::Draw),
}

/// A redb-backed store.
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Relays' leases on outbox positions: (relay, until). Kept in memory on
    /// purpose: every relay of an embedded store runs in the one process that
    /// holds its file, and a lease must die with its relay. Held across a
    /// claim's read, and taken to drop leases only after the rows' move is
    /// committed, so that no claim reads a row whose lease is already gone.
    leases: tokio::sync::Mutex<std::collections::HashMap<u64, (String, DateTime<Utc>)>>,
    /// `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EmbeddedStore {
    /// Closes the queue and waits for the writer to finish its last group, so
    /// that the file is free for the next owner when the store is gone.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// First byte of a compressed value: `LZ4_TAG`, then an lz4 block with its
/// uncompressed length in front. JSON never starts with this byte, so a reader
/// tells the two apart, and rows written as plain JSON read as they always did.
const LZ4_TAG: u8 = 0x01;

/// Rows shorter than this stay plain JSON: too small to gain from compression.
const COMPRESS_FROM: usize = 256;

/// A record that is rewritten in place (a shared document, a code): plain
/// JSON. It is read and written on every change to it, so compressing it would
/// cost both ends of every write and keep no disk (it replaces itself).
fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A row written once and kept (history, kept responses, battles, draws,
/// events): its JSON lz4-compressed when that saves at least a quarter. These
/// rows are what the store grows by, and they repeat the same keys over and
/// over (a pull's fields): 2-3x smaller on disk and in every commit's writes.
fn encode_packed<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    let json = encode(v)?;
    if json.len() < COMPRESS_FROM {
        return Ok(json);
    }
    let packed = lz4_flex::block::compress_prepend_size(&json);
    if packed.len() + 1 > json.len() / 4 * 3 {
        return Ok(json);
    }
    let mut out = Vec::with_capacity(packed.len() + 1);
    out.push(LZ4_TAG);
    out.extend_from_slice(&packed);
    Ok(out)
}

/// The player record, decoded and rewritten by every write: MessagePack with
/// field names, which both ends of a write handle faster than JSON (a bench
/// 10-pull spent about a tenth of its CPU on the record's JSON) and which stays
/// self-describing, so fields added later with `#[serde(default)]` read from
/// older rows. Its first byte is a map marker, never a JSON one.
fn encode_player(p: &Player) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(p).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Whether a stored value starts as `encode_player` writes it: a MessagePack map
/// (fixmap, map 16, map 32).
fn is_messagepack_map(first: u8) -> bool {
    matches!(first, 0x80..=0x8f | 0xde | 0xdf)
}

/// Reads what `encode`, `encode_packed` or `encode_player` wrote (or plain JSON
/// of any version).
fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    match b.split_first() {
        Some((&first, _)) if is_messagepack_map(first) => rmp_serde::from_slice(b).map_err(|e| corrupt(&e)),
        Some((&LZ4_TAG, packed)) => {
            let json = lz4_flex::block::decompress_size_prepended(packed).map_err(|e| corrupt(&e))?;
            serde_json::from_slice(&json).map_err(|e| corrupt(&e))
        }
        _ => serde_json::from_slice(b).map_err(|e| corrupt(&e)),
    }
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/divine-heroes.redb` with the default page cache.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, DEFAULT_CACHE_MB)
    }

    /// Opens (or creates) `dir/divine-heroes.redb`, its page cache bounded to
    /// `cache_mb` MiB, and starts the writer thread.
    pub fn open_with(dir: &Path, cache_mb: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| unavailable(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("divine-heroes.redb");
        let cache = usize::try_from(cache_mb.max(1) * 1024 * 1024).unwrap_or(usize::MAX);
        let db = redb::Builder::new()
            .set_cache_size(cache)
            .create(&path)
            .map_err(|e| unavailable(format!("opening {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(unavailable)?;
        {
            txn.open_table(PLAYERS).map_err(unavailable)?;
            txn.open_table(USERNAMES).map_err(unavailable)?;
            txn.open_table(LEDGER).map_err(unavailable)?;
            txn.open_table(HISTORY).map_err(unavailable)?;
            txn.open_table(IDEMPOTENCY).map_err(unavailable)?;
            txn.open_table(BOARDS).map_err(unavailable)?;
            txn.open_table(BATTLES).map_err(unavailable)?;
            txn.open_table(OUTBOX).map_err(unavailable)?;
            txn.open_table(UNCONSUMED).map_err(unavailable)?;
            txn.open_table(META).map_err(unavailable)?;
            txn.open_table(CONSUMED).map_err(unavailable)?;
            txn.open_table(COUNTERS).map_err(unavailable)?;
            txn.open_table(DRAWS).map_err(unavailable)?;
            txn.open_table(AUDIT).map_err(unavailable)?;
            txn.open_table(IDEMPOTENCY_BY_TIME).map_err(unavailable)?;
            txn.open_table(HISTORY_BY_TIME).map_err(unavailable)?;
            txn.open_table(RANK_COUNTS).map_err(unavailable)?;
            txn.open_table(CODES).map_err(unavailable)?;
            txn.open_table(CODE_USES).map_err(unavailable)?;
            txn.open_table(SHARED).map_err(unavailable)?;
            txn.open_table(CHAT).map_err(unavailable)?;
            txn.open_table(CHAT_IDS).map_err(unavailable)?;
            txn.open_table(CHAT_KEYS).map_err(unavailable)?;
            build_rank_counts(&txn)?;
        }
        txn.commit().map_err(unavailable)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel::<Job>();
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(&writer_db, rx))
            .map_err(unavailable)?;
        Ok(Self { db, leases: tokio::sync::Mutex::default(), jobs: Some(tx), writer: Some(writer) })
    }

    /// Queues `f` for the next group commit and waits for that commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(WriteJob { f, tx });
        let jobs = self.jobs.as_ref().ok_or_else(|| unavailable("store closed"))?;
        jobs.send(job).map_err(|_| unavailable("store writer stopped"))?;
        rx.await.map_err(|_| unavailable("store writer stopped"))?
    }

    /// Runs a read-only closure on a snapshot, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(unavailable)?;
            f(&txn)
        })
        .await
        .map_err(unavailable)?
    }
}

fn writer_loop(db: &Database, rx: mpsc::Receiver<Job>) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    while let Ok(first) = rx.recv() {
        queue.push_back(first);
        while queue.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => queue.push_back(j),
                Err(_) => break,
            }
        }
        while !queue.is_empty() {
            let txn = match db.begin_write() {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "store: cannot begin write transaction");
                    for job in queue.drain(..) {
                        job.fail(unavailable(&e));
                    }
                    break;
                }
            };
            let mut replies: Vec<Reply> = Vec::with_capacity(queue.len());
            let mut aborted = false;
            while let Some(job) = queue.pop_front() {
                // A panicking rule must not take the writer thread (and every later write) with it.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&txn)));
                if let Ok(reply) = ran.unwrap_or(Err(())) {
                    replies.push(reply);
                } else {
                    aborted = true;
                    break;
                }
            }
            if aborted {
                // A storage fault mid-group: drop the transaction and tell the jobs
                // already run that nothing of theirs was kept; the rest run next.
                drop(txn);
                for r in replies {
                    r(Err(StoreError::Unavailable(
                        "write aborted by a storage fault in the same commit group; retry".into(),
                    )));
                }
                continue;
            }
            let committed = txn.commit().map_err(unavailable);
            if let Err(e) = &committed {
                tracing::error!(error = %e, "store: commit failed");
            }
            metrics::counter!(crate::platform::metrics::STORE_COMMITS).increment(1);
            metrics::counter!(crate::platform::metrics::STORE_GROUPED_WRITES).increment(replies.len() as u64);
            for r in replies {
                r(match &committed {
                    Ok(()) => Ok(()),
                    Err(e) => Err(unavailable(e)),
                });
            }
        }
    }
}

fn unix_secs(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

fn load_player_w(txn: &WriteTransaction, id: &str) -> Result<Option<Player>, StoreError> {
    let t = txn.open_table(PLAYERS).map_err(unavailable)?;
    let v = t.get(id).map_err(unavailable)?;
    v.map(|g| decode(g.value())).transpose()
}

fn load_shared_w(txn: &WriteTransaction, keys: &[String]) -> Result<SharedDocs, StoreError> {
    let t = txn.open_table(SHARED).map_err(unavailable)?;
    let mut rows = Vec::with_capacity(keys.len());
    for k in keys {
        let doc: Option<SharedDoc> = t.get(k.as_str()).map_err(unavailable)?.map(|g| decode(g.value())).transpose()?;
        rows.push((k.clone(), doc));
    }
    Ok(SharedDocs::loaded(rows))
}

/// Writes what the rule changed, each document's version one past the one read.
fn put_shared(txn: &WriteTransaction, docs: &SharedDocs) -> Result<(), StoreError> {
    let mut changes = docs.changes().peekable();
    if changes.peek().is_none() {
        return Ok(());
    }
    let mut t = txn.open_table(SHARED).map_err(unavailable)?;
    for c in changes {
        match c.doc {
            Some(doc) => {
                let row = SharedDoc { v: c.read.unwrap_or(0) + 1, doc: doc.clone() };
                t.insert(c.key, encode(&row)?.as_slice()).map_err(unavailable)?;
            }
            None => {
                t.remove(c.key).map_err(unavailable)?;
            }
        }
    }
    Ok(())
}

fn put_player(txn: &WriteTransaction, p: &Player) -> Result<(), StoreError> {
    let mut t = txn.open_table(PLAYERS).map_err(unavailable)?;
    t.insert(p.id.as_str(), encode_player(p)?.as_slice()).map_err(unavailable)?;
    Ok(())
}

/// Moves the player's leaderboard rows from its old scores to its new ones;
/// `old` is the name and scores the rows were written under (none: a new player).
fn update_boards(txn: &WriteTransaction, old: Option<(&str, Scores)>, new: &Player) -> Result<(), StoreError> {
    let unmoved =
        |b: Board, (name, scores): (&str, Scores)| name == new.username && b.of_scores(&scores) == b.score(new);
    // Most writes move no score: then neither table is opened.
    if old.is_some_and(|o| Board::ALL.iter().all(|b| unmoved(*b, o))) {
        return Ok(());
    }
    let mut t = txn.open_table(BOARDS).map_err(unavailable)?;
    let mut counts = txn.open_table(RANK_COUNTS).map_err(unavailable)?;
    for b in Board::ALL {
        if let Some(o) = old {
            // Their rows stay as they are on boards where nothing moved.
            if unmoved(b, o) {
                continue;
            }
            t.remove((b.name(), u64::MAX - b.of_scores(&o.1), new.id.as_str())).map_err(unavailable)?;
        }
        t.insert((b.name(), u64::MAX - b.score(new), new.id.as_str()), new.username.as_str()).map_err(unavailable)?;
        move_rank_count(&mut counts, b.name(), old.map(|o| b.of_scores(&o.1)), b.score(new))?;
    }
    Ok(())
}

/// A score's prefix at `level`: its top `level + 1` bytes.
fn rank_prefix(score: u64, level: u8) -> u64 {
    score >> (8 * u32::from(RANK_LEVELS - 1 - level))
}

/// Moves one player's count from score `old` (none: a new player) to `new`;
/// levels where both share the prefix are left alone (a small change touches one or two).
fn move_rank_count(
    counts: &mut redb::Table<(&'static str, u8, u64), u64>,
    board: &str,
    old: Option<u64>,
    new: u64,
) -> Result<(), StoreError> {
    for level in 0..RANK_LEVELS {
        let to = rank_prefix(new, level);
        if let Some(from) = old.map(|o| rank_prefix(o, level)) {
            if from == to {
                continue;
            }
            let n = counts.get((board, level, from)).map_err(unavailable)?.map_or(0, |g| g.value());
            if n <= 1 {
                counts.remove((board, level, from)).map_err(unavailable)?;
            } else {
                counts.insert((board, level, from), n - 1).map_err(unavailable)?;
            }
        }
        let n = counts.get((board, level, to)).map_err(unavailable)?.map_or(0, |g| g.value());
        counts.insert((board, level, to), n + 1).map_err(unavailable)?;
    }
    Ok(())
}

/// Players on `board` with a score above `score`: per level, the counts of the
/// prefixes that share its parent and are higher.
fn players_above(txn: &redb::ReadTransaction, board: &str, score: u64) -> Result<u64, StoreError> {
    let counts = txn.open_table(RANK_COUNTS).map_err(unavailable)?;
    let mut above = 0;
    for level in 0..RANK_LEVELS {
        let prefix = rank_prefix(score, level);
        let last_sibling = prefix | 0xff;
        if prefix == last_sibling {
            continue;
        }
        for row in counts.range((board, level, prefix + 1)..=(board, level, last_sibling)).map_err(unavailable)? {
            above += row.map_err(unavailable)?.1.value();
        }
    }
    Ok(above)
}

/// Fills the rank counts from the boards once (stores from before they were kept).
fn build_rank_counts(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(unavailable)?;
    if meta.get("rank_counts").map_err(unavailable)?.is_some() {
        return Ok(());
    }
    let boards = txn.open_table(BOARDS).map_err(unavailable)?;
    let mut counts = txn.open_table(RANK_COUNTS).map_err(unavailable)?;
    for row in boards.iter().map_err(unavailable)? {
        let (k, _) = row.map_err(unavailable)?;
        let (board, inv, _) = k.value();
        move_rank_count(&mut counts, board, None, u64::MAX - inv)?;
    }
    meta.insert("rank_counts", 1).map_err(unavailable)?;
    Ok(())
}

/// Appends events to the outbox under increasing positions.
fn put_outbox(txn: &WriteTransaction, events: &[super::events::Event]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut meta = txn.open_table(META).map_err(unavailable)?;
    let mut next = meta.get("outbox_seq").map_err(unavailable)?.map_or(0, |g| g.value());
    let mut t = txn.open_table(OUTBOX).map_err(unavailable)?;
    for e in events {
        next += 1;
        t.insert(next, encode_packed(e)?.as_slice()).map_err(unavailable)?;
    }
    meta.insert("outbox_seq", next).map_err(unavailable)?;
    Ok(())
}

fn put_ledger(txn: &WriteTransaction, entries: &[LedgerEntry]) -> Result<(), StoreError> {
    let mut t = txn.open_table(LEDGER).map_err(unavailable)?;
    for e in entries {
        t.insert((e.player_id.as_str(), e.seq), encode(e)?.as_slice()).map_err(unavailable)?;
    }
    Ok(())
}

fn put_history(txn: &WriteTransaction, rows: &[HistoryRow]) -> Result<(), StoreError> {
    let mut t = txn.open_table(HISTORY).map_err(unavailable)?;
    for r in rows {
        t.insert((r.player_id.as_str(), r.seq), encode_packed(r)?.as_slice()).map_err(unavailable)?;
    }
    Ok(())
}

fn page<T: DeserializeOwned>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<(&str, u64), &[u8]>,
    player_id: &str,
    limit: usize,
    before: Option<u64>,
) -> Result<Page<T>, StoreError> {
    let t = txn.open_table(def).map_err(unavailable)?;
    let end = before.unwrap_or(u64::MAX);
    let mut items = Vec::with_capacity(limit);
    let mut last_seq = None;
    let mut more = false;
    for row in t.range((player_id, 0)..(player_id, end)).map_err(unavailable)?.rev() {
        let (k, v) = row.map_err(unavailable)?;
        if items.len() == limit {
            more = true;
            break;
        }
        last_seq = Some(k.value().1);
        items.push(decode(v.value())?);
    }
    Ok(Page { items, next_before: if more { last_seq } else { None } })
}

#[async_trait]
impl Store for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|txn| txn.open_table(PLAYERS).map(|_| ()).map_err(unavailable)).await
    }

    async fn create_player(&self, player: &Player) -> Result<(), StoreError> {
        let player = player.clone();
        self.write(move |txn| {
            {
                let mut names = txn.open_table(USERNAMES).map_err(unavailable)?;
                if names.get(player.username_lower.as_str()).map_err(unavailable)?.is_some() {
                    return Ok(Err(StoreError::UsernameTaken));
                }
                names.insert(player.username_lower.as_str(), player.id.as_str()).map_err(unavailable)?;
            }
            put_player(txn, &player)?;
            update_boards(txn, None, &player)?;
            put_outbox(txn, &super::events::registered(&player))?;
            put_ledger(txn, &starting_ledger(&player))?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn import_players(&self, players: &[Player]) -> Result<usize, StoreError> {
        let players = players.to_vec();
        self.write(move |txn| {
            let mut created = 0;
            for player in &players {
                {
                    let mut names = txn.open_table(USERNAMES).map_err(unavailable)?;
                    if names.get(player.username_lower.as_str()).map_err(unavailable)?.is_some() {
                        continue;
                    }
                    names.insert(player.username_lower.as_str(), player.id.as_str()).map_err(unavailable)?;
                }
                put_player(txn, player)?;
                update_boards(txn, None, player)?;
                put_ledger(txn, &starting_ledger(player))?;
                created += 1;
            }
            Ok(created)
        })
        .await
    }

    async fn player_by_id(&self, id: &str) -> Result<Option<Player>, StoreError> {
        let id = id.to_string();
        self.read(move |txn| {
            let t = txn.open_table(PLAYERS).map_err(unavailable)?;
            let v = t.get(id.as_str()).map_err(unavailable)?;
            v.map(|g| decode(g.value())).transpose()
        })
        .await
    }

    async fn players_by_username_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Player>, StoreError> {
        let prefix = prefix.to_string();
        self.read(move |txn| {
            let names = txn.open_table(USERNAMES).map_err(unavailable)?;
            let players = txn.open_table(PLAYERS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in names.range(prefix.as_str()..).map_err(unavailable)? {
                let (name, id) = row.map_err(unavailable)?;
                if !name.value().starts_with(prefix.as_str()) || out.len() == limit {
                    break;
                }
                if let Some(g) = players.get(id.value()).map_err(unavailable)? {
                    out.push(decode(g.value())?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn player_by_username(&self, username_lower: &str) -> Result<Option<Player>, StoreError> {
        let name = username_lower.to_string();
        self.read(move |txn| {
            let names = txn.open_table(USERNAMES).map_err(unavailable)?;
            let Some(id) = names.get(name.as_str()).map_err(unavailable)? else { return Ok(None) };
            let t = txn.open_table(PLAYERS).map_err(unavailable)?;
            let v = t.get(id.value()).map_err(unavailable)?;
            v.map(|g| decode(g.value())).transpose()
        })
        .await
    }

    async fn mutate_shared(
        &self,
        player_id: &str,
        idempotency: Option<IdempotencyRequest>,
        now: DateTime<Utc>,
        keys: Vec<String>,
        op: SharedMutation,
    ) -> Result<MutateOutcome, StoreError> {
        let player_id = player_id.to_string();
        // The one writer runs jobs one after another: what it reads here cannot
        // change before this job's writes, so the versions need no check.
        self.write(move |txn| {
            if let Some(idem) = &idempotency {
                let t = txn.open_table(IDEMPOTENCY).map_err(unavailable)?;
                let v = t.get((player_id.as_str(), idem.key.as_str())).map_err(unavailable)?;
                if let Some(g) = v {
                    let rec: IdemRecord = decode(g.value())?;
                    return Ok(if rec.fingerprint == idem.fingerprint {
                        MutateOutcome::Replayed(rec.response)
                    } else {
                        MutateOutcome::KeyReused
                    });
                }
            }
            let Some(loaded) = load_player_w(txn, &player_id)? else { return Ok(MutateOutcome::PlayerNotFound) };
            let mut docs = if keys.is_empty() { SharedDocs::default() } else { load_shared_w(txn, &keys)? };
            // What the board rows are keyed by now, rather than a copy of the whole record.
            let (old_name, old_scores) = (loaded.username.clone(), loaded.scores);
            let PreparedWrite { player, effects, ledger, history, events } =
                match apply_mutation(loaded, |p| op(p, &mut docs), now) {
                    Ok(x) => x,
                    Err(e) => return Ok(MutateOutcome::Rejected(e)),
                };
            put_shared(txn, &docs)?;
            put_player(txn, &player)?;
            update_boards(txn, Some((&old_name, old_scores)), &player)?;
            put_ledger(txn, &ledger)?;
            put_history(txn, &history)?;
            if !history.is_empty() {
                let mut t = txn.open_table(HISTORY_BY_TIME).map_err(unavailable)?;
                t.insert((unix_secs(now), player_id.as_str(), player.version), ()).map_err(unavailable)?;
            }
            put_outbox(txn, &events)?;
            if !effects.battles.is_empty() {
                let mut t = txn.open_table(BATTLES).map_err(unavailable)?;
                for (id, record) in &effects.battles {
                    t.insert(id.as_str(), encode_packed(record)?.as_slice()).map_err(unavailable)?;
                }
            }
            if let Some(idem) = &idempotency {
                let rec = IdemRecordRef { fingerprint: &idem.fingerprint, response: &effects.response };
                let mut t = txn.open_table(IDEMPOTENCY).map_err(unavailable)?;
                t.insert((player_id.as_str(), idem.key.as_str()), encode_packed(&rec)?.as_slice())
                    .map_err(unavailable)?;
                let mut by_time = txn.open_table(IDEMPOTENCY_BY_TIME).map_err(unavailable)?;
                by_time.insert((unix_secs(now), player_id.as_str(), idem.key.as_str()), ()).map_err(unavailable)?;
            }
            Ok(MutateOutcome::Applied(effects.response, Box::new(player)))
        })
        .await
    }

    async fn ledger(
        &self,
        player_id: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        let id = player_id.to_string();
        self.read(move |txn| page(txn, LEDGER, &id, limit, before)).await
    }

    async fn history(
        &self,
        player_id: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Page<HistoryRow>, StoreError> {
        let id = player_id.to_string();
        self.read(move |txn| page(txn, HISTORY, &id, limit, before)).await
    }

    async fn leaderboard(&self, board: Board, limit: usize) -> Result<Vec<BoardEntry>, StoreError> {
        self.read(move |txn| {
            let t = txn.open_table(BOARDS).map_err(unavailable)?;
            let mut out = Vec::with_capacity(limit);
            let rows = t.range((board.name(), 0, "")..=(board.name(), u64::MAX, "\u{10FFFF}")).map_err(unavailable)?;
            for row in rows.take(limit) {
                let (k, v) = row.map_err(unavailable)?;
                let (_, inv, id) = k.value();
                out.push(BoardEntry {
                    rank: 0,
                    player_id: id.to_string(),
                    username: v.value().to_string(),
                    score: u64::MAX - inv,
                });
            }
            super::rank_from_top(&mut out);
            Ok(out)
        })
        .await
    }

    async fn rank(&self, board: Board, player_id: &str) -> Result<Option<BoardEntry>, StoreError> {
        let Some(p) = self.player_by_id(player_id).await? else { return Ok(None) };
        self.read(move |txn| {
            let ahead = players_above(txn, board.name(), board.score(&p))?;
            Ok(Some(BoardEntry {
                rank: ahead + 1,
                player_id: p.id.clone(),
                username: p.username.clone(),
                score: board.score(&p),
            }))
        })
        .await
    }

    async fn player_ids(&self, after: Option<String>, limit: usize) -> Result<Vec<String>, StoreError> {
        use std::ops::Bound;
        self.read(move |txn| {
            let t = txn.open_table(PLAYERS).map_err(unavailable)?;
            let lower = match &after {
                Some(a) => Bound::Excluded(a.as_str()),
                None => Bound::Unbounded,
            };
            let mut out = Vec::with_capacity(limit);
            for row in t.range::<&str>((lower, Bound::Unbounded)).map_err(unavailable)?.take(limit) {
                out.push(row.map_err(unavailable)?.0.value().to_string());
            }
            Ok(out)
        })
        .await
    }

    async fn draws(
        &self,
        banner_id: &str,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<super::events::Draw>, StoreError> {
        let banner = banner_id.to_string();
        self.read(move |txn| {
            let t = txn.open_table(DRAWS).map_err(unavailable)?;
            let end = before.as_deref().unwrap_or("\u{10ffff}");
            let mut out = Vec::with_capacity(limit);
            // A summon's row sorts before its pulls' ids, so the range also holds
            // the row of the pull the cursor names; its later pulls are skipped.
            for row in t.range((banner.as_str(), "")..(banner.as_str(), end)).map_err(unavailable)?.rev() {
                let pulls = match decode(row.map_err(unavailable)?.1.value())? {
                    DrawRow::Summon(pulls) => pulls,
                    DrawRow::Pull(pull) => vec![pull],
                };
                for pull in pulls.into_iter().rev() {
                    if before.as_ref().is_some_and(|b| pull.id >= *b) {
                        continue;
                    }
                    out.push(pull);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn idempotency_records(
        &self,
        player_id: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<IdempotencyRecord>, StoreError> {
        use std::ops::Bound;
        let player_id = player_id.to_string();
        self.read(move |txn| {
            let t = txn.open_table(IDEMPOTENCY).map_err(unavailable)?;
            let lower = match &after {
                Some(a) => Bound::Excluded((player_id.as_str(), a.as_str())),
                None => Bound::Included((player_id.as_str(), "")),
            };
            let mut out = Vec::with_capacity(limit);
            for row in t.range::<(&str, &str)>((lower, Bound::Unbounded)).map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
                let (owner, key) = k.value();
                if owner != player_id || out.len() == limit {
                    break;
                }
                let rec: IdemRecord = decode(v.value())?;
                out.push(IdempotencyRecord {
                    key: key.to_string(),
                    fingerprint: rec.fingerprint,
                    response: rec.response,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn battles_after(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        use std::ops::Bound;
        self.read(move |txn| {
            let t = txn.open_table(BATTLES).map_err(unavailable)?;
            let lower = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let mut out = Vec::with_capacity(limit);
            for row in t.range::<&str>((lower, Bound::Unbounded)).map_err(unavailable)?.take(limit) {
                let (k, v) = row.map_err(unavailable)?;
                out.push((k.value().to_string(), decode(v.value())?));
            }
            Ok(out)
        })
        .await
    }

    async fn create_code(&self, code: &crate::game::codes::RedeemCode) -> Result<bool, StoreError> {
        let code = code.clone();
        self.write(move |txn| {
            let mut t = txn.open_table(CODES).map_err(unavailable)?;
            if t.get(code.code.as_str()).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            t.insert(code.code.as_str(), encode(&code)?.as_slice()).map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn codes(&self) -> Result<Vec<crate::game::codes::RedeemCode>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(CODES).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(unavailable)? {
                out.push(decode(row.map_err(unavailable)?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn disable_code(&self, code: &str) -> Result<bool, StoreError> {
        let code = code.to_string();
        self.write(move |txn| {
            let mut t = txn.open_table(CODES).map_err(unavailable)?;
            let found: Option<crate::game::codes::RedeemCode> =
                t.get(code.as_str()).map_err(unavailable)?.map(|g| decode(g.value())).transpose()?;
            let Some(mut c) = found else { return Ok(false) };
            c.enabled = false;
            t.insert(code.as_str(), encode(&c)?.as_slice()).map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn reserve_code_use(
        &self,
        code: &str,
        player_id: &str,
        now: DateTime<Utc>,
    ) -> Result<crate::game::codes::CodeUse, StoreError> {
        use crate::game::codes::{CodeRefusal, CodeUse, RedeemCode};
        let (code, player_id) = (code.to_string(), player_id.to_string());
        // One write job: the check, the count and the holder are one atomic step.
        self.write(move |txn| {
            let mut t = txn.open_table(CODES).map_err(unavailable)?;
            let found: Option<RedeemCode> =
                t.get(code.as_str()).map_err(unavailable)?.map(|g| decode(g.value())).transpose()?;
            let Some(mut c) = found else { return Ok(CodeUse::Refused(CodeRefusal::Unknown)) };
            let mut holders = txn.open_table(CODE_USES).map_err(unavailable)?;
            if holders.get((code.as_str(), player_id.as_str())).map_err(unavailable)?.is_some() {
                return Ok(CodeUse::Reserved(c));
            }
            if let Some(why) = c.refusal(now) {
                return Ok(CodeUse::Refused(why));
            }
            c.uses += 1;
            t.insert(code.as_str(), encode(&c)?.as_slice()).map_err(unavailable)?;
            holders.insert((code.as_str(), player_id.as_str()), ()).map_err(unavailable)?;
            Ok(CodeUse::Reserved(c))
        })
        .await
    }

    async fn chat_post(&self, message: &ChatMessage, key: &str) -> Result<(ChatMessage, bool), StoreError> {
        let (m, key) = (message.clone(), key.to_string());
        self.write(move |txn| {
            let mut keys = txn.open_table(CHAT_KEYS).map_err(unavailable)?;
            let mut t = txn.open_table(CHAT).map_err(unavailable)?;
            let mut ids = txn.open_table(CHAT_IDS).map_err(unavailable)?;
            let first =
                keys.get((m.player_id.as_str(), key.as_str())).map_err(unavailable)?.map(|g| g.value().to_string());
            if let Some(id) = first {
                let channel = ids.get(id.as_str()).map_err(unavailable)?.map(|g| g.value().0.to_string());
                if let Some(channel) = channel {
                    if let Some(g) = t.get((channel.as_str(), id.as_str())).map_err(unavailable)? {
                        return Ok((decode(g.value())?, false));
                    }
                }
            }
            keys.insert((m.player_id.as_str(), key.as_str()), m.id.as_str()).map_err(unavailable)?;
            t.insert((m.channel.as_str(), m.id.as_str()), encode(&m)?.as_slice()).map_err(unavailable)?;
            ids.insert(m.id.as_str(), (m.channel.as_str(), m.player_id.as_str(), key.as_str())).map_err(unavailable)?;
            Ok((m, true))
        })
        .await
    }

    async fn chat_history(
        &self,
        channel: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let (channel, before) = (channel.to_string(), before.map(str::to_string));
        self.read(move |txn| {
            let t = txn.open_table(CHAT).map_err(unavailable)?;
            let end = (channel.as_str(), before.as_deref().unwrap_or("\u{10FFFF}"));
            let mut out = Vec::new();
            for row in t.range((channel.as_str(), "")..end).map_err(unavailable)?.rev().take(limit) {
                out.push(decode(row.map_err(unavailable)?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn chat_message(&self, id: &str) -> Result<Option<ChatMessage>, StoreError> {
        let id = id.to_string();
        self.read(move |txn| {
            let ids = txn.open_table(CHAT_IDS).map_err(unavailable)?;
            let Some(row) = ids.get(id.as_str()).map_err(unavailable)? else { return Ok(None) };
            let t = txn.open_table(CHAT).map_err(unavailable)?;
            let v = t.get((row.value().0, id.as_str())).map_err(unavailable)?;
            v.map(|g| decode(g.value())).transpose()
        })
        .await
    }

    async fn prune_chat(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        // Ids start with the sending time in ms (12 hex digits): older ids sort first.
        let cut = format!("{:012x}", before.timestamp_millis().max(0));
        self.write(move |txn| {
            let mut ids = txn.open_table(CHAT_IDS).map_err(unavailable)?;
            let old: Vec<(String, [String; 3])> = ids
                .range(..cut.as_str())
                .map_err(unavailable)?
                .take(limit)
                .map(|r| {
                    r.map(|(k, v)| {
                        let (channel, player, key) = v.value();
                        (k.value().to_string(), [channel.to_string(), player.to_string(), key.to_string()])
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            let mut t = txn.open_table(CHAT).map_err(unavailable)?;
            let mut keys = txn.open_table(CHAT_KEYS).map_err(unavailable)?;
            for (id, [channel, player, key]) in &old {
                t.remove((channel.as_str(), id.as_str())).map_err(unavailable)?;
                keys.remove((player.as_str(), key.as_str())).map_err(unavailable)?;
                ids.remove(id.as_str()).map_err(unavailable)?;
            }
            Ok(old.len() as u64)
        })
        .await
    }

    async fn shared_docs(&self, keys: &[String]) -> Result<Vec<Option<SharedDoc>>, StoreError> {
        let keys = keys.to_vec();
        self.read(move |txn| {
            let t = txn.open_table(SHARED).map_err(unavailable)?;
            keys.iter()
                .map(|k| t.get(k.as_str()).map_err(unavailable)?.map(|g| decode(g.value())).transpose())
                .collect()
        })
        .await
    }

    async fn shared_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, SharedDoc)>, StoreError> {
        let (prefix, after) = (prefix.to_string(), after.map(str::to_string));
        self.read(move |txn| {
            let t = txn.open_table(SHARED).map_err(unavailable)?;
            let start = after.as_deref().map_or(prefix.as_str(), |a| a.max(prefix.as_str()));
            let mut out = Vec::new();
            for row in t.range(start..).map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
                let key = k.value();
                if !key.starts_with(prefix.as_str()) || out.len() == limit {
                    break;
                }
                if after.as_deref() == Some(key) {
                    continue;
                }
                out.push((key.to_string(), decode(v.value())?));
            }
            Ok(out)
        })
        .await
    }

    async fn code_holders(&self, code: &str) -> Result<Vec<String>, StoreError> {
        let code = code.to_string();
        self.read(move |txn| {
            let t = txn.open_table(CODE_USES).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in t.range((code.as_str(), "")..).map_err(unavailable)? {
                let (k, _) = row.map_err(unavailable)?;
                let (c, player) = k.value();
                if c != code {
                    break;
                }
                out.push(player.to_string());
            }
            Ok(out)
        })
        .await
    }

    async fn restore(&self, rows: Vec<Restore>) -> Result<(), StoreError> {
        let now = unix_secs(Utc::now());
        self.write(move |txn| {
            for row in &rows {
                match row {
                    Restore::Player { player } => {
                        let old = load_player_w(txn, &player.id)?;
                        txn.open_table(USERNAMES)
                            .map_err(unavailable)?
                            .insert(player.username_lower.as_str(), player.id.as_str())
                            .map_err(unavailable)?;
                        put_player(txn, player)?;
                        update_boards(txn, old.as_ref().map(|o| (o.username.as_str(), o.scores)), player)?;
                    }
                    Restore::Ledger { entry } => put_ledger(txn, std::slice::from_ref(entry))?,
                    Restore::History { row } => {
                        put_history(txn, std::slice::from_ref(row))?;
                        let mut t = txn.open_table(HISTORY_BY_TIME).map_err(unavailable)?;
                        t.insert((unix_secs(row.at), row.player_id.as_str(), row.seq >> 8), ()).map_err(unavailable)?;
                    }
                    Restore::Idempotency { player_id, record } => {
                        let rec = IdemRecordRef { fingerprint: &record.fingerprint, response: &record.response };
                        let key = (player_id.as_str(), record.key.as_str());
                        txn.open_table(IDEMPOTENCY)
                            .map_err(unavailable)?
                            .insert(key, encode_packed(&rec)?.as_slice())
                            .map_err(unavailable)?;
                        // Restored records expire a retention after the restore.
                        txn.open_table(IDEMPOTENCY_BY_TIME)
                            .map_err(unavailable)?
                            .insert((now, key.0, key.1), ())
                            .map_err(unavailable)?;
                    }
                    Restore::Battle { id, record } => {
                        txn.open_table(BATTLES)
                            .map_err(unavailable)?
                            .insert(id.as_str(), encode_packed(record)?.as_slice())
                            .map_err(unavailable)?;
                    }
                    Restore::Code { code } => {
                        txn.open_table(CODES)
                            .map_err(unavailable)?
                            .insert(code.code.as_str(), encode(code)?.as_slice())
                            .map_err(unavailable)?;
                    }
                    Restore::CodeHolder { code, player_id } => {
                        txn.open_table(CODE_USES)
                            .map_err(unavailable)?
                            .insert((code.as_str(), player_id.as_str()), ())
                            .map_err(unavailable)?;
                    }
                    Restore::Shared { key, doc } => {
                        txn.open_table(SHARED)
                            .map_err(unavailable)?
                            .insert(key.as_str(), encode(doc)?.as_slice())
                            .map_err(unavailable)?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn battle(&self, battle_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let id = battle_id.to_string();
        self.read(move |txn| {
            let t = txn.open_table(BATTLES).map_err(unavailable)?;
            let v = t.get(id.as_str()).map_err(unavailable)?;
            v.map(|g| decode(g.value())).transpose()
        })
        .await
    }

    async fn board_range(&self, board: Board, min: u64, max: u64, limit: usize) -> Result<Vec<BoardEntry>, StoreError> {
        self.read(move |txn| {
            let t = txn.open_table(BOARDS).map_err(unavailable)?;
            let mut out = Vec::with_capacity(limit);
            let rows = t
                .range((board.name(), u64::MAX - max, "")..=(board.name(), u64::MAX - min, "\u{10FFFF}"))
                .map_err(unavailable)?;
            for row in rows.take(limit) {
                let (k, v) = row.map_err(unavailable)?;
                let (_, inv, id) = k.value();
                out.push(BoardEntry {
                    rank: 0,
                    player_id: id.to_string(),
                    username: v.value().to_string(),
                    score: u64::MAX - inv,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn outbox_batch(&self, limit: usize) -> Result<Vec<super::events::OutboxEntry>, StoreError> {
        self.read(move |txn| {
            let t = txn.open_table(OUTBOX).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(unavailable)?.take(limit) {
                let (k, v) = row.map_err(unavailable)?;
                out.push(super::events::OutboxEntry { key: k.value().to_string(), event: decode(v.value())? });
            }
            Ok(out)
        })
        .await
    }

    async fn outbox_claim(
        &self,
        owner: &str,
        limit: usize,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<super::events::OutboxEntry>, StoreError> {
        let mut leases = self.leases.lock().await;
        // The oldest rows, enough to find `limit` free ones behind other relays' claims.
        let rows = self.outbox_batch(limit + leases.len()).await?;
        let mut claimed = Vec::with_capacity(limit);
        for row in rows {
            let Ok(pos) = row.key.parse::<u64>() else { continue };
            let free = leases.get(&pos).is_none_or(|(by, till)| by == owner || *till < now);
            if free && claimed.len() < limit {
                leases.insert(pos, (owner.to_string(), until));
                claimed.push(row);
            }
        }
        Ok(claimed)
    }

    async fn outbox_relayed(&self, entries: &[super::events::OutboxEntry]) -> Result<(), StoreError> {
        let moved: Vec<(u64, String)> =
            entries.iter().filter_map(|e| Some((e.key.parse().ok()?, e.event.id.clone()))).collect();
        let positions: Vec<u64> = moved.iter().map(|(pos, _)| *pos).collect();
        self.write(move |txn| {
            let mut outbox = txn.open_table(OUTBOX).map_err(unavailable)?;
            let mut unconsumed = txn.open_table(UNCONSUMED).map_err(unavailable)?;
            for (key, id) in moved {
                if let Some(bytes) = outbox.remove(key).map_err(unavailable)? {
                    unconsumed.insert(id.as_str(), bytes.value()).map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await?;
        let mut leases = self.leases.lock().await;
        for pos in positions {
            leases.remove(&pos);
        }
        Ok(())
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        self.read(|txn| txn.open_table(OUTBOX).map_err(unavailable)?.len().map_err(unavailable)).await
    }

    async fn unconsumed(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<super::events::OutboxEntry>, StoreError> {
        self.read(move |txn| {
            let t = txn.open_table(UNCONSUMED).map_err(unavailable)?;
            let rows = match &after {
                Some(a) => t.range::<&str>((std::ops::Bound::Excluded(a.as_str()), std::ops::Bound::Unbounded)),
                None => t.range::<&str>(..),
            }
            .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows.take(limit) {
                let (k, v) = row.map_err(unavailable)?;
                out.push(super::events::OutboxEntry { key: k.value().to_string(), event: decode(v.value())? });
            }
            Ok(out)
        })
        .await
    }

    async fn unconsumed_len(&self) -> Result<u64, StoreError> {
        self.read(|txn| txn.open_table(UNCONSUMED).map_err(unavailable)?.len().map_err(unavailable)).await
    }

    async fn consume_batch(
        &self,
        consumer: &str,
        items: &[super::events::ConsumeItem],
        delivered: &[String],
    ) -> Result<Vec<bool>, StoreError> {
        let (consumer, items, delivered) = (consumer.to_string(), items.to_vec(), delivered.to_vec());
        self.write(move |txn| {
            let mut unconsumed = txn.open_table(UNCONSUMED).map_err(unavailable)?;
            for id in &delivered {
                unconsumed.remove(id.as_str()).map_err(unavailable)?;
            }
            let mut done = txn.open_table(CONSUMED).map_err(unavailable)?;
            let mut counters = txn.open_table(COUNTERS).map_err(unavailable)?;
            let mut audit = txn.open_table(AUDIT).map_err(unavailable)?;
            let mut draws = txn.open_table(DRAWS).map_err(unavailable)?;
            let mut applied = Vec::with_capacity(items.len());
            for item in &items {
                if done.get((consumer.as_str(), item.event_id.as_str())).map_err(unavailable)?.is_some() {
                    applied.push(false);
                    continue;
                }
                done.insert((consumer.as_str(), item.event_id.as_str()), ()).map_err(unavailable)?;
                for (name, delta) in &item.counters {
                    let cur = counters.get(name.as_str()).map_err(unavailable)?.map_or(0, |g| g.value());
                    counters.insert(name.as_str(), cur + delta).map_err(unavailable)?;
                }
                if let Some(e) = &item.audit {
                    audit
                        .insert((e.kind(), e.id.as_str()), e.at.timestamp().to_be_bytes().as_slice())
                        .map_err(unavailable)?;
                }
                // One row per summon, under its event's id (which every pull's id
                // extends): a 10-pull's record is one insert, not ten.
                if let Some(first) = item.draws.first() {
                    draws
                        .insert(
                            (first.banner_id.as_str(), item.event_id.as_str()),
                            encode_packed(&item.draws)?.as_slice(),
                        )
                        .map_err(unavailable)?;
                }
                applied.push(true);
            }
            Ok(applied)
        })
        .await
    }

    async fn counters(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let prefix = prefix.to_string();
        self.read(move |txn| {
            let t = txn.open_table(COUNTERS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in t.range(prefix.as_str()..).map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                out.push((k.value().to_string(), v.value()));
            }
            Ok(out)
        })
        .await
    }

    async fn audit_count(&self, kind: &str) -> Result<u64, StoreError> {
        let kind = kind.to_string();
        self.read(move |txn| {
            let t = txn.open_table(AUDIT).map_err(unavailable)?;
            let n = t.range((kind.as_str(), "")..=(kind.as_str(), "\u{10FFFF}")).map_err(unavailable)?.count();
            Ok(n as u64)
        })
        .await
    }

    async fn prune(
        &self,
        idempotency_before: DateTime<Utc>,
        history_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let (idem_cut, history_cut) = (unix_secs(idempotency_before), unix_secs(history_before));
        // Event ids are UUIDv7 in hex: their first 12 digits are the Unix time in ms.
        let consumed_cut = format!("{:012x}", idempotency_before.timestamp_millis().max(0));
        let draws_cut = format!("{:012x}", history_before.timestamp_millis().max(0));
        self.write(move |txn| {
            let mut removed = 0u64;
            let mut by_time = txn.open_table(IDEMPOTENCY_BY_TIME).map_err(unavailable)?;
            let mut records = txn.open_table(IDEMPOTENCY).map_err(unavailable)?;
            let old: Vec<(u64, String, String)> = by_time
                .range((0, "", "")..(idem_cut, "", ""))
                .map_err(unavailable)?
                .take(limit)
                .map(|r| {
                    r.map(|(k, _)| {
                        let (at, p, key) = k.value();
                        (at, p.to_string(), key.to_string())
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            for (at, p, key) in &old {
                records.remove((p.as_str(), key.as_str())).map_err(unavailable)?;
                by_time.remove((*at, p.as_str(), key.as_str())).map_err(unavailable)?;
                removed += 1;
            }
            let mut by_time = txn.open_table(HISTORY_BY_TIME).map_err(unavailable)?;
            let mut rows = txn.open_table(HISTORY).map_err(unavailable)?;
            let old: Vec<(u64, String, u64)> = by_time
                .range((0, "", 0)..(history_cut, "", 0))
                .map_err(unavailable)?
                .take(limit)
                .map(|r| {
                    r.map(|(k, _)| {
                        let (at, p, v) = k.value();
                        (at, p.to_string(), v)
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(unavailable)?;
            for (at, p, version) in &old {
                let first = super::seq(*version, 0);
                let keys: Vec<u64> = rows
                    .range((p.as_str(), first)..=(p.as_str(), first | 0xff))
                    .map_err(unavailable)?
                    .map(|r| r.map(|(k, _)| k.value().1))
                    .collect::<Result<_, _>>()
                    .map_err(unavailable)?;
                for k in keys {
                    rows.remove((p.as_str(), k)).map_err(unavailable)?;
                    removed += 1;
                }
                by_time.remove((*at, p.as_str(), *version)).map_err(unavailable)?;
            }
            removed += prune_consumed(txn, &consumed_cut, limit)?;
            removed += prune_draws(txn, &draws_cut, limit)?;
            Ok(removed)
        })
        .await
    }
}

/// Removes consumers' marks of events older than `cut` (a prefix of a
/// time-ordered event id): a broker redelivers within minutes, and the relay
/// republishes only what no consumer applied, so an old mark guards nothing.
fn prune_consumed(txn: &WriteTransaction, cut: &str, limit: usize) -> Result<u64, StoreError> {
    prune_before(&mut txn.open_table(CONSUMED).map_err(unavailable)?, cut, limit)
}

/// Removes each banner's public draws older than `cut` (rows are keyed by
/// their summon's time-ordered event id, or by a pull id that starts with it).
fn prune_draws(txn: &WriteTransaction, cut: &str, limit: usize) -> Result<u64, StoreError> {
    prune_before(&mut txn.open_table(DRAWS).map_err(unavailable)?, cut, limit)
}

/// In a table keyed by (group, time-ordered id), removes up to `limit` rows per
/// group whose id sorts before `cut`: each group's old rows start its range.
fn prune_before<V: redb::Value + 'static>(
    table: &mut redb::Table<(&'static str, &'static str), V>,
    cut: &str,
    limit: usize,
) -> Result<u64, StoreError> {
    let mut removed = 0u64;
    let mut group = String::new();
    loop {
        // The next group after the previous one.
        let next = table
            .range::<(&str, &str)>((group.as_str(), "\u{10ffff}")..)
            .map_err(unavailable)?
            .next()
            .transpose()
            .map_err(unavailable)?
            .map(|(k, _)| k.value().0.to_string());
        let Some(next) = next else { return Ok(removed) };
        group = next;
        let old: Vec<String> = table
            .range((group.as_str(), "")..(group.as_str(), cut))
            .map_err(unavailable)?
            .take(limit)
            .map(|r| r.map(|(k, _)| k.value().1.to_string()))
            .collect::<Result<_, _>>()
            .map_err(unavailable)?;
        for id in &old {
            table.remove((group.as_str(), id.as_str())).map_err(unavailable)?;
            removed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows written once (here a history row) are stored compressed and read
    /// back equal, and such a row an older version stored as plain JSON still reads.
    #[tokio::test]
    async fn kept_rows_are_stored_compressed_and_plain_json_ones_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let pulls: Vec<serde_json::Value> = (0..10)
            .map(|i| serde_json::json!({"hero_id": format!("hero_{i}"), "rarity": "SR", "new": i % 2 == 0, "shards": 10}))
            .collect();
        let row = HistoryRow {
            seq: super::super::seq(3, 0),
            player_id: "p1".into(),
            at: Utc::now(),
            data: serde_json::json!({"kind": "summon", "banner_id": "standard", "results": pulls}),
        };
        let json = serde_json::to_vec(&row).unwrap();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            store.restore(vec![Restore::History { row: row.clone() }]).await.unwrap();
            assert_eq!(store.history("p1", 10, None).await.unwrap().items, vec![row.clone()]);
        }
        {
            let db = Database::open(dir.path().join("divine-heroes.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(HISTORY).unwrap();
                let stored = t.get(("p1", row.seq)).unwrap().unwrap().value().to_vec();
                assert_eq!(stored[0], LZ4_TAG, "a row of {} bytes of JSON is stored compressed", json.len());
                assert!(stored.len() * 2 < json.len(), "{} bytes stored for {} of JSON", stored.len(), json.len());
                // As a version before compression wrote it.
                t.insert(("p1", row.seq), json.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.history("p1", 10, None).await.unwrap().items, vec![row]);
    }

    /// A player row is stored as MessagePack and reads back equal, and a row an
    /// older version stored as JSON still reads (and is rewritten by the next write).
    #[tokio::test]
    async fn players_are_stored_as_messagepack_and_json_rows_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = Player::new("p1".into(), "Player1", String::new(), Utc::now());
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            store.create_player(&p).await.unwrap();
            assert_eq!(store.player_by_id("p1").await.unwrap().as_ref(), Some(&p));
        }
        {
            let db = Database::open(dir.path().join("divine-heroes.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(PLAYERS).unwrap();
                let stored = t.get("p1").unwrap().unwrap().value().to_vec();
                assert!(is_messagepack_map(stored[0]), "a MessagePack map, not {:#x}", stored[0]);
                // As a version before MessagePack wrote it.
                t.insert("p1", serde_json::to_vec(&p).unwrap().as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.player_by_id("p1").await.unwrap(), Some(p));
    }

    /// A banner's record reads newest first, page after page, across a summon's
    /// row (its pulls together) and the one-pull rows older versions wrote.
    #[tokio::test]
    async fn draws_page_through_summon_rows_and_older_pull_rows() {
        use super::super::events::{ConsumeItem, Draw};
        let dir = tempfile::tempdir().unwrap();
        let draw = |event: &str, i: usize| Draw {
            id: format!("{event}{i:02}"),
            banner_id: "standard".into(),
            at: Utc::now(),
            category: "R".into(),
            item: format!("hero_{i}"),
            featured: None,
            pity_triggered: false,
            rates_version: Some(1),
        };
        let (old, new) = (super::super::time_ordered_id(), super::super::time_ordered_id());
        let old_pulls: Vec<Draw> = (0..3).map(|i| draw(&old, i)).collect();
        let new_pulls: Vec<Draw> = (0..10).map(|i| draw(&new, i)).collect();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            let item = ConsumeItem { event_id: new.clone(), counters: vec![], audit: None, draws: new_pulls.clone() };
            assert_eq!(store.consume_batch("c", &[item], &[]).await.unwrap(), [true]);
        }
        {
            // One row per pull, as a version before wrote them.
            let db = Database::open(dir.path().join("divine-heroes.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(DRAWS).unwrap();
                assert_eq!(t.len().unwrap(), 1, "a 10-pull is one row");
                for d in &old_pulls {
                    t.insert(("standard", d.id.as_str()), serde_json::to_vec(d).unwrap().as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut read = vec![];
        let mut before = None;
        loop {
            let page = store.draws("standard", before.clone(), 4).await.unwrap();
            read.extend(page.iter().cloned());
            if page.len() < 4 {
                break;
            }
            before = page.last().map(|d| d.id.clone());
        }
        let mut expected: Vec<Draw> = old_pulls.into_iter().chain(new_pulls).collect();
        expected.reverse();
        assert_eq!(read, expected);
        assert!(store.draws("other", None, 4).await.unwrap().is_empty());
    }

    /// A store written before the rank counts existed gets them at its next open.
    #[tokio::test]
    async fn rank_counts_are_built_for_an_older_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = vec![];
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            for (i, score) in [5u64, 900, 900, 70_000, 3].into_iter().enumerate() {
                let mut p = Player::new(format!("p{i}"), &format!("player{i}"), String::new(), Utc::now());
                p.scores.arena = score;
                store.create_player(&p).await.unwrap();
                ids.push(p.id);
            }
        }
        {
            // As an older version left it: no counts, no mark.
            let db = Database::open(dir.path().join("divine-heroes.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.delete_table(RANK_COUNTS).unwrap();
            txn.open_table(META).unwrap().remove("rank_counts").unwrap();
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut ranks = vec![];
        for id in &ids {
            ranks.push(store.rank(Board::Arena, id).await.unwrap().unwrap().rank);
        }
        assert_eq!(ranks, [4, 2, 2, 1, 5]);
    }
}
