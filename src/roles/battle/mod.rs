//! The battle role: campaign, arena and replays. The server decides every
//! outcome: the client names a stage or an opponent, nothing more.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::views::{load_player, respond, write, Items};
use super::Mount;
use crate::game::battle::arena::{self, RatingChange};
use crate::game::battle::campaign::{self, Stage, StageRewards};
use crate::game::battle::{simulate, team_snapshot, BattleLog, Side, TeamSnapshot, RULES_VERSION};
use crate::game::economy::Balances;
use crate::game::error::GameError;
use crate::game::player::{ArenaOffer, OfferedOpponent, Player};
use crate::game::rng;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::metrics::BattleInFlight;
use crate::platform::no_body::NoBody;
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::{Board, IdempotencyRequest, LedgerReason};
use crate::writes::Applied;

/// Mounts the battle role.
pub fn configure<C: Mount>(cfg: &mut C) {
    cfg.service(get_campaign)
        .service(get_stage)
        .service(post_fight)
        .service(post_sweep)
        .service(get_arena)
        .service(get_opponents)
        .service(post_challenge)
        .service(get_replay)
        .service(tower::get_tower)
        .service(tower::post_tower_fight)
        .service(guild_boss::post_attack);
}

mod guild_boss;
mod tower;

/// What a stored battle keeps: enough to replay it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Counts a fought battle by mode and winner.
/// The player's team as it fights now; an empty team cannot fight.
fn fighting_team(p: &Player, catalog: &crate::game::catalog::Catalog) -> Result<TeamSnapshot, GameError> {
    let team = team_snapshot(p, catalog);
    if team.iter().all(Option::is_none) {
        return Err(GameError::Conflict("the team is empty".into()));
    }
    Ok(team)
}

fn count_battle(mode: &'static str, winner: Side) {
    let winner = match winner {
        Side::Attacker => "attacker",
        Side::Defender => "defender",
    };
    metrics::counter!(crate::platform::metrics::BATTLES, "mode" => mode, "winner" => winner).increment(1);
}

/// The stage as it is fought now: live events may double its win rewards or
/// discount its stamina.
fn stage_or_404(state: &AppState, chapter: u32, stage: u32) -> Result<Stage, AppError> {
    let stage = state
        .data
        .battle
        .campaign
        .stage(&state.data.catalog, chapter, stage)
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no stage {chapter}-{stage}")))?;
    Ok(state.data.events.stage_at(stage, state.clock.now()))
}

/// Path of a stage: numbers that do not parse name no stage (404 via the path handler).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StagePath {
    chapter: u32,
    stage: u32,
}

/// A stage's place: chapter and stage within it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageRef {
    /// Chapter, from 1.
    pub chapter: u32,
    /// Stage in the chapter, from 1.
    pub stage: u32,
}

/// Best stars on one cleared stage.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageStars {
    /// Chapter, from 1.
    pub chapter: u32,
    /// Stage in the chapter, from 1.
    pub stage: u32,
    /// Best stars (1-3).
    pub stars: u8,
}

/// Campaign progress.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignView {
    /// Stages cleared.
    pub cleared: u32,
    /// Stages in the campaign.
    pub total: u32,
    /// The next stage to clear (none when all are cleared).
    pub next: Option<StageRef>,
    /// Best stars per cleared stage, in order.
    pub stars: Vec<StageStars>,
    /// Stamina now.
    pub stamina: i64,
}

/// `/api/battle/campaign`: Campaign progress: cleared stages, stars, next stage.
#[utoipa::path(
    get,
    path = "/api/battle/campaign",
    responses((status = 200, description = "OK", body = CampaignView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Campaign progress: cleared stages, stars, next stage"
)]
#[get("/api/battle/campaign")]
async fn get_campaign(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let mut p = who.player();
    p.refresh(state.clock.now());
    let rules = &state.data.battle.campaign;
    let cleared = p.stages_cleared() as u32;
    let stars = p
        .campaign_stars
        .iter()
        .enumerate()
        .map(|(i, &stars)| {
            let (chapter, stage) = rules.locate(i as u32 + 1);
            StageStars { chapter, stage, stars }
        })
        .collect();
    Ok(HttpResponse::Ok().json(CampaignView {
        cleared,
        total: rules.total(),
        next: (cleared < rules.total())
            .then(|| rules.locate(cleared + 1))
            .map(|(chapter, stage)| StageRef { chapter, stage }),
        stars,
        stamina: p.balances.stamina,
    }))
}

/// One stage and the caller's standing on it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageView {
    /// The stage: enemies, power, stamina, rewards.
    pub stage: Stage,
    /// Whether the caller may fight it.
    pub unlocked: bool,
    /// The caller's best stars on it, if cleared.
    pub best_stars: Option<u8>,
}

/// `/api/battle/campaign/{chapter}/{stage}`: Stage info: enemies, power, stamina, rewards.
#[utoipa::path(
    get,
    path = "/api/battle/campaign/{chapter}/{stage}",
    params(("chapter" = u32, Path), ("stage" = u32, Path)),
    responses((status = 200, description = "OK", body = StageView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Stage info: enemies, power, stamina, rewards"
)]
#[get("/api/battle/campaign/{chapter}/{stage}")]
async fn get_stage(
    state: web::Data<AppState>,
    who: AuthPlayer,
    path: web::Path<StagePath>,
) -> Result<HttpResponse, AppError> {
    let stage = stage_or_404(&state, path.chapter, path.stage)?;
    let p = who.record();
    let cleared = p.stages_cleared() as u32;
    Ok(HttpResponse::Ok().json(StageView {
        unlocked: stage.number <= cleared + 1,
        best_stars: p.campaign_stars.get((stage.number - 1) as usize).copied(),
        stage,
    }))
}

/// The answer of a campaign fight, also kept with its idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FightView {
    /// Battle id (for the replay).
    pub battle_id: String,
    /// Chapter.
    pub chapter: u32,
    /// Stage in the chapter.
    pub stage: u32,
    /// Who won.
    pub winner: Side,
    /// Stars (0 on a loss).
    pub stars: u8,
    /// What the fight paid.
    pub rewards: StageRewards,
    /// Balances after.
    pub balances_after: Balances,
    /// The whole battle.
    pub log: BattleLog,
}

/// `/api/battle/campaign/{chapter}/{stage}/fight`: Fight a stage with the current team.
#[utoipa::path(
    post,
    path = "/api/battle/campaign/{chapter}/{stage}/fight",
    params(("chapter" = u32, Path), ("stage" = u32, Path), ("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = FightView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Fight a stage with the current team"
)]
#[post("/api/battle/campaign/{chapter}/{stage}/fight")]
async fn post_fight(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    path: web::Path<StagePath>,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let stage = stage_or_404(&state, path.chapter, path.stage)?;
    let _in_flight = BattleInFlight::start(state.role.name());
    let idem = key.for_body(&());
    let (data, now, seed) = (state.data.clone(), state.clock.now(), rng::fresh_seed());
    let battle_id = crate::store::time_ordered_id();
    let player_id = who.0.clone();
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        // Checks first: nothing is simulated or charged for a locked stage or an empty purse.
        campaign::check_fight(p, &stage, 1)?;
        let team = fighting_team(p, &data.catalog)?;
        let log = simulate(RULES_VERSION, seed, &team, &stage.enemies);
        let rewards = campaign::apply_fight(p, &stage, &log)?;
        if log.winner == crate::game::battle::Side::Attacker {
            let xp = u64::try_from(stage.stamina).unwrap_or(0) * data.pass.xp_per_stamina;
            crate::game::pass::add_xp(&data.pass, p, xp, now, data.rewards.mail.expiry_days);
        }
        let rec = record(&battle_id, "campaign", &log, (&player_id, None), (team, stage.enemies.clone()), now);
        let event = DomainEvent::BattleFinished {
            ref_id: battle_id.clone(),
            chapter: stage.chapter,
            stage: stage.stage,
            stars: log.stars,
            times: 1,
        };
        let view = FightView {
            battle_id: battle_id.clone(),
            chapter: stage.chapter,
            stage: stage.stage,
            winner: log.winner,
            stars: log.stars,
            rewards,
            balances_after: p.balances,
            log,
        };
        Ok(Applied::new(LedgerReason::CampaignFight, battle_id.clone(), view)
            .with_battle(rec.0, rec.1)
            .with_event(event))
    })
    .await?;
    if written.fresh {
        count_battle("campaign", written.view.winner);
    }
    Ok(respond(&written))
}

/// Sweep body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    times: u32,
}

/// The answer of a sweep.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SweepView {
    /// Sweep id.
    pub sweep_id: String,
    /// Clears.
    pub times: u32,
    /// What they paid together.
    pub rewards: StageRewards,
    /// Balances after.
    pub balances_after: Balances,
}

/// `/api/battle/campaign/{chapter}/{stage}/sweep`: Sweep a 3-star stage {times}.
#[utoipa::path(
    post,
    path = "/api/battle/campaign/{chapter}/{stage}/sweep",
    request_body = SweepRequest,
    params(("chapter" = u32, Path), ("stage" = u32, Path), ("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = SweepView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Sweep a 3-star stage {times}"
)]
#[post("/api/battle/campaign/{chapter}/{stage}/sweep")]
async fn post_sweep(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    path: web::Path<StagePath>,
    body: web::Json<SweepRequest>,
) -> Result<HttpResponse, AppError> {
    let _in_flight = BattleInFlight::start(state.role.name());
    let stage = stage_or_404(&state, path.chapter, path.stage)?;
    let times = body.times;
    let max = state.data.battle.campaign.max_sweeps;
    if !(1..=max).contains(&times) {
        return Err(AppError::new(ErrorCode::ValidationFailed, format!("times must be between 1 and {max}"))
            .with_details(json!({"field": "times"})));
    }
    let idem = key.for_body(&body.into_inner());
    let sweep_id = crate::store::time_ordered_id();
    let (data, now) = (state.data.clone(), state.clock.now());
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let rewards = campaign::sweep(p, &stage, times, max)?;
        // Every clear of a sweep is a win: its stamina earns pass xp.
        let xp = u64::try_from(stage.stamina).unwrap_or(0) * u64::from(times) * data.pass.xp_per_stamina;
        crate::game::pass::add_xp(&data.pass, p, xp, now, data.rewards.mail.expiry_days);
        let event = DomainEvent::BattleFinished {
            ref_id: sweep_id.clone(),
            chapter: stage.chapter,
            stage: stage.stage,
            stars: 3,
            times,
        };
        let view = SweepView { sweep_id: sweep_id.clone(), times, rewards, balances_after: p.balances };
        Ok(Applied::new(LedgerReason::CampaignSweep, sweep_id.clone(), view).with_event(event))
    })
    .await?;
    Ok(respond(&written))
}

/// The caller's arena standing.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArenaView {
    /// Rating.
    pub rating: i64,
    /// Tickets left today.
    pub tickets: i64,
    /// Medals.
    pub medals: i64,
    /// The current season ("2026-11").
    pub season: String,
    /// The band of the rating.
    pub band: String,
    /// Challenges fought this season.
    pub battles_this_season: u32,
}

/// `/api/battle/arena`: Rating, tickets, season and band.
#[utoipa::path(
    get,
    path = "/api/battle/arena",
    responses((status = 200, description = "OK", body = ArenaView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Rating, tickets, season and band"
)]
#[get("/api/battle/arena")]
async fn get_arena(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let mut p = who.player();
    if arena::season_due(&p, now) {
        // The season ended: the rollover (reward mail, rating reset) is written
        // now, not left for the player's next challenge.
        let data = state.data.clone();
        write(&state, &who.0, None, move |p: &mut Player| {
            arena::roll_season(&data.battle.arena, p, now, data.rewards.mail.expiry_days);
            Ok(Applied::new(LedgerReason::ArenaSeason, arena::season_of(now), ()))
        })
        .await?;
        p = load_player(&state, &who.0).await?;
    }
    p.refresh(now);
    let rules = &state.data.battle.arena;
    Ok(HttpResponse::Ok().json(ArenaView {
        rating: p.arena_rating,
        tickets: p.balances.arena_tickets,
        medals: p.balances.arena_medals,
        season: arena::season_of(now),
        band: rules.band_of(p.arena_rating).name.clone(),
        battles_this_season: p.arena_season_battles,
    }))
}

/// One opponent on offer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpponentView {
    /// Player id, or a bot id.
    pub opponent_id: String,
    /// Username.
    pub username: String,
    /// Arena rating.
    pub rating: i64,
    /// Team power.
    pub power: u64,
    /// Whether it is a training bot.
    pub bot: bool,
}

/// `/api/battle/arena/opponents`: Up to five opponents near the caller's rating.
#[utoipa::path(
    get,
    path = "/api/battle/arena/opponents",
    responses((status = 200, description = "OK", body = Items<OpponentView>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Up to five opponents near the caller's rating"
)]
#[get("/api/battle/arena/opponents")]
async fn get_opponents(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let me = who.record();
    let rules = &state.data.battle.arena;
    let rating = me.arena_rating.max(0);
    let mut found = Vec::new();
    // Widen the window until enough players are found (or it reaches the cap).
    for window in arena::search_windows(rules) {
        let (lo, hi) = ((rating - window).max(0) as u64, (rating + window) as u64);
        found = state
            .store
            .board_range(Board::Arena, lo, hi, rules.opponents * 4)
            .await?
            .into_iter()
            .map(|e| arena::Candidate { player_id: e.player_id, username: e.username, rating: e.score as i64 })
            .collect();
        if arena::enough_candidates(rules, &found, &me.id) {
            break;
        }
    }
    let mut items = Vec::new();
    for c in arena::pick_opponents(rules, &me.id, rating, found) {
        let power = state.store.player_by_id(&c.player_id).await?.map_or(0, |p| p.scores.power);
        items.push(OpponentView {
            opponent_id: c.player_id,
            username: c.username,
            rating: c.rating,
            power,
            bot: false,
        });
    }
    for n in items.len()..rules.opponents {
        let team = arena::bot_team(&state.data.catalog, rating, n as u64);
        let power: u64 = team.iter().flatten().map(|u| crate::game::catalog::power(u.stats)).sum();
        items.push(OpponentView {
            opponent_id: arena::bot_id(n),
            username: format!("Training Bot {}", n + 1),
            rating,
            power,
            bot: true,
        });
    }
    // The offer is kept on the player: a challenge may name only these, and a
    // bot fights at the rating offered here, whatever the client sends.
    let offer = ArenaOffer {
        at: state.clock.now(),
        opponents: items
            .iter()
            .map(|o| OfferedOpponent { id: o.opponent_id.clone(), bot_rating: o.bot.then_some(o.rating) })
            .collect(),
    };
    write(&state, &who.0, None, move |p: &mut Player| {
        p.arena_offer = Some(offer.clone());
        Ok(Applied::new(LedgerReason::ArenaOffer, String::new(), ()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// Challenge body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    opponent_id: String,
}

/// What an arena challenge paid.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArenaRewards {
    /// Medals.
    pub arena_medals: i64,
    /// Gold.
    pub gold: i64,
}

/// The answer of an arena challenge, also kept with its idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChallengeView {
    /// Battle id (for the replay).
    pub battle_id: String,
    /// The defending player's id, or `bot`.
    pub opponent_id: String,
    /// Who won.
    pub winner: Side,
    /// The caller's rating before.
    pub rating_before: i64,
    /// The caller's rating after.
    pub rating_after: i64,
    /// Rating changes of both sides.
    pub rating_change: RatingChange,
    /// What it paid.
    pub rewards: ArenaRewards,
    /// Balances after.
    pub balances_after: Balances,
    /// The whole battle.
    pub log: BattleLog,
}

/// `/api/battle/arena/challenge`: Challenge {opponent_id}; one ticket.
#[utoipa::path(
    post,
    path = "/api/battle/arena/challenge",
    request_body = ChallengeRequest,
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = ChallengeView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Challenge {opponent_id}; one ticket"
)]
#[post("/api/battle/arena/challenge")]
async fn post_challenge(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<ChallengeRequest>,
) -> Result<HttpResponse, AppError> {
    let _in_flight = BattleInFlight::start(state.role.name());
    let req = body.into_inner();
    if req.opponent_id == *who.0 {
        return Err(AppError::new(ErrorCode::ValidationFailed, "you cannot challenge yourself"));
    }
    let idem = key.for_body(&req);
    // Only an opponent the server offered, and a bot at the rating it was offered
    // at: checked here to fetch the defense, and again inside the write.
    let me = who.record();
    let offered = arena::offered(me, &req.opponent_id, state.clock.now()).map_err(AppError::from)?.clone();
    // The defense is the opponent's team as it stands at challenge time.
    let bot = offered.bot_rating.zip(arena::bot_number(&offered.id));
    let (defense, defender_rating, defender_id) = if let Some((rating, n)) = bot {
        (arena::bot_team(&state.data.catalog, rating, n), rating, None)
    } else {
        let d = state
            .store
            .player_by_id(&offered.id)
            .await?
            .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such opponent"))?;
        (team_snapshot(&d, &state.data.catalog), d.arena_rating, Some(d.id))
    };
    let (data, now, seed) = (state.data.clone(), state.clock.now(), rng::fresh_seed());
    let battle_id = crate::store::time_ordered_id();
    let player_id = who.0.clone();
    let opponent = defender_id.clone();
    let opponent_id = req.opponent_id.clone();
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        let (rules, mail_days) = (&data.battle.arena, data.rewards.mail.expiry_days);
        // Again on the record being written: a newer offer may have replaced it.
        arena::offered(p, &opponent_id, now)?;
        let defense_now = arena::Defense { team: &defense, rating: defender_rating };
        let c = arena::challenge(rules, &data.catalog, p, defense_now, seed, now, mail_days)?;
        let rec = record(&battle_id, "arena", &c.log, (&player_id, opponent.clone()), (c.team, defense.clone()), now);
        let event = DomainEvent::ArenaFinished {
            battle_id: battle_id.clone(),
            opponent_id: opponent.clone(),
            winner: c.log.winner,
            rating_change: c.change,
        };
        let view = ChallengeView {
            battle_id: battle_id.clone(),
            opponent_id: opponent.clone().unwrap_or_else(|| "bot".into()),
            winner: c.log.winner,
            rating_before: c.rating_before,
            rating_after: p.arena_rating,
            rating_change: c.change,
            rewards: ArenaRewards { arena_medals: c.medals, gold: c.gold },
            balances_after: p.balances,
            log: c.log,
        };
        Ok(Applied::new(LedgerReason::ArenaChallenge, battle_id.clone(), view)
            .with_battle(rec.0, rec.1)
            .with_event(event))
    })
    .await?;
    if written.fresh {
        count_battle("arena", written.view.winner);
        if let Some(defender) = &defender_id {
            apply_defense(&state, defender, &written.view.battle_id, written.view.rating_change.defender).await;
        }
    }
    Ok(respond(&written))
}

/// Moves the defender's rating. A separate write on another player, keyed by the
/// battle id so a retry cannot apply it twice; a failure is logged, never hidden
/// from operators, and does not undo the attacker's finished challenge.
async fn apply_defense(state: &AppState, defender: &str, battle_id: &str, change: i64) {
    let (data, now) = (state.data.clone(), state.clock.now());
    let key = IdempotencyRequest { key: format!("arena-defense-{battle_id}"), fingerprint: battle_id.to_string() };
    let ref_id = battle_id.to_string();
    let written = write(state, defender, Some(key), move |p: &mut Player| {
        arena::defend(&data.battle.arena, p, change, now, data.rewards.mail.expiry_days);
        Ok(Applied::new(LedgerReason::ArenaDefense, ref_id.clone(), ()))
    })
    .await;
    if let Err(e) = written {
        tracing::error!(defender, battle_id, error = %e, "arena: defender rating not updated");
    }
}

/// A stored battle and its re-simulated log.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayView {
    /// What was stored.
    pub battle: BattleRecord,
    /// The battle fought again from its seed and teams.
    pub log: BattleLog,
}

/// `/api/battle/replays/{battle_id}`: A stored battle, re-simulated.
#[utoipa::path(
    get,
    path = "/api/battle/replays/{battle_id}",
    params(("battle_id" = String, Path)),
    responses((status = 200, description = "OK", body = ReplayView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "A stored battle, re-simulated"
)]
#[get("/api/battle/replays/{battle_id}")]
async fn get_replay(
    state: web::Data<AppState>,
    who: AuthPlayer,
    battle_id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let not_found = || AppError::new(ErrorCode::NotFound, "no such battle");
    let value = state.store.battle(&battle_id).await?.ok_or_else(not_found)?;
    let rec: BattleRecord = serde_json::from_value(value)
        .map_err(|e| AppError::internal(anyhow::anyhow!("decoding battle {battle_id}: {e}")))?;
    if rec.player_id != *who.0 && rec.opponent_id.as_deref() != Some(who.0.as_str()) {
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
    Ok(HttpResponse::Ok().json(ReplayView { battle: rec, log }))
}
