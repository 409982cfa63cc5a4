//! The outbox's SQL against a real PostgreSQL.

use shared::domain::{CustomerName, NewOrder, ProductName, Quantity, new_id};
use shared::events::{OrderEvent, OrderEventData};
use shared::outbox;
use sqlx::PgPool;

fn placed(n: usize) -> OrderEvent {
    let order = NewOrder {
        customer_name: CustomerName::parse(&format!("Customer {n}")).unwrap(),
        customer_email: None,
        product_name: ProductName::parse("Laptop").unwrap(),
        quantity: Quantity::new(1).unwrap(),
        payment_method: None,
    };
    OrderEvent::placed(OrderEventData::from_new_order(new_id(), &order))
}

/// Forgetting what the broker acknowledged deletes exactly those rows; what was not
/// acknowledged stays for the relay, and nothing of a published event is kept.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn forgetting_deletes_exactly_the_acknowledged_rows(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let events: Vec<OrderEvent> = (0..2_003).map(placed).collect();
    let rows = outbox::enqueue(&mut conn, &events).await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let (published, waiting) = ids.split_at(2_000);

    outbox::forget_published(&pool, published).await.unwrap();

    let left: Vec<i64> = sqlx::query_scalar!("SELECT id FROM outbox ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, waiting, "only the unacknowledged rows stay");
}

/// The relay and the function that wrote a row may both send it; whichever deletes it second
/// finds nothing, and that is no error.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_row_already_deleted_by_another_writer_is_no_error(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let rows = outbox::enqueue(&mut conn, &[placed(0), placed(1)])
        .await
        .unwrap();
    let first = [rows[0].id];
    outbox::forget_published(&mut *conn, &first).await.unwrap();
    outbox::forget_published(&mut *conn, &first).await.unwrap();
    let left: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM outbox"#)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(left, 1);
}
