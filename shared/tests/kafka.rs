//! The Kafka clients against real brokers: SASL/SCRAM with credentials from the Secrets
//! Manager emulator, and MSK IAM's token hand-over inside librdkafka.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::config::{
    Credentials as AwsCredentials, Region, SharedCredentialsProvider,
};
use rdkafka::producer::FutureProducer;
use serde_json::json;
use shared::config::{KafkaSecurity, KafkaSettings, Secrets};
use shared::kafka::{KafkaContext, KafkaPublisher, MskIamTokens, client_config};
use testkit::tansu::Tansu;

fn static_tokens() -> MskIamTokens {
    let credentials = AwsCredentials::new("AKIDTESTKAFKA", "secret", None, None, "test");
    MskIamTokens::new(
        Region::from_static("eu-west-1"),
        SharedCredentialsProvider::new(credentials),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iam_producer_asks_its_context_for_a_token_when_it_starts() {
    // librdkafka requests the first OAUTHBEARER token as soon as the client exists,
    // before it connects anywhere, so a closed port is enough to see the wiring.
    let settings = KafkaSettings {
        security: KafkaSecurity::Iam,
        tls: false,
        ..KafkaSettings::plaintext(format!("127.0.0.1:{}", testkit::free_port()))
    };
    let tokens = Arc::new(static_tokens());
    let context = KafkaContext::iam(tokens.clone());
    let _producer: FutureProducer<KafkaContext> = client_config(&settings, &Secrets::new())
        .await
        .unwrap()
        .create_with_context(context)
        .unwrap();
    testkit::eventually(
        "librdkafka asking the context for a token",
        Duration::from_secs(10),
        || async {
            match tokens.issued() {
                0 => Err("no token issued"),
                issued => Ok(issued),
            }
        },
    )
    .await;
}

/// SASL/SCRAM settings for `broker` with the `AmazonMSK_` secret `secret_arn` (none: no
/// authentication at all).
fn scram(broker: &Tansu, secret_arn: Option<String>) -> KafkaSettings {
    KafkaSettings {
        security: if secret_arn.is_some() {
            KafkaSecurity::SaslScram
        } else {
            KafkaSecurity::Plaintext
        },
        secret_arn,
        tls: false,
        delivery_timeout: Duration::from_secs(3),
        ..KafkaSettings::plaintext(broker.bootstrap())
    }
}

async fn publish_one(settings: &KafkaSettings, secrets: &Secrets) -> bool {
    let publisher = KafkaPublisher::new(settings, secrets).await.unwrap();
    let results = publisher
        .publish_all([("order-placed", "key", b"{}".as_slice())])
        .await;
    results.into_iter().all(|result| result.is_ok())
}

async fn msk_secret(client: &aws_sdk_secretsmanager::Client, user: &str, password: &str) -> String {
    testkit::secrets::create(
        client,
        "AmazonMSK_test-",
        &json!({ "username": user, "password": password }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_publishing_works_only_with_the_right_password() {
    let broker = Tansu::start_with_user("orders", "s3cret-pw").await;
    let client = testkit::secrets::emulator_client().await;
    let secrets = Secrets::from_client(client.clone());

    let right = msk_secret(&client, "orders", "s3cret-pw").await;
    assert!(
        publish_one(&scram(&broker, Some(right)), &secrets).await,
        "SCRAM publish failed"
    );

    let wrong = msk_secret(&client, "orders", "not-the-password").await;
    assert!(
        !publish_one(&scram(&broker, Some(wrong)), &secrets).await,
        "a wrong password was accepted"
    );

    assert!(
        !publish_one(&scram(&broker, None), &secrets).await,
        "no authentication was accepted"
    );
}
