//! Logging setup: JSON lines in production, readable text in development.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use super::config::LogFormat;

/// The default filter: `info`, without the HTTP parser's reports of malformed
/// requests, which it logs as errors although they are the client's (each gets a
/// 400); `RUST_LOG=info,actix_http::h1::dispatcher=debug` shows them.
pub const DEFAULT_LOG_FILTER: &str = "info,actix_http::h1::dispatcher=off";

/// Installs the global subscriber once; later calls (tests) are ignored.
/// `RUST_LOG` overrides [`DEFAULT_LOG_FILTER`].
pub fn init_telemetry(format: LogFormat) {
    let _ = init_with_tracing(format, None, "");
}

/// As [`init_telemetry`], and with `otlp_endpoint` set, spans exported over
/// OTLP as `service` (see [`super::tracing_otlp`]); keep the guard until exit.
pub fn init_with_tracing(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    service: &str,
) -> anyhow::Result<Option<super::tracing_otlp::TracingGuard>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let logs = match format {
        LogFormat::Json => fmt::layer().with_target(false).json().flatten_event(true).with_current_span(true).boxed(),
        LogFormat::Pretty => fmt::layer().with_target(false).compact().boxed(),
    };
    let (spans, guard) = match otlp_endpoint {
        Some(endpoint) => {
            let (layer, guard) = super::tracing_otlp::layer(endpoint, service)?;
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry().with(filter).with(logs).with(spans).try_init();
    Ok(guard)
}

/// Lets a repeated warning through at most once per period, counting the ones
/// it held back, so that an outage writes a few lines rather than one per request.
pub struct Throttle {
    every: std::time::Duration,
    /// When the last one was let through, and how many were held back since.
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl Throttle {
    /// At most one per `every`.
    pub const fn new(every: std::time::Duration) -> Self {
        Self { every, state: std::sync::Mutex::new((None, 0)) }
    }

    /// `Some(held back since the last one)` when this occurrence should be logged.
    pub fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        match s.0 {
            Some(last) if now.duration_since(last) < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                let held = s.1;
                *s = (Some(now), 0);
                Some(held)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Throttle;
    use std::time::Duration;

    #[test]
    fn one_warning_per_period_with_the_count_held_back() {
        let t = Throttle::new(Duration::from_millis(50));
        assert_eq!(t.allow(), Some(0));
        assert_eq!((t.allow(), t.allow(), t.allow()), (None, None, None));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.allow(), Some(3), "the next one tells how many were held back");
        assert_eq!(t.allow(), None);
    }
}
