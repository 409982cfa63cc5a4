//! The batch handler: dead-letter poison, claim the rows, send the mails with bounded
//! concurrency, record the outcomes, and fail the invocation only when a mail is still
//! retryable. (The shared consumer seam has decoded the batch.)
//!
//! Delivery is at least once. If the function dies after a mail left but before its row is
//! marked `SENT` (one statement at the end of the batch), the retried batch claims the
//! `SENDING` row again and sends the mail a second time with the same `Message-ID`, which
//! receivers use to drop the copy. The window is bounded: sends stop at the invocation's
//! deadline (minus a margin for the bookkeeping), so a batch that runs long records what it
//! did instead of being killed mid-way.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::{StreamExt, stream};
use lettre::Address;
use shared::consumer::{Batch, BatchError, BatchHandler, Invocation};
use shared::metrics;
use shared::msk::DecodedRecord;
use shared::redact::redact_emails;
use shared::trace::TraceContext;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::MailSettings;
use crate::content::{Notice, NoticeKind, compose};
use crate::mailer::Mailer;
use crate::store::{self, Claim, ClaimRequest, Outcome};

/// The consumer name recorded in `dead_letters`, and the binary's name.
pub const CONSUMER: &str = "notification";

/// Time kept back from the Lambda deadline for recording the batch's outcomes.
pub const BOOKKEEPING_MARGIN: Duration = Duration::from_secs(5);

/// What one invocation did; also the function's response.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchSummary {
    /// Events that call for no mail (`order.confirmed`) or repeat one earlier in the batch.
    pub ignored: usize,
    /// Mails already `SENT`, `FAILED` or `SKIPPED` by an earlier delivery.
    pub already_done: usize,
    pub sent: usize,
    /// Rows marked `SKIPPED`: no customer email and no fallback.
    pub skipped: usize,
    /// Rows marked `FAILED`: a 5xx reply or a mail that cannot be built.
    pub failed: usize,
    /// Rows left retryable (4xx, connection, timeout, deadline).
    pub retryable: usize,
}

/// Why an invocation failed. Every variant makes Lambda retry the batch, which is harmless:
/// finished rows are skipped and retryable ones are claimed again.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("the database is unavailable: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "{} mails of the batch are not sent yet and stay retryable; first error: {first_error}",
        summary.retryable
    )]
    Delivery {
        first_error: String,
        summary: BatchSummary,
    },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl BatchError for NotificationError {
    fn name(&self) -> &'static str {
        match self {
            Self::Database(_) => "DatabaseUnavailable",
            Self::Delivery { .. } => "MailNotDelivered",
            Self::Unexpected(_) => "Unexpected",
        }
    }

    /// An outage, not a bug: a retry can succeed without anyone changing anything.
    fn is_transient(&self) -> bool {
        match self {
            Self::Database(err) => shared::db::is_transient(err),
            Self::Delivery { .. } => true,
            Self::Unexpected(_) => false,
        }
    }

    fn database_error(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Database(err) => Some(err),
            _ => None,
        }
    }
}

/// The notification function's dependencies, built once per cold start.
pub struct Notifier {
    pool: PgPool,
    mailer: Arc<Mailer>,
    mail: MailSettings,
    concurrency: usize,
}

impl Notifier {
    /// `concurrency` bounds the mails in flight within one batch.
    pub fn new(pool: PgPool, mailer: Arc<Mailer>, mail: MailSettings, concurrency: usize) -> Self {
        Self {
            pool,
            mailer,
            mail,
            concurrency: concurrency.max(1),
        }
    }

    /// Handles one batch, starting no SMTP conversation after `deadline` and cutting
    /// conversations short at it; mails not sent by then stay retryable.
    async fn handle_batch(
        &self,
        batch: Batch,
        deadline: Option<Instant>,
    ) -> Result<BatchSummary, NotificationError> {
        let Batch {
            records,
            dead_letters,
        } = batch;
        let mut summary = BatchSummary::default();
        let (notices, traces) = notices_of(&records, &mut summary);
        let requests: Vec<ClaimRequest> = notices
            .iter()
            .map(|notice| ClaimRequest {
                order_id: notice.order.order_id,
                kind: notice.kind,
                recipient: self.recipient(notice),
            })
            .collect();

        let claims = {
            let mut conn = self.pool.acquire().await?;
            dead_letters.store(&mut conn).await?;
            store::claim(&mut *conn, &requests).await?
        };

        let mut to_send = Vec::new();
        for (((notice, request), claim), trace) in
            notices.iter().zip(requests).zip(claims).zip(traces)
        {
            match (claim, request.recipient) {
                (Claim::Send, Some(recipient)) => to_send.push((notice.clone(), recipient, trace)),
                (Claim::Skipped, _) => {
                    summary.skipped += 1;
                    tracing::info!(
                        trace_id = %trace.trace_id(),
                        order_id = %notice.order.order_id,
                        event_id = %notice.event_id,
                        kind = notice.kind.as_str(),
                        "no customer email and no fallback: notification skipped"
                    );
                }
                _ => summary.already_done += 1,
            }
        }

        let outcomes: Vec<(Uuid, NoticeKind, Outcome)> = stream::iter(to_send)
            // Owned notices: a closure over borrowed ones makes the future lose `Send`.
            .map(|(notice, recipient, trace)| async move {
                self.deliver(&notice, recipient, trace, deadline).await
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        store::record(&self.pool, &outcomes).await?;

        let first_error = tally(&outcomes, &mut summary);
        tracing::info!(?summary, "notification batch done");
        match first_error {
            Some(first_error) => Err(NotificationError::Delivery {
                first_error,
                summary,
            }),
            None => Ok(summary),
        }
    }

    /// The customer's address, else the fallback, else nobody.
    fn recipient(&self, notice: &Notice) -> Option<String> {
        notice
            .order
            .customer_email
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| self.mail.fallback_to.as_ref().map(Address::to_string))
    }

    /// Sends one claimed mail, within the span of its record in the order's trace, and says
    /// how its row ends.
    async fn deliver(
        &self,
        notice: &Notice,
        recipient: String,
        trace: TraceContext,
        deadline: Option<Instant>,
    ) -> (Uuid, NoticeKind, Outcome) {
        let span = tracing::info_span!(
            "notification",
            trace_id = %trace.trace_id(),
            span_id = %trace.span_id(),
            order_id = %notice.order.order_id,
            event_id = %notice.event_id,
            kind = notice.kind.as_str(),
        );
        let outcome = self
            .attempt(notice, &recipient, deadline)
            .instrument(span)
            .await;
        (notice.order.order_id, notice.kind, outcome)
    }

    async fn attempt(
        &self,
        notice: &Notice,
        recipient: &str,
        deadline: Option<Instant>,
    ) -> Outcome {
        let message = match compose(
            notice,
            &self.mail.from,
            recipient,
            self.mail.message_id_domain(),
        ) {
            Ok(message) => message,
            Err(err) => {
                // Masked again as a whole: the rendering and building errors are lettre's
                // and askama's text.
                let error = redact_emails(&err.to_string()).into_owned();
                tracing::error!(%error, "notification cannot be built: marked FAILED");
                return Outcome::Failed { error };
            }
        };
        let budget = deadline.map_or(self.mailer.timeout(), |deadline| {
            deadline.saturating_duration_since(Instant::now())
        });
        if budget.is_zero() {
            return Outcome::Retryable {
                error: "not attempted: the invocation's deadline was reached".to_owned(),
            };
        }
        match self.mailer.send(&message, budget).await {
            Ok(()) => {
                tracing::info!("notification sent");
                Outcome::Sent { at: Utc::now() }
            }
            Err(err) if err.is_permanent() => {
                tracing::warn!(error = %err, "SMTP server refused the notification: marked FAILED");
                Outcome::Failed {
                    error: err.to_string(),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "notification not sent: stays retryable");
                Outcome::Retryable {
                    error: err.to_string(),
                }
            }
        }
    }
}

/// The batch's notices, one per order and kind (the first record of each), with each one's
/// trace; records that call for no mail, or repeat one, are counted as ignored.
fn notices_of(
    records: &[DecodedRecord],
    summary: &mut BatchSummary,
) -> (Vec<Notice>, Vec<TraceContext>) {
    let mut seen = HashSet::new();
    let mut notices = Vec::with_capacity(records.len());
    let mut traces = Vec::with_capacity(records.len());
    for record in records {
        match Notice::from_event(&record.event) {
            Some(notice) if seen.insert((notice.order.order_id, notice.kind)) => {
                notices.push(notice);
                traces.push(record.trace);
            }
            _ => summary.ignored += 1,
        }
    }
    (notices, traces)
}

/// Counts the recorded outcomes into `summary` and the mail metrics (once recorded: a mail
/// already done is never counted again); returns the first retryable error, if any.
fn tally(outcomes: &[(Uuid, NoticeKind, Outcome)], summary: &mut BatchSummary) -> Option<String> {
    let mut first_error = None;
    for (_, _, outcome) in outcomes {
        match outcome {
            Outcome::Sent { .. } => summary.sent += 1,
            Outcome::Failed { .. } => summary.failed += 1,
            Outcome::Retryable { error } => {
                summary.retryable += 1;
                first_error.get_or_insert_with(|| error.clone());
            }
        }
    }
    metrics::mails("sent", summary.sent as u64);
    metrics::mails("failed", summary.failed as u64);
    metrics::mails("retryable", summary.retryable as u64);
    metrics::mails("skipped", summary.skipped as u64);
    first_error
}

impl BatchHandler for Notifier {
    const NAME: &'static str = CONSUMER;
    type Summary = BatchSummary;
    type Error = NotificationError;

    #[tracing::instrument(name = "notification_batch", skip_all)]
    async fn handle(
        &self,
        batch: Batch,
        invocation: Invocation,
    ) -> Result<BatchSummary, NotificationError> {
        self.handle_batch(batch, send_deadline(invocation)).await
    }
}

/// The point by which an invocation must stop sending: its deadline minus
/// [`BOOKKEEPING_MARGIN`]; `None` (no deadline) leaves the per-mail SMTP timeout alone to
/// bound the batch.
pub fn send_deadline(invocation: Invocation) -> Option<Instant> {
    invocation.deadline.map(|deadline| {
        deadline
            .checked_sub(BOOKKEEPING_MARGIN)
            .unwrap_or_else(Instant::now)
    })
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn sending_stops_a_bookkeeping_margin_before_the_deadline_and_only_with_one() {
        assert_eq!(send_deadline(Invocation::default()), None);
        let invocation =
            Invocation::with_lambda_deadline(SystemTime::now() + Duration::from_secs(60));
        let budget = send_deadline(invocation)
            .unwrap()
            .saturating_duration_since(Instant::now());
        assert!(
            budget <= Duration::from_secs(60) - BOOKKEEPING_MARGIN,
            "{budget:?}"
        );
        assert!(budget > Duration::from_secs(50), "{budget:?}");
    }
}
