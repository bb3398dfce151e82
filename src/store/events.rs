//! Domain events, written to the outbox in the same atomic unit as the change
//! that causes them, so that a crash can delay an event but never lose one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Effects, LedgerEntry, LedgerReason};
use crate::game::battle::arena::RatingChange;
use crate::game::battle::Side;
use crate::game::economy::Balances;
use crate::game::gacha::engine::{Grant, PullResult};
use crate::game::player::Player;

/// A domain event with its envelope. Consumers apply each id at most once.
/// On the wire the body adds `kind` and `payload` beside the envelope fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id.
    pub id: String,
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
    /// The W3C `traceparent` of the request that caused it, when traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub body: DomainEvent,
}

impl Event {
    /// The event's kind (`gacha.summoned`, ...), for metrics and the audit log.
    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }
}

/// What happened, one variant per kind. The consumers read these fields and no others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum DomainEvent {
    /// A player registered, with the starting balances.
    #[serde(rename = "player.registered")]
    PlayerRegistered {
        /// Starting balances.
        balances: Balances,
    },
    /// A summon: every pull, in order.
    #[serde(rename = "gacha.summoned")]
    GachaSummoned {
        /// Summon id.
        summon_id: String,
        /// The banner pulled on.
        banner_id: String,
        /// The pulls.
        results: Vec<PullResult>,
        /// The version of the banner's rate table that served them.
        #[serde(default)]
        rates_version: Option<u32>,
    },
    /// A campaign fight or sweep.
    #[serde(rename = "battle.finished")]
    BattleFinished {
        /// Battle id (a fight) or sweep id.
        ref_id: String,
        /// Chapter.
        chapter: u32,
        /// Stage within the chapter.
        stage: u32,
        /// Stars of a fight (a sweep counts as three-star clears).
        stars: u8,
        /// How many clears (1 for a fight, the sweep count otherwise).
        times: u32,
    },
    /// An arena challenge.
    #[serde(rename = "arena.finished")]
    ArenaFinished {
        /// Battle id.
        battle_id: String,
        /// The defending player; `None` for a bot.
        opponent_id: Option<String>,
        /// Who won.
        winner: Side,
        /// Rating changes of both sides.
        rating_change: RatingChange,
    },
    /// An abyss tower fight.
    #[serde(rename = "tower.finished")]
    TowerFinished {
        /// Battle id.
        battle_id: String,
        /// The floor fought.
        floor: u32,
        /// Whether it was cleared.
        cleared: bool,
    },
    /// A daily quest, an achievement tier or an activity chest claimed.
    #[serde(rename = "quest.claimed")]
    QuestClaimed {
        /// The quest id, or `chest:<points>` for a chest.
        quest_id: String,
        /// Activity points it gave (a daily quest).
        points: u32,
    },
    /// A shop purchase.
    #[serde(rename = "shop.purchased")]
    ShopPurchased {
        /// The offer.
        offer_id: String,
        /// How many.
        quantity: u32,
        /// The currency paid in.
        currency: crate::game::economy::Currency,
        /// How much.
        amount: i64,
    },
    /// A purchase with real money credited, or refunded.
    #[serde(rename = "purchase.settled")]
    PurchaseSettled {
        /// The provider's transaction id.
        transaction_id: String,
        /// Crystals credited (negative: taken back by a refund).
        crystals: i64,
        /// Crystals owed after it.
        debt: i64,
    },
    /// A redeem code redeemed.
    #[serde(rename = "code.redeemed")]
    CodeRedeemed {
        /// The code.
        code: String,
    },
    /// Battle pass rewards claimed.
    #[serde(rename = "pass.claimed")]
    PassClaimed {
        /// The season.
        season: u32,
        /// Pass xp when claimed.
        xp: u64,
    },
    /// A friend action between the event's player and another.
    #[serde(rename = "friends.changed")]
    FriendsChanged {
        /// The other player.
        other_id: String,
        /// What happened (`request_sent`, `befriended`, `declined`, `removed`,
        /// `blocked`, `unblocked`, `gift_sent`).
        action: String,
    },
    /// A guild action by the event's player.
    #[serde(rename = "guild.changed")]
    GuildChanged {
        /// The guild.
        guild_id: String,
        /// What happened (`created`, `joined`, `requested`, `left`, `dissolved`,
        /// `approved`, `rejected`, `promoted`, `demoted`, `removed`, `donated`, `shop`).
        action: String,
    },
    /// A guild boss attacked.
    #[serde(rename = "guild.boss_attacked")]
    GuildBossAttacked {
        /// The guild.
        guild_id: String,
        /// Which boss.
        boss: u32,
        /// The battle.
        battle_id: String,
        /// Damage taken off its HP.
        damage: u64,
        /// Whether this attack felled it.
        killed: bool,
    },
    /// A chat message reported by the event's player.
    #[serde(rename = "chat.reported")]
    ChatReported {
        /// The message.
        message_id: String,
        /// Its sender.
        author_id: String,
    },
    /// Balances moved: the ledger entries of one write.
    #[serde(rename = "ledger.changed")]
    LedgerChanged {
        /// Why.
        reason: LedgerReason,
        /// What caused it.
        ref_id: String,
        /// One entry per changed currency.
        entries: Vec<LedgerEntry>,
    },
    /// Any other change to a player (leaderboard scores may have moved).
    #[serde(rename = "player.updated")]
    PlayerUpdated {
        /// Why.
        reason: LedgerReason,
    },
}

impl DomainEvent {
    /// The wire name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PlayerRegistered { .. } => "player.registered",
            Self::GachaSummoned { .. } => "gacha.summoned",
            Self::BattleFinished { .. } => "battle.finished",
            Self::ArenaFinished { .. } => "arena.finished",
            Self::TowerFinished { .. } => "tower.finished",
            Self::QuestClaimed { .. } => "quest.claimed",
            Self::ShopPurchased { .. } => "shop.purchased",
            Self::PurchaseSettled { .. } => "purchase.settled",
            Self::CodeRedeemed { .. } => "code.redeemed",
            Self::PassClaimed { .. } => "pass.claimed",
            Self::FriendsChanged { .. } => "friends.changed",
            Self::GuildChanged { .. } => "guild.changed",
            Self::GuildBossAttacked { .. } => "guild.boss_attacked",
            Self::ChatReported { .. } => "chat.reported",
            Self::LedgerChanged { .. } => "ledger.changed",
            Self::PlayerUpdated { .. } => "player.updated",
        }
    }
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
    /// Pulls to add to the public draw record.
    pub draws: Vec<Draw>,
}

/// One pull in a banner's public draw record: what the banner gave and when,
/// with nothing that names the player or the summon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Draw {
    /// Position in the banner's record (time-ordered; the next page's cursor).
    pub id: String,
    /// The banner.
    pub banner_id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The outcome category.
    pub category: String,
    /// What it gave: a hero id, or an amount and a currency, or shards.
    pub item: String,
    /// For a featured banner's pity-category hero: whether it was featured.
    pub featured: Option<bool>,
    /// Whether hard pity forced it.
    pub pity_triggered: bool,
    /// The version of the banner's rate table that served it.
    pub rates_version: Option<u32>,
}

impl Draw {
    /// The pulls of a `gacha.summoned` event (none for any other event). Ids are
    /// the event's time-ordered id and the pull's position, so a banner's record
    /// sorts by time.
    pub fn of_event(e: &Event) -> Vec<Draw> {
        let DomainEvent::GachaSummoned { banner_id, results, rates_version, .. } = &e.body else { return Vec::new() };
        results
            .iter()
            .enumerate()
            .map(|(i, r)| Draw {
                id: format!("{}{i:02}", e.id),
                banner_id: banner_id.clone(),
                at: e.at,
                category: r.category.clone(),
                item: match &r.grant {
                    Grant::NewHero { hero_id } | Grant::Duplicate { hero_id, .. } => hero_id.clone(),
                    Grant::Currency { currency, amount } => format!("{amount} {currency}"),
                    Grant::Shards { shards, .. } => format!("{shards} shards"),
                },
                featured: r.featured,
                pity_triggered: r.pity_triggered,
                rates_version: *rates_version,
            })
            .collect()
    }
}

/// An outbox row: the event and the store's handle to delete it once relayed.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// Store-specific key.
    pub key: String,
    /// The event.
    pub event: Event,
}

/// The envelope of `body` about `p` as it is after the change.
pub fn event(p: &Player, at: DateTime<Utc>, body: DomainEvent) -> Event {
    Event {
        id: super::time_ordered_id(),
        player_id: p.id.clone(),
        username: p.username.clone(),
        version: p.version,
        scores: p.scores,
        at,
        traceparent: None,
        body,
    }
}

/// The event of a new player.
pub fn registered(p: &Player) -> Vec<Event> {
    vec![event(p, p.created_at, DomainEvent::PlayerRegistered { balances: p.balances })]
}

/// The events of one applied mutation: its domain event, `ledger.changed` when
/// balances moved, or else `player.updated`, so every change reaches consumers.
pub fn for_mutation(p: &Player, effects: &Effects, ledger: &[LedgerEntry], at: DateTime<Utc>) -> Vec<Event> {
    let mut out = Vec::new();
    if let Some(body) = &effects.event {
        out.push(event(p, at, body.clone()));
    }
    if !ledger.is_empty() {
        let body = DomainEvent::LedgerChanged {
            reason: effects.reason,
            ref_id: effects.ref_id.clone(),
            entries: ledger.to_vec(),
        };
        out.push(event(p, at, body));
    }
    if out.is_empty() {
        out.push(event(p, at, DomainEvent::PlayerUpdated { reason: effects.reason }));
    }
    for e in &mut out {
        e.traceparent.clone_from(&effects.traceparent);
    }
    out
}
