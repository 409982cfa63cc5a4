//! Placing orders: the response, the row, and the event on `order-placed`.

use std::collections::HashSet;
use std::time::Duration;

use axum::http::StatusCode;
use order_api::AppState;
use shared::events::{CLOUDEVENTS_CONTENT_TYPE, CONTENT_TYPE_HEADER, OrderEvent, topics};
use shared::trace::{TRACEPARENT, TraceContext};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{
    SEED_BODY, TestApp, call, get, no_limits, order_body, placed_records, post_json, spawn_app,
    test_app,
};
use testkit::kafka::publisher;

/// The app served on a port, over `pool` and the broker at `bootstrap`, without abuse
/// limits; its state too, to flush the outbox with.
async fn served_on_the_shared_broker(pool: &PgPool, bootstrap: &str) -> (AppState, TestApp) {
    let state = AppState::with_limits(
        pool.clone(),
        publisher(bootstrap, Duration::from_secs(10)).await,
        no_limits(),
    );
    let api = spawn_app(state.clone()).await;
    (state, api)
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_seed_request_places_an_order_and_publishes_one_cloudevent(pool: PgPool) {
    let bootstrap = testkit::kafka::bootstrap();
    let (state, api) = served_on_the_shared_broker(&pool, &bootstrap).await;

    let response = api.post_order(SEED_BODY).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Order placed successfully!");
    assert_eq!(body["status"], "PLACED");
    let id: Uuid = body["orderId"].as_str().unwrap().parse().unwrap();
    assert_eq!(location, format!("/api/orders/{id}"));

    let row = sqlx::query!(
        "SELECT customer_name, product_name, quantity, status FROM orders WHERE id = $1",
        id
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (
            row.customer_name.as_str(),
            row.product_name.as_str(),
            row.quantity,
            row.status.as_str()
        ),
        ("Jane Doe", "Laptop", 1, "PLACED")
    );
    // The guest reads it back with the token the answer gave, and only with it.
    let token = body["orderToken"].as_str().unwrap();
    let read_back = api
        .client
        .get(format!("{}{location}", api.address))
        .header("Order-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(read_back.status(), StatusCode::OK);
    assert_eq!(api.get(&location).await.status(), StatusCode::NOT_FOUND);

    let records = placed_records(&bootstrap, &HashSet::from([id]), Duration::from_secs(30)).await;
    assert_eq!(records.len(), 1, "exactly one event for the order");
    let record = &records[0];
    assert_eq!(record.key_str(), Some("Laptop"));
    assert_eq!(
        record.header(CONTENT_TYPE_HEADER),
        Some(CLOUDEVENTS_CONTENT_TYPE.as_bytes())
    );
    let event = OrderEvent::decode(topics::ORDER_PLACED, record.value.as_deref().unwrap())
        .expect("a valid CloudEvents record");
    assert_eq!(event.source, "order-api");
    assert_eq!(event.subject, id.to_string());
    assert_eq!(event.data.order_id, id);
    assert_eq!(event.data.customer_name, "Jane Doe");
    assert_eq!(event.data.customer_email, None);
    assert_eq!(event.data.product_name, "Laptop");
    assert_eq!(event.data.quantity.get(), 1);
    state.outbox().flush().await;
    let left = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM outbox WHERE payload->>'subject' = $1"#,
        id.to_string()
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "the published outbox row is deleted");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn sql_metacharacters_and_unicode_are_stored_and_returned_unchanged(pool: PgPool) {
    let app = test_app(&pool).await;
    let customer = "Robert'); DROP TABLE orders;-- \"Bobby\" \\ Ünïcødé 東京 🚀";
    let product = "Laptop' OR '1'='1 -- %_ ñ 💻";
    let body = serde_json::json!({
        "customerName": customer,
        "productName": product,
        "quantity": 2,
        "customerEmail": "o'brien+orders@example.com"
    });

    let reply = call(&app, post_json("/api/orders", body.to_string())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.json()["orderId"].as_str().unwrap().to_owned();

    let stored = sqlx::query!(
        "SELECT customer_name, product_name FROM orders WHERE id = $1",
        id.parse::<Uuid>().unwrap()
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored.customer_name, customer);
    assert_eq!(stored.product_name, product);
    let order = call(&app, get(&format!("/api/admin/orders/{id}")))
        .await
        .json();
    assert_eq!(order["customerName"], customer);
    assert_eq!(order["productName"], product);
    assert_eq!(order["customerEmail"], "o'brien+orders@example.com");
    let listed = call(
        &app,
        get("/api/admin/orders?customerEmail=o%27brien%2Borders%40example.com"),
    )
    .await
    .json();
    assert_eq!(listed["items"][0]["customerName"], customer);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn names_are_trimmed_and_unknown_fields_ignored(pool: PgPool) {
    let app = test_app(&pool).await;
    let body = r#"{"customerName": "  Ada  ", "productName": " Mouse ", "quantity": 3,
                   "giftWrap": true, "customerEmail": null}"#;
    let reply = call(&app, post_json("/api/orders", body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.json()["orderId"].as_str().unwrap().to_owned();
    let order = call(&app, get(&format!("/api/admin/orders/{id}")))
        .await
        .json();
    assert_eq!(order["customerName"], "Ada");
    assert_eq!(order["productName"], "Mouse");
    assert_eq!(order["customerEmail"], serde_json::Value::Null);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_hundred_concurrent_posts_create_a_hundred_orders_and_as_many_distinct_events(
    pool: PgPool,
) {
    let bootstrap = testkit::kafka::bootstrap();
    let (state, api) = served_on_the_shared_broker(&pool, &bootstrap).await;

    let responses = futures::future::join_all((0..100).map(|n| {
        let body = order_body(&format!("Customer {n}"), &format!("Product {}", n % 5), 1);
        let api = &api;
        async move { api.post_order(&body.to_string()).await }
    }))
    .await;

    let mut ids = HashSet::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: serde_json::Value = response.json().await.unwrap();
        ids.insert(body["orderId"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    assert_eq!(ids.len(), 100);
    let orders = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM orders"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orders, 100);
    state.outbox().flush().await;
    let unpublished = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM outbox"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unpublished, 0, "every event was published and marked");

    let records = placed_records(&bootstrap, &ids, Duration::from_secs(60)).await;
    let event_ids: HashSet<String> = records
        .iter()
        .map(|record| record.json()["id"].as_str().unwrap().to_owned())
        .collect();
    let subjects: HashSet<String> = records
        .iter()
        .map(|record| record.json()["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(records.len(), 100, "one record per order, no duplicates");
    assert_eq!(event_ids.len(), 100);
    assert_eq!(subjects.len(), 100);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_order_continues_the_callers_trace_or_starts_one_when_it_has_none_or_a_malformed_one(
    pool: PgPool,
) {
    let app = test_app(&pool).await;
    let given: TraceContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    let mut traces = Vec::new();
    for header in [Some(given.to_string()), Some("00-garbage".to_owned()), None] {
        let mut request = post_json("/api/orders", SEED_BODY);
        if let Some(value) = header {
            request
                .headers_mut()
                .insert(TRACEPARENT, value.parse().unwrap());
        }
        let reply = call(&app, request).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let id: Uuid = reply.json()["orderId"].as_str().unwrap().parse().unwrap();
        // The record as a consumer gets it (the outbox forgets it once sent).
        let records = placed_records(
            &testkit::kafka::bootstrap(),
            &HashSet::from([id]),
            Duration::from_secs(30),
        )
        .await;
        let record = records.first().expect("the order's event is on the broker");
        let header = record
            .header(TRACEPARENT)
            .map(|value| String::from_utf8(value.to_vec()).unwrap());
        let attribute = record.json()["traceparent"].as_str().map(str::to_owned);
        assert_eq!(
            header, attribute,
            "the record's header and the event's attribute"
        );
        traces.push(header.unwrap().parse::<TraceContext>().unwrap());
    }

    assert_eq!(traces[0].trace_id(), given.trace_id(), "the caller's trace");
    assert_ne!(
        traces[0].span_id(),
        given.span_id(),
        "the request's own span"
    );
    for started in &traces[1..] {
        assert_ne!(started.trace_id(), given.trace_id());
        assert!(started.is_sampled());
    }
    assert_ne!(traces[1].trace_id(), traces[2].trace_id());
}
