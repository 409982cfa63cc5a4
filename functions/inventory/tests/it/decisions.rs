//! What the function decides, and what it tells the other topics.

use std::collections::HashMap;
use std::time::Duration;

use inventory::BatchSummary;
use shared::events::{CLOUDEVENTS_CONTENT_TYPE, CONTENT_TYPE_HEADER, OrderEvent};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::*;
use testkit::kafka::publisher;

/// The levels seed/stock.sql sets for local runs; the samples are written against them.
const SEEDED: [(&str, i32); 5] = [
    ("Laptop", 50),
    ("Monitor", 30),
    ("Keyboard", 100),
    ("Mouse", 100),
    ("Headphones", 5),
];

fn order_id(n: u16) -> Uuid {
    format!("019ab5c0-{n:04x}-7000-8000-00000000{n:04x}")
        .parse()
        .unwrap()
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_mixed_batch_is_decided_and_its_events_reach_their_topics_as_cloudevents(pool: PgPool) {
    set_stock(&pool, &SEEDED).await;
    seed_sample_orders(&pool).await;
    // The sample orders' ids are other tests' too: this test's events go to a broker of its own.
    let broker = testkit::tansu::Tansu::start().await;
    let bootstrap = broker.bootstrap();

    let summary = inventory::consumer(
        pool.clone(),
        publisher(&bootstrap, Duration::from_secs(20)).await,
    )
    .handle(sample("inventory-mixed-batch"))
    .await
    .expect("the batch is handled");

    assert_eq!((summary.records, summary.dead_lettered), (6, 0));
    assert_eq!(
        summary.summary,
        BatchSummary {
            confirmed: 4,
            rejected: 2,
            published: 6,
            ..BatchSummary::default()
        }
    );
    let expected = [
        (0x11, "CONFIRMED", None),
        (0x12, "CONFIRMED", None),
        (0x13, "REJECTED", Some("OUT_OF_STOCK")),
        (0x14, "CONFIRMED", None),
        (0x15, "REJECTED", Some("UNKNOWN_PRODUCT")),
        (0x16, "CONFIRMED", None),
    ];
    for (n, status, reason) in expected {
        assert_eq!(
            order_state(&pool, order_id(n)).await,
            (status.to_owned(), reason.map(str::to_owned)),
            "order {n:#x}"
        );
    }
    assert_eq!(stock(&pool, "Laptop").await, Some(48));
    assert_eq!(stock(&pool, "Headphones").await, Some(1));
    assert_eq!(stock(&pool, "Monitor").await, Some(29));
    assert_eq!(stock(&pool, "Keyboard").await, Some(97));
    assert_eq!(stock(&pool, "Tablet").await, None);
    let unpublished: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM outbox"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unpublished, 0);

    // The decisions as another service sees them: read back from the real topics.
    let sent: HashMap<String, OrderEvent> = sent_decisions_on(&bootstrap, &pool)
        .await
        .into_iter()
        .map(|event| (event.id.to_string(), event))
        .collect();
    assert_eq!(sent.len(), 6, "one decision event per order");
    let ours = |record: &testkit::kafka::ReceivedRecord| {
        record.json()["id"]
            .as_str()
            .is_some_and(|id| sent.contains_key(id))
    };
    let confirmed = testkit::kafka::read_records(
        &bootstrap,
        "order-confirmed",
        ours,
        4,
        Duration::from_secs(30),
    )
    .await;
    let rejected = testkit::kafka::read_records(
        &bootstrap,
        "order-rejected",
        ours,
        2,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(confirmed.len(), 4, "{confirmed:?}");
    assert_eq!(rejected.len(), 2, "{rejected:?}");

    for record in confirmed.iter().chain(&rejected) {
        let json = record.json();
        let event = &sent[json["id"].as_str().unwrap()];
        let order_id = event.data.order_id.to_string();
        assert_eq!(record.key_str(), Some(order_id.as_str()));
        assert_eq!(
            record.header(CONTENT_TYPE_HEADER),
            Some(CLOUDEVENTS_CONTENT_TYPE.as_bytes())
        );
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["source"], "inventory");
        assert_eq!(json["subject"], order_id.as_str());
        assert_eq!(json["datacontenttype"], "application/json");
        assert!(
            chrono::DateTime::parse_from_rfc3339(json["time"].as_str().unwrap()).is_ok(),
            "time is RFC 3339: {json}"
        );
        let id: Uuid = json["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(id.get_version_num(), 7, "event ids are UUIDv7");
        let data = &json["data"];
        assert_eq!(data["orderId"], order_id.as_str());
        for field in ["customerName", "productName", "quantity"] {
            assert!(!data[field].is_null(), "data.{field} is set: {json}");
        }
        assert!(data.get("customerEmail").is_some(), "customerEmail or null");
        assert_eq!(
            OrderEvent::decode(&record.topic, record.value.as_deref().unwrap()).as_ref(),
            Ok(event)
        );
    }
    for record in &confirmed {
        let json = record.json();
        assert_eq!(json["type"], "order.confirmed");
        assert!(json["data"].get("reason").is_none());
    }
    let reasons: HashMap<String, String> = rejected
        .iter()
        .map(|record| {
            let json = record.json();
            assert_eq!(json["type"], "order.rejected");
            (
                json["data"]["orderId"].as_str().unwrap().to_owned(),
                json["data"]["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        HashMap::from([
            (order_id(0x13).to_string(), "OUT_OF_STOCK".to_owned()),
            (order_id(0x15).to_string(), "UNKNOWN_PRODUCT".to_owned()),
        ])
    );
    // The published data comes from the stored order.
    let edsger = rejected
        .iter()
        .map(|record| record.json())
        .find(|json| json["subject"] == order_id(0x13).to_string().as_str())
        .unwrap();
    assert_eq!(edsger["data"]["customerName"], "Edsger Dijkstra");
    assert_eq!(edsger["data"]["customerEmail"], "edsger@example.com");
    assert_eq!(edsger["data"]["productName"], "Headphones");
    assert_eq!(edsger["data"]["quantity"], 3);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_single_order_sample_confirms_one_laptop(pool: PgPool) {
    set_stock(&pool, &SEEDED).await;
    seed_sample_orders(&pool).await;

    let summary = inventory(&pool)
        .await
        .handle(sample("inventory-order-placed"))
        .await
        .unwrap();

    assert_eq!((summary.records, summary.confirmed), (1, 1));
    assert_eq!(order_state(&pool, order_id(0x01)).await.0, "CONFIRMED");
    assert_eq!(stock(&pool, "Laptop").await, Some(49));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_large_order_is_rejected_while_a_smaller_one_after_it_is_confirmed(pool: PgPool) {
    set_stock(&pool, &[("Desk Lamp", 3)]).await;
    let five = place_order(&pool, "Desk Lamp", 5).await;
    let two = place_order(&pool, "Desk Lamp", 2).await;

    let summary = inventory(&pool)
        .await
        .handle(batch(&[five.clone(), two.clone()], 1, 700))
        .await
        .unwrap();

    assert_eq!((summary.confirmed, summary.rejected), (1, 1));
    assert_eq!(
        order_state(&pool, five.data.order_id).await,
        ("REJECTED".to_owned(), Some("OUT_OF_STOCK".to_owned()))
    );
    assert_eq!(
        order_state(&pool, two.data.order_id).await,
        ("CONFIRMED".to_owned(), None)
    );
    assert_eq!(stock(&pool, "Desk Lamp").await, Some(1));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn events_for_missing_or_already_decided_orders_are_recorded_and_change_nothing(
    pool: PgPool,
) {
    set_stock(&pool, &[("Desk Lamp", 10)]).await;
    let decided = place_order(&pool, "Desk Lamp", 1).await;
    sqlx::query!(
        "UPDATE orders SET status = 'CONFIRMED' WHERE id = $1",
        decided.data.order_id
    )
    .execute(&pool)
    .await
    .unwrap();
    let missing = OrderEvent::placed(decided.data.clone());
    let missing = OrderEvent {
        data: shared::events::OrderEventData {
            order_id: shared::domain::new_id(),
            ..missing.data
        },
        ..missing
    };
    let before = snapshot(&pool).await;

    let summary = inventory(&pool)
        .await
        .handle(batch(&[decided.clone(), missing.clone()], 0, 5))
        .await
        .unwrap();

    assert_eq!(
        (summary.skipped, summary.confirmed, summary.rejected),
        (2, 0, 0)
    );
    assert_eq!(
        order_state(&pool, decided.data.order_id).await,
        ("CONFIRMED".to_owned(), None)
    );
    assert_eq!(stock(&pool, "Desk Lamp").await, Some(10));
    assert_eq!(count(&pool, "outbox").await, 0);
    assert_eq!(count(&pool, "orders").await, 1, "no order is created");
    let processed: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT event_id FROM processed_events WHERE consumer = 'inventory' ORDER BY event_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut expected = vec![decided.id, missing.id];
    expected.sort();
    assert_eq!(processed, expected);
    assert_eq!(
        before.stock_and_orders(),
        snapshot(&pool).await.stock_and_orders()
    );
}

/// `(amount, currency)` of an order.
async fn order_amount(pool: &PgPool, id: Uuid) -> (Option<i64>, Option<String>) {
    let order = sqlx::query!("SELECT amount, currency FROM orders WHERE id = $1", id)
        .fetch_one(pool)
        .await
        .expect("orders can be read");
    (order.amount, order.currency)
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_reserved_order_keeps_the_amount_of_the_price_at_reservation(pool: PgPool) {
    set_stock(&pool, &[("Desk Lamp", 10), ("Bookshelf", 10)]).await;
    sqlx::query!(
        "UPDATE stock SET unit_amount = 2599, currency = 'eur' WHERE product_name = 'Desk Lamp'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let lamps = place_order(&pool, "Desk Lamp", 3).await;
    let too_many = place_order(&pool, "Desk Lamp", 11).await;
    let unpriced = place_order(&pool, "Bookshelf", 1).await;

    inventory(&pool)
        .await
        .handle(batch(
            &[lamps.clone(), too_many.clone(), unpriced.clone()],
            0,
            0,
        ))
        .await
        .unwrap();
    // A later price change does not reach an order already reserved.
    sqlx::query!("UPDATE stock SET unit_amount = 1 WHERE product_name = 'Desk Lamp'")
        .execute(&pool)
        .await
        .unwrap();

    assert_eq!(
        order_amount(&pool, lamps.data.order_id).await,
        (Some(3 * 2599), Some("eur".to_owned()))
    );
    assert_eq!(
        order_amount(&pool, too_many.data.order_id).await,
        (None, None)
    );
    assert_eq!(
        order_amount(&pool, unpriced.data.order_id).await,
        (None, None)
    );
    assert_eq!(
        order_state(&pool, unpriced.data.order_id).await,
        ("CONFIRMED".to_owned(), None)
    );
}
