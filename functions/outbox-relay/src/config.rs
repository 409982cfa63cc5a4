//! Settings of the relay function (docs/configuration.md), read once per cold start.

use shared::db::Role;
use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use shared::config::{
    ConfigError, DatabaseSettings, KafkaSettings, from_source, variables_with_connections,
};

use crate::handler::RelayLimits;

/// Everything the relay needs to build its pool and producer.
pub struct RelayConfig {
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub limits: RelayLimits,
    /// What the relay's runs prune, and when.
    pub retention: crate::retention::Retention,
    /// Pool size: one connection per run in flight plus one for the outbox age gauge, so two
    /// on classic Lambda (one run at a time) and more on Lambda Managed Instances.
    pub max_connections: u32,
}

#[derive(Deserialize)]
struct RawRelaySettings {
    relay_min_age_secs: Option<u64>,
    relay_batch_size: Option<i64>,
    relay_max_batches: Option<usize>,
}

impl RelayConfig {
    /// Every variable [`Self::from_env`] reads (the template contract test compares them
    /// with `template.yaml`).
    pub fn variables() -> Vec<String> {
        let mut names = variables_with_connections::<RawRelaySettings>();
        names.extend(crate::retention::Retention::variables());
        names.push(shared::metrics::emf::NAMESPACE_VARIABLE.to_owned());
        names
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(None)
    }

    /// As [`Self::from_env`], from an explicit map of variables.
    pub fn from_source(variables: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let raw: RawRelaySettings = from_source(variables.clone())?;
        let defaults = RelayLimits::default();
        let batch_size = raw.relay_batch_size.unwrap_or(defaults.batch_size);
        if !(1..=10_000).contains(&batch_size) {
            return Err(ConfigError::new(
                "RELAY_BATCH_SIZE",
                "must be between 1 and 10000",
            ));
        }
        let concurrency = shared::lambda::max_concurrency(variables.clone());
        Ok(Self {
            max_connections: shared::lambda::default_pool_size(2, concurrency, 1),
            database: DatabaseSettings::from_source(variables.clone())?,
            retention: crate::retention::Retention::from_source(variables.clone())?,
            kafka: KafkaSettings::from_source(variables)?,
            limits: RelayLimits {
                min_age: raw
                    .relay_min_age_secs
                    .map_or(defaults.min_age, Duration::from_secs),
                batch_size,
                max_batches: raw.relay_max_batches.unwrap_or(defaults.max_batches),
            },
        })
    }
}

shared::impl_connection_settings!(RelayConfig, Role::OutboxRelay);

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::variable_map as vars;

    #[test]
    fn an_out_of_range_batch_size_is_named() {
        let err = RelayConfig::from_source(vars(&[
            ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            ("RELAY_BATCH_SIZE", "0"),
        ]))
        .err()
        .unwrap();
        assert_eq!(err.variable, "RELAY_BATCH_SIZE");
    }

    #[test]
    fn the_pool_holds_one_connection_per_run_in_flight_plus_one() {
        let local = [
            ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        ];
        let classic = RelayConfig::from_source(vars(&local)).unwrap();
        assert_eq!(classic.max_connections, 2);
        let mut managed = local.to_vec();
        managed.push(("AWS_LAMBDA_MAX_CONCURRENCY", "4"));
        let managed = RelayConfig::from_source(vars(&managed)).unwrap();
        assert_eq!(managed.max_connections, 5);
    }
}
