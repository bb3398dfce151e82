//! Guilds: founding, search, joining, leaving, requests, ranks, donations, the
//! guild shop and the boss's state. Each action is one atomic write of the
//! caller's record and every guild document it touches (the guild, the
//! memberships involved, the name's claim), each guarded by the version read.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::game::economy::Balances;
use crate::game::error::GameError;
use crate::game::guilds::{
    self, keys, Departure, Donation, DonationTier, Guild, JoinOutcome, JoinPolicy, Member, MemberAction, Membership,
    Rank,
};
use crate::game::ids::PlayerId;
use crate::game::player::Player;
use crate::game::shop::Purchase;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::no_body::NoBody;
use crate::roles::guild_state::{self, boss_view, guild_in, is_officer, still_member, BossView};
use crate::roles::views::{respond, write_shared, Items};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::{IdempotencyRequest, LedgerReason, SharedDocs};
use crate::writes::Applied;

const KEY_DOC: &str = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer";

/// A guild in a search.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GuildCard {
    /// Guild id.
    pub guild_id: String,
    /// Name.
    pub name: String,
    /// Tag.
    pub tag: String,
    /// Level.
    pub level: u32,
    /// Members now.
    pub members: usize,
    /// Members it can hold at its level.
    pub capacity: usize,
    /// Open or by approval.
    pub join_policy: JoinPolicy,
}

/// A member as the guild page lists them.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    /// Player id.
    pub player_id: PlayerId,
    /// Username.
    pub username: String,
    /// Rank.
    pub rank: Rank,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

/// A join request as officers see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JoinRequestView {
    /// The applicant (also the request's id).
    pub player_id: PlayerId,
    /// Their username.
    pub username: String,
    /// When they asked.
    pub at: DateTime<Utc>,
}

/// A guild's page.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GuildView {
    /// Summary.
    pub guild: GuildCard,
    /// Xp into the level.
    pub xp: u64,
    /// Xp the next level needs (0 at the top level).
    pub xp_to_next: u64,
    /// Members, leader first, then officers, then by joining.
    pub members: Vec<MemberView>,
    /// Waiting join requests (shown to its officers and leader only).
    pub requests: Vec<JoinRequestView>,
    /// The caller's rank, when a member.
    pub my_rank: Option<Rank>,
}

fn card(table: &guilds::GuildTable, g: &Guild) -> GuildCard {
    GuildCard {
        guild_id: g.id.clone(),
        name: g.name.clone(),
        tag: g.tag.clone(),
        level: g.level,
        members: g.members.len(),
        capacity: table.capacity(g.level),
        join_policy: g.join_policy,
    }
}

fn guild_view(table: &guilds::GuildTable, g: &Guild, caller: &str) -> GuildView {
    let mut members: Vec<(&String, &Member)> = g.members.iter().collect();
    members.sort_by_key(|(id, m)| (m.rank, m.joined_at, (*id).clone()));
    let officer = is_officer(g, caller);
    GuildView {
        guild: card(table, g),
        xp: g.xp,
        xp_to_next: if g.level >= table.max_level { 0 } else { table.xp_per_level * u64::from(g.level) },
        members: members
            .into_iter()
            .map(|(id, m)| MemberView {
                player_id: PlayerId(id.clone()),
                username: m.username.clone(),
                rank: m.rank,
                joined_at: m.joined_at,
            })
            .collect(),
        requests: if officer {
            g.requests
                .iter()
                .map(|(id, r)| JoinRequestView {
                    player_id: PlayerId(id.clone()),
                    username: r.username.clone(),
                    at: r.at,
                })
                .collect()
        } else {
            Vec::new()
        },
        my_rank: g.members.get(caller).map(|m| m.rank),
    }
}

/// A new guild.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGuildRequest {
    /// 3-20 characters, unique case-insensitively.
    name: String,
    /// 2-5 letters (upper-cased).
    tag: String,
    /// Open, or by approval.
    join_policy: JoinPolicy,
}

/// The answer of a guild action: the guild after it and the caller's balances.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GuildActionView {
    /// What happened.
    pub action: String,
    /// The guild after it (absent once dissolved).
    pub guild: Option<GuildView>,
    /// The caller's balances after it.
    pub balances_after: Balances,
}

fn event(guild_id: &str, action: &str) -> DomainEvent {
    DomainEvent::GuildChanged { guild_id: guild_id.to_string(), action: action.to_string() }
}

/// One guild write: the caller's membership, the guild and `extra` keys, then
/// `rule`, then the answer with the guild as it is left.
async fn guild_write<F>(
    state: &AppState,
    who: &str,
    idem: Option<IdempotencyRequest>,
    guild_id: &str,
    extra: Vec<String>,
    reason: LedgerReason,
    rule: F,
) -> Result<HttpResponse, AppError>
where
    F: Fn(&mut Player, &mut Membership, &mut Guild, &mut SharedDocs) -> Result<String, GameError>
        + Send
        + Sync
        + 'static,
{
    let (me_key, g_key) = (keys::member(who), keys::guild(guild_id));
    let mut all = vec![me_key.clone(), g_key.clone()];
    all.extend(extra);
    let (table, gid) = (state.data.guilds.clone(), guild_id.to_string());
    let written = write_shared(state, who, idem, all, move |p: &mut Player, docs: &mut SharedDocs| {
        let mut me: Membership = docs.get(&me_key)?.unwrap_or_default();
        let mut g = guild_in(docs, &g_key)?;
        let action = rule(p, &mut me, &mut g, docs)?;
        docs.put(&me_key, &me)?;
        let kept = if action == "dissolved" {
            docs.remove(&g_key)?;
            docs.remove(&keys::name(&guilds::name_lower(&g.name)))?;
            None
        } else {
            docs.put(&g_key, &g)?;
            Some(guild_view(&table, &g, &p.id))
        };
        let view = GuildActionView { action: action.clone(), guild: kept, balances_after: p.balances };
        Ok(Applied::new(reason, gid.clone(), view).with_event(event(&gid, &action)))
    })
    .await?;
    Ok(respond(&written))
}

/// `POST /api/guilds`.
#[utoipa::path(
    post,
    path = "/api/guilds",
    request_body = CreateGuildRequest,
    params(("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = GuildActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Found a guild for 100,000 gold and lead it (CONFLICT: the name is taken, or the caller is in a guild or within 24 h of leaving one)"
)]
#[post("/api/guilds")]
pub async fn post_create(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<CreateGuildRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    let idem = key.for_body(&req);
    let lower = guilds::name_lower(&req.name);
    let (me_key, name_key) = (keys::member(&who.0), keys::name(&lower));
    // Chosen once, outside the rule: a retried transaction names the same guild.
    let gid = crate::store::time_ordered_id();
    let g_key = keys::guild(&gid);
    let (table, now) = (state.data.guilds.clone(), state.clock.now());
    let keys = vec![me_key.clone(), name_key.clone(), g_key.clone()];
    let written = write_shared(&state, &who.0, Some(idem), keys, move |p: &mut Player, docs: &mut SharedDocs| {
        let mut me: Membership = docs.get(&me_key)?.unwrap_or_default();
        let taken = docs.get::<serde_json::Value>(&name_key)?.is_some() || docs.get::<Guild>(&g_key)?.is_some();
        let (name, tag) = (req.name.as_str(), req.tag.as_str());
        let g = guilds::create(&table, p, &mut me, taken, &gid, (name, tag), req.join_policy, now)?;
        docs.put(&me_key, &me)?;
        docs.put(&name_key, &serde_json::json!({"guild_id": gid}))?;
        docs.put(&g_key, &g)?;
        let view = GuildActionView {
            action: "created".into(),
            guild: Some(guild_view(&table, &g, &p.id)),
            balances_after: p.balances,
        };
        Ok(Applied::new(LedgerReason::GuildCreate, gid.clone(), view).with_event(event(&gid, "created")))
    })
    .await?;
    Ok(respond(&written))
}

/// `?q=` of the guild search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GuildSearch {
    /// The start of a guild's name (case-insensitive; empty: the first guilds by name).
    #[serde(default)]
    q: String,
}

/// `GET /api/guilds?q=`.
#[utoipa::path(
    get,
    path = "/api/guilds",
    params(GuildSearch),
    responses((status = 200, description = "OK", body = Items<GuildCard>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Guilds whose name starts with q, by name (20 at most)"
)]
#[get("/api/guilds")]
pub async fn get_search(
    state: web::Data<AppState>,
    _who: AuthPlayer,
    q: web::Query<GuildSearch>,
) -> Result<HttpResponse, AppError> {
    let q = guilds::name_lower(&q.q);
    if q.chars().count() > 20 {
        return Err(AppError::new(ErrorCode::ValidationFailed, "q is 20 characters at most"));
    }
    let names = state.store.shared_scan(&keys::name(&q), None, 20).await?;
    let ids: Vec<String> = names.iter().filter_map(|(_, d)| d.doc["guild_id"].as_str().map(keys::guild)).collect();
    let docs = state.store.shared_docs(&ids).await?;
    let mut items = Vec::new();
    for d in docs.into_iter().flatten() {
        let g: Guild = serde_json::from_value(d.doc).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
        items.push(card(&state.data.guilds, &g));
    }
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// `GET /api/guilds/{id}`.
#[utoipa::path(
    get,
    path = "/api/guilds/{id}",
    params(("id" = String, Path, description = "Guild id, or `mine`")),
    responses((status = 200, description = "OK", body = GuildView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "A guild's page: level, xp, members and ranks; its join requests to its officers and leader"
)]
#[get("/api/guilds/{id}")]
pub async fn get_guild(
    state: web::Data<AppState>,
    who: AuthPlayer,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let g = if id.as_str() == "mine" {
        guild_state::my_guild(&state, &who.0).await?
    } else {
        guild_state::guild(&state, &id).await?.ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such guild"))?
    };
    Ok(HttpResponse::Ok().json(guild_view(&state.data.guilds, &g, &who.0)))
}

/// `POST /api/guilds/{id}/join`.
#[utoipa::path(
    post,
    path = "/api/guilds/{id}/join",
    params(("id" = String, Path, description = "Guild id"), ("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = GuildActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Join an open guild, or ask to join one by approval (LIMIT_REACHED: full; CONFLICT: in a guild, or within 24 h of leaving one)"
)]
#[post("/api/guilds/{id}/join")]
pub async fn post_join(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    id: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let gid = id.into_inner();
    let idem = key.for_body(&gid);
    if guild_state::guild(&state, &gid).await?.is_none() {
        return Err(AppError::new(ErrorCode::NotFound, "no such guild"));
    }
    let (table, now) = (state.data.guilds.clone(), state.clock.now());
    guild_write(&state, &who.0, Some(idem), &gid, vec![], LedgerReason::Guild, move |p, me, g, _| {
        Ok(match guilds::join(&table, g, p, me, now)? {
            JoinOutcome::Joined => "joined".into(),
            JoinOutcome::Requested => "requested".into(),
        })
    })
    .await
}

/// The caller's guild id (404 when in none).
async fn my_guild_id(state: &AppState, who: &str) -> Result<String, AppError> {
    guild_state::membership(state, who)
        .await?
        .guild_id
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, "you are not in a guild"))
}

/// `POST /api/guilds/mine/leave`.
#[utoipa::path(
    post,
    path = "/api/guilds/mine/leave",
    params(("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = GuildActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Leave the guild (24 h before joining another): a leader hands it to the longest-standing officer, else member; the last one out dissolves it"
)]
#[post("/api/guilds/mine/leave")]
pub async fn post_leave(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_body(&());
    let g = guild_state::my_guild(&state, &who.0).await?;
    let name_key = keys::name(&guilds::name_lower(&g.name));
    let (gid, now) = (g.id.clone(), state.clock.now());
    let check = gid.clone();
    guild_write(&state, &who.0, Some(idem), &gid, vec![name_key], LedgerReason::Guild, move |p, me, g, _| {
        still_member(me, &check)?;
        Ok(match guilds::leave(g, p, me, now)? {
            Departure::Left | Departure::Succeeded { .. } => "left".into(),
            Departure::Dissolved => "dissolved".into(),
        })
    })
    .await
}

/// `POST /api/guilds/mine/requests/{player_id}/approve`.
#[utoipa::path(
    post,
    path = "/api/guilds/mine/requests/{player_id}/approve",
    params(("player_id" = String, Path, description = "The applicant"), ("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = GuildActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "An officer or the leader lets an applicant in (FORBIDDEN for members)"
)]
#[post("/api/guilds/mine/requests/{player_id}/approve")]
pub async fn post_approve(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    player_id: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    answer(state, who, key, player_id.into_inner(), true).await
}

/// `POST /api/guilds/mine/requests/{player_id}/reject`.
#[utoipa::path(
    post,
    path = "/api/guilds/mine/requests/{player_id}/reject",
    params(("player_id" = String, Path, description = "The applicant"), ("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = GuildActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "An officer or the leader turns an applicant down"
)]
#[post("/api/guilds/mine/requests/{player_id}/reject")]
pub async fn post_reject(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    player_id: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    answer(state, who, key, player_id.into_inner(), false).await
}

async fn answer(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    applicant: String,
    approve: bool,
) -> Result<HttpResponse, AppError> {
    let idem = key.for_body(&applicant);
    let gid = my_guild_id(&state, &who.0).await?;
    let (table, now) = (state.data.guilds.clone(), state.clock.now());
    let them_key = keys::member(&applicant);
    let check = gid.clone();
    guild_write(&state, &who.0, Some(idem), &gid, vec![them_key.clone()], LedgerReason::Guild, move |p, me, g, docs| {
        still_member(me, &check)?;
        let mut them: Membership = docs.get(&them_key)?.unwrap_or_default();
        guilds::answer_request(&table, g, &p.id, &applicant, &mut them, approve, now)?;
        docs.put(&them_key, &them)?;
        Ok(if approve { "approved" } else { "rejected" }.into())
    })
    .await
}

/// `POST /api/guilds/mine/members/{player_id}/{action}`.
#[utoipa::path(
    post,
    path = "/api/guilds/mine/members/{player_id}/{action}",
    params(("player_id" = String, Path, description = "A member"), ("action" = inline(MemberAction), Path, description = "promote, demote or remove"), ("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = GuildActionView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The leader promotes (member → officer, 3 at most; officer → leader, the leader stepping down to officer), demotes and removes; officers remove members (FORBIDDEN otherwise). A removed member waits 24 h to join a guild"
)]
#[post("/api/guilds/mine/members/{player_id}/{action}")]
pub async fn post_member_action(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    path: web::Path<(String, MemberAction)>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let (target, action) = path.into_inner();
    let idem = key.for_body(&(&target, action));
    let gid = my_guild_id(&state, &who.0).await?;
    let (table, now) = (state.data.guilds.clone(), state.clock.now());
    let them_key = keys::member(&target);
    let check = gid.clone();
    guild_write(&state, &who.0, Some(idem), &gid, vec![them_key.clone()], LedgerReason::Guild, move |p, me, g, docs| {
        still_member(me, &check)?;
        let mut them: Membership = docs.get(&them_key)?.unwrap_or_default();
        guilds::act_on_member(&table, g, &p.id, &target, &mut them, action, now)?;
        docs.put(&them_key, &them)?;
        Ok(match action {
            MemberAction::Promote => "promoted",
            MemberAction::Demote => "demoted",
            MemberAction::Remove => "removed",
        }
        .into())
    })
    .await
}

/// A donation.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DonateRequest {
    /// `gold` (10,000 gold), `crystals` (50) or `crystals_large` (200).
    tier: DonationTier,
}

/// The answer of a donation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DonationView {
    /// The tier given.
    pub tier: DonationTier,
    /// Guild xp added.
    pub xp: u64,
    /// Guild coins received.
    pub coins: i64,
    /// The guild's level after it.
    pub guild_level: u32,
    /// The guild's xp into its level after it.
    pub guild_xp: u64,
    /// Balances after.
    pub balances_after: Balances,
}

/// `POST /api/guilds/mine/donate`.
#[utoipa::path(
    post,
    path = "/api/guilds/mine/donate",
    request_body = DonateRequest,
    params(("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = DonationView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Today's donation (one per UTC day): the price for guild xp and guild coins"
)]
#[post("/api/guilds/mine/donate")]
pub async fn post_donate(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<DonateRequest>,
) -> Result<HttpResponse, AppError> {
    let tier = body.tier;
    let idem = key.for_body(&tier);
    let gid = my_guild_id(&state, &who.0).await?;
    let (me_key, g_key) = (keys::member(&who.0), keys::guild(&gid));
    let (table, now) = (state.data.guilds.clone(), state.clock.now());
    let keys = vec![me_key.clone(), g_key.clone()];
    let written = write_shared(&state, &who.0, Some(idem), keys, move |p: &mut Player, docs: &mut SharedDocs| {
        let mut me: Membership = docs.get(&me_key)?.unwrap_or_default();
        still_member(&me, &gid)?;
        let mut g = guild_in(docs, &g_key)?;
        let Donation { xp, coins, .. } = guilds::donate(&table, &mut g, p, &mut me, tier, now)?;
        docs.put(&me_key, &me)?;
        docs.put(&g_key, &g)?;
        let view = DonationView { tier, xp, coins, guild_level: g.level, guild_xp: g.xp, balances_after: p.balances };
        Ok(Applied::new(LedgerReason::GuildDonation, format!("{gid}:{}", now.date_naive()), view)
            .with_event(event(&gid, "donated")))
    })
    .await?;
    Ok(respond(&written))
}

/// An offer of the guild shop as a member sees it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GuildOfferView {
    /// Offer id.
    pub offer_id: String,
    /// What one purchase gives.
    pub item: crate::game::shop::Item,
    /// Price in guild coins.
    pub price: i64,
    /// Purchases left today.
    pub left_today: u32,
}

/// `GET /api/guilds/mine/shop`.
#[utoipa::path(
    get,
    path = "/api/guilds/mine/shop",
    responses((status = 200, description = "OK", body = Items<GuildOfferView>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The guild shop (members only): prices in guild coins, what is left today"
)]
#[get("/api/guilds/mine/shop")]
pub async fn get_shop(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    my_guild_id(&state, &who.0).await?;
    let mut p = who.player();
    p.shop.roll(state.clock.now());
    let items = state
        .data
        .guilds
        .shop
        .iter()
        .map(|o| GuildOfferView {
            offer_id: o.id.clone(),
            item: o.item.clone(),
            price: o.price.amount,
            left_today: o.limit.saturating_sub(p.shop.today.get(&o.id).copied().unwrap_or(0)),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// The answer of a guild shop purchase.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GuildPurchaseView {
    /// What was bought and paid.
    pub purchase: Purchase,
    /// Balances after.
    pub balances_after: Balances,
}

/// `POST /api/guilds/mine/shop/buy`.
#[utoipa::path(
    post,
    path = "/api/guilds/mine/shop/buy",
    request_body = super::shop::BuyRequest,
    params(("Idempotency-Key" = String, Header, description = KEY_DOC)),
    responses((status = 200, description = "OK", body = GuildPurchaseView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Buy from the guild shop with guild coins (members only; LIMIT_REACHED past today's limit)"
)]
#[post("/api/guilds/mine/shop/buy")]
pub async fn post_shop_buy(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<super::shop::BuyRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    let idem = key.for_body(&req);
    let gid = my_guild_id(&state, &who.0).await?;
    let offer = state
        .data
        .guilds
        .shop
        .iter()
        .find(|o| o.id == req.offer_id)
        .cloned()
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no guild shop offer {:?}", req.offer_id)))?;
    let me_key = keys::member(&who.0);
    let (data, now) = (state.data.clone(), state.clock.now());
    let written = write_shared(&state, &who.0, Some(idem), vec![me_key.clone()], move |p: &mut Player, docs| {
        let me: Membership = docs.get(&me_key)?.unwrap_or_default();
        still_member(&me, &gid)?;
        let hero = req.hero_id.as_deref();
        let purchase = crate::game::shop::buy_limited(&data.catalog, p, &offer, false, req.quantity, hero, now)?;
        let view = GuildPurchaseView { purchase, balances_after: p.balances };
        Ok(Applied::new(LedgerReason::GuildShopPurchase, offer.id.clone(), view).with_event(event(&gid, "shop")))
    })
    .await?;
    Ok(respond(&written))
}

/// `GET /api/guilds/mine/boss`.
#[utoipa::path(
    get,
    path = "/api/guilds/mine/boss",
    responses((status = 200, description = "OK", body = BossView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The guild's boss: HP, the damage board and the caller's attacks left today (members only)"
)]
#[get("/api/guilds/mine/boss")]
pub async fn get_boss(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let me = guild_state::membership(&state, &who.0).await?;
    let mut g = guild_state::my_guild(&state, &who.0).await?;
    // Rewards of a fallen boss left undelivered (a crash after the kill) go now.
    if !g.payouts.is_empty() && guild_state::deliver_payouts(&state, &g.id).await? > 0 {
        g = guild_state::my_guild(&state, &who.0).await?;
    }
    Ok(HttpResponse::Ok().json(boss_view(&state.data.guilds, &g, &me, state.clock.now())))
}
