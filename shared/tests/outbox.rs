//! The outbox's SQL against a real PostgreSQL.

use shared::domain::{CustomerName, NewOrder, ProductName, Quantity, new_id};
use shared::events::{OrderEvent, OrderEventData};
use shared::outbox;
use sqlx::{PgConnection, PgPool};

/// Index scans of the outbox's indexes so far in this session's current statistics:
/// (primary key, partial index of unpublished rows).
async fn index_scans(conn: &mut PgConnection) -> (i64, i64) {
    sqlx::query_as(
        "SELECT pg_stat_get_xact_numscans('outbox_pkey'::regclass),
                pg_stat_get_xact_numscans('outbox_unpublished_idx'::regclass)",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

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

/// The outbox of a new deployment after its first few thousand orders: rows published, a few
/// waiting, the table not yet analysed. For a mark that tests `published_at IS NULL` the
/// planner picks the partial index of unpublished rows and reads all of it, including the
/// entries the published rows left there (and a connection keeps that plan once it caches a
/// generic one).
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn marking_reads_the_rows_by_primary_key_not_the_whole_partial_index(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let events: Vec<OrderEvent> = (0..2_003).map(placed).collect();
    let rows = outbox::enqueue(&mut conn, &events).await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let (published, waiting) = ids.split_at(2_000);
    outbox::mark_published(&mut *conn, published).await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let before = index_scans(&mut tx).await;
    outbox::mark_published(&mut *tx, waiting).await.unwrap();
    let after = index_scans(&mut tx).await;
    tx.commit().await.unwrap();

    assert_eq!(
        after.1 - before.1,
        0,
        "marking scanned the partial index of unpublished rows"
    );
    assert!(after.0 > before.0, "marking did not use the primary key");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// A row the relay marked first keeps that time when the function that wrote it marks it too.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_second_mark_keeps_the_first_time(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let rows = outbox::enqueue(&mut conn, &[placed(0)]).await.unwrap();
    let ids = [rows[0].id];
    sqlx::query("UPDATE outbox SET published_at = now() - interval '1 hour' WHERE id = $1")
        .bind(ids[0])
        .execute(&mut *conn)
        .await
        .unwrap();
    outbox::mark_published(&mut *conn, &ids).await.unwrap();
    let age_secs: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM now() - published_at)::float8 FROM outbox WHERE id = $1",
    )
    .bind(ids[0])
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(
        age_secs >= 3_599.0,
        "the first mark was overwritten: {age_secs} s old"
    );
}
