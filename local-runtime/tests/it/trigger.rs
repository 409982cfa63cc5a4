//! The MSK trigger emulator against a private broker, with handlers that record what
//! Lambda would have delivered and fail on demand.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use local_runtime::trigger::{self, StartingPosition, TriggerSpec};
use rdkafka::ClientConfig;
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
    let task = tokio::spawn(trigger::run(
        spec(group),
        kafka(broker),
        "arn:aws:kafka:local".to_owned(),
        handler,
        shutdown.clone(),
    ));
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
    let broker = Tansu::start().await;
    let published = publish_placed(&broker, 30).await;
    let group = format!("group-{}", new_id());

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
    let broker = Tansu::start().await;
    let published = publish_placed(&broker, 10).await;
    let group = format!("group-{}", new_id());

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
    let broker = Tansu::start().await;
    let published = publish_placed(&broker, 5).await;
    let group = format!("group-{}", new_id());

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
    let group = format!("group-{}", new_id());
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
