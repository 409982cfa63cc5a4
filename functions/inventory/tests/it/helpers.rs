//! Building batches, seeding the database and reading it back.

use std::collections::BTreeMap;

use aws_lambda_events::event::kafka::KafkaEvent;
use inventory::Inventory;
use shared::consumer::Consumer;
use shared::events::{OrderEvent, topics};
use sqlx::PgPool;
use testkit::msk::BrokerRecord;
use uuid::Uuid;

pub use testkit::orders::count;

/// Inserts a PLACED order and returns the `order.placed` event the API would have published.
pub async fn place_order(pool: &PgPool, product: &str, quantity: i32) -> OrderEvent {
    testkit::orders::insert_placed(pool, product, quantity, None).await
}

/// The sample events under `events/`, the same files `cargo lambda invoke` uses.
pub fn sample(name: &str) -> KafkaEvent {
    let text = match name {
        "inventory-order-placed" => include_str!("../../../../events/inventory-order-placed.json"),
        "inventory-mixed-batch" => include_str!("../../../../events/inventory-mixed-batch.json"),
        "inventory-poison-records" => {
            include_str!("../../../../events/inventory-poison-records.json")
        }
        other => panic!("no sample event {other}"),
    };
    serde_json::from_str(text).expect("samples are Lambda MSK events")
}

/// The orders the samples refer to, as `events/inventory-orders.sql` inserts them.
pub async fn seed_sample_orders(pool: &PgPool) {
    sqlx::raw_sql(include_str!("../../../../events/inventory-orders.sql"))
        .execute(pool)
        .await
        .expect("the sample orders insert");
}

pub async fn inventory(pool: &PgPool) -> Consumer<Inventory> {
    testkit::init_tracing();
    inventory::consumer(pool.clone(), testkit::kafka::shared_publisher().await)
}

pub async fn set_stock(pool: &PgPool, levels: &[(&str, i32)]) {
    for (product, quantity) in levels {
        sqlx::query!(
            "INSERT INTO stock (product_name, quantity) VALUES ($1, $2)
             ON CONFLICT (product_name) DO UPDATE SET quantity = EXCLUDED.quantity",
            *product,
            *quantity,
        )
        .execute(pool)
        .await
        .expect("stock can be set");
    }
}

/// A batch carrying `events` on one partition, at consecutive offsets from `first_offset`.
pub fn batch(events: &[OrderEvent], partition: i32, first_offset: i64) -> KafkaEvent {
    testkit::msk::batch_of(events, partition, first_offset)
}

pub fn records(events: &[OrderEvent], partition: i32, first_offset: i64) -> Vec<BrokerRecord> {
    events
        .iter()
        .zip(first_offset..)
        .map(|(event, offset)| testkit::msk::record(event, partition, offset))
        .collect()
}

pub use testkit::orders::stock_level as stock;

/// `(status, rejection_reason)` of an order.
pub async fn order_state(pool: &PgPool, id: Uuid) -> (String, Option<String>) {
    let order = sqlx::query!(
        "SELECT status, rejection_reason FROM orders WHERE id = $1",
        id
    )
    .fetch_one(pool)
    .await
    .expect("the order exists");
    (order.status, order.rejection_reason)
}

/// The decision events inventory sent for the orders of `pool`'s database, read back from
/// the broker (the outbox forgets an event once the broker has it), duplicates kept. The
/// handler returns once its events are acknowledged, so reading each topic to its end finds
/// them all.
pub async fn sent_decisions(pool: &PgPool) -> Vec<OrderEvent> {
    sent_decisions_on(&testkit::kafka::bootstrap(), pool).await
}

/// As [`sent_decisions`], on the broker at `bootstrap` (a test whose orders have the sample
/// ids, which other tests use too, has a broker of its own).
pub async fn sent_decisions_on(bootstrap: &str, pool: &PgPool) -> Vec<OrderEvent> {
    let ours = testkit::orders::ids(pool).await;
    testkit::kafka::order_events(
        bootstrap,
        &[
            topics::ORDER_CONFIRMED,
            topics::ORDER_REJECTED,
            topics::ORDER_RESERVED,
        ],
        &ours,
    )
    .await
}

/// `(status, rejection_reason)` by order id.
pub type OrderStates = BTreeMap<Uuid, (String, Option<String>)>;

/// Everything a batch could change, to show that a second delivery changes nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    stock: BTreeMap<String, i32>,
    orders: OrderStates,
    outbox: i64,
    processed: i64,
    dead_letters: i64,
}

impl Snapshot {
    /// Only the business state, without the bookkeeping tables.
    pub fn stock_and_orders(&self) -> (&BTreeMap<String, i32>, &OrderStates) {
        (&self.stock, &self.orders)
    }
}

pub async fn snapshot(pool: &PgPool) -> Snapshot {
    let stock = sqlx::query!("SELECT product_name, quantity FROM stock")
        .fetch_all(pool)
        .await
        .unwrap();
    let orders = sqlx::query!("SELECT id, status, rejection_reason FROM orders")
        .fetch_all(pool)
        .await
        .unwrap();
    Snapshot {
        stock: stock
            .into_iter()
            .map(|row| (row.product_name, row.quantity))
            .collect(),
        orders: orders
            .into_iter()
            .map(|row| (row.id, (row.status, row.rejection_reason)))
            .collect(),
        outbox: count(pool, "outbox").await,
        processed: count(pool, "processed_events").await,
        dead_letters: count(pool, "dead_letters").await,
    }
}
