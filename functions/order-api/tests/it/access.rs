//! Who may see and do what: guests read the one order they placed with its token, customers
//! their own orders, operators everything; an order the caller may not see answers exactly
//! as an unknown one does.

use axum::http::{StatusCode, header};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{
    Reply, SEED_BODY, as_customer, as_guest, call, counts, get, order_body, post_json, test_app,
    test_app_with_limits, with_order_token,
};

const ADA: (&str, &str) = ("sub-ada-0001", "ada@example.com");
const GRACE: (&str, &str) = ("sub-grace-0002", "grace@example.com");

/// Places a guest order and returns its id and token.
async fn place_as_guest(app: &axum::Router, body: &Value) -> (Uuid, String) {
    let reply = call(app, post_json("/api/orders", body.to_string())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let answer = reply.json();
    (
        answer["orderId"].as_str().unwrap().parse().unwrap(),
        answer["orderToken"].as_str().unwrap().to_owned(),
    )
}

/// Reads order `id` as a guest holding `token`, the way a guest reads the order they placed.
async fn read_with_token(app: &axum::Router, id: Uuid, token: &str) -> Reply {
    call(
        app,
        with_order_token(get(&format!("/api/orders/{id}")), token),
    )
    .await
}

/// Places an order as `customer` and returns the reply.
async fn place_as(app: &axum::Router, customer: (&str, &str), body: &Value) -> Reply {
    call(
        app,
        as_customer(
            post_json("/api/me/orders", body.to_string()),
            customer.0,
            customer.1,
        ),
    )
    .await
}

fn customer_get(uri: &str, customer: (&str, &str)) -> axum::http::Request<axum::body::Body> {
    as_customer(get(uri), customer.0, customer.1)
}

/// The `404` an order the caller may not see gets: the same as for an unknown id.
fn assert_hidden(reply: &Reply, id: Uuid) {
    let problem = reply.problem(StatusCode::NOT_FOUND);
    assert_eq!(problem.detail, format!("No order {id} was found"));
    assert_eq!(problem.problem_type, "about:blank");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_seed_request_gets_the_original_answer_under_the_default_limits(pool: PgPool) {
    let app = test_app_with_limits(&pool, order_api::limits::Limits::default()).await;
    let reply = call(&app, post_json("/api/orders", SEED_BODY)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let answer = reply.json();
    assert_eq!(answer["message"], "Order placed successfully!");
    assert_eq!(answer["status"], "PLACED");
    assert_eq!(answer["orderToken"].as_str().unwrap().len(), 43);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_guest_token_reads_its_own_order_and_nothing_else(pool: PgPool) {
    let app = test_app(&pool).await;
    let (first, first_token) = place_as_guest(&app, &order_body("Ada", "Laptop", 1)).await;
    let (second, second_token) = place_as_guest(&app, &order_body("Bob", "Mouse", 2)).await;
    assert_ne!(first_token, second_token);

    let own = read_with_token(&app, first, &first_token).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.json()["customerName"], "Ada");

    // Another order's token, no token, a mangled token and an unknown id: one and the same 404.
    let other = read_with_token(&app, first, &second_token).await;
    assert_hidden(&other, first);
    assert_hidden(
        &call(&app, get(&format!("/api/orders/{first}"))).await,
        first,
    );
    // The token with its last character changed (to one it surely is not).
    let last = if first_token.ends_with('A') { 'B' } else { 'A' };
    let mangled = format!("{}{last}", &first_token[..42]);
    let mangled = read_with_token(&app, first, &mangled).await;
    assert_hidden(&mangled, first);
    let unknown = Uuid::now_v7();
    let unknown_reply = read_with_token(&app, unknown, &first_token).await;
    assert_hidden(&unknown_reply, unknown);
    assert_eq!(
        other.text.replace(&first.to_string(), "ID"),
        unknown_reply.text.replace(&unknown.to_string(), "ID"),
        "a hidden order and an unknown one must answer alike"
    );
    let _ = second;
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_guest_token_is_kept_only_as_its_hash_and_never_in_the_event(pool: PgPool) {
    let app = test_app(&pool).await;
    let (id, token) = place_as_guest(&app, &order_body("Ada", "Laptop", 1)).await;
    let row = sqlx::query!(
        "SELECT o.order_token_hash, x.payload FROM orders o, outbox x WHERE o.id = $1",
        id
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (hash, payload) = (
        row.order_token_hash.expect("a guest order keeps a hash"),
        row.payload,
    );
    use sha2::Digest;
    assert_eq!(hash, sha2::Sha256::digest(token.as_bytes()).to_vec());
    assert!(!payload.to_string().contains(&token), "{payload}");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn orders_placed_before_tokens_existed_are_for_operators_only(pool: PgPool) {
    let app = test_app(&pool).await;
    let (id, token) = place_as_guest(&app, &order_body("Ada", "Laptop", 1)).await;
    sqlx::query!(
        "UPDATE orders SET order_token_hash = NULL WHERE id = $1",
        id
    )
    .execute(&pool)
    .await
    .unwrap();
    let guest = read_with_token(&app, id, &token).await;
    assert_hidden(&guest, id);
    let operator = call(&app, get(&format!("/api/admin/orders/{id}"))).await;
    assert_eq!(operator.status, StatusCode::OK, "{}", operator.text);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_customer_places_lists_reads_and_cancels_only_their_own_orders(pool: PgPool) {
    let app = test_app(&pool).await;
    let mut ids = Vec::new();
    for product in ["Laptop", "Mouse", "Keyboard"] {
        let reply = place_as(&app, ADA, &order_body("Ada Lovelace", product, 1)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let answer = reply.json();
        assert_eq!(answer["message"], "Order placed successfully!");
        assert!(answer.get("orderToken").is_none(), "{answer}");
        let id: Uuid = answer["orderId"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            reply.headers[header::LOCATION].to_str().unwrap(),
            format!("/api/me/orders/{id}")
        );
        ids.push(id);
    }
    let grace = place_as(&app, GRACE, &order_body("Grace", "Laptop", 1))
        .await
        .json();
    let grace_id: Uuid = grace["orderId"].as_str().unwrap().parse().unwrap();
    place_as_guest(&app, &order_body("Guest", "Laptop", 1)).await;

    // Ada's list: her three orders, newest first, two pages of two.
    let first = call(&app, customer_get("/api/me/orders?limit=2", ADA))
        .await
        .json();
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = call(
        &app,
        customer_get(&format!("/api/me/orders?limit=2&cursor={cursor}"), ADA),
    )
    .await
    .json();
    let listed: Vec<Uuid> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|item| item["orderId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed, [ids[2], ids[1], ids[0]]);
    assert!(second["nextCursor"].is_null());

    // Her own order she reads; Grace's she can neither read nor cancel, as if it did not exist.
    let own = call(
        &app,
        customer_get(&format!("/api/me/orders/{}", ids[0]), ADA),
    )
    .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    assert_eq!(own.json()["customerEmail"], ADA.1);
    let foreign = call(
        &app,
        customer_get(&format!("/api/me/orders/{grace_id}"), ADA),
    )
    .await;
    assert_hidden(&foreign, grace_id);
    let cancel_foreign = call(
        &app,
        as_customer(
            post_json(&format!("/api/me/orders/{grace_id}/cancel"), ""),
            ADA.0,
            ADA.1,
        ),
    )
    .await;
    assert_hidden(&cancel_foreign, grace_id);
    let graces = call(&app, get(&format!("/api/admin/orders/{grace_id}")))
        .await
        .json();
    assert_eq!(graces["status"], "PLACED", "Grace's order is untouched");

    // Nor can a guest read a customer's order on the guest route.
    assert_hidden(
        &call(&app, get(&format!("/api/orders/{}", ids[0]))).await,
        ids[0],
    );

    let cancelled = call(
        &app,
        as_customer(
            post_json(&format!("/api/me/orders/{}/cancel", ids[0]), ""),
            ADA.0,
            ADA.1,
        ),
    )
    .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(cancelled.json()["status"], "CANCELLED");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_customer_order_mails_the_accounts_address_and_refuses_another(pool: PgPool) {
    let app = test_app(&pool).await;
    let mut body = order_body("Ada", "Laptop", 1);
    body["customerEmail"] = json!("someone.else@example.com");
    let refused = place_as(&app, ADA, &body).await;
    assert_eq!(refused.invalid_fields(), ["customerEmail"]);
    assert_eq!(counts(&pool).await, (0, 0), "nothing is written");

    // The account's own address, in any capitalisation, or none at all: both go to the account.
    body["customerEmail"] = json!("ADA@example.com");
    assert_eq!(place_as(&app, ADA, &body).await.status, StatusCode::CREATED);
    let plain = place_as(&app, ADA, &order_body("Ada", "Laptop", 1)).await;
    assert_eq!(plain.status, StatusCode::CREATED);
    let stored: Vec<_> = sqlx::query!("SELECT customer_email, customer_sub FROM orders")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.customer_email, row.customer_sub))
        .collect();
    assert_eq!(
        stored,
        vec![(Some(ADA.1.to_owned()), Some(ADA.0.to_owned())); 2]
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_customer_context_without_a_subject_is_unauthorized(pool: PgPool) {
    let app = test_app(&pool).await;
    let mut request = get("/api/me/orders");
    request
        .extensions_mut()
        .insert(testkit::api_gateway::customer_with_claims(
            "127.0.0.1",
            json!({"email": "ada@example.com", "token_use": "id"}),
        ));
    call(&app, request).await.problem(StatusCode::UNAUTHORIZED);
    // A guest (no JWT at all) on a customer route, likewise.
    call(&app, get("/api/me/orders"))
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn operator_routes_refuse_a_request_without_iam(pool: PgPool) {
    let app = test_app(&pool).await;
    for request in [
        as_guest(get("/api/admin/orders"), "127.0.0.1"),
        as_customer(get("/api/admin/dead-letters"), ADA.0, ADA.1),
    ] {
        call(&app, request).await.problem(StatusCode::UNAUTHORIZED);
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_decline_code_is_shown_to_the_owner_and_operators_but_not_to_a_guest(pool: PgPool) {
    let app = test_app(&pool).await;
    let mut body = order_body("Ada", "Laptop", 1);
    body["paymentMethod"] = json!("pm_card_chargeCustomerFail");
    let (guest_order, token) = place_as_guest(&app, &body).await;
    let customer_order: Uuid = place_as(&app, ADA, &body).await.json()["orderId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for id in [guest_order, customer_order] {
        sqlx::query!(
            "INSERT INTO payments (order_id, amount, currency, payment_method, status, decline_code)
             VALUES ($1, 1999, 'usd', 'pm_card_chargeCustomerFail', 'DECLINED', 'card_declined')",
            id
        )
        .execute(&pool)
        .await
        .unwrap();
    }
    let guest = read_with_token(&app, guest_order, &token).await.json();
    assert_eq!(
        guest["payment"],
        json!({"status": "DECLINED", "declineCode": null})
    );
    let owner = call(
        &app,
        customer_get(&format!("/api/me/orders/{customer_order}"), ADA),
    )
    .await
    .json();
    assert_eq!(owner["payment"]["declineCode"], "card_declined");
    let operator = call(&app, get(&format!("/api/admin/orders/{guest_order}")))
        .await
        .json();
    assert_eq!(operator["payment"]["declineCode"], "card_declined");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_guest_order_is_capped_in_quantity_and_a_customer_order_is_not(pool: PgPool) {
    let app = test_app_with_limits(&pool, order_api::limits::Limits::default()).await;
    let reply = call(
        &app,
        post_json("/api/orders", order_body("Ada", "Laptop", 11).to_string()),
    )
    .await;
    assert_eq!(reply.invalid_fields(), ["quantity"]);
    assert!(reply.text.contains("sign in"), "{}", reply.text);
    let ten = call(
        &app,
        post_json("/api/orders", order_body("Ada", "Laptop", 10).to_string()),
    )
    .await;
    assert_eq!(ten.status, StatusCode::CREATED, "{}", ten.text);
    let customer = place_as(&app, ADA, &order_body("Ada", "Laptop", 500)).await;
    assert_eq!(customer.status, StatusCode::CREATED, "{}", customer.text);
}
