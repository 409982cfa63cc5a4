//! The OpenAPI document: generated from the code, served, and committed without drift.
//! Regenerate the committed copy with `UPDATE_OPENAPI=1 cargo test -p order-api openapi`.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use sqlx::PgPool;

use crate::support::{call, get, test_app};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json")
}

#[test]
fn the_committed_openapi_json_matches_the_code() {
    let generated = order_api::openapi_json();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("openapi.json can be written");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from the code's document; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p order-api openapi` and commit it",
        path.display()
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_openapi_document_is_served_as_openapi_3_1_with_every_route(pool: PgPool) {
    let app = test_app(&pool).await;
    let reply = call(&app, get("/api/openapi.json")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text, order_api::openapi_json());
    let document = reply.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = document["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/orders", "post"),
        ("/api/orders/{id}", "get"),
        ("/api/stock", "get"),
        ("/api/stock/{productName}", "get"),
        ("/api/me/orders", "post"),
        ("/api/me/orders", "get"),
        ("/api/me/orders/{id}", "get"),
        ("/api/me/orders/{id}/cancel", "post"),
        ("/api/admin/orders", "get"),
        ("/api/admin/orders/{id}", "get"),
        ("/api/admin/orders/{id}/cancel", "post"),
        ("/api/admin/stock/{productName}", "put"),
        ("/api/admin/dead-letters", "get"),
        ("/api/admin/dead-letters/{id}/replay", "post"),
        ("/api/health", "get"),
        ("/api/openapi.json", "get"),
    ] {
        assert!(paths[path].get(method).is_some(), "{method} {path}");
    }
}

/// The router the API serves lists its routes apart from the documented ones (building the
/// document took a third of a cold start's init), so every documented operation is requested
/// here: none may fall through to the 404 for unknown paths, or get a 405.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_served_router_routes_every_documented_operation(pool: PgPool) {
    let app = test_app(&pool).await;
    let unrouted = problem_detail_of_unknown_paths(&app).await;
    let document = serde_json::to_value(order_api::openapi()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    let mut requested = 0;
    for (template, operations) in paths {
        // Path parameters get values of the right shape; the operation itself may then fail
        // (an unknown order is a 404 of its own), as long as it was routed.
        let uri = template
            .replace("{id}", "0190f0b8-5a1e-7cc2-9a1e-000000000000")
            .replace("{productName}", "Laptop");
        for method in operations.as_object().unwrap().keys() {
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let reply = call(&app, request).await;
            assert_ne!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {template} is documented but not routed: {}",
                reply.text
            );
            if reply.status == StatusCode::NOT_FOUND {
                let problem = reply.problem(StatusCode::NOT_FOUND);
                assert_ne!(
                    problem.detail, unrouted,
                    "{method} {template} is documented but not routed"
                );
            }
            requested += 1;
        }
    }
    assert!(requested >= 11, "only {requested} operations documented");
}

/// What the router answers for a path it does not route.
async fn problem_detail_of_unknown_paths(app: &axum::Router) -> String {
    call(app, get("/api/no-such-route"))
        .await
        .problem(StatusCode::NOT_FOUND)
        .detail
}

#[test]
fn the_document_says_a_reused_idempotency_key_is_422_and_why() {
    let document = serde_json::to_value(order_api::openapi()).unwrap();
    let post = &document["paths"]["/api/orders"]["post"];
    let unprocessable = post["responses"]["422"]["description"].as_str().unwrap();
    assert!(
        unprocessable.contains("urn:problem:order-api:idempotency-key-reused"),
        "{unprocessable}"
    );
    assert!(
        unprocessable.contains("urn:problem:order-api:validation-failed"),
        "{unprocessable}"
    );
    let key = &post["parameters"][0];
    assert_eq!(key["name"], "Idempotency-Key");
    assert!(key["description"].as_str().unwrap().contains("422"));
}
