//! Friends: requests, answers, removal, blocks and daily stamina gifts. Every
//! action writes both players' friend books in one atomic write (the caller's
//! player record with them), so the two sides always agree.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::game::catalog::Catalog;
use crate::game::economy::Balances;
use crate::game::friends::{self, book_key, FriendBook, LastActive, RequestOutcome, Side};
use crate::game::ids::PlayerId;
use crate::game::player::Player;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::no_body::NoBody;
use crate::roles::views::{respond, write_shared};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::{LedgerReason, SharedDocs};
use crate::writes::Applied;

/// A friend as the list shows them: public profile only, never balances.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FriendView {
    /// Player id.
    pub player_id: PlayerId,
    /// Username.
    pub username: String,
    /// Player level.
    pub level: u32,
    /// Team power.
    pub team_power: u64,
    /// How recently they played.
    pub last_active: LastActive,
    /// Friends since.
    pub since: DateTime<Utc>,
    /// Whether today's gift to them is sent.
    pub gift_sent_today: bool,
}

/// A waiting request, as either side sees it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestView {
    /// The other player (for an incoming request, also the request's id).
    pub player_id: PlayerId,
    /// Their username.
    pub username: String,
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// When it lapses unanswered.
    pub expires_at: DateTime<Utc>,
}

/// `GET /api/friends`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FriendsView {
    /// Friends, by username.
    pub friends: Vec<FriendView>,
    /// Requests received and waiting for an answer.
    pub incoming: Vec<RequestView>,
    /// Requests sent and not answered yet.
    pub outgoing: Vec<RequestView>,
    /// Players the caller blocked.
    pub blocked: Vec<PlayerId>,
    /// Gifts waiting to be claimed.
    pub gifts_waiting: usize,
    /// Gifts that can still be claimed today.
    pub claims_left_today: u32,
    /// Most friends a player can have.
    pub max_friends: usize,
}

/// A player found by username.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlayerCard {
    /// Player id.
    pub player_id: PlayerId,
    /// Username.
    pub username: String,
    /// Player level.
    pub level: u32,
    /// Team power.
    pub team_power: u64,
}

fn card(catalog: &Catalog, p: &Player) -> PlayerCard {
    PlayerCard {
        player_id: PlayerId(p.id.clone()),
        username: p.username.clone(),
        level: p.level,
        team_power: p.team_power(catalog),
    }
}

fn request_views(
    rules: &friends::FriendRules,
    m: &std::collections::BTreeMap<String, friends::Request>,
) -> Vec<RequestView> {
    m.iter()
        .map(|(id, r)| RequestView {
            player_id: PlayerId(id.clone()),
            username: r.username.clone(),
            at: r.at,
            expires_at: r.at + chrono::Duration::days(rules.request_days),
        })
        .collect()
}

async fn book_of(state: &AppState, player_id: &str) -> Result<FriendBook, AppError> {
    let docs = state.store.shared_docs(&[book_key(player_id)]).await?;
    let doc = docs.into_iter().next().flatten();
    match doc {
        Some(d) => serde_json::from_value(d.doc).map_err(|e| AppError::internal(anyhow::anyhow!(e))),
        None => Ok(FriendBook::default()),
    }
}

/// `GET /api/friends`.
#[utoipa::path(
    get,
    path = "/api/friends",
    responses((status = 200, description = "OK", body = FriendsView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Friends (public profile and coarse last activity), waiting requests both ways, blocks and gifts"
)]
#[get("/api/friends")]
pub async fn get_friends(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let (rules, now) = (state.data.friends, state.clock.now());
    let mut book = book_of(&state, &who.0).await?;
    book.expire(&rules, now);
    let today = now.date_naive();
    // Up to 50 records, read at once rather than one after another.
    let records = futures_util::future::join_all(book.friends.keys().map(|id| state.store.player_by_id(id))).await;
    let mut list = Vec::with_capacity(book.friends.len());
    for ((id, since), record) in book.friends.iter().zip(records) {
        // A friend whose record is gone (an account deleted) is left out.
        let Some(p) = record? else { continue };
        list.push(FriendView {
            player_id: PlayerId(id.clone()),
            username: p.username.clone(),
            level: p.level,
            team_power: p.team_power(&state.data.catalog),
            last_active: friends::last_active(p.active_on, now),
            since: *since,
            gift_sent_today: book.gifted_on.get(id) == Some(&today),
        });
    }
    list.sort_by_key(|f| f.username.to_lowercase());
    let claimed_today = if book.claims_on == Some(today) { book.claims } else { 0 };
    Ok(HttpResponse::Ok().json(FriendsView {
        friends: list,
        incoming: request_views(&rules, &book.incoming),
        outgoing: request_views(&rules, &book.outgoing),
        blocked: book.blocked.iter().cloned().map(PlayerId).collect(),
        gifts_waiting: book.gifts.len(),
        claims_left_today: rules.claims_per_day.saturating_sub(claimed_today),
        max_friends: rules.max_friends,
    }))
}

/// `?q=` of the player search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// The start of a username (2-20 characters, case-insensitive).
    q: String,
}

/// Most players a search returns.
const SEARCH_LIMIT: usize = 20;

/// `GET /api/friends/search?q=`.
#[utoipa::path(
    get,
    path = "/api/friends/search",
    params(SearchQuery),
    responses((status = 200, description = "OK", body = crate::roles::views::Items<PlayerCard>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Players whose username starts with q (at most 20), public profile only"
)]
#[get("/api/friends/search")]
pub async fn get_search(
    state: web::Data<AppState>,
    _who: AuthPlayer,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, AppError> {
    let q = q.q.trim().to_ascii_lowercase();
    if !(2..=20).contains(&q.chars().count()) {
        return Err(AppError::new(ErrorCode::ValidationFailed, "q must be 2-20 characters"));
    }
    let found = state.store.players_by_username_prefix(&q, SEARCH_LIMIT).await?;
    let items: Vec<PlayerCard> = found.iter().map(|p| card(&state.data.catalog, p)).collect();
    Ok(HttpResponse::Ok().json(crate::roles::views::Items { items }))
}

/// The answer of a friend action: the caller's lists after it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FriendActionView {
    /// The other player.
    pub player_id: PlayerId,
    /// What happened.
    pub outcome: FriendOutcome,
    /// The caller's friends after it.
    pub friends: usize,
    /// The caller's requests waiting for an answer after it.
    pub outgoing: usize,
}

/// What a friend action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FriendOutcome {
    /// A request is waiting for the other player.
    RequestSent,
    /// The two are friends (a request accepted, or both asked).
    Befriended,
    /// A request declined.
    Declined,
    /// A friendship ended.
    Removed,
    /// The other player is blocked.
    Blocked,
    /// A block lifted.
    Unblocked,
    /// Today's gift sent.
    GiftSent,
}

impl FriendOutcome {
    /// The wire name (also the event's `action`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestSent => "request_sent",
            Self::Befriended => "befriended",
            Self::Declined => "declined",
            Self::Removed => "removed",
            Self::Blocked => "blocked",
            Self::Unblocked => "unblocked",
            Self::GiftSent => "gift_sent",
        }
    }
}

/// A write on the caller's and another player's books: loads both, runs
/// `action`, puts both back. The other player's book exists once they are
/// named, so a request to a new player needs no set-up.
async fn between<F>(
    state: &AppState,
    me: &Player,
    other: (String, String),
    idem: Option<crate::store::IdempotencyRequest>,
    reason: LedgerReason,
    action: F,
) -> Result<HttpResponse, AppError>
where
    F: Fn(&mut Side<'_>, &mut Side<'_>) -> Result<FriendOutcome, crate::game::error::GameError> + Send + Sync + 'static,
{
    let (other_id, other_name) = other;
    let (my_key, their_key) = (book_key(&me.id), book_key(&other_id));
    let keys = vec![my_key.clone(), their_key.clone()];
    let written = write_shared(state, &me.id, idem, keys, move |p: &mut Player, docs: &mut SharedDocs| {
        let mut mine: FriendBook = docs.get(&my_key)?.unwrap_or_default();
        let mut theirs: FriendBook = docs.get(&their_key)?.unwrap_or_default();
        let outcome = {
            let mut a = Side { id: &p.id, username: &p.username, book: &mut mine };
            let mut b = Side { id: &other_id, username: &other_name, book: &mut theirs };
            action(&mut a, &mut b)?
        };
        let view = FriendActionView {
            player_id: PlayerId(other_id.clone()),
            outcome,
            friends: mine.friends.len(),
            outgoing: mine.outgoing.len(),
        };
        docs.put(&my_key, &mine)?;
        if my_key != their_key {
            docs.put(&their_key, &theirs)?;
        }
        let event = DomainEvent::FriendsChanged { other_id: other_id.clone(), action: outcome.as_str().into() };
        Ok(Applied::new(reason, other_id.clone(), view).with_event(event))
    })
    .await?;
    Ok(respond(&written))
}

/// Another player by id, as a friend action needs them (404 when unknown).
async fn other_player(state: &AppState, id: &str) -> Result<(String, String), AppError> {
    let p = state.store.player_by_id(id).await?.ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such player"))?;
    Ok((p.id, p.username))
}

/// A friend request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FriendRequestBody {
    /// The username to ask (case-insensitive).
    username: String,
}

const KEY_DOC: &str = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer";

/// `POST /api/friends/requests`.
#[utoipa::path(
    post,
    path = "/api/friends/requests",
    request_body = FriendRequestBody,
    params(("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = FriendActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Ask a player to be friends (lapses after 7 days; 20 waiting at most). If they had asked first, the two become friends at once. FORBIDDEN when they blocked the caller"
)]
#[post("/api/friends/requests")]
pub async fn post_request(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<FriendRequestBody>,
) -> Result<HttpResponse, AppError> {
    let name = body.username.trim().to_ascii_lowercase();
    let them = state
        .store
        .player_by_username(&name)
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no player with that username"))?;
    let idem = key.for_body(&name);
    let rules = state.data.friends;
    let now = state.clock.now();
    between(&state, who.record(), (them.id, them.username), Some(idem), LedgerReason::Friends, move |a, b| {
        Ok(match friends::request(&rules, a, b, now)? {
            RequestOutcome::Sent => FriendOutcome::RequestSent,
            RequestOutcome::Befriended => FriendOutcome::Befriended,
        })
    })
    .await
}

/// `POST /api/friends/requests/{id}/accept`.
#[utoipa::path(
    post,
    path = "/api/friends/requests/{id}/accept",
    params(("id" = String, Path, description = "The requester's player id"), ("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = FriendActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Accept a waiting request (LIMIT_REACHED when either list is full)"
)]
#[post("/api/friends/requests/{id}/accept")]
pub async fn post_accept(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    id: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    answer(state, who, key, id.into_inner(), true).await
}

/// `POST /api/friends/requests/{id}/decline`.
#[utoipa::path(
    post,
    path = "/api/friends/requests/{id}/decline",
    params(("id" = String, Path, description = "The requester's player id"), ("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = FriendActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Decline a waiting request"
)]
#[post("/api/friends/requests/{id}/decline")]
pub async fn post_decline(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    id: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    answer(state, who, key, id.into_inner(), false).await
}

async fn answer(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    id: String,
    accept: bool,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_body(&id);
    let them = other_player(&state, &id).await?;
    let (rules, now) = (state.data.friends, state.clock.now());
    between(&state, who.record(), them, Some(idem), LedgerReason::Friends, move |a, b| {
        friends::answer(&rules, a, b, accept, now)?;
        Ok(if accept { FriendOutcome::Befriended } else { FriendOutcome::Declined })
    })
    .await
}

/// `DELETE /api/friends/{player_id}`.
#[utoipa::path(
    delete,
    path = "/api/friends/{player_id}",
    params(("player_id" = String, Path, description = "The friend's player id")),
    responses((status = 200, description = "OK", body = FriendActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "End a friendship (either side may); gifts waiting between the two lapse"
)]
#[delete("/api/friends/{player_id}")]
pub async fn delete_friend(
    state: web::Data<AppState>,
    who: AuthPlayer,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let them = other_player(&state, &id).await?;
    between(&state, who.record(), them, None, LedgerReason::Friends, |a, b| {
        friends::remove(a, b)?;
        Ok(FriendOutcome::Removed)
    })
    .await
}

/// `POST /api/friends/{player_id}/block`.
#[utoipa::path(
    post,
    path = "/api/friends/{player_id}/block",
    params(("player_id" = String, Path, description = "The player to block"), ("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = FriendActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Block a player: any friendship or request between the two ends, and they can no longer send the caller requests, gifts or direct messages"
)]
#[post("/api/friends/{player_id}/block")]
pub async fn post_block(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    id: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_body(&*id);
    let them = other_player(&state, &id).await?;
    let rules = state.data.friends;
    between(&state, who.record(), them, Some(idem), LedgerReason::Friends, move |a, b| {
        friends::block(&rules, a, b)?;
        Ok(FriendOutcome::Blocked)
    })
    .await
}

/// `DELETE /api/friends/{player_id}/block`.
#[utoipa::path(
    delete,
    path = "/api/friends/{player_id}/block",
    params(("player_id" = String, Path, description = "A player the caller blocked")),
    responses((status = 200, description = "OK", body = FriendActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Lift a block"
)]
#[delete("/api/friends/{player_id}/block")]
pub async fn delete_block(
    state: web::Data<AppState>,
    who: AuthPlayer,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let them = other_player(&state, &id).await?;
    between(&state, who.record(), them, None, LedgerReason::Friends, |a, b| {
        friends::unblock(a.book, b.id)?;
        Ok(FriendOutcome::Unblocked)
    })
    .await
}

/// `POST /api/friends/{player_id}/gift`.
#[utoipa::path(
    post,
    path = "/api/friends/{player_id}/gift",
    params(("player_id" = String, Path, description = "The friend's player id"), ("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = FriendActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Send a friend today's stamina gift (once per friend per UTC day; it costs the sender nothing)"
)]
#[post("/api/friends/{player_id}/gift")]
pub async fn post_gift(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    id: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_body(&*id);
    let them = other_player(&state, &id).await?;
    let now = state.clock.now();
    between(&state, who.record(), them, Some(idem), LedgerReason::FriendGift, move |a, b| {
        friends::gift(a, b, now)?;
        Ok(FriendOutcome::GiftSent)
    })
    .await
}

/// The answer of a gift claim.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GiftClaimView {
    /// Gifts claimed now.
    pub claimed: usize,
    /// Stamina they gave.
    pub stamina: i64,
    /// Gifts still waiting (over today's limit).
    pub gifts_waiting: usize,
    /// Claims left today.
    pub claims_left_today: u32,
    /// The senders, oldest gift first.
    pub from: Vec<PlayerId>,
    /// The days they were sent.
    pub sent_on: Vec<NaiveDate>,
    /// Balances after.
    pub balances_after: Balances,
}

/// `POST /api/friends/gifts/claim`.
#[utoipa::path(
    post,
    path = "/api/friends/gifts/claim",
    params(("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = GiftClaimView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Claim waiting gifts, oldest first, up to 20 a UTC day (stamina may pass its cap)"
)]
#[post("/api/friends/gifts/claim")]
pub async fn post_claim_gifts(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let (rules, now) = (state.data.friends, state.clock.now());
    let idem = key.for_body(&());
    let my_key = book_key(&who.0);
    let written = write_shared(&state, &who.0, Some(idem), vec![my_key.clone()], move |p, docs| {
        let mut book: FriendBook = docs.get(&my_key)?.unwrap_or_default();
        let claimed = friends::claim_gifts(&rules, &mut book, p, now)?;
        let view = GiftClaimView {
            claimed: claimed.len(),
            stamina: rules.gift_stamina * i64::try_from(claimed.len()).unwrap_or(0),
            gifts_waiting: book.gifts.len(),
            claims_left_today: rules.claims_per_day.saturating_sub(book.claims),
            from: claimed.iter().map(|g| PlayerId(g.from.clone())).collect(),
            sent_on: claimed.iter().map(|g| g.on).collect(),
            balances_after: p.balances,
        };
        docs.put(&my_key, &book)?;
        Ok(Applied::new(LedgerReason::FriendGiftClaim, format!("gifts:{}", now.date_naive()), view))
    })
    .await?;
    Ok(respond(&written))
}
