//! The message queue between the outbox relay and the consumers, chosen by
//! `MQ_BACKEND`: `memory` (in process, bounded), `redis` (a Redis Stream with a
//! consumer group: pods share the work, and a crashed consumer's unacknowledged
//! messages are claimed by another after `CLAIM_IDLE`) or `rabbitmq` (a durable
//! queue with publisher confirms). Delivery is at least once; consumers are
//! idempotent by event id.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, Value as RedisValue};
use tokio::sync::{mpsc, Mutex};

use crate::store::events::Event;

/// A queue failure (broker unreachable, refused, or garbled).
#[derive(Debug, thiserror::Error)]
#[error("queue: {0}")]
pub struct QueueError(pub String);

fn qerr(e: impl std::fmt::Display) -> QueueError {
    QueueError(e.to_string())
}

/// One received event and how to acknowledge it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event.
    pub event: Event,
    /// Broker handle (stream entry id); empty for the memory queue.
    pub tag: String,
}

/// Publishing side.
#[async_trait]
pub trait Queue: Send + Sync {
    /// The backend's name.
    fn backend(&self) -> &'static str;
    /// Publishes and returns once the broker has accepted every event.
    async fn publish(&self, events: &[Event]) -> Result<(), QueueError>;
    /// A consumer in the shared group, named `name` (unique per process).
    async fn consumer(&self, name: &str) -> Result<Box<dyn Consumer>, QueueError>;
    /// Messages waiting or in flight, when the broker can tell.
    async fn depth(&self) -> Option<u64>;
    /// How many times a consumer found that the broker had lost its state (a
    /// stream, group or queue gone): events it had accepted may be gone too.
    fn resets(&self) -> u64 {
        0
    }
}

/// Receiving side.
#[async_trait]
pub trait Consumer: Send {
    /// Up to `max` deliveries, waiting briefly when there are none.
    async fn receive(&mut self, max: usize) -> Result<Vec<Delivery>, QueueError>;
    /// Acknowledges handled deliveries.
    async fn ack(&mut self, done: &[Delivery]) -> Result<(), QueueError>;
}

/// Capacity of the in-process queue: publishers wait when it is full.
const MEMORY_CAPACITY: usize = 10_000;
/// How often an idle RabbitMQ consumer checks that its queue still exists.
const QUEUE_CHECK: Duration = Duration::from_secs(2);
/// A stream entry unacknowledged this long is taken over by another consumer.
const CLAIM_IDLE: Duration = Duration::from_secs(30);
/// The stream is trimmed to about this many entries.
const STREAM_MAX_LEN: u64 = 1_000_000;

/// In-process queue for a single process.
pub struct MemoryQueue {
    tx: mpsc::Sender<Event>,
    rx: Arc<Mutex<mpsc::Receiver<Event>>>,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(MEMORY_CAPACITY);
        Self { tx, rx: Arc::new(Mutex::new(rx)) }
    }
}

struct MemoryConsumer {
    rx: Arc<Mutex<mpsc::Receiver<Event>>>,
}

#[async_trait]
impl Queue for MemoryQueue {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn publish(&self, events: &[Event]) -> Result<(), QueueError> {
        for e in events {
            self.tx.send(e.clone()).await.map_err(|_| qerr("in-process queue closed"))?;
        }
        Ok(())
    }

    async fn consumer(&self, _name: &str) -> Result<Box<dyn Consumer>, QueueError> {
        Ok(Box::new(MemoryConsumer { rx: self.rx.clone() }))
    }

    async fn depth(&self) -> Option<u64> {
        Some((MEMORY_CAPACITY - self.tx.capacity()) as u64)
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn receive(&mut self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let mut rx = self.rx.lock().await;
        let mut out = Vec::new();
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some(e)) => out.push(Delivery { event: e, tag: String::new() }),
            Ok(None) => return Err(qerr("in-process queue closed")),
            Err(_) => return Ok(out),
        }
        while out.len() < max {
            match rx.try_recv() {
                Ok(e) => out.push(Delivery { event: e, tag: String::new() }),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    async fn ack(&mut self, _done: &[Delivery]) -> Result<(), QueueError> {
        Ok(())
    }
}

/// A Redis Stream with one consumer group shared by every process.
pub struct RedisStreamQueue {
    pool: deadpool_redis::Pool,
    stream: String,
    group: String,
    /// Group re-creations seen by this process's consumers.
    resets: Arc<AtomicU64>,
}

impl RedisStreamQueue {
    /// A queue on `stream` (created on first use) with consumer group `group`.
    pub async fn new(pool: deadpool_redis::Pool, stream: String, group: String) -> Result<Self, QueueError> {
        let q = Self { pool, stream, group, resets: Arc::default() };
        let mut c = q.pool.get().await.map_err(qerr)?;
        create_group(&mut c, &q.stream, &q.group).await?;
        Ok(q)
    }
}

/// Creates the consumer group (and the stream) unless it exists. It starts at
/// the beginning: events written before the first consumer existed count too.
async fn create_group(c: &mut deadpool_redis::Connection, stream: &str, group: &str) -> Result<(), QueueError> {
    let r: redis::RedisResult<String> =
        redis::cmd("XGROUP").arg("CREATE").arg(stream).arg(group).arg("0").arg("MKSTREAM").query_async(c).await;
    match r {
        Err(e) if !e.to_string().contains("BUSYGROUP") => Err(qerr(e)),
        _ => Ok(()),
    }
}

/// Redis answers NOGROUP when the stream or its group is gone: a Redis that
/// restarted without its data, or a stream deleted by hand.
fn is_nogroup(e: &redis::RedisError) -> bool {
    e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP")
}

struct RedisStreamConsumer {
    pool: deadpool_redis::Pool,
    stream: String,
    group: String,
    name: String,
    resets: Arc<AtomicU64>,
}

fn bulk(v: &RedisValue) -> Option<String> {
    match v {
        RedisValue::BulkString(b) => String::from_utf8(b.clone()).ok(),
        RedisValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Parses stream entries `[[id, [field, value, ...]], ...]` into deliveries.
fn entries(v: &RedisValue) -> Vec<Delivery> {
    let RedisValue::Array(items) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let RedisValue::Array(pair) = item else { return None };
            let id = bulk(pair.first()?)?;
            let RedisValue::Array(fields) = pair.get(1)? else { return None };
            let json =
                fields.chunks(2).find(|kv| bulk(&kv[0]).as_deref() == Some("event")).and_then(|kv| bulk(kv.get(1)?))?;
            let event = serde_json::from_str(&json).ok()?;
            Some(Delivery { event, tag: id })
        })
        .collect()
}

#[async_trait]
impl Queue for RedisStreamQueue {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn publish(&self, events: &[Event]) -> Result<(), QueueError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut c = self.pool.get().await.map_err(qerr)?;
        let mut pipe = redis::pipe();
        for e in events {
            let json = serde_json::to_string(e).map_err(qerr)?;
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(STREAM_MAX_LEN)
                .arg("*")
                .arg("event")
                .arg(json);
        }
        let _: Vec<String> = pipe.query_async(&mut c).await.map_err(qerr)?;
        Ok(())
    }

    async fn consumer(&self, name: &str) -> Result<Box<dyn Consumer>, QueueError> {
        Ok(Box::new(RedisStreamConsumer {
            pool: self.pool.clone(),
            stream: self.stream.clone(),
            group: self.group.clone(),
            name: name.to_string(),
            resets: self.resets.clone(),
        }))
    }

    fn resets(&self) -> u64 {
        self.resets.load(Ordering::SeqCst)
    }

    async fn depth(&self) -> Option<u64> {
        let mut c = self.pool.get().await.ok()?;
        let groups: RedisValue = redis::cmd("XINFO").arg("GROUPS").arg(&self.stream).query_async(&mut c).await.ok()?;
        let RedisValue::Array(groups) = groups else { return None };
        for g in groups {
            let fields: Vec<(String, RedisValue)> = match g {
                RedisValue::Array(kv) => kv.chunks(2).filter_map(|p| Some((bulk(&p[0])?, p.get(1)?.clone()))).collect(),
                RedisValue::Map(kv) => kv.into_iter().filter_map(|(k, v)| Some((bulk(&k)?, v))).collect(),
                _ => continue,
            };
            let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if get("name").and_then(|v| bulk(&v)).as_deref() != Some(self.group.as_str()) {
                continue;
            }
            let num = |v: Option<RedisValue>| match v {
                Some(RedisValue::Int(n)) => n.max(0) as u64,
                _ => 0,
            };
            return Some(num(get("lag")) + num(get("pending")));
        }
        None
    }
}

#[async_trait]
impl Consumer for RedisStreamConsumer {
    async fn receive(&mut self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let mut c = self.pool.get().await.map_err(qerr)?;
        match self.read(&mut c, max).await {
            Err(e) if is_nogroup(&e) => {
                // The group went with the stream: make it again (from the start of
                // what the stream now holds) and carry on without a restart.
                tracing::warn!(stream = %self.stream, group = %self.group, "consumer group missing (Redis lost its data?): recreating it");
                create_group(&mut c, &self.stream, &self.group).await?;
                // The relay publishes again what was published and not yet consumed.
                self.resets.fetch_add(1, Ordering::SeqCst);
                Ok(Vec::new())
            }
            r => r.map_err(qerr),
        }
    }

    async fn ack(&mut self, done: &[Delivery]) -> Result<(), QueueError> {
        if done.is_empty() {
            return Ok(());
        }
        let mut c = self.pool.get().await.map_err(qerr)?;
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.stream).arg(&self.group);
        for d in done {
            cmd.arg(&d.tag);
        }
        let _: i64 = cmd.query_async(&mut c).await.map_err(qerr)?;
        Ok(())
    }
}

impl RedisStreamConsumer {
    /// Entries left too long by a crashed consumer first, then new ones.
    async fn read(&self, c: &mut deadpool_redis::Connection, max: usize) -> redis::RedisResult<Vec<Delivery>> {
        // First, entries a crashed consumer left unacknowledged for too long.
        let claimed: RedisValue = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.name)
            .arg(CLAIM_IDLE.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(max)
            .query_async(c)
            .await?;
        if let RedisValue::Array(parts) = &claimed {
            if let Some(list) = parts.get(1) {
                let got = entries(list);
                if !got.is_empty() {
                    return Ok(got);
                }
            }
        }
        let read: RedisValue = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(500)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(c)
            .await?;
        // [[stream, [entries...]]] (RESP2) or {stream: [entries...]} (RESP3); nil on time-out.
        let list = match &read {
            RedisValue::Array(streams) => streams.first().and_then(|s| match s {
                RedisValue::Array(kv) => kv.get(1).cloned(),
                _ => None,
            }),
            RedisValue::Map(kv) => kv.first().map(|(_, v)| v.clone()),
            _ => None,
        };
        Ok(list.map(|l| entries(&l)).unwrap_or_default())
    }
}

/// A durable RabbitMQ queue: persistent messages, publisher confirms, manual
/// acknowledgements (a consumer that dies leaves its unacknowledged messages
/// to the others). A lost connection is opened again on the next call, and a
/// queue the broker lost (restarted without its data, deleted by hand) is
/// declared again and counted as a reset; a message the broker could not route
/// (published as mandatory) fails the publish instead of vanishing.
pub struct RabbitQueue {
    inner: Arc<RabbitLink>,
}

/// The connection shared by the publisher and this process's consumers.
struct RabbitLink {
    url: String,
    queue: String,
    live: Mutex<Option<(Arc<lapin::Connection>, lapin::Channel)>>,
    /// Whether the queue was declared once already (a later miss is a reset).
    declared: AtomicBool,
    resets: AtomicU64,
}

impl RabbitLink {
    /// The live connection and publisher channel, opened again if lost.
    async fn get(&self) -> Result<(Arc<lapin::Connection>, lapin::Channel), QueueError> {
        use lapin::options::ConfirmSelectOptions;
        let mut live = self.live.lock().await;
        if let Some((c, p)) = live.as_ref() {
            if c.status().connected() && p.status().connected() {
                return Ok((c.clone(), p.clone()));
            }
        }
        *live = None;
        let connection = Arc::new(
            lapin::Connection::connect(&self.url, lapin::ConnectionProperties::default()).await.map_err(qerr)?,
        );
        self.ensure_queue(&connection).await?;
        let publisher = connection.create_channel().await.map_err(qerr)?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(qerr)?;
        *live = Some((connection.clone(), publisher.clone()));
        Ok((connection, publisher))
    }

    /// Forgets the connection after a failure, so that the next call opens a new one.
    async fn drop_link(&self) {
        if let Some((connection, _)) = self.live.lock().await.take() {
            tokio::spawn(async move {
                let _ = connection.close(200, "reconnecting").await;
            });
        }
    }

    /// Declares the durable queue; if it had been declared before and is gone
    /// now, the broker lost it (and whatever it held): a reset. Returns whether
    /// it was there.
    async fn ensure_queue(&self, connection: &lapin::Connection) -> Result<bool, QueueError> {
        use lapin::options::QueueDeclareOptions;
        let table = lapin::types::FieldTable::default;
        // A passive declare that fails closes its channel: a throwaway one.
        let probe = connection.create_channel().await.map_err(qerr)?;
        let passive = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
        let existed = probe.queue_declare(&self.queue, passive, table()).await.is_ok();
        if existed {
            let _ = probe.close(200, "checked").await;
        } else {
            let channel = connection.create_channel().await.map_err(qerr)?;
            let durable = QueueDeclareOptions { durable: true, ..Default::default() };
            channel.queue_declare(&self.queue, durable, table()).await.map_err(qerr)?;
            let _ = channel.close(200, "declared").await;
            if self.declared.load(Ordering::SeqCst) {
                tracing::warn!(queue = %self.queue, "rabbitmq queue missing (broker lost its data?): declared it again");
                self.resets.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.declared.store(true, Ordering::SeqCst);
        Ok(existed)
    }
}

struct RabbitConsumer {
    link: Arc<RabbitLink>,
    name: String,
    /// The subscription; `None` after a failure, made again on the next receive.
    subscription: Option<(lapin::Channel, lapin::Consumer)>,
    /// When the queue was last seen to exist: a broker that deletes a queue
    /// does not always tell its consumers, so an idle consumer looks now and then.
    checked: tokio::time::Instant,
    pending: std::collections::HashMap<String, lapin::acker::Acker>,
}

impl RabbitQueue {
    /// Connects, declares the durable queue and turns on publisher confirms.
    pub async fn connect(url: &str, queue: String) -> Result<Self, QueueError> {
        let inner = Arc::new(RabbitLink {
            url: url.to_string(),
            queue,
            live: Mutex::new(None),
            declared: AtomicBool::new(false),
            resets: AtomicU64::new(0),
        });
        inner.get().await?;
        Ok(Self { inner })
    }
}

#[async_trait]
impl Queue for RabbitQueue {
    fn backend(&self) -> &'static str {
        "rabbitmq"
    }

    async fn publish(&self, events: &[Event]) -> Result<(), QueueError> {
        let (_, publisher) = self.inner.get().await?;
        let r = publish_confirmed(&publisher, &self.inner.queue, events).await;
        if r.is_err() {
            self.inner.drop_link().await;
        }
        r
    }

    async fn consumer(&self, name: &str) -> Result<Box<dyn Consumer>, QueueError> {
        let mut c = RabbitConsumer {
            link: self.inner.clone(),
            name: name.to_string(),
            subscription: None,
            pending: Default::default(),
            checked: tokio::time::Instant::now(),
        };
        c.subscribe().await?;
        Ok(Box::new(c))
    }

    async fn depth(&self) -> Option<u64> {
        use lapin::options::QueueDeclareOptions;
        let (_, publisher) = self.inner.get().await.ok()?;
        let q = publisher
            .queue_declare(
                &self.inner.queue,
                QueueDeclareOptions { passive: true, durable: true, ..Default::default() },
                lapin::types::FieldTable::default(),
            )
            .await
            .ok()?;
        Some(u64::from(q.message_count()))
    }

    fn resets(&self) -> u64 {
        self.inner.resets.load(Ordering::SeqCst)
    }
}

/// Publishes persistent, mandatory messages and waits for every confirm.
async fn publish_confirmed(publisher: &lapin::Channel, queue: &str, events: &[Event]) -> Result<(), QueueError> {
    use lapin::options::BasicPublishOptions;
    use lapin::publisher_confirm::Confirmation;
    let mut confirms = Vec::with_capacity(events.len());
    for e in events {
        let body = serde_json::to_vec(e).map_err(qerr)?;
        let props = lapin::BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(e.id.clone().into())
            .with_content_type("application/json".into());
        // Mandatory: a message no queue takes comes back instead of vanishing.
        let options = BasicPublishOptions { mandatory: true, ..Default::default() };
        confirms.push(publisher.basic_publish("", queue, options, &body, props).await.map_err(qerr)?);
    }
    // Done only when the broker has confirmed every message into the queue.
    for c in confirms {
        match c.await.map_err(qerr)? {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(_)) => return Err(qerr("the queue is gone: a message came back unrouted")),
            other => return Err(QueueError(format!("broker did not confirm: {other:?}"))),
        }
    }
    Ok(())
}

impl RabbitConsumer {
    /// Subscribes on the live connection (opened again, and the queue declared
    /// again, if lost).
    async fn subscribe(&mut self) -> Result<(), QueueError> {
        use lapin::options::{BasicConsumeOptions, BasicQosOptions};
        let (connection, _) = self.link.get().await?;
        self.link.ensure_queue(&connection).await?;
        let channel = connection.create_channel().await.map_err(qerr)?;
        channel.basic_qos(256, BasicQosOptions::default()).await.map_err(qerr)?;
        let consumer = channel
            .basic_consume(
                &self.link.queue,
                &self.name,
                BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await
            .map_err(qerr)?;
        self.subscription = Some((channel, consumer));
        Ok(())
    }

    /// Gives up the subscription after a failure: unacknowledged deliveries go
    /// back to the queue with the channel, and come again.
    fn lose(&mut self, why: impl std::fmt::Display) -> QueueError {
        self.subscription = None;
        self.pending.clear();
        qerr(why)
    }

    fn take(&mut self, d: lapin::message::Delivery) -> Option<Delivery> {
        let tag = d.delivery_tag.to_string();
        match serde_json::from_slice::<Event>(&d.data) {
            Ok(event) => {
                self.pending.insert(tag.clone(), d.acker);
                Some(Delivery { event, tag })
            }
            Err(e) => {
                // A message no consumer can read would come back forever: drop it loudly.
                tracing::error!(error = %e, "rabbitmq: undecodable message dropped");
                let acker = d.acker;
                tokio::spawn(async move {
                    let _ = acker.reject(lapin::options::BasicRejectOptions { requeue: false }).await;
                });
                None
            }
        }
    }
}

#[async_trait]
impl Consumer for RabbitConsumer {
    async fn receive(&mut self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        use futures_util::{FutureExt, StreamExt};
        if self.subscription.is_none() {
            if let Err(e) = self.subscribe().await {
                self.link.drop_link().await;
                return Err(e);
            }
        }
        let Some((_, consumer)) = self.subscription.as_mut() else { return Ok(Vec::new()) };
        let first = match tokio::time::timeout(Duration::from_millis(500), consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => return Err(self.lose(e)),
            // Cancelled by the broker (the queue was deleted) or the channel closed.
            Ok(None) => return Err(self.lose("rabbitmq subscription ended")),
            Err(_) => {
                if self.checked.elapsed() >= QUEUE_CHECK {
                    self.checked = tokio::time::Instant::now();
                    let (connection, _) = self.link.get().await?;
                    if !self.link.ensure_queue(&connection).await? {
                        // Declared again: the old subscription is dead.
                        return Err(self.lose("the rabbitmq queue was gone"));
                    }
                }
                return Ok(Vec::new());
            }
        };
        let mut got = vec![first];
        while got.len() < max {
            match consumer.next().now_or_never() {
                Some(Some(Ok(d))) => got.push(d),
                Some(Some(Err(e))) => return Err(self.lose(e)),
                _ => break,
            }
        }
        Ok(got.into_iter().filter_map(|d| self.take(d)).collect())
    }

    async fn ack(&mut self, done: &[Delivery]) -> Result<(), QueueError> {
        for d in done {
            if let Some(acker) = self.pending.remove(&d.tag) {
                if let Err(e) = acker.ack(lapin::options::BasicAckOptions::default()).await {
                    return Err(self.lose(e));
                }
            }
        }
        Ok(())
    }
}
