//! The one write path to a player, for player requests and operator commands
//! alike: the rule runs inside the store's atomic mutation, leaderboard scores
//! are recomputed in the same write, the store call is timed, and the cached
//! copy is replaced before the caller sees the result. The rule's typed view is
//! kept with the idempotency key and handed back typed on a replay too.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::game::data::GameData;
use crate::game::error::GameError;
use crate::game::player::Player;
use crate::platform::cache::Cache;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::metrics::STORE_SECONDS;
use crate::store::events::DomainEvent;
use crate::store::{
    DynStore, Effects, IdempotencyRequest, LedgerReason, MutateOutcome, SharedDocs, SharedMutation, StoreError,
    StoredResponse,
};

/// What a rule produced: the typed view for the caller and what the store writes with it.
#[derive(Debug, Clone)]
pub struct Applied<T> {
    /// The response, also kept with the idempotency key.
    pub view: T,
    /// Ledger reason of every currency change.
    pub reason: LedgerReason,
    /// What caused it (summon id, battle id, ...).
    pub ref_id: String,
    /// History rows to append.
    pub history: Vec<serde_json::Value>,
    /// Battles to keep for replays: (battle id, record).
    pub battles: Vec<(String, serde_json::Value)>,
    /// The domain event of the action.
    pub event: Option<DomainEvent>,
}

impl<T> Applied<T> {
    /// A change with no history, battle or domain event of its own.
    pub fn new(reason: LedgerReason, ref_id: impl Into<String>, view: T) -> Self {
        Self { view, reason, ref_id: ref_id.into(), history: vec![], battles: vec![], event: None }
    }

    /// With the action's domain event.
    #[must_use]
    pub fn with_event(mut self, event: DomainEvent) -> Self {
        self.event = Some(event);
        self
    }

    /// With history rows.
    #[must_use]
    pub fn with_history(mut self, rows: Vec<serde_json::Value>) -> Self {
        self.history = rows;
        self
    }

    /// With a battle kept for replays.
    #[must_use]
    pub fn with_battle(mut self, battle_id: String, record: serde_json::Value) -> Self {
        self.battles.push((battle_id, record));
        self
    }
}

/// A finished write: the view, and whether it was applied now (false: replayed).
#[derive(Debug)]
pub struct Written<T> {
    /// The view of the first (or only) application.
    pub view: T,
    /// Applied by this call; false when replayed from the idempotency record.
    pub fresh: bool,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The rule refused; nothing was written.
    #[error(transparent)]
    Rejected(#[from] GameError),
    /// The idempotency key was used before for another request.
    #[error("this Idempotency-Key was already used for a different request")]
    KeyReused,
    /// No such player.
    #[error("no such player")]
    PlayerNotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A kept response could not be read back as its view.
    #[error("decoding the kept response: {0}")]
    Corrupt(String),
}

impl From<WriteError> for AppError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Rejected(g) => g.into(),
            WriteError::KeyReused => AppError::new(ErrorCode::IdempotencyKeyReused, e.to_string()),
            // A valid token for a player that no longer exists is an invalid token.
            WriteError::PlayerNotFound => AppError::new(ErrorCode::InvalidToken, "the token's player does not exist"),
            WriteError::Store(s) => s.into(),
            WriteError::Corrupt(_) => AppError::internal(anyhow::Error::new(e)),
        }
    }
}

/// The services a write needs; every caller (HTTP or operator) builds one.
#[derive(Clone, Copy)]
pub struct Writer<'a> {
    /// Persistence.
    pub store: &'a DynStore,
    /// The player cache to keep in step.
    pub cache: &'a Cache,
    /// Game tables (scores are computed from the catalog).
    pub data: &'a Arc<GameData>,
}

impl Writer<'_> {
    /// Runs `rule` on the player atomically (with the idempotency key if given).
    pub async fn mutate<T, F>(
        &self,
        player_id: &str,
        idempotency: Option<IdempotencyRequest>,
        now: DateTime<Utc>,
        rule: F,
    ) -> Result<Written<T>, WriteError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(&mut Player) -> Result<Applied<T>, GameError> + Send + Sync + 'static,
    {
        self.mutate_shared(player_id, idempotency, now, Vec::new(), move |p, _| rule(p)).await
    }

    /// As `mutate`, with the shared documents under `keys` (friend books,
    /// guilds) read and written in the same atomic write.
    pub async fn mutate_shared<T, F>(
        &self,
        player_id: &str,
        idempotency: Option<IdempotencyRequest>,
        now: DateTime<Utc>,
        keys: Vec<String>,
        rule: F,
    ) -> Result<Written<T>, WriteError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(&mut Player, &mut SharedDocs) -> Result<Applied<T>, GameError> + Send + Sync + 'static,
    {
        // The store may run the rule more than once (a retried transaction); the
        // view of the run that committed is the last one left here.
        let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let (data, out) = (self.data.clone(), slot.clone());
        // The request's trace travels with the events this write produces.
        let traceparent = crate::platform::tracing_otlp::current_traceparent();
        let op: SharedMutation = Arc::new(move |p: &mut Player, docs: &mut SharedDocs| {
            let a = rule(p, docs)?;
            // Every write keeps the leaderboard scores in step with the player.
            p.recompute_scores(&data.catalog);
            let response = StoredResponse::json(200, &a.view).unwrap_or_else(|e| {
                tracing::error!(error = %e, "a view did not serialize; its replay will fail");
                StoredResponse { status: 200, body: serde_json::value::RawValue::NULL.to_owned() }
            });
            *out.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(a.view);
            Ok(Effects {
                reason: a.reason,
                ref_id: a.ref_id,
                history: a.history,
                battles: a.battles,
                event: a.event,
                response,
                traceparent: traceparent.clone(),
            })
        });
        let started = Instant::now();
        let span = tracing::info_span!("store.mutate", store = self.store.kind());
        let outcome = self.store.mutate_shared(player_id, idempotency, now, keys, op).instrument(span).await;
        metrics::histogram!(STORE_SECONDS, "op" => "mutate", "store" => self.store.kind())
            .record(started.elapsed().as_secs_f64());
        match outcome? {
            MutateOutcome::Applied(_, player) => {
                // Before the caller answers: no read after this write sees an older copy.
                self.cache.player_written(Arc::from(player)).await;
                let view = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                let view = view.ok_or_else(|| WriteError::Corrupt("the applied rule left no view".into()))?;
                Ok(Written { view, fresh: true })
            }
            MutateOutcome::Replayed(r) => {
                let view = serde_json::from_str(r.body.get()).map_err(|e| WriteError::Corrupt(e.to_string()))?;
                Ok(Written { view, fresh: false })
            }
            MutateOutcome::KeyReused => Err(WriteError::KeyReused),
            MutateOutcome::Rejected(e) => Err(WriteError::Rejected(e)),
            MutateOutcome::PlayerNotFound => Err(WriteError::PlayerNotFound),
        }
    }
}
