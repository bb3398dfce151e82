//! The shop: the daily shop, fixed offers and the medal shop.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::game::economy::Balances;
use crate::game::player::Player;
use crate::game::shop::{self, Purchase, ShopView};
use crate::platform::auth::AuthPlayer;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::roles::views::{respond, write};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::LedgerReason;
use crate::writes::Applied;

/// `GET /api/shop`.
#[utoipa::path(
    get,
    path = "/api/shop",
    responses((status = 200, description = "OK", body = ShopView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Today's daily offers, the fixed offers and the medal shop, with prices and what is left"
)]
#[get("/api/shop")]
pub async fn get_shop(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let p = who.record();
    Ok(HttpResponse::Ok().json(shop::view(&state.data.shop, &state.data.catalog, p, state.clock.now())))
}

/// A purchase request (the shop and the guild shop).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyRequest {
    /// An offer id from `GET /api/shop` (or, for the guild shop, `GET /api/guilds/mine/shop`).
    pub(super) offer_id: String,
    /// How many (1-100; a daily offer: 1).
    #[serde(default = "one")]
    pub(super) quantity: u32,
    /// For a medal- or guild-shop shard offer: the owned SSR hero whose shards to buy.
    #[serde(default)]
    pub(super) hero_id: Option<String>,
}

fn one() -> u32 {
    1
}

/// The answer of a purchase.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurchaseView {
    /// Purchase id.
    pub purchase_id: String,
    /// What was bought and paid.
    pub purchase: Purchase,
    /// Balances after.
    pub balances_after: Balances,
}

/// `POST /api/shop/buy`.
#[utoipa::path(
    post,
    path = "/api/shop/buy",
    request_body = BuyRequest,
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = PurchaseView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Buy an offer: the price debited and the item granted at once; a refused purchase (INSUFFICIENT_FUNDS, LIMIT_REACHED, OFFER_EXPIRED) changes nothing"
)]
#[post("/api/shop/buy")]
pub async fn post_buy(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<BuyRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    if req.offer_id.is_empty() || req.offer_id.len() > 64 {
        return Err(AppError::new(ErrorCode::ValidationFailed, "offer_id must be 1-64 characters"));
    }
    let idem = key.for_body(&req);
    let (data, now) = (state.data.clone(), state.clock.now());
    let purchase_id = crate::store::time_ordered_id();
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let purchase =
            shop::buy(&data.shop, &data.catalog, p, &req.offer_id, req.quantity, req.hero_id.as_deref(), now)?;
        let event = DomainEvent::ShopPurchased {
            offer_id: purchase.offer_id.clone(),
            quantity: purchase.quantity,
            currency: purchase.paid.currency,
            amount: purchase.paid.amount,
        };
        let view = PurchaseView { purchase_id: purchase_id.clone(), purchase, balances_after: p.balances };
        Ok(Applied::new(LedgerReason::ShopPurchase, purchase_id.clone(), view).with_event(event))
    })
    .await?;
    Ok(respond(&written))
}
