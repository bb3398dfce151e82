//! Guild documents as the api and battle roles read them, and the delivery of
//! a fallen boss's rewards (each one atomic with its removal from the guild).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::game::error::GameError;
use crate::game::guilds::{self, keys, Boss, Guild, Membership, Rank};
use crate::game::ids::PlayerId;
use crate::game::player::Player;
use crate::platform::error::{AppError, ErrorCode};
use crate::state::AppState;
use crate::store::{LedgerReason, SharedDocs};
use crate::writes::Applied;

/// A document as `T`, or `None`.
async fn doc<T: serde::de::DeserializeOwned>(state: &AppState, key: String) -> Result<Option<T>, AppError> {
    let found = state.store.shared_docs(&[key]).await?.into_iter().next().flatten();
    found.map(|d| serde_json::from_value(d.doc).map_err(|e| AppError::internal(anyhow::anyhow!(e)))).transpose()
}

/// A player's guild state (default: never in a guild).
pub async fn membership(state: &AppState, player_id: &str) -> Result<Membership, AppError> {
    Ok(doc(state, keys::member(player_id)).await?.unwrap_or_default())
}

/// A guild by id.
pub async fn guild(state: &AppState, guild_id: &str) -> Result<Option<Guild>, AppError> {
    doc(state, keys::guild(guild_id)).await
}

/// The caller's guild (404 when they are in none).
pub async fn my_guild(state: &AppState, player_id: &str) -> Result<Guild, AppError> {
    let m = membership(state, player_id).await?;
    let not_in = || AppError::new(ErrorCode::NotFound, "you are not in a guild");
    let id = m.guild_id.ok_or_else(not_in)?;
    guild(state, &id).await?.ok_or_else(not_in)
}

/// Inside a write: the guild under `key` (it may have been dissolved since it was read).
pub fn guild_in(docs: &SharedDocs, key: &str) -> Result<Guild, GameError> {
    docs.get(key)?.ok_or_else(|| GameError::Conflict("the guild no longer exists".into()))
}

/// Inside a write: the caller is still a member of `guild_id` (their guild may
/// have changed since the route looked it up).
pub fn still_member(me: &Membership, guild_id: &str) -> Result<(), GameError> {
    if me.guild_id.as_deref() == Some(guild_id) {
        Ok(())
    } else {
        Err(GameError::Conflict("your guild changed meanwhile; look again".into()))
    }
}

/// One row of a boss's damage board.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DamageRow {
    /// Rank by damage (ties by player id).
    pub rank: u32,
    /// Member.
    pub player_id: PlayerId,
    /// Their username.
    pub username: String,
    /// Damage dealt to this boss.
    pub damage: u64,
}

/// `GET /api/guilds/mine/boss`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BossView {
    /// Which boss of the guild (1, 2, ...).
    pub number: u32,
    /// Its level.
    pub level: u32,
    /// HP left.
    pub hp: u64,
    /// Full HP.
    pub max_hp: u64,
    /// Damage board, best first.
    pub damage: Vec<DamageRow>,
    /// The caller's attacks left today.
    pub attacks_left: u32,
}

/// The boss as a member sees it.
pub fn boss_view(table: &guilds::GuildTable, g: &Guild, me: &Membership, now: DateTime<Utc>) -> BossView {
    BossView {
        number: g.boss.number,
        level: g.boss.level,
        hp: g.boss.hp,
        max_hp: g.boss.max_hp,
        damage: damage_board(g, &g.boss),
        attacks_left: table.boss.attacks_per_day.saturating_sub(me.attacks_today(now)),
    }
}

fn damage_board(g: &Guild, boss: &Boss) -> Vec<DamageRow> {
    let mut rows: Vec<(&String, &u64)> = boss.damage.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    rows.into_iter()
        .enumerate()
        .map(|(i, (id, dmg))| DamageRow {
            rank: u32::try_from(i + 1).unwrap_or(u32::MAX),
            player_id: PlayerId(id.clone()),
            username: g.members.get(id).map(|m| m.username.clone()).unwrap_or_default(),
            damage: *dmg,
        })
        .collect()
}

/// Whether `player_id` may act for the guild as an officer or its leader.
pub fn is_officer(g: &Guild, player_id: &str) -> bool {
    g.members.get(player_id).is_some_and(|m| m.rank != Rank::Member)
}

/// Mails the rewards of fallen bosses still on the guild: each in one write of
/// the recipient's record and the guild (the mail in, the payout off), so a
/// crash or a second pod delivering at the same time pays each once. Returns
/// how many were delivered now.
pub async fn deliver_payouts(state: &AppState, guild_id: &str) -> Result<usize, AppError> {
    let Some(g) = guild(state, guild_id).await? else { return Ok(0) };
    let writer = state.writer();
    let mut delivered = 0;
    for payout in g.payouts {
        let (data, key, gid) = (state.data.clone(), keys::guild(guild_id), guild_id.to_string());
        let now = state.clock.now();
        let wanted = payout.clone();
        let written = writer
            .mutate_shared(&payout.player_id, None, now, vec![key.clone()], move |p: &mut Player, docs| {
                let mut g = guild_in(docs, &key)?;
                let Some(i) = g.payouts.iter().position(|x| *x == wanted) else {
                    return Ok(Applied::new(LedgerReason::GuildBossReward, gid.clone(), false));
                };
                g.payouts.remove(i);
                let mail_days = data.rewards.mail.expiry_days;
                let fresh = guilds::deliver_payout(&data.guilds, &g.name, &gid, &wanted, p, now, mail_days);
                docs.put(&key, &g)?;
                Ok(Applied::new(LedgerReason::GuildBossReward, format!("{gid}:{}", wanted.boss), fresh))
            })
            .await;
        match written {
            Ok(w) if w.view => delivered += 1,
            Ok(_) => {}
            // A recipient whose account is gone: their payout stays until an operator looks.
            Err(crate::writes::WriteError::PlayerNotFound) => {
                tracing::warn!(player = %payout.player_id, guild = %guild_id, "guild boss reward for a missing player");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(delivered)
}
