//! Cache-aside for read-mostly data, in Redis when `REDIS_ENABLED=true`, else in
//! process, with the same behaviour: TTL tiers, hit/miss counters, and player
//! records guarded by version so that no write is ever followed by a stale read.
//!
//! A Redis failure never fails a request: the lookup counts as a miss (and an
//! error), is logged, and the caller goes to the store. The pool reconnects by
//! itself when Redis comes back.
//!
//! Player records carry two guards. The "newest version" mark, raised by every
//! write, hides older copies at once. When a write cannot raise it (Redis down
//! or paused), the mark and the old copy may both come back with Redis, so the
//! writing process *fences*: it raises the player-cache generation in Redis
//! before it serves from the cache again, retrying every 100 ms in the
//! background, and every copy cached under an older generation, on every pod, is
//! a miss from then on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
/// Most players the in-process cache keeps (decoded records, tens of KiB each).
const LOCAL_PLAYERS_MAX: usize = 1_024;
/// A Redis call slower than this counts as a failure (the store answers instead).
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a player's "newest version" mark lives: longer than any entry it guards.
const VERSION_MARK_TTL_SECS: u64 = 3600;
/// Raises a player's "newest version" mark (only ever up, even if two writers'
/// invalidations cross) and caches the new copy tagged with the generation
/// current at that moment, in one script: a fence raised after it cannot be
/// overtaken by it.
const RAISE_AND_CACHE: &str = "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') \
     if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) \
     else redis.call('EXPIRE', KEYS[1], ARGV[2]) end \
     local g = redis.call('GET', KEYS[3]) or '0' \
     redis.call('SET', KEYS[2], g .. ':' .. ARGV[3], 'EX', ARGV[4]) return 1";
/// [`RAISE_AND_CACHE`], sent by its SHA after the first call (EVALSHA), not as text each write.
static RAISE_AND_CACHE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(RAISE_AND_CACHE));
/// How often a process that owes a fence retries it while Redis is away.
const FENCE_RETRY: Duration = Duration::from_millis(100);

/// The cache.
pub struct Cache {
    prefix: String,
    redis: Option<deadpool_redis::Pool>,
    /// Player records are cached only where every writer invalidates this cache:
    /// in Redis, or in process when this process owns the store.
    players: bool,
    memory: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
    /// Players cached in process (no Redis, this process owns the store): kept
    /// decoded, since nothing outside the process reads them; only ever
    /// replaced by a newer version.
    local_players: Mutex<LocalPlayers>,
    ttl: [Duration; 3],
    /// One warning per period while Redis is down, not one per request.
    warnings: Arc<super::telemetry::Throttle>,
    /// Set while a write's invalidation is owed to Redis (see the module docs).
    fence: Arc<Fence>,
}

/// The fence this process owes: while `owed > paid`, it serves no player from
/// the cache and caches none. Counters rather than a flag, so that a write that
/// fails while a fence is being raised still owes one after it.
#[derive(Default)]
struct Fence {
    owed: AtomicU64,
    paid: AtomicU64,
    /// A background retry is running.
    retrying: AtomicBool,
}

impl Fence {
    fn owed(&self) -> bool {
        self.owed.load(Ordering::SeqCst) > self.paid.load(Ordering::SeqCst)
    }
}

/// A cached player with the version it was read at (written from a borrowed
/// record, read back as an owned one).
#[derive(Serialize, serde::Deserialize)]
struct PlayerEntry<P = Player> {
    version: u64,
    player: P,
}

/// The JSON of a player's cache entry, without copying the record.
fn entry_json(p: &Player) -> Option<Vec<u8>> {
    serde_json::to_vec(&PlayerEntry { version: p.version, player: p }).ok()
}

/// A player cached in process, and until when it may be served.
struct LocalPlayer {
    expires: Instant,
    player: Arc<Player>,
}

/// The in-process players, and when expired ones were last dropped.
struct LocalPlayers {
    map: HashMap<String, LocalPlayer>,
    swept: Instant,
}

/// What a player lookup found.
pub enum PlayerLookup {
    /// A current copy (shared: the in-process cache hands out its own).
    Hit(Arc<Player>),
    /// Load it from the store, then hand the ticket to [`Cache::put_player`].
    Miss(PutTicket),
}

/// Permission to cache a player loaded after a miss: the cache generation seen
/// before the store was read, so that a copy read before a fence is never
/// served after it. `None`: do not cache (no player cache, or a fence is owed).
pub struct PutTicket(Option<u64>);

/// Stored player entries are `"<generation>:<json>"`.
fn split_generation(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let colon = bytes.iter().position(|&b| b == b':')?;
    let generation = std::str::from_utf8(&bytes[..colon]).ok()?.parse().ok()?;
    Some((generation, &bytes[colon + 1..]))
}

fn parse_u64(bytes: Option<&Vec<u8>>) -> u64 {
    bytes.and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()).unwrap_or(0)
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
            local_players: Mutex::new(LocalPlayers { map: HashMap::new(), swept: Instant::now() }),
            ttl,
            warnings: Arc::new(super::telemetry::Throttle::new(Duration::from_secs(10))),
            fence: Arc::default(),
        }
    }

    /// Whether this process owes a fence (a write's invalidation did not reach Redis).
    pub fn fence_owed(&self) -> bool {
        self.fence.owed()
    }

    fn ttl(&self, tier: Tier) -> Duration {
        self.ttl[tier as usize]
    }

    async fn with_redis<T>(
        &self,
        op: &str,
        f: impl AsyncFnOnce(&mut deadpool_redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        redis_call(self.redis.as_ref()?, &self.warnings, op, f).await
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

    /// The in-process copy of a player, if still fresh.
    fn local_player(&self, id: &str) -> Option<Arc<Player>> {
        let now = Instant::now();
        let players = self.local_players.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        players.map.get(id).filter(|e| e.expires > now).map(|e| e.player.clone())
    }

    /// Keeps `player` in process unless a newer version is there (a write's
    /// copy and a reader's older one can arrive in either order). Expired
    /// copies are dropped once per TTL, so memory follows the players active
    /// in the last TTL or two, up to `LOCAL_PLAYERS_MAX`.
    fn keep_local(&self, player: Arc<Player>) {
        let (now, ttl) = (Instant::now(), self.ttl(Tier::Short));
        let mut players = self.local_players.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let LocalPlayers { map, swept } = &mut *players;
        if map.get(&player.id).is_some_and(|e| e.player.version > player.version) {
            return;
        }
        let full = map.len() >= LOCAL_PLAYERS_MAX && !map.contains_key(&player.id);
        if full || now.duration_since(*swept) >= ttl {
            map.retain(|_, e| e.expires > now);
            *swept = now;
            if map.len() >= LOCAL_PLAYERS_MAX {
                map.clear();
            }
        }
        map.insert(player.id.clone(), LocalPlayer { expires: now + ttl, player });
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

    fn player_keys(&self, id: &str) -> [String; 3] {
        [
            format!("{}player:{id}", self.prefix),
            format!("{}player:{id}:newest", self.prefix),
            format!("{}player-generation", self.prefix),
        ]
    }

    /// A cached player, served only if no write newer than it has been seen and
    /// no fence has been raised since it was cached.
    pub async fn player(&self, id: &str) -> PlayerLookup {
        if !self.players || (self.fence_owed() && !self.pay_fence().await) {
            metrics::counter!(CACHE_MISS, "kind" => "player").increment(1);
            return PlayerLookup::Miss(PutTicket(None));
        }
        if self.redis.is_none() {
            return if let Some(p) = self.local_player(id) {
                metrics::counter!(CACHE_HIT, "kind" => "player").increment(1);
                PlayerLookup::Hit(p)
            } else {
                metrics::counter!(CACHE_MISS, "kind" => "player").increment(1);
                PlayerLookup::Miss(PutTicket(Some(0)))
            };
        }
        let keys = self.player_keys(id).to_vec();
        let got = self
            .with_redis("get", async move |c| {
                redis::cmd("MGET").arg(&keys).query_async::<Vec<Option<Vec<u8>>>>(c).await
            })
            .await;
        let Some(got) = got else {
            metrics::counter!(CACHE_MISS, "kind" => "player").increment(1);
            return PlayerLookup::Miss(PutTicket(None));
        };
        let newest = parse_u64(got.get(1).and_then(Option::as_ref));
        let generation = parse_u64(got.get(2).and_then(Option::as_ref));
        let entry = got
            .first()
            .and_then(Option::as_ref)
            .and_then(|b| split_generation(b))
            .filter(|(g, _)| *g == generation)
            .and_then(|(_, json)| serde_json::from_slice::<PlayerEntry>(json).ok());
        match entry {
            Some(e) if e.version >= newest => {
                metrics::counter!(CACHE_HIT, "kind" => "player").increment(1);
                PlayerLookup::Hit(Arc::new(e.player))
            }
            _ => {
                metrics::counter!(CACHE_MISS, "kind" => "player").increment(1);
                PlayerLookup::Miss(PutTicket(Some(generation)))
            }
        }
    }

    /// Caches a player read from the store after a miss.
    pub async fn put_player(&self, p: &Arc<Player>, ticket: PutTicket) {
        let Some(generation) = ticket.0 else { return };
        if self.redis.is_none() {
            self.keep_local(p.clone());
            return;
        }
        if self.fence_owed() {
            return;
        }
        let Some(json) = entry_json(p) else { return };
        let mut bytes = format!("{generation}:").into_bytes();
        bytes.extend_from_slice(&json);
        let [key, ..] = self.player_keys(&p.id);
        self.raw_set(key, bytes, self.ttl(Tier::Short)).await;
    }

    /// Records that the player is now at `version`: older cached copies stop
    /// being served at once, on every pod. Then caches the new record. If Redis
    /// cannot be told, a fence is owed (see the module docs).
    pub async fn player_written(&self, p: Arc<Player>) {
        if !self.players {
            return;
        }
        if self.redis.is_none() {
            self.keep_local(p);
            return;
        }
        let [entry_key, newest, generation_key] = self.player_keys(&p.id);
        let Some(json) = entry_json(&p) else { return };
        if self.fence_owed() {
            // Nothing is served from the cache here until the fence is paid,
            // which hides this write's older copies too.
            return;
        }
        let (version, ttl) = (p.version, self.ttl(Tier::Short).as_secs().max(1));
        let ok = self
            .with_redis("invalidate", async move |c| {
                RAISE_AND_CACHE_SCRIPT
                    .key(newest)
                    .key(entry_key)
                    .key(generation_key)
                    .arg(version)
                    .arg(VERSION_MARK_TTL_SECS)
                    .arg(json)
                    .arg(ttl)
                    .invoke_async::<i64>(c)
                    .await
            })
            .await;
        if ok.is_none() {
            self.owe_fence();
        }
    }

    /// Marks a fence as owed and starts the background retry (once).
    fn owe_fence(&self) {
        self.fence.owed.fetch_add(1, Ordering::SeqCst);
        let Some(pool) = self.redis.clone() else { return };
        if self.fence.retrying.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::warn!("cache: a write could not invalidate its cached player; the player cache is off here until Redis takes a fence");
        let (fence, warnings) = (self.fence.clone(), self.warnings.clone());
        let [_, _, key] = self.player_keys("");
        tokio::spawn(async move {
            loop {
                while !raise_generation(&pool, &warnings, &fence, &key).await {
                    tokio::time::sleep(FENCE_RETRY).await;
                }
                fence.retrying.store(false, Ordering::SeqCst);
                // A write that failed just before the flag went down started no retry.
                if !fence.owed() || fence.retrying.swap(true, Ordering::SeqCst) {
                    break;
                }
            }
            tracing::info!("cache: fence raised in Redis; the player cache is on again");
        });
    }

    /// Tries to pay an owed fence now; true when none is owed any more.
    async fn pay_fence(&self) -> bool {
        let Some(pool) = &self.redis else { return true };
        let [_, _, key] = self.player_keys("");
        raise_generation(pool, &self.warnings, &self.fence, &key).await
    }
}

/// Raises the player-cache generation if a fence is owed; true when none is owed.
async fn raise_generation(
    pool: &deadpool_redis::Pool,
    warnings: &super::telemetry::Throttle,
    fence: &Fence,
    key: &str,
) -> bool {
    let owed = fence.owed.load(Ordering::SeqCst);
    if owed <= fence.paid.load(Ordering::SeqCst) {
        return true;
    }
    let key = key.to_string();
    let raised = redis_call(pool, warnings, "fence", async move |c| c.incr::<_, _, u64>(key, 1).await).await.is_some();
    if raised {
        // Pays what was owed when the INCR started; a failure since owes another.
        fence.paid.fetch_max(owed, Ordering::SeqCst);
    }
    !fence.owed()
}

/// One Redis call within [`REDIS_TIMEOUT`]; a failure is counted, logged (rate
/// limited) and returned as `None`.
async fn redis_call<T>(
    pool: &deadpool_redis::Pool,
    warnings: &super::telemetry::Throttle,
    op: &str,
    f: impl AsyncFnOnce(&mut deadpool_redis::Connection) -> redis::RedisResult<T>,
) -> Option<T> {
    let r = tokio::time::timeout(REDIS_TIMEOUT, async {
        let mut c = pool.get().await.map_err(|e| e.to_string())?;
        f(&mut c).await.map_err(|e| e.to_string())
    })
    .await;
    let e = match r {
        Ok(Ok(v)) => return Some(v),
        Ok(Err(e)) => e,
        Err(_) => "timed out".to_string(),
    };
    metrics::counter!(CACHE_ERRORS, "op" => op.to_string()).increment(1);
    if let Some(held_back) = warnings.allow() {
        tracing::warn!(op, error = %e, held_back, "cache: Redis unavailable, using the store (one warning per 10 s; every failure is counted in divine_heroes_cache_errors_total)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn player(version: u64) -> Player {
        let mut p = Player::new("p1".into(), "Ann", String::new(), chrono::Utc::now());
        p.version = version;
        p
    }

    async fn cached_version(cache: &Cache) -> Option<u64> {
        match cache.player("p1").await {
            PlayerLookup::Hit(p) => Some(p.version),
            PlayerLookup::Miss(_) => None,
        }
    }

    /// A reader that loaded an older copy before a write must not cache it over
    /// the write's copy, whichever arrives last.
    #[tokio::test]
    async fn an_older_copy_never_replaces_a_newer_one_in_process() {
        let cache = Cache::new("t", None, true, [30, 30, 30]);
        assert_eq!(cached_version(&cache).await, None);
        cache.player_written(Arc::new(player(2))).await;
        let PlayerLookup::Hit(_) = cache.player("p1").await else { panic!("a written player is cached") };
        cache.put_player(&Arc::new(player(1)), PutTicket(Some(0))).await;
        assert_eq!(cached_version(&cache).await, Some(2), "the reader's older copy is ignored");
        cache.player_written(Arc::new(player(3))).await;
        assert_eq!(cached_version(&cache).await, Some(3));
    }

    /// Expired copies are misses, and are dropped rather than kept until the cap.
    #[tokio::test]
    async fn expired_players_are_misses_and_are_dropped() {
        let cache = Cache::new("t", None, true, [0, 30, 30]);
        cache.player_written(Arc::new(player(1))).await;
        assert_eq!(cached_version(&cache).await, None, "a zero TTL serves nothing");
        let mut other = player(1);
        other.id = "p2".into();
        cache.player_written(Arc::new(other)).await;
        let held = cache.local_players.lock().unwrap().map.len();
        assert_eq!(held, 1, "the expired copy of p1 was dropped when p2 came");
    }

    /// Without Redis and without owning the store, no player is cached at all.
    #[tokio::test]
    async fn players_are_not_cached_without_an_owner_of_the_store() {
        let cache = Cache::new("t", None, false, [30, 30, 30]);
        cache.player_written(Arc::new(player(1))).await;
        assert_eq!(cached_version(&cache).await, None);
    }
}
