//! The stock routes.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use sqlx::PgPool;

use crate::support::{call, get, test_app};

fn put_stock(product: &str, body: &str) -> Request<Body> {
    Request::put(format!("/api/stock/{product}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn stock_levels_can_be_set_read_and_listed(pool: PgPool) {
    let app = test_app(&pool).await;

    let created = call(&app, put_stock("Desk%20Lamp", r#"{"quantity": 12}"#)).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.json()["productName"], "Desk Lamp");
    assert_eq!(created.json()["quantity"], 12);
    let updated = call(&app, put_stock("Desk%20Lamp", r#"{"quantity": 0}"#)).await;
    assert_eq!(updated.json()["quantity"], 0);
    call(&app, put_stock("Laptop", r#"{"quantity": 1000000}"#)).await;

    let lamp = call(&app, get("/api/stock/Desk%20Lamp")).await;
    assert_eq!(lamp.status, StatusCode::OK);
    assert_eq!(lamp.json()["quantity"], 0);
    let all = call(&app, get("/api/stock")).await.json();
    assert_eq!(
        all["items"],
        json!([
            {"productName": "Desk Lamp", "quantity": 0, "updatedAt": all["items"][0]["updatedAt"]},
            {"productName": "Laptop", "quantity": 1000000, "updatedAt": all["items"][1]["updatedAt"]},
        ])
    );
    let level: i32 = sqlx::query_scalar("SELECT quantity FROM stock WHERE product_name = 'Laptop'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(level, 1_000_000);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn stock_levels_outside_zero_to_a_million_are_422_and_change_nothing(pool: PgPool) {
    let app = test_app(&pool).await;
    for body in [
        r#"{"quantity": -1}"#,
        r#"{"quantity": 1000001}"#,
        r#"{"quantity": 2.5}"#,
        r#"{"quantity": "5"}"#,
        r#"{}"#,
    ] {
        let reply = call(&app, put_stock("Laptop", body)).await;
        assert_eq!(reply.invalid_fields(), ["quantity"], "{body}");
    }
    let reply = call(&app, put_stock("%20%20", r#"{"quantity": -1}"#)).await;
    assert_eq!(reply.invalid_fields(), ["productName", "quantity"]);
    call(&app, put_stock("Laptop", "[1]"))
        .await
        .problem(StatusCode::BAD_REQUEST);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM stock")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_unknown_product_has_no_stock_level(pool: PgPool) {
    let app = test_app(&pool).await;
    call(&app, get("/api/stock/Unobtainium"))
        .await
        .problem(StatusCode::NOT_FOUND);
}
