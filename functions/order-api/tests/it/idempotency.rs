//! `Idempotency-Key`: a retried POST returns the first order and creates nothing.

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::support::{call, counts, order_body, post_order_with_key, test_app};

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_same_key_and_body_twice_gives_one_order_and_the_same_id(pool: PgPool) {
    let app = test_app(&pool).await;
    let body = order_body("Ada", "Laptop", 2);

    let first = call(&app, post_order_with_key(&body, "retry-me-1")).await;
    let second = call(&app, post_order_with_key(&body, "retry-me-1")).await;

    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.json()["orderId"], second.json()["orderId"]);
    assert_eq!(first.headers["location"], second.headers["location"]);
    assert_eq!(second.json()["message"], "Order placed successfully!");
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(counts(&pool).await, (1, 1), "one order, one event");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_equivalent_body_counts_as_the_same_request(pool: PgPool) {
    let app = test_app(&pool).await;
    let first = call(
        &app,
        post_order_with_key(&order_body("Ada", "Laptop", 2), "k"),
    )
    .await;
    // Same values after trimming, other field order, an unknown field.
    let same = json!({"quantity": 2, "productName": " Laptop", "customerName": "Ada ", "note": 1});
    let second = call(&app, post_order_with_key(&same, "k")).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.json()["orderId"], second.json()["orderId"]);
    // The same quantity written as 2.0.
    let same = json!({"customerName": "Ada", "productName": "Laptop", "quantity": 2.0});
    let third = call(&app, post_order_with_key(&same, "k")).await;
    assert_eq!(third.status, StatusCode::CREATED, "{}", third.text);
    assert_eq!(first.json()["orderId"], third.json()["orderId"]);
    assert_eq!(counts(&pool).await, (1, 1));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_same_key_with_another_body_is_422_and_writes_nothing(pool: PgPool) {
    let app = test_app(&pool).await;
    let first = call(
        &app,
        post_order_with_key(&order_body("Ada", "Laptop", 2), "k-2"),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);

    let other = call(
        &app,
        post_order_with_key(&order_body("Ada", "Laptop", 3), "k-2"),
    )
    .await;

    let problem = other.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem.problem_type,
        "urn:problem:order-api:idempotency-key-reused"
    );
    assert_eq!(problem.errors[0].field, "Idempotency-Key");
    assert_eq!(counts(&pool).await, (1, 1));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_empty_or_overlong_key_is_422_alongside_the_other_bad_fields(pool: PgPool) {
    let app = test_app(&pool).await;
    let reply = call(
        &app,
        post_order_with_key(&order_body("Ada", "Laptop", 1), ""),
    )
    .await;
    assert_eq!(reply.invalid_fields(), ["Idempotency-Key"]);
    let long = "k".repeat(256);
    let reply = call(
        &app,
        post_order_with_key(&order_body("", "Laptop", 0), &long),
    )
    .await;
    assert_eq!(
        reply.invalid_fields(),
        ["customerName", "quantity", "Idempotency-Key"]
    );
    assert_eq!(counts(&pool).await, (0, 0));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn twenty_concurrent_requests_sharing_a_key_create_exactly_one_order(pool: PgPool) {
    let app = test_app(&pool).await;
    let body = order_body("Ada", "Laptop", 1);

    let replies = futures::future::join_all(
        (0..20).map(|_| call(&app, post_order_with_key(&body, "one-key-for-twenty"))),
    )
    .await;

    let ids: HashSet<String> = replies
        .iter()
        .map(|reply| {
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
            reply.json()["orderId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every request got the same order");
    assert_eq!(counts(&pool).await, (1, 1));
}
