//! Distributed tracing: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans of
//! every request (`request`), store write (`store.mutate`), relay batch
//! (`relay.publish`) and consumed event (`event.consumed`) are exported over
//! OTLP/HTTP (JSON) to `<endpoint>/v1/traces`, batched on a thread of their own.
//! A W3C `traceparent` from the client or nginx becomes the request span's
//! parent, and every event written by a request carries the request's
//! `traceparent`, so the consumer's span joins the request's trace on whichever
//! pod consumes it. Unset: no exporter is built and the spans stay log context.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Whether spans are exported: without an exporter, no trace context is read
/// or written on the request path.
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Flushes the last spans when dropped (at the end of `main`).
pub struct TracingGuard(SdkTracerProvider);

impl Drop for TracingGuard {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// The exporter layer for `endpoint` (`http://collector:4318`), named `service`.
pub fn layer<S>(
    endpoint: &str,
    service: &str,
) -> anyhow::Result<(tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>, TracingGuard)>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service.to_string()).build())
        .build();
    let tracer = provider.tracer("divine-heroes");
    EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok((tracing_opentelemetry::layer().with_tracer(tracer), TracingGuard(provider)))
}

struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(actix_web::http::header::HeaderName::as_str).collect()
    }
}

struct Fields<'a>(&'a HashMap<String, String>);

impl Extractor for Fields<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct Collect(HashMap<String, String>);

impl Injector for Collect {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

/// Makes the request's `traceparent` (if any) the parent of `span`.
pub fn continue_from_headers(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    if exporting() && headers.contains_key("traceparent") {
        let _ = span.set_parent(TraceContextPropagator::new().extract(&Headers(headers)));
    }
}

/// The current span's W3C `traceparent`, when it is part of an exported trace.
pub fn current_traceparent() -> Option<String> {
    if !exporting() {
        return None;
    }
    let mut fields = Collect(HashMap::new());
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut fields);
    fields.0.remove("traceparent")
}

/// Makes `traceparent` (carried by an event) the parent of `span`.
pub fn continue_from(span: &tracing::Span, traceparent: &str) {
    if !exporting() {
        return;
    }
    let fields = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let _ = span.set_parent(TraceContextPropagator::new().extract(&Fields(&fields)));
}
