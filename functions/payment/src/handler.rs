//! One MSK batch: charge the reserved orders, refund the cancelled ones.
//!
//! A network call to Stripe cannot be part of a database transaction, so each kind of work
//! runs in three steps, with the `payments` row as the claim (docs/payments.md):
//!
//! 1. one transaction: store the poison records, claim the payments still to do and count
//!    an attempt on each (committed before any Stripe call, so a retry knows that a call
//!    may have reached Stripe);
//! 2. the Stripe calls, up to `PAYMENT_CONCURRENCY` at once. A charge creates an
//!    unconfirmed PaymentIntent, records its id (committed), then confirms it; an attempt
//!    that finds an id recorded reads that PaymentIntent back instead, and confirms it only
//!    if no earlier call did;
//! 3. one transaction: record every outcome (only on rows still in the status claimed) and
//!    enqueue `order.paid` / `order.payment-failed`; then publish them.
//!
//! If any call failed transiently (Stripe unreachable, a 5xx or a 429), the batch fails
//! after the others were recorded, and the retry does only what is left.

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;
use serde::Serialize;
use shared::consumer::{Batch, BatchError, BatchHandler, DeadLetters, Invocation, StepFailure};
use shared::db::is_transient;
use shared::events::{EventType, OrderEvent, OrderEventData, PaymentData, topics};
use shared::kafka::KafkaPublisher;
use shared::metrics;
use shared::msk::DecodedRecord;
use shared::outbox::{self, OutboxRow};
use shared::trace::TraceContext;
use sqlx::PgPool;
use uuid::Uuid;

use crate::CONSUMER;
use crate::store::{self, Attempt, ChargeRecord, RefundDue};
use crate::stripe::{Charge, Created, Stripe, StripeError};

/// The function's dependencies, built once per cold start and shared by every invocation.
#[derive(Clone)]
pub struct Payments {
    pool: PgPool,
    publisher: KafkaPublisher,
    stripe: Stripe,
    concurrency: usize,
}

/// What one batch did; part of the function's response.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    pub charged: usize,
    pub declined: usize,
    pub refunded: usize,
    /// Records with nothing left to do: already charged or refunded, or about an order that
    /// is no longer waiting for it.
    pub skipped: usize,
    /// Calls that failed transiently; the batch is retried for them.
    pub retryable: usize,
    /// Events acknowledged by the broker after commit.
    pub published: usize,
}

/// Why a batch failed. Lambda retries the whole batch; the retry is harmless because every
/// charge and refund is claimed in `payments` first.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("database failure while {step}")]
    Database {
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// Some Stripe calls failed; every other outcome of the batch is recorded.
    #[error("{failed} Stripe calls failed; the batch is retried for them")]
    Stripe {
        failed: usize,
        #[source]
        first: StripeError,
    },
    /// Outcomes are recorded, but the broker did not acknowledge some events; the outbox
    /// relay delivers them.
    #[error("the batch is recorded but {unpublished} events were not published")]
    NotPublished { unpublished: usize },
}

impl PaymentError {
    fn database(step: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { step, source }
    }
}

/// The steps every consumer shares (its transaction, its dead letters, its outbox) fail as
/// any other database step does.
impl From<StepFailure> for PaymentError {
    fn from(StepFailure { step, source }: StepFailure) -> Self {
        Self::Database { step, source }
    }
}

/// Why one charge has no outcome yet; either way the batch is retried for it.
enum ChargeFailure {
    Stripe(StripeError),
    /// The new PaymentIntent's id could not be recorded, so it was not confirmed.
    NotRecorded(sqlx::Error),
}

impl From<StripeError> for ChargeFailure {
    fn from(err: StripeError) -> Self {
        Self::Stripe(err)
    }
}

impl BatchError for PaymentError {
    fn name(&self) -> &'static str {
        match self {
            Self::Database { source, .. } if is_transient(source) => "DatabaseUnavailable",
            Self::Database { .. } => "DatabaseError",
            Self::Stripe {
                first: StripeError::Unavailable(_),
                ..
            } => "StripeUnavailable",
            Self::Stripe {
                first: StripeError::Unauthorized(_),
                ..
            } => "StripeUnauthorized",
            Self::Stripe { .. } => "StripeRefused",
            Self::NotPublished { .. } => "EventsNotPublished",
        }
    }

    fn is_transient(&self) -> bool {
        match self {
            Self::Database { source, .. } => is_transient(source),
            Self::Stripe { first, .. } => first.is_transient(),
            Self::NotPublished { .. } => true,
        }
    }

    fn database_error(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Database { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Payments {
    pub fn new(
        pool: PgPool,
        publisher: KafkaPublisher,
        stripe: Stripe,
        concurrency: usize,
    ) -> Self {
        Self {
            pool,
            publisher,
            stripe,
            concurrency: concurrency.max(1),
        }
    }
}

/// The batch's payment metrics and its summary line. Counted once committed: a retried
/// batch finds its outcomes recorded and charges nothing again, so an outcome is counted
/// once; failures (`failed` of them for good, `unsettled` in all) count on every attempt.
fn count(summary: &BatchSummary, failed: usize, unsettled: usize) {
    metrics::payments("succeeded", summary.charged as u64);
    metrics::payments("declined", summary.declined as u64);
    metrics::payments("refunded", summary.refunded as u64);
    metrics::payments("retryable", summary.retryable as u64);
    metrics::payments("failed", failed as u64);
    tracing::info!(
        charged = summary.charged,
        declined = summary.declined,
        refunded = summary.refunded,
        skipped = summary.skipped,
        failed = unsettled,
        published = summary.published,
        "payment batch recorded"
    );
}

impl BatchHandler for Payments {
    const NAME: &'static str = CONSUMER;
    type Summary = BatchSummary;
    type Error = PaymentError;

    async fn handle(&self, batch: Batch, _: Invocation) -> Result<BatchSummary, PaymentError> {
        // An instance's first batch starts the producer while it claims and charges.
        self.publisher
            .prefetch(&[topics::ORDER_PAID, topics::ORDER_PAYMENT_FAILED]);
        let Batch {
            records,
            dead_letters,
        } = batch;
        let reserved = orders_of(&records, EventType::OrderReserved);
        let cancelled = orders_of(&records, EventType::OrderCancelled);
        let (attempts, refunds) = self.claim(&reserved, &cancelled, dead_letters).await?;
        let mut summary = BatchSummary {
            skipped: records.len().saturating_sub(attempts.len() + refunds.len()),
            ..BatchSummary::default()
        };
        // Each outcome's event goes on in the trace of the record that asked for it.
        let traces: HashMap<Uuid, TraceContext> = records
            .iter()
            .map(|record| (record.event.data.order_id, record.trace))
            .collect();
        drop(records);

        let charges = self.charge_all(&attempts).await;
        let refunds = self.refund_all(&refunds).await;
        let mut failures: Vec<(Uuid, StripeError)> = Vec::new();
        let mut not_recorded: Vec<sqlx::Error> = Vec::new();
        let mut charged = Vec::new();
        for (attempt, result) in attempts.iter().zip(charges) {
            match result {
                Ok(charge) => charged.push((attempt, charge)),
                Err(ChargeFailure::Stripe(err)) => failures.push((attempt.order_id, err)),
                Err(ChargeFailure::NotRecorded(err)) => not_recorded.push(err),
            }
        }
        let mut refunded = Vec::new();
        for (due, result) in refunds {
            match result {
                Ok(refund) => refunded.push((due.order_id, refund)),
                Err(err) => failures.push((due.order_id, err)),
            }
        }
        let rows = self
            .record(&charged, &refunded, &failures, &traces, &mut summary)
            .await?;
        let report = outbox::publish_committed(&self.pool, &self.publisher, &rows).await?;
        summary.published = report.published;
        let transient = failures.iter().filter(|(_, e)| e.is_transient()).count();
        // An intent not recorded is retried like a transient Stripe failure.
        summary.retryable = transient + not_recorded.len();
        count(
            &summary,
            failures.len() - transient,
            failures.len() + not_recorded.len(),
        );
        if let Some(source) = not_recorded.into_iter().next() {
            return Err(PaymentError::Database {
                step: "recording a new PaymentIntent",
                source,
            });
        }
        if let Some((_, first)) = failures.into_iter().next() {
            let failed = summary.retryable.max(1);
            return Err(PaymentError::Stripe { failed, first });
        }
        if !report.all_published() {
            return Err(PaymentError::NotPublished {
                unpublished: report.failed.len(),
            });
        }
        Ok(summary)
    }
}

/// The order ids of the records of one kind.
fn orders_of(records: &[DecodedRecord], kind: EventType) -> BTreeSet<Uuid> {
    records
        .iter()
        .filter(|record| record.event.event_type == kind)
        .map(|record| record.event.data.order_id)
        .collect()
}

impl Payments {
    /// Step 1: one transaction claiming what this batch will ask of Stripe.
    async fn claim(
        &self,
        reserved: &BTreeSet<Uuid>,
        cancelled: &BTreeSet<Uuid>,
        dead_letters: DeadLetters,
    ) -> Result<(Vec<Attempt>, Vec<RefundDue>), PaymentError> {
        if reserved.is_empty() && cancelled.is_empty() && dead_letters.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut tx = dead_letters
            .begin_with(&self.pool, "beginning the claim")
            .await?;
        let attempts = store::claim_attempts(&mut tx, reserved)
            .await
            .map_err(PaymentError::database("claiming payments"))?;
        let refunds = store::claim_refunds(&mut tx, cancelled)
            .await
            .map_err(PaymentError::database("claiming refunds"))?;
        tx.commit()
            .await
            .map_err(PaymentError::database("committing the claim"))?;
        Ok((attempts, refunds))
    }

    /// Step 2 for charges: one outcome per attempt, in the attempts' order.
    async fn charge_all(&self, attempts: &[Attempt]) -> Vec<Result<Charge, ChargeFailure>> {
        // Owned items: a stream over borrowed ones trips the `Send` check of the handler's
        // future (a known higher-ranked lifetime limitation of async closures).
        futures::stream::iter(attempts.to_vec())
            .map(|attempt| async move { self.charge_one(&attempt).await })
            .buffered(self.concurrency)
            .collect()
            .await
    }

    async fn charge_one(&self, attempt: &Attempt) -> Result<Charge, ChargeFailure> {
        let intent = match &attempt.payment_intent_id {
            // An earlier attempt created it, and may have confirmed it: settle by what it is.
            Some(id) => {
                let intent = self.stripe.retrieve(id).await?;
                if intent.status != "requires_confirmation" {
                    tracing::info!(order_id = %attempt.order_id, intent = %intent.id, status = %intent.status, "settled by the charge of an earlier attempt");
                    return Ok(Stripe::settle(intent)?);
                }
                intent.id
            }
            None => {
                let created = self
                    .stripe
                    .create_intent(attempt.order_id, attempt.money, &attempt.payment_method)
                    .await?;
                let id = match created {
                    Created::Intent(id) => id,
                    Created::Refused(declined) => return Ok(declined),
                };
                // Not recorded, not confirmed: the next attempt creates another, and this
                // one stays unconfirmed, never charged.
                if let Err(err) = store::record_intent(&self.pool, attempt.order_id, &id).await {
                    tracing::warn!(order_id = %attempt.order_id, intent = %id, error = %err, "PaymentIntent created but not recorded, so not confirmed");
                    return Err(ChargeFailure::NotRecorded(err));
                }
                id
            }
        };
        Ok(self.stripe.confirm(attempt.order_id, &intent).await?)
    }

    /// Step 2 for refunds.
    async fn refund_all(
        &self,
        refunds: &[RefundDue],
    ) -> Vec<(RefundDue, Result<String, StripeError>)> {
        futures::stream::iter(refunds.to_vec())
            .map(|due| async move {
                let result = self.refund_one(&due).await;
                (due, result)
            })
            .buffered(self.concurrency)
            .collect()
            .await
    }

    async fn refund_one(&self, due: &RefundDue) -> Result<String, StripeError> {
        if due.attempts > 1
            && let Some(refund) = self.stripe.find_refund(&due.payment_intent_id).await?
        {
            return Ok(refund.id);
        }
        self.stripe
            .refund(due.order_id, &due.payment_intent_id)
            .await
            .map(|refund| refund.id)
    }

    /// Step 3: one transaction recording every outcome and its event.
    async fn record(
        &self,
        charged: &[(&Attempt, Charge)],
        refunded: &[(Uuid, String)],
        failures: &[(Uuid, StripeError)],
        traces: &HashMap<Uuid, TraceContext>,
        summary: &mut BatchSummary,
    ) -> Result<Vec<OutboxRow>, PaymentError> {
        if charged.is_empty() && refunded.is_empty() && failures.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<ChargeRecord> = charged
            .iter()
            .map(|(attempt, charge)| match charge {
                Charge::Succeeded { intent } => ChargeRecord {
                    order_id: attempt.order_id,
                    succeeded: true,
                    intent: Some(intent.clone()),
                    decline_code: None,
                },
                Charge::Declined { intent, code } => ChargeRecord {
                    order_id: attempt.order_id,
                    succeeded: false,
                    intent: intent.clone(),
                    decline_code: Some(code.clone()),
                },
            })
            .collect();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(PaymentError::database("beginning the record"))?;
        let changed: BTreeSet<Uuid> = store::record_charges(&mut tx, &records)
            .await
            .map_err(PaymentError::database("recording charges"))?
            .into_iter()
            .collect();
        summary.refunded = store::record_refunds(&mut tx, refunded)
            .await
            .map_err(PaymentError::database("recording refunds"))?
            as usize;
        let errors: Vec<(Uuid, String)> = failures
            .iter()
            .map(|(order_id, err)| (*order_id, err.to_string()))
            .collect();
        store::record_errors(&mut tx, &errors)
            .await
            .map_err(PaymentError::database("recording errors"))?;
        let events: Vec<OrderEvent> = charged
            .iter()
            .filter(|(attempt, _)| changed.contains(&attempt.order_id))
            .map(|(attempt, charge)| {
                let declined = match charge {
                    Charge::Succeeded { .. } => {
                        summary.charged += 1;
                        None
                    }
                    Charge::Declined { code, .. } => {
                        summary.declined += 1;
                        Some(code.clone())
                    }
                };
                let event = payment_event(attempt, declined);
                match traces.get(&attempt.order_id) {
                    Some(trace) => event.in_trace(*trace),
                    None => event,
                }
            })
            .collect();
        let rows = outbox::enqueue(&mut tx, &events)
            .await
            .map_err(PaymentError::database("enqueueing events"))?;
        tx.commit()
            .await
            .map_err(PaymentError::database("committing outcomes"))?;
        Ok(rows)
    }
}

/// `order.paid`, or `order.payment-failed` with the decline code.
fn payment_event(attempt: &Attempt, decline_code: Option<String>) -> OrderEvent {
    let kind = if decline_code.is_some() {
        EventType::OrderPaymentFailed
    } else {
        EventType::OrderPaid
    };
    OrderEvent::of_kind(
        kind,
        OrderEventData {
            order_id: attempt.order_id,
            customer_name: attempt.customer_name.clone(),
            customer_email: attempt.customer_email.clone(),
            product_name: attempt.product_name.clone(),
            quantity: attempt.quantity,
            reason: None,
            payment: Some(PaymentData {
                money: attempt.money,
                decline_code,
            }),
        },
    )
}
