//! Chat: world, guild and direct channels; sending (checked, masked, rate
//! limited, once per Idempotency-Key), paged history, live Server-Sent Events
//! and reports. Who may use a channel is decided here for every route: the
//! guild channel is the caller's own guild's, a direct channel is with a friend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{get, post, web, HttpResponse};
use futures_util::stream;
use serde::{Deserialize, Serialize};

use crate::game::chat::{self, Channel, ChatMessage};
use crate::game::friends::{book_key, FriendBook};
use crate::platform::auth::AuthPlayer;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::rate_limit::Verdict;
use crate::roles::guild_state;
use crate::roles::views::{respond, write_shared, Paged};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::LedgerReason;
use crate::writes::Applied;

/// Orders the messages this process sends within one millisecond.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(0);

/// Seconds between keep-alive comments on a quiet stream (proxies drop idle connections).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The stored channel the caller means by `name`, if they may use it.
async fn resolve(state: &AppState, who: &str, name: &str) -> Result<String, AppError> {
    match Channel::parse(name)? {
        Channel::World => Ok("world".into()),
        Channel::Guild => {
            let m = guild_state::membership(state, who).await?;
            let gid = m.guild_id.ok_or_else(|| AppError::new(ErrorCode::Forbidden, "you are not in a guild"))?;
            Ok(format!("guild:{gid}"))
        }
        Channel::Direct(other) => {
            let book: FriendBook = state
                .store
                .shared_docs(&[book_key(who)])
                .await?
                .into_iter()
                .next()
                .flatten()
                .map(|d| serde_json::from_value(d.doc))
                .transpose()
                .map_err(|e| AppError::internal(anyhow::anyhow!(e)))?
                .unwrap_or_default();
            // Direct messages are between friends (a block ends the friendship).
            if !book.friends.contains_key(&other) {
                return Err(AppError::new(ErrorCode::Forbidden, "direct messages are between friends"));
            }
            Ok(chat::direct_channel(who, &other))
        }
    }
}

/// A message to send.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// 1-200 characters after trimming; no links or e-mail addresses.
    text: String,
}

/// `POST /api/chat/{channel}`.
#[utoipa::path(
    post,
    path = "/api/chat/{channel}",
    request_body = SendRequest,
    params(("channel" = String, Path, description = "world, guild (the caller's) or dm:<a friend's player id>"), ("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat sends nothing new and returns the first message")),
    responses((status = 200, description = "OK", body = ChatMessage), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Send a message: NFKC-normalised, listed words masked; links and e-mail addresses refused (VALIDATION_FAILED); 10 a minute (RATE_LIMITED); FORBIDDEN when muted, outside the guild, or to a non-friend"
)]
#[post("/api/chat/{channel}")]
pub async fn post_message(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    channel: web::Path<String>,
    body: web::Json<SendRequest>,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let me = who.record();
    if let Some(until) = me.chat_muted_until.filter(|u| *u > now) {
        return Err(AppError::new(ErrorCode::Forbidden, format!("you are muted in chat until {}", until.to_rfc3339())));
    }
    let stored = resolve(&state, &who.0, &channel).await?;
    let text = chat::clean_text(&state.data.chat, &body.text)?;
    let limits = &state.limits;
    if let Verdict::Limited { retry_after } = limits.check_in(&limits.chat, "chat", &who.0, 60).await {
        let secs = retry_after.as_secs() + 1;
        let mut e = AppError::new(
            ErrorCode::RateLimited,
            format!("{} messages a minute; retry in {secs} s", state.data.chat.per_minute),
        );
        e.retry_after = Some(secs);
        return Err(e);
    }
    let message = ChatMessage {
        id: chat::message_id(now, NEXT_SEQ.fetch_add(1, Ordering::Relaxed), &uuid::Uuid::new_v4().simple().to_string()),
        channel: stored,
        player_id: me.id.clone(),
        username: me.username.clone(),
        text,
        at: now,
    };
    let (kept, fresh) = state.store.chat_post(&message, &key.key).await?;
    if !fresh {
        if (kept.channel.as_str(), kept.text.as_str()) != (message.channel.as_str(), message.text.as_str()) {
            return Err(AppError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different message",
            ));
        }
        return Ok(HttpResponse::Ok().insert_header(("Idempotent-Replayed", "true")).json(kept));
    }
    state.chat.publish(&kept).await;
    Ok(HttpResponse::Ok().json(kept))
}

/// `?before=&limit=` of the history.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// A `next_cursor` from the page before.
    before: Option<String>,
    /// 1-100, default 50.
    limit: Option<usize>,
}

/// `GET /api/chat/{channel}`.
#[utoipa::path(
    get,
    path = "/api/chat/{channel}",
    params(("channel" = String, Path, description = "world, guild (the caller's) or dm:<a friend's player id>"), HistoryQuery),
    responses((status = 200, description = "OK", body = Paged<ChatMessage>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "A channel's messages, newest first, in pages (kept 30 days)"
)]
#[get("/api/chat/{channel}")]
pub async fn get_history(
    state: web::Data<AppState>,
    who: AuthPlayer,
    channel: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(AppError::new(ErrorCode::ValidationFailed, "limit must be between 1 and 100"));
    }
    if q.before.as_ref().is_some_and(|b| b.len() > 64 || !b.bytes().all(|c| c.is_ascii_hexdigit())) {
        return Err(AppError::new(ErrorCode::ValidationFailed, "before must be a next_cursor of this list"));
    }
    let stored = resolve(&state, &who.0, &channel).await?;
    let mut items = state.store.chat_history(&stored, q.before.as_deref(), limit + 1).await?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|m| m.id.clone())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Paged { items, next_cursor }))
}

/// One Server-Sent Event frame of a message.
fn frame(m: &ChatMessage) -> String {
    let data = serde_json::to_string(m).unwrap_or_default();
    format!("id: {}\nevent: message\ndata: {data}\n\n", m.id)
}

/// `GET /api/chat/{channel}/stream`.
#[utoipa::path(
    get,
    path = "/api/chat/{channel}/stream",
    params(("channel" = String, Path, description = "world, guild (the caller's) or dm:<a friend's player id>")),
    responses((status = 200, description = "Server-Sent Events: `event: message` with a ChatMessage as data, a comment every 15 s, `event: lagged` when this client fell too far behind (reload the history)", content_type = "text/event-stream", body = String), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Live messages of a channel as Server-Sent Events, from every pod, in order"
)]
#[get("/api/chat/{channel}/stream")]
pub async fn get_stream(
    state: web::Data<AppState>,
    who: AuthPlayer,
    channel: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let stored = resolve(&state, &who.0, &channel).await?;
    let sub = state.chat.subscribe(&stored);
    // Subscribed before the first byte: a client that saw the stream open misses nothing sent after.
    let opened = stream::once(async { Ok::<_, actix_web::Error>(web::Bytes::from_static(b": connected\n\n")) });
    let live = stream::unfold(sub, |mut sub| async move {
        if *sub.closing.borrow() {
            return None;
        }
        let chunk = tokio::select! {
            got = sub.messages.recv() => match got {
                Ok(m) => frame(&m),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => format!("event: lagged\ndata: {n}\n\n"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            },
            () = tokio::time::sleep(KEEP_ALIVE) => ": keep-alive\n\n".to_string(),
            _ = sub.closing.changed() => return None,
        };
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(chunk)), sub))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // nginx: pass each event on as it comes.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures_util::StreamExt::chain(opened, live)))
}

/// A report.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// Why (1-200 characters).
    reason: String,
}

/// A report as kept for operators.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatReport {
    /// The message reported.
    pub message: ChatMessage,
    /// Who reported it.
    pub reporter_id: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// `POST /api/chat/messages/{id}/report`.
#[utoipa::path(
    post,
    path = "/api/chat/messages/{id}/report",
    request_body = ReportRequest,
    params(("id" = String, Path, description = "A message id"), ("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = ChatReport), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Report a message the caller can see (once per message); operators list reports with `divine-heroes chat reports`"
)]
#[post("/api/chat/messages/{id}/report")]
pub async fn post_report(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    id: web::Path<String>,
    body: web::Json<ReportRequest>,
) -> Result<HttpResponse, AppError> {
    let reason = body.reason.trim().to_string();
    if !(1..=200).contains(&reason.chars().count()) {
        return Err(AppError::new(ErrorCode::ValidationFailed, "reason is 1-200 characters"));
    }
    let not_found = || AppError::new(ErrorCode::NotFound, "no such message");
    if id.len() > 64 {
        return Err(not_found());
    }
    let message = state.store.chat_message(&id).await?.ok_or_else(not_found)?;
    // Only a message the caller could read: the world, their guild, their own conversations.
    let visible = match message.channel.split_once(':') {
        None => message.channel == "world",
        Some(("guild", gid)) => guild_state::membership(&state, &who.0).await?.guild_id.as_deref() == Some(gid),
        Some(("dm", pair)) => pair.split(':').any(|p| p == who.0.as_str()),
        Some(_) => false,
    };
    if !visible {
        return Err(not_found());
    }
    let idem = key.for_body(&(&*id, &reason));
    let report_key = chat::report_key(&message.id, &who.0);
    let now = state.clock.now();
    let written = write_shared(&state, &who.0, Some(idem), vec![report_key.clone()], move |p, docs| {
        if docs.get::<ChatReport>(&report_key)?.is_some() {
            return Err(crate::game::error::GameError::Conflict("you reported this message already".into()));
        }
        let report =
            ChatReport { message: message.clone(), reporter_id: p.id.clone(), reason: reason.clone(), at: now };
        docs.put(&report_key, &report)?;
        let event = DomainEvent::ChatReported { message_id: message.id.clone(), author_id: message.player_id.clone() };
        Ok(Applied::new(LedgerReason::ChatReport, message.id.clone(), report).with_event(event))
    })
    .await?;
    Ok(respond(&written))
}
