//! The caller's profile and ledger.

use actix_web::{get, web, HttpResponse};

use crate::platform::auth::AuthPlayer;
use crate::platform::error::AppError;
use crate::roles::views::{cursor, player_view, PageQuery, Paged, PlayerView};
use crate::state::AppState;

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
    let player = who.player();
    Ok(HttpResponse::Ok().json(player_view(&state.data.catalog, &player, state.clock.now())))
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
