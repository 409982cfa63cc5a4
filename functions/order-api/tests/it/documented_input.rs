//! The OpenAPI document and the code agree on input: a value the document allows is accepted,
//! a value it rules out is refused. Integers written with a zero fraction (`989.0`) are
//! integers to JSON Schema, so they are to the API too.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::support::{call, get, post_json, test_app};

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_quantity_written_with_a_zero_fraction_is_that_integer(pool: PgPool) {
    let app = test_app(&pool).await;
    for (written, quantity) in [("989.0", 989), ("2.000", 2), ("1e3", 1000), ("1.5e1", 15)] {
        let body =
            format!(r#"{{"customerName": "Ada", "productName": "Laptop", "quantity": {written}}}"#);
        let reply = call(&app, post_json("/api/orders", body)).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{written}: {}",
            reply.text
        );
        let id = reply.json()["orderId"].as_str().unwrap().to_owned();
        let order = call(&app, get(&format!("/api/orders/{id}"))).await.json();
        assert_eq!(order["quantity"], json!(quantity), "{written}");
    }
    for written in ["989.5", "0.0", "10001.0", "1e30"] {
        let body =
            format!(r#"{{"customerName": "Ada", "productName": "Laptop", "quantity": {written}}}"#);
        let reply = call(&app, post_json("/api/orders", body)).await;
        assert_eq!(reply.invalid_fields(), ["quantity"], "{written}");
    }

    let reply = call(
        &app,
        axum::http::Request::put("/api/stock/Laptop")
            .header("content-type", "application/json")
            .body(r#"{"quantity": 50.0}"#.into())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["quantity"], json!(50));
}
