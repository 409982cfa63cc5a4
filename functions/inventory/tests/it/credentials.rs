//! The database password is rotated under a running function: the shared consumer seam sees
//! the database refuse the cached credentials, fetches the secret again, and the retry logs
//! in. Run against a private PostgreSQL with password authentication and TLS, as RDS has, and
//! the RDS-managed secret in the Secrets Manager emulator.

use std::time::Duration;

use inventory::InventoryConfig;
use serde_json::json;
use shared::config::{DatabaseSettings, KafkaSettings, Secrets};
use sqlx::PgPool;
use testkit::postgres::Cluster;

use crate::helpers::*;

#[tokio::test]
async fn after_the_database_password_is_rotated_the_retry_logs_in_with_the_new_secret() {
    testkit::init_tracing();
    let cluster = Cluster::start(&[]).await;
    let admin = PgPool::connect(&cluster.superuser_url()).await.unwrap();
    for statement in [
        "CREATE ROLE app LOGIN PASSWORD 'first-password'",
        "CREATE DATABASE orders OWNER app",
    ] {
        sqlx::raw_sql(statement).execute(&admin).await.unwrap();
    }
    let direct = PgPool::connect(&cluster.url("app", "first-password", "orders"))
        .await
        .unwrap();
    testkit::MIGRATOR.run(&direct).await.unwrap();
    set_stock(&direct, &[("Desk Lamp", 10)]).await;

    let client = testkit::secrets::emulator_client().await;
    let secret = testkit::secrets::create(
        &client,
        "rds-app-",
        &json!({"username": "app", "password": "first-password"}),
    )
    .await;
    let config = InventoryConfig {
        database: DatabaseSettings::Rds {
            host: "127.0.0.1".to_owned(),
            port: cluster.port(),
            name: "orders".to_owned(),
            secret_arn: secret.clone(),
        },
        kafka: {
            let mut kafka = KafkaSettings::plaintext(testkit::kafka::bootstrap());
            kafka.delivery_timeout = Duration::from_secs(20);
            kafka
        },
        max_connections: 1,
    };
    let consumer = inventory::consumer_from_config(&config, &Secrets::from_client(client.clone()))
        .await
        .unwrap();
    let before = place_order(&direct, "Desk Lamp", 1).await;
    let first = consumer.handle(batch(&[before], 0, 0)).await.unwrap();
    assert_eq!(first.confirmed, 1);

    // The rotation: a new password in the database and in the secret, and every session of
    // the old one gone, as when RDS rotates the master password and connections recycle.
    sqlx::raw_sql(
        "ALTER ROLE app PASSWORD 'second-password';
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app';",
    )
    .execute(&admin)
    .await
    .unwrap();
    testkit::secrets::rotate(
        &client,
        &secret,
        &json!({"username": "app", "password": "second-password"}),
    )
    .await;
    let direct = PgPool::connect(&cluster.url("app", "second-password", "orders"))
        .await
        .unwrap();
    let after = place_order(&direct, "Desk Lamp", 2).await;
    let event = batch(std::slice::from_ref(&after), 0, 1);

    let refused = consumer
        .handle(event.clone())
        .await
        .expect_err("the cached password is refused");
    assert_eq!(
        refused.error_type(),
        "Transient.DatabaseUnavailable",
        "{refused:?}"
    );
    assert_eq!(order_state(&direct, after.data.order_id).await.0, "PLACED");

    let retry = consumer.handle(event).await.expect("the retry logs in");
    assert_eq!(retry.confirmed, 1);
    assert_eq!(stock(&direct, "Desk Lamp").await, Some(7));
}
