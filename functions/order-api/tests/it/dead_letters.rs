//! Dead letters: listed newest first, page by page and by consumer; replayed to their topic
//! byte for byte, once, even under concurrent requests or a broker outage.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use order_api::{AppState, app};
use serde_json::Value;
use shared::events::{CLOUDEVENTS_CONTENT_TYPE, CONTENT_TYPE_HEADER, OrderEvent};
use sqlx::PgPool;
use testkit::kafka::ReceivedRecord;
use testkit::msk::{BrokerRecord, kafka_event};
use testkit::tansu::Tansu;

use crate::support::{Reply, call, get, no_limits, test_app};
use testkit::kafka::publisher;

const TOPIC: &str = "order-placed";

/// Stores a dead letter as a consumer would, and returns its id.
async fn dead_letter(
    pool: &PgPool,
    consumer: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> i64 {
    sqlx::query_scalar!(
        r#"INSERT INTO dead_letters (consumer, topic, "partition", "offset", key, value, error)
           VALUES ($1, $2, 0, (SELECT count(*) FROM dead_letters), $3, $4, 'value is not valid JSON')
           RETURNING id"#,
        consumer,
        TOPIC,
        key,
        value,
    )
    .fetch_one(pool)
    .await
    .expect("dead letters can be inserted")
}

/// A value no other test publishes, so that reading it back finds only this test's records.
fn unique_value() -> Vec<u8> {
    format!(
        "{{\"not\": \"an event\", \"id\": \"{}\"}}",
        uuid::Uuid::now_v7()
    )
    .into_bytes()
}

fn replay_request(id: impl std::fmt::Display) -> Request<Body> {
    Request::post(format!("/api/admin/dead-letters/{id}/replay"))
        .body(Body::empty())
        .unwrap()
}

async fn replay(app: &Router, id: i64) -> Reply {
    call(app, replay_request(id)).await
}

async fn replayed_at(pool: &PgPool, id: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar!("SELECT replayed_at FROM dead_letters WHERE id = $1", id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Every record on `bootstrap`'s order-placed topic whose value is `value`, read to the end
/// of each partition so that a duplicate would show.
async fn records_with_value(bootstrap: &str, value: &[u8], expected: usize) -> Vec<ReceivedRecord> {
    testkit::kafka::read_records(
        bootstrap,
        TOPIC,
        |record| record.value.as_deref() == Some(value),
        expected,
        Duration::from_secs(30),
    )
    .await
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn dead_letters_are_listed_newest_first_page_by_page_and_by_consumer(pool: PgPool) {
    let app = test_app(&pool).await;
    let mut inventory = Vec::new();
    for _ in 0..5 {
        inventory.push(dead_letter(&pool, "inventory", Some(b"Laptop"), Some(b"{oops")).await);
    }
    let notification = dead_letter(&pool, "notification", None, Some(&[0xff, 0x00])).await;
    // Equal received_at everywhere: the id alone must then order the pages.
    sqlx::query!(
        "UPDATE dead_letters SET received_at = (SELECT min(received_at) FROM dead_letters)",
    )
    .execute(&pool)
    .await
    .unwrap();

    let mut seen = Vec::new();
    let mut uri = "/api/admin/dead-letters?consumer=inventory&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = call(&app, get(&uri)).await.json();
        pages += 1;
        seen.extend(ids(&page));
        match page["nextCursor"].as_str() {
            Some(cursor) => {
                uri = format!("/api/admin/dead-letters?consumer=inventory&limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    inventory.reverse();
    assert_eq!(seen, inventory, "newest first, each once, only inventory's");

    let all = call(&app, get("/api/admin/dead-letters")).await.json();
    assert_eq!(ids(&all).len(), 6);
    assert_eq!(ids(&all)[0], notification);
    let item = &all["items"][0];
    assert_eq!(item["consumer"], "notification");
    assert_eq!(
        (item["topic"].as_str(), item["partition"].as_i64()),
        (Some(TOPIC), Some(0))
    );
    assert_eq!(item["offset"], 5);
    assert_eq!(item["reason"], "value is not valid JSON");
    assert_eq!(item["key"], Value::Null);
    assert_eq!(item["value"], BASE64.encode([0xff, 0x00]));
    assert!(item["receivedAt"].is_string());
    assert_eq!(item["replayedAt"], Value::Null);
    assert_eq!(all["nextCursor"], Value::Null);
    assert_eq!(all["items"][1]["key"], BASE64.encode("Laptop"));

    let none = call(&app, get("/api/admin/dead-letters?consumer=nobody"))
        .await
        .json();
    assert!(ids(&none).is_empty());

    // Every bad parameter is named.
    let reply = call(
        &app,
        get("/api/admin/dead-letters?consumer=&limit=0&cursor=garbage"),
    )
    .await;
    assert_eq!(reply.invalid_fields(), ["consumer", "limit", "cursor"]);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_replay_publishes_the_exact_bytes_once_and_a_second_replay_is_409(pool: PgPool) {
    let app = test_app(&pool).await;
    let key = [0xfe, 0x00, b'k'];
    let value = unique_value();
    let id = dead_letter(&pool, "inventory", Some(&key), Some(&value)).await;

    let reply = replay(&app, id).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let replayed = reply.json();
    assert_eq!(replayed["id"], id);
    assert_eq!(replayed["value"], BASE64.encode(&value));
    let at = replayed_at(&pool, id)
        .await
        .expect("the replay is recorded");
    assert_eq!(replayed["replayedAt"], serde_json::to_value(at).unwrap());
    let records = records_with_value(&testkit::kafka::bootstrap(), &value, 1).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].topic, TOPIC);
    assert_eq!(records[0].key.as_deref(), Some(&key[..]));
    assert_eq!(
        records[0].header(CONTENT_TYPE_HEADER),
        Some(CLOUDEVENTS_CONTENT_TYPE.as_bytes())
    );

    let again = replay(&app, id).await;
    let problem = again.problem(StatusCode::CONFLICT);
    assert_eq!(
        problem.problem_type,
        "urn:problem:order-api:already-replayed"
    );
    assert_eq!(
        replayed_at(&pool, id).await,
        Some(at),
        "the first replay's time stays"
    );

    replay(&app, id + 1000).await.problem(StatusCode::NOT_FOUND);
    for malformed in ["abc", "0", "-1"] {
        let problem = call(&app, replay_request(malformed))
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert_eq!(problem.errors[0].field, "id", "{malformed}");
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_dead_letter_whose_cause_was_fixed_is_processed_by_the_consumer_after_its_replay(
    pool: PgPool,
) {
    let app = test_app(&pool).await;
    // An order.placed event that an older inventory refused; today's inventory reads it.
    let event = OrderEvent::placed(testkit::orders::order_data("Ada", None, "Laptop", 2));
    sqlx::query!(
        "INSERT INTO orders (id, customer_name, product_name, quantity, status)
         VALUES ($1, 'Ada', 'Laptop', 2, 'PLACED')",
        event.data.order_id,
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query!("INSERT INTO stock (product_name, quantity) VALUES ('Laptop', 5)")
        .execute(&pool)
        .await
        .unwrap();
    let value = serde_json::to_vec(&event).unwrap();
    let id = dead_letter(&pool, "inventory", Some(b"Laptop"), Some(&value)).await;

    assert_eq!(replay(&app, id).await.status, StatusCode::OK);

    // The consumer gets the record as its trigger would deliver it.
    let bootstrap = testkit::kafka::bootstrap();
    let mut records = records_with_value(&bootstrap, &value, 1).await;
    assert_eq!(records.len(), 1);
    let record = records.remove(0);
    let delivered = kafka_event(
        "arn:aws:kafka:local",
        &bootstrap,
        [BrokerRecord {
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: chrono::Utc::now(),
            timestamp_type: "CREATE_TIME".to_owned(),
            key: record.key,
            value: record.value,
            headers: record.headers,
        }],
    );
    let inventory = inventory::consumer(
        pool.clone(),
        publisher(&bootstrap, Duration::from_secs(10)).await,
    );
    let report = inventory.handle(delivered).await.unwrap();
    assert_eq!((report.dead_lettered, report.confirmed), (0, 1));
    let status = sqlx::query_scalar!(
        "SELECT status FROM orders WHERE id = $1",
        event.data.order_id
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "CONFIRMED");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn twenty_concurrent_replays_of_one_dead_letter_publish_it_once(pool: PgPool) {
    let app = test_app(&pool).await;
    let value = unique_value();
    let id = dead_letter(&pool, "notification", None, Some(&value)).await;

    let replies = futures::future::join_all((0..20).map(|_| replay(&app, id))).await;

    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    let once: Vec<u16> = std::iter::once(200)
        .chain(std::iter::repeat_n(409, 19))
        .collect();
    assert_eq!(statuses, once, "{replies:?}");
    let records = records_with_value(&testkit::kafka::bootstrap(), &value, 1).await;
    assert_eq!(records.len(), 1, "published once: {records:?}");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_replay_while_the_broker_is_down_is_503_and_the_dead_letter_stays_replayable(
    pool: PgPool,
) {
    testkit::init_tracing();
    let broker = Tansu::start_behind_proxy().await;
    let app = app(AppState::with_limits(
        pool.clone(),
        publisher(&broker.bootstrap(), Duration::from_secs(1)).await,
        no_limits(),
    ));
    let value = unique_value();
    let id = dead_letter(&pool, "inventory", Some(b"Laptop"), Some(&value)).await;
    broker.disconnect().await;

    let reply = replay(&app, id).await;

    let problem = reply.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        problem.problem_type,
        "urn:problem:order-api:service-unavailable"
    );
    assert_eq!(reply.headers[header::RETRY_AFTER], "2");
    assert_eq!(
        replayed_at(&pool, id).await,
        None,
        "the claim was given back"
    );

    broker.reconnect();
    // The producer may need a few tries to reach the broker again; each failed try releases.
    testkit::eventually(
        "a replay once the broker is back",
        Duration::from_secs(20),
        || async {
            match replay(&app, id).await.status {
                StatusCode::OK => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    assert!(replayed_at(&pool, id).await.is_some());
    let records = records_with_value(&broker.bootstrap(), &value, 1).await;
    assert_eq!(records.len(), 1, "{records:?}");
}
