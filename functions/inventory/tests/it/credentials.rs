//! The database password is rotated under a running function: the shared consumer seam sees
//! the database refuse the cached credentials, fetches the secret again, and the retry logs
//! in. Run against a private PostgreSQL with password authentication and verified TLS, as RDS
//! has, logging in as the function's own role with its secret in the Secrets Manager emulator.

use std::time::Duration;

use inventory::InventoryConfig;
use serde_json::json;
use shared::config::{DatabaseSettings, KafkaSettings, Secrets};
use testkit::postgres::{Cluster, ClusterOptions};

use crate::helpers::*;

#[tokio::test]
async fn after_the_database_password_is_rotated_the_retry_logs_in_with_the_new_secret() {
    testkit::init_tracing();
    let cluster = Cluster::start_with(ClusterOptions {
        trust_function_roles: false,
        ..ClusterOptions::default()
    })
    .await;
    let direct = cluster.migrated_database("orders").await;
    cluster.set_password("inventory", "first-password").await;
    set_stock(&direct, &[("Desk Lamp", 10)]).await;

    let client = testkit::secrets::emulator_client().await;
    let secret = testkit::secrets::create(
        &client,
        "rds-inventory-",
        &json!({"username": "inventory", "password": "first-password"}),
    )
    .await;
    let config = InventoryConfig {
        database: DatabaseSettings::Rds {
            host: "localhost".to_owned(),
            port: cluster.port(),
            name: "orders".to_owned(),
            secret_arn: secret.clone(),
            root_cert: Some(cluster.ca_path()),
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
    // the old one gone, as when a rotated password takes effect and connections recycle.
    cluster.set_password("inventory", "second-password").await;
    sqlx::raw_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'inventory'",
    )
    .execute(&direct)
    .await
    .unwrap();
    testkit::secrets::rotate(
        &client,
        &secret,
        &json!({"username": "inventory", "password": "second-password"}),
    )
    .await;
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
