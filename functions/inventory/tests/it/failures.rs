//! Outages: the database going away mid-batch, the broker going away after the commit.

use std::time::Duration;

use inventory::InventoryError;
use outbox_relay::{RelayLimits, run_once};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::postgres::{address_of, direct_pool, pool_through};
use testkit::proxy::TcpProxy;
use testkit::tansu::Tansu;

use crate::helpers::*;
use testkit::kafka::{publisher, shared_publisher};

/// Waits until some session of this test's database waits for a row lock.
async fn wait_for_a_lock_wait(pool: &PgPool) {
    testkit::eventually(
        "the handler waiting for the stock lock",
        Duration::from_secs(30),
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            if waiting > 0 {
                Ok(())
            } else {
                Err("no session waits for a lock")
            }
        },
    )
    .await;
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_database_outage_mid_batch_applies_nothing_and_the_retry_succeeds(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let direct = direct_pool(&connect, 3).await;
    let proxy = TcpProxy::start(address_of(&connect)).await;
    let through_proxy = pool_through(&connect, proxy.port(), 1);
    set_stock(&direct, &[("Desk Lamp", 10), ("Bookshelf", 10)]).await;
    let lamp = place_order(&direct, "Desk Lamp", 2).await;
    let shelf = place_order(&direct, "Bookshelf", 3).await;
    let mut event = batch(&[lamp.clone(), shelf.clone()], 0, 90);
    // A poison record too, so that dead letters are part of what must not survive.
    let mut poison = event.records["order-placed-0"][0].clone();
    poison.offset = 92;
    poison.value = Some("not base64 at all!".to_owned());
    event
        .records
        .get_mut("order-placed-0")
        .unwrap()
        .push(poison);
    let before = snapshot(&direct).await;
    let inventory = inventory::consumer(through_proxy, shared_publisher().await);

    // Hold one stock row so that the handler stops inside its transaction, after it has
    // stored dead letters and claimed the events, then cut the line.
    let mut blocker = direct.begin().await.unwrap();
    sqlx::query!("SELECT 1 AS one FROM stock WHERE product_name = 'Bookshelf' FOR UPDATE")
        .fetch_all(&mut *blocker)
        .await
        .unwrap();
    let handler = tokio::spawn({
        let (inventory, event) = (inventory.clone(), event.clone());
        async move { inventory.handle(event).await }
    });
    wait_for_a_lock_wait(&direct).await;
    proxy.cut().await;
    let err = handler.await.unwrap().expect_err("the handler fails");
    blocker.rollback().await.unwrap();

    assert!(err.is_transient(), "{err:?}");
    assert!(matches!(err.0, InventoryError::Database { .. }), "{err:?}");
    assert_eq!(
        snapshot(&direct).await,
        before,
        "nothing from the batch is kept"
    );

    proxy.restore();
    let retry = inventory.handle(event).await.expect("the retry succeeds");
    assert_eq!((retry.confirmed, retry.dead_lettered), (2, 1));
    assert_eq!(stock(&direct, "Desk Lamp").await, Some(8));
    assert_eq!(stock(&direct, "Bookshelf").await, Some(7));
    assert_eq!(count(&direct, "dead_letters").await, 1);
    assert_eq!(count(&direct, "processed_events").await, 2);
}

/// Decision: a broker outage after the commit fails the invocation (a transient fault, as
/// docs/failure-rules.md asks), the events wait in the outbox, and Lambda's retry finds every event
/// already processed and succeeds without touching anything.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_broker_outage_after_the_commit_fails_the_invocation_and_the_retry_is_harmless(
    pool: PgPool,
) {
    let mut broker = Tansu::start().await;
    let publisher = publisher(&broker.bootstrap(), Duration::from_secs(2)).await;
    set_stock(&pool, &[("Desk Lamp", 1)]).await;
    let confirmed = place_order(&pool, "Desk Lamp", 1).await;
    let rejected = place_order(&pool, "Desk Lamp", 1).await;
    let event = batch(&[confirmed.clone(), rejected.clone()], 0, 3);
    let inventory = inventory::consumer(pool.clone(), publisher.clone());
    broker.stop().await;

    let err = inventory
        .handle(event.clone())
        .await
        .expect_err("publishing fails");

    assert!(err.is_transient());
    let (summary, unpublished) = match err.0 {
        InventoryError::NotPublished {
            summary,
            unpublished,
        } => (summary, unpublished),
        other => panic!("unexpected error {other:?}"),
    };
    assert_eq!(
        (summary.confirmed, summary.rejected, unpublished),
        (1, 1, 2)
    );
    assert_eq!(
        order_state(&pool, confirmed.data.order_id).await.0,
        "CONFIRMED"
    );
    assert_eq!(
        order_state(&pool, rejected.data.order_id).await.0,
        "REJECTED"
    );
    let pending: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM outbox"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pending, 2, "the events wait for the relay");
    let committed = snapshot(&pool).await;

    let retry = inventory.handle(event).await.expect("the retry succeeds");
    assert_eq!((retry.duplicates, retry.published), (2, 0));
    assert_eq!(snapshot(&pool).await, committed);

    // Once the broker is back, the relay delivers what the function could not.
    broker.restart().await;
    let relayed = run_once(
        &pool,
        &testkit::kafka::publisher(&broker.bootstrap(), Duration::from_secs(10)).await,
        RelayLimits {
            min_age: Duration::ZERO,
            ..RelayLimits::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(relayed.published, 2);
    let delivered = testkit::kafka::read_records(
        &broker.bootstrap(),
        "order-rejected",
        |record| record.json()["subject"] == rejected.data.order_id.to_string().as_str(),
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(delivered.len(), 1);
}
