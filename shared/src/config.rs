//! Typed settings read once at start-up (docs/configuration.md). A missing or invalid variable stops
//! start-up with an error that names it. Secrets come from Secrets Manager when an ARN is set.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, OnceCell};

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            problem: problem.into(),
        }
    }

    fn from_config(err: config::ConfigError) -> Self {
        // `config` lowercases variable names; report them as the user spells them.
        let text = err.to_string();
        let field = |marker: &str| {
            text.split_once(marker)
                .and_then(|(_, rest)| rest.split('`').next())
                .map(str::to_uppercase)
        };
        let quoted = |marker: &str| {
            text.split_once(marker)
                .and_then(|(_, rest)| rest.split('"').next())
                .map(str::to_uppercase)
        };
        if let Some(variable) =
            field("missing field `").or_else(|| quoted("missing configuration field \""))
        {
            return Self::new(variable, "is required but not set");
        }
        match field("for key `") {
            Some(variable) => Self::new(variable, text),
            None => Self::new("environment", text),
        }
    }
}

/// Reads environment variables into `T`, whose fields are the variables' names in lower case.
pub fn from_env<T: DeserializeOwned>() -> Result<T, ConfigError> {
    from_source(None)
}

/// As [`from_env`], from an explicit map of variables (tests use this to leave the process
/// environment alone).
///
/// Only `T`'s own variables reach `config`, which copies, lower-cases and parses every
/// variable it is given: with the whole environment, each of a function's four or five
/// loaders paid for every variable of the process, a good part of its cold start's init.
pub fn from_source<T: DeserializeOwned>(
    variables: Option<HashMap<String, String>>,
) -> Result<T, ConfigError> {
    let own = own_variables(&variables_of::<T>(), variables)?;
    config::Config::builder()
        .add_source(config::Environment::default().source(Some(own)))
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(ConfigError::from_config)
}

/// The variables among `variables` (the process environment when `None`) whose names, in
/// upper case, are in `names`. One of them whose value is not valid Unicode is an error that
/// names it; names that are not valid Unicode are no one's.
fn own_variables(
    names: &[String],
    variables: Option<HashMap<String, String>>,
) -> Result<HashMap<String, String>, ConfigError> {
    let wanted = |name: &str| names.iter().any(|own| own.eq_ignore_ascii_case(name));
    let Some(variables) = variables else {
        return std::env::vars_os()
            .filter_map(|(name, value)| name.into_string().ok().map(|name| (name, value)))
            .filter(|(name, _)| wanted(name))
            .map(|(name, value)| match value.into_string() {
                Ok(value) => Ok((name, value)),
                Err(_) => Err(ConfigError::new(name, "is not valid Unicode")),
            })
            .collect();
    };
    Ok(variables
        .into_iter()
        .filter(|(name, _)| wanted(name))
        .collect())
}

/// The environment variables a settings struct reads: its serde field names in upper case.
/// Derived from the same struct the loader deserialises, so a renamed field renames the
/// variable here too (the template contract test compares these with `template.yaml`).
pub fn variables_of<T: DeserializeOwned>() -> Vec<String> {
    serde_aux::serde_introspection::serde_introspect::<T>()
        .iter()
        .map(|field| field.to_uppercase())
        .collect()
}

/// The variables of a function that reaches the database and the broker and reads its own
/// settings into `T`: the database's, the broker's, then `T`'s (see [`variables_of`]).
pub fn variables_with_connections<T: DeserializeOwned>() -> Vec<String> {
    let mut names = DatabaseSettings::variables();
    names.extend(KafkaSettings::variables());
    names.extend(variables_of::<T>());
    names
}

/// The pool size of a function whose invocations each hold one connection at a time:
/// `configured` (`DB_MAX_CONNECTIONS`) when set, otherwise 2, or one per invocation an
/// instance serves at once (read from `variables`) up to 50; between 1 and 50 either way.
pub fn per_invocation_pool_size(
    configured: Option<u32>,
    variables: Option<HashMap<String, String>>,
) -> Result<u32, ConfigError> {
    let concurrency = crate::lambda::max_concurrency(variables);
    let max_connections =
        configured.unwrap_or_else(|| crate::lambda::default_pool_size(2, concurrency, 0).min(50));
    if !(1..=50).contains(&max_connections) {
        return Err(ConfigError::new(
            "DB_MAX_CONNECTIONS",
            "must be between 1 and 50",
        ));
    }
    Ok(max_connections)
}

/// A variable map for the `from_source` loaders, from `(NAME, value)` pairs.
pub fn variable_map(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
    )
}

/// Where the database is and how to log in.
#[derive(Clone)]
pub enum DatabaseSettings {
    /// Local runs: a full connection URL.
    Url(SecretString),
    /// AWS: RDS endpoint plus the secret holding `username` and `password` (the function's
    /// own role's; db-migrate's is the RDS-managed master secret). The connection is TLS with
    /// the server's certificate verified for `host` (`verify-full`) against the public roots
    /// the binary carries, plus `root_cert` when set (RDS's own CA, for a direct connection
    /// to the instance; RDS Proxy's certificate comes from a public CA).
    Rds {
        host: String,
        port: u16,
        name: String,
        secret_arn: String,
        root_cert: Option<std::path::PathBuf>,
    },
}

#[derive(Deserialize)]
struct RawDatabaseSettings {
    database_url: Option<SecretString>,
    db_host: Option<String>,
    db_port: Option<u16>,
    db_name: Option<String>,
    db_secret_arn: Option<String>,
    db_ssl_root_cert: Option<std::path::PathBuf>,
}

impl DatabaseSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(None)
    }

    /// Every variable [`DatabaseSettings::from_env`] reads.
    pub fn variables() -> Vec<String> {
        variables_of::<RawDatabaseSettings>()
    }

    pub fn from_source(variables: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let raw: RawDatabaseSettings = from_source(variables)?;
        if let Some(url) = raw.database_url {
            return Ok(Self::Url(url));
        }
        let require = |value: Option<String>, name: &str| {
            value.filter(|v| !v.is_empty()).ok_or_else(|| {
                ConfigError::new(
                    name,
                    "is required when DATABASE_URL is not set (set DATABASE_URL, or DB_HOST, DB_NAME and DB_SECRET_ARN)",
                )
            })
        };
        let root_cert = raw
            .db_ssl_root_cert
            .filter(|path| !path.as_os_str().is_empty());
        if let Some(path) = &root_cert
            && !path.is_file()
        {
            return Err(ConfigError::new(
                "DB_SSL_ROOT_CERT",
                format!(
                    "names {}, which is not a file (the PEM bundle of the database's CA)",
                    path.display()
                ),
            ));
        }
        Ok(Self::Rds {
            host: require(raw.db_host, "DB_HOST")?,
            port: raw.db_port.unwrap_or(5432),
            name: require(raw.db_name, "DB_NAME")?,
            secret_arn: require(raw.db_secret_arn, "DB_SECRET_ARN")?,
            root_cert,
        })
    }
}

/// How the Kafka client authenticates (`KAFKA_SECURITY`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaSecurity {
    Plaintext,
    /// SASL/SCRAM-SHA-512 with an `AmazonMSK_` secret holding `username` and `password`.
    SaslScram,
    /// MSK IAM through SASL/OAUTHBEARER.
    Iam,
}

#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub security: KafkaSecurity,
    /// Required with `sasl_scram`.
    pub secret_arn: Option<String>,
    /// Use TLS with SASL (true on MSK; a local broker may speak SASL without TLS).
    pub tls: bool,
    /// How long one message may wait for the broker before it counts as not delivered.
    pub delivery_timeout: Duration,
}

#[derive(Deserialize)]
struct RawKafkaSettings {
    kafka_bootstrap_servers: String,
    kafka_security: Option<KafkaSecurity>,
    kafka_secret_arn: Option<String>,
    kafka_tls: Option<bool>,
    kafka_delivery_timeout_ms: Option<u64>,
}

impl KafkaSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(None)
    }

    /// Every variable [`KafkaSettings::from_env`] reads.
    pub fn variables() -> Vec<String> {
        variables_of::<RawKafkaSettings>()
    }

    pub fn from_source(variables: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let raw: RawKafkaSettings = from_source(variables)?;
        if raw.kafka_bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::new(
                "KAFKA_BOOTSTRAP_SERVERS",
                "must not be empty",
            ));
        }
        let security = raw.kafka_security.unwrap_or(KafkaSecurity::Plaintext);
        if security == KafkaSecurity::SaslScram && raw.kafka_secret_arn.is_none() {
            return Err(ConfigError::new(
                "KAFKA_SECRET_ARN",
                "is required when KAFKA_SECURITY=sasl_scram",
            ));
        }
        Ok(Self {
            bootstrap_servers: raw.kafka_bootstrap_servers,
            tls: raw
                .kafka_tls
                .unwrap_or(security != KafkaSecurity::Plaintext),
            security,
            secret_arn: raw.kafka_secret_arn,
            delivery_timeout: Duration::from_millis(raw.kafka_delivery_timeout_ms.unwrap_or(5_000)),
        })
    }

    /// Plain settings for a local broker, as tests and the local runtime use.
    pub fn plaintext(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            security: KafkaSecurity::Plaintext,
            secret_arn: None,
            tls: false,
            delivery_timeout: Duration::from_secs(5),
        }
    }
}

/// A `username` / `password` pair as RDS, MSK and our SMTP secret store it.
#[derive(Clone, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

/// Secrets Manager, fetched once per cold start and cached; `forget` after an auth failure.
/// Clones share one client and one cache.
#[derive(Clone, Default)]
pub struct Secrets(std::sync::Arc<SecretsInner>);

#[derive(Default)]
struct SecretsInner {
    client: OnceCell<aws_sdk_secretsmanager::Client>,
    cache: Mutex<HashMap<String, serde_json::Value>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("could not read secret {arn}: {source}")]
    Fetch {
        arn: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("secret {arn} does not hold the expected JSON: {source}")]
    Shape {
        arn: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `client` instead of one built from the environment (tests point it at the
    /// local emulator explicitly).
    pub fn from_client(client: aws_sdk_secretsmanager::Client) -> Self {
        Self(std::sync::Arc::new(SecretsInner {
            client: OnceCell::new_with(Some(client)),
            cache: Mutex::default(),
        }))
    }

    async fn client(&self) -> &aws_sdk_secretsmanager::Client {
        self.0
            .client
            .get_or_init(|| async {
                // Honours AWS_ENDPOINT_URL, so a local emulator stands in for the service.
                let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                aws_sdk_secretsmanager::Client::new(&config)
            })
            .await
    }

    /// The secret's JSON value, from the cache when it was already fetched.
    pub async fn json<T: DeserializeOwned>(&self, arn: &str) -> Result<T, SecretError> {
        let cached = self.0.cache.lock().await.get(arn).cloned();
        let value = match cached {
            Some(value) => value,
            None => {
                let value = self.fetch(arn).await?;
                self.0
                    .cache
                    .lock()
                    .await
                    .insert(arn.to_owned(), value.clone());
                value
            }
        };
        serde_json::from_value(value).map_err(|source| SecretError::Shape {
            arn: arn.to_owned(),
            source,
        })
    }

    /// Drops a cached value so that the next read fetches it again (after a rotation).
    pub async fn forget(&self, arn: &str) {
        self.0.cache.lock().await.remove(arn);
    }

    async fn fetch(&self, arn: &str) -> Result<serde_json::Value, SecretError> {
        let fetch_error = |source: Box<dyn std::error::Error + Send + Sync>| SecretError::Fetch {
            arn: arn.to_owned(),
            source,
        };
        let output = tokio::time::timeout(
            Duration::from_secs(5),
            self.client().await.get_secret_value().secret_id(arn).send(),
        )
        .await
        .map_err(|elapsed| fetch_error(Box::new(elapsed)))?
        .map_err(|err| {
            fetch_error(
                aws_sdk_secretsmanager::error::DisplayErrorContext(err)
                    .to_string()
                    .into(),
            )
        })?;
        let text = output
            .secret_string()
            .ok_or_else(|| fetch_error("the secret has no string value".into()))?;
        serde_json::from_str(text).map_err(|source| SecretError::Shape {
            arn: arn.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_wins() {
        let settings =
            DatabaseSettings::from_source(variable_map(&[("DATABASE_URL", "postgres://x@h/db")]))
                .unwrap();
        assert!(matches!(settings, DatabaseSettings::Url(_)));
    }

    #[test]
    fn rds_settings_name_the_missing_variable() {
        let err = DatabaseSettings::from_source(variable_map(&[
            ("DB_HOST", "db.internal"),
            ("DB_NAME", "orders"),
        ]))
        .err()
        .unwrap();
        assert_eq!(err.variable, "DB_SECRET_ARN");
        assert!(err.to_string().contains("DB_SECRET_ARN"));
    }

    #[test]
    fn a_root_certificate_that_is_not_a_file_is_named() {
        let err = DatabaseSettings::from_source(variable_map(&[
            ("DB_HOST", "db.internal"),
            ("DB_NAME", "orders"),
            (
                "DB_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:x",
            ),
            ("DB_SSL_ROOT_CERT", "/nowhere/global-bundle.pem"),
        ]))
        .err()
        .unwrap();
        assert_eq!(err.variable, "DB_SSL_ROOT_CERT");
        assert!(
            err.to_string().contains("/nowhere/global-bundle.pem"),
            "{err}"
        );
    }

    #[test]
    fn missing_kafka_bootstrap_servers_is_named() {
        let err = KafkaSettings::from_source(variable_map(&[])).unwrap_err();
        assert_eq!(err.variable, "KAFKA_BOOTSTRAP_SERVERS");
    }

    #[test]
    fn invalid_kafka_security_is_named() {
        let err = KafkaSettings::from_source(variable_map(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            ("KAFKA_SECURITY", "kerberos"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("KAFKA_SECURITY"), "{err}");
    }

    #[test]
    fn numeric_looking_values_parse_into_their_types() {
        let settings = KafkaSettings::from_source(variable_map(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            ("KAFKA_DELIVERY_TIMEOUT_MS", "1500"),
        ]))
        .unwrap();
        assert_eq!(settings.delivery_timeout, Duration::from_millis(1500));
        assert_eq!(settings.security, KafkaSecurity::Plaintext);
        assert!(!settings.tls);
    }

    #[test]
    fn variables_are_the_loaders_field_names_in_upper_case() {
        assert_eq!(
            DatabaseSettings::variables(),
            [
                "DATABASE_URL",
                "DB_HOST",
                "DB_PORT",
                "DB_NAME",
                "DB_SECRET_ARN",
                "DB_SSL_ROOT_CERT"
            ]
        );
        assert!(KafkaSettings::variables().contains(&"KAFKA_SECURITY".to_owned()));
    }

    #[test]
    fn a_loader_is_given_only_its_own_variables_whatever_their_case() {
        let names = ["KAFKA_BOOTSTRAP_SERVERS".to_owned(), "KAFKA_TLS".to_owned()];
        let own = own_variables(
            &names,
            variable_map(&[
                ("KAFKA_BOOTSTRAP_SERVERS", "b-1:9092"),
                ("kafka_tls", "true"),
                ("PATH", "/usr/bin"),
                ("KAFKA_TLS_EXTRA", "x"),
            ]),
        )
        .unwrap();
        let mut kept: Vec<&str> = own.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["KAFKA_BOOTSTRAP_SERVERS", "kafka_tls"]);
    }

    #[test]
    fn scram_requires_its_secret() {
        let err = KafkaSettings::from_source(variable_map(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "b-1:9096"),
            ("KAFKA_SECURITY", "sasl_scram"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "KAFKA_SECRET_ARN");
    }
}
