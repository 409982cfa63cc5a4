//! The system's orders as tests seed them and read them back: a `PLACED` order inserted as
//! the API writes one, and the events the functions emitted for a test database's orders.

use std::collections::HashSet;

use serde_json::Value;
use shared::domain::{CustomerName, EmailAddress, ProductName, Quantity};
use shared::events::{OrderEvent, OrderEventData};
use sqlx::PgPool;

/// A new order's event data, its values parsed as the API parses a request's.
pub fn order_data(
    customer: &str,
    email: Option<&str>,
    product: &str,
    quantity: i64,
) -> OrderEventData {
    OrderEventData {
        order_id: shared::domain::new_id(),
        customer_name: CustomerName::parse(customer).expect("a valid customer name"),
        customer_email: email.map(|email| EmailAddress::parse(email).expect("a valid address")),
        product_name: ProductName::parse(product).expect("a valid product name"),
        quantity: Quantity::new(quantity).expect("a valid quantity"),
        reason: None,
        payment: None,
    }
}

/// Ada Lovelace (ada@example.com) orders `quantity` × `product`.
pub fn ada_orders(product: &str, quantity: i64) -> OrderEventData {
    order_data("Ada Lovelace", Some("ada@example.com"), product, quantity)
}

/// Inserts a `PLACED` order for Ada Lovelace (ada@example.com) of `quantity` × `product`,
/// paid by card `payment_method` when there is one, and returns the `order.placed` event the
/// API would have published for it.
pub async fn insert_placed(
    pool: &PgPool,
    product: &str,
    quantity: i32,
    payment_method: Option<&str>,
) -> OrderEvent {
    let event = OrderEvent::placed(ada_orders(product, quantity.into()));
    sqlx::query!(
        "INSERT INTO orders (id, customer_name, customer_email, product_name, quantity, status,
                             payment_method)
         VALUES ($1, $2, $3, $4, $5, 'PLACED', $6)",
        event.data.order_id,
        event.data.customer_name.as_str(),
        event.data.customer_email.as_ref().map(EmailAddress::as_str),
        product,
        quantity,
        payment_method,
    )
    .execute(pool)
    .await
    .expect("orders can be inserted");
    event
}

/// The ids of the orders in `pool`'s database (a test's own), as events name them.
pub async fn ids(pool: &PgPool) -> HashSet<String> {
    sqlx::query_scalar!(r#"SELECT id::text AS "id!" FROM orders"#)
        .fetch_all(pool)
        .await
        .expect("the orders can be read")
        .into_iter()
        .collect()
}

/// The events on `topic` emitted for the orders of `pool`'s database, oldest first (event
/// ids are UUIDv7, so they sort by time), each once: those still waiting in the outbox and
/// those already on the shared broker (the outbox forgets an event once the broker has it;
/// every handler returns once its events are acknowledged, so reading the topic to its end
/// finds them all). The outbox is read first, so an event published meanwhile is found on
/// the broker.
pub async fn emitted_events(pool: &PgPool, topic: &str) -> Vec<OrderEvent> {
    let waiting: Vec<Value> =
        sqlx::query_scalar!("SELECT payload FROM outbox WHERE topic = $1", topic)
            .fetch_all(pool)
            .await
            .expect("the outbox can be read");
    let sent =
        crate::kafka::order_events(&crate::kafka::bootstrap(), &[topic], &ids(pool).await).await;
    let mut events: Vec<OrderEvent> = waiting
        .into_iter()
        .map(|payload| serde_json::from_value(payload).expect("outbox rows hold order events"))
        .chain(sent)
        .collect();
    events.sort_by_key(|event| event.id);
    events.dedup_by_key(|event| event.id);
    events
}

/// The rows in `table`.
pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("tables can be counted")
}

/// The outbox rows not published yet (the outbox forgets a row once the broker has it).
pub async fn unpublished(pool: &PgPool) -> i64 {
    count(pool, "outbox").await
}

/// The stock of `product`, or `None` when it has no stock row.
pub async fn stock_level(pool: &PgPool, product: &str) -> Option<i32> {
    sqlx::query_scalar!(
        "SELECT quantity FROM stock WHERE product_name = $1",
        product
    )
    .fetch_optional(pool)
    .await
    .expect("stock can be read")
}

/// Loads the demo stock (seed/stock.sql, an upsert, so loading it again resets the levels).
pub async fn load_demo_stock(db: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let path = crate::runtime::workspace_root().join("seed/stock.sql");
    let sql = std::fs::read_to_string(&path)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
    sqlx::raw_sql(&sql)
        .execute(db)
        .await
        .map_err(|err| anyhow::anyhow!("loading {} failed: {err}", path.display()))?;
    Ok(())
}
