//! The hero catalog, owned heroes, level-ups, promotions and the team.

use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::game::data::GameData;
use crate::game::ids::HeroId;
use crate::game::player::Player;
use crate::game::progression::{self, LevelUp, Promotion};
use crate::platform::auth::AuthPlayer;
use crate::platform::cache::Tier;
use crate::platform::error::AppError;
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::no_body::NoBody;
use crate::roles::views::{hero_view, respond, write, HeroView, Items};
use crate::state::AppState;
use crate::store::LedgerReason;
use crate::writes::Applied;

/// `GET /api/heroes/catalog`: static data, cacheable, with an ETag.
#[utoipa::path(
    get,
    path = "/api/heroes/catalog",
    responses((status = 200, description = "OK", body = crate::roles::views::Items<crate::game::catalog::HeroDef>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "Every hero's static data (cacheable, ETag)"
)]
#[get("/api/heroes/catalog")]
pub async fn get_catalog(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let body: String = state
        .cache
        .get_or_load("catalog", "catalog", Tier::Long, async || {
            serde_json::to_string(&Items { items: state.data.catalog.all().to_vec() }).map_err(AppError::internal)
        })
        .await?;
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(body.as_bytes())[..12]));
    let cache = ("Cache-Control", format!("public, max-age={}", state.settings.cache_ttl_long));
    let matches = req.headers().get("if-none-match").and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    if matches {
        return Ok(HttpResponse::NotModified().insert_header(("ETag", etag)).insert_header(cache).finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", etag))
        .insert_header(cache)
        .content_type("application/json")
        .body(body))
}

/// `GET /api/heroes`: owned heroes with current stats and power.
#[utoipa::path(
    get,
    path = "/api/heroes",
    responses((status = 200, description = "OK", body = Items<HeroView>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The caller's heroes with current stats and power"
)]
#[get("/api/heroes")]
pub async fn get_heroes(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let p = who.record();
    let items: Vec<_> = p.heroes.keys().filter_map(|h| hero_view(&state.data.catalog, p, h)).collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// Level-up body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelUpRequest {
    levels: u32,
}

/// The answer of a level-up.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LevelUpView {
    /// Levels gained and gold spent.
    pub level_up: LevelUp,
    /// The hero after it.
    pub hero: Option<HeroView>,
    /// Gold left.
    pub gold_after: i64,
}

/// `POST /api/heroes/{hero_id}/level-up`.
#[utoipa::path(
    post,
    path = "/api/heroes/{hero_id}/level-up",
    request_body = LevelUpRequest,
    params(("hero_id" = String, Path, description = "An owned hero"), ("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = LevelUpView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Raise a hero {levels}; gold for all levels or none"
)]
#[post("/api/heroes/{hero_id}/level-up")]
#[tracing::instrument(skip_all, fields(player_id = %who.0, hero_id = %hero_id))]
pub async fn post_level_up(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    hero_id: web::Path<HeroId>,
    body: web::Json<LevelUpRequest>,
) -> Result<HttpResponse, AppError> {
    let hero_id = hero_id.into_inner();
    let levels = body.levels;
    let idem = key.for_body(&body.into_inner());
    let data = state.data.clone();
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let level_up = progression::level_up(p, &data.catalog, &hero_id, levels)?;
        let view = LevelUpView { level_up, hero: hero_view(&data.catalog, p, &hero_id), gold_after: p.balances.gold };
        Ok(Applied::new(LedgerReason::HeroLevelUp, hero_id.as_str(), view))
    })
    .await?;
    Ok(respond(&written))
}

/// The answer of a promotion.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PromoteView {
    /// Stars gained and shards spent.
    pub promotion: Promotion,
    /// The hero after it.
    pub hero: Option<HeroView>,
}

/// `POST /api/heroes/{hero_id}/promote`.
#[utoipa::path(
    post,
    path = "/api/heroes/{hero_id}/promote",
    params(("hero_id" = String, Path, description = "An owned hero"), ("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = PromoteView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Spend shards for the next star"
)]
#[post("/api/heroes/{hero_id}/promote")]
#[tracing::instrument(skip_all, fields(player_id = %who.0, hero_id = %hero_id))]
pub async fn post_promote(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    hero_id: web::Path<HeroId>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let hero_id = hero_id.into_inner();
    let idem = key.for_body(&());
    let data = state.data.clone();
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let promotion = progression::promote(p, &data.catalog, &hero_id)?;
        let view = PromoteView { promotion, hero: hero_view(&data.catalog, p, &hero_id) };
        Ok(Applied::new(LedgerReason::HeroPromotion, hero_id.as_str(), view))
    })
    .await?;
    Ok(respond(&written))
}

/// The team: six slots and their power.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamView {
    /// Hero ids by slot (null: empty).
    pub slots: Vec<Option<String>>,
    /// Sum of the team's power.
    pub power: u64,
}

fn team_view(data: &GameData, p: &Player) -> TeamView {
    TeamView { slots: p.team.clone(), power: p.team_power(&data.catalog) }
}

/// `GET /api/team`.
#[utoipa::path(
    get,
    path = "/api/team",
    responses((status = 200, description = "OK", body = TeamView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The caller's six team slots and team power"
)]
#[get("/api/team")]
pub async fn get_team(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let p = who.record();
    Ok(HttpResponse::Ok().json(team_view(&state.data, p)))
}

/// Team body: six slots of hero ids or null.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamRequest {
    slots: Vec<Option<String>>,
}

/// `PUT /api/team`: replaces the six slots (idempotent by nature; no key needed).
#[utoipa::path(
    put,
    path = "/api/team",
    request_body = TeamRequest,
    responses((status = 200, description = "OK", body = TeamView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Replace the six slots {slots}"
)]
#[put("/api/team")]
pub async fn put_team(
    state: web::Data<AppState>,
    who: AuthPlayer,
    body: web::Json<TeamRequest>,
) -> Result<HttpResponse, AppError> {
    let slots = body.into_inner().slots;
    let data = state.data.clone();
    let written = write(&state, &who.0, None, move |p: &mut Player| {
        progression::set_team(p, slots.clone())?;
        Ok(Applied::new(LedgerReason::Team, "", team_view(&data, p)))
    })
    .await?;
    Ok(respond(&written))
}
