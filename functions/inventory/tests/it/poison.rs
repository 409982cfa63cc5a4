//! Poison records go to `dead_letters` and never hold up the records around them.

use aws_lambda_events::event::kafka::KafkaRecord;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use shared::events::OrderEvent;
use sqlx::PgPool;
use testkit::msk::BrokerRecord;
use uuid::Uuid;

use crate::helpers::*;

/// One row of `dead_letters`.
#[derive(Debug)]
struct DeadLetter {
    consumer: String,
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    error: String,
}

fn lambda_record(record: BrokerRecord) -> KafkaRecord {
    let event = testkit::msk::kafka_event(testkit::msk::ARN, "b", [record]);
    event.records.into_values().next().unwrap().remove(0)
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn poison_records_are_dead_lettered_while_the_valid_ones_around_them_are_processed(
    pool: PgPool,
) {
    set_stock(&pool, &[("Mouse", 100), ("Keyboard", 100)]).await;
    seed_sample_orders(&pool).await;
    // The sample holds a valid record, five poison ones, and another valid one (200..=206);
    // append a 1 MiB value (a truncated message) and a valid record after it.
    let mut event = sample("inventory-poison-records");
    let later = place_order(&pool, "Keyboard", 1).await;
    let huge = {
        let mut value = br#"{"specversion":"1.0","type":"order.placed","data":""#.to_vec();
        value.resize(1024 * 1024, b'x');
        let mut record = testkit::msk::record(&later, 2, 207);
        record.value = Some(value);
        record
    };
    let group = event.records.get_mut("order-placed-2").unwrap();
    group.push(lambda_record(huge));
    group.push(lambda_record(testkit::msk::record(&later, 2, 208)));

    let inventory = inventory(&pool).await;
    let summary = inventory.handle(event.clone()).await.unwrap();

    assert_eq!(summary.records, 9);
    assert_eq!(summary.dead_lettered, 6);
    assert_eq!(summary.confirmed, 3);
    let sample_order = |n: u16| -> Uuid {
        format!("019ab5c0-{n:04x}-7000-8000-00000000{n:04x}")
            .parse()
            .unwrap()
    };
    for id in [sample_order(0x21), sample_order(0x22), later.data.order_id] {
        assert_eq!(order_state(&pool, id).await.0, "CONFIRMED");
    }
    assert_eq!(stock(&pool, "Mouse").await, Some(99));
    assert_eq!(stock(&pool, "Keyboard").await, Some(97));

    let letters: Vec<DeadLetter> = sqlx::query_as!(
        DeadLetter,
        r#"SELECT consumer, topic, "partition", "offset", key, value, error
           FROM dead_letters ORDER BY "offset""#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let offsets: Vec<i64> = letters.iter().map(|l| l.offset).collect();
    assert_eq!(offsets, [201, 202, 203, 204, 205, 207]);
    for letter in &letters {
        assert_eq!(
            (
                letter.consumer.as_str(),
                letter.topic.as_str(),
                letter.partition
            ),
            ("inventory", "order-placed", 2)
        );
        let key: &[u8] = if letter.offset == 207 {
            b"Keyboard"
        } else {
            b"Mouse"
        };
        assert_eq!(
            letter.key.as_deref(),
            Some(key),
            "raw key at {}",
            letter.offset
        );
    }
    let error = |offset: i64| letters.iter().find(|l| l.offset == offset).unwrap();
    assert_eq!(error(201).error, "value is not valid base64");
    assert_eq!(
        error(201).value.as_deref(),
        Some(&b"%%% this is not base64 %%%"[..])
    );
    assert!(
        error(202).error.contains("not valid JSON"),
        "{}",
        error(202).error
    );
    assert_eq!(
        error(202).value.as_deref(),
        Some(&b"order for one mouse, please"[..])
    );
    assert!(
        error(203).error.contains("order.shipped"),
        "{}",
        error(203).error
    );
    assert!(error(204).error.contains("orderId"), "{}", error(204).error);
    assert_eq!(error(205).error, "record has no value");
    assert_eq!(error(205).value, None);
    assert!(
        error(207).error.contains("not valid JSON"),
        "{}",
        error(207).error
    );
    assert_eq!(error(207).value.as_ref().map(Vec::len), Some(1024 * 1024));

    // Redelivered, the batch stores no second dead letter and applies nothing again.
    let before = snapshot(&pool).await;
    let again = inventory.handle(event).await.unwrap();
    assert_eq!((again.duplicates, again.confirmed), (3, 0));
    assert_eq!(snapshot(&pool).await, before);
}

#[test]
fn the_samples_decode_into_the_expected_records() {
    let decoded = shared::msk::decode_batch(&sample("inventory-mixed-batch"));
    assert_eq!((decoded.records.len(), decoded.poison.len()), (6, 0));
    let poison = shared::msk::decode_batch(&sample("inventory-poison-records"));
    assert_eq!((poison.records.len(), poison.poison.len()), (2, 5));
    let single = shared::msk::decode_batch(&sample("inventory-order-placed"));
    let event: &OrderEvent = &single.records[0].event;
    assert_eq!(event.data.product_name, "Laptop");
    // The raw sample keeps Lambda's shape: base64 key, signed header bytes.
    let raw = &sample("inventory-order-placed").records["order-placed-0"][0];
    assert_eq!(
        BASE64.decode(raw.key.as_deref().unwrap()).unwrap(),
        b"Laptop"
    );
    assert!(!raw.headers[0]["content-type"].is_empty());
}
