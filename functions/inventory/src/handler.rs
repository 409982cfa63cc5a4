//! One MSK batch end to end: decode, apply it in one transaction with a fixed number of
//! round trips, commit, then publish the decisions.
//!
//! The transaction runs these statements, each set-based over the whole batch:
//!
//! 1. `BEGIN`
//! 2. poison records into `dead_letters` (only when the batch has any)
//! 3. claim the batch's event ids in `processed_events` (`ON CONFLICT DO NOTHING RETURNING`):
//!    an event another invocation already claimed, committed or not, is a duplicate here.
//!    Claims are inserted in event-id order, so two invocations never wait on each other's
//!    claims in a cycle.
//! 4. lock the claimed orders still `PLACED`, in id order
//! 5. lock their stock rows, in product-name order
//! 6. decrement stock, 7. update the orders still `PLACED`, 8. enqueue the outbox events
//! 9. `COMMIT`
//!
//! Every invocation takes its locks in the same order (claims, orders, stock, each sorted),
//! so concurrent invocations on overlapping products wait for each other but never deadlock.
//! Orders are locked before stock so that decisions use the product and quantity stored
//! with the order, not whatever the event says.

use std::collections::{BTreeSet, HashMap, HashSet};

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::Diagnostic;
use serde::Serialize;
use shared::db::is_transient;
use shared::domain::{OrderStatus, RejectionReason};
use shared::events::{OrderEvent, OrderEventData};
use shared::kafka::KafkaPublisher;
use shared::msk::{DecodedBatch, DecodedRecord, decode_batch, store_dead_letters};
use shared::outbox::{self, OutboxRow};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::CONSUMER;
use crate::decide::{self, Outcome, PlacedOrder, Plan};

/// The function's dependencies, built once per cold start and shared by every invocation.
#[derive(Clone)]
pub struct Inventory {
    pool: PgPool,
    publisher: KafkaPublisher,
}

/// What one batch did; also the function's response.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    /// Records delivered, poison included.
    pub records: usize,
    pub confirmed: usize,
    pub rejected: usize,
    /// Events this consumer had already applied (redelivery, replay, repeat within the batch).
    pub duplicates: usize,
    /// Events about an order that does not exist or is no longer `PLACED`.
    pub skipped: usize,
    pub dead_lettered: usize,
    /// Confirmed and rejected events acknowledged by the broker after commit.
    pub published: usize,
}

/// Why a batch failed. Lambda retries the whole batch after any error; the retry is harmless
/// because every effect is keyed by event id. [`InventoryError::is_transient`] says whether
/// a retry can be expected to succeed.
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
    /// Whether the failure is a fault of the environment (database or broker unreachable,
    /// timeouts, lock conflicts) that a later retry of the same batch should get past.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database { source, .. } => is_transient(source),
            Self::NotPublished { .. } => true,
            Self::Unexpected(_) => false,
        }
    }

    /// The database error behind this failure, e.g. to refresh rotated credentials.
    pub fn database_error(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Database { source, .. } => Some(source),
            _ => None,
        }
    }

    fn database(step: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { step, source }
    }
}

impl From<InventoryError> for Diagnostic {
    fn from(err: InventoryError) -> Self {
        let kind = match &err {
            InventoryError::Database { .. } if err.is_transient() => "DatabaseUnavailable",
            InventoryError::Database { .. } => "DatabaseError",
            InventoryError::NotPublished { .. } => "EventsNotPublished",
            InventoryError::Unexpected(_) => "Unexpected",
        };
        Diagnostic {
            error_type: format!("inventory::{kind}"),
            error_message: err.with_causes(),
        }
    }
}

impl InventoryError {
    /// The message followed by every cause, for logs and the Lambda error report.
    pub fn with_causes(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }
}

/// What the transaction committed: the summary so far and the outbox rows to publish.
struct Applied {
    summary: BatchSummary,
    rows: Vec<OutboxRow>,
}

impl Inventory {
    /// Builds the pool and producer once per cold start (Lambda and the local runtime alike).
    pub async fn from_config(
        config: &crate::InventoryConfig,
        secrets: &shared::config::Secrets,
    ) -> anyhow::Result<Self> {
        let pool = shared::db::pool(&config.database, secrets, config.max_connections).await?;
        let publisher = KafkaPublisher::new(&config.kafka, secrets).await?;
        Ok(Self::new(pool, publisher))
    }

    pub fn new(pool: PgPool, publisher: KafkaPublisher) -> Self {
        Self { pool, publisher }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Handles one MSK batch as Lambda delivers it. Poison records never fail the batch;
    /// only database and broker faults do (see [`InventoryError`]).
    #[tracing::instrument(name = "inventory_batch", skip_all, fields(records, poison))]
    pub async fn handle(&self, event: KafkaEvent) -> Result<BatchSummary, InventoryError> {
        let result = self.handle_batch(event).await;
        if let Err(err) = &result {
            tracing::error!(
                error = %err.with_causes(),
                transient = err.is_transient(),
                "inventory batch failed; Lambda retries it"
            );
        }
        result
    }

    async fn handle_batch(&self, event: KafkaEvent) -> Result<BatchSummary, InventoryError> {
        let batch = decode_batch(&event);
        // The base64 payloads are no longer needed; free them before the database work.
        drop(event);
        let span = tracing::Span::current();
        span.record("records", batch.records.len());
        span.record("poison", batch.poison.len());

        let Applied { mut summary, rows } = self.apply(&batch).await?;
        drop(batch);
        let report = outbox::publish(&self.pool, &self.publisher, &rows)
            .await
            .map_err(InventoryError::database("marking events published"))?;
        summary.published = report.published;
        tracing::info!(
            confirmed = summary.confirmed,
            rejected = summary.rejected,
            duplicate = summary.duplicates,
            skipped = summary.skipped,
            dead_lettered = summary.dead_lettered,
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

    /// The transaction: every effect of the batch, or none.
    async fn apply(&self, batch: &DecodedBatch) -> Result<Applied, InventoryError> {
        let mut summary = BatchSummary {
            records: batch.records.len() + batch.poison.len(),
            dead_lettered: batch.poison.len(),
            ..BatchSummary::default()
        };
        if summary.records == 0 {
            return Ok(Applied {
                summary,
                rows: Vec::new(),
            });
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(InventoryError::database("beginning the transaction"))?;
        store_dead_letters(&mut tx, CONSUMER, &batch.poison)
            .await
            .map_err(InventoryError::database("storing dead letters"))?;
        let claimed = claim_events(&mut tx, &batch.records).await?;
        let placed = lock_placed_orders(&mut tx, &batch.records, &claimed).await?;
        let stock = lock_stock(&mut tx, &placed).await?;

        let plan = decide::plan(&batch.records, &claimed, &placed, &stock);
        let events = decision_events(&batch.records, &plan, &placed);
        take_stock(&mut tx, &plan).await?;
        update_orders(&mut tx, &events).await?;
        let rows = outbox::enqueue(&mut tx, &events)
            .await
            .map_err(InventoryError::database("enqueueing events"))?;
        tx.commit()
            .await
            .map_err(InventoryError::database("committing"))?;

        log_records(batch, &plan);
        for outcome in &plan.outcomes {
            match outcome {
                Outcome::Confirmed => summary.confirmed += 1,
                Outcome::Rejected(_) => summary.rejected += 1,
                Outcome::Duplicate => summary.duplicates += 1,
                Outcome::NotPlaced => summary.skipped += 1,
            }
        }
        Ok(Applied { summary, rows })
    }
}

/// Claims the batch's events for this consumer; returns the ids this transaction claimed.
/// An id held by another transaction makes this one wait for it: if that commits, the event
/// is a duplicate here, and if it rolls back, the claim is ours.
async fn claim_events(
    conn: &mut PgConnection,
    records: &[DecodedRecord],
) -> Result<HashSet<Uuid>, InventoryError> {
    let ids: Vec<Uuid> = records
        .iter()
        .map(|record| record.event.id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let claimed: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO processed_events (consumer, event_id)
         SELECT $1, event_id FROM UNNEST($2::uuid[]) AS e(event_id) ORDER BY event_id
         ON CONFLICT (consumer, event_id) DO NOTHING
         RETURNING event_id",
    )
    .bind(CONSUMER)
    .bind(&ids)
    .fetch_all(conn)
    .await
    .map_err(InventoryError::database("claiming events"))?;
    Ok(claimed.into_iter().collect())
}

/// Locks the orders of the claimed events that are still `PLACED`, in id order.
async fn lock_placed_orders(
    conn: &mut PgConnection,
    records: &[DecodedRecord],
    claimed: &HashSet<Uuid>,
) -> Result<HashMap<Uuid, PlacedOrder>, InventoryError> {
    let ids: Vec<Uuid> = records
        .iter()
        .filter(|record| claimed.contains(&record.event.id))
        .map(|record| record.event.data.order_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let orders: Vec<PlacedOrder> = sqlx::query_as(
        "SELECT id, customer_name, customer_email, product_name, quantity
         FROM orders
         WHERE id = ANY($1) AND status = 'PLACED'
         ORDER BY id
         FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await
    .map_err(InventoryError::database("locking orders"))?;
    Ok(orders.into_iter().map(|order| (order.id, order)).collect())
}

/// Locks the stock rows of those orders' products, in product-name order.
async fn lock_stock(
    conn: &mut PgConnection,
    placed: &HashMap<Uuid, PlacedOrder>,
) -> Result<HashMap<String, i32>, InventoryError> {
    let names: Vec<&str> = placed
        .values()
        .map(|order| order.product_name.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i32)> = sqlx::query_as(
        "SELECT product_name, quantity
         FROM stock
         WHERE product_name = ANY($1)
         ORDER BY product_name
         FOR UPDATE",
    )
    .bind(&names)
    .fetch_all(conn)
    .await
    .map_err(InventoryError::database("locking stock"))?;
    Ok(rows.into_iter().collect())
}

/// The confirmed and rejected events, in record order, built from the stored orders.
fn decision_events(
    records: &[DecodedRecord],
    plan: &Plan,
    placed: &HashMap<Uuid, PlacedOrder>,
) -> Vec<OrderEvent> {
    records
        .iter()
        .zip(&plan.outcomes)
        .filter_map(|(record, outcome)| {
            let order = placed.get(&record.event.data.order_id)?;
            let data = OrderEventData {
                order_id: order.id,
                customer_name: order.customer_name.clone(),
                customer_email: order.customer_email.clone(),
                product_name: order.product_name.clone(),
                quantity: order.quantity,
                reason: None,
            };
            match outcome {
                Outcome::Confirmed => Some(OrderEvent::confirmed(data)),
                Outcome::Rejected(reason) => Some(OrderEvent::rejected(data, *reason)),
                Outcome::Duplicate | Outcome::NotPlaced => None,
            }
        })
        .collect()
}

/// Decrements the locked stock rows by what the batch took, in one statement. The check
/// constraint would refuse a negative level even if the decision were wrong.
async fn take_stock(conn: &mut PgConnection, plan: &Plan) -> Result<(), InventoryError> {
    if plan.taken.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = plan.taken.keys().map(String::as_str).collect();
    let taken: Vec<i32> = plan.taken.values().copied().collect();
    let updated = sqlx::query(
        "UPDATE stock SET quantity = stock.quantity - t.taken, updated_at = now()
         FROM UNNEST($1::text[], $2::int[]) AS t(product_name, taken)
         WHERE stock.product_name = t.product_name",
    )
    .bind(&names)
    .bind(&taken)
    .execute(conn)
    .await
    .map_err(InventoryError::database("updating stock"))?
    .rows_affected();
    if updated != names.len() as u64 {
        return Err(anyhow::anyhow!(
            "updated {updated} stock rows, expected {} locked rows",
            names.len()
        )
        .into());
    }
    Ok(())
}

/// Sets the decided orders' status and reason, in one statement, only where still `PLACED`.
async fn update_orders(
    conn: &mut PgConnection,
    events: &[OrderEvent],
) -> Result<(), InventoryError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut statuses = Vec::with_capacity(events.len());
    let mut reasons = Vec::with_capacity(events.len());
    for event in events {
        ids.push(event.data.order_id);
        let (status, reason) = match event.data.reason {
            None => (OrderStatus::Confirmed, None),
            Some(reason) => (OrderStatus::Rejected, Some(reason)),
        };
        statuses.push(status.as_str());
        reasons.push(reason.map(RejectionReason::as_str));
    }
    let updated = sqlx::query(
        "UPDATE orders SET status = d.status, rejection_reason = d.reason, updated_at = now()
         FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS d(id, status, reason)
         WHERE orders.id = d.id AND orders.status = 'PLACED'",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&reasons)
    .execute(conn)
    .await
    .map_err(InventoryError::database("updating orders"))?
    .rows_affected();
    if updated != ids.len() as u64 {
        return Err(anyhow::anyhow!(
            "updated {updated} orders, expected {} locked PLACED orders",
            ids.len()
        )
        .into());
    }
    Ok(())
}

/// One span per record carrying its ids, with what happened to it (after the commit, so a
/// logged decision is a durable one).
fn log_records(batch: &DecodedBatch, plan: &Plan) {
    for (record, outcome) in batch.records.iter().zip(&plan.outcomes) {
        let span = tracing::info_span!(
            "record",
            order_id = %record.event.data.order_id,
            event_id = %record.event.id,
            topic = %record.position.topic,
            partition = record.position.partition,
            offset = record.position.offset,
        );
        let _entered = span.enter();
        match outcome {
            Outcome::Confirmed => tracing::debug!(outcome = "confirmed", "order decided"),
            Outcome::Rejected(reason) => {
                tracing::debug!(outcome = "rejected", reason = %reason, "order decided");
            }
            Outcome::Duplicate => tracing::debug!(outcome = "duplicate", "event already applied"),
            Outcome::NotPlaced => {
                tracing::debug!(outcome = "skipped", "order missing or no longer PLACED")
            }
        }
    }
    for poison in &batch.poison {
        let span = tracing::info_span!(
            "record",
            topic = %poison.position.topic,
            partition = poison.position.partition,
            offset = poison.position.offset,
        );
        let _entered = span.enter();
        tracing::warn!(error = %poison.error, "poison record dead-lettered");
    }
}
