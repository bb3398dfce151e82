//! Daily quests, activity chests and achievements.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::game::economy::Balances;
use crate::game::player::Player;
use crate::game::quests::{self, QuestReward, QuestsView, Reward};
use crate::platform::auth::AuthPlayer;
use crate::platform::error::AppError;
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::no_body::NoBody;
use crate::roles::views::{respond, write};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::LedgerReason;
use crate::writes::Applied;

/// `GET /api/quests`.
#[utoipa::path(
    get,
    path = "/api/quests",
    responses((status = 200, description = "OK", body = QuestsView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Daily quests, activity chests (daily and weekly) and achievements, with progress"
)]
#[get("/api/quests")]
pub async fn get_quests(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(quests::view(&state.data.quests, who.record(), state.clock.now())))
}

/// The answer of a quest claim.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuestClaimView {
    /// The quest or achievement tier claimed.
    pub quest_id: String,
    /// What it gave.
    pub reward: QuestReward,
    /// Activity points today after the claim.
    pub daily_points: u32,
    /// Activity points this week after the claim.
    pub weekly_points: u32,
    /// Balances after.
    pub balances_after: Balances,
}

/// `POST /api/quests/{id}/claim`.
#[utoipa::path(
    post,
    path = "/api/quests/{id}/claim",
    params(("id" = String, Path, description = "A daily quest id or an achievement tier's id (`<achievement>_<target>`)"), ("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = QuestClaimView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Claim a completed daily quest (activity points) or a reached achievement tier (currency), once"
)]
#[post("/api/quests/{id}/claim")]
pub async fn post_quest_claim(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    quest_id: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let quest_id = quest_id.into_inner();
    let idem = key.for_body(&quest_id);
    let (data, now) = (state.data.clone(), state.clock.now());
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let reward = quests::claim(&data.quests, p, &quest_id, now)?;
        if let QuestReward::ActivityPoints { points } = reward {
            let xp = u64::from(points) * data.pass.xp_per_activity_point;
            crate::game::pass::add_xp(&data.pass, p, xp, now, data.rewards.mail.expiry_days);
        }
        let view = QuestClaimView {
            quest_id: quest_id.clone(),
            reward,
            daily_points: p.quests.points,
            weekly_points: p.quests.weekly_points,
            balances_after: p.balances,
        };
        let points = match reward {
            QuestReward::ActivityPoints { points } => points,
            QuestReward::Currency { .. } => 0,
        };
        let event = DomainEvent::QuestClaimed { quest_id: quest_id.clone(), points };
        Ok(Applied::new(LedgerReason::QuestClaim, format!("{}:{quest_id}", now.date_naive()), view).with_event(event))
    })
    .await?;
    Ok(respond(&written))
}

/// The answer of a chest claim.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChestClaimView {
    /// The chest's points.
    pub points: u32,
    /// What it gave.
    pub reward: Reward,
    /// Balances after.
    pub balances_after: Balances,
}

/// `POST /api/quests/chests/{points}/claim`.
#[utoipa::path(
    post,
    path = "/api/quests/chests/{points}/claim",
    params(("points" = u32, Path, description = "The chest's activity points (a daily or a weekly chest)"), ("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = ChestClaimView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Open an activity chest whose points are reached, once per day (daily) or week (weekly)"
)]
#[post("/api/quests/chests/{points}/claim")]
pub async fn post_chest_claim(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    points: web::Path<u32>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let points = points.into_inner();
    let idem = key.for_body(&points);
    let (data, now) = (state.data.clone(), state.clock.now());
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let reward = quests::open_chest(&data.quests, p, points, now)?;
        let view = ChestClaimView { points, reward, balances_after: p.balances };
        let event = DomainEvent::QuestClaimed { quest_id: format!("chest:{points}"), points: 0 };
        Ok(Applied::new(LedgerReason::ChestClaim, format!("{}:chest:{points}", now.date_naive()), view)
            .with_event(event))
    })
    .await?;
    Ok(respond(&written))
}
