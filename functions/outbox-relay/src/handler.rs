//! One scheduled run: claim stragglers in batches, publish them, mark what the broker
//! acknowledged, and stop early when the broker fails.

use std::time::Duration;

use shared::db::Database;
use shared::kafka::KafkaPublisher;
use shared::metrics;
use shared::outbox;
use sqlx::PgPool;

use crate::store;

/// Bounds on one relay run.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// Rows younger than this are left to the function that wrote them.
    pub min_age: Duration,
    /// Rows claimed per transaction.
    pub batch_size: i64,
    /// Batches per run, so that a run always ends within the function's timeout.
    pub max_batches: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            min_age: Duration::from_secs(30),
            batch_size: 500,
            max_batches: 20,
        }
    }
}

/// What a relay run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
}

/// Why a relay run failed; Lambda retries the scheduled invocation.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the database is unavailable: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{failed} outbox rows could not be published; they stay pending")]
    Broker { failed: usize },
}

impl From<RelayError> for lambda_runtime::Diagnostic {
    fn from(err: RelayError) -> Self {
        let error_type = match &err {
            RelayError::Database(source) if shared::db::is_transient(source) => {
                "Transient.DatabaseUnavailable"
            }
            RelayError::Database(_) => "Permanent.DatabaseError",
            RelayError::Broker { .. } => "Transient.BrokerUnavailable",
        };
        Self {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// The relay's dependencies, built once per cold start.
pub struct Relay {
    database: Database,
    publisher: KafkaPublisher,
    limits: RelayLimits,
    retention: Option<crate::retention::Retention>,
}

impl Relay {
    pub fn new(database: Database, publisher: KafkaPublisher, limits: RelayLimits) -> Self {
        Self {
            database,
            publisher,
            limits,
            retention: None,
        }
    }

    /// Also prunes old rows on every run ([`crate::retention`]).
    pub fn with_retention(mut self, retention: crate::retention::Retention) -> Self {
        self.retention = Some(retention);
        self
    }

    /// One scheduled run; after the database refused the credentials, fetches them again
    /// so that the next run logs in.
    pub async fn run(&self) -> Result<RelayReport, RelayError> {
        let result = run_once(self.database.pool(), &self.publisher, self.limits).await;
        if let Err(RelayError::Database(err)) = &result {
            self.database.recover(err).await;
        } else {
            record_outbox_age(self.database.pool()).await;
            if let Some(retention) = &self.retention {
                // A failed prune is logged and tried again at the next run; it never fails
                // the publishing that this run did.
                let _ = crate::retention::prune(self.database.pool(), retention).await;
            }
        }
        result
    }
}

/// One run: publishes what it can, and fails when the broker refused anything, so that the
/// outage is visible in the function's error metric.
#[tracing::instrument(skip_all, err)]
pub async fn run_once(
    pool: &PgPool,
    publisher: &KafkaPublisher,
    limits: RelayLimits,
) -> Result<RelayReport, RelayError> {
    let mut report = RelayReport::default();
    for _ in 0..limits.max_batches {
        let mut tx = pool.begin().await?;
        let rows = store::claim_unpublished(&mut tx, limits.min_age, limits.batch_size).await?;
        if rows.is_empty() {
            break;
        }
        let sent = outbox::send(publisher, &rows).await;
        outbox::forget_published(&mut *tx, &sent.delivered).await?;
        tx.commit().await?;
        report.published += sent.published;
        report.failed += sent.failed.len();
        if !sent.all_published() || (rows.len() as i64) < limits.batch_size {
            break;
        }
    }
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

/// Sets `outbox_oldest_unpublished_seconds` to the age of the oldest row still waiting for
/// the broker (0 when none is), the signal that the outbox is draining.
pub async fn record_outbox_age(pool: &PgPool) {
    match store::oldest_unpublished_age(pool).await {
        Ok(age) => metrics::outbox_oldest_unpublished(age),
        Err(err) => tracing::warn!(error = %err, "could not read the outbox's oldest row"),
    }
}
