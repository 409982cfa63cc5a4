//! Redriving an on-failure queue: SQS through the local emulator, a private broker holding
//! the batch, and the real inventory consumer, in-process and through `operator redrive`.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use operator::redrive;
use shared::config::{KafkaSettings, Secrets};
use shared::events::{OrderEvent, topics};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::postgres::url_of as database_url;
use testkit::proxy::TcpProxy;
use testkit::tansu::Tansu;
use uuid::Uuid;

async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(
        &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
    )
}

/// A fresh queue on the emulator; its URL.
async fn queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(format!("redrive-{}", Uuid::now_v7()))
        .send()
        .await
        .expect("the SQS emulator answers (scripts/services up)")
        .queue_url
        .unwrap()
}

/// Messages still in the queue, visible or being handled.
async fn messages_left(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> usize {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attributes
        .values()
        .map(|count| count.parse::<usize>().unwrap())
        .sum()
}

/// What Lambda sends the on-failure queue for a discarded batch of `order-placed` records
/// on `partition`, offsets `first..=last` (the documented format).
fn on_failure_message(bootstrap: &str, partition: i32, first: i64, last: i64) -> String {
    serde_json::json!({
        "requestContext": {
            "requestId": Uuid::now_v7(),
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders-inventory",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 10
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2025-11-24T16:00:06.021Z",
        "KafkaBatchInfo": {
            "batchSize": last - first + 1,
            "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/orders/abc-1",
            "bootstrapServers": bootstrap,
            "payloadSize": 2048,
            "recordsInfo": {
                format!("{}-{partition}", topics::ORDER_PLACED): {
                    "firstRecordOffset": first.to_string(),
                    "lastRecordOffset": last.to_string(),
                    "firstRecordTimestamp": "2025-11-24T16:00:04.835Z",
                    "lastRecordTimestamp": "2025-11-24T16:00:05.580Z"
                }
            }
        }
    })
    .to_string()
}

async fn send(sqs: &aws_sdk_sqs::Client, queue_url: &str, body: String) {
    sqs.send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

/// A private broker holding four placed orders for one product (so one partition), with
/// the orders PLACED in the database and stock for all of them.
struct Placed {
    broker: Tansu,
    orders: Vec<Uuid>,
    partition: i32,
    offsets: Vec<i64>,
}

async fn place_four_orders(pool: &PgPool) -> Placed {
    testkit::init_tracing();
    let broker = Tansu::start().await;
    sqlx::query!("INSERT INTO stock (product_name, quantity) VALUES ('Laptop', 10)")
        .execute(pool)
        .await
        .unwrap();
    let events: Vec<OrderEvent> = (0..4)
        .map(|n| {
            OrderEvent::placed(testkit::orders::order_data(
                &format!("Customer {n}"),
                None,
                "Laptop",
                1,
            ))
        })
        .collect();
    for event in &events {
        sqlx::query!(
            "INSERT INTO orders (id, customer_name, product_name, quantity, status)
             VALUES ($1, $2, 'Laptop', 1, 'PLACED')",
            event.data.order_id,
            event.data.customer_name.as_str(),
        )
        .execute(pool)
        .await
        .unwrap();
    }
    let payloads: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    let results = testkit::kafka::publisher(&broker.bootstrap(), Duration::from_secs(5))
        .await
        .publish_all(
            payloads
                .iter()
                .map(|p| (topics::ORDER_PLACED, "Laptop", p.as_slice())),
        )
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let records = testkit::kafka::read_records(
        &broker.bootstrap(),
        topics::ORDER_PLACED,
        |_| true,
        4,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(records.len(), 4);
    Placed {
        partition: records[0].partition,
        offsets: records.iter().map(|r| r.offset).collect(),
        orders: events.iter().map(|e| e.data.order_id).collect(),
        broker,
    }
}

/// A queue holding the one on-failure message the trigger leaves when it discards the batch
/// of `placed`'s orders `first` to `last` (by index): where every redrive starts.
async fn discarded_batch(
    placed: &Placed,
    first: usize,
    last: usize,
) -> (aws_sdk_sqs::Client, String) {
    let sqs = sqs().await;
    let queue_url = queue(&sqs).await;
    let message = on_failure_message(
        &placed.broker.bootstrap(),
        placed.partition,
        placed.offsets[first],
        placed.offsets[last],
    );
    send(&sqs, &queue_url, message).await;
    (sqs, queue_url)
}

/// Where the tests that redrive a whole batch start: four placed orders, on a pool of their
/// own (these tests also reach the database another way: through a proxy, or from the
/// operator binary), and the on-failure message of the batch of all four, queued. Returns
/// the pool, the orders, and the queue with its client.
async fn whole_batch_discarded(
    connect: &PgConnectOptions,
) -> (PgPool, Placed, aws_sdk_sqs::Client, String) {
    let pool = PgPoolOptions::new()
        .connect_with(connect.clone())
        .await
        .unwrap();
    let placed = place_four_orders(&pool).await;
    let (sqs, queue_url) = discarded_batch(&placed, 0, placed.offsets.len() - 1).await;
    (pool, placed, sqs, queue_url)
}

async fn statuses(pool: &PgPool, orders: &[Uuid]) -> Vec<String> {
    let mut found = Vec::new();
    for id in orders {
        found.push(
            sqlx::query_scalar!("SELECT status FROM orders WHERE id = $1", id)
                .fetch_one(pool)
                .await
                .unwrap(),
        );
    }
    found
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_discarded_batch_is_read_back_from_kafka_handed_to_the_consumer_and_then_deleted(
    pool: PgPool,
) {
    let placed = place_four_orders(&pool).await;
    let bootstrap = placed.broker.bootstrap();
    // The trigger discarded the batch of the second and third orders.
    let (sqs, queue_url) = discarded_batch(&placed, 1, 2).await;
    let inventory = inventory::consumer(
        pool.clone(),
        testkit::kafka::publisher(&placed.broker.bootstrap(), Duration::from_secs(5)).await,
    );

    let report = redrive::run(
        &sqs,
        &queue_url,
        &KafkaSettings::plaintext(&bootstrap),
        &Secrets::new(),
        &inventory,
    )
    .await
    .unwrap();

    assert_eq!((report.redriven, report.records), (1, 2), "{report:?}");
    assert!(report.failed.is_empty());
    assert_eq!(
        statuses(&pool, &placed.orders).await,
        ["PLACED", "CONFIRMED", "CONFIRMED", "PLACED"],
        "exactly the batch's records, none around them"
    );
    assert_eq!(
        messages_left(&sqs, &queue_url).await,
        0,
        "deleted after success"
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_message_whose_batch_fails_again_or_that_describes_no_batch_stays_in_the_queue(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (pool, placed, sqs, queue_url) = whole_batch_discarded(&connect).await;
    let bootstrap = placed.broker.bootstrap();
    send(&sqs, &queue_url, "not an on-failure record".to_owned()).await;
    // The consumer's database is cut off: the batch fails again, transiently.
    let proxy = TcpProxy::start(format!("{}:{}", connect.get_host(), connect.get_port())).await;
    let cut_off = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(connect.clone().host("127.0.0.1").port(proxy.port()));
    proxy.cut().await;
    let inventory = inventory::consumer(
        cut_off,
        testkit::kafka::publisher(&placed.broker.bootstrap(), Duration::from_secs(5)).await,
    );
    let kafka = KafkaSettings::plaintext(&bootstrap);

    let report = redrive::run(&sqs, &queue_url, &kafka, &Secrets::new(), &inventory)
        .await
        .unwrap();

    assert_eq!(report.redriven, 0);
    assert_eq!(report.failed.len(), 2, "{report:?}");
    assert_eq!(messages_left(&sqs, &queue_url).await, 2);
    assert_eq!(statuses(&pool, &placed.orders).await, ["PLACED"; 4]);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn operator_redrive_hands_a_queue_to_the_named_consumer(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (pool, placed, sqs, queue_url) = whole_batch_discarded(&connect).await;
    let bootstrap = placed.broker.bootstrap();
    let redrive = |function: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_operator"))
            .args(["redrive", "--queue-url", &queue_url, "--function", function])
            .env("DATABASE_URL", database_url(&connect))
            .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
            .env("RUST_LOG", "warn")
            .output()
    };

    let unknown = redrive("nobody").await.unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no consumer function is named"));
    assert_eq!(messages_left(&sqs, &queue_url).await, 1, "nothing was read");

    let output = redrive("inventory").await.unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("redriven: 1 batches (4 records) handed to inventory"),
        "{stdout}"
    );
    assert_eq!(statuses(&pool, &placed.orders).await, ["CONFIRMED"; 4]);
    assert_eq!(messages_left(&sqs, &queue_url).await, 0);
}
