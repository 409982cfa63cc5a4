//! The relay against a real PostgreSQL and a private broker it can take down.

use std::collections::HashSet;
use std::time::Duration;

use outbox_relay::RelayLimits;
use outbox_relay::{RelayError, run_once};

use shared::domain::{CustomerName, NewOrder, ProductName, Quantity, new_id};
use shared::events::{OrderEvent, OrderEventData, topics};
use shared::outbox::{self, OutboxRow};
use shared::trace::{TRACEPARENT, TraceContext};
use sqlx::PgPool;
use testkit::orders::unpublished;
use testkit::tansu::Tansu;

mod retention;

fn any_age(batch_size: i64) -> RelayLimits {
    RelayLimits {
        min_age: Duration::ZERO,
        batch_size,
        max_batches: 100,
    }
}

/// Commits `count` placed events to the outbox without publishing them, as a writer that
/// crashed right after its commit would leave them.
async fn committed_but_unpublished(pool: &PgPool, count: usize) -> Vec<OutboxRow> {
    let events: Vec<OrderEvent> = (0..count)
        .map(|n| {
            let order = NewOrder {
                customer_name: CustomerName::parse(&format!("Customer {n}")).unwrap(),
                customer_email: None,
                product_name: ProductName::parse(&format!("Product {}", n % 7)).unwrap(),
                quantity: Quantity::new(1).unwrap(),
                payment_method: None,
            };
            OrderEvent::placed(OrderEventData::from_new_order(new_id(), &order))
        })
        .collect();
    let mut tx = pool.begin().await.unwrap();
    let rows = outbox::enqueue(&mut tx, &events).await.unwrap();
    tx.commit().await.unwrap();
    rows
}

/// Event ids on `order-placed` of `broker` among `rows`, duplicates kept.
async fn published_ids(broker: &Tansu, rows: &[OutboxRow], expected: usize) -> Vec<String> {
    let wanted: HashSet<String> = rows
        .iter()
        .map(|row| row.payload["id"].as_str().unwrap().to_owned())
        .collect();
    testkit::kafka::read_records(
        &broker.bootstrap(),
        topics::ORDER_PLACED,
        |record| {
            record.json()["id"]
                .as_str()
                .is_some_and(|id| wanted.contains(id))
        },
        expected,
        Duration::from_secs(30),
    )
    .await
    .into_iter()
    .map(|record| record.json()["id"].as_str().unwrap().to_owned())
    .collect()
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn relay_publishes_stragglers_exactly_once(pool: PgPool) {
    testkit::init_tracing();
    let broker = Tansu::start().await;
    let publisher = testkit::kafka::publisher(&broker.bootstrap(), Duration::from_secs(2)).await;
    let rows = committed_but_unpublished(&pool, 25).await;

    let first = run_once(&pool, &publisher, any_age(10)).await.unwrap();
    let second = run_once(&pool, &publisher, any_age(10)).await.unwrap();

    assert_eq!(first.published, 25);
    assert_eq!(second.published, 0, "a published row is never sent again");
    assert_eq!(unpublished(&pool).await, 0);
    let ids = published_ids(&broker, &rows, 25).await;
    assert_eq!(ids.len(), 25);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 25);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn relay_leaves_fresh_rows_to_their_writer(pool: PgPool) {
    let broker = Tansu::start().await;
    let publisher = testkit::kafka::publisher(&broker.bootstrap(), Duration::from_secs(2)).await;
    committed_but_unpublished(&pool, 3).await;

    let report = run_once(&pool, &publisher, RelayLimits::default())
        .await
        .unwrap();

    assert_eq!(report.published, 0);
    assert_eq!(unpublished(&pool).await, 3);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn concurrent_relays_never_publish_a_row_twice(pool: PgPool) {
    let broker = Tansu::start().await;
    let publisher = testkit::kafka::publisher(&broker.bootstrap(), Duration::from_secs(2)).await;
    let rows = committed_but_unpublished(&pool, 300).await;

    let runs =
        futures::future::join_all((0..3).map(|_| run_once(&pool, &publisher, any_age(20)))).await;

    let total: usize = runs.into_iter().map(|run| run.unwrap().published).sum();
    assert_eq!(total, 300);
    let ids = published_ids(&broker, &rows, 300).await;
    assert_eq!(ids.len(), 300, "every row exactly once");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 300);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn relay_keeps_rows_while_the_broker_is_down_and_sends_them_once_it_returns(pool: PgPool) {
    let mut broker = Tansu::start().await;
    let publisher = testkit::kafka::publisher(&broker.bootstrap(), Duration::from_secs(2)).await;
    let rows = committed_but_unpublished(&pool, 5).await;
    broker.stop().await;

    let failed = run_once(&pool, &publisher, any_age(100)).await;

    assert!(
        matches!(failed, Err(RelayError::Broker { failed: 5 })),
        "{failed:?}"
    );
    assert_eq!(
        unpublished(&pool).await,
        5,
        "nothing is marked while the broker is down"
    );

    broker.restart().await;
    let report = run_once(&pool, &publisher, any_age(100)).await.unwrap();
    assert_eq!(report.published, 5);
    let ids = published_ids(&broker, &rows, 5).await;
    assert_eq!(ids.len(), 5, "each row once after the outage");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_publisher_that_sent_before_a_broker_restart_still_sends_after_it(pool: PgPool) {
    testkit::init_tracing();
    let mut broker = Tansu::start().await;
    let publisher = testkit::kafka::publisher(&broker.bootstrap(), Duration::from_secs(2)).await;
    let before = committed_but_unpublished(&pool, 3).await;
    assert_eq!(
        run_once(&pool, &publisher, any_age(100))
            .await
            .unwrap()
            .published,
        3
    );

    broker.restart().await;
    let after = committed_but_unpublished(&pool, 3).await;
    let published = testkit::eventually(
        &format!(
            "a relay run after the restart (broker log: {})",
            broker.log_path().display()
        ),
        Duration::from_secs(10),
        || run_once(&pool, &publisher, any_age(100)),
    )
    .await
    .published;

    assert_eq!(published, 3);
    assert_eq!(published_ids(&broker, &before, 3).await.len(), 3);
    assert_eq!(published_ids(&broker, &after, 3).await.len(), 3);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn relayed_events_carry_their_traceparent_header_and_rows_without_one_still_go_out(
    pool: PgPool,
) {
    let broker = Tansu::start().await;
    let publisher = testkit::kafka::publisher(&broker.bootstrap(), Duration::from_secs(2)).await;
    let trace = TraceContext::new_root();
    let order = NewOrder {
        customer_name: CustomerName::parse("Traced").unwrap(),
        customer_email: None,
        product_name: ProductName::parse("Lamp").unwrap(),
        quantity: Quantity::new(1).unwrap(),
        payment_method: None,
    };
    let traced =
        OrderEvent::placed(OrderEventData::from_new_order(new_id(), &order)).in_trace(trace);
    let mut tx = pool.begin().await.unwrap();
    let mut rows = outbox::enqueue(&mut tx, &[traced]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(rows[0].traceparent, Some(trace.to_string()));
    // An event without a trace leaves the column NULL, as rows written before it existed.
    rows.extend(committed_but_unpublished(&pool, 1).await);
    assert_eq!(rows[1].traceparent, None);

    assert_eq!(
        run_once(&pool, &publisher, any_age(10))
            .await
            .unwrap()
            .published,
        2
    );

    let ids: HashSet<String> = rows
        .iter()
        .map(|row| row.payload["id"].as_str().unwrap().to_owned())
        .collect();
    let records = testkit::kafka::read_records(
        &broker.bootstrap(),
        topics::ORDER_PLACED,
        |record| {
            record.json()["id"]
                .as_str()
                .is_some_and(|id| ids.contains(id))
        },
        2,
        Duration::from_secs(30),
    )
    .await;
    let header_of = |row: &OutboxRow| {
        records
            .iter()
            .find(|record| record.json()["id"] == row.payload["id"])
            .map(|record| record.header(TRACEPARENT).map(<[u8]>::to_vec))
    };
    assert_eq!(
        header_of(&rows[0]),
        Some(Some(trace.to_string().into_bytes()))
    );
    assert_eq!(header_of(&rows[1]), Some(None));
}
