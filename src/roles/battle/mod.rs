//! The battle role: campaign, arena and replays. The server decides every
//! outcome: the client names a stage or an opponent, nothing more.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::views::{load_player, mutation_outcome, stored};
use super::RouteDoc;
use crate::game::battle::arena::{self, RatingChange};
use crate::game::battle::campaign::{self, Stage};
use crate::game::battle::{simulate, team_snapshot, BattleLog, Side, TeamSnapshot, RULES_VERSION};
use crate::game::economy::Currency;
use crate::game::error::GameError;
use crate::game::player::Player;
use crate::game::rng;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::state::AppState;
use crate::store::{Board, Effects, IdempotencyRequest, Mutation, StoredResponse};

/// Routes of the battle role.
#[rustfmt::skip]
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc { method: "get", path: "/api/battle/campaign", summary: "Campaign progress: cleared stages, stars, next stage", auth: true, idempotent: false },
    RouteDoc { method: "get", path: "/api/battle/campaign/{chapter}/{stage}", summary: "Stage info: enemies, power, stamina, rewards", auth: true, idempotent: false },
    RouteDoc { method: "post", path: "/api/battle/campaign/{chapter}/{stage}/fight", summary: "Fight a stage with the current team", auth: true, idempotent: true },
    RouteDoc { method: "post", path: "/api/battle/campaign/{chapter}/{stage}/sweep", summary: "Sweep a 3-star stage {times: 1-10}", auth: true, idempotent: true },
    RouteDoc { method: "get", path: "/api/battle/arena", summary: "Rating, tickets, season and band", auth: true, idempotent: false },
    RouteDoc { method: "get", path: "/api/battle/arena/opponents", summary: "Up to five opponents near the caller's rating", auth: true, idempotent: false },
    RouteDoc { method: "post", path: "/api/battle/arena/challenge", summary: "Challenge {opponent_id}; one ticket", auth: true, idempotent: true },
    RouteDoc { method: "get", path: "/api/battle/replays/{battle_id}", summary: "A stored battle, re-simulated", auth: true, idempotent: false },
];

/// Mounts the battle role.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/battle")
            .route("/campaign", web::get().to(get_campaign))
            .route("/campaign/{chapter}/{stage}", web::get().to(get_stage))
            .route("/campaign/{chapter}/{stage}/fight", web::post().to(post_fight))
            .route("/campaign/{chapter}/{stage}/sweep", web::post().to(post_sweep))
            .route("/arena", web::get().to(get_arena))
            .route("/arena/opponents", web::get().to(get_opponents))
            .route("/arena/challenge", web::post().to(post_challenge))
            .route("/replays/{battle_id}", web::get().to(get_replay)),
    );
}

/// What a stored battle keeps: enough to replay it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BattleRecord {
    /// Battle id.
    pub battle_id: String,
    /// "campaign" or "arena".
    pub mode: String,
    /// The attacker.
    pub player_id: String,
    /// The defending player (arena, not bots).
    pub opponent_id: Option<String>,
    /// Rules version fought under.
    pub rules_version: u32,
    /// Seed, as a string (u64 does not fit every store's integers).
    pub seed: String,
    /// Attacker snapshot.
    pub attacker: TeamSnapshot,
    /// Defender snapshot.
    pub defender: TeamSnapshot,
    /// Winner.
    pub winner: Side,
    /// Stars.
    pub stars: u8,
    /// Rounds.
    pub rounds: u32,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The stored form of a fought battle: (id, record). `players` is (attacker,
/// defending player if any), `teams` is (attacker, defender).
fn record(
    battle_id: &str,
    mode: &str,
    log: &BattleLog,
    players: (&str, Option<String>),
    teams: (TeamSnapshot, TeamSnapshot),
    at: chrono::DateTime<chrono::Utc>,
) -> (String, Value) {
    let r = BattleRecord {
        battle_id: battle_id.to_string(),
        mode: mode.into(),
        player_id: players.0.into(),
        opponent_id: players.1,
        rules_version: log.rules_version,
        seed: log.seed.to_string(),
        attacker: teams.0,
        defender: teams.1,
        winner: log.winner,
        stars: log.stars,
        rounds: log.rounds,
        at,
    };
    (battle_id.to_string(), serde_json::to_value(r).unwrap_or(Value::Null))
}

/// Counts a fought battle by mode and winner (from the stored response).
fn count_battle(mode: &'static str, body: &Value) {
    let winner = body["winner"].as_str().unwrap_or("unknown").to_string();
    metrics::counter!(crate::platform::metrics::BATTLES, "mode" => mode, "winner" => winner).increment(1);
}

fn stage_or_404(state: &AppState, chapter: u32, stage: u32) -> Result<Stage, AppError> {
    state
        .data
        .battle
        .campaign
        .stage(&state.data.catalog, chapter, stage)
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no stage {chapter}-{stage}")))
}

/// Path of a stage: numbers that do not parse name no stage (404 via the path handler).
#[derive(Debug, Deserialize)]
pub struct StagePath {
    chapter: u32,
    stage: u32,
}

async fn get_campaign(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let mut p = load_player(&state, &who.0).await?;
    p.refresh(state.clock.now());
    let rules = &state.data.battle.campaign;
    let cleared = p.stages_cleared() as u32;
    let next = (cleared < rules.total()).then(|| rules.locate(cleared + 1));
    let stars: Vec<Value> = p
        .campaign_stars
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (c, st) = rules.locate(i as u32 + 1);
            json!({"chapter": c, "stage": st, "stars": s})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "cleared": cleared,
        "total": rules.total(),
        "next": next.map(|(c, s)| json!({"chapter": c, "stage": s})),
        "stars": stars,
        "stamina": p.balances.stamina,
    })))
}

async fn get_stage(
    state: web::Data<AppState>,
    who: AuthPlayer,
    path: web::Path<StagePath>,
) -> Result<HttpResponse, AppError> {
    let stage = stage_or_404(&state, path.chapter, path.stage)?;
    let p = load_player(&state, &who.0).await?;
    let cleared = p.stages_cleared() as u32;
    Ok(HttpResponse::Ok().json(json!({
        "stage": stage,
        "unlocked": stage.number <= cleared + 1,
        "best_stars": p.campaign_stars.get((stage.number - 1) as usize),
    })))
}

async fn post_fight(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    path: web::Path<StagePath>,
) -> Result<HttpResponse, AppError> {
    let stage = stage_or_404(&state, path.chapter, path.stage)?;
    let idem = key.for_request(&format!("POST /api/battle/campaign/{}/{}/fight", path.chapter, path.stage), &());
    let (data, now, seed) = (state.data.clone(), state.clock.now(), rng::fresh_seed());
    let battle_id = uuid::Uuid::new_v4().simple().to_string();
    let player_id = who.0.clone();
    let op: Mutation = Arc::new(move |p: &mut Player| {
        // Checks first: nothing is simulated or charged for a locked stage or an empty purse.
        campaign::check_fight(p, &stage, 1)?;
        let team = team_snapshot(p, &data.catalog);
        if team.iter().all(Option::is_none) {
            return Err(GameError::Conflict("the team is empty".into()));
        }
        let log = simulate(RULES_VERSION, seed, &team, &stage.enemies);
        let rewards = campaign::apply_fight(p, &stage, &log)?;
        let body = json!({
            "battle_id": battle_id,
            "chapter": stage.chapter,
            "stage": stage.stage,
            "winner": log.winner,
            "stars": log.stars,
            "rewards": rewards,
            "balances_after": p.balances,
            "log": log,
        });
        Ok(Effects {
            reason: "campaign_fight".into(),
            ref_id: battle_id.clone(),
            history: vec![],
            battles: vec![record(&battle_id, "campaign", &log, (&player_id, None), (team, stage.enemies.clone()), now)],
            response: StoredResponse { status: 200, body },
        })
    });
    let (r, fresh) = mutation_outcome(&state, &who.0, Some(idem), op).await?;
    if fresh {
        count_battle("campaign", &r.body);
    }
    Ok(stored(r, !fresh))
}

/// Sweep body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    times: u32,
}

async fn post_sweep(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    path: web::Path<StagePath>,
    body: web::Json<SweepRequest>,
) -> Result<HttpResponse, AppError> {
    let stage = stage_or_404(&state, path.chapter, path.stage)?;
    let times = body.times;
    let max = state.data.battle.campaign.max_sweeps;
    if !(1..=max).contains(&times) {
        return Err(AppError::new(ErrorCode::ValidationFailed, format!("times must be between 1 and {max}"))
            .with_details(json!({"field": "times"})));
    }
    let idem = key
        .for_request(&format!("POST /api/battle/campaign/{}/{}/sweep", path.chapter, path.stage), &body.into_inner());
    let sweep_id = uuid::Uuid::new_v4().simple().to_string();
    let op: Mutation = Arc::new(move |p: &mut Player| {
        let rewards = campaign::sweep(p, &stage, times, max)?;
        let body = json!({"sweep_id": sweep_id, "times": times, "rewards": rewards, "balances_after": p.balances});
        Ok(Effects {
            reason: "campaign_sweep".into(),
            ref_id: sweep_id.clone(),
            history: vec![],
            battles: vec![],
            response: StoredResponse { status: 200, body },
        })
    });
    let (r, fresh) = mutation_outcome(&state, &who.0, Some(idem), op).await?;
    Ok(stored(r, !fresh))
}

async fn get_arena(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let mut p = load_player(&state, &who.0).await?;
    let now = state.clock.now();
    p.refresh(now);
    let rules = &state.data.battle.arena;
    arena::roll_season(rules, &mut p, now, state.data.rewards.mail.expiry_days);
    Ok(HttpResponse::Ok().json(json!({
        "rating": p.arena_rating,
        "tickets": p.balances.arena_tickets,
        "medals": p.balances.arena_medals,
        "season": arena::season_of(now),
        "band": rules.band_of(p.arena_rating).name,
        "battles_this_season": p.arena_season_battles,
    })))
}

async fn get_opponents(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let me = load_player(&state, &who.0).await?;
    let rules = &state.data.battle.arena;
    let rating = me.arena_rating.max(0);
    let mut window = rules.rating_window;
    // Widen the window until enough players are found (or it covers everyone).
    let mut found = loop {
        let lo = (rating - window).max(0) as u64;
        let hi = (rating + window) as u64;
        let mut found = state.store.board_range(Board::Arena, lo, hi, rules.opponents * 4).await?;
        found.retain(|e| e.player_id != me.id);
        if found.len() >= rules.min_opponents_before_widening || window > 4000 {
            break found;
        }
        window *= 2;
    };
    // Nearest ratings first, ties by id, so the list is stable between calls.
    found.sort_by_key(|e| ((e.score as i64 - rating).abs(), e.player_id.clone()));
    found.truncate(rules.opponents);
    let mut items = Vec::new();
    for e in &found {
        let power = state.store.player_by_id(&e.player_id).await?.map(|p| p.scores.power).unwrap_or(0);
        items.push(json!({"opponent_id": e.player_id, "username": e.username, "rating": e.score, "power": power, "bot": false}));
    }
    for n in items.len()..rules.opponents {
        let team = arena::bot_team(&state.data.catalog, rating, n as u64);
        let power: u64 = team.iter().flatten().map(|u| crate::game::catalog::power(u.stats)).sum();
        items.push(json!({"opponent_id": arena::bot_id(rating, n), "username": format!("Training Bot {}", n + 1), "rating": rating, "power": power, "bot": true}));
    }
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

/// Challenge body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    opponent_id: String,
}

async fn post_challenge(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<ChallengeRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    if req.opponent_id == who.0 {
        return Err(AppError::new(ErrorCode::ValidationFailed, "you cannot challenge yourself"));
    }
    let idem = key.for_request("POST /api/battle/arena/challenge", &req);
    // The defense is the opponent's team as it stands at challenge time.
    let (defense, defender_rating, defender_id) = match arena::parse_bot(&req.opponent_id) {
        Some((rating, n)) => (arena::bot_team(&state.data.catalog, rating, n), rating, None),
        None => {
            let d = state
                .store
                .player_by_id(&req.opponent_id)
                .await?
                .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such opponent"))?;
            (team_snapshot(&d, &state.data.catalog), d.arena_rating, Some(d.id))
        }
    };
    let (data, now, seed) = (state.data.clone(), state.clock.now(), rng::fresh_seed());
    let battle_id = uuid::Uuid::new_v4().simple().to_string();
    let player_id = who.0.clone();
    let opponent = defender_id.clone();
    let op: Mutation = Arc::new(move |p: &mut Player| {
        let rules = &data.battle.arena;
        arena::roll_season(rules, p, now, data.rewards.mail.expiry_days);
        p.balances.debit(Currency::ArenaTickets, 1)?;
        let team = team_snapshot(p, &data.catalog);
        let log = simulate(RULES_VERSION, seed, &team, &defense);
        let change = arena::rating_change(rules.k_factor, p.arena_rating, defender_rating, log.winner);
        let before = p.arena_rating;
        p.arena_rating = arena::apply_rating(before, change.attacker);
        p.arena_season_battles += 1;
        let won = log.winner == Side::Attacker;
        let (medals, gold) =
            if won { (rules.win_medals, rules.win_gold) } else { (rules.loss_medals, rules.loss_gold) };
        p.balances.credit(Currency::ArenaMedals, medals);
        p.balances.credit(Currency::Gold, gold);
        let body = json!({
            "battle_id": battle_id,
            "opponent_id": opponent.clone().unwrap_or_else(|| "bot".into()),
            "winner": log.winner,
            "rating_before": before,
            "rating_after": p.arena_rating,
            "rating_change": change,
            "rewards": {"arena_medals": medals, "gold": gold},
            "balances_after": p.balances,
            "log": log,
        });
        Ok(Effects {
            reason: "arena_challenge".into(),
            ref_id: battle_id.clone(),
            history: vec![],
            battles: vec![record(
                &battle_id,
                "arena",
                &log,
                (&player_id, opponent.clone()),
                (team, defense.clone()),
                now,
            )],
            response: StoredResponse { status: 200, body },
        })
    });
    let (r, fresh) = mutation_outcome(&state, &who.0, Some(idem), op).await?;
    if fresh {
        count_battle("arena", &r.body);
        if let Some(defender) = &defender_id {
            let change: RatingChange = serde_json::from_value(r.body["rating_change"].clone())
                .unwrap_or(RatingChange { attacker: 0, defender: 0 });
            let battle_id = r.body["battle_id"].as_str().unwrap_or_default().to_string();
            apply_defense(&state, defender, &battle_id, change.defender).await;
        }
    }
    Ok(stored(r, !fresh))
}

/// Moves the defender's rating. A separate write on another player, keyed by the
/// battle id so a retry cannot apply it twice; a failure is logged, never hidden
/// from operators, and does not undo the attacker's finished challenge.
async fn apply_defense(state: &AppState, defender: &str, battle_id: &str, change: i64) {
    let (data, now) = (state.data.clone(), state.clock.now());
    let op: Mutation = Arc::new(move |p: &mut Player| {
        arena::roll_season(&data.battle.arena, p, now, data.rewards.mail.expiry_days);
        p.arena_rating = arena::apply_rating(p.arena_rating, change);
        Ok(Effects {
            reason: "arena_defense".into(),
            ref_id: String::new(),
            history: vec![],
            battles: vec![],
            response: StoredResponse { status: 200, body: json!({}) },
        })
    });
    let key = IdempotencyRequest { key: format!("arena-defense-{battle_id}"), fingerprint: battle_id.to_string() };
    if let Err(e) = mutation_outcome(state, defender, Some(key), op).await {
        tracing::error!(defender, battle_id, error = %e, "arena: defender rating not updated");
    }
}

async fn get_replay(
    state: web::Data<AppState>,
    who: AuthPlayer,
    battle_id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let not_found = || AppError::new(ErrorCode::NotFound, "no such battle");
    let value = state.store.battle(&battle_id).await?.ok_or_else(not_found)?;
    let rec: BattleRecord = serde_json::from_value(value)
        .map_err(|e| AppError::internal(anyhow::anyhow!("decoding battle {battle_id}: {e}")))?;
    if rec.player_id != who.0 && rec.opponent_id.as_deref() != Some(who.0.as_str()) {
        return Err(not_found());
    }
    let seed: u64 =
        rec.seed.parse().map_err(|e| AppError::internal(anyhow::anyhow!("battle {battle_id} seed: {e}")))?;
    let log = simulate(rec.rules_version, seed, &rec.attacker, &rec.defender);
    if log.winner != rec.winner || log.stars != rec.stars || log.rounds != rec.rounds {
        tracing::error!(battle_id = %rec.battle_id, stored_winner = ?rec.winner, replay_winner = ?log.winner, "REPLAY MISMATCH: battle determinism is broken");
        return Err(AppError::internal(anyhow::anyhow!(
            "replay of {} does not match its stored outcome",
            rec.battle_id
        )));
    }
    Ok(HttpResponse::Ok().json(json!({"battle": rec, "log": log})))
}
