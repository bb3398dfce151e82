//! The gacha role: banners, rate disclosure, summons, pity and history.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use chrono::{DateTime, Utc};

use super::views::{cursor, load_player, respond, write, PageQuery};
use super::RouteDoc;
use crate::game::data::GameData;
use crate::game::economy::{Balances, Currency};
use crate::game::gacha::banner::Banner;
use crate::game::gacha::engine::{self, PullResult};
use crate::game::gacha::rates;
use crate::game::player::PityState;
use crate::game::player::Player;
use crate::game::rng;
use crate::platform::auth::{AuthPlayer, MaybePlayer};
use crate::platform::cache::Tier;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::metrics::{GACHA_PUBLISHED_RATE, GACHA_PULLS};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::LedgerReason;
use crate::writes::Applied;

/// Routes of the gacha role.
#[rustfmt::skip]
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc { method: "get", path: "/api/gacha/banners", summary: "Active banners, costs, and the caller's pity with a token", auth: false, idempotent: false },
    RouteDoc { method: "get", path: "/api/gacha/banners/{id}/rates", summary: "Rate disclosure: base rates, rules, per-pull curve, long-run rates", auth: false, idempotent: false },
    RouteDoc { method: "post", path: "/api/gacha/summon", summary: "Summon {banner_id, count: 1|10}; returns the receipt", auth: true, idempotent: true },
    RouteDoc { method: "get", path: "/api/gacha/pity", summary: "The caller's pity counters and guarantees", auth: true, idempotent: false },
    RouteDoc { method: "get", path: "/api/gacha/history", summary: "The caller's pulls, newest first", auth: true, idempotent: false },
];

/// Mounts the gacha role.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/gacha")
            .route("/banners", web::get().to(get_banners))
            .route("/banners/{id}/rates", web::get().to(get_rates))
            .route("/summon", web::post().to(post_summon))
            .route("/pity", web::get().to(get_pity))
            .route("/history", web::get().to(get_history)),
    );
}

/// Publishes every banner's consolidated rates as gauges, next to which the
/// observed shares are reported.
pub fn publish_rate_metrics(data: &GameData) {
    for b in data.banners.all() {
        for r in rates::consolidated(b) {
            metrics::gauge!(GACHA_PUBLISHED_RATE, "banner" => b.id.clone(), "category" => r.id.clone())
                .set(r.consolidated_rate);
        }
    }
}

fn record_pulls(banner: &Banner, results: &[PullResult]) {
    // The observed shares next to the published rates are kept by the event
    // consumers from every pod's summons (see workers.rs); here only the counter.
    for r in results {
        metrics::counter!(GACHA_PULLS, "banner" => banner.id.clone(), "category" => r.category.clone()).increment(1);
    }
}

fn banner_or_404<'a>(state: &'a AppState, id: &str) -> Result<&'a Banner, AppError> {
    state.data.banners.get(id).ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no banner {id:?}")))
}

/// `GET /api/gacha/banners`.
async fn get_banners(state: web::Data<AppState>, who: MaybePlayer) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let player = match &who.0 {
        Some(id) => Some(load_player(&state, id).await?),
        None => None,
    };
    let active = state
        .cache
        .get_or_load("banners", "banners:active", Tier::Long, async || {
            let list: Vec<Value> = state
                .data
                .banners
                .all()
                .iter()
                .filter(|b| b.is_active(now))
                .map(|b| {
                    json!({
                        "id": b.id, "name": b.name, "currency": b.currency,
                        "cost_single": b.cost_single, "cost_ten": b.cost_ten,
                        "starts_at": b.starts_at, "ends_at": b.ends_at,
                        "featured": b.featured, "pity_category": b.pity_category, "hard_pity": b.hard_pity,
                    })
                })
                .collect();
            Ok::<_, AppError>(list)
        })
        .await?;
    let items: Vec<Value> = active
        .into_iter()
        .map(|mut v| {
            if let Some(p) = &player {
                let id = v["id"].as_str().unwrap_or_default().to_string();
                v["pity"] = json!(p.pity.get(&id).copied().unwrap_or_default());
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "private, max-age=30")).json(json!({"items": items})))
}

/// `GET /api/gacha/banners/{id}/rates`: the disclosure, from the engine's own tables.
async fn get_rates(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, AppError> {
    let b = banner_or_404(&state, &id)?;
    let curve: Vec<Value> = rates::curve(b)
        .into_iter()
        .map(|c| json!({"pull": c.pull, "probabilities": c.probabilities.into_iter().map(|(k, v)| (k, json!(v))).collect::<serde_json::Map<_, _>>()}))
        .collect();
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=300")).json(json!({
        "banner_id": b.id,
        "name": b.name,
        "currency": b.currency,
        "cost_single": b.cost_single,
        "cost_ten": b.cost_ten,
        "base_rates": b.outcomes,
        "filler": b.filler,
        "pools": b.pools,
        "rules": {
            "pity_category": b.pity_category,
            "hard_pity": b.hard_pity,
            "hard_pity_rule": format!("pull {} without a {} result is a {}; the counter resets on any {} result", b.hard_pity, b.pity_category, b.pity_category, b.pity_category),
            "soft_pity": b.soft_pity,
            "featured": b.featured,
            "featured_share": f64::from(b.featured_share_ppm) / 1e6,
            "featured_guarantee": (!b.featured.is_empty()).then_some("a pity-category hero that was not featured makes the next one featured"),
            "duplicates": "a copy of an owned hero (also a second copy within one summon) becomes shards: SR 10, SSR 20, SSR+ 30, UR 50, UR+ 100",
        },
        "per_pull_curve": curve,
        "consolidated": rates::consolidated(b),
        "featured_expectation": rates::featured_expectation(b),
        "expected_own_currency_returned_per_pull": rates::expected_own_currency_per_pull(b),
    })))
}

/// Summon request body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummonRequest {
    banner_id: String,
    count: u32,
}

/// What a summon cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cost {
    /// The banner's currency.
    pub currency: Currency,
    /// Amount paid.
    pub amount: i64,
}

/// The receipt of a summon, also kept with its idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummonReceipt {
    /// Summon id.
    pub summon_id: String,
    /// The banner pulled on.
    pub banner_id: String,
    /// 1 or 10.
    pub count: u32,
    /// What was paid.
    pub cost: Cost,
    /// Every pull, in order.
    pub results: Vec<PullResult>,
    /// The pity counters after the summon.
    pub pity_after: PityState,
    /// Balances after the summon.
    pub balances_after: Balances,
    /// When.
    pub at: DateTime<Utc>,
}

/// `POST /api/gacha/summon`: one atomic, idempotent summon.
#[tracing::instrument(skip_all, fields(player_id = %who.0, banner = %body.banner_id, count = body.count))]
async fn post_summon(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<SummonRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    let banner = Arc::new(banner_or_404(&state, &req.banner_id)?.clone());
    if banner.cost(req.count).is_none() {
        return Err(AppError::new(ErrorCode::ValidationFailed, format!("count must be 1 or 10, got {}", req.count))
            .with_details(json!({"field": "count"})));
    }
    let idem = key.for_request("POST /api/gacha/summon", &req);
    let (now, seed, count) = (state.clock.now(), rng::fresh_seed(), req.count);
    let summon_id = uuid::Uuid::new_v4().simple().to_string();
    let rule_banner = banner.clone();
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let banner = &*rule_banner;
        let s = engine::summon(p, banner, count, &mut rng::seeded(seed), now)?;
        let history =
            s.results.iter().map(|r| json!({"summon_id": summon_id, "banner_id": banner.id, "result": r})).collect();
        let event = DomainEvent::GachaSummoned {
            summon_id: summon_id.clone(),
            banner_id: banner.id.clone(),
            results: s.results.clone(),
        };
        let receipt = SummonReceipt {
            summon_id: summon_id.clone(),
            banner_id: banner.id.clone(),
            count,
            cost: Cost { currency: banner.currency, amount: s.cost },
            results: s.results,
            pity_after: s.pity,
            balances_after: p.balances,
            at: now,
        };
        Ok(Applied::new(LedgerReason::Summon, summon_id.clone(), receipt).with_history(history).with_event(event))
    })
    .await?;
    if written.fresh {
        record_pulls(&banner, &written.view.results);
    }
    Ok(respond(&written))
}

/// `GET /api/gacha/pity`.
async fn get_pity(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let p = load_player(&state, &who.0).await?;
    let items: Vec<Value> = state
        .data
        .banners
        .all()
        .iter()
        .map(|b| {
            let s = p.pity.get(&b.id).copied().unwrap_or_default();
            json!({
                "banner_id": b.id,
                "pity_category": b.pity_category,
                "pulls_since_pity": s.since_pity,
                "pulls_to_hard_pity": b.hard_pity - s.since_pity.min(b.hard_pity),
                "featured_guaranteed": s.featured_guaranteed,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

/// `GET /api/gacha/history`: every pull, newest first, paged.
async fn get_history(
    state: web::Data<AppState>,
    who: AuthPlayer,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let (limit, before) = q.parse()?;
    let page = state.store.history(&who.0, limit, before).await?;
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|row| {
            let mut v = row.data;
            v["at"] = json!(row.at);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": cursor(page.next_before)})))
}
