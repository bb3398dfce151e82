//! Layered settings: compiled-in defaults → `config/default.toml` → `--config
//! FILE` → environment variables → CLI flags.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The JWT secret used when none is configured; refused in production.
pub const DEV_JWT_SECRET: &str = "divine-heroes-development-secret-do-not-use";
/// Shortest JWT secret accepted in production.
pub const MIN_PRODUCTION_SECRET_LEN: usize = 32;

/// Which modules a process mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Players, heroes, progression (port 8001).
    Api,
    /// Campaign and arena (port 8002).
    Battle,
    /// Banners and summons (port 8003).
    Gacha,
    /// Everything in one process (port 8001).
    All,
}

impl Role {
    /// The role's default port.
    pub fn default_port(self) -> u16 {
        match self {
            Role::Api | Role::All => 8001,
            Role::Battle => 8002,
            Role::Gacha => 8003,
        }
    }

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Battle => "battle",
            Role::Gacha => "gacha",
            Role::All => "all",
        }
    }

    /// Whether this process serves `module` ("api", "battle", "gacha").
    pub fn mounts(self, module: Role) -> bool {
        self == Role::All || self == module
    }
}

/// Message queue backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqBackend {
    /// In-process.
    Memory,
    /// Redis Streams.
    Redis,
    /// RabbitMQ.
    Rabbitmq,
    /// Kafka.
    Kafka,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable.
    Pretty,
}

/// Deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    /// Local and test runs.
    Development,
    /// Refuses unsafe settings.
    Production,
}

/// Every setting of the server. Environment variable = field name upper-cased.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to bind: loopback unless set (containers set `HOST=0.0.0.0`).
    #[serde(default = "d_host")]
    pub host: String,
    /// Port to bind; unset: the role's default. 0 picks a free port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Enable the Redis cache.
    #[serde(default)]
    pub redis_enabled: bool,
    /// Redis connection URL.
    #[serde(default = "d_redis_url")]
    pub redis_url: String,
    /// Message queue backend: memory, redis, rabbitmq, kafka.
    #[serde(default = "d_mq")]
    pub mq_backend: MqBackend,
    /// Run the outbox relay and the event consumers in this process; unset: yes
    /// for the `api` and `all` roles, no for `battle` and `gacha`.
    #[serde(default)]
    pub workers: Option<bool>,
    /// RabbitMQ URL, for `MQ_BACKEND=rabbitmq`.
    #[serde(default = "d_rabbitmq_url")]
    pub rabbitmq_url: String,
    /// Kafka bootstrap servers, `host:port,...`, for `MQ_BACKEND=kafka`.
    #[serde(default = "d_kafka_brokers")]
    pub kafka_brokers: String,
    /// The events topic (default `<CACHE_PREFIX>.events`); created when missing.
    #[serde(default)]
    pub kafka_topic: Option<String>,
    /// The consumers' group (default `<CACHE_PREFIX>-consumers`).
    #[serde(default)]
    pub kafka_group: Option<String>,
    /// Partitions of the topic when this server creates it.
    #[serde(default = "d_kafka_partitions")]
    pub kafka_partitions: i32,
    /// Requests per window per client.
    #[serde(default = "d_rate_requests")]
    pub rate_limit_requests: u32,
    /// Rate limit window in seconds.
    #[serde(default = "d_rate_window")]
    pub rate_limit_window: u64,
    /// Requests per window per client on register and login.
    #[serde(default = "d_auth_rate_requests")]
    pub auth_rate_limit_requests: u32,
    /// Comma-separated proxy IPs whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: String,
    /// Short cache TTL, seconds.
    #[serde(default = "d_ttl_short")]
    pub cache_ttl_short: u64,
    /// Medium cache TTL, seconds.
    #[serde(default = "d_ttl_medium")]
    pub cache_ttl_medium: u64,
    /// Long cache TTL, seconds.
    #[serde(default = "d_ttl_long")]
    pub cache_ttl_long: u64,
    /// Prefix of every cache key (one per deployment sharing a Redis).
    #[serde(default = "d_cache_prefix")]
    pub cache_prefix: String,
    /// Serve `/metrics` and `/metrics/prometheus`.
    #[serde(default)]
    pub metrics_enabled: bool,
    /// MongoDB URL; unset: the embedded store.
    #[serde(default)]
    pub mongo_url: Option<SecretString>,
    /// MongoDB database name.
    #[serde(default = "d_mongo_db")]
    pub mongo_db: String,
    /// Where reads that tolerate staleness go (leaderboards, replays, the draw
    /// record, observed rates): primary, primaryPreferred, secondary,
    /// secondaryPreferred or nearest. Player reads and writes stay on the primary.
    #[serde(default = "d_read_preference")]
    pub mongo_read_preference: String,
    /// Directory of the embedded store.
    #[serde(default = "d_data_dir")]
    pub data_dir: PathBuf,
    /// A MongoDB operation (a write, and every read too) still unfinished after
    /// this fails with 503, milliseconds.
    #[serde(default = "d_store_write_timeout_ms")]
    pub store_write_timeout_ms: u64,
    /// Page cache of the embedded store, MiB: the bound on its memory.
    #[serde(default = "d_store_cache_mb")]
    pub store_cache_mb: u64,
    /// How long an Idempotency-Key's answer is kept, hours.
    #[serde(default = "d_idempotency_ttl_hours")]
    pub idempotency_ttl_hours: u64,
    /// How long summon history is kept, days (then pruned).
    #[serde(default = "d_history_retention_days")]
    pub history_retention_days: u64,
    /// How long chat messages are kept, days (then pruned).
    #[serde(default = "d_chat_retention_days")]
    pub chat_retention_days: u64,
    /// Directory of the game data tables.
    #[serde(default = "d_game_data_dir")]
    pub game_data_dir: PathBuf,
    /// HS256 secret for player tokens: the current key, which signs.
    #[serde(default = "d_jwt_secret")]
    pub jwt_secret: SecretString,
    /// The key before the current one, during a rotation: it still verifies
    /// tokens it signed (until they expire or it is removed), never signs.
    #[serde(default)]
    pub jwt_secret_previous: Option<SecretString>,
    /// Address of the operator endpoint a server on the embedded store opens for
    /// commands run beside it (`crate::admin`): loopback unless set.
    #[serde(default = "d_host")]
    pub admin_host: String,
    /// Its port; 0 (the default) takes a free one, written to `DATA_DIR/admin.json`.
    #[serde(default)]
    pub admin_port: u16,
    /// Bearer token of that endpoint; unset: a random one per start, written
    /// (owner-only) to `DATA_DIR/admin.json` for the command line.
    #[serde(default)]
    pub admin_token: Option<SecretString>,
    /// HMAC-SHA256 key of the payment provider's purchase webhook; unset: the
    /// webhook refuses every delivery (no purchases can be credited).
    #[serde(default)]
    pub purchase_webhook_secret: Option<SecretString>,
    /// Token lifetime, seconds.
    #[serde(default = "d_jwt_ttl")]
    pub jwt_ttl_secs: u64,
    /// development or production.
    #[serde(default = "d_app_env")]
    pub app_env: AppEnv,
    /// json or pretty.
    #[serde(default = "d_log_format")]
    pub log_format: LogFormat,
    /// Name in logs and metrics.
    #[serde(default = "d_service_name")]
    pub service_name: String,
    /// OTLP/HTTP collector (`http://collector:4318`): spans exported when set.
    #[serde(default)]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// After SIGTERM, how long the server keeps accepting and serving (readiness
    /// already 503, every answer closing its connection) so that load balancers
    /// take it out of rotation before the listener closes, seconds.
    #[serde(default = "d_shutdown_delay")]
    pub shutdown_delay_secs: u64,
    /// How long in-flight requests may finish after the listener closed, seconds.
    #[serde(default = "d_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
    /// How long a readiness check waits for each dependency, milliseconds.
    #[serde(default = "d_ready_timeout")]
    pub ready_timeout_ms: u64,
}

fn d_kafka_brokers() -> String {
    "127.0.0.1:9092".into()
}
fn d_kafka_partitions() -> i32 {
    6
}
fn d_read_preference() -> String {
    "primary".into()
}
fn d_host() -> String {
    "127.0.0.1".into()
}
fn d_redis_url() -> String {
    "redis://localhost:6379".into()
}
fn d_mq() -> MqBackend {
    MqBackend::Memory
}
fn d_rabbitmq_url() -> String {
    "amqp://guest:guest@localhost:5672/%2f".into()
}
fn d_rate_requests() -> u32 {
    120
}
fn d_rate_window() -> u64 {
    60
}
fn d_auth_rate_requests() -> u32 {
    10
}
fn d_ttl_short() -> u64 {
    30
}
fn d_ttl_medium() -> u64 {
    60
}
fn d_ttl_long() -> u64 {
    300
}
fn d_cache_prefix() -> String {
    "dh".into()
}
fn d_mongo_db() -> String {
    "divine_heroes".into()
}
fn d_data_dir() -> PathBuf {
    "./data".into()
}
fn d_store_write_timeout_ms() -> u64 {
    5000
}
fn d_store_cache_mb() -> u64 {
    16
}
fn d_idempotency_ttl_hours() -> u64 {
    24
}
fn d_history_retention_days() -> u64 {
    90
}
fn d_chat_retention_days() -> u64 {
    30
}
fn d_game_data_dir() -> PathBuf {
    "./config".into()
}
fn d_jwt_secret() -> SecretString {
    SecretString::from(DEV_JWT_SECRET)
}
fn d_jwt_ttl() -> u64 {
    86_400
}
fn d_app_env() -> AppEnv {
    AppEnv::Development
}
fn d_log_format() -> LogFormat {
    LogFormat::Pretty
}
fn d_service_name() -> String {
    "divine-heroes".into()
}
fn d_shutdown_delay() -> u64 {
    5
}
fn d_shutdown_timeout() -> u64 {
    20
}
fn d_ready_timeout() -> u64 {
    1000
}

/// Environment variables read, by setting name (upper-cased).
const ENV_KEYS: &[&str] = &[
    "HOST",
    "PORT",
    "REDIS_ENABLED",
    "REDIS_URL",
    "MQ_BACKEND",
    "WORKERS",
    "RABBITMQ_URL",
    "KAFKA_BROKERS",
    "KAFKA_TOPIC",
    "KAFKA_GROUP",
    "KAFKA_PARTITIONS",
    "RATE_LIMIT_REQUESTS",
    "RATE_LIMIT_WINDOW",
    "AUTH_RATE_LIMIT_REQUESTS",
    "TRUSTED_PROXIES",
    "CACHE_TTL_SHORT",
    "CACHE_TTL_MEDIUM",
    "CACHE_TTL_LONG",
    "CACHE_PREFIX",
    "METRICS_ENABLED",
    "MONGO_URL",
    "MONGO_DB",
    "MONGO_READ_PREFERENCE",
    "DATA_DIR",
    "STORE_CACHE_MB",
    "STORE_WRITE_TIMEOUT_MS",
    "IDEMPOTENCY_TTL_HOURS",
    "HISTORY_RETENTION_DAYS",
    "GAME_DATA_DIR",
    "JWT_SECRET",
    "JWT_SECRET_PREVIOUS",
    "JWT_TTL_SECS",
    "ADMIN_HOST",
    "ADMIN_PORT",
    "ADMIN_TOKEN",
    "PURCHASE_WEBHOOK_SECRET",
    "APP_ENV",
    "LOG_FORMAT",
    "SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "SHUTDOWN_DELAY_SECS",
    "SHUTDOWN_TIMEOUT_SECS",
    "READY_TIMEOUT_MS",
];

/// A setting that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl Settings {
    /// The compiled-in defaults alone (no files, no environment), for tests and tools.
    pub fn defaults() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every setting has a default")
    }

    /// Loads the layers. `extra` is the `--config FILE`, if any.
    pub fn load(extra: Option<&Path>) -> Result<Self, SettingsError> {
        let mut fig = Figment::new();
        let default_file = Path::new("config/default.toml");
        if default_file.exists() {
            fig = fig.merge(Toml::file(default_file));
        }
        if let Some(p) = extra {
            if !p.exists() {
                return Err(SettingsError(format!("config file {} does not exist", p.display())));
            }
            fig = fig.merge(Toml::file(p));
        }
        // Empty variables are treated as unset, as a blank line in a ConfigMap means "default".
        let env = Env::raw()
            .only(ENV_KEYS)
            .filter(|k| std::env::var(k.as_str().to_ascii_uppercase()).is_ok_and(|v| !v.is_empty()));
        fig = fig.merge(env);
        let s: Settings = fig.extract().map_err(|e| SettingsError(format!("invalid settings: {e}")))?;
        s.validate()?;
        Ok(s)
    }

    /// How long expiring records are kept.
    pub fn retention(&self) -> crate::store::Retention {
        crate::store::Retention {
            idempotency: std::time::Duration::from_secs(self.idempotency_ttl_hours.saturating_mul(3600)),
            history: std::time::Duration::from_secs(self.history_retention_days.saturating_mul(86_400)),
            chat: std::time::Duration::from_secs(self.chat_retention_days.saturating_mul(86_400)),
        }
    }

    /// Checks values that parse but cannot work, and the production rules.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: String| Err(SettingsError(m));
        if self.rate_limit_requests == 0 || self.auth_rate_limit_requests == 0 {
            return bad("RATE_LIMIT_REQUESTS and AUTH_RATE_LIMIT_REQUESTS must be at least 1".into());
        }
        if self.rate_limit_window == 0 {
            return bad("RATE_LIMIT_WINDOW must be at least 1 second".into());
        }
        if self.cache_ttl_short == 0 || self.cache_ttl_medium == 0 || self.cache_ttl_long == 0 {
            return bad("CACHE_TTL_SHORT, CACHE_TTL_MEDIUM and CACHE_TTL_LONG must be at least 1 second".into());
        }
        if self.jwt_ttl_secs == 0 {
            return bad("JWT_TTL_SECS must be at least 1".into());
        }
        if self.store_write_timeout_ms == 0 {
            return bad("STORE_WRITE_TIMEOUT_MS must be at least 1".into());
        }
        if self.store_cache_mb == 0 {
            return bad("STORE_CACHE_MB must be at least 1".into());
        }
        if self.idempotency_ttl_hours == 0 || self.history_retention_days == 0 || self.chat_retention_days == 0 {
            return bad(
                "IDEMPOTENCY_TTL_HOURS, HISTORY_RETENTION_DAYS and CHAT_RETENTION_DAYS must be at least 1".into()
            );
        }
        if let Some(bad_ip) = self.trusted_proxy_list().err() {
            return bad(format!("TRUSTED_PROXIES: {bad_ip:?} is not an IP address or a CIDR range (10.0.0.0/8)"));
        }
        if self.kafka_partitions < 1 {
            return bad("KAFKA_PARTITIONS must be at least 1".into());
        }
        if self.app_env == AppEnv::Production {
            if let Some(why) = weak_secret(self.jwt_secret.expose_secret()) {
                return bad(format!(
                    "APP_ENV=production refuses this JWT_SECRET ({why}): set it to a random string of at least {MIN_PRODUCTION_SECRET_LEN} characters, e.g. `openssl rand -base64 48`"
                ));
            }
            if let Some(why) = self.jwt_secret_previous.as_ref().and_then(|p| weak_secret(p.expose_secret())) {
                return bad(format!("APP_ENV=production refuses this JWT_SECRET_PREVIOUS ({why})"));
            }
            // A guessable webhook key would let anyone credit paid currency.
            if let Some(why) = self.purchase_webhook_secret.as_ref().and_then(|p| weak_secret(p.expose_secret())) {
                return bad(format!("APP_ENV=production refuses this PURCHASE_WEBHOOK_SECRET ({why})"));
            }
            if self.mongo_url.is_none() {
                return bad("APP_ENV=production refuses the embedded store: set MONGO_URL".into());
            }
        }
        Ok(())
    }

    /// The trusted proxy addresses, or the first entry that is not an IP.
    pub fn trusted_proxy_list(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| s.to_string())
            })
            .collect()
    }

    /// Whether this process runs the relay and consumers.
    pub fn runs_workers(&self, role: Role) -> bool {
        self.workers.unwrap_or(matches!(role, Role::Api | Role::All))
    }

    /// The port for `role`.
    pub fn port_for(&self, role: Role) -> u16 {
        self.port.unwrap_or(role.default_port())
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("app_env", &self.app_env)
            .field("store", &if self.mongo_url.is_some() { "mongodb" } else { "embedded" })
            .field("mongo_db", &self.mongo_db)
            .field("data_dir", &self.data_dir)
            .field("store_cache_mb", &self.store_cache_mb)
            .field("store_write_timeout_ms", &self.store_write_timeout_ms)
            .field("idempotency_ttl_hours", &self.idempotency_ttl_hours)
            .field("history_retention_days", &self.history_retention_days)
            .field("chat_retention_days", &self.chat_retention_days)
            .field("game_data_dir", &self.game_data_dir)
            .field("shutdown_delay_secs", &self.shutdown_delay_secs)
            .field("redis_enabled", &self.redis_enabled)
            .field("mq_backend", &self.mq_backend)
            .field(
                "rate_limit",
                &format!(
                    "{}/{}s (auth {})",
                    self.rate_limit_requests, self.rate_limit_window, self.auth_rate_limit_requests
                ),
            )
            .field("cache_ttl", &(self.cache_ttl_short, self.cache_ttl_medium, self.cache_ttl_long))
            .field("metrics_enabled", &self.metrics_enabled)
            .field("log_format", &self.log_format)
            .field("service_name", &self.service_name)
            .finish_non_exhaustive()
    }
}

/// Why a JWT secret is unfit for production, if it is: the development
/// default, a placeholder (the shipped Secret template's, or any text that says
/// to replace it), too short, or too little entropy (a repeated or
/// small-alphabet string).
pub fn weak_secret(secret: &str) -> Option<&'static str> {
    let lower = secret.to_lowercase();
    if secret == DEV_JWT_SECRET {
        return Some("the development default");
    }
    if ["replace", "change", "example", "placeholder", "secret", "password", "todo"].iter().any(|w| lower.contains(w)) {
        return Some("a placeholder");
    }
    if secret.chars().count() < MIN_PRODUCTION_SECRET_LEN {
        return Some("too short");
    }
    // Shannon entropy of the characters, times the length: a random base64
    // string of 32 characters has about 190 bits; demand at least 128.
    let mut counts = std::collections::HashMap::new();
    for c in secret.chars() {
        *counts.entry(c).or_insert(0u32) += 1;
    }
    let n = secret.chars().count() as f64;
    let per_char: f64 = counts.values().map(|&k| f64::from(k) / n).map(|p| -p * p.log2()).sum();
    // Fewer than 12 distinct characters: a pattern (hex from `openssl rand -hex`
    // has up to 16), whatever its length.
    (per_char * n < 128.0 || counts.len() < 12).then_some("too little entropy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_secrets_must_be_random() {
        assert_eq!(weak_secret(DEV_JWT_SECRET), Some("the development default"));
        assert_eq!(weak_secret("REPLACE-with-at-least-32-random-characters"), Some("a placeholder"));
        assert_eq!(weak_secret("please-change-me-before-going-live-0000"), Some("a placeholder"));
        assert_eq!(weak_secret("shortButRandom9"), Some("too short"));
        assert_eq!(weak_secret(&"ab".repeat(30)), Some("too little entropy"));
        assert_eq!(weak_secret(&"0123456789".repeat(4)), Some("too little entropy"));
        assert_eq!(weak_secret("q7Vt2mXa9LwR4pZk8Jd3Nf6Hs1Yb5Ce0Gu+Ti/Ko"), None);
    }

    /// The purchase webhook's key is held to the same bar in production: the
    /// Secret template's placeholder would let anyone credit paid currency.
    #[test]
    fn production_refuses_a_weak_purchase_webhook_key() {
        let mut s = Settings::defaults();
        s.app_env = AppEnv::Production;
        s.jwt_secret = SecretString::from("q7Vt2mXa9LwR4pZk8Jd3Nf6Hs1Yb5Ce0Gu+Ti/Ko");
        s.mongo_url = Some("mongodb://db".into());
        assert!(s.validate().is_ok(), "no webhook key: purchases simply refused");
        s.purchase_webhook_secret = Some(SecretString::from("REPLACE-with-the-payment-providers-signing-key"));
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("PURCHASE_WEBHOOK_SECRET"), "{e}");
        s.purchase_webhook_secret = Some(SecretString::from("Zr8uKq2Lw5Xn9Ys3Bd7Pf1Hv4Tj6Mc0Ga+Ne/Qo"));
        assert!(s.validate().is_ok());
    }
}
