//! Redrives the batches an MSK trigger discarded into its SQS on-failure queue.
//!
//! Such a message says only where the batch was (topic-partitions and their first and last
//! offsets), not what it held. For each message this reads those offsets back from Kafka,
//! builds the `KafkaEvent` exactly as Lambda does ([`kafka_event`]), hands it to the consumer
//! function through [`MskFunction`], and deletes the message only once the function
//! succeeded. A message that fails stays in the queue and becomes visible again after
//! [`VISIBILITY_TIMEOUT_SECS`]; consumers are idempotent, so redriving twice is harmless.
//!
//! The function is any [`MskFunction`], the one seam every way of running a consumer goes
//! through: `operator redrive` runs the consumer in this process; invoking a deployed
//! function instead would be another implementation of it, and nothing here would change.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use shared::config::{KafkaSettings, Secrets};
use shared::consumer::{Invocation, MskFunction};
use shared::kafka::{KafkaContext, client_config, client_context};
use shared::msk::{BrokerRecord, kafka_event};

/// How long a received message stays hidden from other readers while its batch is redriven,
/// and how long a failed one waits before it is visible again: longer than any consumer's
/// Lambda timeout (120 s).
pub const VISIBILITY_TIMEOUT_SECS: i32 = 300;
/// How long reading one partition's range back may take before the message counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The message Lambda sends an MSK trigger's SQS or SNS on-failure destination, as the AWS
/// Lambda Developer Guide shows it ("Capturing discarded batches for an Amazon MSK event
/// source"). Only the fields a redrive needs are read.
#[derive(Debug, Deserialize)]
pub struct FailureRecord {
    #[serde(rename = "KafkaBatchInfo")]
    pub batch: KafkaBatchInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchInfo {
    pub event_source_arn: String,
    #[serde(default)]
    pub bootstrap_servers: String,
    /// Keyed by `topic-partition`, as Lambda groups a batch's records.
    pub records_info: BTreeMap<String, RecordsInfo>,
}

/// One topic-partition of the discarded batch. Lambda writes the offsets as strings.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordsInfo {
    #[serde(deserialize_with = "serde_aux::field_attributes::deserialize_number_from_string")]
    pub first_record_offset: i64,
    #[serde(deserialize_with = "serde_aux::field_attributes::deserialize_number_from_string")]
    pub last_record_offset: i64,
}

/// One partition's part of a discarded batch: where to read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub topic: String,
    pub partition: i32,
    pub first: i64,
    pub last: i64,
}

impl KafkaBatchInfo {
    /// The ranges to read back, from the `topic-partition` keys (topics may contain `-`).
    pub fn ranges(&self) -> anyhow::Result<Vec<Range>> {
        self.records_info
            .iter()
            .map(|(group, info)| {
                let (topic, partition) = group
                    .rsplit_once('-')
                    .and_then(|(topic, partition)| Some((topic, partition.parse().ok()?)))
                    .ok_or_else(|| anyhow::anyhow!("{group:?} is not a topic-partition"))?;
                Ok(Range {
                    topic: topic.to_owned(),
                    partition,
                    first: info.first_record_offset,
                    last: info.last_record_offset,
                })
            })
            .collect()
    }
}

/// What one redrive pass over a queue did.
#[derive(Debug, Default)]
pub struct RedriveReport {
    /// Batches the function handled; their messages were deleted.
    pub redriven: usize,
    /// Records in those batches.
    pub records: usize,
    /// Messages left in the queue, each with why.
    pub failed: Vec<(String, String)>,
}

/// Reads the queue until it is empty and redrives every message to `function`, one at a
/// time, with the batch's own records read from Kafka through `kafka`.
pub async fn run(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    kafka: &KafkaSettings,
    secrets: &Secrets,
    function: &dyn MskFunction,
) -> anyhow::Result<RedriveReport> {
    let reader = BatchReader::new(kafka, secrets).await?;
    let mut report = RedriveReport::default();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(VISIBILITY_TIMEOUT_SECS)
            .wait_time_seconds(1)
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(report);
        }
        for message in messages {
            let id = message.message_id.clone().unwrap_or_default();
            match redrive_one(&reader, &message, function).await {
                Ok(records) => {
                    sqs.delete_message()
                        .queue_url(queue_url)
                        .set_receipt_handle(message.receipt_handle)
                        .send()
                        .await?;
                    tracing::info!(message = %id, records, function = function.name(), "batch redriven");
                    report.redriven += 1;
                    report.records += records;
                }
                Err(err) => {
                    tracing::warn!(message = %id, error = format!("{err:#}"), "batch not redriven; the message stays in the queue");
                    report.failed.push((id, format!("{err:#}")));
                }
            }
        }
    }
}

/// Redrives one message's batch; returns how many records it held.
async fn redrive_one(
    reader: &BatchReader,
    message: &Message,
    function: &dyn MskFunction,
) -> anyhow::Result<usize> {
    let body = message.body.as_deref().unwrap_or_default();
    let failure: FailureRecord = serde_json::from_str(body)
        .map_err(|err| anyhow::anyhow!("not an MSK on-failure record: {err}"))?;
    let mut records = Vec::new();
    for range in failure.batch.ranges()? {
        records.extend(reader.read(&range).await?);
    }
    let count = records.len();
    let event = kafka_event(
        &failure.batch.event_source_arn,
        &failure.batch.bootstrap_servers,
        records,
    );
    function
        .invoke(event, Invocation::default())
        .await
        .map_err(|failed| {
            anyhow::anyhow!(
                "{} failed: {}: {}",
                function.name(),
                failed.error_type,
                failed.error_message
            )
        })?;
    Ok(count)
}

/// Reads offset ranges back, with the same client settings as every other Kafka client.
struct BatchReader {
    config: rdkafka::ClientConfig,
    context: KafkaContext,
}

impl BatchReader {
    async fn new(kafka: &KafkaSettings, secrets: &Secrets) -> anyhow::Result<Self> {
        let mut config = client_config(kafka, secrets).await?;
        config
            // Assigned partitions only: the group is never joined and nothing is committed.
            .set("group.id", "redrive")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // Records gone from the topic (retention) fail the message instead of reading others.
            .set("auto.offset.reset", "error");
        Ok(Self {
            config,
            context: client_context(kafka).await?,
        })
    }

    /// The records of `range` that are still in the topic, in offset order. Fails when
    /// none is, or when the broker does not answer within [`READ_TIMEOUT`].
    async fn read(&self, range: &Range) -> anyhow::Result<Vec<BrokerRecord>> {
        let consumer: StreamConsumer<KafkaContext> =
            self.config.create_with_context(self.context.clone())?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(
            &range.topic,
            range.partition,
            Offset::Offset(range.first),
        )?;
        consumer.assign(&assignment)?;
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        let mut records = Vec::new();
        let mut last_error = None;
        loop {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_elapsed) => {
                    anyhow::bail!(
                        "could not read {}-{} offsets {}..={} within {READ_TIMEOUT:?}: {}",
                        range.topic,
                        range.partition,
                        range.first,
                        range.last,
                        last_error
                            .map_or("no answer".to_owned(), |err: KafkaError| err.to_string())
                    )
                }
                Ok(Err(KafkaError::PartitionEOF(_))) => break,
                Ok(Err(err)) => last_error = Some(err),
                Ok(Ok(message)) if message.offset() > range.last => break,
                Ok(Ok(message)) => {
                    records.push(BrokerRecord::from_message(&message));
                    if message.offset() == range.last {
                        break;
                    }
                }
            }
        }
        anyhow::ensure!(
            !records.is_empty(),
            "{}-{} offsets {}..={} are no longer in the topic",
            range.topic,
            range.partition,
            range.first,
            range.last
        );
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQS example of the AWS Lambda Developer Guide, without its comments.
    const DOCUMENTED: &str = r#"{
        "requestContext": {
            "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:myfunction",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 1
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled"
        },
        "version": "1.0",
        "timestamp": "2019-11-14T00:38:06.021Z",
        "KafkaBatchInfo": {
            "batchSize": 500,
            "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/vpc-2priv-2pub/751d2973-a626-431c-9d4e-d7975eb44dd7-2",
            "bootstrapServers": "...",
            "payloadSize": 2039086,
            "recordsInfo": {
                "order-placed-0": {
                    "firstRecordOffset": "100",
                    "lastRecordOffset": "149",
                    "firstRecordTimestamp": "2019-11-14T00:38:04.835Z",
                    "lastRecordTimestamp": "2019-11-14T00:38:05.580Z"
                },
                "order-placed-2": {
                    "firstRecordOffset": "7",
                    "lastRecordOffset": "7",
                    "firstRecordTimestamp": "2019-11-14T00:38:04.835Z",
                    "lastRecordTimestamp": "2019-11-14T00:38:05.580Z"
                }
            }
        }
    }"#;

    #[test]
    fn the_documented_on_failure_record_reads_as_ranges_per_topic_partition() {
        let record: FailureRecord = serde_json::from_str(DOCUMENTED).unwrap();
        assert!(record.batch.event_source_arn.starts_with("arn:aws:kafka:"));
        let range = |partition, first, last| Range {
            topic: "order-placed".to_owned(),
            partition,
            first,
            last,
        };
        assert_eq!(
            record.batch.ranges().unwrap(),
            [range(0, 100, 149), range(2, 7, 7)]
        );
    }

    #[test]
    fn a_key_that_is_not_a_topic_partition_is_refused() {
        let text = DOCUMENTED.replace("order-placed-2", "order-placed-x");
        let record: FailureRecord = serde_json::from_str(&text).unwrap();
        assert!(record.batch.ranges().is_err());
    }
}
