//! The outbox relay: on a schedule, publishes outbox rows still unpublished after a grace
//! period (their writer's own publish failed or it crashed between commit and publish).

use std::time::Duration;

use serde::Deserialize;
use shared::config::{ConfigError, DatabaseSettings, KafkaSettings, from_env, variables_of};
use shared::kafka::KafkaPublisher;
use shared::outbox::{self, RelayLimits, RelayReport};
use sqlx::PgPool;

/// Settings of the relay function.
pub struct RelayConfig {
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub limits: RelayLimits,
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
        let mut names = DatabaseSettings::variables();
        names.extend(KafkaSettings::variables());
        names.extend(variables_of::<RawRelaySettings>());
        names
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let raw: RawRelaySettings = from_env()?;
        let defaults = RelayLimits::default();
        let batch_size = raw.relay_batch_size.unwrap_or(defaults.batch_size);
        if !(1..=10_000).contains(&batch_size) {
            return Err(ConfigError::new(
                "RELAY_BATCH_SIZE",
                "must be between 1 and 10000",
            ));
        }
        Ok(Self {
            database: DatabaseSettings::from_env()?,
            kafka: KafkaSettings::from_env()?,
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

/// Why a relay run failed; Lambda retries the scheduled invocation.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the database is unavailable: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{failed} outbox rows could not be published; they stay pending")]
    Broker { failed: usize },
}

/// One scheduled run: publishes what it can, and fails when the broker refused anything,
/// so that the outage is visible in the function's error metric.
#[tracing::instrument(skip_all, err)]
pub async fn run_once(
    pool: &PgPool,
    publisher: &KafkaPublisher,
    limits: RelayLimits,
) -> Result<RelayReport, RelayError> {
    let report = outbox::relay(pool, publisher, limits).await?;
    tracing::info!(
        published = report.published,
        failed = report.failed,
        "outbox relay run finished"
    );
    if report.failed > 0 {
        return Err(RelayError::Broker {
            failed: report.failed,
        });
    }
    Ok(report)
}

impl From<RelayError> for lambda_runtime::Diagnostic {
    fn from(err: RelayError) -> Self {
        let error_type = match err {
            RelayError::Database(_) => "RelayError::Database",
            RelayError::Broker { .. } => "RelayError::Broker",
        };
        Self {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
}
