//! Placing an order paid by card: the optional `paymentMethod`, checked at the edge, stored
//! with the order, and the payment shown in the order view.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::support::{call, counts, get, order_body, place, post_json, test_app};

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_payment_method_is_stored_with_the_order_and_the_original_body_stores_none(pool: PgPool) {
    let app = test_app(&pool).await;
    let mut paid = order_body("Ada", "Laptop", 1);
    paid["paymentMethod"] = json!("pm_card_visa");
    let paid = place(&app, &paid).await;
    let invoiced = place(&app, &order_body("Ada", "Laptop", 1)).await;

    let stored: Vec<_> = sqlx::query!("SELECT id, payment_method FROM orders ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.id, row.payment_method))
        .collect();
    assert_eq!(
        stored,
        [(paid, Some("pm_card_visa".to_owned())), (invoiced, None)]
    );
    let view = call(&app, get(&format!("/api/admin/orders/{invoiced}")))
        .await
        .json();
    assert_eq!(view["status"], "PLACED");
    assert!(view.get("payment").is_none(), "{view}");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn malformed_payment_methods_are_422_problems_naming_the_field(pool: PgPool) {
    let app = test_app(&pool).await;
    for method in [
        json!("card_visa"),
        json!("pm_"),
        json!("pm_card-visa"),
        json!("pm_card visa"),
        json!(format!("pm_{}", "x".repeat(253))),
        json!(42),
        json!({"id": "pm_card_visa"}),
    ] {
        let mut body = order_body("Ada", "Laptop", 1);
        body["paymentMethod"] = method.clone();
        let reply = call(&app, post_json("/api/orders", body.to_string())).await;
        assert_eq!(reply.invalid_fields(), ["paymentMethod"], "{method}");
    }
    assert_eq!(counts(&pool).await, (0, 0), "nothing is written");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_order_view_shows_the_payment_and_its_decline_code(pool: PgPool) {
    let app = test_app(&pool).await;
    let mut body = order_body("Ada", "Laptop", 2);
    body["paymentMethod"] = json!("pm_card_chargeCustomerFail");
    let id = place(&app, &body).await;
    sqlx::raw_sql(&format!(
        "UPDATE orders SET status = 'REJECTED', rejection_reason = 'PAYMENT_DECLINED',
                amount = 3998, currency = 'usd' WHERE id = '{id}';
         INSERT INTO payments (order_id, amount, currency, payment_method, status, decline_code)
         VALUES ('{id}', 3998, 'usd', 'pm_card_chargeCustomerFail', 'DECLINED', 'card_declined');"
    ))
    .execute(&pool)
    .await
    .unwrap();

    let view = call(&app, get(&format!("/api/admin/orders/{id}")))
        .await
        .json();

    assert_eq!(view["status"], "REJECTED");
    assert_eq!(view["rejectionReason"], "PAYMENT_DECLINED");
    assert_eq!(
        (&view["amount"], &view["currency"]),
        (&json!(3998), &json!("usd"))
    );
    assert_eq!(
        view["payment"],
        json!({"status": "DECLINED", "declineCode": "card_declined"})
    );
    let listed = call(&app, get("/api/admin/orders?status=REJECTED"))
        .await
        .json();
    assert_eq!(listed["items"][0]["payment"]["status"], "DECLINED");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_new_statuses_filter_the_order_list(pool: PgPool) {
    let app = test_app(&pool).await;
    for status in ["RESERVED", "CANCELLED"] {
        let reply = call(&app, get(&format!("/api/admin/orders?status={status}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{status}: {}", reply.text);
    }
    let reply = call(&app, get("/api/admin/orders?status=PAID")).await;
    assert_eq!(reply.invalid_fields(), ["status"]);
}
