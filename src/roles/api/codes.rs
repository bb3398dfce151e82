//! Redeem codes: a player redeems an operator's code once.

use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::game::codes::{self, CodeRefusal, CodeUse, REDEEM_ATTEMPTS_PER_MINUTE};
use crate::game::economy::Balances;
use crate::game::player::Player;
use crate::game::quests::Reward;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::rate_limit::Verdict;
use crate::roles::views::{respond, write};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::LedgerReason;
use crate::writes::Applied;

/// A redemption request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The code (case-insensitive).
    code: String,
}

/// The answer of a redemption.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RedeemView {
    /// The code, as stored.
    pub code: String,
    /// What it gave.
    pub reward: Vec<Reward>,
    /// Balances after.
    pub balances_after: Balances,
}

/// `POST /api/codes/redeem`.
#[utoipa::path(
    post,
    path = "/api/codes/redeem",
    request_body = RedeemRequest,
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = RedeemView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Redeem a code once per account: CODE_UNKNOWN, CODE_EXPIRED, CODE_USED_UP, CODE_DISABLED and CODE_ALREADY_REDEEMED say why not; 5 attempts a minute"
)]
#[post("/api/codes/redeem")]
pub async fn post_redeem(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<RedeemRequest>,
) -> Result<HttpResponse, AppError> {
    let limits = &state.limits;
    if let Verdict::Limited { retry_after } = limits.check_in(&limits.redeem, "redeem", &who.0, 60).await {
        return Err(AppError::new(
            ErrorCode::RateLimited,
            format!(
                "at most {REDEEM_ATTEMPTS_PER_MINUTE} redemption attempts a minute; retry in {} s",
                retry_after.as_secs() + 1
            ),
        ));
    }
    let code = codes::normalize(&body.code)?;
    let now = state.clock.now();
    let reserved = match state.store.reserve_code_use(&code, &who.0, now).await? {
        CodeUse::Reserved(c) => c,
        CodeUse::Refused(why) => {
            let (code_err, msg) = match why {
                CodeRefusal::Unknown => (ErrorCode::CodeUnknown, "no such code"),
                CodeRefusal::Expired => (ErrorCode::CodeExpired, "this code has expired"),
                CodeRefusal::UsedUp => (ErrorCode::CodeUsedUp, "every use of this code is taken"),
                CodeRefusal::Disabled => (ErrorCode::CodeDisabled, "this code was withdrawn"),
            };
            return Err(AppError::new(code_err, msg));
        }
    };
    let idem = key.for_body(&code);
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let reward = codes::redeem(p, &reserved)?;
        let view = RedeemView { code: reserved.code.clone(), reward, balances_after: p.balances };
        let event = DomainEvent::CodeRedeemed { code: reserved.code.clone() };
        Ok(Applied::new(LedgerReason::CodeRedeemed, reserved.code.clone(), view).with_event(event))
    })
    .await?;
    Ok(respond(&written))
}
