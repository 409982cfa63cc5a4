//! The OpenAPI document: generated from the code, served, and committed without drift.
//! Regenerate the committed copy with `UPDATE_OPENAPI=1 cargo test -p order-api openapi`.

use std::path::PathBuf;

use axum::http::StatusCode;
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
        ("/api/orders", "get"),
        ("/api/orders/{id}", "get"),
        ("/api/stock", "get"),
        ("/api/stock/{productName}", "get"),
        ("/api/stock/{productName}", "put"),
        ("/api/dead-letters", "get"),
        ("/api/dead-letters/{id}/replay", "post"),
        ("/api/health", "get"),
        ("/api/openapi.json", "get"),
    ] {
        assert!(paths[path].get(method).is_some(), "{method} {path}");
    }
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
