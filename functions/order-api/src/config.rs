//! The function's settings (docs/configuration.md), read once at start-up; a bad value names its variable.

use shared::connections::ConnectionSettings;
use shared::db::Role;
use sqlx::postgres::PgPoolOptions;
use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use shared::config::{ConfigError, DatabaseSettings, KafkaSettings, from_source, variables_of};

/// Everything the order API needs to start.
#[derive(Clone)]
pub struct OrderApiConfig {
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    /// Pool size (`DB_MAX_CONNECTIONS`). A request holds one connection at a time and the
    /// outbox marks at most [`crate::publish::MAX_IN_FLIGHT`], so by default 4 on classic
    /// Lambda (one request at a time) and one per request served at once plus the marks on
    /// Lambda Managed Instances.
    pub max_connections: u32,
    /// The abuse limits on placing orders (`ABUSE_LIMITS`, `LIMIT_*`).
    pub limits: crate::limits::Limits,
}

#[derive(Deserialize)]
struct RawApiSettings {
    kafka_delivery_timeout_ms: Option<u64>,
    db_max_connections: Option<u32>,
}

impl OrderApiConfig {
    /// How long a POST waits for the broker when `KAFKA_DELIVERY_TIMEOUT_MS` is not set.
    /// Short, because a client is waiting and the outbox relay covers what does not make it.
    pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(None)
    }

    /// Every variable [`Self::from_env`] reads (the template contract test compares them
    /// with `template.yaml`).
    pub fn variables() -> Vec<String> {
        let mut names = DatabaseSettings::variables();
        names.extend(KafkaSettings::variables());
        names.extend(variables_of::<RawApiSettings>());
        names.extend(crate::limits::Limits::variables());
        names.push(shared::metrics::emf::NAMESPACE_VARIABLE.to_owned());
        names.push(shared::trace::export::ENDPOINT_VARIABLE.to_owned());
        names
    }

    /// As [`Self::from_env`], from explicit variables (`None` reads the environment).
    pub fn from_source(variables: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let database = DatabaseSettings::from_source(variables.clone())?;
        let mut kafka = KafkaSettings::from_source(variables.clone())?;
        let raw: RawApiSettings = from_source(variables.clone())?;
        if raw.kafka_delivery_timeout_ms.is_none() {
            kafka.delivery_timeout = Self::DEFAULT_DELIVERY_TIMEOUT;
        }
        let concurrency = shared::lambda::max_concurrency(variables.clone());
        let max_connections = raw.db_max_connections.unwrap_or_else(|| {
            shared::lambda::default_pool_size(
                Self::DEFAULT_MAX_CONNECTIONS,
                concurrency,
                crate::publish::MAX_IN_FLIGHT as u32,
            )
            .min(1000)
        });
        if !(1..=1000).contains(&max_connections) {
            return Err(ConfigError::new(
                "DB_MAX_CONNECTIONS",
                "must be between 1 and 1000",
            ));
        }
        Ok(Self {
            database,
            kafka,
            max_connections,
            limits: crate::limits::Limits::from_source(variables)?,
        })
    }
}

impl ConnectionSettings for OrderApiConfig {
    const ROLE: Role = Role::OrderApi;

    fn database(&self) -> &DatabaseSettings {
        &self.database
    }

    fn kafka(&self) -> &KafkaSettings {
        &self.kafka
    }

    fn pool(&self) -> PgPoolOptions {
        crate::state::request_pool(self.max_connections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use shared::config::variable_map as vars;

    const LOCAL: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders"),
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    ];

    #[test]
    fn a_missing_bootstrap_server_list_is_named() {
        let err = OrderApiConfig::from_source(vars(&LOCAL[..1]))
            .err()
            .unwrap();
        assert_eq!(err.variable, "KAFKA_BOOTSTRAP_SERVERS");
    }

    #[test]
    fn a_missing_database_setting_is_named() {
        let err = OrderApiConfig::from_source(vars(&LOCAL[1..]))
            .err()
            .unwrap();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn the_delivery_timeout_defaults_to_two_seconds_and_can_be_set() {
        let config = OrderApiConfig::from_source(vars(&LOCAL)).unwrap();
        assert_eq!(config.kafka.delivery_timeout, Duration::from_secs(2));
        assert_eq!(config.max_connections, 4);
        let mut pairs = LOCAL.to_vec();
        pairs.push(("KAFKA_DELIVERY_TIMEOUT_MS", "750"));
        pairs.push(("DB_MAX_CONNECTIONS", "16"));
        let config = OrderApiConfig::from_source(vars(&pairs)).unwrap();
        assert_eq!(config.kafka.delivery_timeout, Duration::from_millis(750));
        assert_eq!(config.max_connections, 16);
    }

    #[test]
    fn the_default_pool_follows_the_requests_an_instance_serves_at_once() {
        let mut pairs = LOCAL.to_vec();
        pairs.push(("AWS_LAMBDA_MAX_CONCURRENCY", "8"));
        let config = OrderApiConfig::from_source(vars(&pairs)).unwrap();
        assert_eq!(config.max_connections, 8 + 2);
        pairs.push(("DB_MAX_CONNECTIONS", "3"));
        let config = OrderApiConfig::from_source(vars(&pairs)).unwrap();
        assert_eq!(config.max_connections, 3);
    }

    #[test]
    fn an_invalid_pool_size_is_named() {
        let mut pairs = LOCAL.to_vec();
        pairs.push(("DB_MAX_CONNECTIONS", "0"));
        let err = OrderApiConfig::from_source(vars(&pairs)).err().unwrap();
        assert_eq!(err.variable, "DB_MAX_CONNECTIONS");
    }
}
