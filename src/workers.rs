//! Background workers: the outbox relay (store → queue) and the consumers
//! (queue → leaderboards in Redis, per-banner observed rates, the audit log).
//! Every consumer is idempotent by event id, so at-least-once delivery applies
//! each event exactly once in effect.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::platform::metrics::{
    CONSUMER_LAG_SECONDS, EVENTS_CONSUMED, EVENTS_RELAYED, EVENTS_REPLAYED, GACHA_OBSERVED_RATE, QUEUE_DEPTH,
};
use crate::platform::queue::{Consumer, Queue};
use crate::state::AppState;
use crate::store::events::{ConsumeItem, DomainEvent, Draw, Event};

/// Events relayed per round trip.
const RELAY_BATCH: usize = 256;
/// How long a relay holds the batch it claimed: far longer than a publish
/// takes, short enough that a dead relay's batch goes out soon after.
const RELAY_LEASE: Duration = Duration::from_secs(30);
/// Deliveries handled per receive.
const CONSUME_BATCH: usize = 64;
/// After a batch that was not full, the relay and the consumer wait this long
/// for more: under load each round then carries more events, and its fixed
/// cost (a store read, a write job, a look at the counters) is paid less often.
/// Events arrive this much later at most.
const GATHER: Duration = Duration::from_millis(20);
/// Published events still unconsumed after this long are published again: a
/// broker can lose what it accepted without a sign the consumers can see (a
/// stream trimmed past them, a queue purged).
const REDELIVER_AFTER: Duration = Duration::from_mins(5);

/// Starts the relay and one consumer; they stop when the handles are aborted.
pub fn spawn(state: web::Data<AppState>, queue: Arc<dyn Queue>) -> Vec<JoinHandle<()>> {
    let name = format!("{}-{}", state.settings.service_name, uuid::Uuid::new_v4().simple());
    vec![
        tokio::spawn(relay(state.clone(), queue.clone(), name.clone())),
        tokio::spawn(consume(state.clone(), queue.clone(), name)),
        tokio::spawn(report_depth(state.clone(), queue)),
        tokio::spawn(prune(state.clone())),
        tokio::spawn(close_tower_weeks(state)),
    ]
}

/// How often the server looks whether a tower week has ended.
const CALENDAR_TICK: Duration = Duration::from_mins(10);

/// Mails each ended abyss-tower week's board rewards without an operator: at
/// start and within ten minutes of Monday 00:00 UTC. Every process does it; the
/// rewards are paid once per player and week whoever runs first (the same rule
/// as `divine-heroes tower close-week`, which stays for a manual re-run).
async fn close_tower_weeks(state: web::Data<AppState>) {
    let mut closed = None;
    loop {
        if let Err(e) = close_tower_week_if_due(&state, &mut closed).await {
            tracing::warn!(error = %e, "closing the tower week failed; will retry");
        }
        tokio::time::sleep(CALENDAR_TICK).await;
    }
}

/// Closes the tower week before the clock's unless `closed` says this process
/// did already; the number of players paid now.
pub async fn close_tower_week_if_due(state: &AppState, closed: &mut Option<u64>) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let ended = crate::game::battle::tower::week_index(now).saturating_sub(1);
    if *closed == Some(ended) {
        return Ok(0);
    }
    let writer = state.writer();
    let (week, paid) = crate::ops::close_tower_week(&writer, now).await?;
    if paid > 0 {
        tracing::info!(week, paid, "tower week closed: board rewards mailed");
    }
    *closed = Some(week);
    Ok(paid)
}

/// Rows deleted per pruning write, so that pruning never holds the writer long.
const PRUNE_BATCH: usize = 1000;

/// Deletes idempotency records, history and chat messages past their retention, every ten
/// minutes, in small writes (MongoDB does it with TTL indexes instead).
async fn prune(state: web::Data<AppState>) {
    loop {
        let now = state.clock.now();
        let retention = state.settings.retention();
        let cut = |d: std::time::Duration| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        let (idem_before, history_before) = (cut(retention.idempotency), cut(retention.history));
        let chat_before = cut(retention.chat);
        loop {
            match state.store.prune_chat(chat_before, PRUNE_BATCH).await {
                Ok(n) if n > 0 => tracing::debug!(messages = n, "pruned old chat messages"),
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "pruning chat messages failed; will retry");
                    break;
                }
            }
        }
        loop {
            match state.store.prune(idem_before, history_before, PRUNE_BATCH).await {
                Ok(n) if n > 0 => tracing::debug!(rows = n, "pruned expired records"),
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "pruning expired records failed; will retry");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_mins(10)).await;
    }
}

/// Moves outbox events to the queue. Published events stay in the store as
/// unconsumed until a consumer applied them, and are published again when the
/// broker may have lost them: at start (this process may have died with them in
/// flight), when a consumer found the broker reset, after a failed publish, and
/// when one is overdue. Consumers skip what they applied already.
pub async fn relay(state: web::Data<AppState>, queue: Arc<dyn Queue>, name: String) {
    let mut replay = Some(Replay::Startup);
    let mut resets = queue.resets();
    let mut swept = tokio::time::Instant::now();
    loop {
        if let Some(why) = replay {
            if let Err(e) = republish(&state, queue.as_ref(), why).await {
                tracing::warn!(error = %e, reason = why.name(), "relay: publishing unconsumed events again failed; will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            replay = None;
        }
        let now_resets = queue.resets();
        if now_resets != resets {
            resets = now_resets;
            replay = Some(Replay::Reset);
            continue;
        }
        if swept.elapsed() >= REDELIVER_AFTER {
            swept = tokio::time::Instant::now();
            let cutoff =
                chrono::Duration::from_std(REDELIVER_AFTER).map_or(DateTime::<Utc>::MIN_UTC, |d| state.clock.now() - d);
            replay = Some(Replay::Overdue(cutoff));
            continue;
        }
        match relay_once(&state, queue.as_ref(), &name).await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(n) if n < RELAY_BATCH => tokio::time::sleep(GATHER).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "relay: will retry");
                // The failed batch is unconsumed already: it goes out with the others.
                replay = Some(Replay::Failed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Why unconsumed events are published again.
#[derive(Debug, Clone, Copy)]
pub enum Replay {
    /// The process started.
    Startup,
    /// A consumer found the broker had lost its state.
    Reset,
    /// A publish failed.
    Failed,
    /// Unconsumed since before this time.
    Overdue(DateTime<Utc>),
}

impl Replay {
    fn name(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Reset => "reset",
            Self::Failed => "failed",
            Self::Overdue(_) => "overdue",
        }
    }
}

/// Publishes unconsumed events again, oldest id first; returns how many.
pub async fn republish(state: &AppState, queue: &dyn Queue, why: Replay) -> anyhow::Result<usize> {
    let mut after = None;
    let mut sent = 0;
    loop {
        let page = state.store.unconsumed(after.take(), RELAY_BATCH).await?;
        let full = page.len() == RELAY_BATCH;
        after = page.last().map(|e| e.key.clone());
        let events: Vec<Event> = page
            .into_iter()
            .map(|e| e.event)
            .filter(|e| match why {
                Replay::Overdue(before) => e.at < before,
                _ => true,
            })
            .collect();
        queue.publish(&events).await?;
        sent += events.len();
        if !full {
            break;
        }
    }
    if sent > 0 {
        metrics::counter!(EVENTS_REPLAYED, "reason" => why.name()).increment(sent as u64);
        tracing::info!(events = sent, reason = why.name(), "relay: published unconsumed events again");
    }
    Ok(sent)
}

/// One relay round of the relay `name`: claim a batch (other relays skip it
/// while the lease lasts), publish it. Returns how many moved.
pub async fn relay_once(state: &AppState, queue: &dyn Queue, name: &str) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let until = now + chrono::Duration::from_std(RELAY_LEASE).unwrap_or_default();
    let batch = state.store.outbox_claim(name, RELAY_BATCH, now, until).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    // Unconsumed first, then published: a consumer never applies an event that
    // is still in the outbox, and a crash in between publishes it at the next start.
    state.store.outbox_relayed(&batch).await?;
    let events: Vec<Event> = batch.into_iter().map(|b| b.event).collect();
    let span = tracing::info_span!("relay.publish", events = events.len(), backend = queue.backend());
    queue.publish(&events).instrument(span).await?;
    metrics::counter!(EVENTS_RELAYED, "backend" => queue.backend()).increment(events.len() as u64);
    Ok(events.len())
}

async fn consume(state: web::Data<AppState>, queue: Arc<dyn Queue>, name: String) {
    let mut consumer = loop {
        match queue.consumer(&name).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "consumer: cannot join the queue, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    loop {
        match consume_once(&state, consumer.as_mut()).await {
            Ok(n) if n > 0 && n < CONSUME_BATCH => tokio::time::sleep(GATHER).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "consumer: will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One consumer round: receive a batch, apply it, acknowledge it. If applying
/// fails nothing is acknowledged: the batch comes back, and what was applied is skipped.
pub async fn consume_once(state: &AppState, consumer: &mut dyn Consumer) -> anyhow::Result<usize> {
    let deliveries = consumer.receive(CONSUME_BATCH).await?;
    if deliveries.is_empty() {
        return Ok(0);
    }
    let events: Vec<Event> = deliveries.iter().map(|d| d.event.clone()).collect();
    // One span per traced event, in the trace of the request that caused it,
    // lasting until the batch is applied and acknowledged.
    let spans: Vec<tracing::Span> = events
        .iter()
        .filter_map(|e| {
            let parent = e.traceparent.as_deref()?;
            let span = tracing::info_span!("event.consumed", event_id = %e.id, kind = e.kind());
            crate::platform::tracing_otlp::continue_from(&span, parent);
            Some(span)
        })
        .collect();
    // A few quick retries first: the in-process queue cannot redeliver.
    let mut attempt = 0;
    while let Err(e) = apply(state, &events).await {
        attempt += 1;
        if attempt >= 3 {
            return Err(e);
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
    }
    consumer.ack(&deliveries).await?;
    drop(spans);
    Ok(deliveries.len())
}

/// Per-banner observed-rate counters of an event (gacha summons only), one per
/// category pulled: a 10-pull adds to two or three counters, not ten times to one.
fn banner_counters(e: &Event) -> Vec<(String, i64)> {
    match &e.body {
        DomainEvent::GachaSummoned { banner_id, results, .. } => {
            let mut by_category = std::collections::BTreeMap::<&str, i64>::new();
            for r in results {
                *by_category.entry(r.category.as_str()).or_default() += 1;
            }
            by_category.into_iter().map(|(c, n)| (format!("gacha:{banner_id}:{c}"), n)).collect()
        }
        _ => Vec::new(),
    }
}

/// Applies events to every consumer. Safe to call again with the same events.
pub async fn apply(state: &AppState, events: &[Event]) -> anyhow::Result<()> {
    if let Some(last) = events.last() {
        metrics::gauge!(CONSUMER_LAG_SECONDS)
            .set((state.clock.now() - last.at).num_milliseconds().max(0) as f64 / 1000.0);
    }
    // Observed-rate counters and the audit log of economy events: one store write
    // for the batch, each event recorded under its id so a redelivery changes nothing.
    let mut items: Vec<ConsumeItem> = Vec::new();
    // For each event, the index of its item (None: nothing to record in the store).
    let mut item_of: Vec<Option<usize>> = Vec::with_capacity(events.len());
    for e in events {
        let counters = banner_counters(e);
        let economy = matches!(
            e.body,
            DomainEvent::LedgerChanged { .. } | DomainEvent::GachaSummoned { .. } | DomainEvent::PurchaseSettled { .. }
        );
        if economy || !counters.is_empty() {
            item_of.push(Some(items.len()));
            let (audit, draws) = (economy.then(|| e.clone()), Draw::of_event(e));
            items.push(ConsumeItem { event_id: e.id.clone(), counters, audit, draws });
        } else {
            item_of.push(None);
        }
    }
    // Per item: new (applied now) or a duplicate (also a second copy in this batch).
    let delivered: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let applied = state.store.consume_batch("consumers", &items, &delivered).await?;
    // A Redis outage must not hold back the store-side effects: the boards are a
    // view, rebuilt from the store when missing, and corrected by the player's next event.
    if let Some(pool) = &state.redis {
        for e in events {
            if let Err(err) = crate::platform::leaderboards::apply(pool, &state.settings.cache_prefix, e).await {
                metrics::counter!(crate::platform::metrics::CACHE_ERRORS, "op" => "leaderboard").increment(1);
                tracing::warn!(error = %err, "consumer: leaderboard not updated in Redis");
                break;
            }
        }
    }
    let mut banners = std::collections::BTreeSet::new();
    for (e, item) in events.iter().zip(&item_of) {
        let applied = match item {
            Some(i) if !applied.get(*i).copied().unwrap_or(false) => "duplicate",
            _ => "yes",
        };
        if let (DomainEvent::GachaSummoned { banner_id, .. }, "yes") = (&e.body, applied) {
            banners.insert(banner_id.clone());
        }
        metrics::counter!(EVENTS_CONSUMED, "kind" => e.kind(), "applied" => applied).increment(1);
    }
    for b in banners {
        publish_observed(state, &b).await;
    }
    Ok(())
}

/// Sets the observed-rate gauges of a banner from the shared counters.
async fn publish_observed(state: &AppState, banner: &str) {
    if let Ok(counts) = state.store.counters(&format!("gacha:{banner}:")).await {
        let total: i64 = counts.iter().map(|(_, n)| n).sum();
        for (name, n) in counts {
            let category = name.rsplit(':').next().unwrap_or_default().to_string();
            metrics::gauge!(GACHA_OBSERVED_RATE, "banner" => banner.to_string(), "category" => category)
                .set(n as f64 / total.max(1) as f64);
        }
    }
}

/// The depth gauges, every 5 s. A stage that cannot be read is NaN, not 0: an
/// outage must not look like an empty queue.
async fn report_depth(state: web::Data<AppState>, queue: Arc<dyn Queue>) {
    let set = |stage: &'static str, n: Option<u64>| {
        metrics::gauge!(QUEUE_DEPTH, "stage" => stage).set(n.map_or(f64::NAN, |n| n as f64));
    };
    loop {
        set("outbox", state.store.outbox_len().await.ok());
        set("unconsumed", state.store.unconsumed_len().await.ok());
        set("broker", queue.depth().await);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
