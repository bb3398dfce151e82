//! The abyss tower: the next floor, fights on the battle engine (stored and
//! replayable like every battle), the weekly board.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{count_battle, fighting_team, record};
use crate::game::battle::tower::{self, Floor, FloorRewards};
use crate::game::battle::{simulate, BattleLog, Side, RULES_VERSION};
use crate::game::economy::Balances;
use crate::game::error::GameError;
use crate::game::player::Player;
use crate::game::rng;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::AppError;
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::metrics::BattleInFlight;
use crate::platform::no_body::NoBody;
use crate::roles::views::{respond, write};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::{Board, LedgerReason};
use crate::writes::Applied;

/// A row of the tower's weekly board.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TowerRow {
    /// Rank this week (ties broken by who got there first).
    pub rank: u64,
    /// Player id.
    pub player_id: String,
    /// Username.
    pub username: String,
    /// Highest floor.
    pub floor: u32,
}

/// `GET /api/battle/tower`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TowerView {
    /// Highest floor cleared.
    pub best_floor: u32,
    /// The next floor (the only one open); absent at the top.
    pub next: Option<Floor>,
    /// This week's board, best first (top 20).
    pub weekly_top: Vec<TowerRow>,
    /// The caller's row this week, once they cleared a floor this week.
    pub me: Option<TowerRow>,
}

/// This week's rows of the board's best-first top `limit`.
async fn weekly_top(state: &AppState, limit: usize) -> Result<Vec<TowerRow>, AppError> {
    let week = tower::week_index(state.clock.now());
    let rows = state.store.leaderboard(Board::Tower, limit).await?;
    Ok(rows
        .into_iter()
        .filter(|r| tower::decode_score(r.score).0 == week)
        .enumerate()
        .map(|(i, r)| TowerRow {
            rank: i as u64 + 1,
            floor: tower::decode_score(r.score).1,
            player_id: r.player_id,
            username: r.username,
        })
        .collect())
}

/// `GET /api/battle/tower`.
#[utoipa::path(
    get,
    path = "/api/battle/tower",
    responses((status = 200, description = "OK", body = TowerView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The caller's tower progress, the next floor and this week's board"
)]
#[get("/api/battle/tower")]
pub async fn get_tower(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let p = who.record();
    let rules = &state.data.battle.tower;
    let week = tower::week_index(state.clock.now());
    let me = if tower::decode_score(p.tower.board_score).0 == week && p.tower.board_score > 0 {
        let row = state.store.rank(Board::Tower, &p.id).await?;
        row.map(|r| TowerRow { rank: r.rank, player_id: r.player_id, username: r.username, floor: p.tower.best_floor })
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(TowerView {
        best_floor: p.tower.best_floor,
        next: rules.floor(&state.data.catalog, p.tower.best_floor + 1),
        weekly_top: weekly_top(&state, 20).await?,
        me,
    }))
}

/// The answer of a tower fight.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TowerFightView {
    /// Battle id (replayable).
    pub battle_id: String,
    /// The floor fought.
    pub floor: u32,
    /// Who won.
    pub winner: Side,
    /// First-clear rewards (a win).
    pub rewards: Option<FloorRewards>,
    /// Highest floor cleared after the fight.
    pub best_floor: u32,
    /// Balances after.
    pub balances_after: Balances,
    /// The battle.
    pub log: BattleLog,
}

/// `POST /api/battle/tower/fight`.
#[utoipa::path(
    post,
    path = "/api/battle/tower/fight",
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = TowerFightView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Fight the next uncleared floor: no stamina, a loss costs nothing, a win pays the first clear"
)]
#[post("/api/battle/tower/fight")]
pub async fn post_tower_fight(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let _in_flight = BattleInFlight::start(state.role.name());
    let idem = key.for_body(&());
    let (data, now, seed) = (state.data.clone(), state.clock.now(), rng::fresh_seed());
    let battle_id = crate::store::time_ordered_id();
    let player_id = who.0.clone();
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let rules = &data.battle.tower;
        let next = p.tower.best_floor + 1;
        let floor = rules
            .floor(&data.catalog, next)
            .ok_or_else(|| GameError::Conflict(format!("every one of the {} floors is cleared", rules.floors)))?;
        let team = fighting_team(p, &data.catalog)?;
        let log = simulate(RULES_VERSION, seed, &team, &floor.enemies);
        let rewards = tower::apply_fight(rules, p, &floor, &log, now)?;
        let rec = record(&battle_id, "tower", &log, (&player_id, None), (team, floor.enemies.clone()), now);
        let event =
            DomainEvent::TowerFinished { battle_id: battle_id.clone(), floor: floor.floor, cleared: rewards.is_some() };
        let view = TowerFightView {
            battle_id: battle_id.clone(),
            floor: floor.floor,
            winner: log.winner,
            rewards,
            best_floor: p.tower.best_floor,
            balances_after: p.balances,
            log,
        };
        Ok(Applied::new(LedgerReason::TowerFight, battle_id.clone(), view).with_battle(rec.0, rec.1).with_event(event))
    })
    .await?;
    if written.fresh {
        count_battle("tower", written.view.winner);
    }
    Ok(respond(&written))
}
