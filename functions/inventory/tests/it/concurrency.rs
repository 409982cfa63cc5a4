//! Several invocations at once on the same products: no oversell, no deadlock, and an event
//! delivered to two of them at once is applied by exactly one.

use std::collections::HashSet;

use futures::future::join_all;
use shared::events::OrderEvent;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::*;
use testkit::kafka::shared_publisher;

const INVOCATIONS: usize = 8;

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn concurrent_invocations_on_overlapping_products_never_oversell_or_deadlock(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Enough connections for every invocation to hold its own transaction at once.
    let pool = PgPoolOptions::new()
        .max_connections(INVOCATIONS as u32 + 1)
        .connect_with(connect)
        .await
        .unwrap();
    let products = ["Widget", "Gadget", "Gizmo"];
    set_stock(&pool, &products.map(|product| (product, 10))).await;
    // 200 Widgets of quantity 1, and 40 of each other product, all against stock 10.
    let mut per_product: Vec<Vec<OrderEvent>> = Vec::new();
    for (product, orders) in products.iter().zip([200, 40, 40]) {
        let mut placed = Vec::new();
        for _ in 0..orders {
            placed.push(place_order(&pool, product, 1).await);
        }
        per_product.push(placed);
    }

    // Each invocation gets a slice of every product (so all of them lock all three stock
    // rows), plus the first two records of the next invocation's slices: those events are
    // delivered twice, concurrently.
    let mut batches = Vec::new();
    let mut deliveries = 0;
    for i in 0..INVOCATIONS {
        let mut delivered = Vec::new();
        for (partition, placed) in per_product.iter().enumerate() {
            let size = placed.len() / INVOCATIONS;
            let start = i * size;
            let end = ((i + 1) * size + 2).min(placed.len());
            delivered.extend(records(&placed[start..end], partition as i32, start as i64));
        }
        deliveries += delivered.len();
        batches.push(testkit::msk::batch(delivered));
    }
    let unique: usize = per_product.iter().map(Vec::len).sum();

    let inventory = inventory::consumer(pool.clone(), shared_publisher().await);
    let handles = batches.into_iter().map(|batch| {
        let inventory = inventory.clone();
        tokio::spawn(async move { inventory.handle(batch).await })
    });
    let summaries: Vec<_> = join_all(handles)
        .await
        .into_iter()
        .map(|joined| joined.expect("no invocation panics"))
        .collect::<Result<Vec<_>, _>>()
        .expect("every invocation succeeds: no deadlock, no check violation");

    let confirmed: usize = summaries.iter().map(|s| s.confirmed).sum();
    let rejected: usize = summaries.iter().map(|s| s.rejected).sum();
    let duplicates: usize = summaries.iter().map(|s| s.duplicates).sum();
    assert_eq!(confirmed, 3 * 10);
    assert_eq!(confirmed + rejected, unique, "every order decided once");
    assert_eq!(duplicates, deliveries - unique);
    for product in products {
        assert_eq!(stock(&pool, product).await, Some(0), "{product}");
        let counts = sqlx::query!(
            r#"SELECT count(*) FILTER (WHERE status = 'CONFIRMED') AS "confirmed!",
                      count(*) FILTER (WHERE status = 'PLACED') AS "placed!"
               FROM orders WHERE product_name = $1"#,
            product
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let (confirmed, placed): (i64, i64) = (counts.confirmed, counts.placed);
        assert_eq!((confirmed, placed), (10, 0), "{product}");
    }
    let sent = sent_decisions(&pool).await;
    let decided: HashSet<_> = sent.iter().map(|event| event.data.order_id).collect();
    assert_eq!(decided.len(), unique);
    assert_eq!(sent.len(), unique, "one decision event per order");
    assert_eq!(
        count(&pool, "outbox").await,
        0,
        "every sent event is forgotten"
    );
    assert_eq!(count(&pool, "processed_events").await as usize, unique);
}
