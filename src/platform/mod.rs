//! Cross-cutting services: settings, auth, errors, clock, metrics, rate limits,
//! telemetry, and the shared application state.

pub mod auth;
pub mod cache;
pub mod chat_bus;
pub mod clock;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod kafka;
pub mod leaderboards;
pub mod metrics;
pub mod no_body;
pub mod queue;
pub mod rate_limit;
pub mod telemetry;
pub mod tracing_otlp;
