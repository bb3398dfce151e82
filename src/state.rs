//! The shared services of one process, built once and handed to every handler.
//! Above `platform`: it assembles platform services, none of which needs it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};

use crate::game::data::GameData;
use crate::platform::auth::{Authenticator, TokenKeys};
use crate::platform::cache::Cache;
use crate::platform::clock::Clock;
use crate::platform::config::{Role, Settings};
use crate::platform::rate_limit::{Limiter, Limits};
use crate::store::DynStore;

/// Everything a handler may need.
pub struct AppState {
    /// The loaded settings.
    pub settings: Settings,
    /// The role this process serves.
    pub role: Role,
    /// Persistence.
    pub store: DynStore,
    /// Validated game tables.
    pub data: Arc<GameData>,
    /// Token signing and checking.
    pub tokens: Arc<TokenKeys>,
    /// Token checking on the server's clock (app data of the auth extractor).
    pub authenticator: Arc<Authenticator>,
    /// The time source of the rules.
    pub clock: Arc<dyn Clock>,
    /// Rate limit buckets (app data of the limiter middleware).
    pub limits: Arc<Limits>,
    /// Redis pool when `REDIS_ENABLED=true`.
    pub redis: Option<deadpool_redis::Pool>,
    /// The cache (Redis or in process).
    pub cache: Cache,
    /// Prometheus handle.
    pub metrics: PrometheusHandle,
    /// Live chat delivery (across processes through Redis when it is on).
    pub chat: Arc<crate::platform::chat_bus::ChatBus>,
    /// Set when shutdown begins: readiness turns 503.
    pub shutting_down: AtomicBool,
    /// When the process started.
    pub started_at: Instant,
}

impl AppState {
    /// The write path over this state's store, cache and tables.
    pub fn writer(&self) -> crate::writes::Writer<'_> {
        crate::writes::Writer { store: &self.store, cache: &self.cache, data: &self.data }
    }

    /// Assembles the state from already-connected parts.
    pub fn new(
        settings: Settings,
        role: Role,
        store: DynStore,
        data: Arc<GameData>,
        clock: Arc<dyn Clock>,
        redis: Option<deadpool_redis::Pool>,
    ) -> Self {
        let tokens = Arc::new(TokenKeys::rotating(
            &settings.jwt_secret,
            settings.jwt_secret_previous.as_ref(),
            settings.jwt_ttl_secs,
        ));
        let authenticator = Arc::new(Authenticator { tokens: tokens.clone(), clock: clock.clone() });
        let limits = Arc::new(Limits {
            general: Limiter::new(settings.rate_limit_requests, settings.rate_limit_window),
            auth: Limiter::new(settings.auth_rate_limit_requests, settings.rate_limit_window),
            redeem: Limiter::new(crate::game::codes::REDEEM_ATTEMPTS_PER_MINUTE, 60),
            chat: Limiter::new(data.chat.per_minute, 60),
            window_secs: settings.rate_limit_window,
            trusted_proxies: settings.trusted_proxy_list().unwrap_or_default(),
            authenticator: authenticator.clone(),
            role: role.name(),
            shared: redis.clone().map(|pool| (pool, settings.cache_prefix.clone())),
        });
        let cache = Cache::new(
            &settings.cache_prefix,
            redis.clone(),
            store.kind() == "embedded",
            [settings.cache_ttl_short, settings.cache_ttl_medium, settings.cache_ttl_long],
        );
        let chat = Arc::new(crate::platform::chat_bus::ChatBus::new(
            redis.clone().map(|pool| (pool, settings.redis_url.clone(), settings.cache_prefix.as_str())),
        ));
        Self {
            chat,
            tokens,
            authenticator,
            limits,
            role,
            store,
            data,
            clock,
            cache,
            redis,
            metrics: crate::platform::metrics::install(),
            shutting_down: AtomicBool::new(false),
            started_at: Instant::now(),
            settings,
        }
    }

    /// Marks the process as draining.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.chat.close();
    }

    /// Checks every dependency within the readiness timeout. Returns whether the
    /// process should receive traffic, and the per-dependency detail.
    ///
    /// The store is required. Redis only backs the cache, which falls through to
    /// the store, so a Redis outage reports "degraded" but stays ready: otherwise
    /// a Redis blink would take every pod out of service at once.
    pub async fn readiness(&self) -> (bool, Value) {
        let timeout = Duration::from_millis(self.settings.ready_timeout_ms);
        let started = Instant::now();
        let store = match tokio::time::timeout(timeout, self.store.ping()).await {
            Ok(Ok(())) => {
                json!({"status": "up", "kind": self.store.kind(), "latency_ms": started.elapsed().as_millis() as u64})
            }
            Ok(Err(e)) => json!({"status": "down", "kind": self.store.kind(), "error": e.to_string()}),
            Err(_) => {
                json!({"status": "down", "kind": self.store.kind(), "error": format!("no answer within {} ms", timeout.as_millis())})
            }
        };
        let store_up = store["status"] == "up";
        let mut checks = serde_json::Map::new();
        checks.insert("store".into(), store);
        let mut degraded = false;
        if let Some(pool) = &self.redis {
            let started = Instant::now();
            let r = tokio::time::timeout(timeout, async {
                let mut c = pool.get().await.map_err(|e| e.to_string())?;
                deadpool_redis::redis::cmd("PING").query_async::<String>(&mut c).await.map_err(|e| e.to_string())
            })
            .await;
            let redis = match r {
                Ok(Ok(_)) => json!({"status": "up", "latency_ms": started.elapsed().as_millis() as u64}),
                Ok(Err(e)) => json!({"status": "degraded", "error": e}),
                Err(_) => {
                    json!({"status": "degraded", "error": format!("no answer within {} ms", timeout.as_millis())})
                }
            };
            degraded = redis["status"] != "up";
            checks.insert("redis".into(), redis);
        }
        let draining = self.shutting_down.load(Ordering::SeqCst);
        let ready = store_up && !draining;
        let status = if draining {
            "shutting_down"
        } else if !store_up {
            "not_ready"
        } else if degraded {
            "degraded"
        } else {
            "ready"
        };
        (ready, json!({"status": status, "role": self.role.name(), "checks": checks}))
    }
}

/// The extractor's view of players: the cached record, or the store's (then cached).
impl crate::platform::auth::PlayerSource for AppState {
    fn current(
        &self,
        player_id: String,
    ) -> futures_util::future::LocalBoxFuture<
        '_,
        Result<Option<Arc<crate::game::player::Player>>, crate::platform::error::AppError>,
    > {
        Box::pin(async move {
            let ticket = match self.cache.player(&player_id).await {
                crate::platform::cache::PlayerLookup::Hit(p) => return Ok(Some(p)),
                crate::platform::cache::PlayerLookup::Miss(ticket) => ticket,
            };
            let Some(p) = self.store.player_by_id(&player_id).await? else { return Ok(None) };
            let p = Arc::new(p);
            self.cache.put_player(&p, ticket).await;
            Ok(Some(p))
        })
    }
}
