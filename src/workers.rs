//! Background workers: the outbox relay (store → queue) and the consumers
//! (queue → leaderboards in Redis, per-banner observed rates, the audit log).
//! Every consumer is idempotent by event id, so at-least-once delivery applies
//! each event exactly once in effect.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use crate::platform::metrics::{
    CONSUMER_LAG_SECONDS, EVENTS_CONSUMED, EVENTS_RELAYED, GACHA_OBSERVED_RATE, QUEUE_DEPTH,
};
use crate::platform::queue::{Consumer, Queue};
use crate::state::AppState;
use crate::store::events::{ConsumeItem, DomainEvent, Event};

/// Events relayed per round trip.
const RELAY_BATCH: usize = 256;
/// Deliveries handled per receive.
const CONSUME_BATCH: usize = 64;

/// Starts the relay and one consumer; they stop when the handles are aborted.
pub fn spawn(state: web::Data<AppState>, queue: Arc<dyn Queue>) -> Vec<JoinHandle<()>> {
    let name = format!("{}-{}", state.settings.service_name, uuid::Uuid::new_v4().simple());
    vec![
        tokio::spawn(relay(state.clone(), queue.clone())),
        tokio::spawn(consume(state.clone(), queue.clone(), name)),
        tokio::spawn(report_depth(state.clone(), queue)),
        tokio::spawn(prune(state)),
    ]
}

/// Rows deleted per pruning write, so that pruning never holds the writer long.
const PRUNE_BATCH: usize = 1000;

/// Deletes idempotency records and history past their retention, every ten
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

/// Moves outbox events to the queue, deleting them only after the broker accepted them.
pub async fn relay(state: web::Data<AppState>, queue: Arc<dyn Queue>) {
    loop {
        match relay_once(&state, queue.as_ref()).await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "relay: will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One relay round: publish a batch, then forget it. Returns how many moved.
pub async fn relay_once(state: &AppState, queue: &dyn Queue) -> anyhow::Result<usize> {
    let batch = state.store.outbox_batch(RELAY_BATCH).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    let events: Vec<Event> = batch.iter().map(|b| b.event.clone()).collect();
    queue.publish(&events).await?;
    // A crash here resends the batch after restart; consumers skip what they applied.
    let keys: Vec<String> = batch.into_iter().map(|b| b.key).collect();
    state.store.outbox_delete(&keys).await?;
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
        if let Err(e) = consume_once(&state, consumer.as_mut()).await {
            tracing::warn!(error = %e, "consumer: will retry");
            tokio::time::sleep(Duration::from_secs(1)).await;
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
    Ok(deliveries.len())
}

/// Per-banner observed-rate counters of an event (gacha summons only).
fn banner_counters(e: &Event) -> Vec<(String, i64)> {
    match &e.body {
        DomainEvent::GachaSummoned { banner_id, results, .. } => {
            results.iter().map(|r| (format!("gacha:{banner_id}:{}", r.category), 1)).collect()
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
        let economy = matches!(e.body, DomainEvent::LedgerChanged { .. } | DomainEvent::GachaSummoned { .. });
        if economy || !counters.is_empty() {
            item_of.push(Some(items.len()));
            items.push(ConsumeItem { event_id: e.id.clone(), counters, audit: economy.then(|| e.clone()) });
        } else {
            item_of.push(None);
        }
    }
    // Per item: new (applied now) or a duplicate (also a second copy in this batch).
    let applied = state.store.consume_batch("consumers", &items).await?;
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

async fn report_depth(state: web::Data<AppState>, queue: Arc<dyn Queue>) {
    loop {
        let outbox = state.store.outbox_len().await.unwrap_or(0);
        let broker = queue.depth().await.unwrap_or(0);
        metrics::gauge!(QUEUE_DEPTH, "stage" => "outbox").set(outbox as f64);
        metrics::gauge!(QUEUE_DEPTH, "stage" => "broker").set(broker as f64);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
