//! Publishing committed outbox rows after the order's transaction, batched across concurrent
//! requests like a group commit: each request hands over its rows and waits until they were
//! sent and marked. While a few batches are in flight, newly committed rows queue up and go
//! out together in the next one, so a busy instance sends one Kafka batch and runs one
//! `UPDATE` for many orders. A request that is alone (Lambda serves one per instance) is
//! published on its own, exactly as a direct `shared::outbox::publish` call would.
//!
//! Marks (`published_at`) are written through their own small pool whose sessions commit
//! asynchronously (`synchronous_commit = off`): a mark lost in a database crash only makes
//! the relay send that event again, which consumers drop by event id, while waiting for the
//! WAL flush of a second commit per order would nearly halve the API's throughput. The
//! orders themselves are committed synchronously, on the main pool, before any of this.

use std::sync::Arc;

use shared::kafka::KafkaPublisher;
use shared::outbox::{self, OutboxRow};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;

use crate::state::request_pool;

/// The most requests whose rows go out in one batch.
const MAX_BATCH: usize = 256;
/// Batches in flight at once (and connections of the marking pool).
const MAX_IN_FLIGHT: usize = 2;

/// What became of one request's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Acknowledged by the broker and marked `published_at`.
    Published,
    /// Not acknowledged in time: the rows stay pending for the outbox relay.
    LeftForRelay,
    /// Acknowledged but not marked (the database failed after the send); the relay will send
    /// them again and consumers drop the duplicate by event id.
    SentNotMarked,
}

struct Job {
    rows: Vec<OutboxRow>,
    done: oneshot::Sender<Delivery>,
}

/// Hands committed rows to a background task that publishes them in batches.
#[derive(Clone)]
pub struct OutboxPublisher {
    queue: mpsc::UnboundedSender<Job>,
    marks: PgPool,
}

impl OutboxPublisher {
    /// Starts the publishing task, marking through a pool that connects like `pool`. The
    /// task ends when the last handle is dropped. Must be called within a Tokio runtime.
    pub fn start(pool: &PgPool, publisher: KafkaPublisher) -> Self {
        let marks = request_pool(MAX_IN_FLIGHT as u32)
            .connect_lazy_with(asynchronous_commits(&pool.connect_options()));
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(run(marks.clone(), publisher, jobs));
        Self { queue, marks }
    }

    /// Publishes `rows` (already committed) and marks them, waiting for the outcome.
    pub async fn publish(&self, rows: Vec<OutboxRow>) -> Delivery {
        let (done, outcome) = oneshot::channel();
        if self.queue.send(Job { rows, done }).is_err() {
            return Delivery::LeftForRelay;
        }
        outcome.await.unwrap_or(Delivery::LeftForRelay)
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

async fn run(marks: PgPool, publisher: KafkaPublisher, mut jobs: mpsc::UnboundedReceiver<Job>) {
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
        let (batch, marks, publisher) =
            (std::mem::take(&mut batch), marks.clone(), publisher.clone());
        // Log lines about the batch carry the ids of the orders in it.
        let span = tracing::info_span!("publish", order_ids = %order_ids(&batch));
        tokio::spawn(
            async move {
                publish_batch(&marks, &publisher, batch).await;
                drop(slot);
            }
            .instrument(span),
        );
    }
}

/// The `subject` (order id) of every row, comma-separated.
fn order_ids(batch: &[Job]) -> String {
    let ids: Vec<&str> = batch
        .iter()
        .flat_map(|job| &job.rows)
        .filter_map(|row| row.payload["subject"].as_str())
        .collect();
    ids.join(",")
}

async fn publish_batch(marks: &PgPool, publisher: &KafkaPublisher, batch: Vec<Job>) {
    let rows: Vec<OutboxRow> = batch
        .iter()
        .flat_map(|job| job.rows.iter().cloned())
        .collect();
    let report = outbox::publish(marks, publisher, &rows).await;
    if let Err(err) = &report {
        tracing::warn!(error = %err, rows = rows.len(), "events sent but not marked published; the relay will send them again");
    }
    for job in batch {
        let delivery = match &report {
            Err(_) => Delivery::SentNotMarked,
            Ok(report) => {
                let failed = job
                    .rows
                    .iter()
                    .any(|row| report.failed.iter().any(|(id, _)| *id == row.id));
                if failed {
                    Delivery::LeftForRelay
                } else {
                    Delivery::Published
                }
            }
        };
        // The request may have gone (client disconnected); its rows were handled anyway.
        let _ = job.done.send(delivery);
    }
}
