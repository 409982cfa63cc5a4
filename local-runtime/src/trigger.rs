//! An emulator of Lambda's MSK event source mapping: it polls a consumer group, batches
//! records by size and batching window, hands the handler a `KafkaEvent` shaped exactly as
//! Lambda's, commits offsets only after the handler succeeds, and retries a failed batch with
//! capped exponential backoff while only its own partitions wait.
//!
//! # Partition-exact retries
//!
//! One consumer reads the group's records into a queue per partition (one member per group:
//! tansu can give two members overlapping assignments). A batch takes the queued records of
//! partitions no other batch holds, oldest first, and holds those partitions until it
//! succeeds. So a partition is in one batch at a time, and batches of different partitions
//! may be in flight together, as with Lambda. A failed batch is retried whole after its
//! backoff; nothing read after it from its partitions is delivered before it succeeds, so
//! offset order holds per partition while the other partitions keep flowing. Offsets are
//! committed per batch, for its partitions only, and asynchronously, so that a slow
//! coordinator never stalls the loop all partitions share: librdkafka sends commits in
//! order, and closing the consumer waits for those still outstanding.
//!
//! A failed batch's partitions are also paused at the broker (`Consumer::pause`), so that a
//! long failure does not fill memory: librdkafka drops what it prefetched for them, and on
//! `resume` the trigger moves the fetch to the offset after the last record it queued, so
//! nothing is read twice (seeking back to the failed batch would read again what followed
//! it). The trigger keeps each partition's read position itself ([`positions`]) and checks
//! every record against it, which also catches a broker showing a record before an earlier
//! one.
//! For the same reason, reading stops while a partition in flight already has a full batch
//! waiting behind it. One consumer and one loop for all partitions keep the batching
//! window across partitions, as Lambda's batches span them.
//!
//! No group membership. The trigger reads the consumer group's committed offsets and
//! commits to them, as Lambda's poller does, but it never joins the group: it assigns
//! itself every partition of its topics. Lambda's pollers share a group among themselves;
//! locally there is one runtime, and joining would only bring rebalances, which tansu gets
//! wrong: a member that died without leaving (a SIGKILLed runtime) can keep its successor
//! from ever being assigned anything, and two members can get overlapping assignments. So
//! nothing read is ever taken away, a restarted runtime resumes at once from the committed
//! offsets, and two runtimes must not run against one broker at the same time. Partitions
//! added to a topic while the runtime runs are read after its next start.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::kafka::KafkaEvent;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use shared::msk::{BrokerRecord, kafka_event};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use positions::{Admission, ReadPositions};

mod positions;

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
/// Lambda backs off, and never giving up (its partitions wait, nothing is skipped).
fn retry_delays() -> ExponentialBackoff {
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

/// Runs one trigger until `shutdown` is cancelled. Batches in flight are finished and
/// committed before it returns; failed batches waiting for a retry come again on the next
/// start.
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
    let consumer: StreamConsumer<CommitLog> = kafka
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
        // Ask the broker to answer a fetch within 50 ms: a local broker may hold every fetch
        // for the whole wait even when data is there, which would add it to every step.
        .set("fetch.wait.max.ms", "50")
        .create_with_context(CommitLog {
            function: spec.function.clone(),
        })?;
    let positions = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        assigned = assign_every_partition(&consumer, &kafka, &spec) => assigned?,
    };
    tracing::info!(function = %spec.function, topics = ?spec.topics, group = %spec.consumer_group, "MSK trigger emulator started");

    let mut trigger = Trigger {
        spec: &spec,
        consumer: &consumer,
        event_source_arn: &event_source_arn,
        bootstrap_servers: &bootstrap_servers,
        partitions: Partitions::new(&spec),
        positions,
        retries: Vec::new(),
    };
    let mut in_flight = FuturesUnordered::new();
    let stopped = loop {
        let wake = trigger.next_wake();
        let step = tokio::select! {
            () = shutdown.cancelled() => Step::Stop(Ok(())),
            Some((batch, outcome)) = in_flight.next() => Step::Settled(batch, outcome),
            read = next_record(&consumer, &spec), if trigger.partitions.reading() => match read {
                Ok(record) => Step::Read(record),
                Err(fatal) => Step::Stop(Err(fatal)),
            },
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => Step::Due,
        };
        match step {
            Step::Read(record) => trigger.read(record),
            Step::Settled(batch, outcome) => trigger.settle(batch, outcome),
            Step::Due => {}
            Step::Stop(result) => break result,
        }
        for batch in trigger.due(Instant::now()) {
            in_flight.push(attempt(&handler, batch));
        }
    };
    // Batches in flight finish and are committed; a failed one comes again on the next start.
    while let Some((batch, outcome)) = in_flight.next().await {
        trigger.settle(batch, outcome);
    }
    tracing::info!(function = %spec.function, "MSK trigger emulator stopped");
    stopped
}

/// What woke the loop.
enum Step {
    Read(BrokerRecord),
    Settled(Batch, Result<(), String>),
    /// A retry's backoff or a batching window is over.
    Due,
    /// Shutdown, or a fatal consumer error: batches in flight finish first.
    Stop(anyhow::Result<()>),
}

/// A topic and one of its partitions.
type Partition = (String, i32);

fn partition_of(record: &BrokerRecord) -> Partition {
    (record.topic.clone(), record.partition)
}

/// Records handed to the handler together, until they succeed.
struct Batch {
    records: Vec<BrokerRecord>,
    event: KafkaEvent,
    attempt: u32,
    delays: ExponentialBackoff,
}

impl Batch {
    fn partitions(&self) -> BTreeSet<Partition> {
        self.records.iter().map(partition_of).collect()
    }
}

/// A failed batch waiting for its next attempt.
struct Retry {
    at: Instant,
    batch: Batch,
}

/// Calls the handler once; gives the batch back with the outcome.
fn attempt<H, F, E>(handler: &H, batch: Batch) -> impl Future<Output = (Batch, Result<(), String>)>
where
    H: Fn(KafkaEvent) -> F,
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let call = handler(batch.event.clone());
    async move { (batch, call.await.map_err(|err| err.to_string())) }
}

/// The loop's state, apart from the batches in flight.
struct Trigger<'a> {
    spec: &'a TriggerSpec,
    consumer: &'a StreamConsumer<CommitLog>,
    event_source_arn: &'a str,
    bootstrap_servers: &'a str,
    partitions: Partitions,
    positions: ReadPositions,
    retries: Vec<Retry>,
}

impl Trigger<'_> {
    /// Queues a record that comes next in its partition (see [`positions`]).
    fn read(&mut self, record: BrokerRecord) {
        let function = &self.spec.function;
        let partition = partition_of(&record);
        match self
            .positions
            .admit(&partition, record.offset, Instant::now())
        {
            Admission::Next => self.partitions.push(record),
            Admission::AlreadyRead => {
                tracing::debug!(%function, ?partition, offset = record.offset, "read before; dropped");
            }
            Admission::ReadAgain { from } => {
                tracing::info!(%function, ?partition, offset = record.offset, from, "offsets missing before this record; reading again");
                self.seek(&partition, from);
            }
            Admission::Skipped { from } => {
                tracing::warn!(%function, ?partition, from, to = record.offset, "offsets never readable; skipped");
                self.partitions.push(record);
            }
        }
    }

    /// Makes the consumer fetch `partition` from `offset` on (in the background).
    fn seek(&self, partition: &Partition, offset: i64) {
        let (topic, number) = partition;
        if let Err(err) = self
            .consumer
            .seek(topic, *number, Offset::Offset(offset), Duration::ZERO)
        {
            tracing::warn!(function = %self.spec.function, ?partition, offset, error = %err, "could not move the read position");
        }
    }

    /// When a retry or a new batch is next due.
    fn next_wake(&self) -> Option<Instant> {
        let retries = self.retries.iter().map(|retry| retry.at);
        retries.chain(self.partitions.next_batch_at()).min()
    }

    /// Batches to hand over now: failed ones whose backoff is over, then new ones.
    fn due(&mut self, now: Instant) -> Vec<Batch> {
        let mut due: Vec<Batch> = self
            .retries
            .extract_if(.., |retry| retry.at <= now)
            .map(|retry| retry.batch)
            .collect();
        while self.partitions.next_batch_at().is_some_and(|at| at <= now) {
            let records = self.partitions.take_batch();
            due.push(Batch {
                event: kafka_event(
                    self.event_source_arn,
                    self.bootstrap_servers,
                    records.iter().cloned(),
                ),
                records,
                attempt: 1,
                delays: retry_delays(),
            });
        }
        due
    }

    /// Commits a batch that succeeded and lets its partitions go on, or schedules the retry
    /// of one that failed, holding and pausing its partitions meanwhile.
    fn settle(&mut self, mut batch: Batch, outcome: Result<(), String>) {
        let function = &self.spec.function;
        let partitions = batch.partitions();
        match outcome {
            Ok(()) => {
                if let Err(err) = commit(self.consumer, &next_offsets(&batch.records)) {
                    tracing::warn!(%function, error = %err, "{NOT_COMMITTED}");
                }
                tracing::debug!(%function, records = batch.records.len(), "batch done");
                let recovered = self.partitions.release(&partitions);
                if !recovered.is_empty() {
                    if let Err(err) = self.consumer.resume(&partition_list(&recovered)) {
                        tracing::warn!(%function, error = %err, "recovered partitions not resumed");
                    }
                    // Where librdkafka resumes depends on what it handed over since the
                    // last seek; the trigger knows exactly where it stands.
                    for partition in &recovered {
                        if let Some(next) = self.positions.next(partition) {
                            self.seek(partition, next);
                        }
                    }
                }
            }
            Err(err) => {
                let delay = batch.delays.next().unwrap_or(Duration::from_secs(10));
                tracing::warn!(
                    %function,
                    attempt = batch.attempt,
                    records = batch.records.len(),
                    partitions = ?partitions,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %err,
                    "batch failed; it will be retried"
                );
                let newly_failing = self.partitions.fail(&partitions);
                // Only to stop fetching: what was read already waits in the queues.
                if !newly_failing.is_empty()
                    && let Err(err) = self.consumer.pause(&partition_list(&newly_failing))
                {
                    tracing::warn!(%function, error = %err, "failed partitions not paused");
                }
                batch.attempt += 1;
                self.retries.push(Retry {
                    at: Instant::now() + delay,
                    batch,
                });
            }
        }
    }
}

/// A record read and not yet in a batch.
struct Queued {
    record: BrokerRecord,
    read_at: Instant,
}

/// Per partition: the records waiting for a batch, and whether a batch holds it.
struct Partitions {
    queued: BTreeMap<Partition, VecDeque<Queued>>,
    /// In a batch that has not succeeded yet (in flight or waiting for a retry).
    held: BTreeSet<Partition>,
    /// In a failed batch, and paused at the broker until it succeeds.
    failing: BTreeSet<Partition>,
    batch_size: usize,
    window: Duration,
}

impl Partitions {
    fn new(spec: &TriggerSpec) -> Self {
        Self {
            queued: BTreeMap::new(),
            held: BTreeSet::new(),
            failing: BTreeSet::new(),
            batch_size: spec.batch_size.max(1),
            window: spec.batching_window.max(DRAIN_WAIT),
        }
    }

    fn push(&mut self, record: BrokerRecord) {
        let queue = self.queued.entry(partition_of(&record)).or_default();
        queue.push_back(Queued {
            record,
            read_at: Instant::now(),
        });
    }

    /// Whether to read on: not while a partition in flight (not failing, so not paused)
    /// already has a full batch waiting, which bounds what waits in memory.
    fn reading(&self) -> bool {
        !self.queued.iter().any(|(partition, queue)| {
            queue.len() >= self.batch_size && !self.failing.contains(partition)
        })
    }

    /// The queues no batch holds.
    fn free(&self) -> impl Iterator<Item = (&Partition, &VecDeque<Queued>)> {
        self.queued
            .iter()
            .filter(|(partition, queue)| !queue.is_empty() && !self.held.contains(*partition))
    }

    /// When the next batch is due: at once when the free queues hold a full one, else when
    /// their oldest record has waited the batching window (counted from the first record,
    /// as Lambda does).
    fn next_batch_at(&self) -> Option<Instant> {
        let oldest = self.free().map(|(_, queue)| queue[0].read_at).min()?;
        let waiting: usize = self.free().map(|(_, queue)| queue.len()).sum();
        Some(if waiting >= self.batch_size {
            oldest
        } else {
            oldest + self.window
        })
    }

    /// Takes up to a batch from the free queues, oldest first, and holds their partitions.
    fn take_batch(&mut self) -> Vec<BrokerRecord> {
        let mut oldest_first: Vec<(Instant, Partition)> = self
            .free()
            .map(|(partition, queue)| (queue[0].read_at, partition.clone()))
            .collect();
        oldest_first.sort();
        let mut batch = Vec::new();
        for (_, partition) in oldest_first {
            let room = self.batch_size - batch.len();
            if room == 0 {
                break;
            }
            if let Some(queue) = self.queued.get_mut(&partition) {
                let taken = room.min(queue.len());
                batch.extend(queue.drain(..taken).map(|queued| queued.record));
                self.held.insert(partition);
            }
        }
        batch
    }

    /// Marks a failed batch's partitions; returns those not failing before, to pause.
    fn fail(&mut self, partitions: &BTreeSet<Partition>) -> Vec<Partition> {
        let mut newly_failing = Vec::new();
        for partition in partitions {
            if self.failing.insert(partition.clone()) {
                newly_failing.push(partition.clone());
            }
        }
        newly_failing
    }

    /// Lets a finished batch's partitions go; returns those that were failing, to resume.
    fn release(&mut self, partitions: &BTreeSet<Partition>) -> Vec<Partition> {
        let mut recovered = Vec::new();
        for partition in partitions {
            self.held.remove(partition);
            if self.failing.remove(partition) {
                recovered.push(partition.clone());
            }
        }
        recovered
    }
}

/// Commits are cumulative: one lost to a broker outage is covered by the next of the same
/// partition, and at worst a batch is delivered again, which is harmless.
const NOT_COMMITTED: &str = "offsets not committed; the next commit covers them";

/// Logs the commits that fail in the background; the next commit covers them.
struct CommitLog {
    function: String,
}

impl ClientContext for CommitLog {}

impl ConsumerContext for CommitLog {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(err) = result {
            tracing::warn!(function = %self.function, error = %err, "{NOT_COMMITTED}");
        }
    }
}

/// Assigns the consumer every partition of the trigger's topics, each from the group's
/// committed offset (or the starting position when it has none), and returns those
/// positions. Waits while the broker is unreachable or a topic is not there yet.
async fn assign_every_partition(
    consumer: &StreamConsumer<CommitLog>,
    kafka: &ClientConfig,
    spec: &TriggerSpec,
) -> anyhow::Result<ReadPositions> {
    loop {
        match committed_offsets(kafka.clone(), spec.clone()).await {
            Ok(committed) => {
                let mut list = TopicPartitionList::new();
                let mut positions = ReadPositions::default();
                for ((topic, partition), offset) in &committed {
                    let start = match (offset, spec.starting_position) {
                        (Some(offset), _) => {
                            positions.start_at((topic.clone(), *partition), *offset);
                            Offset::Offset(*offset)
                        }
                        (None, StartingPosition::TrimHorizon) => Offset::Beginning,
                        (None, StartingPosition::Latest) => Offset::End,
                    };
                    list.add_partition_offset(topic, *partition, start)?;
                }
                consumer.assign(&list)?;
                tracing::info!(function = %spec.function, partitions = committed.len(), "partitions assigned");
                return Ok(positions);
            }
            Err(err) => {
                tracing::warn!(function = %spec.function, error = %err, "topics not readable yet; the trigger waits");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Every partition of the trigger's topics, from the broker's metadata, with the group's
/// committed offset where it has one (read by a client of its own, off the async threads:
/// librdkafka's metadata and offset calls block).
async fn committed_offsets(
    kafka: ClientConfig,
    spec: TriggerSpec,
) -> anyhow::Result<BTreeMap<Partition, Option<i64>>> {
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = kafka
            .clone()
            .set("group.id", &spec.consumer_group)
            .create()?;
        let mut list = TopicPartitionList::new();
        for topic in &spec.topics {
            let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(5))?;
            let found = metadata
                .topics()
                .iter()
                .find(|found| found.name() == topic && found.error().is_none())
                .filter(|found| !found.partitions().is_empty())
                .with_context(|| format!("topic {topic} has no partitions yet"))?;
            for partition in found.partitions() {
                list.add_partition(topic, partition.id());
            }
        }
        let committed = client.committed_offsets(list, Duration::from_secs(5))?;
        Ok(committed
            .elements()
            .iter()
            .map(|element| {
                let offset = match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                };
                ((element.topic().to_owned(), element.partition()), offset)
            })
            .collect())
    })
    .await?
}

/// The next record from the broker. Cancel-safe: `recv` is, and a record is returned as
/// soon as it is read.
async fn next_record(
    consumer: &StreamConsumer<CommitLog>,
    spec: &TriggerSpec,
) -> anyhow::Result<BrokerRecord> {
    loop {
        match consumer.recv().await {
            Ok(message) => return Ok(BrokerRecord::from_message(&message)),
            Err(err) => wait_out(err, spec).await?,
        }
    }
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

fn partition_list(partitions: &[Partition]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        list.add_partition(topic, *partition);
    }
    list
}

/// The offset after the last record of each partition in a batch: what to commit.
fn next_offsets(batch: &[BrokerRecord]) -> BTreeMap<Partition, i64> {
    let mut next: BTreeMap<Partition, i64> = BTreeMap::new();
    for record in batch {
        let entry = next.entry(partition_of(record)).or_insert(0);
        *entry = (*entry).max(record.offset + 1);
    }
    next
}

/// Commits `offsets` to the group in the background (see [`CommitLog`]).
fn commit(
    consumer: &StreamConsumer<CommitLog>,
    offsets: &BTreeMap<Partition, i64>,
) -> anyhow::Result<()> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.commit(&list, CommitMode::Async)?;
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
