//! Operator commands that write to the configured store: credit a player,
//! send system mail, close the arena season. Every change goes through the same
//! write path as player actions (`writes`): atomic and ledgered, with the
//! leaderboard scores recomputed and the cached copy replaced.

use anyhow::{ensure, Context};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::game::economy::Currency;
use crate::game::error::GameError;
use crate::game::player::{Attachment, Mail, Player};
use crate::store::LedgerReason;
use crate::writes::{Applied, WriteError, Writer};

/// Players created per store write by [`seed_players`].
const SEED_BATCH: u64 = 1000;

/// Creates players `<prefix><start>` .. `<prefix><start + count - 1>` in bulk,
/// all with the password whose hash is given, for load tests (no event is
/// written: see [`crate::store::Store::import_players`]). Returns how many were
/// created (names already taken are skipped).
pub async fn seed_players(
    store: &crate::store::DynStore,
    catalog: &crate::game::catalog::Catalog,
    prefix: &str,
    start: u64,
    count: u64,
    password_hash: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut created = 0;
    let mut next = start;
    while next < start + count {
        let end = (next + SEED_BATCH).min(start + count);
        let batch: Vec<Player> = (next..end)
            .map(|i| {
                let mut p = Player::new(
                    uuid::Uuid::new_v4().simple().to_string(),
                    &format!("{prefix}{i}"),
                    password_hash.to_string(),
                    now,
                );
                p.recompute_scores(catalog);
                p
            })
            .collect();
        created += store.import_players(&batch).await? as u64;
        next = end;
    }
    Ok(created)
}

/// Parses `crystals=100` into an attachment.
pub fn parse_attachment(s: &str) -> anyhow::Result<Attachment> {
    let (c, a) = s.split_once('=').context("attachments look like crystals=100")?;
    let currency: Currency =
        serde_json::from_value(json!(c.trim())).map_err(|_| anyhow::anyhow!("unknown currency {c:?}"))?;
    let amount: i64 = a.trim().parse().with_context(|| format!("amount {a:?} is not a number"))?;
    ensure!(amount > 0, "attachment amounts must be positive");
    Ok(Attachment { currency, amount })
}

/// An operator's write to the player named `username` (case-insensitive):
/// `rule` in one atomic write; the player after it.
async fn operator_write(
    writer: &Writer<'_>,
    username: &str,
    now: DateTime<Utc>,
    what: &str,
    rule: impl Fn(&mut Player) -> Result<Applied<()>, crate::game::error::GameError> + Send + Sync + 'static,
) -> anyhow::Result<Player> {
    let player = writer
        .store
        .player_by_username(&username.to_ascii_lowercase())
        .await?
        .with_context(|| format!("no player {username:?}"))?;
    writer.mutate(&player.id, None, now, rule).await.with_context(|| format!("{what} not applied"))?;
    writer.store.player_by_id(&player.id).await?.context("the player vanished")
}

/// Credits `amount` of `currency` to the player named `username`.
pub async fn grant(
    writer: &Writer<'_>,
    username: &str,
    currency: Currency,
    amount: i64,
    note: &str,
) -> anyhow::Result<Player> {
    ensure!(amount > 0, "amount must be positive");
    let note = note.to_string();
    operator_write(writer, username, Utc::now(), "grant", move |p| {
        p.balances.credit(currency, amount);
        Ok(Applied::new(LedgerReason::OperatorGrant, note.clone(), ()))
    })
    .await
}

/// Marks an account as a minor's (summons refused, in the summon's own write)
/// or clears the mark.
pub async fn set_minor(writer: &Writer<'_>, username: &str, minor: bool) -> anyhow::Result<Player> {
    operator_write(writer, username, Utc::now(), "the mark", move |p| {
        p.spending.minor = minor;
        Ok(Applied::new(LedgerReason::SpendingControls, "operator", ()))
    })
    .await
}

/// Mutes a player in chat until `until`, or lifts the mute (`None`).
pub async fn set_chat_mute(
    writer: &Writer<'_>,
    username: &str,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> anyhow::Result<Player> {
    operator_write(writer, username, now, "the mute", move |p| {
        p.chat_muted_until = until;
        Ok(Applied::new(LedgerReason::ChatModeration, "operator", ()))
    })
    .await
}

/// Who receives a mail.
pub enum Recipients {
    /// One player by username.
    One(String),
    /// Every player.
    All,
}

/// A mail to send.
pub struct MailDraft {
    /// Subject line.
    pub subject: String,
    /// Text.
    pub body: String,
    /// Currency attachments.
    pub attachments: Vec<Attachment>,
    /// Days it stays claimable.
    pub expiry_days: i64,
}

/// Sends a mail; returns how many players received it.
pub async fn send_mail(
    writer: &Writer<'_>,
    to: Recipients,
    draft: MailDraft,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let MailDraft { subject, body, attachments, expiry_days } = draft;
    ensure!(!subject.trim().is_empty(), "a mail needs a subject");
    let mail = Mail {
        id: uuid::Uuid::new_v4().simple().to_string(),
        subject,
        body,
        attachments,
        sent_at: now,
        expires_at: now + Duration::days(expiry_days),
        claimed_at: None,
    };
    let deliver = |id: String| {
        let mail = mail.clone();
        async move {
            let ref_id = mail.id.clone();
            writer
                .mutate(&id, None, now, move |p| {
                    p.deliver(mail.clone());
                    Ok(Applied::new(LedgerReason::MailDelivered, ref_id.clone(), ()))
                })
                .await?;
            anyhow::Ok(())
        }
    };
    match to {
        Recipients::One(name) => {
            let p = writer
                .store
                .player_by_username(&name.to_ascii_lowercase())
                .await?
                .with_context(|| format!("no player {name:?}"))?;
            deliver(p.id).await?;
            Ok(1)
        }
        Recipients::All => {
            let mut sent = 0;
            let mut after = None;
            loop {
                let ids = writer.store.player_ids(after.clone(), 500).await?;
                let Some(last) = ids.last().cloned() else { break };
                for id in ids {
                    deliver(id).await?;
                    sent += 1;
                }
                after = Some(last);
            }
            Ok(sent)
        }
    }
}

/// Closes the arena season for every player whose season has ended: mails the
/// season reward by band (once: the rollover and the mail are one write) and
/// softly resets the rating. Safe to run any number of times; players who log
/// in first get the same rollover lazily. Returns how many were rolled over.
pub async fn close_arena_season(writer: &Writer<'_>, now: DateTime<Utc>) -> anyhow::Result<usize> {
    use crate::game::battle::arena;
    let mut rolled = 0;
    let mut after = None;
    loop {
        let ids = writer.store.player_ids(after.clone(), 500).await?;
        let Some(last) = ids.last().cloned() else { break };
        for id in ids {
            let data = writer.data.clone();
            // The view says whether this player's season was closed by this write.
            let written = writer
                .mutate(&id, None, now, move |p| {
                    let due = arena::season_due(p, now);
                    let band = arena::roll_season(&data.battle.arena, p, now, data.rewards.mail.expiry_days);
                    Ok(Applied::new(LedgerReason::ArenaSeason, band.unwrap_or_default(), due))
                })
                .await;
            match written {
                Ok(w) if w.view => rolled += 1,
                Ok(_) | Err(WriteError::PlayerNotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        after = Some(last);
    }
    Ok(rolled)
}

/// An operator command that writes, as the command line takes it and as the
/// admin endpoint of a running server receives it (`crate::admin`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// `grant`: credit a player.
    Grant {
        /// Username.
        to: String,
        /// Currency name.
        currency: String,
        /// Amount (positive).
        amount: i64,
        /// Ledger reference.
        note: String,
    },
    /// `mail send`: to one player or to all.
    MailSend {
        /// Username, or none with `all`.
        to: Option<String>,
        /// Every player.
        all: bool,
        /// Subject line.
        subject: String,
        /// Text.
        body: String,
        /// Attachments such as `crystals=100`.
        attach: Vec<String>,
    },
    /// `arena close-season`.
    CloseSeason,
    /// `minor`: bar or allow a player's summons.
    Minor {
        /// Username.
        to: String,
        /// Clear the mark instead of setting it.
        clear: bool,
    },
    /// `codes create`.
    CodesCreate {
        /// The code.
        code: String,
        /// What it gives, such as `gold=1000,crystals=50`.
        reward: String,
        /// Redemptions allowed in all.
        max_uses: u64,
        /// Last valid day (UTC, `YYYY-MM-DD`, valid through its end) or an RFC 3339 time.
        expires: Option<String>,
    },
    /// `codes list`.
    CodesList,
    /// `codes disable`.
    CodesDisable {
        /// The code.
        code: String,
    },
    /// `purchases debts`.
    PurchaseDebts,
    /// `tower close-week`: mail the ended week's board rewards.
    TowerCloseWeek,
    /// `chat mute`: refuse a player's messages for some hours.
    ChatMute {
        /// Username.
        player: String,
        /// How long.
        hours: u32,
    },
    /// `chat unmute`.
    ChatUnmute {
        /// Username.
        player: String,
    },
    /// `chat reports`: every reported message, one JSON line each.
    ChatReports,
}

impl Command {
    /// Performs the command through `writer` at `now`; the line it reports.
    pub async fn run(self, writer: &Writer<'_>, now: DateTime<Utc>) -> anyhow::Result<String> {
        match self {
            Self::Grant { to, currency, amount, note } => {
                let currency = parse_attachment(&format!("{currency}={amount}"))?.currency;
                let p = grant(writer, &to, currency, amount, &note).await?;
                Ok(format!("{} now has {} {currency}", p.username, p.balances.get(currency)))
            }
            Self::MailSend { to, all, subject, body, attach } => {
                let attachments = attach.iter().map(|a| parse_attachment(a)).collect::<anyhow::Result<Vec<_>>>()?;
                let recipients = match (to, all) {
                    (Some(name), false) => Recipients::One(name),
                    (None, true) => Recipients::All,
                    _ => anyhow::bail!("give exactly one of --to USERNAME or --all"),
                };
                let expiry_days = writer.data.rewards.mail.expiry_days;
                let n =
                    send_mail(writer, recipients, MailDraft { subject, body, attachments, expiry_days }, now).await?;
                Ok(format!("mail sent to {n} player(s)"))
            }
            Self::CloseSeason => {
                let n = close_arena_season(writer, now).await?;
                Ok(format!("arena season closed for {n} player(s)"))
            }
            Self::Minor { to, clear } => {
                let p = set_minor(writer, &to, !clear).await?;
                Ok(format!("{}: summons {}", p.username, if p.spending.minor { "barred" } else { "allowed" }))
            }
            Self::CodesCreate { code, reward, max_uses, expires } => {
                let c = new_code(&code, &reward, max_uses, expires.as_deref(), now)?;
                ensure!(writer.store.create_code(&c).await?, "code {} exists already", c.code);
                Ok(format!("code {} created: {}", c.code, serde_json::to_string(&c)?))
            }
            Self::CodesList => {
                let codes = writer.store.codes().await?;
                json_lines(&codes, &format!("{} codes", codes.len()))
            }
            Self::CodesDisable { code } => {
                let code = crate::game::codes::normalize(&code).map_err(|e| anyhow::anyhow!("{e}"))?;
                ensure!(writer.store.disable_code(&code).await?, "no code {code}");
                Ok(format!("code {code} disabled"))
            }
            Self::TowerCloseWeek => {
                let (week, n) = close_tower_week(writer, now).await?;
                Ok(format!("tower week {week}: rewards mailed to {n} player(s)"))
            }
            Self::ChatMute { player, hours } => {
                let until = (hours > 0).then(|| now + Duration::hours(i64::from(hours)));
                anyhow::ensure!(until.is_some(), "--hours must be at least 1 (chat unmute lifts a mute)");
                let p = set_chat_mute(writer, &player, until, now).await?;
                Ok(format!(
                    "{} is muted in chat until {}",
                    p.username,
                    until.map(|u| u.to_rfc3339()).unwrap_or_default()
                ))
            }
            Self::ChatUnmute { player } => {
                let p = set_chat_mute(writer, &player, None, now).await?;
                Ok(format!("{} may chat again", p.username))
            }
            Self::ChatReports => {
                let mut reports = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let page = writer.store.shared_scan("chatreport:", after.as_deref(), 500).await?;
                    let Some((last, _)) = page.last() else { break };
                    after = Some(last.clone());
                    reports.extend(page.into_iter().map(|(_, d)| d.doc));
                }
                json_lines(&reports, &format!("{} reports", reports.len()))
            }
            Self::PurchaseDebts => {
                let debts = purchase_debts(writer.store).await?;
                json_lines(&debts, &format!("{} players owe crystals", debts.len()))
            }
        }
    }
}

/// Mails the abyss tower's board rewards of the week before `now`'s, by rank,
/// once per player and week (re-running pays no one twice). Returns the week
/// and how many were paid now.
pub async fn close_tower_week(writer: &Writer<'_>, now: DateTime<Utc>) -> anyhow::Result<(u64, usize)> {
    use crate::game::battle::tower;
    let rules = &writer.data.battle.tower;
    let week = tower::week_index(now).saturating_sub(1);
    let last_rank = rules.weekly.last().map_or(0, |b| b.to_rank);
    let rows = writer
        .store
        .board_range(crate::store::Board::Tower, week << 32, (week << 32) | 0xFFFF_FFFF, usize::try_from(last_rank)?)
        .await?;
    let mut paid = 0;
    for (i, row) in rows.iter().enumerate() {
        let rank = i as u64 + 1;
        let Some(crystals) = rules.weekly_crystals(rank) else { break };
        let mail_days = writer.data.rewards.mail.expiry_days;
        let written = writer
            .mutate(&row.player_id, None, now, move |p| {
                // Paid already (a re-run, or another process first): refused, so nothing is written.
                if p.tower.rewarded_week >= week {
                    return Err(GameError::Conflict(format!("tower week {week} paid already")));
                }
                p.tower.rewarded_week = week;
                p.deliver(Mail {
                    id: format!("tower-week-{week}"),
                    subject: format!("Abyss tower: rank {rank} last week"),
                    body: format!("You finished last week's tower board at rank {rank}."),
                    attachments: vec![Attachment { currency: Currency::Crystals, amount: crystals }],
                    sent_at: now,
                    expires_at: now + Duration::days(mail_days),
                    claimed_at: None,
                });
                Ok(Applied::new(LedgerReason::TowerWeek, format!("tower-week-{week}"), ()))
            })
            .await;
        match written {
            Ok(_) => paid += 1,
            Err(WriteError::PlayerNotFound | WriteError::Rejected(GameError::Conflict(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((week, paid))
}

/// A listing for the terminal: one JSON line per item, then a summary line.
fn json_lines<T: serde::Serialize>(items: &[T], summary: &str) -> anyhow::Result<String> {
    let mut lines = items.iter().map(serde_json::to_string).collect::<Result<Vec<_>, _>>()?;
    lines.push(summary.to_string());
    Ok(lines.join("\n"))
}

/// A new redeem code from the command line's words.
pub fn new_code(
    code: &str,
    reward: &str,
    max_uses: u64,
    expires: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<crate::game::codes::RedeemCode> {
    let code = crate::game::codes::normalize(code).map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(max_uses > 0, "--max-uses must be at least 1");
    let reward = reward
        .split(',')
        .map(|r| parse_attachment(r).map(|a| crate::game::quests::Reward { currency: a.currency, amount: a.amount }))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let expires_at = match expires {
        None => None,
        Some(s) => Some(match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            // A date is valid through its last second (UTC).
            Ok(d) => (d + Duration::days(1)).and_hms_opt(0, 0, 0).context("a valid date")?.and_utc(),
            Err(_) => DateTime::parse_from_rfc3339(s)
                .with_context(|| format!("--expires {s:?} is neither YYYY-MM-DD nor an RFC 3339 time"))?
                .with_timezone(&Utc),
        }),
    };
    Ok(crate::game::codes::RedeemCode { code, reward, max_uses, uses: 0, expires_at, enabled: true, created_at: now })
}

/// A player who owes crystals that a refund could not take back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Debt {
    /// Player id.
    pub player_id: String,
    /// Username.
    pub username: String,
    /// Crystals owed.
    pub crystals: i64,
    /// The refunded transactions.
    pub refunded: Vec<String>,
}

/// Every player with a purchase debt (`divine-heroes purchases debts`): visits
/// every player, so it is an operator's occasional report, not a live query.
pub async fn purchase_debts(store: &crate::store::DynStore) -> anyhow::Result<Vec<Debt>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let ids = store.player_ids(after.clone(), 500).await?;
        let Some(last) = ids.last().cloned() else { break };
        for id in ids {
            let Some(p) = store.player_by_id(&id).await? else { continue };
            if p.purchases.debt > 0 {
                out.push(Debt {
                    player_id: p.id,
                    username: p.username,
                    crystals: p.purchases.debt,
                    refunded: p.purchases.refunded.into_iter().collect(),
                });
            }
        }
        after = Some(last);
    }
    Ok(out)
}
