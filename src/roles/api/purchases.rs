//! The payment provider's purchase webhook: signed deliveries credit crystal
//! packs once per transaction and apply refunds. No client route grants paid
//! currency; this one answers only to the provider's signature.
//!
//! Signature: header `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` of
//! `"<t>." + <raw body>` under `PURCHASE_WEBHOOK_SECRET`; `t` must be within 5
//! minutes of the server's clock (a captured delivery cannot be replayed later).

use actix_web::{post, web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::game::economy::Balances;
use crate::game::player::Player;
use crate::game::purchases::{self, Settlement};
use crate::platform::error::{AppError, ErrorCode};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::{IdempotencyRequest, LedgerReason};
use crate::writes::{Applied, WriteError};

/// How far a delivery's timestamp may be from the server's clock.
const TOLERANCE_SECS: i64 = 300;

/// What the provider says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseEvent {
    /// A pack was paid for.
    Purchase,
    /// A payment was refunded.
    Refund,
}

/// A webhook delivery.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseDelivery {
    /// Purchase or refund.
    pub event: PurchaseEvent,
    /// The provider's transaction id (a refund names the purchase's).
    pub transaction_id: String,
    /// The buyer.
    pub player_id: String,
    /// The pack bought (a purchase).
    #[serde(default)]
    pub pack_id: Option<String>,
}

/// The answer to a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettlementView {
    /// What it did.
    pub settlement: Settlement,
    /// The buyer's balances after.
    pub balances_after: Balances,
}

/// Checks `X-Signature` against the raw body; `Err` says what was wrong.
pub fn verify_signature(secret: &[u8], header: &str, body: &[u8], now_unix: i64) -> Result<(), String> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return Err("X-Signature must be t=<unix seconds>,v1=<hex>".into()) };
    if (now_unix - t).abs() > TOLERANCE_SECS {
        return Err(format!("the signature's timestamp is more than {TOLERANCE_SECS} s from now"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).map_err(|_| "the signature does not match the body".to_string())
}

/// `POST /api/webhooks/purchases`.
#[utoipa::path(
    post,
    path = "/api/webhooks/purchases",
    request_body = PurchaseDelivery,
    params(("X-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.\" + raw body under PURCHASE_WEBHOOK_SECRET>; t within 5 minutes")),
    responses((status = 200, description = "OK", body = SettlementView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "The payment provider's signed delivery: a purchase credits its crystal pack once per transaction id (the first purchase of a pack doubles); a refund takes the crystals back or records a debt"
)]
#[post("/api/webhooks/purchases")]
pub async fn post_purchase_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let unsigned = |why: String| AppError::new(ErrorCode::InvalidSignature, why);
    let Some(secret) = state.settings.purchase_webhook_secret.as_ref() else {
        return Err(unsigned("purchases are not configured here (PURCHASE_WEBHOOK_SECRET is unset)".into()));
    };
    let header = req
        .headers()
        .get("x-signature")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| unsigned("the X-Signature header is required".into()))?;
    let now = state.clock.now();
    verify_signature(secret.expose_secret().as_bytes(), header, &body, now.timestamp()).map_err(unsigned)?;
    let delivery: PurchaseDelivery = serde_json::from_slice(&body)
        .map_err(|e| AppError::new(ErrorCode::ValidationFailed, format!("not a purchase delivery: {e}")))?;
    if delivery.transaction_id.is_empty() || delivery.transaction_id.len() > 128 {
        return Err(AppError::new(ErrorCode::ValidationFailed, "transaction_id must be 1-128 characters"));
    }
    let packs = state.data.shop.packs.clone();
    let (reason, key) = match delivery.event {
        PurchaseEvent::Purchase => (LedgerReason::Purchase, format!("webhook:purchase:{}", delivery.transaction_id)),
        PurchaseEvent::Refund => (LedgerReason::Refund, format!("webhook:refund:{}", delivery.transaction_id)),
    };
    // Concurrent deliveries of one transaction: the idempotency key gives each
    // the first answer; later ones find the transaction on the player record.
    let fingerprint = hex::encode(<Sha256 as sha2::Digest>::digest(&body));
    let idem = IdempotencyRequest { key, fingerprint };
    let d = delivery.clone();
    let writer = state.writer();
    let written = writer
        .mutate(&delivery.player_id, Some(idem), now, move |p: &mut Player| {
            let settlement = match d.event {
                PurchaseEvent::Purchase => {
                    let pack = d
                        .pack_id
                        .as_deref()
                        .ok_or_else(|| crate::game::error::GameError::Invalid("a purchase names its pack_id".into()))?;
                    purchases::credit(&packs, p, &d.transaction_id, pack)?
                }
                PurchaseEvent::Refund => purchases::refund(p, &d.transaction_id)?,
            };
            let event = DomainEvent::PurchaseSettled {
                transaction_id: d.transaction_id.clone(),
                crystals: settlement.crystals,
                debt: settlement.debt,
            };
            let view = SettlementView { settlement, balances_after: p.balances };
            Ok(Applied::new(reason, d.transaction_id.clone(), view).with_event(event))
        })
        .await
        .map_err(|e| match e {
            WriteError::PlayerNotFound => AppError::new(ErrorCode::NotFound, "no such player"),
            e => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(written.view))
}

#[cfg(test)]
mod tests {
    use super::verify_signature;

    /// The worked example of the README (Purchases with real money) verifies,
    /// and fails with another body, another key or a stale timestamp.
    #[test]
    fn the_readme_example_signature_verifies() {
        let body = br#"{"event":"purchase","transaction_id":"pay_7Hc2","player_id":"0193a1b2c3d4e5f6a7b8c9d0e1f2a3b4","pack_id":"crystals_980"}"#;
        let header = "t=1795772400,v1=796ae300ac27579187bcbb5be167cf8481dd68cbef69581cab07aa157739bbad";
        assert_eq!(verify_signature(b"whsec_example_key", header, body, 1_795_772_400 + 60), Ok(()));
        assert!(verify_signature(b"whsec_example_key", header, &body[1..], 1_795_772_400).is_err());
        assert!(verify_signature(b"another_key", header, body, 1_795_772_400).is_err());
        let stale = verify_signature(b"whsec_example_key", header, body, 1_795_772_400 + 301).unwrap_err();
        assert!(stale.contains("300 s"), "{stale}");
    }
}
