//! Configuration: a missing variable stops start-up and names itself; database credentials
//! come from Secrets Manager (the local emulator) when `DB_SECRET_ARN` is set.

use std::collections::HashMap;
use std::process::{Command, Stdio};

use axum::http::StatusCode;
use order_api::{AppState, OrderApiConfig, app};
use shared::config::Secrets;
use sqlx::PgPool;

use crate::support::{call, get};

/// The Lambda binary: it reads its settings before it talks to any Runtime API.
const LAMBDA_BINARY: &str = env!("CARGO_BIN_EXE_order-api");

/// Runs the function's binary with only `variables` set; returns its exit status and stderr.
fn start_with(variables: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let output = Command::new(LAMBDA_BINARY)
        .env_clear()
        .envs(variables.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn start_up_without_database_settings_fails_naming_database_url() {
    let (status, stderr) = start_with(&[("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")]);
    assert!(!status.success());
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn start_up_without_kafka_bootstrap_servers_fails_naming_it() {
    let (status, stderr) =
        start_with(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders")]);
    assert!(!status.success());
    assert!(stderr.contains("KAFKA_BOOTSTRAP_SERVERS"), "{stderr}");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn database_credentials_are_read_from_secrets_manager(pool: PgPool) {
    testkit::init_tracing();
    // A role only the secret names; the local server trusts loopback, so any password works.
    let role = "order_api_secret_user";
    sqlx::query(&format!(
        "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let client = testkit::secrets::emulator_client().await;
    let arn = testkit::secrets::create(
        &client,
        "order-api-test/db-",
        &serde_json::json!({"username": role, "password": "unused-locally"}),
    )
    .await;
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();

    let variables: HashMap<String, String> = [
        ("DB_HOST", "127.0.0.1".to_owned()),
        ("DB_PORT", "5432".to_owned()),
        ("DB_NAME", database),
        ("DB_SECRET_ARN", arn.clone()),
        ("KAFKA_BOOTSTRAP_SERVERS", testkit::kafka::bootstrap()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    let config = OrderApiConfig::from_source(Some(variables)).unwrap();
    let state = AppState::with_secrets(&config, Secrets::from_client(client.clone()))
        .await
        .unwrap();

    let user: String = sqlx::query_scalar("SELECT current_user")
        .fetch_one(state.pool())
        .await
        .unwrap();
    assert_eq!(user, role, "the username comes from the secret");
    let health = call(&app(state), get("/api/health")).await;
    assert_eq!(health.status, StatusCode::OK);

    client
        .delete_secret()
        .secret_id(arn)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}
