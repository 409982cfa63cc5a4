//! The Kafka producer every publishing function uses: idempotent, `acks=all`, each message
//! bounded by a delivery timeout so that a broker outage never hangs a function.
//!
//! Every client (producer, admin client, local consumers) is built from [`client_config`] plus
//! the [`KafkaContext`] of [`client_context`], which together implement the three
//! `KAFKA_SECURITY` modes of docs/configuration.md:
//!
//! - `plaintext`: no authentication (local brokers);
//! - `sasl_scram`: SASL/SCRAM-SHA-512, over TLS unless `KAFKA_TLS=false`, with the `username`
//!   and `password` of the `AmazonMSK_` secret named by `KAFKA_SECRET_ARN`;
//! - `iam`: MSK IAM through SASL/OAUTHBEARER over TLS; librdkafka asks the context for a fresh
//!   signed token at start and again before each one expires.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_secretsmanager::config::{Region, SharedCredentialsProvider};
use rdkafka::client::OAuthToken;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext};
use secrecy::ExposeSecret;

use crate::config::{Credentials, KafkaSecurity, KafkaSettings, Secrets};
use crate::events::{CLOUDEVENTS_CONTENT_TYPE, CONTENT_TYPE_HEADER};
use crate::trace::TRACEPARENT;

/// Why a message did not reach the broker.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("Kafka did not acknowledge the message: {0}")]
    Delivery(#[from] KafkaError),
}

/// librdkafka settings shared by the producer, the admin client and the local consumers.
///
/// Create clients with `create_with_context(client_context(settings).await?)`: with
/// `KAFKA_SECURITY=iam` only that context can produce the OAUTHBEARER token.
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
    if settings.tls {
        // The vendored OpenSSL looks for CA certificates under its build prefix, which does not
        // exist on Lambda; probing finds the system bundle (/etc/pki/tls/certs on AL2023).
        config.set("ssl.ca.location", "probe");
    }
    Ok(config)
}

fn client_id() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "order-system".to_owned())
}

/// The client context for `settings`: it carries the MSK IAM token source when
/// `KAFKA_SECURITY=iam` (credentials and region from the default AWS chain), and is inert
/// otherwise. Must be called inside the Tokio runtime that will outlive the client.
pub async fn client_context(settings: &KafkaSettings) -> anyhow::Result<KafkaContext> {
    Ok(match settings.security {
        KafkaSecurity::Iam => KafkaContext::iam(MskIamTokens::from_env().await?),
        KafkaSecurity::Plaintext | KafkaSecurity::SaslScram => KafkaContext::default(),
    })
}

/// The rdkafka context of every client we create. librdkafka only asks it for a token when
/// `sasl.mechanism=OAUTHBEARER`, so the same type serves all three security modes.
#[derive(Clone, Default)]
pub struct KafkaContext {
    iam: Option<Arc<MskIamTokens>>,
}

impl KafkaContext {
    /// A context that answers OAUTHBEARER refreshes with MSK IAM tokens from `tokens`.
    pub fn iam(tokens: impl Into<Arc<MskIamTokens>>) -> Self {
        Self {
            iam: Some(tokens.into()),
        }
    }
}

impl ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn Error>> {
        match &self.iam {
            Some(tokens) => tokens.token().map_err(|err| format!("{err:#}").into()),
            None => Err("OAUTHBEARER needs KAFKA_SECURITY=iam".into()),
        }
    }
}

impl ConsumerContext for KafkaContext {}

/// Signs MSK IAM authentication tokens (`kafka-cluster:Connect`, valid 15 minutes) with the
/// function's AWS credentials; the signer needs no network, only credentials and a region.
pub struct MskIamTokens {
    region: Region,
    credentials: SharedCredentialsProvider,
    runtime: tokio::runtime::Handle,
    issued: AtomicU64,
}

/// How long one token generation (credential lookup and signing) may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

impl MskIamTokens {
    /// Signs with `credentials` for `region`, resolving credentials on the current runtime.
    pub fn new(region: Region, credentials: SharedCredentialsProvider) -> Self {
        Self {
            region,
            credentials,
            runtime: tokio::runtime::Handle::current(),
            issued: AtomicU64::new(0),
        }
    }

    /// Region and credentials from the default AWS chain (in Lambda: `AWS_REGION` and the
    /// execution role's variables).
    pub async fn from_env() -> anyhow::Result<Self> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let region = config
            .region()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("KAFKA_SECURITY=iam needs AWS_REGION"))?;
        let credentials = config
            .credentials_provider()
            .ok_or_else(|| anyhow::anyhow!("KAFKA_SECURITY=iam needs AWS credentials"))?;
        Ok(Self::new(region, credentials))
    }

    /// A fresh token. librdkafka calls this from its own threads, some of which may be
    /// runtime threads, so the async signer runs on a helper thread that blocks on the
    /// runtime captured at construction.
    pub fn token(&self) -> anyhow::Result<OAuthToken> {
        let (region, credentials) = (self.region.clone(), self.credentials.clone());
        let runtime = self.runtime.clone();
        let (token, lifetime_ms) = std::thread::spawn(move || {
            runtime.block_on(async move {
                tokio::time::timeout(
                    TOKEN_TIMEOUT,
                    aws_msk_iam_sasl_signer::generate_auth_token_from_credentials_provider(
                        region,
                        credentials,
                    ),
                )
                .await
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the MSK IAM signer panicked"))?
        .map_err(|_| anyhow::anyhow!("the MSK IAM signer timed out after {TOKEN_TIMEOUT:?}"))?
        .map_err(|err| anyhow::anyhow!("could not sign an MSK IAM token: {err}"))?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(lifetime_ms, "signed a new MSK IAM token");
        Ok(OAuthToken {
            token,
            principal_name: String::new(),
            lifetime_ms,
        })
    }

    /// How many tokens this source has signed (observability and tests).
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }
}

/// One record to send: where it goes, its key and value, and the W3C `traceparent` of the
/// trace it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub traceparent: Option<&'a str>,
}

/// Publishes CloudEvents records; one per cold start, shared by every invocation.
#[derive(Clone)]
pub struct KafkaPublisher(Arc<PublisherInner>);

struct PublisherInner {
    /// Created in the background by [`KafkaPublisher::prefetch`] (when an instance's first
    /// invocation arrives), or by the first send that needs it before then; replaced when the
    /// broker stops recognising the producer (see [`needs_new_producer`]).
    producer: tokio::sync::OnceCell<std::sync::RwLock<FutureProducer<KafkaContext>>>,
    /// Whether [`KafkaPublisher::prefetch`] has started; it runs once per instance.
    prefetching: AtomicBool,
    config: ClientConfig,
    context: KafkaContext,
    /// How long a caller waits for acknowledgements. librdkafka's own message timeout does
    /// not expire an idempotent message already in flight when the broker dies, so the
    /// wait is bounded here too; such a message stays pending in the outbox (at least once).
    wait_limit: Duration,
}

impl KafkaPublisher {
    pub async fn new(settings: &KafkaSettings, secrets: &Secrets) -> anyhow::Result<Self> {
        let timeout_ms = settings.delivery_timeout.as_millis().max(1).to_string();
        let mut config = client_config(settings, secrets).await?;
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", &timeout_ms)
            .set("request.timeout.ms", &timeout_ms)
            .set("linger.ms", "2")
            // librdkafka connects to one more broker at most every `reconnect.backoff.ms / 2`
            // (at least 11 ms) while it has none up. The bootstrap connection starts that
            // interval, and the broker the first metadata names, which replaces it, had to wait
            // the rest of it: 50 ms of every cold start's first send at the default of 100 ms.
            // The backoff after a lost connection still doubles from here up to its maximum.
            .set("reconnect.backoff.ms", "20");
        let context = client_context(settings).await?;
        let publisher = Self(Arc::new(PublisherInner {
            producer: tokio::sync::OnceCell::new(),
            prefetching: AtomicBool::new(false),
            config,
            context,
            wait_limit: settings.delivery_timeout + Duration::from_millis(500),
        }));
        // No producer yet: creating one (librdkafka's one-time OpenSSL and curl set-up, the
        // client's threads) on a thread beside init still slowed init by a millisecond or
        // more. `prefetch`, called as the first invocation arrives, creates it while that
        // invocation does its database work.
        Ok(publisher)
    }

    /// The producer, created on a blocking thread by the first caller; later callers wait for
    /// that creation. A failure is returned to each caller, and the next one tries again.
    async fn producer(&self) -> Result<FutureProducer<KafkaContext>, KafkaError> {
        let inner = Arc::clone(&self.0);
        let producer = self
            .0
            .producer
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    inner
                        .config
                        .create_with_context::<_, FutureProducer<KafkaContext>>(
                            inner.context.clone(),
                        )
                        .inspect_err(
                            |err| tracing::error!(error = %err, "could not create the Kafka producer"),
                        )
                })
                .await
                .map_err(|_| KafkaError::Canceled)?
                .map(std::sync::RwLock::new)
            })
            .await?;
        Ok(producer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    /// Starts a fresh idempotent producer (a new producer id). Messages still queued in the
    /// old one are left to their timeout; their outbox rows stay pending.
    fn renew_producer(&self) {
        let Some(current) = self.0.producer.get() else {
            return;
        };
        match self
            .0
            .config
            .create_with_context::<_, FutureProducer<KafkaContext>>(self.0.context.clone())
        {
            Ok(fresh) => {
                tracing::warn!(
                    "the broker refused the producer's identity; started a new producer"
                );
                *current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
            }
            Err(err) => tracing::error!(error = %err, "could not start a new Kafka producer"),
        }
    }

    /// Sends records in the given order (so one key's records keep their order) and waits
    /// for every acknowledgement. Returns one result per record, in the same order.
    pub async fn publish_all<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, &'a str, &'a [u8])>,
    ) -> Vec<Result<(), PublishError>> {
        // Collected first: a closure held across the await would make the future lose `Send`.
        let records = records
            .into_iter()
            .map(|(topic, key, payload)| Outgoing {
                topic,
                key: Some(key.as_bytes()),
                payload: Some(payload),
                traceparent: None,
            })
            .collect();
        self.publish(records).await
    }

    /// As [`Self::publish_all`], for records whose key or value may be absent or not text:
    /// a replayed dead letter goes out with exactly the bytes it arrived with.
    pub async fn publish_raw<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>, Option<&'a [u8]>)>,
    ) -> Vec<Result<(), PublishError>> {
        let records = records
            .into_iter()
            .map(|(topic, key, payload)| Outgoing {
                topic,
                key,
                payload,
                traceparent: None,
            })
            .collect();
        self.publish(records).await
    }

    /// Sends records in the given order, each with the `content-type` header and, when it has
    /// one, the `traceparent` header, and waits for every acknowledgement. Returns one
    /// result per record, in the same order.
    pub async fn publish(&self, records: Vec<Outgoing<'_>>) -> Vec<Result<(), PublishError>> {
        let producer = match self.producer().await {
            Ok(producer) => producer,
            Err(err) => {
                return records
                    .iter()
                    .map(|_| Err(PublishError::Delivery(err.clone())))
                    .collect();
            }
        };
        let mut pending = Vec::with_capacity(records.len());
        for outgoing in records {
            let mut headers = OwnedHeaders::new_with_capacity(2).insert(Header {
                key: CONTENT_TYPE_HEADER,
                value: Some(CLOUDEVENTS_CONTENT_TYPE),
            });
            if let Some(traceparent) = outgoing.traceparent {
                headers = headers.insert(Header {
                    key: TRACEPARENT,
                    value: Some(traceparent),
                });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(outgoing.topic).headers(headers);
            if let Some(key) = outgoing.key {
                record = record.key(key);
            }
            if let Some(payload) = outgoing.payload {
                record = record.payload(payload);
            }
            // `send` enqueues on its first poll; awaiting enqueue one by one keeps the order,
            // and the acknowledgements are then awaited together.
            pending.push(producer.send_result(record).map_err(|(err, _)| err));
        }
        let deadline = tokio::time::Instant::now() + self.0.wait_limit;
        let mut results = Vec::with_capacity(pending.len());
        for delivery in pending {
            let result = match delivery {
                Err(err) => Err(PublishError::Delivery(err)),
                Ok(future) => match tokio::time::timeout_at(deadline, future).await {
                    Err(_elapsed) => Err(PublishError::Delivery(KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::MessageTimedOut,
                    ))),
                    Ok(Ok(Ok(_))) => Ok(()),
                    Ok(Ok(Err((err, _)))) => Err(PublishError::Delivery(err)),
                    Ok(Err(_cancelled)) => Err(PublishError::Delivery(KafkaError::Canceled)),
                },
            };
            results.push(result);
        }
        let fatal = producer.client().fatal_error().is_some();
        if fatal
            || results
                .iter()
                .any(|r| matches!(r, Err(PublishError::Delivery(err)) if needs_new_producer(err)))
        {
            self.renew_producer();
        }
        results
    }

    /// Starts creating the producer and learning where `topics` live, in the background:
    /// librdkafka otherwise fetches a topic's metadata, connects to its leader and obtains the
    /// idempotent producer id only when the first message is sent, which made every
    /// instance's first send take about a second. Called at the start of every invocation,
    /// before its database work; only the first call does anything. A failure only leaves
    /// that work to the first send.
    ///
    /// The first metadata answer comes over the bootstrap connection, and with it librdkafka
    /// (2.10 and later) replaces the bootstrap broker by the brokers it names, which it has
    /// yet to connect to. It asks for the producer id after a metadata answer when a broker is
    /// up, or else half a second later (its retry timer): at that moment none is, so the id,
    /// and the first send with it, waited for that timer on about half of the cold starts.
    /// So one more request follows, which librdkafka sends once a named broker is up; its
    /// answer starts the producer id request at once.
    pub fn prefetch(&self, topics: &[&'static str]) {
        if self.0.prefetching.swap(true, Ordering::Relaxed) {
            return;
        }
        let publisher = self.clone();
        let topics = topics.to_vec();
        let timeout = self.0.wait_limit;
        tokio::spawn(async move {
            let Ok(producer) = publisher.producer().await else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || {
                let again = topics.first().copied();
                for topic in topics.into_iter().chain(again) {
                    if let Err(err) = producer.client().fetch_metadata(Some(topic), timeout) {
                        tracing::debug!(topic, error = %err, "topic metadata not fetched ahead");
                    }
                }
            })
            .await;
        });
    }

    /// Waits for queued messages, for a clean shutdown (a producer not created yet has none).
    pub fn flush(&self, timeout: Duration) {
        if let Some(producer) = self.0.producer.get() {
            let producer = producer
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let _ = producer.flush(timeout);
        }
    }
}

/// Errors after which the broker will refuse every later message of this producer: it no
/// longer accepts the producer's id, epoch or sequence (after an outage some brokers fence
/// the epoch librdkafka bumped, or answer with an unknown error). Only a new producer helps.
fn needs_new_producer(err: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        err.rdkafka_error_code(),
        Some(
            Code::UnknownProducerId
                | Code::OutOfOrderSequenceNumber
                | Code::InvalidProducerEpoch
                | Code::ProducerFenced
                | Code::Fatal
                | Code::Unknown
        )
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_secretsmanager::config::Credentials as AwsCredentials;
    use base64::Engine;

    use super::*;

    fn static_tokens() -> MskIamTokens {
        let credentials = AwsCredentials::new("AKIDTESTKAFKA", "secret", None, None, "test");
        MskIamTokens::new(
            Region::from_static("eu-west-1"),
            SharedCredentialsProvider::new(credentials),
        )
    }

    #[tokio::test]
    async fn an_iam_token_is_a_signed_connect_request_valid_for_fifteen_minutes() {
        let tokens = static_tokens();
        let before = chrono::Utc::now().timestamp_millis();
        let token = tokens.token().unwrap();

        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token.token)
            .unwrap();
        let url = url::Url::parse(std::str::from_utf8(&url).unwrap()).unwrap();
        assert_eq!(url.host_str(), Some("kafka.eu-west-1.amazonaws.com"));
        let query: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["Action"], "kafka-cluster:Connect");
        assert_eq!(query["X-Amz-Expires"], "900");
        assert!(query["X-Amz-Credential"].starts_with("AKIDTESTKAFKA/"));
        assert!(query["X-Amz-Credential"].contains("/eu-west-1/kafka-cluster/"));
        // The lifetime is absolute (ms since the epoch): signing time plus 15 minutes.
        let fifteen_minutes = 15 * 60 * 1000;
        assert!(token.lifetime_ms >= before - 1000 + fifteen_minutes);
        assert!(token.lifetime_ms <= chrono::Utc::now().timestamp_millis() + fifteen_minutes);
        assert_eq!(tokens.issued(), 1);
    }

    #[tokio::test]
    async fn the_context_refuses_oauthbearer_outside_iam_mode() {
        let Err(err) = KafkaContext::default().generate_oauth_token(None) else {
            panic!("a token without IAM");
        };
        assert!(err.to_string().contains("KAFKA_SECURITY=iam"));
        let token = KafkaContext::iam(static_tokens())
            .generate_oauth_token(None)
            .unwrap();
        assert!(!token.token.is_empty());
    }

    #[tokio::test]
    async fn iam_settings_select_oauthbearer_over_tls() {
        let settings = KafkaSettings {
            security: KafkaSecurity::Iam,
            tls: true,
            ..KafkaSettings::plaintext("b-1.msk:9098")
        };
        let config = client_config(&settings, &Secrets::new()).await.unwrap();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.mechanism"), Some("OAUTHBEARER"));
        assert_eq!(config.get("ssl.ca.location"), Some("probe"));
        // librdkafka accepts the combination (TLS with probed CAs, OAUTHBEARER via the context).
        let _producer: FutureProducer<KafkaContext> = config
            .create_with_context(KafkaContext::iam(static_tokens()))
            .unwrap();
    }
}
