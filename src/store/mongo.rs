//! The MongoDB store (official driver).
//!
//! Atomicity: a mutation is one multi-document transaction (player, ledger,
//! history, idempotency record). Inside it the player update is conditional on
//! the version read and on every debited balance still covering its debit, and
//! balances change by `$inc`, never by writing back a value read earlier. A
//! write conflict or a transient error retries the whole transaction. Writers
//! to one player inside one process queue on a striped lock first, so that a
//! burst on one player does not turn into a storm of conflicting transactions.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc, Document};
use mongodb::error::{ErrorKind, WriteFailure, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::event::cmap::CmapEvent;
use mongodb::event::EventHandler;
use mongodb::options::{
    ClientOptions, IndexOptions, ReadConcern, ReadPreference, ReadPreferenceOptions, SelectionCriteria,
    TransactionOptions, WriteConcern,
};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::game::chat::ChatMessage;

use super::{
    apply_mutation, starting_ledger, Board, BoardEntry, HistoryRow, IdempotencyRecord, IdempotencyRequest, LedgerEntry,
    MutateOutcome, Page, Player, PreparedWrite, Restore, Retention, SharedDoc, SharedDocs, SharedMutation, Store,
    StoreError, StoredResponse,
};

const MAX_ATTEMPTS: u32 = 60;
const LOCK_STRIPES: usize = 256;

#[derive(Serialize, Deserialize)]
struct IdemDoc {
    #[serde(rename = "_id")]
    id: String,
    fingerprint: String,
    status: u16,
    /// The body as JSON text: BSON cannot hold every JSON number (u64 above 2⁶³),
    /// and a replay must be byte-for-byte the first answer.
    body: String,
    /// When it was written: a TTL index removes it after `idempotency_ttl`.
    #[serde(default)]
    at: Option<bson::DateTime>,
}

impl IdemDoc {
    /// The kept response, taking the body's text rather than copying it.
    fn into_response(self) -> Result<StoredResponse, mongodb::error::Error> {
        let body = serde_json::value::RawValue::from_string(self.body)
            .map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
        Ok(StoredResponse { status: self.status, body })
    }
}

/// A MongoDB-backed store.
pub struct MongoStore {
    client: Client,
    db: Database,
    /// Where reads that may be slightly stale go (`MONGO_READ_PREFERENCE`):
    /// leaderboards, replays, the draw record, observed rates. `None`: the primary.
    stale_reads: Option<SelectionCriteria>,
    /// Connections of the driver's pool, counted from its events.
    pool: Arc<PoolCounters>,
    stripes: Vec<Mutex<()>>,
    retention: Retention,
    /// A write that has not finished by then fails with `Unavailable` (503).
    write_timeout: Duration,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(we)) => we.code == 11000,
        ErrorKind::InsertMany(im) => im.write_errors.as_ref().is_some_and(|w| w.iter().any(|x| x.code == 11000)),
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

fn is_retryable(e: &mongodb::error::Error) -> bool {
    e.contains_label(TRANSIENT_TRANSACTION_ERROR)
        || e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
        || matches!(&*e.kind, ErrorKind::Command(c) if c.code == 112 /* WriteConflict */ || c.code == 251 /* NoSuchTransaction */)
}

fn player_doc(p: &Player) -> Result<Document, StoreError> {
    let mut d = bson::to_document(p).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(id) = d.remove("id") {
        d.insert("_id", id);
    }
    Ok(d)
}

fn player_from(mut d: Document) -> Result<Player, StoreError> {
    if let Some(id) = d.remove("_id") {
        d.insert("id", id);
    }
    bson::from_document(d).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn chat_from(d: &Document) -> Result<ChatMessage, StoreError> {
    let text = d.get_str("message").map_err(|e| StoreError::Corrupt(e.to_string()))?;
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Shared documents live in one collection per kind (a guild in `guilds`, a
/// friend book in `friend_books`, ...), `_id` the whole key, sorted here by
/// the key prefix so that reading the collections in this order reads keys in
/// order. A key of another kind is a bug (both stores' tests cover every kind).
const SHARED_COLLECTIONS: [(&str, &str); 5] = [
    ("chatreport:", "chat_reports"),
    ("friends:", "friend_books"),
    ("guild:", "guilds"),
    ("guildname:", "guild_names"),
    ("member:", "guild_members"),
];

/// The collection of a shared document's key.
fn shared_collection(key: &str) -> Result<&'static str, StoreError> {
    SHARED_COLLECTIONS
        .iter()
        .find(|(prefix, _)| key.starts_with(prefix))
        .map(|(_, c)| *c)
        .ok_or_else(|| StoreError::Corrupt(format!("no collection for shared document {key:?}")))
}

/// Keys grouped by their collection.
fn by_collection(keys: &[String]) -> Result<std::collections::BTreeMap<&'static str, Vec<&String>>, StoreError> {
    let mut out: std::collections::BTreeMap<&'static str, Vec<&String>> = std::collections::BTreeMap::new();
    for k in keys {
        out.entry(shared_collection(k)?).or_default().push(k);
    }
    Ok(out)
}

/// A `shared` document's key and stored form (`doc` is JSON text, as events are).
fn shared_from(d: Document) -> Result<(String, SharedDoc), StoreError> {
    let key = d.get_str("_id").map_err(|e| StoreError::Corrupt(e.to_string()))?.to_string();
    let v = u64::try_from(d.get_i64("v").map_err(|e| StoreError::Corrupt(e.to_string()))?).unwrap_or(0);
    let text = d.get_str("doc").map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let doc = serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((key, SharedDoc { v, doc }))
}

fn row_doc<T: Serialize>(player_id: &str, seq: u64, v: &T) -> Result<Document, StoreError> {
    let mut d = bson::to_document(v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    d.insert("_id", format!("{player_id}:{seq:020}"));
    Ok(d)
}

/// The driver's pool size unless `maxPoolSize` is in `MONGO_URL`.
const DRIVER_MAX_POOL_SIZE: u32 = 10;

/// Connections of the driver's pool, across its servers.
#[derive(Debug, Default)]
struct PoolCounters {
    open: AtomicI64,
    in_use: AtomicI64,
    max: u64,
}

impl PoolCounters {
    fn observe(&self, e: &CmapEvent) {
        let (counter, by) = match e {
            CmapEvent::ConnectionCreated(_) => (&self.open, 1),
            CmapEvent::ConnectionClosed(_) => (&self.open, -1),
            CmapEvent::ConnectionCheckedOut(_) => (&self.in_use, 1),
            CmapEvent::ConnectionCheckedIn(_) => (&self.in_use, -1),
            _ => return,
        };
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// `MONGO_READ_PREFERENCE` as the driver takes it (`primary`: none needed).
pub fn read_preference(name: &str) -> Result<Option<SelectionCriteria>, StoreError> {
    let options = Some(ReadPreferenceOptions::default());
    let pref = match name {
        "primary" => return Ok(None),
        "primaryPreferred" => ReadPreference::PrimaryPreferred { options },
        "secondary" => ReadPreference::Secondary { options },
        "secondaryPreferred" => ReadPreference::SecondaryPreferred { options },
        "nearest" => ReadPreference::Nearest { options },
        other => {
            return Err(StoreError::Unavailable(format!(
                "MONGO_READ_PREFERENCE {other:?} is none of primary, primaryPreferred, secondary, \
                 secondaryPreferred, nearest"
            )))
        }
    };
    Ok(Some(SelectionCriteria::ReadPreference(pref)))
}

/// How one transaction attempt ended.
enum Attempt {
    Done(MutateOutcome),
    Retry,
}

impl MongoStore {
    /// Connects with the default retention and a 5 s write timeout.
    pub async fn connect(url: &str, db_name: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, db_name, Retention::default(), Duration::from_secs(5)).await
    }

    /// Connects, checks the server answers and creates the indexes. A write
    /// still unfinished after `write_timeout` fails as unavailable.
    pub async fn connect_with(
        url: &str,
        db_name: &str,
        retention: Retention,
        write_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let mut opts = ClientOptions::parse(url).await.map_err(|e| unavailable(format!("parsing MONGO_URL: {e}")))?;
        opts.app_name = Some("divine-heroes".into());
        let pool = Arc::new(PoolCounters {
            max: u64::from(opts.max_pool_size.unwrap_or(DRIVER_MAX_POOL_SIZE)),
            ..PoolCounters::default()
        });
        let counters = pool.clone();
        opts.cmap_event_handler = Some(EventHandler::callback(move |e| counters.observe(&e)));
        opts.server_selection_timeout = Some(opts.server_selection_timeout.unwrap_or(Duration::from_secs(5)));
        let client = Client::with_options(opts).map_err(unavailable)?;
        let db = client.database(db_name);
        let store = Self {
            client,
            db,
            stale_reads: None,
            pool,
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            retention,
            write_timeout,
        };
        store.ping().await?;
        store.create_indexes().await?;
        Ok(store)
    }

    /// Sends the reads that tolerate staleness per `preference` (a
    /// `MONGO_READ_PREFERENCE` value); player reads and every write stay on the primary.
    pub fn with_read_preference(mut self, preference: &str) -> Result<Self, StoreError> {
        self.stale_reads = read_preference(preference)?;
        Ok(self)
    }

    /// A collection whose reads go where `MONGO_READ_PREFERENCE` says.
    fn stale_ok<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        let options =
            mongodb::options::CollectionOptions::builder().selection_criteria(self.stale_reads.clone()).build();
        self.db.collection_with_options(name, options)
    }

    /// Runs one operation within the store's bound: a MongoDB that stops
    /// answering fails the request as unavailable instead of hanging it.
    async fn bounded<T>(&self, op: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let limit = self.write_timeout;
        tokio::time::timeout(limit, op)
            .await
            .unwrap_or_else(|_| Err(unavailable(format!("MongoDB did not answer within {limit:?}"))))
    }

    /// One write, its transaction retried on conflicts and transient errors.
    async fn mutate_within(
        &self,
        player_id: &str,
        idempotency: Option<IdempotencyRequest>,
        now: DateTime<Utc>,
        keys: &[String],
        op: SharedMutation,
    ) -> Result<MutateOutcome, StoreError> {
        let _turns = self.lock_stripes(player_id, keys).await;
        for attempt in 0..MAX_ATTEMPTS {
            let mut s = match self.start().await {
                Ok(s) => s,
                Err(e) => return Err(unavailable(e)),
            };
            let outcome = match self.try_mutate(&mut s, player_id, &idempotency, now, keys, &op).await {
                Ok(Attempt::Done(o @ MutateOutcome::Applied(..))) => match Self::commit(&mut s).await {
                    Ok(()) => return Ok(o),
                    Err(e) => Err(e),
                },
                Ok(Attempt::Done(o)) => {
                    let _ = s.abort_transaction().await;
                    return Ok(o);
                }
                Ok(Attempt::Retry) => {
                    let _ = s.abort_transaction().await;
                    Ok(())
                }
                Err(e) => {
                    let _ = s.abort_transaction().await;
                    Err(e)
                }
            };
            match outcome {
                Ok(()) => backoff(attempt).await,
                // A concurrent insert of the same idempotency key: the retry replays it.
                Err(e) if is_retryable(&e) || is_duplicate_key(&e) => backoff(attempt).await,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Contention)
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
        let unique = IndexOptions::builder().unique(true).build();
        self.players()
            .create_index(IndexModel::builder().keys(doc! {"username_lower": 1}).options(unique).build())
            .await
            .map_err(unavailable)?;
        for b in Board::ALL {
            let field = format!("scores.{}", b.name());
            self.players()
                .create_index(IndexModel::builder().keys(doc! {field: -1, "_id": 1}).build())
                .await
                .map_err(unavailable)?;
        }
        // Unpublished events in write order; published ones (`relayed`) stay until consumed.
        let outbox = self.db.collection::<Document>("outbox");
        outbox
            .create_index(IndexModel::builder().keys(doc! {"relayed": 1, "at": 1, "_id": 1}).build())
            .await
            .map_err(unavailable)?;
        let audit = self.db.collection::<Document>("audit");
        audit.create_index(IndexModel::builder().keys(doc! {"kind": 1}).build()).await.map_err(unavailable)?;
        for c in ["ledger", "history"] {
            self.db
                .collection::<Document>(c)
                .create_index(IndexModel::builder().keys(doc! {"player_id": 1, "seq": -1}).build())
                .await
                .map_err(unavailable)?;
        }
        self.ttl_index("idempotency", "at", self.retention.idempotency).await?;
        self.ttl_index("consumed", "at", self.retention.idempotency).await?;
        self.ttl_index("draws", "at", self.retention.history).await?;
        self.db
            .collection::<Document>("chat")
            .create_index(IndexModel::builder().keys(doc! {"channel": 1, "_id": -1}).build())
            .await
            .map_err(unavailable)?;
        let unique = IndexOptions::builder().unique(true).build();
        self.db
            .collection::<Document>("chat")
            .create_index(IndexModel::builder().keys(doc! {"key": 1}).options(unique).build())
            .await
            .map_err(unavailable)?;
        self.ttl_index("chat", "at", self.retention.chat).await?;
        self.ttl_index("history", "at_date", self.retention.history).await
    }

    /// A TTL index on `field`, replaced when its expiry changed with the settings.
    async fn ttl_index(&self, coll: &str, field: &str, after: Duration) -> Result<(), StoreError> {
        let name = format!("{field}_ttl");
        let model = || {
            let opts = IndexOptions::builder().name(name.clone()).expire_after(after).build();
            IndexModel::builder().keys(doc! {field: 1}).options(opts).build()
        };
        let c = self.db.collection::<Document>(coll);
        if c.create_index(model()).await.is_err() {
            // Same name, other expiry: an index's options cannot be changed in place here.
            c.drop_index(name.as_str()).await.map_err(unavailable)?;
            c.create_index(model()).await.map_err(unavailable)?;
        }
        Ok(())
    }

    /// Writes events to the outbox inside the caller's transaction.
    async fn put_outbox(
        &self,
        s: &mut ClientSession,
        events: &[super::events::Event],
    ) -> Result<(), mongodb::error::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let docs: Vec<Document> = events
            .iter()
            .map(|e| {
                let text = serde_json::to_string(e).unwrap_or_default();
                doc! {"_id": &e.id, "at": bson::DateTime::from_chrono(e.at), "event": text}
            })
            .collect();
        self.db.collection::<Document>("outbox").insert_many(docs).session(&mut *s).await?;
        Ok(())
    }

    async fn try_consume(
        &self,
        consumer: &str,
        items: &[super::events::ConsumeItem],
        delivered: &[String],
    ) -> Result<Vec<bool>, mongodb::error::Error> {
        use futures_util::TryStreamExt;
        let ids: Vec<String> = items.iter().map(|i| format!("{consumer}:{}", i.event_id)).collect();
        let mut s = self.start().await?;
        if !delivered.is_empty() {
            self.db
                .collection::<Document>("outbox")
                .delete_many(doc! {"_id": {"$in": delivered}, "relayed": true})
                .session(&mut s)
                .await?;
        }
        let consumed = self.db.collection::<Document>("consumed");
        let seen: std::collections::HashSet<String> = consumed
            .find(doc! {"_id": {"$in": &ids}})
            .session(&mut s)
            .await?
            .stream(&mut s)
            .try_collect::<Vec<Document>>()
            .await?
            .iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_string))
            .collect();
        let mut applied = Vec::with_capacity(items.len());
        let mut fresh = std::collections::HashSet::new();
        for (item, id) in items.iter().zip(&ids) {
            // Also skips a duplicate inside the batch itself.
            if seen.contains(id) || !fresh.insert(id.clone()) {
                applied.push(false);
                continue;
            }
            // `at`: a TTL index drops the mark after the idempotency retention.
            consumed.insert_one(doc! {"_id": id, "at": bson::DateTime::now()}).session(&mut s).await?;
            for (name, delta) in &item.counters {
                self.db
                    .collection::<Document>("counters")
                    .update_one(doc! {"_id": name}, doc! {"$inc": {"value": delta}})
                    .upsert(true)
                    .session(&mut s)
                    .await?;
            }
            if let Some(e) = &item.audit {
                let text = serde_json::to_string(e).unwrap_or_default();
                self.db
                    .collection::<Document>("audit")
                    .insert_one(doc! {"_id": &e.id, "kind": e.kind(), "event": text})
                    .session(&mut s)
                    .await?;
            }
            if !item.draws.is_empty() {
                // `_id` <banner>:<draw id> keeps a banner's record one ordered range;
                // `at` is for the TTL index (history retention).
                let docs = item.draws.iter().map(|d| {
                    doc! {
                        "_id": format!("{}:{}", d.banner_id, d.id),
                        "at": bson::DateTime::from_chrono(d.at),
                        "draw": serde_json::to_string(d).unwrap_or_default(),
                    }
                });
                self.db.collection::<Document>("draws").insert_many(docs).session(&mut s).await?;
            }
            applied.push(true);
        }
        Self::commit(&mut s).await?;
        Ok(applied)
    }

    /// Up to `limit` documents of `coll` matching `filter`, in `sort` order.
    async fn find_sorted<T>(
        &self,
        coll: &str,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + Unpin,
    {
        use futures_util::TryStreamExt;
        self.db
            .collection::<T>(coll)
            .find(filter)
            .sort(sort)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)
    }

    /// Outbox rows matching `filter` in `sort` order; keys are event ids.
    async fn outbox_rows(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<super::events::OutboxEntry>, StoreError> {
        let docs: Vec<Document> = self.find_sorted("outbox", filter, sort, limit).await?;
        docs.into_iter()
            .map(|d| {
                let key = d.get_str("_id").unwrap_or_default().to_string();
                let event = serde_json::from_str(d.get_str("event").unwrap_or_default())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(super::events::OutboxEntry { key, event })
            })
            .collect()
    }

    /// Players matching `filter`, best score on `board` first (rank left at 0).
    async fn board_rows(&self, board: Board, filter: Document, limit: usize) -> Result<Vec<BoardEntry>, StoreError> {
        use futures_util::TryStreamExt;
        let field = format!("scores.{}", board.name());
        let docs: Vec<Document> = self
            .stale_ok::<Document>("players")
            .find(filter)
            .sort(doc! {&field: -1, "_id": 1})
            .limit(limit as i64)
            .projection(doc! {"username": 1, "scores": 1})
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        Ok(docs
            .into_iter()
            .map(|d| BoardEntry {
                rank: 0,
                player_id: d.get_str("_id").unwrap_or_default().to_string(),
                username: d.get_str("username").unwrap_or_default().to_string(),
                score: d.get_document("scores").ok().and_then(|s| s.get_i64(board.name()).ok()).unwrap_or(0) as u64,
            })
            .collect())
    }

    fn players(&self) -> Collection<Document> {
        self.db.collection("players")
    }

    fn stripe_of(key: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() as usize) % LOCK_STRIPES
    }

    /// This process's turn on the player and on every shared document of a
    /// write. Stripes are taken in index order, so two writes never wait on each
    /// other in a circle; other processes are kept apart by the transaction.
    async fn lock_stripes(&self, player_id: &str, keys: &[String]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> =
            std::iter::once(player_id).chain(keys.iter().map(String::as_str)).map(Self::stripe_of).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut turns = Vec::with_capacity(stripes.len());
        for i in stripes {
            turns.push(self.stripes[i].lock().await);
        }
        turns
    }

    /// The shared documents under `keys`, read in the transaction.
    async fn load_shared(&self, s: &mut ClientSession, keys: &[String]) -> Result<SharedDocs, mongodb::error::Error> {
        use futures_util::TryStreamExt;
        let custom = |e: StoreError| mongodb::error::Error::custom(e.to_string());
        let mut by_key: std::collections::HashMap<String, SharedDoc> = std::collections::HashMap::new();
        for (coll, ids) in by_collection(keys).map_err(custom)? {
            let found: Vec<Document> = self
                .db
                .collection::<Document>(coll)
                .find(doc! {"_id": {"$in": ids}})
                .session(&mut *s)
                .await?
                .stream(&mut *s)
                .try_collect()
                .await?;
            for d in found {
                let (key, doc) = shared_from(d).map_err(custom)?;
                by_key.insert(key, doc);
            }
        }
        Ok(SharedDocs::loaded(keys.iter().map(|k| (k.clone(), by_key.remove(k)))))
    }

    /// Writes what the rule changed, each guarded by the version read: `false`
    /// when another writer got there first (the transaction is then retried).
    async fn put_shared(&self, s: &mut ClientSession, docs: &SharedDocs) -> Result<bool, mongodb::error::Error> {
        for c in docs.changes() {
            let coll = shared_collection(c.key).map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
            let coll = self.db.collection::<Document>(coll);
            let read = c.read.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
            match (read, c.doc) {
                (Some(v), Some(doc)) => {
                    let r = coll
                        .update_one(doc! {"_id": c.key, "v": v}, doc! {"$set": {"v": v + 1, "doc": doc.to_string()}})
                        .session(&mut *s)
                        .await?;
                    if r.matched_count == 0 {
                        return Ok(false);
                    }
                }
                // A duplicate key (inserted meanwhile) aborts the attempt and retries it.
                (None, Some(doc)) => {
                    coll.insert_one(doc! {"_id": c.key, "v": 1i64, "doc": doc.to_string()}).session(&mut *s).await?;
                }
                (Some(v), None) => {
                    let r = coll.delete_one(doc! {"_id": c.key, "v": v}).session(&mut *s).await?;
                    if r.deleted_count == 0 {
                        return Ok(false);
                    }
                }
                (None, None) => {}
            }
        }
        Ok(true)
    }

    async fn start(&self) -> Result<ClientSession, mongodb::error::Error> {
        let mut s = self.client.start_session().await?;
        let opts = TransactionOptions::builder()
            .read_concern(ReadConcern::snapshot())
            .write_concern(WriteConcern::majority())
            .build();
        s.start_transaction().with_options(opts).await?;
        Ok(s)
    }

    async fn commit(s: &mut ClientSession) -> Result<(), mongodb::error::Error> {
        loop {
            let r = s.commit_transaction().await;
            // An unknown commit result is safe to retry: the commit is idempotent.
            if !matches!(&r, Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)) {
                return r;
            }
        }
    }

    async fn try_mutate(
        &self,
        s: &mut ClientSession,
        player_id: &str,
        idem: &Option<IdempotencyRequest>,
        now: DateTime<Utc>,
        keys: &[String],
        op: &SharedMutation,
    ) -> Result<Attempt, mongodb::error::Error> {
        let idem_coll = self.db.collection::<IdemDoc>("idempotency");
        if let Some(i) = idem {
            let id = format!("{player_id}:{}", i.key);
            if let Some(rec) = idem_coll.find_one(doc! {"_id": &id}).session(&mut *s).await? {
                return Ok(Attempt::Done(if rec.fingerprint == i.fingerprint {
                    MutateOutcome::Replayed(rec.into_response()?)
                } else {
                    MutateOutcome::KeyReused
                }));
            }
        }
        let Some(d) = self.players().find_one(doc! {"_id": player_id}).session(&mut *s).await? else {
            return Ok(Attempt::Done(MutateOutcome::PlayerNotFound));
        };
        let player = player_from(d).map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
        let read_version = player.version;
        let stored = player.balances;
        let mut docs = self.load_shared(s, keys).await?;
        let PreparedWrite { player, effects, ledger, history, events } =
            match apply_mutation(player, |p| op(p, &mut docs), now) {
                Ok(x) => x,
                Err(e) => return Ok(Attempt::Done(MutateOutcome::Rejected(e))),
            };
        let mut filter = doc! {"_id": player_id, "version": read_version as i64};
        let mut inc = doc! {"version": 1i64};
        for (c, delta) in player.balances.deltas_since(&stored) {
            let path = format!("balances.{}", c.name());
            if delta < 0 {
                filter.insert(path.clone(), doc! {"$gte": -delta});
            }
            inc.insert(path, delta);
        }
        let mut set = player_doc(&player).map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
        for k in ["_id", "version", "balances"] {
            set.remove(k);
        }
        let r = self.players().update_one(filter, doc! {"$set": set, "$inc": inc}).session(&mut *s).await?;
        if r.matched_count == 0 || !self.put_shared(s, &docs).await? {
            return Ok(Attempt::Retry);
        }
        if !ledger.is_empty() {
            let docs: Vec<Document> = ledger
                .iter()
                .map(|e| row_doc(player_id, e.seq, e))
                .collect::<Result<_, _>>()
                .map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
            self.db.collection::<Document>("ledger").insert_many(docs).session(&mut *s).await?;
        }
        if !history.is_empty() {
            let docs: Vec<Document> = history
                .iter()
                .map(|e| {
                    // A BSON date beside the stored time, for the TTL index.
                    row_doc(player_id, e.seq, e).map(|mut d| {
                        d.insert("at_date", bson::DateTime::from_chrono(now));
                        d
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
            self.db.collection::<Document>("history").insert_many(docs).session(&mut *s).await?;
        }
        self.put_outbox(s, &events).await?;
        if !effects.battles.is_empty() {
            let docs: Vec<Document> =
                effects.battles.iter().map(|(id, record)| doc! {"_id": id, "record": record.to_string()}).collect();
            self.db.collection::<Document>("battles").insert_many(docs).session(&mut *s).await?;
        }
        if let Some(i) = idem {
            let rec = IdemDoc {
                id: format!("{player_id}:{}", i.key),
                fingerprint: i.fingerprint.clone(),
                status: effects.response.status,
                body: effects.response.body.get().to_string(),
                at: Some(bson::DateTime::from_chrono(now)),
            };
            idem_coll.insert_one(rec).session(&mut *s).await?;
        }
        Ok(Attempt::Done(MutateOutcome::Applied(effects.response, Box::new(player))))
    }

    async fn page<T: serde::de::DeserializeOwned + Send + Sync>(
        &self,
        coll: &str,
        player_id: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Page<T>, StoreError> {
        use futures_util::TryStreamExt;
        let mut filter = doc! {"player_id": player_id};
        if let Some(b) = before {
            filter.insert("seq", doc! {"$lt": b as i64});
        }
        let docs: Vec<Document> = self
            .db
            .collection::<Document>(coll)
            .find(filter)
            .sort(doc! {"seq": -1})
            .limit(limit as i64 + 1)
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        let more = docs.len() > limit;
        let mut items = Vec::with_capacity(limit);
        let mut last = None;
        for mut d in docs.into_iter().take(limit) {
            d.remove("_id");
            last = d.get_i64("seq").ok().map(|s| s as u64);
            items.push(bson::from_document(d).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok(Page { items, next_before: if more { last } else { None } })
    }
}

#[async_trait]
impl Store for MongoStore {
    fn kind(&self) -> &'static str {
        "mongodb"
    }

    fn pool(&self) -> Option<super::PoolStats> {
        let read = |c: &AtomicI64| u64::try_from(c.load(Ordering::Relaxed)).unwrap_or(0);
        Some(super::PoolStats { in_use: read(&self.pool.in_use), open: read(&self.pool.open), max: self.pool.max })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async move { self.db.run_command(doc! {"ping": 1}).await.map(|_| ()).map_err(unavailable) }).await
    }

    async fn create_player(&self, player: &Player) -> Result<(), StoreError> {
        self.bounded(async move {
            let pdoc = player_doc(player)?;
            let ledger: Vec<Document> =
                starting_ledger(player).iter().map(|e| row_doc(&player.id, e.seq, e)).collect::<Result<_, _>>()?;
            for attempt in 0..MAX_ATTEMPTS {
                let result: Result<(), mongodb::error::Error> = async {
                    let mut s = self.start().await?;
                    self.players().insert_one(pdoc.clone()).session(&mut s).await?;
                    self.put_outbox(&mut s, &super::events::registered(player)).await?;
                    self.db.collection::<Document>("ledger").insert_many(ledger.clone()).session(&mut s).await?;
                    Self::commit(&mut s).await
                }
                .await;
                match result {
                    Ok(()) => return Ok(()),
                    Err(e) if is_duplicate_key(&e) => return Err(StoreError::UsernameTaken),
                    Err(e) if is_retryable(&e) => backoff(attempt).await,
                    Err(e) => return Err(unavailable(e)),
                }
            }
            Err(StoreError::Contention)
        })
        .await
    }

    async fn import_players(&self, players: &[Player]) -> Result<usize, StoreError> {
        use futures_util::TryStreamExt;
        self.bounded(async move {
            // Usernames already taken are skipped, as on the embedded store.
            let names: Vec<&str> = players.iter().map(|p| p.username_lower.as_str()).collect();
            let taken: std::collections::HashSet<String> = self
                .players()
                .find(doc! {"username_lower": {"$in": &names}})
                .projection(doc! {"username_lower": 1})
                .await
                .map_err(unavailable)?
                .try_collect::<Vec<Document>>()
                .await
                .map_err(unavailable)?
                .iter()
                .filter_map(|d| d.get_str("username_lower").ok().map(str::to_string))
                .collect();
            let fresh: Vec<&Player> = players.iter().filter(|p| !taken.contains(&p.username_lower)).collect();
            if fresh.is_empty() {
                return Ok(0);
            }
            let docs: Vec<Document> = fresh.iter().map(|p| player_doc(p)).collect::<Result<_, _>>()?;
            let mut ledger = Vec::new();
            for p in &fresh {
                for e in starting_ledger(p) {
                    ledger.push(row_doc(&p.id, e.seq, &e)?);
                }
            }
            let mut s = self.start().await.map_err(unavailable)?;
            self.players().insert_many(docs).session(&mut s).await.map_err(unavailable)?;
            self.db.collection::<Document>("ledger").insert_many(ledger).session(&mut s).await.map_err(unavailable)?;
            Self::commit(&mut s).await.map_err(unavailable)?;
            Ok(fresh.len())
        })
        .await
    }

    async fn player_by_id(&self, id: &str) -> Result<Option<Player>, StoreError> {
        self.bounded(async move {
            self.players().find_one(doc! {"_id": id}).await.map_err(unavailable)?.map(player_from).transpose()
        })
        .await
    }

    async fn players_by_username_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Player>, StoreError> {
        self.bounded(async move {
            // An anchored prefix: a range of the unique username index.
            let filter = doc! {"username_lower": {"$regex": format!("^{}", regex_escape(prefix))}};
            let docs: Vec<Document> = self.find_sorted("players", filter, doc! {"username_lower": 1}, limit).await?;
            docs.into_iter().map(player_from).collect()
        })
        .await
    }

    async fn player_by_username(&self, username_lower: &str) -> Result<Option<Player>, StoreError> {
        self.bounded(async move {
            self.players()
                .find_one(doc! {"username_lower": username_lower})
                .await
                .map_err(unavailable)?
                .map(player_from)
                .transpose()
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
        // Bounded: through an outage a write fails after `write_timeout` instead of
        // hanging. The transaction holds the change and its idempotency record
        // together, so a write cut off here is applied with its record or not at
        // all, and a retry with the same key applies it once.
        self.bounded(self.mutate_within(player_id, idempotency, now, &keys, op)).await
    }

    async fn ledger(
        &self,
        player_id: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        self.bounded(async move { self.page("ledger", player_id, limit, before).await }).await
    }

    async fn history(
        &self,
        player_id: &str,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Page<HistoryRow>, StoreError> {
        self.bounded(async move { self.page("history", player_id, limit, before).await }).await
    }

    async fn leaderboard(&self, board: Board, limit: usize) -> Result<Vec<BoardEntry>, StoreError> {
        self.bounded(async move {
            let mut rows = self.board_rows(board, doc! {}, limit).await?;
            super::rank_from_top(&mut rows);
            Ok(rows)
        })
        .await
    }

    async fn rank(&self, board: Board, player_id: &str) -> Result<Option<BoardEntry>, StoreError> {
        self.bounded(async move {
            let Some(p) = self.player_by_id(player_id).await? else { return Ok(None) };
            let field = format!("scores.{}", board.name());
            let score = board.score(&p) as i64;
            let ahead = self.players().count_documents(doc! {&field: {"$gt": score}}).await.map_err(unavailable)?;
            Ok(Some(BoardEntry {
                rank: ahead + 1,
                player_id: p.id.clone(),
                username: p.username.clone(),
                score: score as u64,
            }))
        })
        .await
    }

    async fn player_ids(&self, after: Option<String>, limit: usize) -> Result<Vec<String>, StoreError> {
        self.bounded(async move {
            use futures_util::TryStreamExt;
            let filter = match after {
                Some(a) => doc! {"_id": {"$gt": a}},
                None => doc! {},
            };
            let docs: Vec<Document> = self
                .players()
                .find(filter)
                .sort(doc! {"_id": 1})
                .limit(limit as i64)
                .projection(doc! {"_id": 1})
                .await
                .map_err(unavailable)?
                .try_collect()
                .await
                .map_err(unavailable)?;
            Ok(docs.iter().filter_map(|d| d.get_str("_id").ok().map(str::to_string)).collect())
        })
        .await
    }

    async fn draws(
        &self,
        banner_id: &str,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<super::events::Draw>, StoreError> {
        let upper = match before {
            Some(b) => format!("{banner_id}:{b}"),
            None => format!("{banner_id};"),
        };
        let filter = doc! {"_id": {"$gte": format!("{banner_id}:"), "$lt": upper}};
        self.bounded(async move {
            use futures_util::TryStreamExt;
            let docs: Vec<Document> = self
                .stale_ok::<Document>("draws")
                .find(filter)
                .sort(doc! {"_id": -1})
                .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                .await
                .map_err(unavailable)?
                .try_collect()
                .await
                .map_err(unavailable)?;
            docs.iter()
                .map(|d| {
                    let text = d.get_str("draw").map_err(unavailable)?;
                    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("draw {d}: {e}")))
                })
                .collect()
        })
        .await
    }

    async fn idempotency_records(
        &self,
        player_id: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<IdempotencyRecord>, StoreError> {
        // Record ids are `<player>:<key>`: the player's records are one `_id` range
        // (';' is the character after ':').
        let prefix = format!("{player_id}:");
        let mut range = doc! {"$lt": format!("{player_id};")};
        if let Some(a) = after {
            range.insert("$gt", format!("{prefix}{a}"));
        } else {
            range.insert("$gte", prefix.clone());
        }
        let filter = doc! {"_id": range};
        self.bounded(async move {
            let docs: Vec<IdemDoc> = self.find_sorted("idempotency", filter, doc! {"_id": 1}, limit).await?;
            docs.into_iter()
                .map(|mut d| {
                    Ok(IdempotencyRecord {
                        key: d.id.split_off(prefix.len()),
                        fingerprint: std::mem::take(&mut d.fingerprint),
                        response: d.into_response().map_err(unavailable)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn battles_after(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let filter = after.map_or_else(Document::new, |a| doc! {"_id": {"$gt": a}});
        self.bounded(async move {
            let docs: Vec<Document> = self.find_sorted("battles", filter, doc! {"_id": 1}, limit).await?;
            docs.iter()
                .map(|d| {
                    let id = d.get_str("_id").map_err(unavailable)?.to_string();
                    let record = serde_json::from_str(d.get_str("record").map_err(unavailable)?)
                        .map_err(|e| StoreError::Corrupt(format!("battle {id}: {e}")))?;
                    Ok((id, record))
                })
                .collect()
        })
        .await
    }

    async fn create_code(&self, code: &crate::game::codes::RedeemCode) -> Result<bool, StoreError> {
        self.bounded(async move {
            match self.db.collection::<Document>("codes").insert_one(code_doc(code)?).await {
                Ok(_) => Ok(true),
                Err(e) if is_duplicate_key(&e) => Ok(false),
                Err(e) => Err(unavailable(e)),
            }
        })
        .await
    }

    async fn codes(&self) -> Result<Vec<crate::game::codes::RedeemCode>, StoreError> {
        self.bounded(async move {
            let docs: Vec<Document> = self.find_sorted("codes", doc! {}, doc! {"_id": 1}, usize::MAX).await?;
            docs.iter().map(code_of).collect()
        })
        .await
    }

    async fn disable_code(&self, code: &str) -> Result<bool, StoreError> {
        self.bounded(async move {
            let r = self
                .db
                .collection::<Document>("codes")
                .update_one(doc! {"_id": code}, doc! {"$set": {"enabled": false}})
                .await
                .map_err(unavailable)?;
            Ok(r.matched_count == 1)
        })
        .await
    }

    async fn reserve_code_use(
        &self,
        code: &str,
        player_id: &str,
        now: DateTime<Utc>,
    ) -> Result<crate::game::codes::CodeUse, StoreError> {
        use crate::game::codes::{CodeRefusal, CodeUse};
        self.bounded(async move {
            let codes = self.db.collection::<Document>("codes");
            let holders = self.db.collection::<Document>("code_uses");
            let holder_id = format!("{code}:{player_id}");
            let current = || async {
                codes.find_one(doc! {"_id": code}).await.map_err(unavailable)?.as_ref().map(code_of).transpose()
            };
            if holders.find_one(doc! {"_id": &holder_id}).await.map_err(unavailable)?.is_some() {
                return Ok(current().await?.map_or(CodeUse::Refused(CodeRefusal::Unknown), CodeUse::Reserved));
            }
            // One conditional update of the code's document takes the use: MongoDB
            // applies single-document updates atomically, so concurrent takers on
            // every pod see each other's counts and none passes the last use.
            let taken = codes
                .find_one_and_update(
                    doc! {"_id": code, "enabled": true, "remaining": {"$gt": 0}, "expires": {"$gt": bson::DateTime::from_chrono(now)}},
                    doc! {"$inc": {"remaining": -1}},
                )
                .return_document(mongodb::options::ReturnDocument::After)
                .await
                .map_err(unavailable)?;
            let Some(taken) = taken else {
                let Some(c) = current().await? else { return Ok(CodeUse::Refused(CodeRefusal::Unknown)) };
                return Ok(CodeUse::Refused(c.refusal(now).unwrap_or(CodeRefusal::UsedUp)));
            };
            // The holder is written after the use is taken: a crash between the
            // two wastes a use but never grants one past the count.
            match holders.insert_one(doc! {"_id": &holder_id, "at": bson::DateTime::from_chrono(now)}).await {
                Ok(_) => Ok(CodeUse::Reserved(code_of(&taken)?)),
                Err(e) if is_duplicate_key(&e) => {
                    // The same player's concurrent try holds a use already: give this one back.
                    codes.update_one(doc! {"_id": code}, doc! {"$inc": {"remaining": 1}}).await.map_err(unavailable)?;
                    Ok(current().await?.map_or(CodeUse::Refused(CodeRefusal::Unknown), CodeUse::Reserved))
                }
                Err(e) => Err(unavailable(e)),
            }
        })
        .await
    }

    async fn chat_post(&self, message: &ChatMessage, key: &str) -> Result<(ChatMessage, bool), StoreError> {
        self.bounded(async move {
            let text = serde_json::to_string(message).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let key = format!("{}:{key}", message.player_id);
            let d = doc! {
                "_id": &message.id,
                "channel": &message.channel,
                // Unique: one message per sender and Idempotency-Key, in one insert.
                "key": &key,
                // For the TTL index (chat retention).
                "at": bson::DateTime::from_chrono(message.at),
                "message": text,
            };
            let chat = self.db.collection::<Document>("chat");
            match chat.insert_one(d).await {
                Ok(_) => Ok((message.clone(), true)),
                Err(e) if is_duplicate_key(&e) => {
                    let first = chat.find_one(doc! {"key": &key}).await.map_err(unavailable)?;
                    let first = first.ok_or_else(|| unavailable("a repeated chat message vanished"))?;
                    Ok((chat_from(&first)?, false))
                }
                Err(e) => Err(unavailable(e)),
            }
        })
        .await
    }

    async fn chat_history(
        &self,
        channel: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        self.bounded(async move {
            let mut filter = doc! {"channel": channel};
            if let Some(b) = before {
                filter.insert("_id", doc! {"$lt": b});
            }
            let docs: Vec<Document> = self.find_sorted("chat", filter, doc! {"_id": -1}, limit).await?;
            docs.iter().map(chat_from).collect()
        })
        .await
    }

    async fn chat_message(&self, id: &str) -> Result<Option<ChatMessage>, StoreError> {
        self.bounded(async move {
            let d = self.db.collection::<Document>("chat").find_one(doc! {"_id": id}).await.map_err(unavailable)?;
            d.as_ref().map(chat_from).transpose()
        })
        .await
    }

    async fn prune_chat(&self, _before: DateTime<Utc>, _limit: usize) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn shared_docs(&self, keys: &[String]) -> Result<Vec<Option<SharedDoc>>, StoreError> {
        self.bounded(async move {
            let mut by_key: std::collections::HashMap<String, SharedDoc> = std::collections::HashMap::new();
            for (coll, ids) in by_collection(keys)? {
                let found: Vec<Document> =
                    self.find_sorted(coll, doc! {"_id": {"$in": &ids}}, doc! {"_id": 1}, ids.len()).await?;
                for d in found {
                    let (k, doc) = shared_from(d)?;
                    by_key.insert(k, doc);
                }
            }
            Ok(keys.iter().map(|k| by_key.remove(k)).collect())
        })
        .await
    }

    async fn shared_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, SharedDoc)>, StoreError> {
        self.bounded(async move {
            let mut out = Vec::new();
            // The collections whose keys can start with `prefix`, in key order.
            let kinds = SHARED_COLLECTIONS.iter().filter(|(p, _)| p.starts_with(prefix) || prefix.starts_with(p));
            for (_, coll) in kinds {
                if out.len() >= limit {
                    break;
                }
                // An anchored prefix: a range of the `_id` index.
                let mut range = doc! {"$regex": format!("^{}", regex_escape(prefix))};
                if let Some(a) = after {
                    range.insert("$gt", a);
                }
                let found: Vec<Document> =
                    self.find_sorted(coll, doc! {"_id": range}, doc! {"_id": 1}, limit - out.len()).await?;
                for d in found {
                    out.push(shared_from(d)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn code_holders(&self, code: &str) -> Result<Vec<String>, StoreError> {
        self.bounded(async move {
            let prefix = format!("{code}:");
            let filter = doc! {"_id": {"$regex": format!("^{}", regex_escape(&prefix))}};
            let docs: Vec<Document> = self.find_sorted("code_uses", filter, doc! {"_id": 1}, usize::MAX).await?;
            Ok(docs
                .iter()
                .filter_map(|d| d.get_str("_id").ok().and_then(|id| id.strip_prefix(&prefix)).map(str::to_string))
                .collect())
        })
        .await
    }

    async fn restore(&self, rows: Vec<Restore>) -> Result<(), StoreError> {
        // One upsert per row, each replacing what is there: a restore can be run again.
        let now = bson::DateTime::now();
        for row in &rows {
            let (coll, id, document) = match row {
                Restore::Player { player } => ("players", player.id.clone(), player_doc(player)?),
                Restore::Ledger { entry } => {
                    let d = row_doc(&entry.player_id, entry.seq, entry)?;
                    ("ledger", d.get_str("_id").map_err(unavailable)?.to_string(), d)
                }
                Restore::History { row } => {
                    let mut d = row_doc(&row.player_id, row.seq, row)?;
                    d.insert("at_date", bson::DateTime::from_chrono(row.at));
                    ("history", d.get_str("_id").map_err(unavailable)?.to_string(), d)
                }
                Restore::Idempotency { player_id, record } => {
                    let rec = IdemDoc {
                        id: format!("{player_id}:{}", record.key),
                        fingerprint: record.fingerprint.clone(),
                        status: record.response.status,
                        body: record.response.body.get().to_string(),
                        // Restored records expire a retention after the restore.
                        at: Some(now),
                    };
                    let d = bson::to_document(&rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    ("idempotency", rec.id, d)
                }
                Restore::Battle { id, record } => {
                    ("battles", id.clone(), doc! {"_id": id, "record": record.to_string()})
                }
                Restore::Code { code } => ("codes", code.code.clone(), code_doc(code)?),
                Restore::CodeHolder { code, player_id } => {
                    let id = format!("{code}:{player_id}");
                    ("code_uses", id.clone(), doc! {"_id": id, "at": now})
                }
                Restore::Shared { key, doc } => {
                    let v = i64::try_from(doc.v).unwrap_or(i64::MAX);
                    (shared_collection(key)?, key.clone(), doc! {"_id": key, "v": v, "doc": doc.doc.to_string()})
                }
            };
            self.db
                .collection::<Document>(coll)
                .replace_one(doc! {"_id": id}, document)
                .upsert(true)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn battle(&self, battle_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.bounded(async move {
            let d =
                self.stale_ok::<Document>("battles").find_one(doc! {"_id": battle_id}).await.map_err(unavailable)?;
            match d.as_ref().and_then(|d| d.get_str("record").ok()) {
                Some(text) => serde_json::from_str(text).map(Some).map_err(|e| StoreError::Corrupt(e.to_string())),
                None => Ok(None),
            }
        })
        .await
    }

    async fn board_range(&self, board: Board, min: u64, max: u64, limit: usize) -> Result<Vec<BoardEntry>, StoreError> {
        self.bounded(async move {
            let field = format!("scores.{}", board.name());
            self.board_rows(board, doc! {field: {"$gte": min as i64, "$lte": max as i64}}, limit).await
        })
        .await
    }

    async fn outbox_batch(&self, limit: usize) -> Result<Vec<super::events::OutboxEntry>, StoreError> {
        self.bounded(
            async move { self.outbox_rows(doc! {"relayed": {"$ne": true}}, doc! {"at": 1, "_id": 1}, limit).await },
        )
        .await
    }

    async fn outbox_claim(
        &self,
        owner: &str,
        limit: usize,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<super::events::OutboxEntry>, StoreError> {
        self.bounded(async move {
            let free = doc! {
                "relayed": {"$ne": true},
                "$or": [{"lease_until": {"$exists": false}}, {"lease_until": {"$lt": bson::DateTime::from_chrono(now)}}],
            };
            let candidates = self.outbox_rows(free.clone(), doc! {"at": 1, "_id": 1}, limit).await?;
            if candidates.is_empty() {
                return Ok(candidates);
            }
            // Each document's update re-checks the filter atomically: an event
            // another relay claimed since the read no longer matches and stays its.
            let lease = format!("{owner}:{}", uuid::Uuid::new_v4().simple());
            let mut filter = free;
            filter.insert("_id", doc! {"$in": candidates.iter().map(|c| c.key.as_str()).collect::<Vec<_>>()});
            self.db
                .collection::<Document>("outbox")
                .update_many(
                    filter,
                    doc! {"$set": {"lease": &lease, "lease_until": bson::DateTime::from_chrono(until)}},
                )
                .await
                .map_err(unavailable)?;
            self.outbox_rows(doc! {"lease": &lease, "relayed": {"$ne": true}}, doc! {"at": 1, "_id": 1}, limit).await
        })
        .await
    }

    async fn outbox_relayed(&self, entries: &[super::events::OutboxEntry]) -> Result<(), StoreError> {
        self.bounded(async move {
            let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
            self.db
                .collection::<Document>("outbox")
                .update_many(doc! {"_id": {"$in": keys}}, doc! {"$set": {"relayed": true}})
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        self.bounded(async move {
            self.db
                .collection::<Document>("outbox")
                .count_documents(doc! {"relayed": {"$ne": true}})
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn unconsumed(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<super::events::OutboxEntry>, StoreError> {
        self.bounded(async move {
            let mut filter = doc! {"relayed": true};
            if let Some(a) = after {
                filter.insert("_id", doc! {"$gt": a});
            }
            self.outbox_rows(filter, doc! {"_id": 1}, limit).await
        })
        .await
    }

    async fn unconsumed_len(&self) -> Result<u64, StoreError> {
        self.bounded(async move {
            self.db.collection::<Document>("outbox").count_documents(doc! {"relayed": true}).await.map_err(unavailable)
        })
        .await
    }

    async fn consume_batch(
        &self,
        consumer: &str,
        items: &[super::events::ConsumeItem],
        delivered: &[String],
    ) -> Result<Vec<bool>, StoreError> {
        self.bounded(async move {
            if items.is_empty() && delivered.is_empty() {
                return Ok(Vec::new());
            }
            for attempt in 0..MAX_ATTEMPTS {
                match self.try_consume(consumer, items, delivered).await {
                    Ok(applied) => return Ok(applied),
                    // A concurrent consumer recorded one of these ids first: re-check and retry.
                    Err(e) if is_retryable(&e) || is_duplicate_key(&e) => backoff(attempt).await,
                    Err(e) => return Err(unavailable(e)),
                }
            }
            Err(StoreError::Contention)
        })
        .await
    }

    async fn counters(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.bounded(async move {
            use futures_util::TryStreamExt;
            let pattern = format!("^{}", regex_escape(prefix));
            let docs: Vec<Document> = self
                .stale_ok::<Document>("counters")
                .find(doc! {"_id": {"$regex": pattern}})
                .sort(doc! {"_id": 1})
                .await
                .map_err(unavailable)?
                .try_collect()
                .await
                .map_err(unavailable)?;
            Ok(docs
                .iter()
                .map(|d| {
                    (
                        d.get_str("_id").unwrap_or_default().to_string(),
                        d.get_i64("value").or_else(|_| d.get_i32("value").map(i64::from)).unwrap_or(0),
                    )
                })
                .collect())
        })
        .await
    }

    async fn prune(&self, _: DateTime<Utc>, _: DateTime<Utc>, _: usize) -> Result<u64, StoreError> {
        // TTL indexes on `idempotency.at` and `history.at_date` expire them.
        Ok(0)
    }

    async fn audit_count(&self, kind: &str) -> Result<u64, StoreError> {
        self.bounded(async move {
            self.db.collection::<Document>("audit").count_documents(doc! {"kind": kind}).await.map_err(unavailable)
        })
        .await
    }
}

/// The expiry of a code that never expires: a date every driver and server can
/// hold (not chrono's far maximum).
fn never() -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(9999, 12, 31).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or_default().and_utc()
}

/// A redeem code's document: the record, and beside it the fields the
/// conditional update of a redemption filters on (uses left, flag, expiry).
fn code_doc(code: &crate::game::codes::RedeemCode) -> Result<Document, StoreError> {
    let record = serde_json::to_string(code).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(doc! {
        "_id": &code.code,
        "remaining": i64::try_from(code.max_uses.saturating_sub(code.uses)).unwrap_or(i64::MAX),
        "enabled": code.enabled,
        "expires": bson::DateTime::from_chrono(code.expires_at.unwrap_or_else(never)),
        "record": record,
    })
}

/// A redeem code from its document: the record, with the live count and flag.
fn code_of(d: &Document) -> Result<crate::game::codes::RedeemCode, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("redeem code: {e}"));
    let mut c: crate::game::codes::RedeemCode =
        serde_json::from_str(d.get_str("record").map_err(|e| corrupt(e.to_string()))?)
            .map_err(|e| corrupt(e.to_string()))?;
    let remaining = d.get_i64("remaining").or_else(|_| d.get_i32("remaining").map(i64::from)).unwrap_or(0);
    c.uses = c.max_uses.saturating_sub(u64::try_from(remaining).unwrap_or(0));
    c.enabled = d.get_bool("enabled").unwrap_or(false);
    Ok(c)
}

/// Escapes a string for use inside a regular expression.
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { vec![c] } else { vec!['\\', c] })
        .collect()
}

/// Short randomized backoff between retries, growing with the attempt.
async fn backoff(attempt: u32) {
    use rand::Rng;
    let cap = 2u64.saturating_pow(attempt.min(6)).min(50);
    let ms = rand::rngs::OsRng.gen_range(0..=cap);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of shared document the game writes has its collection, and
    /// the table is in key order (what `shared_scan` relies on).
    #[test]
    fn every_shared_kind_has_its_collection_in_key_order() {
        use crate::game::guilds::keys;
        let kinds = [
            (crate::game::friends::book_key("p"), "friend_books"),
            (keys::guild("g"), "guilds"),
            (keys::name("dawn"), "guild_names"),
            (keys::member("p"), "guild_members"),
            (crate::game::chat::report_key("m", "p"), "chat_reports"),
        ];
        for (key, coll) in kinds {
            assert_eq!(shared_collection(&key).unwrap(), coll, "{key}");
        }
        assert!(shared_collection("other:x").is_err());
        assert!(SHARED_COLLECTIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
