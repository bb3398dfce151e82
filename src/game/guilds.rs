//! Guilds (SOCIAL.md, Guilds): creation, joining (open or by approval), roles
//! and their powers, leaving with a cooldown, succession and dissolution,
//! levels from daily donations, the guild shop and the shared boss. Pure rules
//! on the guild's document and its members' [`Membership`] documents; the store
//! writes every document an action touches in one atomic write.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::battle::{BattleLog, Side, UnitSnapshot};
use super::catalog::{Class, Element, Stats};
use super::data_error::DataError;
use super::error::GameError;
use super::player::Player;
use super::quests::Reward;
use super::shop::LimitedOffer;

/// `config/guilds.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuildTable {
    /// What founding a guild costs.
    pub create_price: Reward,
    /// Officers a guild can have.
    pub max_officers: usize,
    /// Members at level 1.
    pub base_members: usize,
    /// More members per level above 1.
    pub members_per_level: usize,
    /// The highest level.
    pub max_level: u32,
    /// Xp from level L to L + 1 is `xp_per_level × L`.
    pub xp_per_level: u64,
    /// Hours a player who left (or was removed) waits before joining a guild.
    pub rejoin_hours: i64,
    /// Join requests a guild keeps waiting at most.
    pub max_join_requests: usize,
    /// The daily donation tiers, in the order of `DonationTier`.
    pub donations: Vec<Donation>,
    /// The guild boss.
    pub boss: BossRules,
    /// The guild shop (prices in guild coins, limits per UTC day).
    pub shop: Vec<LimitedOffer>,
}

/// A donation tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DonationTier {
    /// 10,000 gold.
    Gold,
    /// 50 crystals.
    Crystals,
    /// 200 crystals.
    CrystalsLarge,
}

/// What one donation costs and gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Donation {
    /// Which tier.
    pub tier: DonationTier,
    /// The price.
    pub price: Reward,
    /// Guild xp it adds.
    pub xp: u64,
    /// Guild coins it gives the donor.
    pub coins: i64,
}

/// `[boss]` of `config/guilds.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BossRules {
    /// The boss's HP is this × the guild's level.
    pub hp_per_level: u64,
    /// Attacks per member per UTC day.
    pub attacks_per_day: u32,
    /// Its name as the battle log shows it.
    pub hero_id: String,
    /// Element.
    pub element: Element,
    /// Class.
    pub class: Class,
    /// Attack at level 1, and added per level.
    pub atk: (u32, u32),
    /// Defense at level 1, and added per level.
    pub def: (u32, u32),
    /// Speed.
    pub spd: u32,
    /// Rewards by damage rank when the boss falls, best first: each applies up to its rank.
    pub rank_rewards: Vec<RankReward>,
}

/// Rewards for the damage ranks up to `up_to_rank`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RankReward {
    /// The last rank this applies to.
    pub up_to_rank: u32,
    /// What each of those ranks gets.
    pub reward: Vec<Reward>,
}

impl GuildTable {
    /// Parses and validates `guilds.toml`.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, DataError> {
        let t: GuildTable = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        if t.create_price.amount <= 0 || t.max_level == 0 || t.base_members == 0 || t.xp_per_level == 0 {
            return Err(DataError::new(file, "(file)", "prices, levels, sizes and xp must be positive"));
        }
        let tiers: Vec<DonationTier> = t.donations.iter().map(|d| d.tier).collect();
        if tiers != [DonationTier::Gold, DonationTier::Crystals, DonationTier::CrystalsLarge] {
            return Err(DataError::new(file, "donations", "needs the tiers gold, crystals, crystals_large, in order"));
        }
        if t.donations.iter().any(|d| d.price.amount <= 0 || d.xp == 0 || d.coins <= 0) {
            return Err(DataError::new(file, "donations", "prices, xp and coins must be positive"));
        }
        let b = &t.boss;
        if b.hp_per_level == 0 || b.attacks_per_day == 0 || b.rank_rewards.is_empty() {
            return Err(DataError::new(file, "boss", "needs HP, attacks and rank rewards"));
        }
        if b.rank_rewards.windows(2).any(|w| w[0].up_to_rank >= w[1].up_to_rank) {
            return Err(DataError::new(file, "boss.rank_rewards", "ranks must increase"));
        }
        let mut ids = std::collections::HashSet::new();
        for o in &t.shop {
            if !o.id.starts_with("guild_") || !ids.insert(o.id.clone()) {
                return Err(DataError::new(file, &o.id, "guild shop ids start with guild_ and are unique"));
            }
            if o.price.currency != super::economy::Currency::GuildCoins || o.price.amount <= 0 || o.limit == 0 {
                return Err(DataError::new(file, &o.id, "needs a positive guild_coins price and limit"));
            }
        }
        Ok(t)
    }

    /// Members a guild of `level` holds.
    pub fn capacity(&self, level: u32) -> usize {
        self.base_members + self.members_per_level * (level.saturating_sub(1) as usize)
    }

    /// The donation of a tier.
    pub fn donation(&self, tier: DonationTier) -> Donation {
        // Validated: one entry per tier, in order.
        self.donations.iter().copied().find(|d| d.tier == tier).unwrap_or(self.donations[0])
    }

    /// The boss of a guild at `level`: full HP and its battle unit.
    pub fn boss_unit(&self, level: u32) -> UnitSnapshot {
        let b = &self.boss;
        let grow = |(base, per): (u32, u32)| base.saturating_add(per.saturating_mul(level.saturating_sub(1)));
        let hp = u32::try_from(self.boss_hp(level)).unwrap_or(u32::MAX);
        UnitSnapshot {
            hero_id: b.hero_id.clone(),
            element: b.element,
            class: b.class,
            stats: Stats { hp, atk: grow(b.atk), def: grow(b.def), spd: b.spd },
        }
    }

    /// The boss's full HP at `level`.
    pub fn boss_hp(&self, level: u32) -> u64 {
        self.boss.hp_per_level * u64::from(level.max(1))
    }

    /// The rewards of a damage rank (from 1), if any.
    pub fn rank_reward(&self, rank: u32) -> Option<&[Reward]> {
        self.boss.rank_rewards.iter().find(|r| rank <= r.up_to_rank).map(|r| r.reward.as_slice())
    }
}

/// Shared-document keys.
pub mod keys {
    /// A guild.
    pub fn guild(id: &str) -> String {
        format!("guild:{id}")
    }
    /// A guild name's claim (lower-cased): unique names, and the search's index.
    pub fn name(name_lower: &str) -> String {
        format!("guildname:{name_lower}")
    }
    /// The prefix of every name claim.
    pub const NAME_PREFIX: &str = "guildname:";
    /// A player's membership.
    pub fn member(player_id: &str) -> String {
        format!("member:{player_id}")
    }
}

/// How players get in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinPolicy {
    /// Anyone may join while there is room.
    Open,
    /// An officer or the leader approves each request.
    Approval,
}

/// A member's rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rank {
    /// Promotes, demotes and removes anyone; one per guild.
    Leader,
    /// Approves requests and removes members; up to 3.
    Officer,
    /// Donates, shops and fights the boss.
    Member,
}

/// A member as the guild keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    /// Username when they joined.
    pub username: String,
    /// Their rank.
    pub rank: Rank,
    /// When they joined (succession goes to the longest-standing).
    pub joined_at: DateTime<Utc>,
}

/// A join request waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JoinRequest {
    /// The applicant's username.
    pub username: String,
    /// When asked.
    pub at: DateTime<Utc>,
}

/// The guild's current boss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Boss {
    /// Which boss of the guild (1, 2, ...).
    pub number: u32,
    /// Its level (the guild's when it appeared).
    pub level: u32,
    /// HP left.
    pub hp: u64,
    /// Full HP.
    pub max_hp: u64,
    /// Damage by member id.
    pub damage: BTreeMap<String, u64>,
}

/// A boss reward still to be mailed (kept on the guild until delivered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Payout {
    /// The boss that fell.
    pub boss: u32,
    /// Who.
    pub player_id: String,
    /// Their damage rank.
    pub rank: u32,
    /// Their damage.
    pub damage: u64,
}

/// A guild's document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guild {
    /// Id.
    pub id: String,
    /// Name as founded.
    pub name: String,
    /// Tag (2-5 letters, upper-cased).
    pub tag: String,
    /// Join policy.
    pub join_policy: JoinPolicy,
    /// When founded.
    pub created_at: DateTime<Utc>,
    /// Level (1-10).
    pub level: u32,
    /// Xp into the level.
    pub xp: u64,
    /// Members by player id.
    pub members: BTreeMap<String, Member>,
    /// Join requests by player id.
    pub requests: BTreeMap<String, JoinRequest>,
    /// The current boss.
    pub boss: Boss,
    /// Rewards of fallen bosses not delivered yet.
    #[serde(default)]
    pub payouts: Vec<Payout>,
}

/// A player's guild state (their side: which guild, cooldown, daily counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The guild, while a member.
    #[serde(default)]
    pub guild_id: Option<String>,
    /// When they last left or were removed (the rejoin cooldown runs from it).
    #[serde(default)]
    pub left_at: Option<DateTime<Utc>>,
    /// The day of their last donation.
    #[serde(default)]
    pub donated_on: Option<NaiveDate>,
    /// Boss attacks on `attacks_on`.
    #[serde(default)]
    pub attacks: u32,
    /// The day `attacks` counts.
    #[serde(default)]
    pub attacks_on: Option<NaiveDate>,
}

impl Membership {
    /// Boss attacks made today.
    pub fn attacks_today(&self, now: DateTime<Utc>) -> u32 {
        if self.attacks_on == Some(now.date_naive()) {
            self.attacks
        } else {
            0
        }
    }
}

fn check_name(name: &str, tag: &str) -> Result<(String, String), GameError> {
    let name = name.trim();
    let n = name.chars().count();
    if !(3..=20).contains(&n) || name.chars().any(char::is_control) {
        return Err(GameError::Invalid("a guild name is 3-20 characters".into()));
    }
    let tag = tag.trim();
    if !(2..=5).contains(&tag.len()) || !tag.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(GameError::Invalid("a guild tag is 2-5 letters".into()));
    }
    Ok((name.to_string(), tag.to_ascii_uppercase()))
}

/// A guild name's lower-cased form (uniqueness and search).
pub fn name_lower(name: &str) -> String {
    name.trim().to_lowercase()
}

fn may_join(table: &GuildTable, me: &Membership, now: DateTime<Utc>) -> Result<(), GameError> {
    if me.guild_id.is_some() {
        return Err(GameError::Conflict("you are in a guild already; leave it first".into()));
    }
    if let Some(left) = me.left_at {
        let until = left + chrono::Duration::hours(table.rejoin_hours);
        if now < until {
            return Err(GameError::Conflict(format!("you can join a guild again at {}", until.to_rfc3339())));
        }
    }
    Ok(())
}

fn fresh_boss(table: &GuildTable, number: u32, level: u32) -> Boss {
    let hp = table.boss_hp(level);
    Boss { number, level, hp, max_hp: hp, damage: BTreeMap::new() }
}

/// Founds a guild: the price debited, the founder its leader.
#[allow(clippy::too_many_arguments)] // one rule, each input named where it is called
pub fn create(
    table: &GuildTable,
    p: &mut Player,
    me: &mut Membership,
    name_taken: bool,
    id: &str,
    (name, tag): (&str, &str),
    join_policy: JoinPolicy,
    now: DateTime<Utc>,
) -> Result<Guild, GameError> {
    let (name, tag) = check_name(name, tag)?;
    may_join(table, me, now)?;
    if name_taken {
        return Err(GameError::Conflict(format!("a guild named {name:?} exists")));
    }
    p.balances.debit(table.create_price.currency, table.create_price.amount)?;
    me.guild_id = Some(id.to_string());
    let mut members = BTreeMap::new();
    members.insert(p.id.clone(), Member { username: p.username.clone(), rank: Rank::Leader, joined_at: now });
    Ok(Guild {
        id: id.to_string(),
        name,
        tag,
        join_policy,
        created_at: now,
        level: 1,
        xp: 0,
        members,
        requests: BTreeMap::new(),
        boss: fresh_boss(table, 1, 1),
        payouts: Vec::new(),
    })
}

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinOutcome {
    /// A member now (open guild).
    Joined,
    /// Waiting for an officer's approval.
    Requested,
}

/// Joins an open guild, or asks to join one by approval.
pub fn join(
    table: &GuildTable,
    g: &mut Guild,
    p: &Player,
    me: &mut Membership,
    now: DateTime<Utc>,
) -> Result<JoinOutcome, GameError> {
    may_join(table, me, now)?;
    if g.members.len() >= table.capacity(g.level) {
        return Err(GameError::LimitReached(format!("{} is full ({} members)", g.name, g.members.len())));
    }
    match g.join_policy {
        JoinPolicy::Open => {
            g.members.insert(p.id.clone(), Member { username: p.username.clone(), rank: Rank::Member, joined_at: now });
            me.guild_id = Some(g.id.clone());
            Ok(JoinOutcome::Joined)
        }
        JoinPolicy::Approval => {
            if g.requests.contains_key(&p.id) {
                return Err(GameError::Conflict("your request is waiting already".into()));
            }
            if g.requests.len() >= table.max_join_requests {
                return Err(GameError::LimitReached(format!("{} has too many waiting requests", g.name)));
            }
            g.requests.insert(p.id.clone(), JoinRequest { username: p.username.clone(), at: now });
            Ok(JoinOutcome::Requested)
        }
    }
}

fn rank_of(g: &Guild, id: &str) -> Result<Rank, GameError> {
    g.members.get(id).map(|m| m.rank).ok_or_else(|| GameError::Forbidden("you are not a member of this guild".into()))
}

/// An officer or the leader approves or rejects a waiting request. Approval
/// fails (and drops the request) if the applicant joined another guild meanwhile.
pub fn answer_request(
    table: &GuildTable,
    g: &mut Guild,
    actor: &str,
    applicant: &str,
    them: &mut Membership,
    approve: bool,
    now: DateTime<Utc>,
) -> Result<(), GameError> {
    if rank_of(g, actor)? == Rank::Member {
        return Err(GameError::Forbidden("only officers and the leader answer requests".into()));
    }
    let Some(req) = g.requests.remove(applicant) else {
        return Err(GameError::NotFound("no waiting request from that player".into()));
    };
    if !approve {
        return Ok(());
    }
    if them.guild_id.is_some() {
        return Err(GameError::Conflict(format!("{} joined another guild meanwhile", req.username)));
    }
    if g.members.len() >= table.capacity(g.level) {
        return Err(GameError::LimitReached(format!("{} is full", g.name)));
    }
    g.members.insert(applicant.to_string(), Member { username: req.username, rank: Rank::Member, joined_at: now });
    them.guild_id = Some(g.id.clone());
    Ok(())
}

/// A rank change or removal by the leader or an officer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberAction {
    /// Member → officer (up to the limit), or officer → leader (the leader steps down to officer).
    Promote,
    /// Officer → member.
    Demote,
    /// Out of the guild (the leader removes anyone; an officer, members).
    Remove,
}

/// Applies a rank change or removal.
pub fn act_on_member(
    table: &GuildTable,
    g: &mut Guild,
    actor: &str,
    target: &str,
    them: &mut Membership,
    action: MemberAction,
    now: DateTime<Utc>,
) -> Result<Rank, GameError> {
    let mine = rank_of(g, actor)?;
    if actor == target {
        return Err(GameError::Invalid("not on yourself (leave the guild instead)".into()));
    }
    let Some(theirs) = g.members.get(target).map(|m| m.rank) else {
        return Err(GameError::NotFound("that player is not a member of this guild".into()));
    };
    let officers = g.members.values().filter(|m| m.rank == Rank::Officer).count();
    let new_rank = match (action, mine, theirs) {
        (MemberAction::Remove, Rank::Leader, _) | (MemberAction::Remove, Rank::Officer, Rank::Member) => {
            g.members.remove(target);
            them.guild_id = None;
            them.left_at = Some(now);
            return Ok(Rank::Member);
        }
        (MemberAction::Promote, Rank::Leader, Rank::Member) => {
            if officers >= table.max_officers {
                return Err(GameError::LimitReached(format!("a guild has {} officers at most", table.max_officers)));
            }
            Rank::Officer
        }
        (MemberAction::Promote, Rank::Leader, Rank::Officer) => {
            if let Some(me) = g.members.get_mut(actor) {
                me.rank = Rank::Officer;
            }
            Rank::Leader
        }
        (MemberAction::Demote, Rank::Leader, Rank::Officer) => Rank::Member,
        (MemberAction::Demote, Rank::Leader, Rank::Member) => {
            return Err(GameError::Conflict("a member cannot be demoted".into()));
        }
        _ => return Err(GameError::Forbidden("your rank does not allow that".into())),
    };
    if let Some(m) = g.members.get_mut(target) {
        m.rank = new_rank;
    }
    Ok(new_rank)
}

/// What leaving did to the guild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Departure {
    /// The guild goes on.
    Left,
    /// The leader left; this member leads now.
    Succeeded {
        /// The new leader.
        leader_id: String,
    },
    /// The last member left: the guild is gone.
    Dissolved,
}

/// The caller leaves their guild: a leader hands it to the longest-standing
/// officer, else member; the last one out dissolves it. The cooldown starts.
pub fn leave(g: &mut Guild, p: &Player, me: &mut Membership, now: DateTime<Utc>) -> Result<Departure, GameError> {
    let Some(left) = g.members.remove(&p.id) else {
        return Err(GameError::NotFound("you are not a member of this guild".into()));
    };
    me.guild_id = None;
    me.left_at = Some(now);
    if g.members.is_empty() {
        return Ok(Departure::Dissolved);
    }
    if left.rank != Rank::Leader {
        return Ok(Departure::Left);
    }
    let successor = g
        .members
        .iter()
        .min_by_key(|(id, m)| (m.rank != Rank::Officer, m.joined_at, (*id).clone()))
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    if let Some(m) = g.members.get_mut(&successor) {
        m.rank = Rank::Leader;
    }
    Ok(Departure::Succeeded { leader_id: successor })
}

/// Today's donation: the price debited, guild coins credited, guild xp added
/// (levels rise while the xp covers them, up to the top level).
pub fn donate(
    table: &GuildTable,
    g: &mut Guild,
    p: &mut Player,
    me: &mut Membership,
    tier: DonationTier,
    now: DateTime<Utc>,
) -> Result<Donation, GameError> {
    rank_of(g, &p.id)?;
    let today = now.date_naive();
    if me.donated_on == Some(today) {
        return Err(GameError::LimitReached("one donation a day".into()));
    }
    let d = table.donation(tier);
    p.balances.debit(d.price.currency, d.price.amount)?;
    p.balances.credit(super::economy::Currency::GuildCoins, d.coins);
    me.donated_on = Some(today);
    g.xp += d.xp;
    while g.level < table.max_level && g.xp >= table.xp_per_level * u64::from(g.level) {
        g.xp -= table.xp_per_level * u64::from(g.level);
        g.level += 1;
    }
    if g.level == table.max_level {
        g.xp = g.xp.min(table.xp_per_level * u64::from(g.level));
    }
    Ok(d)
}

/// Damage a battle dealt to the boss's side.
pub fn damage_dealt(log: &BattleLog) -> u64 {
    log.actions
        .iter()
        .filter(|a| a.side == Side::Attacker)
        .flat_map(|a| &a.hits)
        .filter(|h| h.side == Side::Defender)
        .map(|h| u64::from(h.damage))
        .sum()
}

/// What an attack did to the shared boss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttackOutcome {
    /// The boss attacked.
    pub boss: u32,
    /// Damage taken off its HP (never more than it had).
    pub damage: u64,
    /// HP left after the attack (0: it fell, and the next one appeared).
    pub hp_after: u64,
    /// Whether this attack felled it.
    pub killed: bool,
    /// Attacks left today.
    pub attacks_left: u32,
}

/// Subtracts a battle's damage from the shared HP (never below 0). The attack
/// that fells the boss queues every damager's reward by rank and brings the
/// next boss at the guild's level.
pub fn attack(
    table: &GuildTable,
    g: &mut Guild,
    player_id: &str,
    me: &mut Membership,
    dealt: u64,
    now: DateTime<Utc>,
) -> Result<AttackOutcome, GameError> {
    rank_of(g, player_id)?;
    let used = me.attacks_today(now);
    if used >= table.boss.attacks_per_day {
        return Err(GameError::LimitReached(format!("{} boss attacks a day", table.boss.attacks_per_day)));
    }
    me.attacks = used + 1;
    me.attacks_on = Some(now.date_naive());
    let number = g.boss.number;
    let damage = dealt.min(g.boss.hp);
    g.boss.hp -= damage;
    if damage > 0 {
        *g.boss.damage.entry(player_id.to_string()).or_default() += damage;
    }
    let killed = g.boss.hp == 0;
    if killed {
        let mut board: Vec<(&String, &u64)> = g.boss.damage.iter().collect();
        board.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (i, (id, dmg)) in board.into_iter().enumerate() {
            let rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if table.rank_reward(rank).is_some() {
                g.payouts.push(Payout { boss: number, player_id: id.clone(), rank, damage: *dmg });
            }
        }
        g.boss = fresh_boss(table, number + 1, g.level);
    }
    Ok(AttackOutcome {
        boss: number,
        damage,
        hp_after: if killed { 0 } else { g.boss.hp },
        killed,
        attacks_left: table.boss.attacks_per_day - me.attacks,
    })
}

/// Mails one boss payout unless this player's mailbox has it already.
pub fn deliver_payout(
    table: &GuildTable,
    guild_name: &str,
    guild_id: &str,
    payout: &Payout,
    p: &mut Player,
    now: DateTime<Utc>,
    mail_days: i64,
) -> bool {
    let id = format!("guild-boss-{guild_id}-{}", payout.boss);
    if p.mailbox.iter().any(|m| m.id == id) {
        return false;
    }
    let Some(reward) = table.rank_reward(payout.rank) else { return false };
    p.deliver(super::player::Mail {
        id,
        subject: format!("{guild_name}: boss {} defeated", payout.boss),
        body: format!("You ranked {} with {} damage.", payout.rank, payout.damage),
        attachments: reward
            .iter()
            .map(|r| super::player::Attachment { currency: r.currency, amount: r.amount })
            .collect(),
        sent_at: now,
        expires_at: now + chrono::Duration::days(mail_days),
        claimed_at: None,
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::economy::Currency;
    use chrono::TimeZone;

    fn table() -> GuildTable {
        GuildTable::from_toml("guilds.toml", include_str!("../../config/guilds.toml")).unwrap()
    }

    fn player(id: &str) -> Player {
        let mut p = Player::new(id.into(), id, String::new(), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        p.balances.credit(Currency::Gold, 1_000_000);
        p.balances.credit(Currency::Crystals, 10_000);
        p
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    fn founded(rules: &GuildTable) -> (Guild, Player, Membership) {
        let mut leader = player("lead");
        let mut m = Membership::default();
        let g = create(rules, &mut leader, &mut m, false, "g1", ("Dawn", "dwn"), JoinPolicy::Open, at(1, 0)).unwrap();
        (g, leader, m)
    }

    #[test]
    fn levels_rise_with_donations_and_size_follows() {
        let rules = table();
        let (mut g, _, _) = founded(&rules);
        assert_eq!(rules.capacity(1), 30);
        for i in 0..6 {
            let mut donor = player(&format!("p{i}"));
            let mut m = Membership::default();
            join(&rules, &mut g, &donor, &mut m, at(1, 1)).unwrap();
            let d = donate(&rules, &mut g, &mut donor, &mut m, DonationTier::CrystalsLarge, at(1, 2)).unwrap();
            assert_eq!((d.xp, d.coins, donor.balances.guild_coins), (200, 250, 250));
            let again = donate(&rules, &mut g, &mut donor, &mut m, DonationTier::Gold, at(1, 3));
            assert!(matches!(again, Err(GameError::LimitReached(_))));
        }
        // 1,200 xp: level 2 at 1,000 (1,000 × 1), 200 into level 2.
        assert_eq!((g.level, g.xp), (2, 200));
        assert_eq!(rules.capacity(g.level), 32);
    }

    #[test]
    fn the_leader_hands_over_to_the_longest_standing_officer_and_the_last_one_out_dissolves() {
        let rules = table();
        let (mut g, leader, mut lm) = founded(&rules);
        let (a, mut am) = (player("a"), Membership::default());
        let (b, mut bm) = (player("b"), Membership::default());
        join(&rules, &mut g, &a, &mut am, at(1, 1)).unwrap();
        join(&rules, &mut g, &b, &mut bm, at(1, 2)).unwrap();
        act_on_member(&rules, &mut g, "lead", "b", &mut bm, MemberAction::Promote, at(1, 3)).unwrap();
        let e = act_on_member(&rules, &mut g, "b", "a", &mut am, MemberAction::Promote, at(1, 3));
        assert!(matches!(e, Err(GameError::Forbidden(_))), "officers do not promote");
        assert_eq!(leave(&mut g, &leader, &mut lm, at(1, 4)), Ok(Departure::Succeeded { leader_id: "b".into() }));
        assert!(lm.guild_id.is_none() && lm.left_at == Some(at(1, 4)));
        let mut again = g.clone();
        let e = join(&rules, &mut again, &leader, &mut lm, at(2, 3));
        assert!(matches!(e, Err(GameError::Conflict(_))), "24 hours before joining again");
        assert_eq!(join(&rules, &mut again, &leader, &mut lm, at(2, 4)), Ok(JoinOutcome::Joined));
        assert_eq!(leave(&mut g, &b, &mut bm, at(1, 5)), Ok(Departure::Succeeded { leader_id: "a".into() }));
        assert_eq!(leave(&mut g, &a, &mut am, at(1, 6)), Ok(Departure::Dissolved));
    }

    #[test]
    fn the_boss_never_goes_below_zero_and_queues_rewards_by_rank_once() {
        let rules = table();
        let (mut g, _, mut lm) = founded(&rules);
        let mut m = Membership::default();
        join(&rules, &mut g, &player("x"), &mut m, at(1, 1)).unwrap();
        let full = g.boss.max_hp;
        let hit = attack(&rules, &mut g, "x", &mut m, full - 10, at(1, 2)).unwrap();
        assert_eq!((hit.damage, hit.hp_after, hit.killed), (full - 10, 10, false));
        let kill = attack(&rules, &mut g, "lead", &mut lm, 1_000_000, at(1, 3)).unwrap();
        assert_eq!((kill.damage, kill.killed), (10, true), "only the HP left counts");
        assert_eq!(g.boss.number, 2);
        assert_eq!(g.boss.hp, rules.boss_hp(g.level));
        let ranks: Vec<(String, u32)> = g.payouts.iter().map(|p| (p.player_id.clone(), p.rank)).collect();
        assert_eq!(ranks, vec![("x".to_string(), 1), ("lead".to_string(), 2)]);
        for _ in 0..2 {
            attack(&rules, &mut g, "x", &mut m, 1, at(1, 4)).unwrap();
        }
        assert!(matches!(attack(&rules, &mut g, "x", &mut m, 1, at(1, 5)), Err(GameError::LimitReached(_))));
        assert!(attack(&rules, &mut g, "x", &mut m, 1, at(2, 0)).is_ok(), "a new day, new attacks");
    }
}
