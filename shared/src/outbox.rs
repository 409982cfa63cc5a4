//! The transactional outbox (docs/failure-rules.md, "Outbox"): events are written in the same
//! transaction as the state change that causes them, published after commit, and deleted
//! once the broker acknowledged them, so the table holds only what is still to be sent.
//! Rows a function could not publish are picked up later by the relay (the outbox-relay
//! function, which claims them with `FOR UPDATE SKIP LOCKED`).
//!
//! [`publish`] is the one way a function publishes what it just committed: order-api's
//! background publisher and the consumers call it; the relay sends what it claimed with the
//! same [`send`] and [`forget_published`], inside its claiming transaction.

use sqlx::{PgConnection, PgPool};

use crate::consumer::StepFailure;
use crate::events::OrderEvent;
use crate::kafka::{KafkaPublisher, Outgoing, PublishError};

/// One outbox row: a serialised event and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub topic: String,
    pub key: String,
    pub payload: serde_json::Value,
    /// The event's W3C `traceparent`, sent as the Kafka header of the same name; `None` for
    /// rows written before tracing existed.
    pub traceparent: Option<String>,
}

/// What a publish pass did.
#[derive(Debug, Default)]
pub struct PublishReport {
    pub published: usize,
    /// The ids of the rows the broker acknowledged, to be deleted.
    pub delivered: Vec<i64>,
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
    pub traceparent: Option<String>,
}

impl OutboxEntry {
    pub fn from_event(event: &OrderEvent) -> Self {
        Self {
            topic: event.topic().to_owned(),
            key: event.key(),
            payload: serde_json::to_value(event).expect("events always serialise"),
            traceparent: event.traceparent.map(|trace| trace.to_string()),
        }
    }

    /// The row as stored under `id`.
    pub fn stored_as(self, id: i64) -> OutboxRow {
        OutboxRow {
            id,
            topic: self.topic,
            key: self.key,
            payload: self.payload,
            traceparent: self.traceparent,
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
    let mut traceparents = Vec::with_capacity(events.len());
    for event in events {
        let row = OutboxEntry::from_event(event);
        topics.push(row.topic);
        keys.push(row.key);
        payloads.push(row.payload);
        traceparents.push(row.traceparent);
    }
    sqlx::query_as!(
        OutboxRow,
        "INSERT INTO outbox (topic, key, payload, traceparent)
         SELECT topic, key, payload, traceparent
         FROM UNNEST($1::text[], $2::text[], $3::jsonb[], $4::text[])
              WITH ORDINALITY AS e(topic, key, payload, traceparent, n)
         ORDER BY n
         RETURNING id, topic, key, payload, traceparent",
        &topics,
        &keys,
        &payloads,
        &traceparents as &[Option<String>],
    )
    .fetch_all(&mut *conn)
    .await
    .map(|mut rows| {
        // bigserial ids follow the insertion order, which follows `events`.
        rows.sort_by_key(|row| row.id);
        rows
    })
}

/// How [`publish`] commits the delete of the published rows. Either way a delete lost in a
/// database crash only makes the relay send those events again, which consumers drop by
/// event id; the state change and its rows were committed synchronously, before any of this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget {
    /// One `DELETE`, its own transaction, committed synchronously: one round trip. For the
    /// consumers, whose batches are few and large.
    Synchronously,
    /// In a transaction committed asynchronously (`SET LOCAL synchronous_commit = off`,
    /// which lasts until the transaction ends and so does not pin an RDS Proxy connection;
    /// docs/scale.md): two more round trips, but no wait for the WAL flush. For order-api,
    /// whose batches are many and small, so the flushes would add up.
    Asynchronously,
}

/// Publishes rows that were just committed and deletes the delivered ones, in one DELETE
/// committed as `forget` says. Undelivered rows stay pending for the relay; only a database
/// failure is an error.
pub async fn publish(
    pool: &PgPool,
    publisher: &KafkaPublisher,
    rows: &[OutboxRow],
    forget: Forget,
) -> sqlx::Result<PublishReport> {
    let report = send(publisher, rows).await;
    match forget {
        Forget::Synchronously => forget_published(pool, &report.delivered).await?,
        Forget::Asynchronously if !report.delivered.is_empty() => {
            let mut tx = pool.begin_with(BEGIN_ASYNCHRONOUS_COMMIT).await?;
            forget_published(&mut *tx, &report.delivered).await?;
            tx.commit().await?;
        }
        Forget::Asynchronously => {}
    }
    Ok(report)
}

/// [`publish`] as a consumer does it once its batch's transaction committed: the delivered
/// rows are forgotten synchronously (a consumer's batches are few and large), and a database
/// failure is named as the step "marking events published".
pub async fn publish_committed(
    pool: &PgPool,
    publisher: &KafkaPublisher,
    rows: &[OutboxRow],
) -> Result<PublishReport, StepFailure> {
    publish(pool, publisher, rows, Forget::Synchronously)
        .await
        .map_err(StepFailure::at("marking events published"))
}

/// The statement that opens a deleting transaction: its commit does not wait for the WAL
/// flush. `SET LOCAL` ends with the transaction, so the session keeps no state.
const BEGIN_ASYNCHRONOUS_COMMIT: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// Sends rows to the broker in the given order, each with its `traceparent` header, and
/// waits for every acknowledgement; deletes nothing. Unacknowledged rows are logged with their
/// reason.
pub async fn send(publisher: &KafkaPublisher, rows: &[OutboxRow]) -> PublishReport {
    let payloads: Vec<Vec<u8>> = rows
        .iter()
        .map(|row| serde_json::to_vec(&row.payload).expect("JSON values always serialise"))
        .collect();
    let records = rows
        .iter()
        .zip(&payloads)
        .map(|(row, payload)| Outgoing {
            topic: &row.topic,
            key: Some(row.key.as_bytes()),
            payload: Some(payload),
            traceparent: row.traceparent.as_deref(),
        })
        .collect();
    let results = publisher.publish(records).await;
    let mut delivered = Vec::with_capacity(rows.len());
    let mut report = PublishReport::default();
    for (row, result) in rows.iter().zip(results) {
        match result {
            Ok(()) => delivered.push(row.id),
            Err(err) => {
                tracing::warn!(outbox_id = row.id, topic = %row.topic, traceparent = row.traceparent.as_deref(), error = %err, "event left for the outbox relay");
                report.failed.push((row.id, err));
            }
        }
    }
    report.published = delivered.len();
    report.delivered = delivered;
    report
}

/// Deletes the rows whose events the broker acknowledged, in one statement that reads them
/// by primary key. A row another writer (the relay, or the function that wrote it) deleted
/// first is simply not found.
pub async fn forget_published<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    ids: &[i64],
) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!("DELETE FROM outbox WHERE id = ANY($1)", ids)
        .execute(conn)
        .await?;
    Ok(())
}
