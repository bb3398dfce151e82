//! The battle pass: the season's levels, premium unlock and claims.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::game::economy::Balances;
use crate::game::pass::{self, PassTrack, PassView};
use crate::game::player::Player;
use crate::game::quests::Reward;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::AppError;
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::no_body::NoBody;
use crate::roles::views::{respond, write};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::LedgerReason;
use crate::writes::Applied;

/// `GET /api/pass`: the current season; an ended season's pass is closed
/// first (its unclaimed rewards mailed), as any pass write would.
#[utoipa::path(
    get,
    path = "/api/pass",
    responses((status = 200, description = "OK", body = PassView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The battle pass of the running season: xp, level, premium and every level's rewards"
)]
#[get("/api/pass")]
pub async fn get_pass(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let (data, now) = (state.data.clone(), state.clock.now());
    let p = who.record();
    if p.pass.season != data.pass.season_at(now) {
        let d = data.clone();
        let written = write(&state, &who.0, None, move |p: &mut Player| {
            pass::roll(&d.pass, p, now, d.rewards.mail.expiry_days);
            Ok(Applied::new(LedgerReason::PassSeason, format!("pass-season-{}", p.pass.season), pass::view(&d.pass, p)))
        })
        .await?;
        return Ok(HttpResponse::Ok().json(written.view));
    }
    Ok(HttpResponse::Ok().json(pass::view(&data.pass, p)))
}

/// The answer of an unlock or a claim.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PassChangeView {
    /// What was granted (empty for an unlock).
    pub rewards: Vec<Reward>,
    /// The pass after.
    pub season: u32,
    /// Premium unlocked.
    pub premium: bool,
    /// Balances after.
    pub balances_after: Balances,
}

fn change(p: &Player, rewards: Vec<Reward>) -> PassChangeView {
    PassChangeView { rewards, season: p.pass.season, premium: p.pass.premium, balances_after: p.balances }
}

/// `POST /api/pass/unlock`.
#[utoipa::path(
    post,
    path = "/api/pass/unlock",
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = PassChangeView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Unlock the premium track for the running season (980 crystals, once)"
)]
#[post("/api/pass/unlock")]
pub async fn post_unlock(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_body(&());
    let (data, now) = (state.data.clone(), state.clock.now());
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        pass::unlock(&data.pass, p, now, data.rewards.mail.expiry_days)?;
        Ok(Applied::new(LedgerReason::PassUnlock, format!("pass-season-{}", p.pass.season), change(p, vec![])))
    })
    .await?;
    Ok(respond(&written))
}

/// A claim of one level's reward.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PassClaimRequest {
    /// Level (1-50).
    level: u32,
    /// Which track.
    track: PassTrack,
}

/// `POST /api/pass/claim`.
#[utoipa::path(
    post,
    path = "/api/pass/claim",
    request_body = PassClaimRequest,
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = PassChangeView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Claim one reached level's reward on one track, once"
)]
#[post("/api/pass/claim")]
pub async fn post_claim(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<PassClaimRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    let idem = key.for_body(&req);
    let (data, now) = (state.data.clone(), state.clock.now());
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let reward = pass::claim(&data.pass, p, req.level, req.track, now, data.rewards.mail.expiry_days)?;
        let ref_id = format!("pass-season-{}:{}:{:?}", p.pass.season, req.level, req.track);
        let event = DomainEvent::PassClaimed { season: p.pass.season, xp: p.pass.xp };
        Ok(Applied::new(LedgerReason::PassClaim, ref_id, change(p, vec![reward])).with_event(event))
    })
    .await?;
    Ok(respond(&written))
}

/// `POST /api/pass/claim-all`.
#[utoipa::path(
    post,
    path = "/api/pass/claim-all",
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = PassChangeView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Claim every reached, unclaimed reward of both tracks in one write"
)]
#[post("/api/pass/claim-all")]
pub async fn post_claim_all(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_body(&());
    let (data, now) = (state.data.clone(), state.clock.now());
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let rewards = pass::claim_all(&data.pass, p, now, data.rewards.mail.expiry_days)?;
        let event = DomainEvent::PassClaimed { season: p.pass.season, xp: p.pass.xp };
        let ref_id = format!("pass-season-{}:all", p.pass.season);
        Ok(Applied::new(LedgerReason::PassClaim, ref_id, change(p, rewards)).with_event(event))
    })
    .await?;
    Ok(respond(&written))
}
