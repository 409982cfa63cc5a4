//! An emulator of Lambda's MSK event source mapping: it polls a consumer group, batches
//! records by size and batching window, hands the handler a `KafkaEvent` shaped exactly as
//! Lambda's, commits offsets only after the handler succeeds, and retries a failed batch with
//! capped exponential backoff while its partitions wait.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use backon::{BackoffBuilder, ExponentialBuilder};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use shared::msk::{BrokerRecord, kafka_event};
use tokio_util::sync::CancellationToken;

/// Where a new consumer group starts reading (`StartingPosition` in the template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
}

/// One MSK trigger, as `template.yaml` declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerSpec {
    /// The function's logical id, for logs.
    pub function: String,
    pub topics: Vec<String>,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub starting_position: StartingPosition,
    pub consumer_group: String,
}

/// How long a failed batch waits before its next try: 100 ms doubling up to 10 s, as
/// Lambda backs off, and never giving up (the partition waits, nothing is skipped).
fn retry_delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build()
}

/// With a zero batching window, how long to wait for records already on their way, so
/// that a burst still arrives as one batch.
const DRAIN_WAIT: Duration = Duration::from_millis(5);

/// Runs one trigger until `shutdown` is cancelled. A batch in flight is finished and
/// committed before it returns.
pub async fn run<H, F, E>(
    spec: TriggerSpec,
    kafka: ClientConfig,
    event_source_arn: String,
    handler: H,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    H: Fn(KafkaEvent) -> F,
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let bootstrap_servers = kafka
        .get("bootstrap.servers")
        .unwrap_or_default()
        .to_owned();
    let consumer: StreamConsumer = kafka
        .clone()
        .set("group.id", &spec.consumer_group)
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            match spec.starting_position {
                StartingPosition::TrimHorizon => "earliest",
                StartingPosition::Latest => "latest",
            },
        )
        // A batch may be retried for a long outage; stay in the group meanwhile.
        .set("max.poll.interval.ms", "3600000")
        // Ask the broker to answer a fetch within 50 ms: a local broker may hold every fetch
        // for the whole wait even when data is there, which would add it to every step.
        .set("fetch.wait.max.ms", "50")
        // A crashed runtime's member is dropped after 10 s, so its restart resumes soon.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .create()?;
    let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(function = %spec.function, topics = ?spec.topics, group = %spec.consumer_group, "MSK trigger emulator started");

    loop {
        let batch = tokio::select! {
            () = shutdown.cancelled() => break,
            batch = next_batch(&consumer, &spec) => batch?,
        };
        let event = kafka_event(&event_source_arn, &bootstrap_servers, batch.iter().cloned());
        let mut delays = retry_delays();
        let mut attempt = 1;
        loop {
            match handler(event.clone()).await {
                Ok(()) => {
                    // Commits are cumulative: one lost to a broker outage is covered by the
                    // next, and at worst the batch is delivered again, which is harmless.
                    match commit(&consumer, &batch) {
                        Ok(()) => {
                            tracing::debug!(function = %spec.function, records = batch.len(), "batch committed")
                        }
                        Err(err) => {
                            tracing::warn!(function = %spec.function, error = %err, "offsets not committed; the next commit covers them")
                        }
                    }
                    break;
                }
                Err(err) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(
                        function = %spec.function,
                        attempt,
                        records = batch.len(),
                        retry_in_ms = delay.as_millis() as u64,
                        error = %err,
                        "batch failed; it will be retried"
                    );
                    tokio::select! {
                        // Not committed: the batch is delivered again on the next start.
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                    attempt += 1;
                }
            }
        }
    }
    tracing::info!(function = %spec.function, "MSK trigger emulator stopped");
    Ok(())
}

/// Waits for a first record, then gathers more until the batch is full or the batching
/// window (counted from the first record, as Lambda does) has passed.
async fn next_batch(
    consumer: &StreamConsumer,
    spec: &TriggerSpec,
) -> anyhow::Result<Vec<BrokerRecord>> {
    let mut batch = loop {
        match consumer.recv().await {
            Ok(first) => break vec![BrokerRecord::from_message(&first)],
            Err(err) => wait_out(err, spec).await?,
        }
    };
    let window = spec.batching_window.max(DRAIN_WAIT);
    let deadline = tokio::time::Instant::now() + window;
    while batch.len() < spec.batch_size {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_window_closed) => break,
            Ok(Ok(message)) => batch.push(BrokerRecord::from_message(&message)),
            Ok(Err(err)) => {
                wait_out(err, spec).await?;
                break;
            }
        }
    }
    Ok(batch)
}

/// Consumer errors such as a lost broker connection are transient: librdkafka reconnects
/// by itself, so they are logged and waited out, as Lambda's poller does. Only a fatal
/// client error stops the trigger.
async fn wait_out(err: KafkaError, spec: &TriggerSpec) -> anyhow::Result<()> {
    if matches!(err, KafkaError::MessageConsumptionFatal(_)) {
        return Err(err.into());
    }
    tracing::warn!(function = %spec.function, error = %err, "broker unavailable; the trigger waits");
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// Commits the offset after the last record of each partition in the batch.
fn commit(consumer: &StreamConsumer, batch: &[BrokerRecord]) -> anyhow::Result<()> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for record in batch {
        let entry = next
            .entry((record.topic.as_str(), record.partition))
            .or_insert(0);
        *entry = (*entry).max(record.offset + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    consumer.commit(&offsets, CommitMode::Sync)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use serde_json::Value;

    use chrono::DateTime;

    use super::*;

    /// The Lambda MSK samples in `events/`, which the consumer tests and `cargo lambda
    /// invoke` also use.
    const SAMPLES: [&str; 3] = [
        include_str!("../../events/inventory-mixed-batch.json"),
        include_str!("../../events/notification-mixed-batch.json"),
        include_str!("../../events/notification-order-rejected.json"),
    ];

    /// The records of a sample as a broker would have handed them to the emulator.
    fn broker_records(sample: &Value) -> Vec<BrokerRecord> {
        let decode = |field: &Value| field.as_str().map(|text| BASE64.decode(text).unwrap());
        sample["records"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|group| group.as_array().unwrap())
            .map(|record| BrokerRecord {
                topic: record["topic"].as_str().unwrap().to_owned(),
                partition: record["partition"].as_i64().unwrap() as i32,
                offset: record["offset"].as_i64().unwrap(),
                timestamp: DateTime::from_timestamp_millis(record["timestamp"].as_i64().unwrap())
                    .unwrap(),
                timestamp_type: record["timestampType"].as_str().unwrap().to_owned(),
                key: decode(&record["key"]),
                value: decode(&record["value"]),
                headers: record["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|header| header.as_object().unwrap())
                    .map(|(name, bytes)| {
                        let bytes = bytes.as_array().unwrap();
                        (
                            name.clone(),
                            bytes.iter().map(|b| b.as_i64().unwrap() as u8).collect(),
                        )
                    })
                    .collect(),
            })
            .collect()
    }

    /// Lambda delivers JSON; the handler sees it deserialised. The emulator hands over the
    /// struct directly, so the struct is compared field by field with the deserialised
    /// sample, and the serialised field names with the sample's.
    #[test]
    fn the_emulated_event_matches_lambdas_sample_payloads_field_by_field() {
        for sample in SAMPLES {
            let json: Value = serde_json::from_str(sample).unwrap();
            let expected: KafkaEvent = serde_json::from_str(sample).unwrap();
            let emulated = kafka_event(
                expected.event_source_arn.as_deref().unwrap(),
                expected.bootstrap_servers.as_deref().unwrap(),
                broker_records(&json),
            );

            assert_eq!(emulated.event_source, expected.event_source);
            assert_eq!(emulated.event_source_arn, expected.event_source_arn);
            assert_eq!(emulated.bootstrap_servers, expected.bootstrap_servers);
            let mut groups: Vec<_> = expected.records.keys().collect();
            groups.sort();
            let mut emulated_groups: Vec<_> = emulated.records.keys().collect();
            emulated_groups.sort();
            assert_eq!(
                emulated_groups, groups,
                "records grouped under topic-partition"
            );
            for group in groups {
                let (got, want) = (&emulated.records[group], &expected.records[group]);
                assert_eq!(got.len(), want.len(), "{group}");
                for (got, want) in got.iter().zip(want) {
                    let at = format!("{group} offset {}", want.offset);
                    assert_eq!(got.topic, want.topic, "{at}: topic");
                    assert_eq!(got.partition, want.partition, "{at}: partition");
                    assert_eq!(got.offset, want.offset, "{at}: offset");
                    assert_eq!(got.timestamp, want.timestamp, "{at}: timestamp");
                    assert_eq!(
                        got.timestamp_type, want.timestamp_type,
                        "{at}: timestampType"
                    );
                    assert_eq!(got.key, want.key, "{at}: key");
                    assert_eq!(got.value, want.value, "{at}: value");
                    assert_eq!(got.headers, want.headers, "{at}: headers");
                }
            }

            let serialized = serde_json::to_value(&emulated).unwrap();
            let field_names = |record: &Value| {
                let mut names: Vec<String> = record.as_object().unwrap().keys().cloned().collect();
                names.sort();
                names
            };
            let first_group = json["records"].as_object().unwrap().keys().next().unwrap();
            assert_eq!(
                field_names(&serialized["records"][first_group][0]),
                field_names(&json["records"][first_group][0]),
                "a record carries the same fields as Lambda's"
            );
        }
    }
}
