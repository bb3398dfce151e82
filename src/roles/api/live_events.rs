//! Live events: what runs now and what is coming, and login-event claims.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::game::economy::Balances;
use crate::game::live_events::{self, EventKind, LiveEvent};
use crate::game::player::Player;
use crate::game::quests::Reward;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::AppError;
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::no_body::NoBody;
use crate::roles::views::{respond, write};
use crate::state::AppState;
use crate::store::LedgerReason;
use crate::writes::Applied;

/// An event as the player sees it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventView {
    /// The event as `config/events.toml` defines it.
    pub event: LiveEvent,
    /// A login event's rewards claimed by the caller.
    pub claimed: u32,
    /// A login event's reward is claimable now.
    pub claimable_today: bool,
}

/// `GET /api/events`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventsView {
    /// Running now.
    pub active: Vec<EventView>,
    /// Starting later, soonest first.
    pub upcoming: Vec<EventView>,
}

/// `GET /api/events`.
#[utoipa::path(
    get,
    path = "/api/events",
    responses((status = 200, description = "OK", body = EventsView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Live events running now and coming, with the caller's login-event claims"
)]
#[get("/api/events")]
pub async fn get_events(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let (p, now) = (who.player(), state.clock.now());
    let view = |e: &LiveEvent| {
        let mine = p.login_events.get(&e.id).cloned().unwrap_or_default();
        EventView {
            event: e.clone(),
            claimed: mine.claimed,
            claimable_today: e.kind == EventKind::LoginEvent
                && e.active(now)
                && mine.last_day != Some(now.date_naive())
                && (mine.claimed as usize) < e.rewards.len(),
        }
    };
    let mut upcoming: Vec<&LiveEvent> = state.data.events.event.iter().filter(|e| e.starts_at > now).collect();
    upcoming.sort_by_key(|e| e.starts_at);
    Ok(HttpResponse::Ok().json(EventsView {
        active: state.data.events.active(now).map(view).collect(),
        upcoming: upcoming.into_iter().map(view).collect(),
    }))
}

/// The answer of a login-event claim.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventClaimView {
    /// The event.
    pub event_id: String,
    /// Which of its rewards (1-based).
    pub day: u32,
    /// What it gave.
    pub reward: Reward,
    /// Balances after.
    pub balances_after: Balances,
}

/// `POST /api/events/{id}/claim`.
#[utoipa::path(
    post,
    path = "/api/events/{id}/claim",
    params(("id" = String, Path, description = "A running login event's id"), ("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = EventClaimView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Claim today's reward of a running login event (one a day, each once)"
)]
#[post("/api/events/{id}/claim")]
pub async fn post_event_claim(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    event_id: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let event_id = event_id.into_inner();
    let idem = key.for_body(&event_id);
    let (data, now) = (state.data.clone(), state.clock.now());
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let (day, reward) = live_events::claim_login_reward(&data.events, p, &event_id, now)?;
        let view = EventClaimView { event_id: event_id.clone(), day, reward, balances_after: p.balances };
        Ok(Applied::new(LedgerReason::EventReward, format!("{event_id}:{day}"), view))
    })
    .await?;
    Ok(respond(&written))
}
