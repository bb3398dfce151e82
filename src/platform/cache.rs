//! Cache-aside for read-mostly data, in Redis when `REDIS_ENABLED=true`, else in
//! process, with the same behaviour: TTL tiers, hit/miss counters, and player
//! records guarded by version so that no write is ever followed by a stale read.
//!
//! A Redis failure never fails a request: the lookup counts as a miss (and an
//! error), is logged, and the caller goes to the store. The pool reconnects by
//! itself when Redis comes back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, AsyncCommands};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::metrics::{CACHE_ERRORS, CACHE_HIT, CACHE_MISS};
use crate::game::player::Player;

/// TTL tiers of the operators' guide.
#[derive(Debug, Clone, Copy)]
pub enum Tier {
    /// `CACHE_TTL_SHORT`: player records.
    Short,
    /// `CACHE_TTL_MEDIUM`: leaderboards.
    Medium,
    /// `CACHE_TTL_LONG`: catalog and banners.
    Long,
}

/// Most entries the in-process cache keeps.
const MEMORY_MAX_ENTRIES: usize = 20_000;
/// A Redis call slower than this counts as a failure (the store answers instead).
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a player's "newest version" mark lives: longer than any entry it guards.
const VERSION_MARK_TTL_SECS: u64 = 3600;

/// The cache.
pub struct Cache {
    prefix: String,
    redis: Option<deadpool_redis::Pool>,
    /// Player records are cached only where every writer invalidates this cache:
    /// in Redis, or in process when this process owns the store.
    players: bool,
    memory: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
    ttl: [Duration; 3],
    /// One warning per period while Redis is down, not one per request.
    warnings: super::telemetry::Throttle,
}

/// A cached player with the version it was read at.
#[derive(Serialize, serde::Deserialize)]
struct PlayerEntry {
    version: u64,
    player: Player,
}

impl Cache {
    /// A cache over Redis (`Some(pool)`) or in process, with the three TTLs in seconds.
    /// `single_writer`: this process is the only one writing the store (the
    /// embedded store), so an in-process cache of players stays exact.
    pub fn new(prefix: &str, redis: Option<deadpool_redis::Pool>, single_writer: bool, ttl_secs: [u64; 3]) -> Self {
        let ttl = ttl_secs.map(Duration::from_secs);
        let players = redis.is_some() || single_writer;
        Self {
            prefix: format!("{prefix}:"),
            redis,
            players,
            memory: Mutex::new(HashMap::new()),
            ttl,
            warnings: super::telemetry::Throttle::new(Duration::from_secs(10)),
        }
    }

    fn ttl(&self, tier: Tier) -> Duration {
        self.ttl[tier as usize]
    }

    fn redis_failed(&self, op: &str, e: impl std::fmt::Display) {
        metrics::counter!(CACHE_ERRORS, "op" => op.to_string()).increment(1);
        if let Some(held_back) = self.warnings.allow() {
            tracing::warn!(op, error = %e, held_back, "cache: Redis unavailable, using the store (one warning per 10 s; every failure is counted in divine_heroes_cache_errors_total)");
        }
    }

    async fn with_redis<T>(
        &self,
        op: &str,
        f: impl AsyncFnOnce(&mut deadpool_redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let pool = self.redis.as_ref()?;
        let r = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut c = pool.get().await.map_err(|e| e.to_string())?;
            f(&mut c).await.map_err(|e| e.to_string())
        })
        .await;
        match r {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.redis_failed(op, e);
                None
            }
            Err(_) => {
                self.redis_failed(op, "timed out");
                None
            }
        }
    }

    async fn raw_get(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        if self.redis.is_some() {
            let n = keys.len();
            let keys = keys.to_vec();
            return self
                .with_redis("get", async move |c| {
                    redis::cmd("MGET").arg(&keys).query_async::<Vec<Option<Vec<u8>>>>(c).await
                })
                .await
                .unwrap_or_else(|| vec![None; n]);
        }
        let now = Instant::now();
        let mem = self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.iter().map(|k| mem.get(k).filter(|(exp, _)| *exp > now).map(|(_, v)| v.clone())).collect()
    }

    async fn raw_set(&self, key: String, value: Vec<u8>, ttl: Duration) {
        if self.redis.is_some() {
            self.with_redis("set", async move |c| c.set_ex::<_, _, ()>(key, value, ttl.as_secs().max(1)).await).await;
            return;
        }
        let mut mem = self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if mem.len() >= MEMORY_MAX_ENTRIES {
            let now = Instant::now();
            mem.retain(|_, (exp, _)| *exp > now);
            if mem.len() >= MEMORY_MAX_ENTRIES {
                mem.clear();
            }
        }
        mem.insert(key, (Instant::now() + ttl, value));
    }

    /// A cached value, or the loader's, which is then cached for `tier`.
    pub async fn get_or_load<T, E>(
        &self,
        kind: &'static str,
        key: &str,
        tier: Tier,
        load: impl AsyncFnOnce() -> Result<T, E>,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
    {
        let full = format!("{}{key}", self.prefix);
        if let Some(Some(bytes)) = self.raw_get(std::slice::from_ref(&full)).await.pop() {
            if let Ok(v) = serde_json::from_slice(&bytes) {
                metrics::counter!(CACHE_HIT, "kind" => kind).increment(1);
                return Ok(v);
            }
        }
        metrics::counter!(CACHE_MISS, "kind" => kind).increment(1);
        let v = load().await?;
        if let Ok(bytes) = serde_json::to_vec(&v) {
            self.raw_set(full, bytes, self.ttl(tier)).await;
        }
        Ok(v)
    }

    fn player_keys(&self, id: &str) -> [String; 2] {
        [format!("{}player:{id}", self.prefix), format!("{}player:{id}:newest", self.prefix)]
    }

    /// A cached player, valid only if no write newer than it has been seen.
    pub async fn player(&self, id: &str) -> Option<Player> {
        if !self.players {
            return None;
        }
        let got = self.raw_get(&self.player_keys(id)).await;
        let entry = got.first().cloned().flatten().and_then(|b| serde_json::from_slice::<PlayerEntry>(&b).ok());
        let newest: u64 =
            got.get(1).cloned().flatten().and_then(|b| String::from_utf8(b).ok()?.parse().ok()).unwrap_or(0);
        match entry {
            Some(e) if e.version >= newest => {
                metrics::counter!(CACHE_HIT, "kind" => "player").increment(1);
                Some(e.player)
            }
            _ => {
                metrics::counter!(CACHE_MISS, "kind" => "player").increment(1);
                None
            }
        }
    }

    /// Caches a player read from the store.
    pub async fn put_player(&self, p: &Player) {
        if !self.players {
            return;
        }
        let entry = PlayerEntry { version: p.version, player: p.clone() };
        if let Ok(bytes) = serde_json::to_vec(&entry) {
            let [key, _] = self.player_keys(&p.id);
            self.raw_set(key, bytes, self.ttl(Tier::Short)).await;
        }
    }

    /// Records that the player is now at `version`: older cached copies stop
    /// being served at once, on every pod. Then caches the new record.
    pub async fn player_written(&self, p: &Player) {
        if !self.players {
            return;
        }
        let [_, newest] = self.player_keys(&p.id);
        let version = p.version;
        if self.redis.is_some() {
            // Only ever raise the mark, even if two writers' invalidations cross.
            const RAISE: &str = "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') \
                 if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) \
                 else redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 1";
            let ok = self
                .with_redis("invalidate", async move |c| {
                    redis::cmd("EVAL")
                        .arg(RAISE)
                        .arg(1)
                        .arg(newest)
                        .arg(version)
                        .arg(VERSION_MARK_TTL_SECS)
                        .query_async::<i64>(c)
                        .await
                })
                .await;
            if ok.is_none() {
                // The mark could not be raised: do not re-populate either.
                return;
            }
        } else {
            let mut mem = self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let cur = mem.get(&newest).and_then(|(_, b)| std::str::from_utf8(b).ok()?.parse::<u64>().ok()).unwrap_or(0);
            if version > cur {
                mem.insert(
                    newest,
                    (Instant::now() + Duration::from_secs(VERSION_MARK_TTL_SECS), version.to_string().into_bytes()),
                );
            }
        }
        self.put_player(p).await;
    }
}
