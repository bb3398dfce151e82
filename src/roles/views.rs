//! Response shapes shared by several roles, and the HTTP side of the one write path.

use std::sync::Arc;

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::game::catalog::{self, Catalog, Rarity, Stats};
use crate::game::economy::Balances;
use crate::game::error::GameError;
use crate::game::ids::{HeroId, PlayerId};
use crate::game::player::{self, Player};
use crate::game::spending::SpendingControls;
use crate::platform::auth::PlayerSource;
use crate::platform::error::{AppError, ErrorCode};
use crate::state::AppState;
use crate::store::{IdempotencyRequest, SharedDocs};
use crate::writes::{Applied, Written};

/// A list answer: `{"items": [...]}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Items<T> {
    /// The entries.
    pub items: Vec<T>,
}

/// A page of a list: `{"items": [...], "next_cursor": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Paged<T> {
    /// The entries, newest first.
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// An owned hero with its current stats.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeroView {
    /// Catalog id.
    pub hero_id: HeroId,
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlayerView {
    /// Player id.
    pub id: PlayerId,
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
    /// Spending and age controls on summons, brought up to now.
    pub spending: SpendingControls,
}

/// The view of one owned hero.
pub fn hero_view(catalog: &Catalog, p: &Player, hero_id: &str) -> Option<HeroView> {
    let owned = p.heroes.get(hero_id)?;
    let def = catalog.get(hero_id)?;
    let stats = catalog::stats_at(def.base_stats(), owned.level, owned.stars);
    Some(HeroView {
        hero_id: HeroId(owned.hero_id.clone()),
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
        id: PlayerId(p.id.clone()),
        username: p.username.clone(),
        created_at: p.created_at,
        level: p.level,
        xp: p.xp,
        xp_to_next: player::xp_to_next(p.level),
        balances: p.balances,
        stamina_max: player::STAMINA_MAX,
        next_stamina_in_secs: p.next_stamina_in(now),
        team: p.team.clone(),
        spending: p.spending.settled(now),
    }
}

/// Loads the caller's player; a valid token for a player that no longer exists is an invalid token.
pub async fn load_player(state: &AppState, id: &str) -> Result<Player, AppError> {
    // The same cached read the token check makes.
    let player = state
        .current(id.to_string())
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::InvalidToken, "the token's player does not exist"))?;
    Ok(Arc::unwrap_or_clone(player))
}

/// Runs `rule` as a write to the caller's player on the server's clock (see
/// [`crate::writes`]): the typed view, applied now or replayed.
pub async fn write<T, F>(
    state: &AppState,
    player_id: &str,
    idempotency: Option<IdempotencyRequest>,
    rule: F,
) -> Result<Written<T>, AppError>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    F: Fn(&mut Player) -> Result<Applied<T>, GameError> + Send + Sync + 'static,
{
    let writer = state.writer();
    Ok(writer.mutate(player_id, idempotency, state.clock.now(), rule).await?)
}

/// As `write`, with the shared documents under `keys` in the same atomic write.
pub async fn write_shared<T, F>(
    state: &AppState,
    player_id: &str,
    idempotency: Option<IdempotencyRequest>,
    keys: Vec<String>,
    rule: F,
) -> Result<Written<T>, AppError>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    F: Fn(&mut Player, &mut SharedDocs) -> Result<Applied<T>, GameError> + Send + Sync + 'static,
{
    let writer = state.writer();
    Ok(writer.mutate_shared(player_id, idempotency, state.clock.now(), keys, rule).await?)
}

/// The HTTP answer of a write: its view, marked when replayed.
pub fn respond<T: Serialize>(w: &Written<T>) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    if !w.fresh {
        res.insert_header(("Idempotent-Replayed", "true"));
    }
    res.json(&w.view)
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PageQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

impl PageQuery {
    /// The limit (default 20, 1-100).
    pub fn limit(&self) -> Result<usize, AppError> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(AppError::new(ErrorCode::ValidationFailed, "limit must be between 1 and 100"));
        }
        Ok(limit)
    }

    /// The cursor as sent, for lists with their own cursor format.
    pub fn raw_cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// The limit (default 20, 1-100) and the decoded cursor of a store position.
    pub fn parse(&self) -> Result<(usize, Option<u64>), AppError> {
        let limit = self.limit()?;
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
