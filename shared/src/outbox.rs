//! The transactional outbox (DESIGN §5): events are written in the same transaction as the
//! state change that causes them, published after commit, and marked `published_at`.
//! Rows a function could not publish are picked up later by the relay.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use crate::events::OrderEvent;
use crate::kafka::{KafkaPublisher, PublishError};

/// One outbox row: a serialised event and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub topic: String,
    pub key: String,
    pub payload: serde_json::Value,
}

/// What a publish pass did.
#[derive(Debug, Default)]
pub struct PublishReport {
    pub published: usize,
    /// Rows left for the relay, with why each failed.
    pub failed: Vec<(i64, PublishError)>,
}

impl PublishReport {
    pub fn all_published(&self) -> bool {
        self.failed.is_empty()
    }
}

/// What an outbox row holds before it is inserted (the database assigns the id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub topic: String,
    pub key: String,
    pub payload: serde_json::Value,
}

impl OutboxEntry {
    pub fn from_event(event: &OrderEvent) -> Self {
        Self {
            topic: event.topic().to_owned(),
            key: event.key(),
            payload: serde_json::to_value(event).expect("events always serialise"),
        }
    }

    /// The row as stored under `id`.
    pub fn stored_as(self, id: i64) -> OutboxRow {
        OutboxRow {
            id,
            topic: self.topic,
            key: self.key,
            payload: self.payload,
        }
    }
}

/// Writes `events` to the outbox inside the caller's transaction, in one statement.
/// Rows come back in the order of `events`.
pub async fn enqueue(
    conn: &mut PgConnection,
    events: &[OrderEvent],
) -> sqlx::Result<Vec<OutboxRow>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut topics = Vec::with_capacity(events.len());
    let mut keys = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for event in events {
        let row = OutboxEntry::from_event(event);
        topics.push(row.topic);
        keys.push(row.key);
        payloads.push(row.payload);
    }
    sqlx::query_as::<_, OutboxRow>(
        "INSERT INTO outbox (topic, key, payload)
         SELECT topic, key, payload
         FROM UNNEST($1::text[], $2::text[], $3::jsonb[]) WITH ORDINALITY AS e(topic, key, payload, n)
         ORDER BY n
         RETURNING id, topic, key, payload",
    )
    .bind(&topics)
    .bind(&keys)
    .bind(&payloads)
    .fetch_all(&mut *conn)
    .await
    .map(|mut rows| {
        // bigserial ids follow the insertion order, which follows `events`.
        rows.sort_by_key(|row| row.id);
        rows
    })
}

/// Publishes rows that were just committed and marks the delivered ones, in one UPDATE.
/// Undelivered rows stay pending for the relay; only a database failure is an error.
pub async fn publish(
    pool: &PgPool,
    publisher: &KafkaPublisher,
    rows: &[OutboxRow],
) -> sqlx::Result<PublishReport> {
    let (delivered, report) = send(publisher, rows).await;
    mark_published(pool, &delivered).await?;
    Ok(report)
}

async fn send(publisher: &KafkaPublisher, rows: &[OutboxRow]) -> (Vec<i64>, PublishReport) {
    let payloads: Vec<Vec<u8>> = rows
        .iter()
        .map(|row| serde_json::to_vec(&row.payload).expect("JSON values always serialise"))
        .collect();
    let results = publisher
        .publish_all(
            rows.iter()
                .zip(&payloads)
                .map(|(row, payload)| (row.topic.as_str(), row.key.as_str(), payload.as_slice())),
        )
        .await;
    let mut delivered = Vec::with_capacity(rows.len());
    let mut report = PublishReport::default();
    for (row, result) in rows.iter().zip(results) {
        match result {
            Ok(()) => delivered.push(row.id),
            Err(err) => {
                tracing::warn!(outbox_id = row.id, topic = %row.topic, error = %err, "event left for the outbox relay");
                report.failed.push((row.id, err));
            }
        }
    }
    report.published = delivered.len();
    (delivered, report)
}

async fn mark_published<'c>(conn: impl sqlx::PgExecutor<'c>, ids: &[i64]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL",
    )
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

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
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
}

/// Publishes stragglers: claims old unpublished rows with `FOR UPDATE SKIP LOCKED`, so that
/// concurrent relays never publish the same row twice, and stops early when the broker fails.
pub async fn relay(
    pool: &PgPool,
    publisher: &KafkaPublisher,
    limits: RelayLimits,
) -> sqlx::Result<RelayReport> {
    let mut report = RelayReport::default();
    let min_age_ms = i64::try_from(limits.min_age.as_millis()).unwrap_or(i64::MAX);
    for _ in 0..limits.max_batches {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query_as::<_, OutboxRow>(
            "SELECT id, topic, key, payload FROM outbox
             WHERE published_at IS NULL
               AND created_at <= now() - make_interval(secs => $1::float8 / 1000)
             ORDER BY id
             LIMIT $2
             FOR UPDATE SKIP LOCKED",
        )
        .bind(min_age_ms)
        .bind(limits.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            break;
        }
        let (delivered, sent) = send(publisher, &rows).await;
        mark_published(&mut *tx, &delivered).await?;
        tx.commit().await?;
        report.published += sent.published;
        report.failed += sent.failed.len();
        if !sent.all_published() || (rows.len() as i64) < limits.batch_size {
            break;
        }
    }
    Ok(report)
}
