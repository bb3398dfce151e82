//! Persistence behind domain operations that are atomic as a whole.
//!
//! Every write to a player goes through [`Store::mutate`]: the store loads the
//! player, brings lazy values up to date, runs a pure rule on it and then, in
//! one atomic unit, writes the new player (guarded by its version), one ledger
//! entry per changed currency, any history rows and the idempotency record.

pub mod embedded;
pub mod events;
pub mod mongo;
pub mod shared;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::game::economy::{Balances, Currency};
use crate::game::error::GameError;
use crate::game::player::Player;
use crate::game::quests::Activity;
pub use shared::{SharedChange, SharedDoc, SharedDocs, SharedMutation};

/// A fault of the storage itself (never a rule refusal).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The username is taken (case-insensitively).
    #[error("username is taken")]
    UsernameTaken,
    /// The backend could not be reached or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// Too many concurrent writers on one player; safe to retry.
    #[error("too much contention, retry")]
    Contention,
}

/// One currency change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    /// Position in the player's ledger (increasing).
    pub seq: u64,
    /// Whose.
    pub player_id: String,
    /// Which currency.
    pub currency: Currency,
    /// Signed change.
    pub delta: i64,
    /// Balance after the change.
    pub balance_after: i64,
    /// Why.
    pub reason: LedgerReason,
    /// What caused it (summon id, battle id, claim id).
    pub ref_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Why a player's record changed: the ledger reason of every currency change, and
/// of a change that moved no currency. Stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerReason {
    /// A new player's starting balances.
    StartingGrant,
    /// A gacha summon.
    Summon,
    /// A campaign fight.
    CampaignFight,
    /// A campaign sweep.
    CampaignSweep,
    /// An arena challenge (the attacker's side).
    ArenaChallenge,
    /// An arena defense (the defender's rating).
    ArenaDefense,
    /// Arena opponents offered (kept for the challenge to be checked against).
    ArenaOffer,
    /// A logout: the player's tokens revoked.
    Logout,
    /// A login attempt that moved the failed-login count.
    LoginAttempt,
    /// A password change (the player's tokens revoked).
    PasswordChange,
    /// The arena season rollover (reward mail, rating reset).
    ArenaSeason,
    /// A hero level-up.
    HeroLevelUp,
    /// A hero promotion.
    HeroPromotion,
    /// An idle-reward claim.
    IdleClaim,
    /// A daily-login claim.
    DailyLogin,
    /// A mail's attachments claimed.
    MailClaim,
    /// A system mail delivered.
    MailDelivered,
    /// An operator's direct credit or correction.
    OperatorGrant,
    /// The team changed.
    Team,
    /// The player's spending controls changed (the cap), or an operator's (minor).
    SpendingControls,
    /// A provably-fair seed committed to or rotated (revealed).
    Fairness,
    /// A daily quest or an achievement tier claimed.
    QuestClaim,
    /// An activity chest opened.
    ChestClaim,
    /// A shop purchase (price debited, item granted).
    ShopPurchase,
    /// A crystal pack bought with real money (the provider's webhook).
    Purchase,
    /// A purchase refunded by the provider.
    Refund,
    /// A redeem code redeemed.
    CodeRedeemed,
    /// A login event's daily reward claimed.
    EventReward,
    /// An abyss tower fight.
    TowerFight,
    /// The abyss tower's weekly board rewards mailed.
    TowerWeek,
    /// The battle pass's premium track unlocked.
    PassUnlock,
    /// Battle pass rewards claimed.
    PassClaim,
    /// A battle pass season closed (unclaimed rewards mailed).
    PassSeason,
    /// A friend request, answer, removal or block.
    Friends,
    /// A stamina gift sent to a friend (it costs the sender nothing).
    FriendGift,
    /// Received friend gifts claimed.
    FriendGiftClaim,
    /// A guild founded (its price paid).
    GuildCreate,
    /// Guild membership or ranks changed (join, leave, approvals, promotions, removals).
    Guild,
    /// The daily guild donation.
    GuildDonation,
    /// A guild shop purchase.
    GuildShopPurchase,
    /// A guild boss attack.
    GuildBossAttack,
    /// A fallen guild boss's reward mailed.
    GuildBossReward,
    /// A chat message reported.
    ChatReport,
    /// An operator muted or unmuted the player in chat.
    ChatModeration,
    /// A direct correction of a balance (operators; test fixtures).
    Adjustment,
    /// Stamina regenerated over time, written with the next write.
    StaminaRegen,
    /// The daily arena-ticket refill, written with the next write.
    TicketRefill,
}

impl LedgerReason {
    /// Whether a change of this kind is the player acting (not something done
    /// to their record by others, the clock or an operator).
    pub fn is_the_players_own(self) -> bool {
        !matches!(
            self,
            Self::ArenaDefense
                | Self::ArenaSeason
                | Self::MailDelivered
                | Self::OperatorGrant
                | Self::SpendingControls
                | Self::Purchase
                | Self::Refund
                | Self::TowerWeek
                | Self::PassSeason
                | Self::GuildBossReward
                | Self::ChatModeration
                | Self::Adjustment
                | Self::StaminaRegen
                | Self::TicketRefill
        )
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StartingGrant => "starting_grant",
            Self::Summon => "summon",
            Self::CampaignFight => "campaign_fight",
            Self::CampaignSweep => "campaign_sweep",
            Self::ArenaChallenge => "arena_challenge",
            Self::ArenaDefense => "arena_defense",
            Self::ArenaOffer => "arena_offer",
            Self::Logout => "logout",
            Self::LoginAttempt => "login_attempt",
            Self::PasswordChange => "password_change",
            Self::ArenaSeason => "arena_season",
            Self::HeroLevelUp => "hero_level_up",
            Self::HeroPromotion => "hero_promotion",
            Self::IdleClaim => "idle_claim",
            Self::DailyLogin => "daily_login",
            Self::MailClaim => "mail_claim",
            Self::MailDelivered => "mail_delivered",
            Self::OperatorGrant => "operator_grant",
            Self::Team => "team",
            Self::SpendingControls => "spending_controls",
            Self::Fairness => "fairness",
            Self::QuestClaim => "quest_claim",
            Self::ChestClaim => "chest_claim",
            Self::ShopPurchase => "shop_purchase",
            Self::Purchase => "purchase",
            Self::Refund => "refund",
            Self::CodeRedeemed => "code_redeemed",
            Self::EventReward => "event_reward",
            Self::TowerFight => "tower_fight",
            Self::TowerWeek => "tower_week",
            Self::PassUnlock => "pass_unlock",
            Self::PassClaim => "pass_claim",
            Self::PassSeason => "pass_season",
            Self::Friends => "friends",
            Self::FriendGift => "friend_gift",
            Self::FriendGiftClaim => "friend_gift_claim",
            Self::GuildCreate => "guild_create",
            Self::Guild => "guild",
            Self::GuildDonation => "guild_donation",
            Self::GuildShopPurchase => "guild_shop_purchase",
            Self::GuildBossAttack => "guild_boss_attack",
            Self::GuildBossReward => "guild_boss_reward",
            Self::ChatReport => "chat_report",
            Self::ChatModeration => "chat_moderation",
            Self::Adjustment => "adjustment",
            Self::StaminaRegen => "stamina_regen",
            Self::TicketRefill => "ticket_refill",
        }
    }
}

/// A row of a player's history (one gacha pull, for now), stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// Position in the player's history (increasing).
    pub seq: u64,
    /// Whose.
    pub player_id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The row itself.
    pub data: serde_json::Value,
}

/// The response kept with an idempotency key, replayed on a repeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body, as the text it was first written as: serialized once from the
    /// view (no `Value` tree built per write), stored and replayed verbatim.
    #[serde(deserialize_with = "raw_json_from_any")]
    pub body: Box<serde_json::value::RawValue>,
}

/// Reads a JSON body from any deserializer: straight from text, and also from
/// inside an export row, which serde buffers first to find its `type` tag (a
/// `RawValue` cannot be read from that buffer). Object keys keep their order.
fn raw_json_from_any<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Box<serde_json::value::RawValue>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    serde_json::value::to_raw_value(&value).map_err(serde::de::Error::custom)
}

impl StoredResponse {
    /// `body` serialized as JSON.
    pub fn json(status: u16, body: &impl Serialize) -> Result<Self, serde_json::Error> {
        Ok(Self { status, body: serde_json::value::to_raw_value(body)? })
    }
}

/// Equal when the status and the body's text are: a replay is byte-for-byte the first answer.
impl PartialEq for StoredResponse {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status && self.body.get() == other.body.get()
    }
}

/// An idempotency key and the fingerprint of the request that carried it.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest {
    /// Client-chosen key.
    pub key: String,
    /// Hash of what was asked (route and body).
    pub fingerprint: String,
}

/// What a successful rule produced, for the store to write with the player.
#[derive(Debug, Clone)]
pub struct Effects {
    /// Ledger reason for every currency change.
    pub reason: LedgerReason,
    /// Ledger reference (summon id, claim id).
    pub ref_id: String,
    /// History rows to append (JSON, in order); moved out into the history rows
    /// once the rule ran.
    pub history: Vec<serde_json::Value>,
    /// Battles to keep for replays: (battle id, record).
    pub battles: Vec<(String, serde_json::Value)>,
    /// The domain event of the action, if it is one consumers care about.
    pub event: Option<events::DomainEvent>,
    /// The response to return and keep with the idempotency key.
    pub response: StoredResponse,
    /// The W3C trace context of the request that made the change, carried by
    /// its events (see `platform::tracing_otlp`).
    pub traceparent: Option<String>,
}

/// A pure rule run on the up-to-date player; may be re-run on a retry.
pub type Mutation = Arc<dyn Fn(&mut Player) -> Result<Effects, GameError> + Send + Sync>;

/// How a mutation ended, short of a storage fault.
#[derive(Debug)]
pub enum MutateOutcome {
    /// Applied now; the player after it.
    Applied(StoredResponse, Box<Player>),
    /// The key was seen before with the same request: the first response.
    Replayed(StoredResponse),
    /// The key was seen before with a different request.
    KeyReused,
    /// The rule refused; nothing was written.
    Rejected(GameError),
    /// No such player.
    PlayerNotFound,
}

/// A page of a newest-first list.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// Items, newest first.
    pub items: Vec<T>,
    /// Pass back as `before` for the next page; `None` at the end.
    pub next_before: Option<u64>,
}

/// How long expiring records are kept (the embedded store prunes them, MongoDB
/// expires them with TTL indexes).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Idempotency records.
    pub idempotency: Duration,
    /// Summon history rows.
    pub history: Duration,
    /// Chat messages.
    pub chat: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            idempotency: Duration::from_hours(24),
            history: Duration::from_hours(90 * 24),
            chat: Duration::from_hours(30 * 24),
        }
    }
}

/// A new id that sorts by creation time (UUIDv7, 32 hex digits): rows keyed by
/// such ids (events, battles) are appended at the end of their B-tree instead
/// of landing on a random page, so a group commit rewrites a few pages, not one
/// per row.
pub fn time_ordered_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Ledger and history sequence numbers: the player version in the high bits, the
/// position within that write in the low 8, so that they increase per player
/// without a shared counter.
pub fn seq(version: u64, i: usize) -> u64 {
    (version << 8) | (i as u64 & 0xff)
}

/// Ledger entries for the change of `player`'s balances from `from` to `to`, at
/// positions `first..` of the write at `player.version`.
fn entries_between(
    player: &Player,
    from: &Balances,
    to: &Balances,
    first: usize,
    reason: impl Fn(Currency) -> LedgerReason,
    ref_id: &str,
    at: DateTime<Utc>,
) -> Vec<LedgerEntry> {
    to.deltas_since(from)
        .into_iter()
        .enumerate()
        .map(|(i, (currency, delta))| LedgerEntry {
            seq: seq(player.version, first + i),
            player_id: player.id.clone(),
            currency,
            delta,
            balance_after: to.get(currency),
            reason: reason(currency),
            ref_id: ref_id.to_string(),
            at,
        })
        .collect()
}

/// Ledger entries for the change from `before` to the player's balances now.
pub fn ledger_entries(
    player: &Player,
    before: &Balances,
    reason: LedgerReason,
    ref_id: &str,
    at: DateTime<Utc>,
) -> Vec<LedgerEntry> {
    entries_between(player, before, &player.balances, 0, |_| reason, ref_id, at)
}

/// History rows for a write at `player.version`.
pub fn history_rows(player: &Player, rows: Vec<serde_json::Value>, at: DateTime<Utc>) -> Vec<HistoryRow> {
    rows.into_iter()
        .enumerate()
        .map(|(i, data)| HistoryRow { seq: seq(player.version, i), player_id: player.id.clone(), at, data })
        .collect()
}

/// Everything one applied mutation writes.
pub struct PreparedWrite {
    /// The player after the rule, version bumped.
    pub player: Player,
    /// What the rule produced.
    pub effects: Effects,
    /// One entry per changed currency.
    pub ledger: Vec<LedgerEntry>,
    /// History rows.
    pub history: Vec<HistoryRow>,
    /// Events for the outbox.
    pub events: Vec<events::Event>,
}

/// Runs a mutation on a loaded player: refresh, rule, version bump, ledger.
/// Shared by both stores so that they apply rules identically.
pub fn apply_mutation(
    mut player: Player,
    op: impl FnOnce(&mut Player) -> Result<Effects, GameError>,
    now: DateTime<Utc>,
) -> Result<PreparedWrite, GameError> {
    let stored = player.balances;
    player.refresh(now);
    let before = player.balances;
    let mut effects = op(&mut player)?;
    player.version += 1;
    if effects.reason.is_the_players_own() {
        player.active_on = Some(now.date_naive());
    }
    // What the clock gave since the last write (stamina, the daily tickets) is
    // ledgered first, under its own reason, so the entries chain to every
    // stored balance; then the rule's own change.
    let mut ledger = entries_between(
        &player,
        &stored,
        &before,
        0,
        |c| if c == Currency::ArenaTickets { LedgerReason::TicketRefill } else { LedgerReason::StaminaRegen },
        "",
        now,
    );
    let rule =
        entries_between(&player, &before, &player.balances, ledger.len(), |_| effects.reason, &effects.ref_id, now);
    ledger.extend(rule);
    // Quest progress is counted in the same write as the action that earns it.
    for (activity, n) in quest_activities(&effects, &ledger) {
        player.quests.count(activity, n, now);
    }
    // The rows move into the history; the effects keep what the stores read later.
    let history = history_rows(&player, std::mem::take(&mut effects.history), now);
    let events = events::for_mutation(&player, &effects, &ledger, now);
    Ok(PreparedWrite { player, effects, ledger, history, events })
}

/// What one write counts towards quests, from what it did: its ledger reason,
/// its domain event and its currency changes; counted inside the write, so both
/// stores count the same.
fn quest_activities(effects: &Effects, ledger: &[LedgerEntry]) -> Vec<(Activity, u64)> {
    use events::DomainEvent;
    use LedgerReason as R;
    let mut out = Vec::new();
    let reason = effects.reason;
    match reason {
        R::DailyLogin => out.push((Activity::DailyLogin, 1)),
        R::HeroLevelUp => out.push((Activity::HeroLevelUp, 1)),
        R::IdleClaim => out.push((Activity::IdleClaim, 1)),
        R::FriendGift => out.push((Activity::FriendGift, 1)),
        _ => {}
    }
    match &effects.event {
        Some(DomainEvent::GachaSummoned { results, .. }) => {
            out.push((Activity::Summon, 1));
            out.push((Activity::Pull, results.len() as u64));
        }
        Some(DomainEvent::BattleFinished { stars, times, .. }) if *stars > 0 => {
            out.push((Activity::CampaignWin, u64::from(*times)));
        }
        Some(DomainEvent::ArenaFinished { winner, .. }) if reason == R::ArenaChallenge => {
            out.push((Activity::ArenaChallenge, 1));
            if *winner == crate::game::battle::Side::Attacker {
                out.push((Activity::ArenaWin, 1));
            }
        }
        _ => {}
    }
    // Stamina spent playing (fights and sweeps; not an operator's correction).
    let spent: i64 = ledger
        .iter()
        .filter(|e| e.currency == Currency::Stamina && e.delta < 0)
        .filter(|e| matches!(e.reason, R::CampaignFight | R::CampaignSweep))
        .map(|e| -e.delta)
        .sum();
    out.push((Activity::StaminaSpent, u64::try_from(spent).unwrap_or(0)));
    out
}

/// A leaderboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Board {
    /// Team power.
    Power,
    /// Campaign progress.
    Campaign,
    /// Arena rating.
    Arena,
    /// The abyss tower's weekly board (see `game::battle::tower::board_score`).
    Tower,
}

impl Board {
    /// The board's name (also the field under `scores`).
    pub fn name(self) -> &'static str {
        match self {
            Board::Power => "power",
            Board::Campaign => "campaign",
            Board::Arena => "arena",
            Board::Tower => "tower",
        }
    }

    /// Every board.
    pub const ALL: [Board; 4] = [Board::Power, Board::Campaign, Board::Arena, Board::Tower];

    /// A player's score on this board.
    pub fn score(self, p: &Player) -> u64 {
        self.of_scores(&p.scores)
    }

    /// This board's score among a player's scores.
    pub fn of_scores(self, s: &crate::game::player::Scores) -> u64 {
        match self {
            Board::Power => s.power,
            Board::Campaign => s.campaign,
            Board::Arena => s.arena,
            Board::Tower => s.tower,
        }
    }
}

/// One row of a leaderboard. Equal scores share a rank (1, 2, 2, 4): a rank is
/// one more than the players with a strictly higher score, so it can be counted
/// without walking the board; listed ties come in player-id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoardEntry {
    /// 1-based rank.
    pub rank: u64,
    /// Player id.
    pub player_id: String,
    /// Username.
    pub username: String,
    /// Score.
    pub score: u64,
}

/// Gives a best-first list of a board's top rows their shared ranks.
pub fn rank_from_top(rows: &mut [BoardEntry]) {
    for i in 0..rows.len() {
        rows[i].rank = if i > 0 && rows[i].score == rows[i - 1].score { rows[i - 1].rank } else { i as u64 + 1 };
    }
}

/// A store's connection pool, for the gauge that shows it full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections lent to operations now.
    pub in_use: u64,
    /// Connections open.
    pub open: u64,
    /// The most the pool opens.
    pub max: u64,
}

/// Persistence, as atomic domain operations.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// "embedded" or "mongodb", for health details and logs.
    fn kind(&self) -> &'static str;
    /// Its connection pool, where it has one (MongoDB).
    fn pool(&self) -> Option<PoolStats> {
        None
    }
    /// Answers when the backend is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Creates a player and its starting-grant ledger entries atomically.
    async fn create_player(&self, player: &Player) -> Result<(), StoreError>;
    /// Loads a player by id.
    async fn player_by_id(&self, id: &str) -> Result<Option<Player>, StoreError>;
    /// Loads a player by lower-cased username.
    async fn player_by_username(&self, username_lower: &str) -> Result<Option<Player>, StoreError>;
    /// Up to `limit` players whose lower-cased username starts with `prefix`, by username.
    async fn players_by_username_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Player>, StoreError>;
    /// Applies `op` to the player atomically, with the idempotency key if given.
    async fn mutate(
        &self,
        player_id: &str,
        idempotency: Option<IdempotencyRequest>,
        now: DateTime<Utc>,
        op: Mutation,
    ) -> Result<MutateOutcome, StoreError> {
        let op: SharedMutation = Arc::new(move |p: &mut Player, _: &mut SharedDocs| op(p));
        self.mutate_shared(player_id, idempotency, now, Vec::new(), op).await
    }
    /// As `mutate`, with the shared documents under `keys` read and written in
    /// the same atomic unit (each guarded by the version read).
    async fn mutate_shared(
        &self,
        player_id: &str,
        idempotency: Option<IdempotencyRequest>,
        now: DateTime<Utc>,
        keys: Vec<String>,
        op: SharedMutation,
    ) -> Result<MutateOutcome, StoreError>;
    /// Stores a chat message (its id sorts by time) once per sender and
    /// `Idempotency-Key`: a repeat returns the first message, `false`.
    async fn chat_post(
        &self,
        message: &crate::game::chat::ChatMessage,
        key: &str,
    ) -> Result<(crate::game::chat::ChatMessage, bool), StoreError>;
    /// Up to `limit` messages of a stored channel with ids below `before`, newest first.
    async fn chat_history(
        &self,
        channel: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::game::chat::ChatMessage>, StoreError>;
    /// One message by id.
    async fn chat_message(&self, id: &str) -> Result<Option<crate::game::chat::ChatMessage>, StoreError>;
    /// Deletes up to `limit` messages sent before `before`; how many went. MongoDB
    /// expires them with a TTL index and returns 0.
    async fn prune_chat(&self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError>;
    /// Shared documents by key, in the order asked (`None`: absent).
    async fn shared_docs(&self, keys: &[String]) -> Result<Vec<Option<SharedDoc>>, StoreError>;
    /// Up to `limit` shared documents whose keys start with `prefix` and sort
    /// after `after`, in key order.
    async fn shared_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, SharedDoc)>, StoreError>;
    /// The player's ledger, newest first, entries with `seq < before`.
    async fn ledger(&self, player_id: &str, limit: usize, before: Option<u64>)
        -> Result<Page<LedgerEntry>, StoreError>;
    /// The player's history, newest first, rows with `seq < before`.
    async fn history(&self, player_id: &str, limit: usize, before: Option<u64>)
        -> Result<Page<HistoryRow>, StoreError>;
    /// The top `limit` of a board.
    async fn leaderboard(&self, board: Board, limit: usize) -> Result<Vec<BoardEntry>, StoreError>;
    /// One player's row of a board: rank = 1 + players with a higher score.
    async fn rank(&self, board: Board, player_id: &str) -> Result<Option<BoardEntry>, StoreError>;
    /// A stored battle by id.
    async fn battle(&self, battle_id: &str) -> Result<Option<serde_json::Value>, StoreError>;
    /// Players whose score on `board` lies in `min..=max`, best first.
    async fn board_range(&self, board: Board, min: u64, max: u64, limit: usize) -> Result<Vec<BoardEntry>, StoreError>;
    /// The oldest events not yet handed to the broker.
    async fn outbox_batch(&self, limit: usize) -> Result<Vec<events::OutboxEntry>, StoreError>;
    /// Claims the oldest events not yet handed to the broker for the relay
    /// `owner` until `until`: events another relay holds under a lease not
    /// expired at `now` are left to it, so that relays on several pods publish
    /// each batch once; a lease whose relay died expires and is taken over.
    async fn outbox_claim(
        &self,
        owner: &str,
        limit: usize,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<events::OutboxEntry>, StoreError>;
    /// Moves entries of one `outbox_batch` answer to the unconsumed events, just
    /// before they are published: they stay there until a consumer applied them,
    /// so that events a broker loses after accepting them can be published again.
    async fn outbox_relayed(&self, entries: &[events::OutboxEntry]) -> Result<(), StoreError>;
    /// Events not yet handed to the broker.
    async fn outbox_len(&self) -> Result<u64, StoreError>;
    /// Published events no consumer has applied yet, in event-id order after
    /// `after` (an event id); their keys are their event ids.
    async fn unconsumed(&self, after: Option<String>, limit: usize) -> Result<Vec<events::OutboxEntry>, StoreError>;
    /// How many published events no consumer has applied yet.
    async fn unconsumed_len(&self) -> Result<u64, StoreError>;
    /// Applies events' effects for `consumer` at most once each, in one atomic
    /// write: records each new event id, adds its counters and keeps its audit
    /// entry, and forgets the `delivered` event ids as unconsumed. Returns, per
    /// item, whether it was new.
    async fn consume_batch(
        &self,
        consumer: &str,
        items: &[events::ConsumeItem],
        delivered: &[String],
    ) -> Result<Vec<bool>, StoreError>;
    /// Counters whose name starts with `prefix`.
    async fn counters(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError>;
    /// Audit entries (economy events), oldest first, for tests and operators.
    async fn audit_count(&self, kind: &str) -> Result<u64, StoreError>;
    /// Deletes up to `limit` idempotency records written before `idempotency_before`,
    /// up to `limit` writes' history rows written before `history_before`, and up
    /// to `limit` per consumer of its marks of events older than
    /// `idempotency_before`, and up to `limit` per banner of its public draw
    /// record older than `history_before`; returns how many rows went. Stores that expire them
    /// by themselves (MongoDB TTL indexes) return 0.
    async fn prune(
        &self,
        idempotency_before: DateTime<Utc>,
        history_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<u64, StoreError>;
    /// Creates many new players in one write, each with its starting ledger and
    /// leaderboard rows but no event (a bulk import for load tests, not a
    /// registration); players whose username is taken are skipped. Returns how
    /// many were created.
    async fn import_players(&self, players: &[Player]) -> Result<usize, StoreError>;
    /// Player ids in id order after `after`, for operator commands that visit everyone.
    async fn player_ids(&self, after: Option<String>, limit: usize) -> Result<Vec<String>, StoreError>;
    /// A banner's public draw record, newest first, before the draw id `before`.
    async fn draws(
        &self,
        banner_id: &str,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<events::Draw>, StoreError>;
    /// A player's kept idempotency records, in key order after `after`, for the
    /// audit to check against their effects and for export.
    async fn idempotency_records(
        &self,
        player_id: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<IdempotencyRecord>, StoreError>;
    /// Kept battle records (for replays) after the id `after`, in id order, for export.
    async fn battles_after(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError>;
    /// Creates a redeem code; false when the code exists already.
    async fn create_code(&self, code: &crate::game::codes::RedeemCode) -> Result<bool, StoreError>;
    /// Every redeem code, by code.
    async fn codes(&self) -> Result<Vec<crate::game::codes::RedeemCode>, StoreError>;
    /// Disables a code; false when there is no such code.
    async fn disable_code(&self, code: &str) -> Result<bool, StoreError>;
    /// Takes one use of `code` for `player_id` at `now`, atomically against
    /// every other pod: refused when unknown, disabled, expired or used up; a
    /// player who took a use before is answered `Reserved` again without a
    /// second one (a retried redemption). The count never passes `max_uses`.
    async fn reserve_code_use(
        &self,
        code: &str,
        player_id: &str,
        now: DateTime<Utc>,
    ) -> Result<crate::game::codes::CodeUse, StoreError>;
    /// The players holding a use of `code`, in id order (for export).
    async fn code_holders(&self, code: &str) -> Result<Vec<String>, StoreError>;
    /// Writes rows as an export holds them (a restore): a player with its
    /// username and leaderboard rows, and ledger, history, idempotency and
    /// battle rows under their own keys. A row already there is replaced, so a
    /// restore can be run again.
    async fn restore(&self, rows: Vec<Restore>) -> Result<(), StoreError>;
}

/// A kept idempotency record: the key, what was asked (its fingerprint) and the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The client's key.
    pub key: String,
    /// The request it was used with.
    pub fingerprint: String,
    /// The answer, replayed on a repeat.
    pub response: StoredResponse,
}

/// One row of an export, as `restore` writes it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Restore {
    /// A player record (balances, heroes, mail, pity, seeds, ...).
    Player {
        /// The record.
        player: Box<Player>,
    },
    /// A ledger entry.
    Ledger {
        /// The entry.
        entry: LedgerEntry,
    },
    /// A history row.
    History {
        /// The row.
        row: HistoryRow,
    },
    /// An idempotency record.
    Idempotency {
        /// Whose.
        player_id: String,
        /// The record.
        record: IdempotencyRecord,
    },
    /// A battle kept for replays.
    Battle {
        /// Battle id.
        id: String,
        /// The record.
        record: serde_json::Value,
    },
    /// A redeem code with its use count.
    Code {
        /// The code.
        code: crate::game::codes::RedeemCode,
    },
    /// A player holding a use of a code.
    CodeHolder {
        /// The code.
        code: String,
        /// The player.
        player_id: String,
    },
    /// A shared document (a friend book, a guild) with its version.
    Shared {
        /// `kind:id`.
        key: String,
        /// The document.
        doc: SharedDoc,
    },
}

/// Ledger entries of a new player's starting balances.
pub fn starting_ledger(player: &Player) -> Vec<LedgerEntry> {
    ledger_entries(player, &Balances::default(), LedgerReason::StartingGrant, &player.id, player.created_at)
}

/// Shared handle to the configured store.
pub type DynStore = Arc<dyn Store>;
