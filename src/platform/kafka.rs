//! Kafka as the event queue (`MQ_BACKEND=kafka`), on librdkafka.
//!
//! Publishing: an idempotent producer (`enable.idempotence`, `acks=all`), each
//! event keyed by its player so that a player's events stay in order on one
//! partition; `publish` returns once the broker acknowledged every event.
//! Consuming: one consumer group; offsets are committed by hand, after the
//! consumers applied a batch (`ack`), so a consumer that dies before its ack
//! leaves the batch to the member that takes its partitions over. The topic is
//! created at start when missing (no broker-side auto-creation is assumed).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::queue::{Consumer, Delivery, Queue, QueueError};
use crate::store::events::Event;

/// How long a publish may wait for the broker's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `receive` waits for a first message.
const RECEIVE_WAIT: Duration = Duration::from_millis(500);

fn kerr(e: impl std::fmt::Display) -> QueueError {
    QueueError(format!("kafka: {e}"))
}

/// Where and how to reach Kafka.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port,...` (`KAFKA_BROKERS`).
    pub brokers: String,
    /// The events topic (`KAFKA_TOPIC`).
    pub topic: String,
    /// The consumer group (`KAFKA_GROUP`).
    pub group: String,
    /// Partitions of the topic when it is created (`KAFKA_PARTITIONS`).
    pub partitions: i32,
}

/// The events topic on a Kafka cluster.
pub struct KafkaQueue {
    settings: KafkaSettings,
    producer: FutureProducer,
}

impl KafkaQueue {
    /// Connects the producer and creates the topic when it is missing.
    pub async fn connect(settings: KafkaSettings) -> Result<Self, QueueError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &settings.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "gzip")
            .set("message.timeout.ms", PUBLISH_TIMEOUT.as_millis().to_string())
            .create()
            .map_err(kerr)?;
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &settings.brokers).create().map_err(kerr)?;
        let topic = NewTopic::new(&settings.topic, settings.partitions, TopicReplication::Fixed(1));
        // A broker that does not answer fails the start within seconds.
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(5)))
            .request_timeout(Some(Duration::from_secs(5)));
        for result in admin.create_topics([&topic], &options).await.map_err(kerr)? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(kerr(format!("creating topic {name}: {code}"))),
            }
        }
        Ok(Self { settings, producer })
    }
}

#[async_trait]
impl Queue for KafkaQueue {
    fn backend(&self) -> &'static str {
        "kafka"
    }

    async fn publish(&self, events: &[Event]) -> Result<(), QueueError> {
        let payloads: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| Ok((e.player_id.clone(), serde_json::to_vec(e).map_err(kerr)?)))
            .collect::<Result<_, QueueError>>()?;
        let sends = payloads.iter().map(|(key, payload)| {
            self.producer.send(FutureRecord::to(&self.settings.topic).key(key).payload(payload), PUBLISH_TIMEOUT)
        });
        for result in futures_util::future::join_all(sends).await {
            result.map_err(|(e, _)| kerr(e))?;
        }
        Ok(())
    }

    async fn consumer(&self, name: &str) -> Result<Box<dyn Consumer>, QueueError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.settings.brokers)
            .set("group.id", &self.settings.group)
            .set("client.id", name)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .create()
            .map_err(kerr)?;
        consumer.subscribe(&[&self.settings.topic]).map_err(kerr)?;
        Ok(Box::new(KafkaConsumer { consumer, topic: self.settings.topic.clone() }))
    }

    async fn depth(&self) -> Option<u64> {
        None
    }
}

struct KafkaConsumer {
    consumer: StreamConsumer,
    topic: String,
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn receive(&mut self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let mut out = Vec::new();
        let mut wait = RECEIVE_WAIT;
        while out.len() < max {
            let Ok(message) = tokio::time::timeout(wait, self.consumer.recv()).await else { break };
            let message = message.map_err(kerr)?;
            // After the first, take only what is already here.
            wait = Duration::from_millis(5);
            let tag = format!("{}:{}", message.partition(), message.offset());
            let Some(payload) = message.payload() else { continue };
            match serde_json::from_slice::<Event>(payload) {
                Ok(event) => out.push(Delivery { event, tag }),
                Err(e) => tracing::warn!(error = %e, tag, "kafka: skipping a message that is not an event"),
            }
        }
        Ok(out)
    }

    async fn ack(&mut self, done: &[Delivery]) -> Result<(), QueueError> {
        // The next offset to read, per partition: everything before it is applied.
        let mut next: HashMap<i32, i64> = HashMap::new();
        for d in done {
            let Some((partition, offset)) = d.tag.split_once(':') else { continue };
            let (Ok(partition), Ok(offset)) = (partition.parse::<i32>(), offset.parse::<i64>()) else { continue };
            let e = next.entry(partition).or_insert(0);
            *e = (*e).max(offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next {
            list.add_partition_offset(&self.topic, partition, Offset::Offset(offset)).map_err(kerr)?;
        }
        self.consumer.commit(&list, CommitMode::Sync).map_err(kerr)
    }
}
