//! Redelivery, retries after a partial commit and replays apply every effect once.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use shared::events::topics;
use sqlx::PgPool;
use testkit::msk::BrokerRecord;

use crate::helpers::*;
use testkit::kafka::shared_publisher;

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_same_batch_delivered_twice_takes_stock_once(pool: PgPool) {
    set_stock(&pool, &[("Desk Lamp", 10)]).await;
    let mut orders = Vec::new();
    for quantity in [2, 3, 1] {
        orders.push(place_order(&pool, "Desk Lamp", quantity).await);
    }
    let inventory = inventory(&pool).await;

    let first = inventory.handle(batch(&orders, 0, 30)).await.unwrap();
    let after_first = snapshot(&pool).await;
    let second = inventory.handle(batch(&orders, 0, 30)).await.unwrap();

    assert_eq!(first.confirmed, 3);
    assert_eq!(
        (second.confirmed, second.duplicates, second.published),
        (0, 3, 0)
    );
    assert_eq!(stock(&pool, "Desk Lamp").await, Some(4));
    assert_eq!(snapshot(&pool).await, after_first);
    assert_eq!(sent_decisions(&pool).await.len(), 3, "sent once");
    assert_eq!(count(&pool, "outbox").await, 0);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_retried_batch_overlapping_a_committed_one_applies_only_the_new_records(pool: PgPool) {
    set_stock(&pool, &[("Desk Lamp", 100), ("Bookshelf", 100)]).await;
    let mut orders = Vec::new();
    for n in 0..8 {
        let product = if n % 2 == 0 { "Desk Lamp" } else { "Bookshelf" };
        orders.push(place_order(&pool, product, 1 + n).await);
    }
    let inventory = inventory(&pool).await;

    // Offsets 10..15 were committed; the retried batch starts at 13 and goes on to 17.
    inventory.handle(batch(&orders[..5], 0, 10)).await.unwrap();
    let retry = inventory.handle(batch(&orders[3..], 0, 13)).await.unwrap();

    assert_eq!((retry.duplicates, retry.confirmed), (2, 3));
    let lamps: i32 = (0..8).step_by(2).map(|n| 1 + n).sum();
    let shelves: i32 = (1..8).step_by(2).map(|n| 1 + n).sum();
    assert_eq!(stock(&pool, "Desk Lamp").await, Some(100 - lamps));
    assert_eq!(stock(&pool, "Bookshelf").await, Some(100 - shelves));
    let decided: Vec<_> = sent_decisions(&pool)
        .await
        .into_iter()
        .map(|event| event.data.order_id)
        .collect();
    assert_eq!(decided.len(), 8, "one decision event per order");
    assert_eq!(decided.iter().collect::<HashSet<_>>().len(), 8);
    for order in &orders {
        assert_eq!(order_state(&pool, order.data.order_id).await.0, "CONFIRMED");
    }
}

/// Publishes real `order.placed` events, reads the whole topic back from the beginning as a
/// new consumer group would, and feeds it to the function twice in Lambda-sized batches.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn replaying_the_whole_topic_from_the_beginning_changes_nothing(pool: PgPool) {
    set_stock(&pool, &[("Desk Lamp", 4), ("Bookshelf", 20)]).await;
    let mut ours = Vec::new();
    for n in 0..6 {
        ours.push(place_order(&pool, "Desk Lamp", 1).await);
        ours.push(place_order(&pool, "Bookshelf", n + 1).await);
    }
    let publisher = shared_publisher().await;
    let payloads: Vec<(String, Vec<u8>)> = ours
        .iter()
        .map(|event| (event.key(), serde_json::to_vec(event).unwrap()))
        .collect();
    let results = publisher
        .publish_all(
            payloads
                .iter()
                .map(|(key, payload)| (topics::ORDER_PLACED, key.as_str(), payload.as_slice())),
        )
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let topic = testkit::kafka::read_records(
        &testkit::kafka::bootstrap(),
        topics::ORDER_PLACED,
        |_| true,
        ours.len(),
        Duration::from_secs(60),
    )
    .await;
    let ids: HashSet<String> = ours.iter().map(|event| event.id.to_string()).collect();
    let found = topic
        .iter()
        .filter(|record| {
            record.json()["id"]
                .as_str()
                .is_some_and(|id| ids.contains(id))
        })
        .count();
    assert_eq!(found, ours.len(), "every published event is read back");
    let records: Vec<BrokerRecord> = topic
        .into_iter()
        .map(|record| BrokerRecord {
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: Utc::now(),
            timestamp_type: "CREATE_TIME".to_owned(),
            key: record.key,
            value: record.value,
            headers: record.headers,
        })
        .collect();
    let inventory = inventory(&pool).await;
    let deliver_all = || async {
        let mut confirmed = 0;
        for chunk in records.chunks(1_000) {
            let event = testkit::msk::batch(chunk.to_vec());
            confirmed += inventory.handle(event).await.unwrap().confirmed;
        }
        confirmed
    };

    // The first pass decides our orders (others' records name orders this database lacks).
    assert_eq!(deliver_all().await, 4 + 5);
    let decided = snapshot(&pool).await;
    let replayed = deliver_all().await;

    assert_eq!(replayed, 0);
    assert_eq!(snapshot(&pool).await, decided);
    assert_eq!(stock(&pool, "Desk Lamp").await, Some(0));
    assert_eq!(
        stock(&pool, "Bookshelf").await,
        Some(20 - (1 + 2 + 3 + 4 + 5))
    );
}
