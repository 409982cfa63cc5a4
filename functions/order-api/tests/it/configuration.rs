//! Configuration: a missing variable stops start-up and names itself; database credentials
//! come from Secrets Manager (the local emulator) when `DB_SECRET_ARN` is set.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::StatusCode;
use order_api::{AppState, OrderApiConfig, app};
use shared::config::Secrets;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{call, get};

const LOCAL_BINARY: &str = env!("CARGO_BIN_EXE_order-api-local");

/// Runs the local binary with only `variables` set and returns its exit status and stderr.
fn start_with(variables: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let output = Command::new(LOCAL_BINARY)
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

#[test]
fn start_up_with_an_invalid_listen_address_fails_naming_it() {
    let (status, stderr) = start_with(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders"),
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        ("ORDER_API_ADDR", "port three thousand"),
    ]);
    assert!(!status.success());
    assert!(stderr.contains("ORDER_API_ADDR"), "{stderr}");
}

/// Kills the child process it holds when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_local_binary_migrates_and_serves_the_router_on_its_address(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let port = testkit::free_port();
    let database_url = format!(
        "postgres://postgres@{}:{}/{}",
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap()
    );
    let _server = Running(
        Command::new(LOCAL_BINARY)
            .env("DATABASE_URL", database_url)
            .env("KAFKA_BOOTSTRAP_SERVERS", testkit::kafka::bootstrap())
            .env("ORDER_API_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts"),
    );
    testkit::wait_for_port(port, "order-api-local", Duration::from_secs(30)).await;

    let health = reqwest::get(format!("http://127.0.0.1:{port}/api/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let missing = reqwest::get(format!("http://127.0.0.1:{port}/api/missing"))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
}

async fn secrets_manager() -> aws_sdk_secretsmanager::Client {
    let credentials = aws_sdk_secretsmanager::config::Credentials::new(
        testkit::env("AWS_ACCESS_KEY_ID", "test"),
        testkit::env("AWS_SECRET_ACCESS_KEY", "test"),
        None,
        None,
        "local-emulator",
    );
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(testkit::env("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"))
        .region(aws_config::Region::new(testkit::env(
            "AWS_REGION",
            "us-east-1",
        )))
        .credentials_provider(credentials)
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}

#[sqlx::test(migrations = "../../migrations")]
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
    let client = secrets_manager().await;
    let created = client
        .create_secret()
        .name(format!("order-api-test/db-{}", uuid::Uuid::now_v7()))
        .secret_string(
            serde_json::json!({"username": role, "password": "unused-locally"}).to_string(),
        )
        .send()
        .await
        .expect("the emulator creates the secret");
    let arn = created.arn().unwrap().to_owned();
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
