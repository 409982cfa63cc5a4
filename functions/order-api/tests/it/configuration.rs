//! Configuration: a missing variable stops start-up and names itself; database credentials
//! come from Secrets Manager (the local emulator) when `DB_SECRET_ARN` is set.

use std::collections::HashMap;
use std::process::{Command, Stdio};

use axum::http::StatusCode;
use order_api::{AppState, OrderApiConfig, app};
use shared::config::Secrets;

use testkit::postgres::{Cluster, ClusterOptions};

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

/// In AWS the function logs in as its own role, with the password from that role's secret,
/// over TLS verified for the host: here a private server with password authentication and a
/// certificate from a CA of its own (`DB_SSL_ROOT_CERT`).
#[tokio::test]
async fn database_credentials_are_read_from_secrets_manager() {
    testkit::init_tracing();
    let cluster = Cluster::start_with(ClusterOptions {
        trust_function_roles: false,
        ..ClusterOptions::default()
    })
    .await;
    cluster.migrated_database("orders").await;
    cluster.set_password("order_api", "from-the-secret").await;
    let role = "order_api";
    let client = testkit::secrets::emulator_client().await;
    let arn = testkit::secrets::create(
        &client,
        "order-api-test/db-",
        &serde_json::json!({"username": role, "password": "from-the-secret"}),
    )
    .await;
    let database = "orders".to_owned();
    let root_cert = cluster.ca_path().display().to_string();

    let variables: HashMap<String, String> = [
        ("DB_HOST", "localhost".to_owned()),
        ("DB_PORT", cluster.port().to_string()),
        ("DB_NAME", database),
        ("DB_SECRET_ARN", arn.clone()),
        ("DB_SSL_ROOT_CERT", root_cert),
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
