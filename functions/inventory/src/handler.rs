//! One MSK batch end to end: apply it in one transaction with a fixed number of round trips,
//! commit, then publish the decisions. (The shared consumer seam has decoded the batch.)
//!
//! The transaction runs these statements, each set-based over the whole batch
//! ([`crate::store`]):
//!
//! 1. `BEGIN`
//! 2. poison records into `dead_letters` (only when the batch has any)
//! 3. claim the batch's event ids in `processed_events` (`ON CONFLICT DO NOTHING RETURNING`):
//!    an event another invocation already claimed, committed or not, is a duplicate here.
//!    Claims are inserted in event-id order, so two invocations never wait on each other's
//!    claims in a cycle.
//! 4. lock the claimed orders still open (`PLACED`, or `RESERVED` for the payment events),
//!    in id order
//! 5. lock their stock rows, in product-name order
//! 6. take (or give back) stock, 7. update the orders still in the status they were decided
//!    from, 8. enqueue the outbox events
//! 9. `COMMIT`
//!
//! Orders are locked before stock so that decisions use the product and quantity stored
//! with the order, not whatever the event says.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use shared::consumer::{Batch, BatchError, BatchHandler, DeadLetters, Invocation, StepFailure};
use shared::db::is_transient;
use shared::domain::RejectionReason;
use shared::events::topics;
use shared::kafka::KafkaPublisher;
use shared::lifecycle::Step;
use shared::metrics;
use shared::msk::DecodedRecord;
use shared::outbox::{self, OutboxRow};
use sqlx::PgPool;
use uuid::Uuid;

use crate::CONSUMER;
use crate::decide::{self, Outcome, Plan};
use crate::store;

/// The function's dependencies, built once per cold start and shared by every invocation.
#[derive(Clone)]
pub struct Inventory {
    pool: PgPool,
    publisher: KafkaPublisher,
}

/// What one batch decided; part of the function's response.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    /// Orders confirmed: on reservation without a card payment, or once paid.
    pub confirmed: usize,
    /// Orders reserved for a card payment.
    pub reserved: usize,
    /// Orders rejected, on placement or after a declined payment.
    pub rejected: usize,
    /// Events this consumer had already applied (redelivery, replay, repeat within the batch).
    pub duplicates: usize,
    /// Events about an order that does not exist or is no longer in the status they act on.
    pub skipped: usize,
    /// Decision events acknowledged by the broker after commit.
    pub published: usize,
}

/// Why a batch failed. Lambda retries the whole batch after any error; the retry is harmless
/// because every effect is keyed by event id.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A database statement failed. Before the commit this rolls the whole batch back; a
    /// failure while committing or after it leaves the batch applied at most once.
    #[error("database failure while {step}")]
    Database {
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The batch is committed, but the broker did not acknowledge some of its events. They
    /// stay in the outbox for the relay; the retried batch finds every event processed.
    #[error(
        "the batch is committed but {unpublished} events were not published; the outbox relay will deliver them"
    )]
    NotPublished {
        summary: BatchSummary,
        unpublished: usize,
    },
    /// A broken invariant; the transaction was rolled back.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl InventoryError {
    fn database(step: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { step, source }
    }
}

/// The steps every consumer shares (its transaction, its dead letters, its outbox) fail as
/// any other database step does.
impl From<StepFailure> for InventoryError {
    fn from(StepFailure { step, source }: StepFailure) -> Self {
        Self::Database { step, source }
    }
}

impl BatchError for InventoryError {
    fn name(&self) -> &'static str {
        match self {
            Self::Database { source, .. } if is_transient(source) => "DatabaseUnavailable",
            Self::Database { .. } => "DatabaseError",
            Self::NotPublished { .. } => "EventsNotPublished",
            Self::Unexpected(_) => "Unexpected",
        }
    }

    /// Database or broker unreachable, timeouts, lock conflicts: a retry should get past them.
    fn is_transient(&self) -> bool {
        match self {
            Self::Database { source, .. } => is_transient(source),
            Self::NotPublished { .. } => true,
            Self::Unexpected(_) => false,
        }
    }

    fn database_error(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Database { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What the transaction committed: the summary so far and the outbox rows to publish.
struct Applied {
    summary: BatchSummary,
    rows: Vec<OutboxRow>,
}

impl Inventory {
    pub fn new(pool: PgPool, publisher: KafkaPublisher) -> Self {
        Self { pool, publisher }
    }
}

impl BatchHandler for Inventory {
    const NAME: &'static str = CONSUMER;
    type Summary = BatchSummary;
    type Error = InventoryError;

    async fn handle(&self, batch: Batch, _: Invocation) -> Result<BatchSummary, InventoryError> {
        // An instance's first batch starts the producer while its transaction runs.
        self.publisher
            .prefetch(&[topics::ORDER_CONFIRMED, topics::ORDER_REJECTED]);
        let Batch {
            records,
            dead_letters,
        } = batch;
        let Applied { mut summary, rows } = self.apply(&records, dead_letters).await?;
        drop(records);
        let report = outbox::publish_committed(&self.pool, &self.publisher, &rows).await?;
        summary.published = report.published;
        tracing::info!(
            confirmed = summary.confirmed,
            rejected = summary.rejected,
            duplicate = summary.duplicates,
            skipped = summary.skipped,
            published = summary.published,
            unpublished = report.failed.len(),
            "inventory batch committed"
        );
        if !report.all_published() {
            return Err(InventoryError::NotPublished {
                summary,
                unpublished: report.failed.len(),
            });
        }
        Ok(summary)
    }
}

impl Inventory {
    /// The transaction: every effect of the batch, or none.
    async fn apply(
        &self,
        records: &[DecodedRecord],
        dead_letters: DeadLetters,
    ) -> Result<Applied, InventoryError> {
        if records.is_empty() && dead_letters.is_empty() {
            return Ok(Applied {
                summary: BatchSummary::default(),
                rows: Vec::new(),
            });
        }
        let mut tx = dead_letters
            .begin_with(&self.pool, "beginning the transaction")
            .await?;
        let event_ids: BTreeSet<Uuid> = records.iter().map(|record| record.event.id).collect();
        let claimed = store::claim_events(&mut tx, &event_ids)
            .await
            .map_err(InventoryError::database("claiming events"))?;
        let order_ids: BTreeSet<Uuid> = records
            .iter()
            .filter(|record| claimed.contains(&record.event.id))
            .map(|record| record.event.data.order_id)
            .collect();
        let open = store::lock_open_orders(&mut tx, &order_ids)
            .await
            .map_err(InventoryError::database("locking orders"))?;
        let products: BTreeSet<&str> = open
            .values()
            .map(|order| order.product_name.as_str())
            .collect();
        let stock = store::lock_stock(&mut tx, &products)
            .await
            .map_err(InventoryError::database("locking stock"))?;

        let plan = decide::plan(records, &claimed, &open, &stock);
        let (decisions, events) = decide::decisions(records, &plan, &open, &stock);
        let updated = store::take_stock(&mut tx, &plan.taken)
            .await
            .map_err(InventoryError::database("updating stock"))?;
        if updated != plan.taken.len() as u64 {
            return Err(anyhow::anyhow!(
                "updated {updated} stock rows, expected {} locked rows",
                plan.taken.len()
            )
            .into());
        }
        let decided = store::record_decisions(&mut tx, &decisions)
            .await
            .map_err(InventoryError::database("updating orders"))?;
        if decided != decisions.len() as u64 {
            return Err(anyhow::anyhow!(
                "updated {decided} orders, expected {} locked open orders",
                decisions.len()
            )
            .into());
        }
        let rows = outbox::enqueue(&mut tx, &events)
            .await
            .map_err(InventoryError::database("enqueueing events"))?;
        tx.commit()
            .await
            .map_err(InventoryError::database("committing"))?;

        log_records(records, &plan);
        Ok(Applied {
            summary: summarise(&plan),
            rows,
        })
    }
}

/// What the committed batch decided, counted, and its metrics: counted once committed, as
/// a retried batch finds its events processed, so a decision is counted once.
fn summarise(plan: &Plan) -> BatchSummary {
    let mut summary = BatchSummary::default();
    let mut rejected: HashMap<&'static str, u64> = HashMap::new();
    for outcome in &plan.outcomes {
        match outcome {
            Outcome::Decided(Step::Confirm) | Outcome::Decided(Step::Pay) => summary.confirmed += 1,
            Outcome::Decided(Step::Reserve) => summary.reserved += 1,
            Outcome::Decided(Step::Reject(reason)) => {
                summary.rejected += 1;
                *rejected.entry(reason.as_str()).or_default() += 1;
            }
            Outcome::Decided(Step::FailPayment) => {
                summary.rejected += 1;
                *rejected
                    .entry(RejectionReason::PaymentDeclined.as_str())
                    .or_default() += 1;
            }
            Outcome::Duplicate => summary.duplicates += 1,
            Outcome::NotPlaced => summary.skipped += 1,
        }
    }
    metrics::orders_confirmed(summary.confirmed as u64);
    for (reason, count) in rejected {
        metrics::orders_rejected(reason, count);
    }
    summary
}

/// One span per record carrying its ids, with what happened to it (after the commit, so a
/// logged decision is a durable one). DEBUG, as the lines inside it are: at INFO a batch of
/// thousands of records does not build spans nobody logs.
fn log_records(records: &[DecodedRecord], plan: &Plan) {
    for (record, outcome) in records.iter().zip(&plan.outcomes) {
        let span = tracing::debug_span!(
            "record",
            trace_id = %record.trace.trace_id(),
            span_id = %record.trace.span_id(),
            order_id = %record.event.data.order_id,
            event_id = %record.event.id,
            topic = %record.position.topic,
            partition = record.position.partition,
            offset = record.position.offset,
        );
        let _entered = span.enter();
        match outcome {
            Outcome::Decided(Step::Confirm) => {
                tracing::debug!(outcome = "confirmed", "order decided")
            }
            Outcome::Decided(Step::Reserve) => {
                tracing::debug!(outcome = "reserved", "order decided")
            }
            Outcome::Decided(Step::Reject(reason)) => {
                tracing::debug!(outcome = "rejected", reason = %reason, "order decided");
            }
            Outcome::Decided(Step::Pay) => tracing::debug!(outcome = "paid", "order confirmed"),
            Outcome::Decided(Step::FailPayment) => {
                tracing::debug!(
                    outcome = "payment_failed",
                    "order rejected, stock given back"
                )
            }
            Outcome::Duplicate => tracing::debug!(outcome = "duplicate", "event already applied"),
            Outcome::NotPlaced => {
                tracing::debug!(outcome = "skipped", "order missing or no longer PLACED")
            }
        }
    }
}
