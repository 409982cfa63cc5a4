//! `POST /api/orders/{id}/cancel`: from each cancellable status, the stock held comes back
//! once, a charged payment is marked for its refund, `order.cancelled` is enqueued; final
//! orders get 409, unknown ones 404, and concurrent cancels give one cancellation.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::future::join_all;
use shared::events::{OrderEvent, topics};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{Reply, call, order_body, place, test_app};
use testkit::orders::emitted_events;

fn cancel(id: impl std::fmt::Display) -> Request<Body> {
    Request::post(format!("/api/admin/orders/{id}/cancel"))
        .body(Body::empty())
        .unwrap()
}

async fn stock(pool: &PgPool) -> i32 {
    testkit::orders::stock_level(pool, "Laptop").await.unwrap()
}

/// Places an order for 2 laptops (10 in stock, so 8 once reserved) and puts it in `status`,
/// with the payment row `payment` (`status`, attempts) if given.
async fn order_in(
    pool: &PgPool,
    app: &axum::Router,
    status: &str,
    payment: Option<(&str, i32)>,
) -> Uuid {
    sqlx::query!(
        "INSERT INTO stock (product_name, quantity, unit_amount, currency)
         VALUES ('Laptop', 10, 1000, 'usd') ON CONFLICT (product_name) DO NOTHING",
    )
    .execute(pool)
    .await
    .unwrap();
    let mut body = order_body("Ada", "Laptop", 2);
    if payment.is_some() {
        body["paymentMethod"] = "pm_card_visa".into();
    }
    let id = place(app, &body).await;
    if status != "PLACED" {
        let reason = (status == "REJECTED").then_some("OUT_OF_STOCK");
        sqlx::query!(
            "UPDATE orders SET status = $2, rejection_reason = $3, amount = 2000, currency = 'usd'
             WHERE id = $1",
            id,
            status,
            reason,
        )
        .execute(pool)
        .await
        .unwrap();
    }
    if matches!(status, "RESERVED" | "CONFIRMED") {
        sqlx::query!("UPDATE stock SET quantity = quantity - 2 WHERE product_name = 'Laptop'")
            .execute(pool)
            .await
            .unwrap();
    }
    if let Some((payment_status, attempts)) = payment {
        sqlx::query!(
            "INSERT INTO payments (order_id, amount, currency, payment_method, status, attempts,
                                   payment_intent_id)
             VALUES ($1, 2000, 'usd', 'pm_card_visa', $2, $3,
                     CASE WHEN $2 = 'PENDING' THEN NULL ELSE 'pi_test' END)",
            id,
            payment_status,
            attempts,
        )
        .execute(pool)
        .await
        .unwrap();
    }
    id
}

async fn cancelled_events(pool: &PgPool, id: Uuid) -> Vec<OrderEvent> {
    emitted_events(pool, topics::ORDER_CANCELLED)
        .await
        .into_iter()
        .filter(|event| event.data.order_id == id)
        .collect()
}

async fn payment_status(pool: &PgPool, id: Uuid) -> Option<String> {
    sqlx::query_scalar!("SELECT status FROM payments WHERE order_id = $1", id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_placed_order_is_cancelled_without_touching_stock(pool: PgPool) {
    let app = test_app(&pool).await;
    let id = order_in(&pool, &app, "PLACED", None).await;

    let reply = call(&app, cancel(id)).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["status"], "CANCELLED");
    assert_eq!(stock(&pool).await, 10);
    let events = cancelled_events(&pool, id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data.payment, None);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_reserved_order_gives_its_stock_back_and_a_payment_not_yet_tried_is_voided(pool: PgPool) {
    let app = test_app(&pool).await;
    let id = order_in(&pool, &app, "RESERVED", Some(("PENDING", 0))).await;
    assert_eq!(stock(&pool).await, 8);

    let reply = call(&app, cancel(id)).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(stock(&pool).await, 10);
    assert_eq!(payment_status(&pool, id).await.as_deref(), Some("VOIDED"));
    assert_eq!(reply.json()["payment"]["status"], "VOIDED");
    assert_eq!(cancelled_events(&pool, id).await.len(), 1);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_confirmed_paid_order_gives_its_stock_back_and_is_marked_for_one_refund(pool: PgPool) {
    let app = test_app(&pool).await;
    let id = order_in(&pool, &app, "CONFIRMED", Some(("SUCCEEDED", 1))).await;

    let reply = call(&app, cancel(id)).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(stock(&pool).await, 10);
    assert_eq!(
        payment_status(&pool, id).await.as_deref(),
        Some("REFUNDING")
    );
    let events = cancelled_events(&pool, id).await;
    let refund = events[0].data.payment.clone().expect("the refund's amount");
    assert_eq!(refund.money.to_string(), "20.00 USD");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_confirmed_order_paid_on_invoice_gives_its_stock_back(pool: PgPool) {
    let app = test_app(&pool).await;
    let id = order_in(&pool, &app, "CONFIRMED", None).await;

    assert_eq!(call(&app, cancel(id)).await.status, StatusCode::OK);
    assert_eq!(stock(&pool).await, 10);
    assert_eq!(payment_status(&pool, id).await, None);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn final_orders_are_409_unknown_ones_404_and_malformed_ids_400(pool: PgPool) {
    let app = test_app(&pool).await;
    for status in ["REJECTED", "CANCELLED"] {
        let id = order_in(&pool, &app, status, None).await;
        let reply = call(&app, cancel(id)).await;
        let problem = reply.problem(StatusCode::CONFLICT);
        assert_eq!(problem.problem_type, "urn:problem:order-api:order-final");
        assert!(problem.detail.contains(status), "{problem:?}");
        assert!(cancelled_events(&pool, id).await.is_empty());
    }
    assert_eq!(stock(&pool).await, 10);
    call(&app, cancel(Uuid::now_v7()))
        .await
        .problem(StatusCode::NOT_FOUND);
    call(&app, cancel("not-a-uuid"))
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_cancel_while_the_charge_is_at_stripe_is_a_409_to_retry_and_changes_nothing(
    pool: PgPool,
) {
    let app = test_app(&pool).await;
    let id = order_in(&pool, &app, "RESERVED", Some(("PENDING", 1))).await;

    let reply: Reply = call(&app, cancel(id)).await;

    let problem = reply.problem(StatusCode::CONFLICT);
    assert_eq!(
        problem.problem_type,
        "urn:problem:order-api:payment-in-progress"
    );
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(stock(&pool).await, 8);
    assert_eq!(payment_status(&pool, id).await.as_deref(), Some("PENDING"));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn twenty_concurrent_cancels_of_one_order_give_one_cancellation(pool: PgPool) {
    let app = test_app(&pool).await;
    let id = order_in(&pool, &app, "CONFIRMED", Some(("SUCCEEDED", 1))).await;

    let replies = join_all((0..20).map(|_| call(&app, cancel(id)))).await;

    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [[200].as_slice(), &[409; 19]].concat());
    assert_eq!(stock(&pool).await, 10, "stock given back once");
    assert_eq!(cancelled_events(&pool, id).await.len(), 1);
    assert_eq!(
        payment_status(&pool, id).await.as_deref(),
        Some("REFUNDING")
    );
}
