//! The caller's profile and ledger.

use actix_web::{get, put, web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::game::player::Player;
use crate::game::spending::SpendingControls;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::AppError;
use crate::roles::views::{cursor, player_view, respond, write, PageQuery, Paged, PlayerView};
use crate::state::AppState;
use crate::store::LedgerReason;
use crate::writes::Applied;

/// `GET /api/player`.
#[utoipa::path(
    get,
    path = "/api/player",
    responses((status = 200, description = "OK", body = PlayerView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The caller's profile"
)]
#[get("/api/player")]
#[tracing::instrument(skip_all, fields(player_id = %who.0))]
pub async fn get_player(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(player_view(&state.data.catalog, who.record(), state.clock.now())))
}

/// `GET /api/player/ledger`.
#[utoipa::path(
    get,
    path = "/api/player/ledger",
    params(("limit" = Option<usize>, Query, description = "1-100, default 20"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "OK", body = crate::roles::views::Paged<crate::store::LedgerEntry>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The caller's currency ledger, newest first"
)]
#[get("/api/player/ledger")]
#[tracing::instrument(skip_all, fields(player_id = %who.0))]
pub async fn get_ledger(
    state: web::Data<AppState>,
    who: AuthPlayer,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let (limit, before) = q.parse()?;
    // (A token whose player is gone was refused by the extractor, not answered with an empty page.)
    let page = state.store.ledger(&who.0, limit, before).await?;
    Ok(HttpResponse::Ok().json(Paged { items: page.items, next_cursor: cursor(page.next_before) }))
}

/// The monthly cap on crystals spent on summons.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendingCapRequest {
    /// Crystals a calendar month (UTC), 0-10,000,000; null removes the cap.
    monthly_crystals: Option<i64>,
}

/// `PUT /api/player/spending-cap`: a lower cap applies at once, a higher one or
/// none after 24 hours (idempotent by nature; no key needed).
#[utoipa::path(
    put,
    path = "/api/player/spending-cap",
    request_body = SpendingCapRequest,
    responses((status = 200, description = "OK", body = SpendingControls), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Set the caller's monthly cap on crystals spent on summons {monthly_crystals}"
)]
#[put("/api/player/spending-cap")]
#[tracing::instrument(skip_all, fields(player_id = %who.0))]
pub async fn put_spending_cap(
    state: web::Data<AppState>,
    who: AuthPlayer,
    body: web::Json<SpendingCapRequest>,
) -> Result<HttpResponse, AppError> {
    let cap = body.into_inner().monthly_crystals;
    let now = state.clock.now();
    let written = write(&state, &who.0, None, move |p: &mut Player| {
        p.spending.set_cap(cap, now)?;
        Ok(Applied::new(LedgerReason::SpendingControls, "", p.spending.settled(now)))
    })
    .await?;
    Ok(respond(&written))
}
