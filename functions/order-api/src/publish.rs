//! Publishing committed outbox rows after the order's transaction, off the request's path.
//!
//! A request hands its committed rows over and answers at once; a background task sends
//! them in batches and marks them `published_at`. While a few batches are in flight, newly
//! committed rows queue up and go out together in the next one (like a group commit), so a
//! busy server sends one Kafka batch and runs one `UPDATE` for many orders. The queue is
//! bounded: when the broker falls behind, requests wait for room instead of piling up rows
//! in memory. Rows that are never acknowledged stay pending and the outbox relay sends them.
//!
//! [`OutboxPublisher::flush`] waits until everything handed over has been dealt with. On
//! Lambda an instance freezes once it has answered, so [`crate::lambda`] flushes after every
//! invocation (from an internal extension, which keeps the instance running until it is done);
//! the local runtime flushes before it exits.
//!
//! Marks are written through their own small pool whose sessions commit asynchronously
//! (`synchronous_commit = off`): a mark lost in a database crash only makes the relay send
//! that event again, which consumers drop by event id. The orders themselves are committed
//! synchronously, on the main pool, before any of this.

use std::sync::Arc;

use shared::kafka::KafkaPublisher;
use shared::outbox::{self, OutboxRow};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::Instrument;

use crate::state::request_pool;

/// The most requests whose rows go out in one batch.
const MAX_BATCH: usize = 256;
/// Batches in flight at once (and connections of the marking pool).
const MAX_IN_FLIGHT: usize = 2;
/// Requests whose rows may wait for a batch before new requests wait for room.
const QUEUE_CAPACITY: usize = 4096;

/// Hands committed rows to a background task that publishes them in batches.
#[derive(Clone)]
pub struct OutboxPublisher {
    queue: mpsc::Sender<Vec<OutboxRow>>,
    /// Rows handed over and not yet published or given up on.
    outstanding: Arc<watch::Sender<usize>>,
    marks: PgPool,
}

impl OutboxPublisher {
    /// Starts the publishing task, marking through a pool that connects like `pool`. The
    /// task ends when the last handle is dropped. Must be called within a Tokio runtime.
    pub fn start(pool: &PgPool, publisher: KafkaPublisher) -> Self {
        let marks = request_pool(MAX_IN_FLIGHT as u32)
            .connect_lazy_with(asynchronous_commits(&pool.connect_options()));
        let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
        let outstanding = Arc::new(watch::Sender::new(0));
        tokio::spawn(run(marks.clone(), publisher, jobs, outstanding.clone()));
        Self {
            queue,
            outstanding,
            marks,
        }
    }

    /// Queues `rows` (already committed) for publishing and returns once they are queued.
    pub async fn hand_over(&self, rows: Vec<OutboxRow>) {
        let count = rows.len();
        if count == 0 {
            return;
        }
        self.outstanding.send_modify(|n| *n += count);
        if self.queue.send(rows).await.is_err() {
            // The task has ended (the process is shutting down): the relay sends them.
            self.outstanding.send_modify(|n| *n -= count);
        }
    }

    /// Waits until every row handed over so far was published and marked, or left for the
    /// relay because the broker did not acknowledge it in time.
    pub async fn flush(&self) {
        let mut outstanding = self.outstanding.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = outstanding.wait_for(|n| *n == 0).await;
    }

    /// Follows `pool` to new connect options (database credentials were rotated).
    pub fn reconnect_like(&self, pool: &PgPool) {
        self.marks
            .set_connect_options(asynchronous_commits(&pool.connect_options()));
    }
}

fn asynchronous_commits(options: &PgConnectOptions) -> PgConnectOptions {
    options.clone().options([("synchronous_commit", "off")])
}

async fn run(
    marks: PgPool,
    publisher: KafkaPublisher,
    mut jobs: mpsc::Receiver<Vec<OutboxRow>>,
    outstanding: Arc<watch::Sender<usize>>,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut batch = Vec::new();
    loop {
        // Waiting for a free slot first lets rows pile up into the next batch meanwhile.
        let slot = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if jobs.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let rows: Vec<OutboxRow> = std::mem::take(&mut batch).into_iter().flatten().collect();
        let (marks, publisher, outstanding) =
            (marks.clone(), publisher.clone(), outstanding.clone());
        // Log lines about the batch carry the ids of the orders in it.
        let span = tracing::info_span!("publish", order_ids = %order_ids(&rows));
        tokio::spawn(
            async move {
                publish_batch(&marks, &publisher, &rows).await;
                outstanding.send_modify(|n| *n -= rows.len());
                drop(slot);
            }
            .instrument(span),
        );
    }
}

/// The `subject` (order id) of every row, comma-separated.
fn order_ids(rows: &[OutboxRow]) -> String {
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|row| row.payload["subject"].as_str())
        .collect();
    ids.join(",")
}

async fn publish_batch(marks: &PgPool, publisher: &KafkaPublisher, rows: &[OutboxRow]) {
    match outbox::publish(marks, publisher, rows).await {
        Ok(report) if report.all_published() => {
            tracing::debug!(rows = rows.len(), "events published")
        }
        // Each unacknowledged row was logged with its reason by `outbox::publish`.
        Ok(report) => tracing::warn!(
            left = report.failed.len(),
            published = report.published,
            "events left for the outbox relay"
        ),
        Err(err) => tracing::warn!(
            error = %err,
            rows = rows.len(),
            "events sent but not marked published; the relay will send them again"
        ),
    }
}
