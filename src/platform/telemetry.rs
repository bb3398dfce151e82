//! Logging setup: JSON lines in production, readable text in development.

use tracing_subscriber::{fmt, EnvFilter};

use super::config::LogFormat;

/// Installs the global subscriber once; later calls (tests) are ignored.
/// `RUST_LOG` overrides the default level of `info`.
pub fn init_telemetry(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
