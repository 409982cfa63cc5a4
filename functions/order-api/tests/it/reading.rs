//! Reading orders back: one by id, and pages of them.

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::support::{call, get, order_body, place, test_app};

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_placed_order_reads_back_with_every_field(pool: PgPool) {
    let app = test_app(&pool).await;
    let body = json!({"customerName": "Ada", "customerEmail": "ada@example.com",
                      "productName": "Monitor", "quantity": 2});
    let id = place(&app, &body).await;

    let reply = call(&app, get(&format!("/api/admin/orders/{id}"))).await;

    assert_eq!(reply.status, StatusCode::OK);
    let order = reply.json();
    assert_eq!(order["orderId"], id.to_string());
    assert_eq!(order["customerName"], "Ada");
    assert_eq!(order["customerEmail"], "ada@example.com");
    assert_eq!(order["productName"], "Monitor");
    assert_eq!(order["quantity"], 2);
    assert_eq!(order["status"], "PLACED");
    assert_eq!(order["rejectionReason"], serde_json::Value::Null);
    assert!(order["createdAt"].is_string() && order["updatedAt"].is_string());
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn orders_are_listed_newest_first_page_by_page_without_gaps_or_repeats(pool: PgPool) {
    let app = test_app(&pool).await;
    let mut placed = Vec::new();
    for n in 0..7 {
        placed.push(place(&app, &order_body(&format!("C{n}"), "Laptop", 1)).await);
    }
    // Equal created_at everywhere: the id alone must then order the pages.
    sqlx::query!("UPDATE orders SET created_at = (SELECT min(created_at) FROM orders)")
        .execute(&pool)
        .await
        .unwrap();

    let mut seen: Vec<uuid::Uuid> = Vec::new();
    let mut uri = "/api/admin/orders?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page = call(&app, get(&uri)).await.json();
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["orderId"].as_str().unwrap().parse().unwrap());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => uri = format!("/api/admin/orders?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    placed.sort();
    placed.reverse();
    assert_eq!(
        seen, placed,
        "newest first (UUIDv7 ids tie-break), each once"
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn orders_can_be_filtered_by_email_and_status(pool: PgPool) {
    let app = test_app(&pool).await;
    let mut ada = HashSet::new();
    for product in ["Laptop", "Mouse"] {
        let body = json!({"customerName": "Ada", "customerEmail": "ada@example.com",
                          "productName": product, "quantity": 1});
        ada.insert(place(&app, &body).await);
    }
    let bob = place(&app, &order_body("Bob", "Laptop", 1)).await;
    sqlx::query!("UPDATE orders SET status = 'CONFIRMED' WHERE id = $1", bob)
        .execute(&pool)
        .await
        .unwrap();

    let page = call(&app, get("/api/admin/orders?customerEmail=ada@example.com"))
        .await
        .json();
    let listed: HashSet<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["orderId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed, ada);
    assert_eq!(page["nextCursor"], serde_json::Value::Null);

    let page = call(&app, get("/api/admin/orders?status=CONFIRMED"))
        .await
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["orderId"], bob.to_string());

    let page = call(
        &app,
        get("/api/admin/orders?status=PLACED&customerEmail=nobody@example.com"),
    )
    .await
    .json();
    assert!(page["items"].as_array().unwrap().is_empty());
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_default_page_holds_twenty_orders(pool: PgPool) {
    let app = test_app(&pool).await;
    sqlx::query!(
        "INSERT INTO orders (id, customer_name, product_name, quantity, status)
         SELECT gen_random_uuid(), 'C' || n, 'Laptop', 1, 'PLACED' FROM generate_series(1, 25) n",
    )
    .execute(&pool)
    .await
    .unwrap();
    let page = call(&app, get("/api/admin/orders")).await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 20);
    assert!(page["nextCursor"].is_string());
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn invalid_list_parameters_are_each_listed_in_a_422(pool: PgPool) {
    let app = test_app(&pool).await;
    let reply = call(
        &app,
        get("/api/admin/orders?limit=0&status=SHIPPED&customerEmail=nope&cursor=garbage"),
    )
    .await;
    assert_eq!(
        reply.invalid_fields(),
        ["customerEmail", "status", "limit", "cursor"]
    );
    for limit in ["101", "-1", "ten", "1.5"] {
        let reply = call(&app, get(&format!("/api/admin/orders?limit={limit}"))).await;
        assert_eq!(reply.invalid_fields(), ["limit"], "limit {limit}");
    }
    let reply = call(&app, get("/api/admin/orders?limit=100")).await;
    assert_eq!(reply.status, StatusCode::OK);
}
