//! The one seam every MSK-triggered function goes through (docs/failure-rules.md, "Consumers").
//!
//! A consumer function writes a [`BatchHandler`]: what to do with the decoded records of one
//! batch. [`Consumer`] does everything around it, the same way for every function and for
//! every way of running it (Lambda through [`serve`], the local runtime and the tests through
//! [`MskFunction`]):
//!
//! 1. decode the Lambda `KafkaEvent` into order events ([`crate::msk::decode_batch`]), each
//!    record continuing the trace its `traceparent` header or attribute names
//!    ([`crate::msk::DecodedRecord::trace`]);
//! 2. hand the handler the good records, in offset order per partition, together with the
//!    poison ones as [`DeadLetters`] that it must store (in its own transaction, so that a
//!    batch that fails keeps none of its effects, dead letters included);
//! 3. record the batch's size and duration and its dead letters ([`crate::metrics`]);
//! 4. on failure, say whether it is transient, log it once with its causes, fetch the
//!    database credentials again if the database refused them, and report it to Lambda with
//!    one `errorType` format: `Transient.<Name>` or `Permanent.<Name>`.
//!
//! Lambda retries a failed batch whole; handlers make that harmless by keying every effect by
//! event id.

use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::{Instant, SystemTime};

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use tracing::Instrument;

use crate::db::Database;
use crate::lambda::Serve;
use crate::metrics;
use crate::msk::{DecodedRecord, PoisonRecord, Position, decode_batch, store_dead_letters};
use crate::trace::export::{self, FinishedSpan, KeyValue, SpanKind};
use crate::trace::{TraceContext, TraceId};

/// What one consumer function decides for the good records of a batch.
pub trait BatchHandler: Send + Sync + 'static {
    /// The consumer's name in `dead_letters` and `processed_events`, and its binary's name
    /// (the local runtime runs the triggers `template.yaml` declares for that binary).
    const NAME: &'static str;
    /// What the handler reports about a batch; part of the function's response.
    type Summary: Serialize + Debug + Send;
    type Error: BatchError;

    /// Handles one decoded batch: its good records, sorted by topic, partition and offset,
    /// and its poison records, which it stores with [`DeadLetters::store`].
    fn handle(
        &self,
        batch: Batch,
        invocation: Invocation,
    ) -> impl Future<Output = Result<Self::Summary, Self::Error>> + Send;
}

/// One decoded batch, as a handler receives it.
#[derive(Debug)]
pub struct Batch {
    pub records: Vec<DecodedRecord>,
    pub dead_letters: DeadLetters,
}

/// A database failure of a batch and the step it happened in (`"storing dead letters"`), for
/// the steps the consumers share; each takes it into its own error, which names the step.
#[derive(Debug)]
pub struct StepFailure {
    pub step: &'static str,
    pub source: sqlx::Error,
}

impl StepFailure {
    /// Tags a database failure with the step it happened in, for `map_err`.
    pub fn at(step: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self { step, source }
    }
}

/// The poison records of a batch, bound for `dead_letters` under the consumer's name. A
/// handler stores them where its transaction needs them; forgetting to is a compile warning.
#[derive(Debug)]
#[must_use = "poison records must be stored in dead_letters"]
pub struct DeadLetters {
    consumer: &'static str,
    records: Vec<PoisonRecord>,
}

impl DeadLetters {
    /// Stores the poison records in one statement (a redelivered one is stored once).
    pub async fn store(self, conn: &mut sqlx::PgConnection) -> sqlx::Result<u64> {
        store_dead_letters(conn, self.consumer, &self.records).await
    }

    /// Opens the batch's transaction (`begin` names that step) and stores the poison records
    /// in it first, so that they commit with the batch's effects or not at all.
    pub async fn begin_with(
        self,
        pool: &sqlx::PgPool,
        begin: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StepFailure> {
        let mut tx = pool.begin().await.map_err(StepFailure::at(begin))?;
        self.store(&mut tx)
            .await
            .map_err(StepFailure::at("storing dead letters"))?;
        Ok(tx)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A handler's failure, as the seam needs to see it.
pub trait BatchError: std::error::Error + Send + Sync + 'static {
    /// A short, stable name of the kind of failure, such as `DatabaseUnavailable`.
    fn name(&self) -> &'static str;
    /// Whether a retry of the same batch can succeed without anyone changing anything.
    fn is_transient(&self) -> bool;
    /// The database error behind the failure, if any (to recover rotated credentials).
    fn database_error(&self) -> Option<&sqlx::Error>;
}

/// What the invocation allows: how long it may run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Invocation {
    /// When Lambda stops the invocation; `None` when there is no deadline worth keeping.
    pub deadline: Option<Instant>,
}

impl Invocation {
    /// From the deadline Lambda reports. A deadline already past when the invocation begins
    /// (local emulators such as cargo-lambda send a fixed time in 1970) means none.
    pub fn with_lambda_deadline(deadline: SystemTime) -> Self {
        let remaining = deadline.duration_since(SystemTime::now()).ok();
        Self {
            deadline: remaining.map(|left| Instant::now() + left),
        }
    }
}

/// What one invocation did: the seam's counts and the handler's own summary. This is the
/// function's response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReport<S> {
    /// Records delivered, poison included.
    pub records: usize,
    /// Poison records stored in `dead_letters`.
    pub dead_lettered: usize,
    #[serde(flatten)]
    pub summary: S,
}

impl<S> std::ops::Deref for BatchReport<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.summary
    }
}

/// Why an invocation failed: the handler's error, seen through [`BatchError`].
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BatchFailure<E>(pub E);

impl<E: BatchError> BatchFailure<E> {
    pub fn is_transient(&self) -> bool {
        self.0.is_transient()
    }

    pub fn database_error(&self) -> Option<&sqlx::Error> {
        self.0.database_error()
    }

    /// The Lambda `errorType`: `Transient.<Name>` or `Permanent.<Name>`.
    pub fn error_type(&self) -> String {
        let name = self.0.name();
        let kind = if self.is_transient() {
            "Transient"
        } else {
            "Permanent"
        };
        format!("{kind}.{name}")
    }

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

impl<E: BatchError> From<BatchFailure<E>> for Diagnostic {
    fn from(failure: BatchFailure<E>) -> Self {
        Self {
            error_type: failure.error_type(),
            error_message: failure.with_causes(),
        }
    }
}

/// A consumer function: its handler plus its database, whose credentials it recovers.
#[derive(Clone)]
pub struct Consumer<H> {
    handler: H,
    database: Database,
}

impl<H: BatchHandler> Consumer<H> {
    pub fn new(handler: H, database: Database) -> Self {
        Self { handler, database }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        self.database.pool()
    }

    /// Handles a batch with no deadline (tests and the local runtime).
    pub async fn handle(
        &self,
        event: KafkaEvent,
    ) -> Result<BatchReport<H::Summary>, BatchFailure<H::Error>> {
        self.handle_within(event, Invocation::default()).await
    }

    /// Handles one batch as Lambda delivers it. Poison records never fail the batch.
    pub async fn handle_within(
        &self,
        event: KafkaEvent,
        invocation: Invocation,
    ) -> Result<BatchReport<H::Summary>, BatchFailure<H::Error>> {
        let span = tracing::info_span!(
            "batch",
            consumer = H::NAME,
            records = tracing::field::Empty,
            poison = tracing::field::Empty,
            traces = tracing::field::Empty
        );
        let started = Instant::now();
        let records = event.records.values().map(Vec::len).sum();
        let result = self.run(event, invocation).instrument(span).await;
        let outcome = match &result {
            Ok(report) => {
                metrics::dead_letters(H::NAME, report.dead_lettered as u64);
                "ok"
            }
            Err(_) => "failed",
        };
        metrics::batch(H::NAME, outcome, records, started.elapsed());
        if let Err(failure) = &result {
            tracing::error!(
                consumer = H::NAME,
                error = %failure.with_causes(),
                error_type = %failure.error_type(),
                transient = failure.is_transient(),
                "batch failed; Lambda retries it"
            );
            if let Some(err) = failure.database_error() {
                self.database.recover(err).await;
            }
        }
        result
    }

    async fn run(
        &self,
        event: KafkaEvent,
        invocation: Invocation,
    ) -> Result<BatchReport<H::Summary>, BatchFailure<H::Error>> {
        let batch = decode_batch(&event);
        // The base64 payloads are no longer needed; free them before the real work.
        drop(event);
        let span = tracing::Span::current();
        span.record("records", batch.records.len());
        span.record("poison", batch.poison.len());
        // One invocation serves many orders, so many traces: the batch belongs to none of
        // them, and each record's own span (in the handler) carries its trace.
        let traces: HashSet<TraceId> = batch
            .records
            .iter()
            .map(|record| record.trace.trace_id())
            .collect();
        span.record("traces", traces.len());
        for poison in &batch.poison {
            tracing::warn!(
                trace_id = %poison.trace.trace_id(),
                topic = %poison.position.topic,
                partition = poison.position.partition,
                offset = poison.position.offset,
                error = %poison.error,
                "poison record goes to dead_letters"
            );
        }
        let (records, dead_lettered) =
            (batch.records.len() + batch.poison.len(), batch.poison.len());
        let started_at = SystemTime::now();
        let exported: Vec<(TraceContext, Position)> = if export::is_on() {
            batch
                .records
                .iter()
                .map(|record| (record.trace, record.position.clone()))
                .collect()
        } else {
            Vec::new()
        };
        let batch = Batch {
            records: batch.records,
            dead_letters: DeadLetters {
                consumer: H::NAME,
                records: batch.poison,
            },
        };
        let result = self.handler.handle(batch, invocation).await;
        record_spans(H::NAME, exported, started_at, result.is_ok());
        let summary = result.map_err(BatchFailure)?;
        Ok(BatchReport {
            records,
            dead_lettered,
            summary,
        })
    }
}

/// One exported span per record, in the record's trace, covering the batch that handled it
/// (one transaction handles them all).
fn record_spans(
    consumer: &'static str,
    records: Vec<(TraceContext, Position)>,
    start: SystemTime,
    succeeded: bool,
) {
    let end = SystemTime::now();
    for (context, position) in records {
        export::record(FinishedSpan {
            name: format!("{} process", position.topic),
            kind: SpanKind::Consumer,
            context,
            start,
            end,
            attributes: vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", position.topic),
                KeyValue::new("messaging.consumer.group.name", consumer),
                KeyValue::new(
                    "messaging.destination.partition.id",
                    position.partition.to_string(),
                ),
                KeyValue::new("messaging.kafka.offset", position.offset),
                KeyValue::new("outcome", if succeeded { "ok" } else { "failed" }),
            ],
        });
    }
}

/// A consumer function behind one object-safe face, so that the local runtime can hold
/// every consumer in one list and run the triggers `template.yaml` declares for it.
pub trait MskFunction: Send + Sync {
    /// The binary (and consumer) name, as in `template.yaml`'s `BuildProperties.Binary`.
    fn name(&self) -> &'static str;

    /// Handles one batch; the error is what Lambda would report.
    fn invoke(
        &self,
        event: KafkaEvent,
        invocation: Invocation,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, Diagnostic>> + Send + '_>>;
}

impl<H: BatchHandler> MskFunction for Consumer<H> {
    fn name(&self) -> &'static str {
        H::NAME
    }

    fn invoke(
        &self,
        event: KafkaEvent,
        invocation: Invocation,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, Diagnostic>> + Send + '_>> {
        Box::pin(async move {
            let report = self.handle_within(event, invocation).await?;
            Ok(serde_json::to_value(report).expect("batch reports always serialise"))
        })
    }
}

/// A consumer is served to the Lambda Runtime API one batch per invocation. Batches of
/// different partitions may be handled at once on Lambda Managed Instances
/// ([`crate::lambda::each_invocation`]); every effect is keyed by event id and stock rows are
/// locked, so that is as safe as two instances.
impl<H: BatchHandler> Serve for Consumer<H> {
    fn serve(self) -> impl Future<Output = Result<(), lambda_runtime::Error>> {
        let consumer = std::sync::Arc::new(self);
        crate::lambda::each_invocation(move |event: LambdaEvent<KafkaEvent>| {
            let consumer = consumer.clone();
            async move {
                let invocation = Invocation::with_lambda_deadline(event.context.deadline());
                consumer.invoke(event.payload, invocation).await
            }
        })
        .serve()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("broker gone")]
    struct Gone;

    impl BatchError for Gone {
        fn name(&self) -> &'static str {
            "BrokerUnavailable"
        }
        fn is_transient(&self) -> bool {
            true
        }
        fn database_error(&self) -> Option<&sqlx::Error> {
            None
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("invariant broken")]
    struct Broken(#[source] Gone);

    impl BatchError for Broken {
        fn name(&self) -> &'static str {
            "Unexpected"
        }
        fn is_transient(&self) -> bool {
            false
        }
        fn database_error(&self) -> Option<&sqlx::Error> {
            None
        }
    }

    #[test]
    fn error_types_name_the_kind_then_the_failure_and_messages_carry_every_cause() {
        assert_eq!(
            BatchFailure(Gone).error_type(),
            "Transient.BrokerUnavailable"
        );
        let diagnostic = Diagnostic::from(BatchFailure(Broken(Gone)));
        assert_eq!(diagnostic.error_type, "Permanent.Unexpected");
        assert_eq!(diagnostic.error_message, "invariant broken: broker gone");
    }

    #[test]
    fn a_deadline_already_past_when_the_invocation_begins_means_none() {
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(600);
        assert!(Invocation::with_lambda_deadline(past).deadline.is_none());
        let soon = Invocation::with_lambda_deadline(SystemTime::now() + Duration::from_secs(60))
            .deadline
            .unwrap();
        let left = soon.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(55) && left <= Duration::from_secs(60));
    }
}
