//! Live events (LOOPS.md, Live events): dated windows from `config/events.toml`
//! that change rules while they run. Every rule takes the time in, so a test
//! moves its clock into and out of an event.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::battle::campaign::Stage;
use super::data_error::DataError;
use super::error::GameError;
use super::player::Player;
use super::quests::Reward;

/// What an event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Campaign win rewards (gold and xp) ×2.
    DoubleDrops,
    /// Campaign stamina cost −50 %, rounded up.
    StaminaDiscount,
    /// A reward a day, each claimable once during the event.
    LoginEvent,
}

/// One dated event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveEvent {
    /// Stable id (a login event's claim route).
    pub id: String,
    /// Shown to players.
    pub name: String,
    /// What it does.
    pub kind: EventKind,
    /// First instant it applies.
    pub starts_at: DateTime<Utc>,
    /// First instant it no longer applies.
    pub ends_at: DateTime<Utc>,
    /// A login event's rewards, one per day claimed, in order.
    #[serde(default)]
    pub rewards: Vec<Reward>,
}

impl LiveEvent {
    /// Whether it applies at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}

/// `config/events.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTable {
    /// Every event, past ones included (they simply no longer apply).
    #[serde(default)]
    pub event: Vec<LiveEvent>,
}

impl EventTable {
    /// Parses and validates `events.toml`: unique ids, windows that end after
    /// they start, rewards on login events only.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, DataError> {
        let t: EventTable = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        let mut ids = HashSet::new();
        for e in &t.event {
            if !ids.insert(e.id.as_str()) {
                return Err(DataError::new(file, &e.id, "event id used twice"));
            }
            if e.ends_at <= e.starts_at {
                return Err(DataError::new(file, &e.id, "ends_at must be after starts_at"));
            }
            let login = e.kind == EventKind::LoginEvent;
            if login == e.rewards.is_empty() || e.rewards.iter().any(|r| r.amount <= 0) {
                return Err(DataError::new(file, &e.id, "a login_event (and only it) lists positive rewards"));
            }
        }
        Ok(t)
    }

    /// Events running at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> impl Iterator<Item = &LiveEvent> {
        self.event.iter().filter(move |e| e.active(now))
    }

    fn running(&self, kind: EventKind, now: DateTime<Utc>) -> bool {
        self.active(now).any(|e| e.kind == kind)
    }

    /// A campaign stage as it is fought at `now`: win rewards doubled during
    /// double drops, stamina halved (rounded up) during a stamina discount.
    #[must_use]
    pub fn stage_at(&self, mut stage: Stage, now: DateTime<Utc>) -> Stage {
        if self.running(EventKind::DoubleDrops, now) {
            stage.gold *= 2;
            stage.xp *= 2;
        }
        if self.running(EventKind::StaminaDiscount, now) {
            stage.stamina = (stage.stamina + 1) / 2;
        }
        stage
    }
}

/// Claims today's reward of a running login event: the next one in its list,
/// once per UTC day, while rewards are left.
pub fn claim_login_reward(
    table: &EventTable,
    p: &mut Player,
    event_id: &str,
    now: DateTime<Utc>,
) -> Result<(u32, Reward), GameError> {
    let e = table
        .event
        .iter()
        .find(|e| e.id == event_id && e.kind == EventKind::LoginEvent)
        .ok_or_else(|| GameError::NotFound(format!("no login event {event_id:?}")))?;
    if !e.active(now) {
        return Err(GameError::Conflict(format!("event {event_id} is not running")));
    }
    let state = p.login_events.entry(e.id.clone()).or_default();
    let today = now.date_naive();
    if state.last_day == Some(today) {
        return Err(GameError::Conflict(format!("today's reward of {event_id} was already claimed")));
    }
    let Some(reward) = e.rewards.get(state.claimed as usize).copied() else {
        return Err(GameError::Conflict(format!("every reward of {event_id} was claimed")));
    };
    state.claimed += 1;
    state.last_day = Some(today);
    let day = state.claimed;
    p.balances.credit(reward.currency, reward.amount);
    Ok((day, reward))
}
