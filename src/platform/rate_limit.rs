//! Rate limits: a general bucket per client and a stricter one for register
//! and login. The client is the player when a valid token is sent, else the
//! client IP (`X-Forwarded-For` only from trusted proxies). With Redis on, the
//! buckets live in Redis (GCRA, one script, one round trip, Redis's clock), so
//! every pod draws on the same budget; when Redis does not answer, the
//! in-process limiter (governor, the same semantics) decides, and
//! `divine_heroes_rate_limit_fallback_total` counts it.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, ResponseError};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::auth::Authenticator;
use super::error::{AppError, ErrorCode};
use super::metrics::{RATE_LIMIT_EXCEEDED, RATE_LIMIT_FALLBACK};

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One keyed bucket: `requests` per `window`, refilled smoothly.
pub struct Limiter {
    inner: Keyed,
    limit: u32,
    clock: DefaultClock,
}

/// The outcome of one check.
pub enum Verdict {
    /// Allowed, with what is left in the bucket.
    Allowed {
        /// Requests left before the limit.
        remaining: u32,
    },
    /// Refused; retry after this long.
    Limited {
        /// Time until one request is allowed again.
        retry_after: Duration,
    },
}

impl Limiter {
    /// A limiter of `requests` per `window_secs`.
    pub fn new(requests: u32, window_secs: u64) -> Self {
        let requests = NonZeroU32::new(requests.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs(window_secs.max(1)) / requests.get();
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(requests))
            .allow_burst(requests);
        Self {
            inner: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            limit: requests.get(),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `key`'s bucket.
    pub fn check(&self, key: &str) -> Verdict {
        match self.inner.check_key(&key.to_string()) {
            Ok(snapshot) => Verdict::Allowed { remaining: snapshot.remaining_burst_capacity() },
            Err(not_until) => Verdict::Limited { retry_after: not_until.wait_time_from(self.clock.now()) },
        }
    }

    /// The configured requests per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Seconds per request refill and the burst, for the shared limiter.
    fn shape(&self, window_secs: u64) -> (u64, u64) {
        let limit = u64::from(self.limit);
        ((window_secs.max(1) * 1000 / limit).max(1), limit)
    }

    /// Forgets buckets that are full again, so memory stays bounded.
    pub fn prune(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not itself in a trusted range.
pub fn client_ip(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = req.peer_addr()?.ip();
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut candidate = peer;
    for hop in forwarded.rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => candidate = ip,
            Ok(ip) => return Some(ip),
            Err(_) => break,
        }
    }
    Some(candidate)
}

/// Which bucket a check uses.
#[derive(Clone, Copy)]
enum Bucket {
    General,
    Auth,
}

fn client_key(req: &HttpRequest, limits: &Limits) -> String {
    // The check is kept on the request; the handler's AuthPlayer reuses it for the same token.
    if let Some(Ok(player)) = limits.authenticator.player(req) {
        return format!("player:{player}");
    }
    match client_ip(req, &limits.trusted_proxies) {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_string(),
    }
}

async fn limit(
    bucket: Bucket,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(limits) = req.app_data::<web::Data<Limits>>().cloned() else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    if matches!(bucket, Bucket::General) && (req.path().starts_with("/health/") || req.path().starts_with("/metrics")) {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    }
    let (limiter, name) = match bucket {
        Bucket::General => (&limits.general, "general"),
        Bucket::Auth => (&limits.auth, "auth"),
    };
    let key = client_key(req.request(), &limits);
    let limit_header = HeaderValue::from(limiter.limit());
    match limits.check(limiter, name, &key).await {
        Verdict::Allowed { remaining } => {
            let mut res = next.call(req).await?;
            let h = res.headers_mut();
            // An inner (stricter) bucket has already reported its own figures.
            if !h.contains_key("x-ratelimit-remaining") {
                h.insert(HeaderName::from_static("x-ratelimit-limit"), limit_header);
                h.insert(HeaderName::from_static("x-ratelimit-remaining"), HeaderValue::from(remaining));
            }
            Ok(res.map_into_left_body())
        }
        Verdict::Limited { retry_after } => {
            metrics::counter!(RATE_LIMIT_EXCEEDED, "role" => limits.role, "bucket" => name).increment(1);
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let mut err = AppError::new(ErrorCode::RateLimited, format!("too many requests; retry in {secs} s"))
                .with_details(serde_json::json!({"limit": limiter.limit(), "window_secs": limits.window_secs}));
            err.retry_after = Some(secs.max(1));
            let mut res = err.error_response();
            let h = res.headers_mut();
            h.insert(HeaderName::from_static("x-ratelimit-limit"), limit_header);
            h.insert(HeaderName::from_static("x-ratelimit-remaining"), HeaderValue::from(0u32));
            Ok(req.into_response(res).map_into_right_body())
        }
    }
}

/// The general limit, around the whole app (probes and scrapes pass untouched).
pub async fn limit_general(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    limit(Bucket::General, req, next).await
}

/// The stricter limit, around register and login.
pub async fn limit_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    limit(Bucket::Auth, req, next).await
}

/// Both buckets and what keying a request needs; app data of its own.
pub struct Limits {
    /// Every limited route.
    pub general: Limiter,
    /// Register and login (per IP), and login per username.
    pub auth: Limiter,
    /// Redeem-code attempts per player (5 a minute).
    pub redeem: Limiter,
    /// Chat messages per player (`config/chat.toml`, 10 a minute).
    pub chat: Limiter,
    /// The window both are defined over, seconds (for the error details).
    pub window_secs: u64,
    /// Proxy ranges whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Checks tokens (a valid one keys the bucket by player).
    pub authenticator: Arc<Authenticator>,
    /// The role, for the metric label.
    pub role: &'static str,
    /// Where the shared buckets live (Redis and the key prefix), when Redis is on.
    pub shared: Option<(deadpool_redis::Pool, String)>,
}

/// GCRA in one script on Redis's clock: KEYS[1] holds the bucket's theoretical
/// arrival time (ms); ARGV: emission interval (ms), burst. Returns {1, remaining}
/// or {0, ms until one request is allowed}.
const GCRA: &str = "local t = redis.call('TIME') \
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
    local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]) \
    local tat = tonumber(redis.call('GET', KEYS[1]) or '0') \
    if tat < now then tat = now end \
    local new_tat = tat + interval \
    local allow_at = new_tat - interval * burst \
    if now < allow_at then return {0, allow_at - now} end \
    redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000) \
    return {1, math.floor((now - allow_at) / interval)}";

/// [`GCRA`], sent by its SHA after the first call (EVALSHA), not as text each request.
static GCRA_SCRIPT: std::sync::LazyLock<deadpool_redis::redis::Script> =
    std::sync::LazyLock::new(|| deadpool_redis::redis::Script::new(GCRA));

/// A shared-limiter call slower than this counts as Redis not answering.
const SHARED_TIMEOUT: Duration = Duration::from_millis(100);

impl Limits {
    /// Takes one request from `key`'s bucket of `limiter` (named `bucket`): in
    /// Redis when it is on and answers, else in process.
    pub async fn check(&self, limiter: &Limiter, bucket: &str, key: &str) -> Verdict {
        self.check_in(limiter, bucket, key, self.window_secs).await
    }

    /// As [`Self::check`], for a limiter defined over its own window.
    pub async fn check_in(&self, limiter: &Limiter, bucket: &str, key: &str, window_secs: u64) -> Verdict {
        if let Some((pool, prefix)) = &self.shared {
            let (interval, burst) = limiter.shape(window_secs);
            let redis_key = format!("{prefix}:ratelimit:{bucket}:{key}");
            let call = async {
                let mut c = pool.get().await.map_err(|e| e.to_string())?;
                GCRA_SCRIPT
                    .key(&redis_key)
                    .arg(interval)
                    .arg(burst)
                    .invoke_async::<(i64, i64)>(&mut c)
                    .await
                    .map_err(|e| e.to_string())
            };
            match tokio::time::timeout(SHARED_TIMEOUT, call).await {
                Ok(Ok((1, remaining))) => {
                    return Verdict::Allowed { remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX) };
                }
                Ok(Ok((_, wait_ms))) => {
                    return Verdict::Limited { retry_after: Duration::from_millis(wait_ms.max(1).unsigned_abs()) };
                }
                _ => metrics::counter!(RATE_LIMIT_FALLBACK, "role" => self.role).increment(1),
            }
        }
        limiter.check(key)
    }
}
