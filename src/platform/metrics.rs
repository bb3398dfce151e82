//! Metrics: one process-wide Prometheus recorder, the request observer that
//! records them with bounded labels, and the JSON view of the same figures.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{json, Value};
use tracing::Instrument;

use super::config::Role;

/// Requests answered below 400.
pub const REQUEST_SUCCESS: &str = "divine_heroes_request_success";
/// Requests answered with 400 or above.
pub const REQUEST_ERROR: &str = "divine_heroes_request_error";
/// Request latency histogram, milliseconds.
pub const REQUEST_DURATION_MS: &str = "divine_heroes_request_duration_ms";
/// Cache hits.
pub const CACHE_HIT: &str = "divine_heroes_cache_hit";
/// Cache misses.
pub const CACHE_MISS: &str = "divine_heroes_cache_miss";
/// Cache lookups or writes that failed (Redis down or slow).
pub const CACHE_ERRORS: &str = "divine_heroes_cache_errors_total";
/// Chat messages not published to Redis, and Redis subscriptions lost.
pub const CHAT_BUS_ERRORS: &str = "divine_heroes_chat_bus_errors_total";
/// Rate-limit checks decided in process because the shared (Redis) limiter did not answer.
pub const RATE_LIMIT_FALLBACK: &str = "divine_heroes_rate_limit_fallback_total";
/// Requests refused by a rate limit.
pub const RATE_LIMIT_EXCEEDED: &str = "divine_heroes_rate_limit_exceeded";
/// Summons by banner and outcome category.
pub const GACHA_PULLS: &str = "divine_heroes_gacha_pulls_total";
/// Observed share of each category per banner since the process started.
pub const GACHA_OBSERVED_RATE: &str = "divine_heroes_gacha_observed_rate";
/// Published consolidated rate of each category per banner.
pub const GACHA_PUBLISHED_RATE: &str = "divine_heroes_gacha_published_rate";
/// Battles fought, by mode and winner.
pub const BATTLES: &str = "divine_heroes_battles_total";
/// Battle requests (fights, sweeps, challenges) being served now, by role: the
/// "battle queue" of the operators' guide.
pub const BATTLES_IN_FLIGHT: &str = "divine_heroes_battles_in_flight";
/// Events moved from the outbox to the queue.
pub const EVENTS_RELAYED: &str = "divine_heroes_events_relayed_total";
/// Published events published again (after a start, a broker reset, or overdue).
pub const EVENTS_REPLAYED: &str = "divine_heroes_events_replayed_total";
/// Events handled by the consumers, applied or skipped as duplicates.
pub const EVENTS_CONSUMED: &str = "divine_heroes_events_consumed_total";
/// Events waiting: in the outbox (not yet published), unconsumed (published, not
/// yet applied, from the store), and in the broker (lag plus in flight, NaN
/// while the broker cannot tell).
pub const QUEUE_DEPTH: &str = "divine_heroes_queue_depth";
/// Age of the last event a consumer handled.
pub const CONSUMER_LAG_SECONDS: &str = "divine_heroes_consumer_lag_seconds";
/// Store operation latency, seconds (our own names follow Prometheus conventions;
/// the six promised in the operators' guide keep their names as promised).
pub const STORE_SECONDS: &str = "divine_heroes_store_operation_seconds";
/// Commits of the embedded store's writer: each makes one fsync for a group of writes.
pub const STORE_COMMITS: &str = "divine_heroes_store_commits_total";
/// Writes (jobs) in those commits: over `STORE_COMMITS`, the mean group size.
pub const STORE_GROUPED_WRITES: &str = "divine_heroes_store_grouped_writes_total";
/// The store's connection pool (MongoDB): `state` in_use, open and max; in_use
/// at max means requests queue for a connection.
pub const STORE_CONNECTIONS: &str = "divine_heroes_store_connections";

const LATENCY_BUCKETS_MS: &[f64] =
    &[1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0];
const LATENCY_BUCKETS_SECONDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once per process) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION_MS.into()), LATENCY_BUCKETS_MS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STORE_SECONDS.into()), LATENCY_BUCKETS_SECONDS))
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); ours still renders its own.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            // Make every promised name present from the first scrape.
            for name in [REQUEST_SUCCESS, REQUEST_ERROR, CACHE_HIT, CACHE_MISS, RATE_LIMIT_EXCEEDED] {
                metrics::counter!(name).absolute(0);
            }
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(REQUEST_SUCCESS, "Requests answered with a status below 400");
    describe_counter!(REQUEST_ERROR, "Requests answered with a status of 400 or above");
    describe_histogram!(REQUEST_DURATION_MS, Unit::Milliseconds, "Request latency in milliseconds");
    describe_counter!(CACHE_HIT, "Cache lookups answered from the cache");
    describe_counter!(CACHE_MISS, "Cache lookups that went to the store");
    describe_counter!(RATE_LIMIT_EXCEEDED, "Requests refused by a rate limit");
    describe_counter!(CACHE_ERRORS, "Cache operations that failed and fell through to the store");
    describe_counter!(CHAT_BUS_ERRORS, "Chat messages not published through Redis and Redis subscriptions lost");
    describe_counter!(GACHA_PULLS, "Gacha pulls by banner and outcome category");
    describe_gauge!(GACHA_OBSERVED_RATE, "Observed share of each outcome per banner since start");
    describe_gauge!(GACHA_PUBLISHED_RATE, "Published long-run rate of each outcome per banner");
    describe_counter!(BATTLES, "Battles fought, by mode and winner");
    describe_gauge!(BATTLES_IN_FLIGHT, "Battle requests being served now (fights, sweeps, challenges), by role");
    describe_counter!(EVENTS_RELAYED, "Events moved from the outbox to the queue");
    describe_counter!(RATE_LIMIT_FALLBACK, "Rate-limit checks decided in process because Redis did not answer");
    describe_counter!(EVENTS_REPLAYED, "Published events published again, by reason (startup, reset, overdue)");
    describe_counter!(EVENTS_CONSUMED, "Events handled by the consumers (applied or duplicate)");
    describe_gauge!(
        QUEUE_DEPTH,
        "Events waiting: outbox (unpublished), unconsumed (published, not applied), broker (NaN when unknown)"
    );
    describe_gauge!(CONSUMER_LAG_SECONDS, "Age of the last event a consumer handled, seconds");
    describe_histogram!(STORE_SECONDS, Unit::Seconds, "Store operation latency in seconds");
    describe_counter!(STORE_COMMITS, "Durable commits of the embedded store (one fsync each)");
    describe_counter!(
        STORE_GROUPED_WRITES,
        "Writes carried by the embedded store's commits (over commits: group size)"
    );
}

/// Probes and scrapes: neither counted nor logged, so they cannot drown real traffic.
fn is_probe(path: &str) -> bool {
    path.starts_with("/health/") || path.starts_with("/metrics")
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Request id, request span, access log and request metrics, around every request.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let probe = is_probe(req.path());
    let role = req.app_data::<web::Data<Role>>().map_or("unknown", |r| r.name());
    let method = req.method().to_string();
    let span = tracing::info_span!("request", %request_id, role, %method, route = tracing::field::Empty);
    super::tracing_otlp::continue_from_headers(&span, req.headers());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
    }
    if !probe {
        let labels = [
            ("role", role.to_string()),
            ("route", route.clone()),
            ("method", method.clone()),
            ("status", status_class(status).to_string()),
        ];
        let name = if status < 400 { REQUEST_SUCCESS } else { REQUEST_ERROR };
        metrics::counter!(name, &labels).increment(1);
        metrics::histogram!(REQUEST_DURATION_MS, &labels[..3]).record(ms);
        span.record("route", route.as_str());
        let player = res.request().extensions().get::<crate::platform::auth::VerifiedPlayer>().map(|p| p.0.clone());
        // (An absent player records no field.)
        span.in_scope(|| {
            tracing::info!(status, latency_ms = format!("{ms:.2}"), player_id = player.as_deref(), "request");
        });
    }
    Ok(res)
}

/// Counts one battle request in [`BATTLES_IN_FLIGHT`] while it lives.
pub struct BattleInFlight(&'static str);

impl BattleInFlight {
    /// Starts counting a battle request served by `role`.
    pub fn start(role: &'static str) -> Self {
        metrics::gauge!(BATTLES_IN_FLIGHT, "role" => role).increment(1.0);
        Self(role)
    }
}

impl Drop for BattleInFlight {
    fn drop(&mut self) {
        metrics::gauge!(BATTLES_IN_FLIGHT, "role" => self.0).decrement(1.0);
    }
}

/// The request id, for handlers that want it in logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The Prometheus text as JSON: `{name: [{labels: {...}, value}]}`, histograms as
/// their `_bucket`, `_sum` and `_count` series.
pub fn render_json(text: &str) -> Value {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = serde_json::Map::new();
        for pair in split_labels(labels) {
            if let Some((k, v)) = pair.split_once('=') {
                map.insert(k.to_string(), Value::String(v.trim_matches('"').to_string()));
            }
        }
        let value: Value = value.parse::<f64>().map_or(Value::Null, |v| json!(v));
        out.entry(name.to_string()).or_default().push(json!({"name": name, "labels": map, "value": value}));
    }
    json!(out)
}

/// [`render_json`]'s document laid out one series per line (each naming its
/// metric), so that `curl .../metrics | grep divine_heroes_queue_depth` shows
/// every series of it with its labels and value. Still one JSON document.
pub fn render_json_lines(text: &str) -> String {
    use std::fmt::Write as _;
    let doc = render_json(text);
    let mut out = String::from("{\n");
    if let Some(metrics) = doc.as_object() {
        for (i, (name, series)) in metrics.iter().enumerate() {
            let _ = writeln!(out, "{}: [", json!(name));
            let series = series.as_array().map(Vec::as_slice).unwrap_or_default();
            for (j, one) in series.iter().enumerate() {
                let comma = if j + 1 < series.len() { "," } else { "" };
                let _ = writeln!(out, "  {one}{comma}");
            }
            out.push_str(if i + 1 < metrics.len() { "],\n" } else { "]\n" });
        }
    }
    out.push_str("}\n");
    out
}

/// Splits `a="x",b="y,z"` on the commas outside quotes.
fn split_labels(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        parts.push(&s[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_becomes_json() {
        let text = "# HELP x y\n# TYPE a counter\na{role=\"api\",route=\"/api/x,y\"} 3\nb 1.5\n";
        let j = render_json(text);
        assert_eq!(j["a"][0]["labels"]["route"], "/api/x,y");
        assert_eq!(j["a"][0]["value"], 3.0);
        assert_eq!(j["b"][0]["value"], 1.5);
        // Laid out for grep: each series on its own line, naming its metric.
        let text = "a{role=\"api\"} 3\na{role=\"gacha\"} 4\nb 1.5\n";
        let lines = render_json_lines(text);
        let doc: serde_json::Value = serde_json::from_str(&lines).expect("still one JSON document");
        assert_eq!(doc, render_json(text));
        let found: Vec<&str> = lines.lines().filter(|l| l.contains("\"name\":\"a\"")).collect();
        assert_eq!(found.len(), 2, "{lines}");
        assert!(found[1].contains("gacha") && found[1].contains('4'), "{lines}");
    }
}
