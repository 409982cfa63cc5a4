//! The MSK trigger emulator against a private broker, with handlers that record what
//! Lambda would have delivered and fail on demand.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use local_runtime::trigger::{self, StartingPosition, TriggerSpec};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use shared::config::{KafkaSettings, Secrets};
use shared::domain::{CustomerName, NewOrder, ProductName, Quantity, new_id};
use shared::events::{OrderEvent, OrderEventData, topics};
use shared::kafka::KafkaPublisher;
use shared::msk::decode_batch;
use testkit::tansu::Tansu;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn spec(group: &str) -> TriggerSpec {
    TriggerSpec {
        function: "TestFunction".to_owned(),
        topics: vec![topics::ORDER_PLACED.to_owned()],
        batch_size: 100,
        batching_window: Duration::from_millis(200),
        starting_position: StartingPosition::TrimHorizon,
        consumer_group: group.to_owned(),
    }
}

fn kafka(broker: &Tansu) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.bootstrap());
    config
}

async fn publish_placed(broker: &Tansu, count: usize) -> Vec<Uuid> {
    let publisher = KafkaPublisher::new(
        &KafkaSettings::plaintext(broker.bootstrap()),
        &Secrets::new(),
    )
    .await
    .unwrap();
    let events: Vec<OrderEvent> = (0..count)
        .map(|n| {
            let order = NewOrder {
                customer_name: CustomerName::parse("Ada").unwrap(),
                customer_email: None,
                product_name: ProductName::parse(&format!("Product {}", n % 5)).unwrap(),
                quantity: Quantity::new(1).unwrap(),
                payment_method: None,
            };
            OrderEvent::placed(OrderEventData::from_new_order(new_id(), &order))
        })
        .collect();
    let payloads: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    let keys: Vec<String> = events.iter().map(OrderEvent::key).collect();
    let results = publisher
        .publish_all(
            events
                .iter()
                .zip(&keys)
                .zip(&payloads)
                .map(|((e, k), p)| (e.topic(), k.as_str(), p.as_slice())),
        )
        .await;
    assert!(results.iter().all(Result::is_ok));
    events.iter().map(|e| e.id).collect()
}

/// Runs a trigger for `group` on `broker` with `handler`, in a task of its own, until
/// `shutdown` is cancelled.
fn spawn_trigger<H, F, E>(
    broker: &Tansu,
    group: &str,
    handler: H,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>>
where
    H: Fn(KafkaEvent) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::spawn(trigger::run(
        spec(group),
        kafka(broker),
        "arn:aws:kafka:local".to_owned(),
        handler,
        shutdown.clone(),
    ))
}

/// A consumer group no test has used.
fn new_group() -> String {
    format!("group-{}", new_id())
}

/// A broker of its own with `count` order-placed records on it, and a new group to read
/// them with.
async fn placed_on_a_new_broker(count: usize) -> (Tansu, Vec<Uuid>, String) {
    let broker = Tansu::start().await;
    let published = publish_placed(&broker, count).await;
    (broker, published, new_group())
}

/// Event ids in delivery order, per delivered batch.
type Deliveries = Arc<Mutex<Vec<Vec<Uuid>>>>;

fn ids_of(event: &KafkaEvent) -> Vec<Uuid> {
    let batch = decode_batch(event);
    assert!(batch.poison.is_empty(), "{:?}", batch.poison);
    batch.records.iter().map(|r| r.event.id).collect()
}

/// Runs a trigger whose handler records every delivery and fails its first `failures`
/// calls, until `expected` distinct events succeeded or `timeout` passes.
async fn run_trigger(
    broker: &Tansu,
    group: &str,
    failures: usize,
    expected: usize,
    timeout: Duration,
) -> (Vec<Vec<Uuid>>, Vec<Uuid>) {
    let deliveries: Deliveries = Arc::default();
    let succeeded: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let shutdown = CancellationToken::new();
    let handler = {
        let (deliveries, succeeded) = (deliveries.clone(), succeeded.clone());
        move |event: KafkaEvent| {
            let (deliveries, succeeded) = (deliveries.clone(), succeeded.clone());
            async move {
                let ids = ids_of(&event);
                let call = {
                    let mut all = deliveries.lock().unwrap();
                    all.push(ids.clone());
                    all.len()
                };
                if call <= failures {
                    return Err(format!("induced failure {call}"));
                }
                succeeded.lock().unwrap().extend(ids);
                Ok(())
            }
        }
    };
    let task = spawn_trigger(broker, group, handler, &shutdown);
    // Gives up quietly after `timeout`: the caller checks what was delivered.
    let _ = testkit::poll_until(timeout, || async {
        let done = succeeded.lock().unwrap().len();
        if done >= expected { Ok(()) } else { Err(done) }
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let deliveries = deliveries.lock().unwrap().clone();
    let succeeded = succeeded.lock().unwrap().clone();
    (deliveries, succeeded)
}

#[tokio::test]
async fn every_record_is_delivered_once_in_lambda_shape_and_committed() {
    testkit::init_tracing();
    let (broker, published, group) = placed_on_a_new_broker(30).await;

    let (_, succeeded) = run_trigger(&broker, &group, 0, 30, Duration::from_secs(30)).await;

    let mut got = succeeded.clone();
    got.sort();
    let mut want = published.clone();
    want.sort();
    assert_eq!(got, want);

    // Committed: the same group, started again, is given nothing more.
    let (again, _) = run_trigger(&broker, &group, 0, 1, Duration::from_secs(4)).await;
    assert!(again.is_empty(), "committed records came back: {again:?}");
}

#[tokio::test]
async fn a_failed_batch_is_retried_whole_until_it_succeeds() {
    let (broker, published, group) = placed_on_a_new_broker(10).await;

    let (deliveries, succeeded) =
        run_trigger(&broker, &group, 3, 10, Duration::from_secs(30)).await;

    assert!(deliveries.len() >= 4);
    assert_eq!(
        deliveries[0], deliveries[1],
        "a retry carries the same batch"
    );
    assert_eq!(deliveries[1], deliveries[3]);
    let mut got = succeeded;
    got.sort();
    let mut want = published;
    want.sort();
    assert_eq!(got, want, "nothing skipped, nothing twice");
}

#[tokio::test]
async fn an_uncommitted_batch_is_delivered_again_after_a_restart() {
    let (broker, published, group) = placed_on_a_new_broker(5).await;

    let (failing, succeeded) =
        run_trigger(&broker, &group, usize::MAX, 5, Duration::from_secs(3)).await;
    assert!(!failing.is_empty());
    assert!(succeeded.is_empty());

    let (_, after_restart) = run_trigger(&broker, &group, 0, 5, Duration::from_secs(30)).await;
    let mut got = after_restart;
    got.sort();
    let mut want = published;
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn batches_respect_the_batch_size() {
    let broker = Tansu::start().await;
    publish_placed(&broker, 25).await;
    let group = new_group();
    let deliveries: Deliveries = Arc::default();
    let shutdown = CancellationToken::new();
    let mut small = spec(&group);
    small.batch_size = 4;
    let recorder = deliveries.clone();
    let task = tokio::spawn(trigger::run(
        small,
        kafka(&broker),
        "arn".to_owned(),
        move |event: KafkaEvent| {
            let recorder = recorder.clone();
            async move {
                recorder.lock().unwrap().push(ids_of(&event));
                Ok::<(), String>(())
            }
        },
        shutdown.clone(),
    ));
    // Gives up quietly: the count is checked exactly below.
    let _ = testkit::poll_until(Duration::from_secs(30), || async {
        let delivered = deliveries
            .lock()
            .unwrap()
            .iter()
            .map(Vec::len)
            .sum::<usize>();
        if delivered >= 25 {
            Ok(())
        } else {
            Err(delivered)
        }
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let deliveries = deliveries.lock().unwrap();
    assert_eq!(deliveries.iter().map(Vec::len).sum::<usize>(), 25);
    assert!(
        deliveries.iter().all(|batch| batch.len() <= 4),
        "{deliveries:?}"
    );
}

/// Produces `count` records to one partition of `order-placed`. The payloads are not
/// events: the handler below looks only at where each record sits.
async fn produce_to(broker: &Tansu, partition: i32, count: usize) {
    let producer: FutureProducer = kafka(broker).create().unwrap();
    for n in 0..count {
        let payload = format!("record {n} for partition {partition}");
        producer
            .send(
                FutureRecord::to(topics::ORDER_PLACED)
                    .partition(partition)
                    .key("key")
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(err, _)| err)
            .unwrap();
    }
}

/// The group's committed offsets on `order-placed`, by partition (none yet: absent). Read
/// without joining the group, so the trigger stays its only member.
async fn committed(broker: &Tansu, group: &str) -> Result<BTreeMap<i32, i64>, String> {
    let reader: BaseConsumer = kafka(broker).set("group.id", group).create().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut partitions = TopicPartitionList::new();
        for partition in 0..3 {
            partitions.add_partition(topics::ORDER_PLACED, partition);
        }
        let committed = reader
            .committed_offsets(partitions, Duration::from_secs(5))
            .map_err(|err| err.to_string())?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|element| match element.offset() {
                Offset::Offset(offset) => Some((element.partition(), offset)),
                _ => None,
            })
            .collect())
    })
    .await
    .unwrap()
}

/// Waits until the group's committed offsets are exactly `expected`.
async fn wait_until_committed(broker: &Tansu, group: &str, expected: &[(i32, i64)]) {
    let expected = BTreeMap::from_iter(expected.iter().copied());
    testkit::eventually(
        &format!("offsets {expected:?} committed"),
        Duration::from_secs(30),
        || async {
            match committed(broker, group).await {
                Ok(committed) if committed == expected => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
}

/// One handler call: the (partition, offset) of each record, in delivery order within a
/// partition, and whether it succeeded.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    records: Vec<(i32, i64)>,
    succeeded: bool,
}

impl Call {
    fn offsets_in(&self, partition: i32) -> Vec<i64> {
        self.records
            .iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, offset)| *offset)
            .collect()
    }
}

/// The offsets of `partition` that the handler took, in delivery order.
fn succeeded_in(calls: &[Call], partition: i32) -> Vec<i64> {
    calls
        .iter()
        .filter(|call| call.succeeded)
        .flat_map(|call| call.offsets_in(partition))
        .collect()
}

/// A trigger whose handler fails every batch holding records of partition 0 until
/// [`Partition0Outage::recover`], and records every call.
struct Partition0Outage {
    calls: Arc<Mutex<Vec<Call>>>,
    down: Arc<AtomicBool>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Partition0Outage {
    fn start(broker: &Tansu, group: &str) -> Self {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(true));
        let handler = {
            let (calls, down) = (calls.clone(), down.clone());
            move |event: KafkaEvent| {
                let mut records: Vec<(i32, i64)> = event
                    .records
                    .values()
                    .flatten()
                    .map(|record| (record.partition as i32, record.offset))
                    .collect();
                records.sort_by_key(|(partition, _)| *partition);
                let fails = down.load(Ordering::SeqCst) && records.iter().any(|(p, _)| *p == 0);
                calls.lock().unwrap().push(Call {
                    records,
                    succeeded: !fails,
                });
                std::future::ready(if fails {
                    Err("partition 0's records cannot be processed yet")
                } else {
                    Ok(())
                })
            }
        };
        let shutdown = CancellationToken::new();
        let task = spawn_trigger(broker, group, handler, &shutdown);
        Self {
            calls,
            down,
            shutdown,
            task,
        }
    }

    /// A trigger on a new group whose first batch, three records of partition 0, has
    /// failed; returns the group and the trigger.
    async fn failing_on(broker: &Tansu) -> (String, Self) {
        let group = new_group();
        produce_to(broker, 0, 3).await;
        let trigger = Self::start(broker, &group);
        trigger
            .wait_for_a_failed_call("partition 0's batch fails", |_| true)
            .await;
        (group, trigger)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until a call that failed matches `which`.
    async fn wait_for_a_failed_call(&self, what: &str, which: impl Fn(&Call) -> bool) {
        testkit::eventually(what, Duration::from_secs(30), || async {
            let calls = self.calls();
            if calls.iter().any(|call| !call.succeeded && which(call)) {
                Ok(())
            } else {
                Err(calls)
            }
        })
        .await;
    }

    fn recover(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Stops the trigger; returns every call it made.
    async fn stop(self) -> Vec<Call> {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
        self.calls.lock().unwrap().clone()
    }
}

/// Three records for each of the `others` partitions, then three more behind partition 0's
/// failed batch; waits until the others' are committed, which they must be while partition
/// 0 still fails.
async fn produce_past_the_outage(broker: &Tansu, group: &str, others: &[i32]) {
    for &partition in others {
        produce_to(broker, partition, 3).await;
    }
    produce_to(broker, 0, 3).await;
    let committed: Vec<(i32, i64)> = others.iter().map(|&partition| (partition, 3)).collect();
    wait_until_committed(broker, group, &committed).await;
}

/// Lets partition 0 succeed again, waits until the six records produced to it and the three
/// to each other partition are committed, and stops the trigger: partition 0's six were each
/// delivered once, in offset order. Every call the trigger made, for the test's own checks.
async fn recover_and_deliver_every_record(
    broker: &Tansu,
    group: &str,
    trigger: Partition0Outage,
) -> Vec<Call> {
    trigger.recover();
    wait_until_committed(broker, group, &[(0, 6), (1, 3), (2, 3)]).await;
    let calls = trigger.stop().await;
    assert_eq!(
        succeeded_in(&calls, 0),
        [0, 1, 2, 3, 4, 5],
        "once each, in offset order: {calls:#?}"
    );
    calls
}

#[tokio::test]
async fn a_failing_partition_holds_back_only_itself_and_its_records_then_arrive_in_offset_order() {
    let broker = Tansu::start().await;
    let (group, trigger) = Partition0Outage::failing_on(&broker).await;

    produce_past_the_outage(&broker, &group, &[1, 2]).await;

    let while_failing = trigger.calls();
    assert!(
        while_failing
            .iter()
            .all(|call| call.succeeded == call.offsets_in(0).is_empty()),
        "only batches with partition 0's records failed, and all of them did: {while_failing:#?}"
    );
    for partition in [1, 2] {
        assert_eq!(
            succeeded_in(&while_failing, partition),
            [0, 1, 2],
            "partition {partition}, once each, in order"
        );
    }
    let failed_batch = while_failing[0].clone();
    assert!(!failed_batch.succeeded);
    assert!(
        while_failing
            .iter()
            .filter(|call| !call.succeeded)
            .all(|call| *call == failed_batch),
        "every retry carries the failed batch, and nothing read after it: {while_failing:#?}"
    );

    let calls = recover_and_deliver_every_record(&broker, &group, trigger).await;

    let first_success_on_0 = calls
        .iter()
        .position(|call| call.succeeded && !call.offsets_in(0).is_empty())
        .unwrap();
    assert_eq!(
        calls[first_success_on_0].records, failed_batch.records,
        "the failed batch, retried whole, is partition 0's first success"
    );
    assert!(
        calls[first_success_on_0..]
            .iter()
            .all(|call| call.offsets_in(1).is_empty() && call.offsets_in(2).is_empty()),
        "partitions 1 and 2 were done before partition 0 recovered: {calls:#?}"
    );
}

#[tokio::test]
async fn a_broker_outage_while_a_partition_fails_loses_nothing_and_keeps_its_order() {
    let broker = Tansu::start_behind_proxy().await;
    let (group, trigger) = Partition0Outage::failing_on(&broker).await;
    produce_past_the_outage(&broker, &group, &[1]).await;

    // Cut off for longer than a consumer group's session would last: the trigger is no
    // member of the group, so it keeps its partitions, and partition 0's batch is still
    // the one retried when the broker is back.
    broker.disconnect().await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    broker.reconnect();
    let before_reconnect = trigger.calls().len();
    produce_to(&broker, 2, 3).await;
    wait_until_committed(&broker, &group, &[(1, 3), (2, 3)]).await;
    testkit::eventually(
        "partition 0's first batch retried after the outage",
        Duration::from_secs(30),
        || async {
            let calls = trigger.calls();
            let retried = calls[before_reconnect..]
                .iter()
                .any(|call| !call.succeeded && call.offsets_in(0) == [0, 1, 2]);
            if retried { Ok(()) } else { Err(calls) }
        },
    )
    .await;

    let calls = recover_and_deliver_every_record(&broker, &group, trigger).await;
    assert_eq!(succeeded_in(&calls, 1), [0, 1, 2], "{calls:#?}");
    assert_eq!(succeeded_in(&calls, 2), [0, 1, 2], "{calls:#?}");
}

#[tokio::test]
async fn a_trigger_started_again_resumes_at_once_from_the_committed_offsets() {
    let broker = Tansu::start().await;
    let group = new_group();
    produce_to(&broker, 0, 2).await;
    let first = Partition0Outage::start(&broker, &group);
    first.recover();
    wait_until_committed(&broker, &group, &[(0, 2)]).await;
    // Aborted: no graceful stop, so no final commit.
    first.task.abort();

    produce_to(&broker, 0, 2).await;
    let second = Partition0Outage::start(&broker, &group);
    second.recover();
    wait_until_committed(&broker, &group, &[(0, 4)]).await;
    let calls = second.stop().await;
    assert_eq!(succeeded_in(&calls, 0), [2, 3], "{calls:#?}");
}

#[tokio::test]
async fn records_two_producers_write_at_once_are_all_delivered_once_in_offset_order() {
    // tansu moves a partition's high watermark before it stores the batch, so while two
    // producers write to one partition a fetch can return a later batch without an earlier
    // one; the trigger must read the partition again rather than skip.
    testkit::init_tracing();
    let broker = Tansu::start().await;
    let group = new_group();
    let trigger = Partition0Outage::start(&broker, &group);
    trigger.recover();
    const EACH: usize = 200;
    tokio::join!(produce_to(&broker, 0, EACH), produce_to(&broker, 0, EACH));
    let total = 2 * EACH as i64;
    wait_until_committed(&broker, &group, &[(0, total)]).await;
    let calls = trigger.stop().await;
    assert_eq!(succeeded_in(&calls, 0), (0..total).collect::<Vec<_>>());
}
