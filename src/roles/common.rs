//! Routes every role serves: health, metrics, OpenAPI, and the JSON 404.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::RouteDoc;
use crate::platform::error::{AppError, ErrorCode};
use crate::state::AppState;

/// Routes of every role.
#[rustfmt::skip]
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc { method: "get", path: "/health/live", summary: "The process answers", auth: false, idempotent: false },
    RouteDoc { method: "get", path: "/health/ready", summary: "Dependencies answer; 503 while draining", auth: false, idempotent: false },
    RouteDoc { method: "get", path: "/metrics", summary: "Metrics as JSON (404 unless METRICS_ENABLED)", auth: false, idempotent: false },
    RouteDoc { method: "get", path: "/metrics/prometheus", summary: "Metrics in Prometheus text format", auth: false, idempotent: false },
    RouteDoc { method: "get", path: "/api/openapi.json", summary: "This document", auth: false, idempotent: false },
];

/// Mounts health, metrics and OpenAPI.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(get_live))
        .route("/health/ready", web::get().to(get_ready))
        .route("/metrics", web::get().to(get_metrics_json))
        .route("/metrics/prometheus", web::get().to(get_metrics_prometheus))
        .route("/api/openapi.json", web::get().to(get_openapi));
}

/// The liveness answer.
#[derive(Debug, Clone, serde::Serialize)]
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

async fn get_live(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(LiveView {
        status: "alive",
        role: state.role.name(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started_at.elapsed().as_secs(),
    })
}

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
        Ok(())
    } else {
        Err(AppError::new(ErrorCode::NotFound, "metrics are disabled (METRICS_ENABLED=false)"))
    }
}

async fn get_metrics_prometheus(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    metrics_enabled(&state)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render()))
}

async fn get_metrics_json(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    metrics_enabled(&state)?;
    Ok(HttpResponse::Ok().json(crate::platform::metrics::render_json(&state.metrics.render())))
}

/// The OpenAPI 3 document of the routes this role mounts.
async fn get_openapi(state: web::Data<AppState>) -> HttpResponse {
    let mut paths: Map<String, Value> = Map::new();
    for r in super::route_docs(state.role) {
        let mut params = Vec::new();
        for seg in r.path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
        }
        if r.idempotent {
            params.push(json!({"name": "Idempotency-Key", "in": "header", "required": true,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}));
        }
        let mut op = json!({
            "summary": r.summary,
            "parameters": params,
            "responses": {"200": {"description": "OK"}, "default": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        });
        if r.auth {
            op["security"] = json!([{"bearer": []}]);
        }
        if r.method == "post" || r.method == "put" {
            op["requestBody"] = json!({"content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method] = op;
    }
    HttpResponse::Ok().json(json!({
        "openapi": "3.0.3",
        "info": {"title": format!("Divine Heroes ({} role)", state.role.name()), "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}}}},
        },
    }))
}

/// Answers every unmatched route with the JSON 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::new(ErrorCode::NotFound, format!("no route for {} {}", req.method(), req.path())))
}
