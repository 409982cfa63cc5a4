//! Delivery bookkeeping in `notifications`, one row per (order, kind), with one set-based
//! statement to claim a batch and one to record its outcomes.
//!
//! Row life: absent → `SENDING` (claimed, `attempts` + 1) → `SENT` | `FAILED` | stays
//! `SENDING` with `last_error` (retryable; the next delivery claims it again). A row
//! without any recipient goes straight to `SKIPPED`. `SENT`, `FAILED` and `SKIPPED` are
//! final: claiming skips them, so a redelivered batch sends nothing twice.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::content::NoticeKind;

/// A row to claim: which mail, and to whom (`None`: nobody, so it is skipped).
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub order_id: Uuid,
    pub kind: NoticeKind,
    pub recipient: Option<String>,
}

/// What claiming decided for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This invocation owns the row and must send the mail.
    Send,
    /// No recipient: marked `SKIPPED` now.
    Skipped,
    /// Already `SENT`, `FAILED` or `SKIPPED` by an earlier delivery: nothing to do.
    AlreadyDone,
}

/// Claims every row of a batch in one statement: new rows are inserted, retryable
/// (`SENDING`) rows are taken over, final rows are left alone. Returns one [`Claim`] per
/// request, in order. Requests must be unique per (order, kind).
pub async fn claim(
    executor: impl PgExecutor<'_>,
    requests: &[ClaimRequest],
) -> sqlx::Result<Vec<Claim>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let order_ids: Vec<Uuid> = requests.iter().map(|r| r.order_id).collect();
    let kinds: Vec<String> = requests
        .iter()
        .map(|r| r.kind.as_str().to_owned())
        .collect();
    let recipients: Vec<Option<String>> = requests.iter().map(|r| r.recipient.clone()).collect();
    // A SENDING row left by an earlier attempt (retryable error, or a crash between send
    // and bookkeeping) is claimed again; that is the at-least-once window.
    let claimed = sqlx::query!(
        r#"INSERT INTO notifications AS n (order_id, kind, recipient, status, attempts)
           SELECT order_id, kind, recipient,
                  CASE WHEN recipient IS NULL THEN 'SKIPPED' ELSE 'SENDING' END,
                  CASE WHEN recipient IS NULL THEN 0 ELSE 1 END
           FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS t(order_id, kind, recipient)
           ON CONFLICT (order_id, kind) DO UPDATE
              SET recipient  = EXCLUDED.recipient,
                  status     = EXCLUDED.status,
                  attempts   = n.attempts + EXCLUDED.attempts,
                  updated_at = now()
              WHERE n.status = 'SENDING'
           RETURNING order_id, kind, status"#,
        &order_ids,
        &kinds,
        &recipients as &[Option<String>],
    )
    .fetch_all(executor)
    .await?;
    let claimed: HashMap<(Uuid, String), String> = claimed
        .into_iter()
        .map(|row| ((row.order_id, row.kind), row.status))
        .collect();
    Ok(requests
        .iter()
        .map(|request| {
            let key = (request.order_id, request.kind.as_str().to_owned());
            match claimed.get(&key).map(String::as_str) {
                None => Claim::AlreadyDone,
                Some("SKIPPED") => Claim::Skipped,
                Some(_) => Claim::Send,
            }
        })
        .collect())
}

/// How one claimed row ended in this invocation.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        at: DateTime<Utc>,
    },
    /// Never to be retried; the text is the server's reply or why the mail could not be built,
    /// with every address in it masked (`shared::redact`).
    Failed {
        error: String,
    },
    /// Left `SENDING` for the next delivery of the batch.
    Retryable {
        error: String,
    },
}

/// Records the outcomes of a batch in one statement. Only rows still `SENDING` change.
pub async fn record(
    executor: impl PgExecutor<'_>,
    outcomes: &[(Uuid, NoticeKind, Outcome)],
) -> sqlx::Result<u64> {
    if outcomes.is_empty() {
        return Ok(0);
    }
    let mut order_ids = Vec::with_capacity(outcomes.len());
    let mut kinds = Vec::with_capacity(outcomes.len());
    let mut statuses = Vec::with_capacity(outcomes.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(outcomes.len());
    let mut sent_ats: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(outcomes.len());
    for (order_id, kind, outcome) in outcomes {
        order_ids.push(*order_id);
        kinds.push(kind.as_str().to_owned());
        let (status, error, sent_at) = match outcome {
            Outcome::Sent { at } => ("SENT", None, Some(*at)),
            Outcome::Failed { error } => ("FAILED", Some(error.clone()), None),
            Outcome::Retryable { error } => ("SENDING", Some(error.clone()), None),
        };
        statuses.push(status.to_owned());
        errors.push(error);
        sent_ats.push(sent_at);
    }
    let result = sqlx::query!(
        r#"UPDATE notifications AS n
           SET status = t.status, last_error = t.last_error, sent_at = t.sent_at, updated_at = now()
           FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
                AS t(order_id, kind, status, last_error, sent_at)
           WHERE n.order_id = t.order_id AND n.kind = t.kind AND n.status = 'SENDING'"#,
        &order_ids,
        &kinds,
        &statuses,
        &errors as &[Option<String>],
        &sent_ats as &[Option<DateTime<Utc>>],
    )
    .execute(executor)
    .await?;
    Ok(result.rows_affected())
}
