//! Operator commands that write to the configured store: credit a player,
//! send system mail, close the arena season. Every change goes through the same
//! atomic, ledgered mutation as player actions, and invalidates the player's
//! cached copy like any other write.

use std::sync::Arc;

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::game::economy::Currency;
use crate::game::player::{Attachment, Mail, Player};
use crate::platform::cache::Cache;
use crate::store::{DynStore, Effects, MutateOutcome, Mutation, StoredResponse};

fn no_response() -> StoredResponse {
    StoredResponse { status: 200, body: json!({}) }
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

/// Credits `amount` of `currency` to the player named `username`.
pub async fn grant(
    store: &DynStore,
    cache: &Cache,
    username: &str,
    currency: Currency,
    amount: i64,
    note: &str,
) -> anyhow::Result<Player> {
    ensure!(amount > 0, "amount must be positive");
    let player = store
        .player_by_username(&username.to_ascii_lowercase())
        .await?
        .with_context(|| format!("no player {username:?}"))?;
    let note = note.to_string();
    let op: Mutation = Arc::new(move |p| {
        p.balances.credit(currency, amount);
        Ok(Effects {
            reason: "operator_grant".into(),
            ref_id: note.clone(),
            history: vec![],
            battles: vec![],
            response: no_response(),
        })
    });
    match store.mutate(&player.id, None, Utc::now(), op).await? {
        MutateOutcome::Applied(_, p) => {
            cache.player_written(&p).await;
            Ok(*p)
        }
        other => bail!("grant not applied: {other:?}"),
    }
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
    store: &DynStore,
    cache: &Cache,
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
        let op: Mutation = Arc::new(move |p| {
            p.deliver(mail.clone());
            Ok(Effects {
                reason: "mail_delivered".into(),
                ref_id: mail.id.clone(),
                history: vec![],
                battles: vec![],
                response: no_response(),
            })
        });
        async move {
            if let MutateOutcome::Applied(_, p) = store.mutate(&id, None, now, op).await? {
                cache.player_written(&p).await;
            }
            anyhow::Ok(())
        }
    };
    match to {
        Recipients::One(name) => {
            let p = store
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
                let ids = store.player_ids(after.clone(), 500).await?;
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
pub async fn close_arena_season(
    store: &DynStore,
    cache: &Cache,
    data: &crate::game::data::GameData,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    use crate::game::battle::arena;
    let data = Arc::new(data.clone());
    let mut rolled = 0;
    let mut after = None;
    loop {
        let ids = store.player_ids(after.clone(), 500).await?;
        let Some(last) = ids.last().cloned() else { break };
        for id in ids {
            let data = data.clone();
            let op: Mutation = Arc::new(move |p| {
                let band = arena::roll_season(&data.battle.arena, p, now, data.rewards.mail.expiry_days);
                Ok(Effects {
                    reason: "arena_season".into(),
                    ref_id: band.unwrap_or_default(),
                    history: vec![],
                    battles: vec![],
                    response: no_response(),
                })
            });
            let before = store.player_by_id(&id).await?.map(|p| p.arena_season);
            if let MutateOutcome::Applied(_, p) = store.mutate(&id, None, now, op).await? {
                cache.player_written(&p).await;
                if before.as_deref() != Some(p.arena_season.as_str()) {
                    rolled += 1;
                }
            }
        }
        after = Some(last);
    }
    Ok(rolled)
}
