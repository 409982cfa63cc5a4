//! Retention: the relay's runs prune what is kept no longer than it serves, and keep the
//! rest; a record redelivered within the retention is still recognised and applied once.

use std::time::Duration;

use outbox_relay::retention::{Retention, prune};
use shared::domain::{CustomerName, NewOrder, ProductName, Quantity, new_id};
use shared::events::{OrderEvent, OrderEventData};
use sqlx::PgPool;
use testkit::msk::kafka_event;

const DAY: &str = "1 day";

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn old_rows_go_in_batches_and_young_ones_stay(pool: PgPool) {
    // 5 old and 2 young of each; batches of 2, so the old ones take three statements.
    sqlx::raw_sql(&format!(
        "INSERT INTO processed_events (consumer, event_id, processed_at)
           SELECT 'inventory', gen_random_uuid(), now() - interval '{DAY}' * d
           FROM unnest(ARRAY[15, 15, 20, 30, 400, 1, 13]) AS d;
         INSERT INTO notifications (order_id, kind, recipient, status, created_at)
           SELECT gen_random_uuid(), 'ORDER_RECEIVED', 'a@example.com', 'SENT',
                  now() - interval '{DAY}' * d
           FROM unnest(ARRAY[15, 15, 20, 30, 400, 1, 13]) AS d;
         INSERT INTO dead_letters (consumer, topic, \"partition\", \"offset\", error, replayed_at)
           SELECT 'inventory', 'order-placed', 0, n, 'poison',
                  CASE WHEN n < 5 THEN now() - interval '{DAY}' * 31
                       WHEN n = 5 THEN now() - interval '{DAY}' * 2 END
           FROM generate_series(1, 6) AS n;
         INSERT INTO request_counts (counter, subject, window_start, hits)
           SELECT 'guest_orders_per_email', sha256(n::text::bytea), now() - interval '{DAY}' * n, 1
           FROM unnest(ARRAY[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11]) AS n;"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let retention = Retention {
        batch_size: 2,
        ..Retention::default()
    };

    let pruned = prune(&pool, &retention).await.unwrap();

    assert_eq!(
        (
            pruned.processed_events,
            pruned.notifications,
            pruned.dead_letters
        ),
        (5, 5, 4)
    );
    assert_eq!(
        pruned.request_counts, 3,
        "windows that started over 8 days ago"
    );
    assert_eq!(
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM processed_events"#)
            .fetch_one(&pool)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM notifications"#)
            .fetch_one(&pool)
            .await
            .unwrap(),
        2
    );
    // The young replayed one and the one never replayed stay.
    assert_eq!(
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM dead_letters"#)
            .fetch_one(&pool)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM request_counts"#)
            .fetch_one(&pool)
            .await
            .unwrap(),
        8
    );
    // Nothing is left to prune.
    let again = prune(&pool, &retention).await.unwrap();
    assert_eq!(again, Default::default());
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_run_deletes_at_most_its_share_and_leaves_the_rest_to_the_next(pool: PgPool) {
    sqlx::raw_sql(
        "INSERT INTO processed_events (consumer, event_id, processed_at)
           SELECT 'inventory', gen_random_uuid(), now() - interval '20 days'
           FROM generate_series(1, 50)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let retention = Retention {
        batch_size: 10,
        max_batches: 3,
        ..Retention::default()
    };
    assert_eq!(prune(&pool, &retention).await.unwrap().processed_events, 30);
    assert_eq!(prune(&pool, &retention).await.unwrap().processed_events, 20);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_record_redelivered_within_the_retention_is_applied_once(pool: PgPool) {
    sqlx::raw_sql("INSERT INTO stock (product_name, quantity) VALUES ('Laptop', 10)")
        .execute(&pool)
        .await
        .unwrap();
    let order = NewOrder {
        customer_name: CustomerName::parse("Ada").unwrap(),
        customer_email: None,
        product_name: ProductName::parse("Laptop").unwrap(),
        quantity: Quantity::new(3).unwrap(),
        payment_method: None,
    };
    let id = new_id();
    sqlx::query!(
        "INSERT INTO orders (id, customer_name, product_name, quantity, status)
         VALUES ($1, 'Ada', 'Laptop', 3, 'PLACED')",
        id
    )
    .execute(&pool)
    .await
    .unwrap();
    let event = OrderEvent::placed(OrderEventData::from_new_order(id, &order));
    let batch = || {
        kafka_event(
            "arn:aws:kafka:us-east-1:123456789012:cluster/orders/test",
            "127.0.0.1:9092",
            [testkit::msk::record(&event, 0, 1)],
        )
    };
    let publisher = {
        let mut settings = shared::config::KafkaSettings::plaintext(testkit::kafka::bootstrap());
        settings.delivery_timeout = Duration::from_secs(20);
        shared::kafka::KafkaPublisher::new(&settings, &shared::config::Secrets::new())
            .await
            .unwrap()
    };
    let inventory = inventory::consumer(pool.clone(), publisher);
    inventory.handle(batch()).await.unwrap();
    // Seven days later (the topics' retention), the dedup record is still young enough.
    sqlx::query!("UPDATE processed_events SET processed_at = now() - interval '7 days'")
        .execute(&pool)
        .await
        .unwrap();
    prune(&pool, &Retention::default()).await.unwrap();

    let again = inventory.handle(batch()).await.unwrap();

    assert_eq!(again.duplicates, 1);
    assert_eq!(
        sqlx::query_scalar!(r#"SELECT quantity::bigint AS "quantity!" FROM stock"#)
            .fetch_one(&pool)
            .await
            .unwrap(),
        7,
        "the stock was taken once"
    );
}
