//! Reading topics back the way any Kafka client would.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use shared::config::{KafkaSettings, Secrets};
use shared::kafka::KafkaPublisher;
use shared::msk::BrokerRecord;

/// The shared local broker (`KAFKA_BOOTSTRAP_SERVERS`).
pub fn bootstrap() -> String {
    crate::env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
}

/// A producer as the functions build one, on the plaintext broker at `bootstrap`, that gives
/// a message up after `delivery_timeout` (the functions' default is 5 s).
pub async fn publisher(bootstrap: &str, delivery_timeout: Duration) -> KafkaPublisher {
    try_publisher(bootstrap, delivery_timeout)
        .await
        .expect("a producer can be configured")
}

/// As [`publisher`], with the failure as an error (for commands that report it).
pub async fn try_publisher(
    bootstrap: &str,
    delivery_timeout: Duration,
) -> anyhow::Result<KafkaPublisher> {
    let mut settings = KafkaSettings::plaintext(bootstrap);
    settings.delivery_timeout = delivery_timeout;
    KafkaPublisher::new(&settings, &Secrets::new()).await
}

/// A producer on the shared local broker, patient enough for a busy machine (20 s).
pub async fn shared_publisher() -> KafkaPublisher {
    publisher(&bootstrap(), Duration::from_secs(20)).await
}

/// A record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl From<BrokerRecord> for ReceivedRecord {
    fn from(record: BrokerRecord) -> Self {
        Self {
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            key: record.key,
            value: record.value,
            headers: record.headers,
        }
    }
}

impl ReceivedRecord {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }

    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|key| std::str::from_utf8(key).ok())
    }

    /// The value as JSON, or `Null` when it is absent or not JSON.
    pub fn json(&self) -> serde_json::Value {
        self.value
            .as_deref()
            .and_then(|value| serde_json::from_slice(value).ok())
            .unwrap_or_default()
    }
}

/// Reads `topic` from the beginning (no group, no commits) and returns the records that
/// `matches`. Once `expected` of them arrived it goes on to the end of every partition, so
/// that a duplicate would be seen too. Gives up after `timeout` with what it has.
pub async fn read_records(
    bootstrap: &str,
    topic: &str,
    matches: impl Fn(&ReceivedRecord) -> bool,
    expected: usize,
    timeout: Duration,
) -> Vec<ReceivedRecord> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("testkit-reader-{}", uuid::Uuid::now_v7()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("a Kafka consumer can be configured");
    let partitions = partition_count(bootstrap, topic).await;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("valid partition");
    }
    consumer
        .assign(&assignment)
        .expect("partitions can be assigned");

    let deadline = tokio::time::Instant::now() + timeout;
    let mut found = Vec::new();
    let mut at_end: HashSet<i32> = HashSet::new();
    loop {
        if found.len() >= expected && at_end.len() == partitions as usize {
            return found;
        }
        let next = tokio::time::timeout_at(deadline, consumer.recv()).await;
        match next {
            Err(_elapsed) => return found,
            Ok(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "transient consumer error while reading back");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Ok(message)) => {
                at_end.remove(&message.partition());
                let record = ReceivedRecord::from(BrokerRecord::from_message(&message));
                if matches(&record) {
                    found.push(record);
                }
            }
        }
    }
}

/// The order events on `topics` whose subject is one of `orders`, read to the end of every
/// partition (what a function sent before it returned is there), duplicates kept. A test
/// reads back what its functions emitted this way: the outbox forgets an event once sent.
pub async fn order_events(
    bootstrap: &str,
    topics: &[&str],
    orders: &HashSet<String>,
) -> Vec<shared::events::OrderEvent> {
    let mut events = Vec::new();
    for topic in topics {
        let records = read_records(
            bootstrap,
            topic,
            |record| {
                record.json()["subject"]
                    .as_str()
                    .is_some_and(|subject| orders.contains(subject))
            },
            0,
            Duration::from_secs(30),
        )
        .await;
        events.extend(records.iter().map(|record| {
            serde_json::from_value(record.json()).expect("the topic holds order events")
        }));
    }
    events
}

/// How many partitions `topic` has, waiting briefly for a broker that is just starting.
/// The value of `topic`'s configuration entry `name` as the broker describes it.
pub async fn topic_config(bootstrap: &str, topic: &str, name: &str) -> Option<String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("a Kafka admin client can be configured");
    let described = admin
        .describe_configs(
            &[ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("the broker answers DescribeConfigs");
    let resource = described
        .into_iter()
        .next()
        .expect("one answer per resource asked")
        .unwrap_or_else(|code| panic!("the broker cannot describe {topic}: {code}"));
    resource.get(name).and_then(|entry| entry.value.clone())
}

pub async fn partition_count(bootstrap: &str, topic: &str) -> i32 {
    let consumer: Arc<BaseConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("a Kafka client can be configured"),
    );
    crate::eventually(
        &format!("topic {topic} on {bootstrap}"),
        Duration::from_secs(10),
        || {
            let (consumer, topic) = (consumer.clone(), topic.to_owned());
            async move {
                tokio::task::spawn_blocking(move || {
                    let metadata = consumer
                        .fetch_metadata(Some(&topic), Duration::from_secs(2))
                        .map_err(|err| err.to_string())?;
                    metadata
                        .topics()
                        .iter()
                        .find(|found| found.name() == topic)
                        .filter(|found| found.error().is_none() && !found.partitions().is_empty())
                        .map(|found| found.partitions().len() as i32)
                        .ok_or_else(|| "no such topic yet".to_owned())
                })
                .await
                .expect("metadata lookup does not panic")
            }
        },
    )
    .await
}
