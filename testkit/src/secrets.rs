//! The local Secrets Manager emulator (moto, `AWS_ENDPOINT_URL`): one client for every test
//! that stores a secret and has the code under test read it back.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};

/// A client of the emulator, with the local defaults of `scripts/env.sh`.
pub async fn emulator_client() -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(crate::env("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"))
        .region(Region::new(crate::env("AWS_REGION", "us-east-1")))
        .credentials_provider(Credentials::new(
            crate::env("AWS_ACCESS_KEY_ID", "test"),
            crate::env("AWS_SECRET_ACCESS_KEY", "test"),
            None,
            None,
            "testkit",
        ))
        .load()
        .await;
    Client::new(&config)
}

/// Stores `value` as a new secret whose name starts with `prefix`; returns its ARN.
pub async fn create(client: &Client, prefix: &str, value: &serde_json::Value) -> String {
    client
        .create_secret()
        .name(format!("{prefix}{}", uuid::Uuid::now_v7()))
        .secret_string(value.to_string())
        .send()
        .await
        .expect("the Secrets Manager emulator answers (scripts/services up)")
        .arn
        .expect("a created secret has an ARN")
}

/// Replaces a secret's value, as a rotation does.
pub async fn rotate(client: &Client, arn: &str, value: &serde_json::Value) {
    client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("the Secrets Manager emulator answers (scripts/services up)");
}
