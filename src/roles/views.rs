//! Response shapes shared by several roles, and the one path from a store
//! mutation to an HTTP response.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::game::catalog::{self, Catalog, Rarity, Stats};
use crate::game::economy::Balances;
use crate::game::player::{self, Player};
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::state::AppState;
use crate::store::{IdempotencyRequest, MutateOutcome, Mutation, StoredResponse};

/// An owned hero with its current stats.
#[derive(Debug, Serialize)]
pub struct HeroView {
    /// Catalog id.
    pub hero_id: String,
    /// Display name.
    pub name: String,
    /// Rarity.
    pub rarity: Rarity,
    /// Level.
    pub level: u32,
    /// Stars.
    pub stars: u32,
    /// Unspent shards.
    pub shards: u32,
    /// Current stats.
    pub stats: Stats,
    /// Power on current stats.
    pub power: u64,
    /// When obtained.
    pub acquired_at: DateTime<Utc>,
}

/// The player's profile.
#[derive(Debug, Serialize)]
pub struct PlayerView {
    /// Player id.
    pub id: String,
    /// Username as registered.
    pub username: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Player level.
    pub level: u32,
    /// Xp into the level.
    pub xp: u64,
    /// Xp needed for the next level.
    pub xp_to_next: u64,
    /// Balances, with stamina and tickets regenerated to now.
    pub balances: Balances,
    /// Stamina regeneration cap.
    pub stamina_max: i64,
    /// Seconds to the next stamina point (none at the cap).
    pub next_stamina_in_secs: Option<i64>,
    /// Owned heroes.
    pub heroes: Vec<HeroView>,
    /// Six slots.
    pub team: Vec<Option<String>>,
    /// Sum of the team's power.
    pub team_power: u64,
}

/// The view of one owned hero.
pub fn hero_view(catalog: &Catalog, p: &Player, hero_id: &str) -> Option<HeroView> {
    let owned = p.heroes.get(hero_id)?;
    let def = catalog.get(hero_id)?;
    let stats = catalog::stats_at(def.base_stats(), owned.level, owned.stars);
    Some(HeroView {
        hero_id: owned.hero_id.clone(),
        name: def.name.clone(),
        rarity: def.rarity,
        level: owned.level,
        stars: owned.stars,
        shards: owned.shards,
        stats,
        power: catalog::power(stats),
        acquired_at: owned.acquired_at,
    })
}

/// The profile of `p` as of `now` (lazy values brought up to date on a copy).
pub fn player_view(catalog: &Catalog, p: &Player, now: DateTime<Utc>) -> PlayerView {
    let mut p = p.clone();
    p.refresh(now);
    PlayerView {
        heroes: p.heroes.keys().filter_map(|h| hero_view(catalog, &p, h)).collect(),
        team_power: p.team_power(catalog),
        id: p.id.clone(),
        username: p.username.clone(),
        created_at: p.created_at,
        level: p.level,
        xp: p.xp,
        xp_to_next: player::xp_to_next(p.level),
        balances: p.balances,
        stamina_max: player::STAMINA_MAX,
        next_stamina_in_secs: p.next_stamina_in(now),
        team: p.team.clone(),
    }
}

/// Loads the caller's player; a valid token for a player that no longer exists is an invalid token.
pub async fn load_player(state: &AppState, id: &str) -> Result<Player, AppError> {
    if let Some(p) = state.cache.player(id).await {
        return Ok(p);
    }
    let p = state
        .store
        .player_by_id(id)
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::InvalidToken, "the token's player does not exist"))?;
    state.cache.put_player(&p).await;
    Ok(p)
}

/// Runs a mutation for the caller and turns its outcome into a response: the
/// stored response (first time or replayed), or the error of the refusal.
pub async fn run_mutation(
    state: &AppState,
    player_id: &str,
    idempotency: Option<IdempotencyRequest>,
    op: Mutation,
) -> Result<HttpResponse, AppError> {
    let (r, fresh) = mutation_outcome(state, player_id, idempotency, op).await?;
    Ok(stored(r, !fresh))
}

/// Runs a mutation for the caller: the stored response and whether it was applied
/// now (false: replayed from the idempotency record), or the refusal as an error.
pub async fn mutation_outcome(
    state: &AppState,
    player_id: &str,
    idempotency: Option<IdempotencyRequest>,
    op: Mutation,
) -> Result<(StoredResponse, bool), AppError> {
    // Every write keeps the leaderboard scores in step with the player.
    let data = state.data.clone();
    let op: Mutation = Arc::new(move |p: &mut Player| {
        let effects = op(p)?;
        p.recompute_scores(&data.catalog);
        Ok(effects)
    });
    let started = std::time::Instant::now();
    let outcome = state.store.mutate(player_id, idempotency, state.clock.now(), op).await;
    metrics::histogram!(crate::platform::metrics::STORE_SECONDS, "op" => "mutate", "store" => state.store.kind())
        .record(started.elapsed().as_secs_f64());
    match outcome? {
        MutateOutcome::Applied(r, player) => {
            // Before the response leaves: no read after this write sees an older copy.
            state.cache.player_written(&player).await;
            Ok((r, true))
        }
        MutateOutcome::Replayed(r) => Ok((r, false)),
        MutateOutcome::KeyReused => Err(AppError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used for a different request",
        )),
        MutateOutcome::Rejected(e) => Err(e.into()),
        MutateOutcome::PlayerNotFound => {
            Err(AppError::new(ErrorCode::InvalidToken, "the token's player does not exist"))
        }
    }
}

/// The HTTP form of a stored response.
pub fn stored(r: StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::build(status);
    if replayed {
        res.insert_header(("Idempotent-Replayed", "true"));
    }
    res.json(r.body)
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

impl PageQuery {
    /// The limit (default 20, 1-100) and the decoded cursor.
    pub fn parse(&self) -> Result<(usize, Option<u64>), AppError> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(AppError::new(ErrorCode::ValidationFailed, "limit must be between 1 and 100"));
        }
        let cursor = match &self.cursor {
            None => None,
            Some(c) => Some(
                u64::from_str_radix(c, 16)
                    .map_err(|_| AppError::new(ErrorCode::ValidationFailed, "cursor is not one this server issued"))?,
            ),
        };
        Ok((limit, cursor))
    }
}

/// Encodes a store position as an opaque cursor.
pub fn cursor(next: Option<u64>) -> Option<String> {
    next.map(|n| format!("{n:x}"))
}
