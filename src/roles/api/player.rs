//! The caller's profile and ledger.

use actix_web::{web, HttpResponse};

use crate::platform::auth::AuthPlayer;
use crate::platform::error::AppError;
use crate::roles::views::{cursor, load_player, player_view, PageQuery, Paged};
use crate::state::AppState;

/// `GET /api/player`.
#[tracing::instrument(skip_all, fields(player_id = %who.0))]
pub async fn get_player(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let player = load_player(&state, &who.0).await?;
    Ok(HttpResponse::Ok().json(player_view(&state.data.catalog, &player, state.clock.now())))
}

/// `GET /api/player/ledger`.
#[tracing::instrument(skip_all, fields(player_id = %who.0))]
pub async fn get_ledger(
    state: web::Data<AppState>,
    who: AuthPlayer,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let (limit, before) = q.parse()?;
    let page = state.store.ledger(&who.0, limit, before).await?;
    Ok(HttpResponse::Ok().json(Paged { items: page.items, next_cursor: cursor(page.next_before) }))
}
