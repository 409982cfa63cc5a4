//! Bad input: each case gets the right status and a problem document, and writes nothing.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use sqlx::PgPool;

use crate::support::{Reply, call, counts, get, post_json, test_app};

/// Sends `request` and asserts that nothing was written.
async fn refused(pool: &PgPool, request: Request<Body>) -> Reply {
    let app = test_app(pool).await;
    let reply = call(&app, request).await;
    assert_eq!(counts(pool).await, (0, 0), "nothing is written");
    reply
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn malformed_json_is_a_400_problem(pool: PgPool) {
    for body in [
        r#"{"customerName": "Ada", "#,
        "not json",
        "",
        r#"{"quantity": 1,}"#,
    ] {
        let reply = refused(&pool, post_json("/api/orders", body)).await;
        reply.problem(StatusCode::BAD_REQUEST);
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_body_that_is_not_an_object_is_a_400_problem(pool: PgPool) {
    for body in ["[]", "42", r#""order""#, "null", "true"] {
        let reply = refused(&pool, post_json("/api/orders", body)).await;
        let problem = reply.problem(StatusCode::BAD_REQUEST);
        assert!(problem.detail.contains("object"), "{body}: {problem:?}");
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn missing_fields_are_each_listed_in_a_422(pool: PgPool) {
    let reply = refused(&pool, post_json("/api/orders", "{}")).await;
    assert_eq!(
        reply.invalid_fields(),
        ["customerName", "productName", "quantity"]
    );
    let reply = refused(
        &pool,
        post_json(
            "/api/orders",
            json!({"customerName": "Ada", "quantity": 1}).to_string(),
        ),
    )
    .await;
    assert_eq!(reply.invalid_fields(), ["productName"]);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn empty_and_blank_names_are_422(pool: PgPool) {
    let body = json!({"customerName": "", "productName": "   ", "quantity": 1});
    let reply = refused(&pool, post_json("/api/orders", body.to_string())).await;
    let problem = reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["customerName", "productName"]);
    assert!(problem.errors[0].message.contains("empty"));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn quantities_outside_one_to_ten_thousand_fractions_and_strings_are_422(pool: PgPool) {
    for quantity in [
        json!(0),
        json!(-1),
        json!(10001),
        json!(1.5),
        json!("1"),
        json!(1e30),
    ] {
        let body = json!({"customerName": "Ada", "productName": "Laptop", "quantity": quantity});
        let reply = refused(&pool, post_json("/api/orders", body.to_string())).await;
        assert_eq!(reply.invalid_fields(), ["quantity"], "quantity {quantity}");
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_300_character_name_and_an_invalid_email_are_422(pool: PgPool) {
    let long = "x".repeat(300);
    let body = json!({"customerName": long, "productName": "Laptop", "quantity": 1});
    let reply = refused(&pool, post_json("/api/orders", body.to_string())).await;
    assert_eq!(reply.invalid_fields(), ["customerName"]);

    let body = json!({"customerName": "Ada", "productName": long, "quantity": 1});
    let reply = refused(&pool, post_json("/api/orders", body.to_string())).await;
    assert_eq!(reply.invalid_fields(), ["productName"]);

    for email in [
        json!("not-an-email"),
        json!("ada@example"),
        json!(""),
        json!(42),
    ] {
        let body = json!({"customerName": "Ada", "productName": "Laptop", "quantity": 1,
                          "customerEmail": email});
        let reply = refused(&pool, post_json("/api/orders", body.to_string())).await;
        assert_eq!(reply.invalid_fields(), ["customerEmail"], "email {email}");
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn every_bad_field_is_listed_at_once(pool: PgPool) {
    let body =
        json!({"customerName": 7, "customerEmail": "nope", "productName": "", "quantity": 0});
    let reply = refused(&pool, post_json("/api/orders", body.to_string())).await;
    let problem = reply.problem(StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["customerName", "customerEmail", "productName", "quantity"]
    );
    assert_eq!(
        problem.problem_type,
        "urn:problem:order-api:validation-failed"
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_wrong_content_type_is_415(pool: PgPool) {
    let body = r#"{"customerName": "Ada", "productName": "Laptop", "quantity": 1}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = Request::post("/api/orders");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let reply = refused(&pool, request.body(Body::from(body)).unwrap()).await;
        reply.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_100_kib_body_is_413_with_or_without_a_content_length(pool: PgPool) {
    let name = "x".repeat(100 * 1024);
    let body = json!({"customerName": name, "productName": "Laptop", "quantity": 1}).to_string();
    let with_length = Request::post("/api/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body.clone()))
        .unwrap();
    refused(&pool, with_length)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    // Streamed without a length: the limit applies while reading.
    let chunks = futures::stream::iter(
        body.into_bytes()
            .chunks(8192)
            .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
            .collect::<Vec<_>>(),
    );
    let streamed = Request::post("/api/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(chunks))
        .unwrap();
    refused(&pool, streamed)
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_unknown_route_is_a_404_problem(pool: PgPool) {
    for path in [
        "/",
        "/api/order",
        "/api/orders/1/items",
        "/api/nothing-here",
    ] {
        refused(&pool, get(path))
            .await
            .problem(StatusCode::NOT_FOUND);
    }
    refused(&pool, post_json("/api/unknown", "{}"))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_wrong_method_is_a_405_problem_naming_the_allowed_ones(pool: PgPool) {
    for (method, path) in [
        ("DELETE", "/api/orders"),
        ("PUT", "/api/orders"),
        ("POST", "/api/orders/0195a4d2-0000-7000-8000-000000000000"),
        ("POST", "/api/health"),
        ("DELETE", "/api/stock/Laptop"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let reply = refused(&pool, request).await;
        reply.problem(StatusCode::METHOD_NOT_ALLOWED);
        assert!(
            reply.headers.contains_key(header::ALLOW),
            "{method} {path}: {:?}",
            reply.headers
        );
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_malformed_order_id_is_400_and_an_unknown_one_404(pool: PgPool) {
    for id in [
        "42",
        "not-a-uuid",
        "0195a4d2-0000-7000-8000",
        "%27%3B%20DROP%20TABLE",
    ] {
        let problem = refused(&pool, get(&format!("/api/orders/{id}")))
            .await
            .problem(StatusCode::BAD_REQUEST);
        assert_eq!(problem.errors[0].field, "id");
    }
    let unknown = shared::domain::new_id();
    refused(&pool, get(&format!("/api/orders/{unknown}")))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn problems_never_show_sql_or_internal_details(pool: PgPool) {
    // A broken invariant inside the database becomes a bare 500.
    sqlx::query("ALTER TABLE orders RENAME TO orders_gone")
        .execute(&pool)
        .await
        .unwrap();
    let app = test_app(&pool).await;
    let body = json!({"customerName": "Ada", "productName": "Laptop", "quantity": 1});
    let reply = call(&app, post_json("/api/orders", body.to_string())).await;
    let problem = reply.problem(StatusCode::INTERNAL_SERVER_ERROR);
    for leak in ["orders", "relation", "sqlx", "INSERT", "5432", "127.0.0.1"] {
        assert!(!reply.text.contains(leak), "{leak} leaked: {problem:?}");
    }
}
