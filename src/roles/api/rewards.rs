//! Idle rewards, the daily login, mail and leaderboards.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::game::player::Player;
use crate::game::rewards;
use crate::platform::auth::AuthPlayer;
use crate::platform::cache::Tier;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::state::AppState;
use crate::roles::views::{load_player, run_mutation};
use crate::store::{Board, Effects, Mutation, StoredResponse};

fn effects(reason: &str, ref_id: String, body: serde_json::Value) -> Effects {
    Effects {
        reason: reason.into(),
        ref_id,
        history: vec![],
        battles: vec![],
        response: StoredResponse { status: 200, body },
    }
}

/// `GET /api/idle`: what a claim would pay now.
pub async fn get_idle(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let p = load_player(&state, &who.0).await?;
    let now = state.clock.now();
    let a = rewards::idle_accrual(&state.data.rewards.idle, &p, now);
    Ok(HttpResponse::Ok().json(json!({
        "accrued": a,
        "since": p.idle_claimed_at,
        "cap_hours": state.data.rewards.idle.cap_hours,
        "stages_cleared": p.stages_cleared(),
    })))
}

/// `POST /api/idle/claim`: pays the accrual once (concurrent claims pay once).
pub async fn post_idle_claim(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_request("POST /api/idle/claim", &());
    let (data, now) = (state.data.clone(), state.clock.now());
    let claim_id = uuid::Uuid::new_v4().simple().to_string();
    let op: Mutation = Arc::new(move |p: &mut Player| {
        let a = rewards::claim_idle(&data.rewards.idle, p, now)?;
        let body = json!({"claim_id": claim_id, "paid": a, "balances_after": p.balances, "level": p.level, "xp": p.xp});
        Ok(effects("idle_claim", claim_id.clone(), body))
    });
    run_mutation(&state, &who.0, Some(idem), op).await
}

/// `GET /api/daily-login`: the cycle and today's place in it.
pub async fn get_daily(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let p = load_player(&state, &who.0).await?;
    Ok(HttpResponse::Ok().json(rewards::daily_status(&state.data.rewards.daily_login, &p, state.clock.now())))
}

/// `POST /api/daily-login/claim`: once per UTC day.
pub async fn post_daily_claim(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_request("POST /api/daily-login/claim", &());
    let (data, now) = (state.data.clone(), state.clock.now());
    let op: Mutation = Arc::new(move |p: &mut Player| {
        let (day, reward) = rewards::claim_daily(&data.rewards.daily_login, p, now)?;
        let body = json!({"day": day, "reward": reward, "streak": p.daily_streak, "balances_after": p.balances});
        Ok(effects("daily_login", format!("{}:{}", now.date_naive(), day), body))
    });
    run_mutation(&state, &who.0, Some(idem), op).await
}

/// `GET /api/mail`: unexpired mail, newest first.
pub async fn get_mail(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let p = load_player(&state, &who.0).await?;
    let now = state.clock.now();
    let items: Vec<_> = p.mailbox.iter().rev().filter(|m| m.expires_at > now).collect();
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

/// `POST /api/mail/{id}/claim`: the attachments, once.
pub async fn post_mail_claim(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    mail_id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let mail_id = mail_id.into_inner();
    let idem = key.for_request(&format!("POST /api/mail/{mail_id}/claim"), &());
    let now = state.clock.now();
    let op: Mutation = Arc::new(move |p: &mut Player| {
        let mail = rewards::claim_mail(p, &mail_id, now)?;
        let body = json!({"mail": mail, "balances_after": p.balances});
        Ok(effects("mail_claim", mail_id.clone(), body))
    });
    run_mutation(&state, &who.0, Some(idem), op).await
}

/// `?limit=` of a leaderboard.
#[derive(Debug, serde::Deserialize)]
pub struct TopQuery {
    limit: Option<usize>,
}

/// `GET /api/leaderboards/{board}`: the top N and the caller's own row.
pub async fn get_leaderboard(
    state: web::Data<AppState>,
    who: AuthPlayer,
    board: web::Path<String>,
    q: web::Query<TopQuery>,
) -> Result<HttpResponse, AppError> {
    let board: Board = serde_json::from_value(json!(board.as_str()))
        .map_err(|_| AppError::new(ErrorCode::NotFound, "no such leaderboard (power, campaign, arena)"))?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(AppError::new(ErrorCode::ValidationFailed, "limit must be between 1 and 100"));
    }
    // Redis sorted sets when Redis is on (kept by the event consumers); the store
    // otherwise, or whenever Redis cannot answer.
    if let Some(pool) = &state.redis {
        let read =
            crate::platform::leaderboards::read(pool, &state.settings.cache_prefix, &state.store, board, limit, &who.0);
        match tokio::time::timeout(std::time::Duration::from_millis(500), read).await {
            Ok(Ok((top, Some(me)))) => {
                return Ok(HttpResponse::Ok().json(json!({"board": board, "top": top, "me": me, "source": "redis"})));
            }
            // Not on the board yet (its events are still on their way): the store knows.
            Ok(Ok((_, None))) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "leaderboards: Redis unavailable, reading the store"),
            Err(_) => tracing::warn!("leaderboards: Redis too slow, reading the store"),
        }
    }
    let key = format!("leaderboard:{}:{limit}", board.name());
    let top = state
        .cache
        .get_or_load("leaderboard", &key, Tier::Medium, async || state.store.leaderboard(board, limit).await)
        .await?;
    let me = state.store.rank(board, &who.0).await?;
    Ok(HttpResponse::Ok().json(json!({"board": board, "top": top, "me": me, "source": "store"})))
}
