//! Routes every role serves: health, metrics, OpenAPI, and the JSON 404.

use actix_web::{get, web, HttpRequest, HttpResponse};
use utoipa_actix_web::AppExt;

use super::Mount;
use crate::platform::config::Role;
use crate::platform::error::{AppError, ErrorCode};
use crate::state::AppState;

/// Mounts health, metrics and OpenAPI.
pub fn configure<C: Mount>(cfg: &mut C) {
    cfg.service(get_live)
        .service(get_ready)
        .service(get_metrics_json)
        .service(get_metrics_prometheus)
        .service(get_openapi);
}

/// The error shape of every failed request (documentation of `AppError`'s body).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorView {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable UPPER_SNAKE code.
    pub code: String,
    /// What a person should read.
    pub message: String,
    /// Structured details (field, needed, has, ...), or null.
    pub details: serde_json::Value,
}

/// The document of this role, built from the mounted routes with what they do
/// not say themselves: title, version, the bearer scheme.
pub fn finish_document(mut doc: utoipa::openapi::OpenApi, role: Role) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
    doc.info = utoipa::openapi::InfoBuilder::new()
        .title(format!("Divine Heroes ({} role)", role.name()))
        .version(env!("CARGO_PKG_VERSION"))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    name_enum_values(components);
    doc
}

/// Gives every string enum explicit member names (`x-enum-varnames`): client
/// generators otherwise derive them from the values and merge `SSR` with `SSR+`
/// (both `SSR`), leaving a client that cannot read one of them.
fn name_enum_values(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::{RefOr, Schema};
    for schema in components.schemas.values_mut() {
        let RefOr::T(Schema::Object(object)) = schema else { continue };
        let Some(values) = &object.enum_values else { continue };
        let names: Option<Vec<String>> = values
            .iter()
            .map(|v| {
                v.as_str().map(|s| {
                    s.replace('+', "_PLUS")
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
                        .collect()
                })
            })
            .collect();
        if let Some(names) = names {
            object.extensions.get_or_insert_with(Default::default).insert("x-enum-varnames".into(), names.into());
        }
    }
}

/// The liveness answer.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LiveView {
    /// Always `alive`.
    pub status: &'static str,
    /// The role this process serves.
    pub role: &'static str,
    /// Build version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_secs: u64,
}

/// `/health/live`: The process answers.
#[utoipa::path(
    get,
    path = "/health/live",
    responses((status = 200, description = "OK", body = LiveView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "The process answers"
)]
#[get("/health/live")]
async fn get_live(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(LiveView {
        status: "alive",
        role: state.role.name(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started_at.elapsed().as_secs(),
    })
}

/// `/health/ready`: Dependencies answer; 503 while draining.
#[utoipa::path(
    get,
    path = "/health/ready",
    responses((status = 200, description = "OK", body = Object), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "Dependencies answer; 503 while draining"
)]
#[get("/health/ready")]
async fn get_ready(state: web::Data<AppState>) -> HttpResponse {
    let (ready, body) = state.readiness().await;
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().insert_header(("Retry-After", "1")).json(body)
    }
}

fn metrics_enabled(state: &AppState) -> Result<(), AppError> {
    if state.settings.metrics_enabled {
        // The pool is read when scraped: it changes with every request.
        if let Some(p) = state.store.pool() {
            use crate::platform::metrics::STORE_CONNECTIONS;
            metrics::gauge!(STORE_CONNECTIONS, "state" => "in_use").set(p.in_use as f64);
            metrics::gauge!(STORE_CONNECTIONS, "state" => "open").set(p.open as f64);
            metrics::gauge!(STORE_CONNECTIONS, "state" => "max").set(p.max as f64);
        }
        Ok(())
    } else {
        Err(AppError::new(ErrorCode::NotFound, "metrics are disabled (METRICS_ENABLED=false)"))
    }
}

/// `/metrics/prometheus`: Metrics in Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics/prometheus",
    responses((status = 200, description = "OK", body = String, content_type = "text/plain"), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "Metrics in Prometheus text format"
)]
#[get("/metrics/prometheus")]
async fn get_metrics_prometheus(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    metrics_enabled(&state)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render()))
}

/// `/metrics`: Metrics as JSON (404 unless METRICS_ENABLED).
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "OK", body = Object), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "Metrics as JSON (404 unless METRICS_ENABLED)"
)]
#[get("/metrics")]
async fn get_metrics_json(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    metrics_enabled(&state)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::platform::metrics::render_json_lines(&state.metrics.render())))
}

/// The OpenAPI 3 document of the routes this role mounts.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    responses((status = 200, description = "OK", body = Object), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "This document"
)]
#[get("/api/openapi.json")]
async fn get_openapi(doc: web::Data<OpenApiJson>) -> Result<HttpResponse, AppError> {
    let json = doc.json().map_err(|e| AppError::internal(anyhow::Error::new(e)))?;
    Ok(HttpResponse::Ok().content_type("application/json").body(json))
}

/// The role's OpenAPI document, built and serialized on its first request and
/// kept as JSON, one copy for every worker: the built document is several MB
/// of maps, its JSON a few hundred KB, and a process nobody asks for it (most
/// pods) holds neither.
pub struct OpenApiJson {
    role: Role,
    json: std::sync::OnceLock<web::Bytes>,
}

impl OpenApiJson {
    /// Nothing built yet.
    #[must_use]
    pub fn new(role: Role) -> Self {
        Self { role, json: std::sync::OnceLock::new() }
    }

    /// The document of the routes this role mounts (`finish_document`), as JSON.
    pub fn json(&self) -> Result<web::Bytes, serde_json::Error> {
        if let Some(json) = self.json.get() {
            return Ok(json.clone());
        }
        let (_, doc) = actix_web::App::new()
            .into_utoipa_app()
            .configure(|cfg| crate::roles::configure(self.role, cfg))
            .split_for_parts();
        let json = web::Bytes::from(serde_json::to_vec(&finish_document(doc, self.role))?);
        Ok(self.json.get_or_init(|| json).clone())
    }
}

/// Answers every unmatched route with the JSON 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::new(ErrorCode::NotFound, format!("no route for {} {}", req.method(), req.path())))
}
