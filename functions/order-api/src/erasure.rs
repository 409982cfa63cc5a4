//! Erasing a customer (docs/access.md, "Erasure"): the SQL that replaces a person's name and
//! address wherever the system keeps them, in one transaction. Amounts, statuses and
//! payments stay for the books.

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::store::StoreError;

/// What an erased order's customer is called afterwards.
pub const ERASED_NAME: &str = "Erased customer";

/// Whom to erase: an email address (any capitalisation), an account, or both.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub email: Option<&'a str>,
    pub sub: Option<&'a str>,
}

/// How many rows each table had changed; all zero when there was nothing (left) to erase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    /// Orders whose name, address and account were replaced.
    pub orders: i64,
    /// Mail records whose recipient and error text were removed.
    pub notifications: i64,
    /// Dead letters that held the person's records: their bytes are removed, so they can no
    /// longer be replayed.
    pub dead_letters: i64,
    /// Events not yet sent whose name and address were replaced.
    pub outbox: i64,
}

/// Replaces the subject's name and address in every table that holds them:
/// - `orders` of that address or account: the name becomes [`ERASED_NAME`]; the address,
///   the account, the idempotency key and the request's fingerprint (a hash of the name and
///   address) become `NULL`;
/// - `notifications` of those orders or to that address: recipient and error text go;
/// - `dead_letters` whose bytes name the address (in any capitalisation; `escape` encoding
///   keeps ASCII as it is) or one of those orders: key and value go;
/// - `outbox` rows of those orders not yet sent: their data's name and address are replaced.
///
/// One statement, so that it commits as a whole. Running it again changes nothing.
pub async fn erase(pool: &PgPool, subject: Subject<'_>) -> Result<Erased, StoreError> {
    let counts = sqlx::query!(
        r#"WITH targets AS (
             SELECT id FROM orders
             WHERE ($1::text IS NOT NULL AND lower(customer_email) = lower($1))
                OR ($2::text IS NOT NULL AND customer_sub = $2)
             FOR UPDATE
         ), erased_orders AS (
             UPDATE orders
             SET customer_name = $3, customer_email = NULL, customer_sub = NULL,
                 idempotency_key = NULL, request_fingerprint = NULL, updated_at = now()
             WHERE id IN (SELECT id FROM targets)
             RETURNING id
         ), erased_notifications AS (
             UPDATE notifications
             SET recipient = NULL, last_error = NULL, updated_at = now()
             WHERE (order_id IN (SELECT id FROM targets)
                    OR ($1::text IS NOT NULL AND lower(recipient) = lower($1)))
               AND (recipient IS NOT NULL OR last_error IS NOT NULL)
             RETURNING 1
         ), erased_dead_letters AS (
             UPDATE dead_letters d
             SET key = NULL, value = NULL,
                 error = 'its bytes were removed: they held an erased customer''s data'
             WHERE d.value IS NOT NULL
               AND (($1::text IS NOT NULL
                     AND position(lower($1) IN lower(encode(d.value, 'escape'))) > 0)
                    OR EXISTS (SELECT 1 FROM targets t
                               WHERE position(convert_to(t.id::text, 'UTF8') IN d.value) > 0))
             RETURNING 1
         ), erased_outbox AS (
             UPDATE outbox
             SET payload = jsonb_set(jsonb_set(payload, '{data,customerName}', to_jsonb($3::text)),
                                     '{data,customerEmail}', 'null'::jsonb)
             WHERE payload->>'subject' IN (SELECT id::text FROM targets)
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM erased_orders) AS "orders!",
                (SELECT count(*) FROM erased_notifications) AS "notifications!",
                (SELECT count(*) FROM erased_dead_letters) AS "dead_letters!",
                (SELECT count(*) FROM erased_outbox) AS "outbox!""#,
        subject.email,
        subject.sub,
        ERASED_NAME,
    )
    .fetch_one(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "erase a customer"))?;
    Ok(Erased {
        orders: counts.orders,
        notifications: counts.notifications,
        dead_letters: counts.dead_letters,
        outbox: counts.outbox,
    })
}
