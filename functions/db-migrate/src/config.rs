//! Settings of the migrate function (docs/configuration.md): the shared database and Kafka settings plus
//! the layout of the topics it creates.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use shared::config::{ConfigError, DatabaseSettings, KafkaSettings, from_source, variables_of};
use shared::db::Role;

use crate::budget::Budget;

/// How the topics are laid out when they are created (partitions and replication of existing
/// topics are left alone; their retention is set on every run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLayout {
    pub partitions: i32,
    /// `-1` lets the broker choose (its `default.replication.factor`; MSK Serverless fixes 3).
    pub replication_factor: i32,
    /// Each topic's `retention.ms` (`TOPIC_RETENTION_DAYS`): how long events, with the
    /// names and addresses they carry, stay in Kafka.
    pub retention: Duration,
}

/// The topics' retention when `TOPIC_RETENTION_DAYS` is not set.
pub const DEFAULT_TOPIC_RETENTION_DAYS: u64 = 7;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for TopicLayout {
    fn default() -> Self {
        Self {
            partitions: 3,
            replication_factor: -1,
            retention: DAY * DEFAULT_TOPIC_RETENTION_DAYS as u32,
        }
    }
}

/// Everything the function reads at start-up.
#[derive(Clone)]
pub struct MigrateConfig {
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub topics: TopicLayout,
    /// The connection budget to check on every deploy (`CONNECTION_BUDGET`); unset locally.
    pub budget: Option<Budget>,
    /// Each function role's secret, whose password db-migrate sets on the role on every run
    /// (`DB_ROLE_SECRET_ARNS`, `role=arn` pairs); empty locally, where the roles log in
    /// without a password.
    pub role_secrets: Vec<(Role, String)>,
}

#[derive(Deserialize)]
struct RawTopicSettings {
    topic_partitions: Option<i32>,
    topic_replication_factor: Option<i32>,
    topic_retention_days: Option<u32>,
    connection_budget: Option<String>,
    connection_budget_percent: Option<u32>,
    db_role_secret_arns: Option<String>,
}

/// `order_api=arn:...,inventory=arn:...`: every pair names a known role, each role once.
fn parse_role_secrets(text: &str) -> Result<Vec<(Role, String)>, ConfigError> {
    const NAME: &str = "DB_ROLE_SECRET_ARNS";
    let mut pairs: Vec<(Role, String)> = Vec::new();
    for pair in text
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (name, arn) = pair
            .split_once('=')
            .map(|(name, arn)| (name.trim(), arn.trim()))
            .filter(|(_, arn)| !arn.is_empty())
            .ok_or_else(|| ConfigError::new(NAME, format!("{pair:?} is not role=secretArn")))?;
        let role = Role::from_name(name).ok_or_else(|| {
            ConfigError::new(NAME, format!("{name:?} is not a function's database role"))
        })?;
        if pairs.iter().any(|(seen, _)| *seen == role) {
            return Err(ConfigError::new(NAME, format!("names {name} twice")));
        }
        pairs.push((role, arn.to_owned()));
    }
    Ok(pairs)
}

/// The share of `max_connections` the functions may use when `CONNECTION_BUDGET_PERCENT` is
/// not set (the template's default for the proxy).
pub const DEFAULT_BUDGET_PERCENT: u32 = 80;

impl MigrateConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(None)
    }

    /// As [`MigrateConfig::from_env`], from an explicit map of variables.
    pub fn from_source(variables: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let raw: RawTopicSettings = from_source(variables.clone())?;
        let defaults = TopicLayout::default();
        let partitions = raw.topic_partitions.unwrap_or(defaults.partitions);
        if !(1..=1000).contains(&partitions) {
            return Err(ConfigError::new(
                "TOPIC_PARTITIONS",
                "must be between 1 and 1000",
            ));
        }
        let replication_factor = raw
            .topic_replication_factor
            .unwrap_or(defaults.replication_factor);
        if replication_factor == 0 || replication_factor < -1 {
            return Err(ConfigError::new(
                "TOPIC_REPLICATION_FACTOR",
                "must be -1 (the broker's default) or at least 1",
            ));
        }
        let retention_days = raw
            .topic_retention_days
            .unwrap_or(DEFAULT_TOPIC_RETENTION_DAYS as u32);
        if !(1..=3650).contains(&retention_days) {
            return Err(ConfigError::new(
                "TOPIC_RETENTION_DAYS",
                "must be between 1 and 3650",
            ));
        }
        let role_secrets = raw
            .db_role_secret_arns
            .as_deref()
            .map(parse_role_secrets)
            .transpose()?
            .unwrap_or_default();
        let budget = raw
            .connection_budget
            .map(|text| {
                let percent = raw
                    .connection_budget_percent
                    .unwrap_or(DEFAULT_BUDGET_PERCENT);
                Budget::parse(&text, percent, "CONNECTION_BUDGET")
            })
            .transpose()?;
        Ok(Self {
            budget,
            database: DatabaseSettings::from_source(variables.clone())?,
            kafka: KafkaSettings::from_source(variables)?,
            topics: TopicLayout {
                partitions,
                replication_factor,
                retention: DAY * retention_days,
            },
            role_secrets,
        })
    }

    /// Every environment variable [`MigrateConfig::from_env`] reads (for the template
    /// contract test).
    pub fn variables() -> Vec<String> {
        let mut names = DatabaseSettings::variables();
        names.extend(KafkaSettings::variables());
        names.extend(variables_of::<RawTopicSettings>());
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    const BASE: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    ];

    #[test]
    fn topics_default_to_three_partitions_and_the_brokers_replication() {
        let config = MigrateConfig::from_source(vars(&BASE)).unwrap();
        assert_eq!(config.topics, TopicLayout::default());
    }

    #[test]
    fn topics_keep_events_seven_days_unless_told_otherwise() {
        assert_eq!(
            MigrateConfig::from_source(vars(&BASE))
                .unwrap()
                .topics
                .retention,
            Duration::from_secs(7 * 86_400)
        );
        let mut pairs = BASE.to_vec();
        pairs.push(("TOPIC_RETENTION_DAYS", "3"));
        let config = MigrateConfig::from_source(vars(&pairs)).unwrap();
        assert_eq!(config.topics.retention, Duration::from_secs(3 * 86_400));
        pairs.push(("TOPIC_RETENTION_DAYS", "0"));
        let err = MigrateConfig::from_source(vars(&pairs)).err().unwrap();
        assert_eq!(err.variable, "TOPIC_RETENTION_DAYS");
    }

    #[test]
    fn role_secrets_are_read_as_role_arn_pairs() {
        let mut pairs = BASE.to_vec();
        pairs.push((
            "DB_ROLE_SECRET_ARNS",
            "order_api=arn:aws:secretsmanager:eu-west-1:1:secret:a, outbox_relay=arn:b",
        ));
        let config = MigrateConfig::from_source(vars(&pairs)).unwrap();
        assert_eq!(
            config.role_secrets,
            [
                (
                    Role::OrderApi,
                    "arn:aws:secretsmanager:eu-west-1:1:secret:a".to_owned()
                ),
                (Role::OutboxRelay, "arn:b".to_owned()),
            ]
        );
        assert!(
            MigrateConfig::from_source(vars(&BASE))
                .unwrap()
                .role_secrets
                .is_empty()
        );
        for wrong in [
            "postgres=arn:x",
            "order_api",
            "order_api=arn:x,order_api=arn:y",
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push(("DB_ROLE_SECRET_ARNS", wrong));
            let err = MigrateConfig::from_source(vars(&pairs)).err().unwrap();
            assert_eq!(err.variable, "DB_ROLE_SECRET_ARNS", "{wrong}");
        }
    }

    #[test]
    fn a_zero_replication_factor_is_refused_by_name() {
        let mut pairs = BASE.to_vec();
        pairs.push(("TOPIC_REPLICATION_FACTOR", "0"));
        let err = MigrateConfig::from_source(vars(&pairs)).err().unwrap();
        assert_eq!(err.variable, "TOPIC_REPLICATION_FACTOR");
    }

    #[test]
    fn the_connection_budget_is_read_with_its_percentage() {
        let mut pairs = BASE.to_vec();
        pairs.push(("CONNECTION_BUDGET", "order-api=20x2, inventory=3x2"));
        pairs.push(("CONNECTION_BUDGET_PERCENT", "50"));
        let budget = MigrateConfig::from_source(vars(&pairs))
            .unwrap()
            .budget
            .unwrap();
        assert_eq!((budget.demand(), budget.percent), (46, 50));
        assert!(
            MigrateConfig::from_source(vars(&BASE))
                .unwrap()
                .budget
                .is_none()
        );
    }

    #[test]
    fn variables_cover_database_kafka_and_topics() {
        let names = MigrateConfig::variables();
        for name in ["DB_SECRET_ARN", "KAFKA_SECURITY", "TOPIC_PARTITIONS"] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
    }
}
