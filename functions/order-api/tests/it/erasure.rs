//! Erasing a customer through the API: what the request must name, a customer erasing
//! themself, and that an erasure is idempotent.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::support::{as_customer, call, order_body, place, post_json, test_app};

fn erase(body: serde_json::Value) -> Request<Body> {
    post_json("/api/admin/customers/erase", body.to_string())
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_erasure_names_exactly_one_of_an_address_and_an_account(pool: PgPool) {
    let app = test_app(&pool).await;
    for body in [
        json!({}),
        json!({"email": "ada@example.com", "sub": "sub-ada"}),
        json!({"email": "not an address"}),
        json!({"sub": ""}),
    ] {
        let reply = call(&app, erase(body.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.text
        );
    }
    // Only operators erase others.
    let reply = call(
        &app,
        as_customer(
            erase(json!({"email": "ada@example.com"})),
            "sub-ada",
            "ada@example.com",
        ),
    )
    .await;
    reply.problem(StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_customer_erases_their_account_and_address_and_no_one_else(pool: PgPool) {
    let app = test_app(&pool).await;
    let own = as_customer(
        post_json("/api/me/orders", order_body("Ada", "Laptop", 1).to_string()),
        "sub-ada",
        "ada@example.com",
    );
    assert_eq!(call(&app, own).await.status, StatusCode::CREATED);
    // A guest order with her address, and someone else's.
    let mut guest = order_body("Ada as a guest", "Laptop", 1);
    guest["customerEmail"] = json!("ADA@example.com");
    place(&app, &guest).await;
    let mut other = order_body("Grace", "Laptop", 1);
    other["customerEmail"] = json!("grace@example.com");
    place(&app, &other).await;

    let delete_me = || {
        as_customer(
            Request::delete("/api/me").body(Body::empty()).unwrap(),
            "sub-ada",
            "ada@example.com",
        )
    };
    let reply = call(&app, delete_me()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["erased"]["orders"], 2);
    let again = call(&app, delete_me()).await.json();
    assert_eq!(again["erased"]["orders"], 0);

    let left: Vec<_> =
        sqlx::query!("SELECT customer_name, customer_email FROM orders ORDER BY customer_name")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.customer_name, row.customer_email))
            .collect();
    assert_eq!(
        left,
        [
            ("Erased customer".to_owned(), None),
            ("Erased customer".to_owned(), None),
            ("Grace".to_owned(), Some("grace@example.com".to_owned())),
        ]
    );
}
