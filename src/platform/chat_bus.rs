//! Live chat delivery: every process keeps one broadcast channel per chat
//! channel for its own subscribers (Server-Sent Event streams). A message sent
//! to any process reaches every process's subscribers: with Redis on, it is
//! published once on a Redis pub/sub channel and every process (the sender's
//! too) hands what it receives to its local subscribers, so all of them see
//! one order; without Redis, the one process delivers it directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};

use crate::game::chat::ChatMessage;

/// Messages a slow subscriber may fall behind before it is told it lagged.
const BUFFER: usize = 256;

use super::metrics::CHAT_BUS_ERRORS;

/// The local subscribers and the way to the other processes.
pub struct ChatBus {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<ChatMessage>>>>,
    /// Redis: the pool to publish with, the URL the listener connects to, and
    /// the pub/sub channel name.
    redis: Option<(deadpool_redis::Pool, String, String)>,
    closing: watch::Sender<bool>,
}

/// What a subscriber holds: its messages, and the server's closing signal.
pub struct Subscription {
    /// Messages of the channel, from now on.
    pub messages: broadcast::Receiver<Arc<ChatMessage>>,
    /// Turns true when the server begins shutting down: streams end.
    pub closing: watch::Receiver<bool>,
}

impl ChatBus {
    /// A bus; with `redis` (pool, URL, key prefix), across processes.
    pub fn new(redis: Option<(deadpool_redis::Pool, String, &str)>) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            redis: redis.map(|(pool, url, prefix)| (pool, url, format!("{prefix}:chat"))),
            closing: watch::channel(false).0,
        }
    }

    /// Subscribes to a stored channel's new messages.
    pub fn subscribe(&self, channel: &str) -> Subscription {
        let mut map = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = map.entry(channel.to_string()).or_insert_with(|| broadcast::channel(BUFFER).0);
        Subscription { messages: tx.subscribe(), closing: self.closing.subscribe() }
    }

    /// Hands a message to this process's subscribers of its channel.
    fn deliver_local(&self, message: Arc<ChatMessage>) {
        let mut map = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = map.get(&message.channel) {
            if tx.send(message.clone()).is_err() {
                // Nobody listens any more: forget the channel.
                map.remove(&message.channel);
            }
        }
    }

    /// Sends a stored message to every subscriber of its channel on every process.
    pub async fn publish(&self, message: &ChatMessage) {
        let Some((pool, _, topic)) = &self.redis else {
            self.deliver_local(Arc::new(message.clone()));
            return;
        };
        let sent = async {
            let payload = serde_json::to_string(message).map_err(|e| e.to_string())?;
            let mut c = pool.get().await.map_err(|e| e.to_string())?;
            deadpool_redis::redis::cmd("PUBLISH")
                .arg(topic)
                .arg(payload)
                .query_async::<i64>(&mut c)
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = tokio::time::timeout(Duration::from_secs(2), sent).await.unwrap_or(Err("timed out".into())) {
            // The message is stored (history has it); live, it reaches this process's subscribers only.
            metrics::counter!(CHAT_BUS_ERRORS, "op" => "publish").increment(1);
            tracing::warn!(error = %e, "chat: publishing to Redis failed; delivered on this process only");
            self.deliver_local(Arc::new(message.clone()));
        }
    }

    /// With Redis on: listens to the pub/sub channel until the process ends,
    /// reconnecting after a loss, and hands each message to local subscribers.
    pub fn spawn_listener(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let (_, url, topic) = self.redis.clone()?;
        let bus = self.clone();
        Some(tokio::spawn(async move {
            loop {
                if let Err(e) = bus.listen(&url, &topic).await {
                    metrics::counter!(CHAT_BUS_ERRORS, "op" => "listen").increment(1);
                    tracing::warn!(error = %e, "chat: Redis subscription lost; reconnecting");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }))
    }

    async fn listen(&self, url: &str, topic: &str) -> anyhow::Result<()> {
        let client = deadpool_redis::redis::Client::open(url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(topic).await?;
        let mut messages = pubsub.on_message();
        while let Some(m) = messages.next().await {
            let payload: String = m.get_payload()?;
            match serde_json::from_str::<ChatMessage>(&payload) {
                Ok(msg) => self.deliver_local(Arc::new(msg)),
                Err(e) => tracing::warn!(error = %e, "chat: an unreadable message on the bus"),
            }
        }
        anyhow::bail!("the subscription ended")
    }

    /// Ends every stream (shutdown: long-lived streams must not hold the drain).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}
