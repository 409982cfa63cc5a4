//! Settings of the inventory function (docs/configuration.md), read once per cold start.

use shared::db::Role;
use std::collections::HashMap;

use serde::Deserialize;
use shared::config::{
    ConfigError, DatabaseSettings, KafkaSettings, from_source, per_invocation_pool_size,
    variables_with_connections,
};

/// Everything the function needs to build its pool and producer.
#[derive(Clone)]
pub struct InventoryConfig {
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    /// Pool size (`DB_MAX_CONNECTIONS`); one invocation uses one connection at a time, so by
    /// default 2, or one per invocation the instance serves at once (up to 50).
    pub max_connections: u32,
}

#[derive(Deserialize)]
struct RawInventorySettings {
    db_max_connections: Option<u32>,
}

impl InventoryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(None)
    }

    /// Every variable [`Self::from_env`] reads (the template contract test compares them
    /// with `template.yaml`).
    pub fn variables() -> Vec<String> {
        let mut names = variables_with_connections::<RawInventorySettings>();
        names.push(shared::metrics::emf::NAMESPACE_VARIABLE.to_owned());
        names.push(shared::trace::export::ENDPOINT_VARIABLE.to_owned());
        names
    }

    /// As [`Self::from_env`], from an explicit map of variables.
    pub fn from_source(variables: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let raw: RawInventorySettings = from_source(variables.clone())?;
        let max_connections = per_invocation_pool_size(raw.db_max_connections, variables.clone())?;
        Ok(Self {
            database: DatabaseSettings::from_source(variables.clone())?,
            kafka: KafkaSettings::from_source(variables)?,
            max_connections,
        })
    }
}

shared::impl_connection_settings!(InventoryConfig, Role::Inventory);

#[cfg(test)]
mod tests {
    use super::*;

    use shared::config::variable_map as vars;

    #[test]
    fn local_settings_are_read_with_defaults() {
        let config = InventoryConfig::from_source(vars(&[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders"),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        ]))
        .unwrap();
        assert!(matches!(config.database, DatabaseSettings::Url(_)));
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(config.max_connections, 2);
    }

    #[test]
    fn the_default_pool_follows_the_invocations_an_instance_serves_at_once() {
        let local = [
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders"),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = local.to_vec();
            pairs.extend_from_slice(extra);
            InventoryConfig::from_source(vars(&pairs))
                .unwrap()
                .max_connections
        };
        assert_eq!(with(&[("AWS_LAMBDA_MAX_CONCURRENCY", "8")]), 8);
        assert_eq!(with(&[("AWS_LAMBDA_MAX_CONCURRENCY", "200")]), 50);
        let explicit = [
            ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
            ("DB_MAX_CONNECTIONS", "3"),
        ];
        assert_eq!(with(&explicit), 3);
    }

    #[test]
    fn a_missing_broker_is_named() {
        let err = InventoryConfig::from_source(vars(&[(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/orders",
        )]))
        .err()
        .unwrap();
        assert_eq!(err.variable, "KAFKA_BOOTSTRAP_SERVERS");
    }

    #[test]
    fn an_out_of_range_pool_size_is_named() {
        let err = InventoryConfig::from_source(vars(&[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders"),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            ("DB_MAX_CONNECTIONS", "0"),
        ]))
        .err()
        .unwrap();
        assert_eq!(err.variable, "DB_MAX_CONNECTIONS");
    }
}
