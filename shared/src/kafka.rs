//! The Kafka producer every publishing function uses: idempotent, `acks=all`, each message
//! bounded by a delivery timeout so that a broker outage never hangs a function.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use secrecy::ExposeSecret;

use crate::config::{Credentials, KafkaSecurity, KafkaSettings, Secrets};
use crate::events::{CLOUDEVENTS_CONTENT_TYPE, CONTENT_TYPE_HEADER};

/// Why a message did not reach the broker.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("Kafka did not acknowledge the message: {0}")]
    Delivery(#[from] KafkaError),
}

/// librdkafka settings shared by the producer, the admin client and the local consumers.
pub async fn client_config(
    settings: &KafkaSettings,
    secrets: &Secrets,
) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", client_id())
        .set("socket.timeout.ms", "10000")
        .set("socket.connection.setup.timeout.ms", "5000");
    let protocol = if settings.tls {
        "SASL_SSL"
    } else {
        "SASL_PLAINTEXT"
    };
    match settings.security {
        KafkaSecurity::Plaintext => {
            config.set(
                "security.protocol",
                if settings.tls { "SSL" } else { "PLAINTEXT" },
            );
        }
        KafkaSecurity::SaslScram => {
            let arn = settings
                .secret_arn
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("KAFKA_SECRET_ARN is required for sasl_scram"))?;
            let credentials: Credentials = secrets.json(arn).await?;
            config
                .set("security.protocol", protocol)
                .set("sasl.mechanism", "SCRAM-SHA-512")
                .set("sasl.username", &credentials.username)
                .set("sasl.password", credentials.password.expose_secret());
        }
        KafkaSecurity::Iam => {
            config
                .set("security.protocol", protocol)
                .set("sasl.mechanism", "OAUTHBEARER");
        }
    }
    Ok(config)
}

fn client_id() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "order-system".to_owned())
}

/// Publishes CloudEvents records; one per cold start, shared by every invocation.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
}

impl KafkaPublisher {
    pub async fn new(settings: &KafkaSettings, secrets: &Secrets) -> anyhow::Result<Self> {
        let timeout_ms = settings.delivery_timeout.as_millis().max(1).to_string();
        let producer = client_config(settings, secrets)
            .await?
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", &timeout_ms)
            .set("request.timeout.ms", &timeout_ms)
            .set("linger.ms", "2")
            .create()?;
        Ok(Self { producer })
    }

    /// Sends records in the given order (so one key's records keep their order) and waits
    /// for every acknowledgement. Returns one result per record, in the same order.
    pub async fn publish_all<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, &'a str, &'a [u8])>,
    ) -> Vec<Result<(), PublishError>> {
        let mut pending = Vec::new();
        for (topic, key, payload) in records {
            let headers = OwnedHeaders::new().insert(Header {
                key: CONTENT_TYPE_HEADER,
                value: Some(CLOUDEVENTS_CONTENT_TYPE),
            });
            let record = FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .headers(headers);
            // `send` enqueues on its first poll; awaiting enqueue one by one keeps the order,
            // and the acknowledgements are then awaited together.
            pending.push(self.producer.send_result(record).map_err(|(err, _)| err));
        }
        let mut results = Vec::with_capacity(pending.len());
        for delivery in pending {
            let result = match delivery {
                Err(err) => Err(PublishError::Delivery(err)),
                Ok(future) => match future.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((err, _))) => Err(PublishError::Delivery(err)),
                    Err(_cancelled) => Err(PublishError::Delivery(KafkaError::Canceled)),
                },
            };
            results.push(result);
        }
        results
    }

    /// Waits for queued messages, for a clean shutdown.
    pub fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer;
        let _ = self.producer.flush(timeout);
    }
}
