//! Idle rewards, the daily login, mail and leaderboards.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::game::economy::Balances;
use crate::game::player::{Mail, Player};
use crate::game::rewards::{self, DailyReward, DailyStatus, IdleAccrual};
use crate::platform::auth::AuthPlayer;
use crate::platform::cache::Tier;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::no_body::NoBody;
use crate::roles::views::{respond, write, PageQuery, Paged};
use crate::state::AppState;
use crate::store::{Board, BoardEntry, LedgerReason};
use crate::writes::Applied;

/// What an idle claim would pay now.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdleView {
    /// Accrued so far (capped).
    pub accrued: IdleAccrual,
    /// Accruing since.
    pub since: DateTime<Utc>,
    /// The cap.
    pub cap_hours: i64,
    /// Campaign stages cleared (they raise the rates).
    pub stages_cleared: usize,
}

/// `GET /api/idle`: what a claim would pay now.
#[utoipa::path(
    get,
    path = "/api/idle",
    responses((status = 200, description = "OK", body = IdleView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Idle rewards accrued since the last claim"
)]
#[get("/api/idle")]
pub async fn get_idle(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let p = who.record();
    let now = state.clock.now();
    Ok(HttpResponse::Ok().json(IdleView {
        accrued: rewards::idle_accrual(&state.data.rewards.idle, p, now),
        since: p.idle_claimed_at,
        cap_hours: state.data.rewards.idle.cap_hours,
        stages_cleared: p.stages_cleared(),
    }))
}

/// The answer of an idle claim.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdleClaimView {
    /// Claim id.
    pub claim_id: String,
    /// What was paid.
    pub paid: IdleAccrual,
    /// Balances after.
    pub balances_after: Balances,
    /// Player level after.
    pub level: u32,
    /// Xp into the level after.
    pub xp: u64,
}

/// `POST /api/idle/claim`: pays the accrual once (concurrent claims pay once).
#[utoipa::path(
    post,
    path = "/api/idle/claim",
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = IdleClaimView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Claim idle rewards (12-hour cap)"
)]
#[post("/api/idle/claim")]
pub async fn post_idle_claim(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_body(&());
    let (data, now) = (state.data.clone(), state.clock.now());
    let claim_id = crate::store::time_ordered_id();
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let paid = rewards::claim_idle(&data.rewards.idle, p, now)?;
        let view =
            IdleClaimView { claim_id: claim_id.clone(), paid, balances_after: p.balances, level: p.level, xp: p.xp };
        Ok(Applied::new(LedgerReason::IdleClaim, claim_id.clone(), view))
    })
    .await?;
    Ok(respond(&written))
}

/// `GET /api/daily-login`: the cycle and today's place in it.
#[utoipa::path(
    get,
    path = "/api/daily-login",
    responses((status = 200, description = "OK", body = DailyStatus), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The 7-day login cycle and today's place in it"
)]
#[get("/api/daily-login")]
pub async fn get_daily(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let p = who.record();
    Ok(HttpResponse::Ok().json(rewards::daily_status(&state.data.rewards.daily_login, p, state.clock.now())))
}

/// The answer of a daily-login claim.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DailyClaimView {
    /// The cycle day paid (1-based).
    pub day: usize,
    /// What it paid.
    pub reward: DailyReward,
    /// Consecutive days claimed.
    pub streak: u32,
    /// Balances after.
    pub balances_after: Balances,
}

/// `POST /api/daily-login/claim`: once per UTC day.
#[utoipa::path(
    post,
    path = "/api/daily-login/claim",
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = DailyClaimView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Claim today's login reward"
)]
#[post("/api/daily-login/claim")]
pub async fn post_daily_claim(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_body(&());
    let (data, now) = (state.data.clone(), state.clock.now());
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let (day, reward) = rewards::claim_daily(&data.rewards.daily_login, p, now)?;
        let view = DailyClaimView { day, reward, streak: p.daily_streak, balances_after: p.balances };
        Ok(Applied::new(LedgerReason::DailyLogin, format!("{}:{}", now.date_naive(), day), view))
    })
    .await?;
    Ok(respond(&written))
}

/// A mail's place in the inbox order (newest first, ties by id), as an opaque cursor.
fn mail_cursor(m: &Mail) -> String {
    format!("{:x}.{}", m.sent_at.timestamp_micros(), m.id)
}

/// `GET /api/mail?limit=&cursor=`: unexpired mail, newest first, paged.
#[utoipa::path(
    get,
    path = "/api/mail",
    params(("limit" = Option<usize>, Query, description = "1-100, default 20"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "OK", body = Paged<Mail>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Unexpired system mail, newest first"
)]
#[get("/api/mail")]
pub async fn get_mail(
    state: web::Data<AppState>,
    who: AuthPlayer,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = q.limit()?;
    let after = match q.raw_cursor() {
        None => None,
        Some(c) => {
            let bad = || AppError::new(ErrorCode::ValidationFailed, "cursor is not one this server issued");
            let (micros, id) = c.split_once('.').ok_or_else(bad)?;
            Some((i64::from_str_radix(micros, 16).map_err(|_| bad())?, id.to_string()))
        }
    };
    let p = who.record();
    let now = state.clock.now();
    let mut mail: Vec<&Mail> = p.mailbox.iter().filter(|m| m.expires_at > now).collect();
    mail.sort_by(|a, b| (b.sent_at, &b.id).cmp(&(a.sent_at, &a.id)));
    let rest = mail.into_iter().filter(|m| match &after {
        None => true,
        Some((micros, id)) => (m.sent_at.timestamp_micros(), &m.id) < (*micros, id),
    });
    let mut items: Vec<Mail> = rest.take(limit + 1).cloned().collect();
    let next_cursor = (items.len() > limit).then(|| mail_cursor(&items[limit - 1]));
    items.truncate(limit);
    Ok(HttpResponse::Ok().json(Paged { items, next_cursor }))
}

/// The answer of a mail claim.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MailClaimView {
    /// The mail, now claimed.
    pub mail: Mail,
    /// Balances after.
    pub balances_after: Balances,
}

/// `POST /api/mail/{id}/claim`: the attachments, once.
#[utoipa::path(
    post,
    path = "/api/mail/{id}/claim",
    params(("id" = String, Path, description = "A mail id"), ("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = MailClaimView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Claim a mail's attachments once"
)]
#[post("/api/mail/{id}/claim")]
pub async fn post_mail_claim(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    mail_id: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let mail_id = mail_id.into_inner();
    let idem = key.for_body(&());
    let now = state.clock.now();
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let mail = rewards::claim_mail(p, &mail_id, now)?;
        Ok(Applied::new(LedgerReason::MailClaim, mail_id.clone(), MailClaimView { mail, balances_after: p.balances }))
    })
    .await?;
    Ok(respond(&written))
}

/// `?limit=` of a leaderboard.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct TopQuery {
    limit: Option<usize>,
}

/// A leaderboard: the top N and the caller's own row.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaderboardView {
    /// Which board.
    pub board: Board,
    /// The top N, best first.
    pub top: Vec<BoardEntry>,
    /// The caller's row (absent until their first scored write arrives).
    pub me: Option<BoardEntry>,
    /// Where it was read: `redis` (sorted sets) or `store`.
    pub source: String,
}

/// `GET /api/leaderboards/{board}`: the top N and the caller's own row.
#[utoipa::path(
    get,
    path = "/api/leaderboards/{board}",
    params(("board" = String, Path, description = "power, campaign, arena or tower (this week)"), ("limit" = Option<usize>, Query, description = "1-100, default 20")),
    responses((status = 200, description = "OK", body = LeaderboardView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Top N of a board and the caller's rank"
)]
#[get("/api/leaderboards/{board}")]
pub async fn get_leaderboard(
    state: web::Data<AppState>,
    who: AuthPlayer,
    board: web::Path<String>,
    q: web::Query<TopQuery>,
) -> Result<HttpResponse, AppError> {
    let board: Board = serde_json::from_value(json!(board.as_str()))
        .map_err(|_| AppError::new(ErrorCode::NotFound, "no such leaderboard (power, campaign, arena, tower)"))?;
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
                let view = LeaderboardView { board, top, me: Some(me), source: "redis".into() };
                return Ok(HttpResponse::Ok().json(view));
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
    Ok(HttpResponse::Ok().json(LeaderboardView { board, top, me, source: "store".into() }))
}
