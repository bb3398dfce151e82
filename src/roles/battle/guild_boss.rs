//! The guild boss: a member's attack is an ordinary seeded battle against the
//! boss unit, and its damage comes off the shared HP in the same atomic write
//! as the attacker's daily count (never below 0; the felling attack queues the
//! rewards, which are then mailed, each once).

use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{count_battle, fighting_team, record};
use crate::game::battle::{simulate, BattleLog, Side, TeamSnapshot, RULES_VERSION};
use crate::game::guilds::{self, keys, AttackOutcome, Membership};
use crate::game::player::Player;
use crate::game::rng;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::metrics::BattleInFlight;
use crate::platform::no_body::NoBody;
use crate::roles::guild_state::{self, guild_in, still_member};
use crate::roles::views::{respond, write_shared};
use crate::state::AppState;
use crate::store::events::DomainEvent;
use crate::store::{LedgerReason, SharedDocs};
use crate::writes::Applied;

/// The answer of an attack.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BossAttackView {
    /// Battle id (replayable).
    pub battle_id: String,
    /// What the attack did to the boss.
    pub outcome: AttackOutcome,
    /// The battle (the boss is the defender's only unit).
    pub log: BattleLog,
}

/// `POST /api/battle/guild-boss/attack`.
#[utoipa::path(
    post,
    path = "/api/battle/guild-boss/attack",
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = BossAttackView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Attack the guild's boss (3 a UTC day): a seeded battle of 30 rounds at most whose damage comes off the shared HP, never below 0; the attack that fells it mails every damager's reward by rank and brings the next boss"
)]
#[post("/api/battle/guild-boss/attack")]
pub async fn post_attack(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    _: NoBody,
) -> Result<HttpResponse, AppError> {
    let _in_flight = BattleInFlight::start(state.role.name());
    let idem = key.for_body(&());
    let gid = guild_state::membership(&state, &who.0)
        .await?
        .guild_id
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, "you are not in a guild"))?;
    let (me_key, g_key) = (keys::member(&who.0), keys::guild(&gid));
    let (data, now, seed) = (state.data.clone(), state.clock.now(), rng::fresh_seed());
    let battle_id = crate::store::time_ordered_id();
    let (player_id, guild_id) = (who.0.clone(), gid.clone());
    let keys = vec![me_key.clone(), g_key.clone()];
    let written = write_shared(&state, &who.0, Some(idem), keys, move |p: &mut Player, docs: &mut SharedDocs| {
        let mut me: Membership = docs.get(&me_key)?.unwrap_or_default();
        still_member(&me, &guild_id)?;
        let mut g = guild_in(docs, &g_key)?;
        let team = fighting_team(p, &data.catalog)?;
        // The boss fights at its full strength; the battle's damage is what counts.
        let mut boss: TeamSnapshot = vec![None; 6];
        boss[0] = Some(data.guilds.boss_unit(g.boss.level));
        let log = simulate(RULES_VERSION, seed, &team, &boss);
        let dealt = guilds::damage_dealt(&log);
        let outcome = guilds::attack(&data.guilds, &mut g, &p.id, &mut me, dealt, now)?;
        docs.put(&me_key, &me)?;
        docs.put(&g_key, &g)?;
        let rec = record(&battle_id, "guild_boss", &log, (&player_id, None), (team, boss), now);
        let event = DomainEvent::GuildBossAttacked {
            guild_id: guild_id.clone(),
            boss: outcome.boss,
            battle_id: battle_id.clone(),
            damage: outcome.damage,
            killed: outcome.killed,
        };
        let view = BossAttackView { battle_id: battle_id.clone(), outcome, log };
        Ok(Applied::new(LedgerReason::GuildBossAttack, battle_id.clone(), view)
            .with_battle(rec.0, rec.1)
            .with_event(event))
    })
    .await?;
    if written.fresh {
        count_battle("guild_boss", if written.view.outcome.killed { Side::Attacker } else { Side::Defender });
    }
    if written.view.outcome.killed {
        // Mailed now; what a crash leaves behind goes with the next look at the boss.
        if let Err(e) = guild_state::deliver_payouts(&state, &gid).await {
            tracing::warn!(error = %e.message, guild = %gid, "guild boss rewards not all delivered yet");
        }
    }
    Ok(respond(&written))
}
