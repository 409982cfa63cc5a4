//! Publishing committed outbox rows after the order's transaction, off the request's path.
//!
//! A request hands its committed rows over and answers at once; a background task sends
//! them in batches and deletes the acknowledged ones. While a few batches are in flight, newly
//! committed rows queue up and go out together in the next one (like a group commit), so a
//! busy server sends one Kafka batch and runs one `DELETE` for many orders. The queue is
//! bounded: when the broker falls behind, requests wait for room instead of piling up rows
//! in memory. Rows that are never acknowledged stay pending and the outbox relay sends them.
//!
//! [`OutboxPublisher::flush`] waits until everything handed over before it was called has been
//! dealt with, however many other requests keep handing rows over meanwhile. On classic
//! Lambda an instance freezes once it has answered, so [`crate::lambda`] flushes after every
//! invocation (from an internal extension, which keeps the instance running until it is done);
//! on Lambda Managed Instances an instance is never frozen and the task simply keeps running;
//! the local runtime flushes before it exits.
//!
//! Each batch goes out through `shared::outbox::publish`, as the consumers' events do, with
//! the deletes on the request pool.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use shared::kafka::KafkaPublisher;
use shared::outbox::{self, OutboxRow};
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::Instrument;

/// The most requests whose rows go out in one batch.
const MAX_BATCH: usize = 256;
/// Batches in flight at once (so at most this many pooled connections delete published rows).
pub const MAX_IN_FLIGHT: usize = 2;
/// Requests whose rows may wait for a batch before new requests wait for room.
const QUEUE_CAPACITY: usize = 4096;

/// Hands committed rows to a background task that publishes them in batches.
#[derive(Clone)]
pub struct OutboxPublisher {
    queue: mpsc::Sender<Job>,
    /// The number the next hand-over gets; every earlier number was handed over before.
    next_ticket: Arc<AtomicU64>,
    /// Which hand-overs were published or given up on.
    settled: Arc<watch::Sender<Settled>>,
}

/// One request's committed rows, numbered in hand-over order.
struct Job {
    ticket: u64,
    rows: Vec<OutboxRow>,
}

/// Settled hand-overs: every ticket below `below`, and those in `ahead` (batches in flight
/// finish in any order).
#[derive(Default)]
struct Settled {
    below: u64,
    ahead: BTreeSet<u64>,
}

impl Settled {
    fn settle(&mut self, tickets: impl IntoIterator<Item = u64>) {
        self.ahead.extend(tickets);
        while self.ahead.remove(&self.below) {
            self.below += 1;
        }
    }
}

impl OutboxPublisher {
    /// Starts the publishing task, deleting published rows through `pool`. The task ends when the last handle
    /// is dropped. Must be called within a Tokio runtime.
    pub fn start(pool: &PgPool, publisher: KafkaPublisher) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
        let settled = Arc::new(watch::Sender::new(Settled::default()));
        tokio::spawn(run(pool.clone(), publisher, jobs, settled.clone()));
        Self {
            queue,
            next_ticket: Arc::new(AtomicU64::new(0)),
            settled,
        }
    }

    /// Queues `rows` (already committed) for publishing and returns once they are queued.
    pub async fn hand_over(&self, rows: Vec<OutboxRow>) {
        if rows.is_empty() {
            return;
        }
        let ticket = self.next_ticket.fetch_add(1, Ordering::SeqCst);
        if self.queue.send(Job { ticket, rows }).await.is_err() {
            // The task has ended (the process is shutting down): the relay sends them.
            self.settled.send_modify(|settled| settled.settle([ticket]));
        }
    }

    /// Waits until every row handed over before this call was published and marked, or left
    /// for the relay because the broker did not acknowledge it in time. Rows handed over
    /// while it waits (other requests of the same instance) do not hold it up.
    pub async fn flush(&self) {
        let handed = self.next_ticket.load(Ordering::SeqCst);
        let mut settled = self.settled.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = settled.wait_for(|settled| settled.below >= handed).await;
    }
}

async fn run(
    pool: PgPool,
    publisher: KafkaPublisher,
    mut jobs: mpsc::Receiver<Job>,
    settled: Arc<watch::Sender<Settled>>,
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
        let tickets: Vec<u64> = batch.iter().map(|job| job.ticket).collect();
        let rows: Vec<OutboxRow> = std::mem::take(&mut batch)
            .into_iter()
            .flat_map(|job| job.rows)
            .collect();
        let (pool, publisher, settled) = (pool.clone(), publisher.clone(), settled.clone());
        // Log lines about the batch carry the ids of the orders in it.
        let span = tracing::info_span!("publish", order_ids = %order_ids(&rows));
        tokio::spawn(
            async move {
                publish_batch(&pool, &publisher, &rows).await;
                settled.send_modify(|settled| settled.settle(tickets));
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

async fn publish_batch(pool: &PgPool, publisher: &KafkaPublisher, rows: &[OutboxRow]) {
    match outbox::publish(pool, publisher, rows, outbox::Forget::Asynchronously).await {
        Ok(report) if report.all_published() => {
            tracing::debug!(rows = rows.len(), "events published")
        }
        // Each unacknowledged row was logged with its reason by `outbox::send`.
        Ok(report) => tracing::warn!(
            left = report.failed.len(),
            published = report.published,
            "events left for the outbox relay"
        ),
        Err(err) => tracing::warn!(
            error = %err,
            rows = rows.len(),
            "events sent but not deleted from the outbox; the relay will send them again"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_that_finishes_early_settles_nothing_before_an_earlier_one_does() {
        let mut settled = Settled::default();
        settled.settle([2, 3]);
        assert_eq!(settled.below, 0, "tickets 0 and 1 are still in flight");
        settled.settle([0]);
        assert_eq!(settled.below, 1);
        settled.settle([1]);
        assert_eq!(settled.below, 4);
        assert!(settled.ahead.is_empty());
    }
}
