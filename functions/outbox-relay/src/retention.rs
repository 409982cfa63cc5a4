//! Retention (docs/data.md, "Retention"): personal data is kept only as long as it serves.
//! Each scheduled run of the relay also prunes, in bounded batches of short statements:
//!
//! - `processed_events` and `notifications` older than the dedup retention (14 days by
//!   default, longer than the topics' 7 days, so a record redelivered while Kafka still has
//!   it is still recognised and applied once);
//! - dead letters replayed longer ago than their retention (30 days by default);
//! - abuse-limit counters of windows that ended a day ago.
//!
//! Every batch is its own statement and transaction, so no lock is held for long, and a run
//! deletes at most `max_batches` batches per table; what is left goes at the next run.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use shared::config::{ConfigError, from_source, variables_of};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};

/// How long what is kept, and how much one run may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `processed_events` and `notifications` (`RETENTION_DAYS`).
    pub dedup: Duration,
    /// Dead letters, counted from their replay (`DEAD_LETTER_RETENTION_DAYS`).
    pub replayed_dead_letters: Duration,
    /// Rows per statement (`PRUNE_BATCH_SIZE`).
    pub batch_size: i64,
    /// Statements per table and run.
    pub max_batches: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            dedup: Duration::from_secs(14 * 86_400),
            replayed_dead_letters: Duration::from_secs(30 * 86_400),
            batch_size: 1_000,
            max_batches: 20,
        }
    }
}

#[derive(Deserialize)]
struct RawRetention {
    retention_days: Option<u64>,
    dead_letter_retention_days: Option<u64>,
    prune_batch_size: Option<i64>,
}

impl Retention {
    pub fn variables() -> Vec<String> {
        variables_of::<RawRetention>()
    }

    pub fn from_source(variables: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let raw: RawRetention = from_source(variables)?;
        let defaults = Self::default();
        let days = |value: Option<u64>, default: Duration, name: &str| match value {
            None => Ok(default),
            Some(days @ 1..=3650) => Ok(Duration::from_secs(days * 86_400)),
            Some(_) => Err(ConfigError::new(name, "must be between 1 and 3650 days")),
        };
        let batch_size = raw.prune_batch_size.unwrap_or(defaults.batch_size);
        if !(1..=100_000).contains(&batch_size) {
            return Err(ConfigError::new(
                "PRUNE_BATCH_SIZE",
                "must be between 1 and 100000",
            ));
        }
        Ok(Self {
            dedup: days(raw.retention_days, defaults.dedup, "RETENTION_DAYS")?,
            replayed_dead_letters: days(
                raw.dead_letter_retention_days,
                defaults.replayed_dead_letters,
                "DEAD_LETTER_RETENTION_DAYS",
            )?,
            batch_size,
            max_batches: defaults.max_batches,
        })
    }
}

/// Rows one run removed, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub processed_events: u64,
    pub notifications: u64,
    pub dead_letters: u64,
    pub request_counts: u64,
}

/// One pruning pass over every table; records what it removed in `rows_pruned_total`.
#[tracing::instrument(skip_all, err)]
pub async fn prune(pool: &PgPool, retention: &Retention) -> sqlx::Result<Pruned> {
    let dedup_secs = retention.dedup.as_secs_f64();
    let dead_letter_secs = retention.replayed_dead_letters.as_secs_f64();
    let limit = retention.batch_size;
    let processed_events = batches(pool, retention, || {
        sqlx::query!(
            "DELETE FROM processed_events WHERE (consumer, event_id) IN (
                 SELECT consumer, event_id FROM processed_events
                 WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2)",
            dedup_secs,
            limit,
        )
    })
    .await?;
    let notifications = batches(pool, retention, || {
        sqlx::query!(
            "DELETE FROM notifications WHERE (order_id, kind) IN (
                 SELECT order_id, kind FROM notifications
                 WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)",
            dedup_secs,
            limit,
        )
    })
    .await?;
    let dead_letters = batches(pool, retention, || {
        sqlx::query!(
            "DELETE FROM dead_letters WHERE id IN (
                 SELECT id FROM dead_letters
                 WHERE replayed_at < now() - make_interval(secs => $1) LIMIT $2)",
            dead_letter_secs,
            limit,
        )
    })
    .await?;
    let request_counts = batches(pool, retention, || {
        sqlx::query!(
            "DELETE FROM request_counts WHERE (counter, subject, window_start) IN (
                 SELECT counter, subject, window_start FROM request_counts
                 WHERE window_start < now() - interval '8 days' LIMIT $1)",
            limit,
        )
    })
    .await?;
    let pruned = Pruned {
        processed_events,
        notifications,
        dead_letters,
        request_counts,
    };
    for (table, rows) in [
        ("processed_events", pruned.processed_events),
        ("notifications", pruned.notifications),
        ("dead_letters", pruned.dead_letters),
        ("request_counts", pruned.request_counts),
    ] {
        shared::metrics::rows_pruned(table, rows);
    }
    tracing::info!(?pruned, "retention: old rows pruned");
    Ok(pruned)
}

/// Runs the DELETE of one batch that `delete` makes until a batch comes back short or the
/// run's share is spent; the total of rows deleted.
async fn batches(
    pool: &PgPool,
    retention: &Retention,
    mut delete: impl FnMut() -> Query<'static, Postgres, PgArguments>,
) -> sqlx::Result<u64> {
    let mut total = 0;
    for _ in 0..retention.max_batches {
        let deleted = delete().execute(pool).await?.rows_affected();
        total += deleted;
        if deleted < retention.batch_size as u64 {
            break;
        }
    }
    Ok(total)
}
