//! Domain events, written to the outbox in the same atomic unit as the change
//! that causes them, so that a crash can delay an event but never lose one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Effects, LedgerEntry};
use crate::game::player::Player;

/// A domain event. Consumers apply each id at most once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id.
    pub id: String,
    /// `player.registered`, `gacha.summoned`, `battle.finished`, `arena.finished`,
    /// `ledger.changed`, `player.updated`.
    pub kind: String,
    /// The player it is about.
    pub player_id: String,
    /// Their username (leaderboards show it).
    pub username: String,
    /// The player's version after the change (orders a player's events).
    pub version: u64,
    /// The player's leaderboard scores after the change.
    pub scores: crate::game::player::Scores,
    /// When.
    pub at: DateTime<Utc>,
    /// Kind-specific detail.
    pub payload: Value,
}

/// What a consumer does for one event, applied at most once per event id.
#[derive(Debug, Clone)]
pub struct ConsumeItem {
    /// The event's id.
    pub event_id: String,
    /// Counters to add.
    pub counters: Vec<(String, i64)>,
    /// The event to keep in the audit log, if it is an economy event.
    pub audit: Option<Event>,
}

/// An outbox row: the event and the store's handle to delete it once relayed.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// Store-specific key.
    pub key: String,
    /// The event.
    pub event: Event,
}

fn event(kind: &str, p: &Player, at: DateTime<Utc>, payload: Value) -> Event {
    Event {
        id: uuid::Uuid::new_v4().simple().to_string(),
        kind: kind.to_string(),
        player_id: p.id.clone(),
        username: p.username.clone(),
        version: p.version,
        scores: p.scores,
        at,
        payload,
    }
}

/// The domain event a ledger reason stands for, if any.
fn domain_kind(reason: &str) -> Option<&'static str> {
    match reason {
        "summon" => Some("gacha.summoned"),
        "campaign_fight" | "campaign_sweep" => Some("battle.finished"),
        "arena_challenge" => Some("arena.finished"),
        _ => None,
    }
}

/// The event of a new player.
pub fn registered(p: &Player) -> Vec<Event> {
    vec![event("player.registered", p, p.created_at, json!({"balances": p.balances}))]
}

/// The events of one applied mutation: its domain event, `ledger.changed` when
/// balances moved, or else `player.updated`, so every change reaches consumers.
pub fn for_mutation(p: &Player, effects: &Effects, ledger: &[LedgerEntry], at: DateTime<Utc>) -> Vec<Event> {
    let mut out = Vec::new();
    if let Some(kind) = domain_kind(&effects.reason) {
        out.push(event(kind, p, at, effects.response.body.clone()));
    }
    if !ledger.is_empty() {
        out.push(event(
            "ledger.changed",
            p,
            at,
            json!({"reason": effects.reason, "ref_id": effects.ref_id, "entries": ledger}),
        ));
    }
    if out.is_empty() {
        out.push(event("player.updated", p, at, json!({"reason": effects.reason})));
    }
    out
}
