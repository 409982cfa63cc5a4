//! The payment function's SQL: the `payments` rows that make every charge and refund happen
//! at most once (docs/payments.md), one set-based statement per step of a batch.

use std::collections::BTreeSet;

use shared::domain::{CustomerName, EmailAddress, Money, ProductName, Quantity};
use sqlx::PgConnection;
use uuid::Uuid;

/// A payment to attempt now, with the order data its events carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub order_id: Uuid,
    pub money: Money,
    pub payment_method: String,
    /// The PaymentIntent an earlier attempt created, if it got that far; it may have been
    /// confirmed too.
    pub payment_intent_id: Option<String>,
    /// Including this one: above 1, an earlier attempt may have reached Stripe.
    pub attempts: i32,
    pub customer_name: CustomerName,
    pub customer_email: Option<EmailAddress>,
    pub product_name: ProductName,
    pub quantity: Quantity,
}

/// Claims the payments of the given orders that are still `RESERVED` and paid by card, and
/// counts an attempt on each payment still `PENDING`; returns those. The orders are locked
/// (in id order) while this runs, so a cancel either commits first (and the order is no
/// longer `RESERVED`, so nothing is charged) or finds the attempt counted and knows a charge
/// may be in flight.
pub(crate) async fn claim_attempts(
    conn: &mut PgConnection,
    order_ids: &BTreeSet<Uuid>,
) -> sqlx::Result<Vec<Attempt>> {
    if order_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = order_ids.iter().copied().collect();
    sqlx::query!(
        "SELECT id FROM orders
         WHERE id = ANY($1) AND status = 'RESERVED'
         ORDER BY id
         FOR UPDATE",
        &ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO payments (order_id, amount, currency, payment_method, status)
         SELECT id, amount, currency, payment_method, 'PENDING'
         FROM orders
         WHERE id = ANY($1) AND status = 'RESERVED'
           AND payment_method IS NOT NULL AND amount IS NOT NULL AND currency IS NOT NULL
         ORDER BY id
         ON CONFLICT (order_id) DO NOTHING",
        &ids,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query_as!(
        Attempt,
        r#"UPDATE payments p SET attempts = p.attempts + 1, updated_at = now()
         FROM orders o
         WHERE p.order_id = ANY($1) AND p.status = 'PENDING'
           AND o.id = p.order_id AND o.status = 'RESERVED'
         RETURNING p.order_id, (p.amount, p.currency) AS "money!: Money", p.payment_method,
                   p.payment_intent_id, p.attempts,
                   o.customer_name AS "customer_name: CustomerName",
                   o.customer_email AS "customer_email: EmailAddress",
                   o.product_name AS "product_name: ProductName",
                   o.quantity AS "quantity: Quantity""#,
        &ids,
    )
    .fetch_all(conn)
    .await
}

/// Records the PaymentIntent created for a payment still `PENDING`, committed before it is
/// confirmed: whatever happens to the confirmation, the next attempt knows which intent to
/// read back instead of creating another.
pub(crate) async fn record_intent(
    pool: &sqlx::PgPool,
    order_id: Uuid,
    intent: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE payments SET payment_intent_id = $2, updated_at = now()
         WHERE order_id = $1 AND status = 'PENDING'",
        order_id,
        intent,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A charge's outcome to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChargeRecord {
    pub order_id: Uuid,
    pub succeeded: bool,
    pub intent: Option<String>,
    pub decline_code: Option<String>,
}

/// Records the charges' outcomes, only on payments still `PENDING`; returns the orders whose
/// payment changed (an outcome recorded by an earlier run is not recorded again).
pub(crate) async fn record_charges(
    conn: &mut PgConnection,
    charges: &[ChargeRecord],
) -> sqlx::Result<Vec<Uuid>> {
    if charges.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = charges.iter().map(|c| c.order_id).collect();
    let statuses: Vec<&str> = charges
        .iter()
        .map(|c| if c.succeeded { "SUCCEEDED" } else { "DECLINED" })
        .collect();
    let intents: Vec<Option<&str>> = charges.iter().map(|c| c.intent.as_deref()).collect();
    let codes: Vec<Option<&str>> = charges.iter().map(|c| c.decline_code.as_deref()).collect();
    sqlx::query_scalar!(
        "UPDATE payments p
         SET status = c.status, payment_intent_id = c.intent, decline_code = c.code,
             last_error = NULL, updated_at = now()
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[])
             AS c(order_id, status, intent, code)
         WHERE p.order_id = c.order_id AND p.status = 'PENDING'
         RETURNING p.order_id",
        &ids,
        &statuses as &[&str],
        &intents as &[Option<&str>],
        &codes as &[Option<&str>],
    )
    .fetch_all(conn)
    .await
}

/// Notes why the attempts of these orders failed, for whoever reads the row.
pub(crate) async fn record_errors(
    conn: &mut PgConnection,
    errors: &[(Uuid, String)],
) -> sqlx::Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = errors.iter().map(|(id, _)| *id).collect();
    let messages: Vec<&str> = errors.iter().map(|(_, message)| message.as_str()).collect();
    sqlx::query!(
        "UPDATE payments p SET last_error = e.message, updated_at = now()
         FROM UNNEST($1::uuid[], $2::text[]) AS e(order_id, message)
         WHERE p.order_id = e.order_id",
        &ids,
        &messages as &[&str],
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A refund owed for a cancelled order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefundDue {
    pub order_id: Uuid,
    pub payment_intent_id: String,
    /// Including this one: above 1, an earlier attempt may have reached Stripe.
    pub attempts: i32,
}

/// Counts a refund attempt on each of the given orders whose payment is `REFUNDING`;
/// returns those.
pub(crate) async fn claim_refunds(
    conn: &mut PgConnection,
    order_ids: &BTreeSet<Uuid>,
) -> sqlx::Result<Vec<RefundDue>> {
    if order_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = order_ids.iter().copied().collect();
    sqlx::query_as!(
        RefundDue,
        r#"UPDATE payments SET attempts = attempts + 1, updated_at = now()
         WHERE order_id = ANY($1) AND status = 'REFUNDING'
         RETURNING order_id, payment_intent_id AS "payment_intent_id!", attempts"#,
        &ids,
    )
    .fetch_all(conn)
    .await
}

/// Records the refunds made, only on payments still `REFUNDING`.
pub(crate) async fn record_refunds(
    conn: &mut PgConnection,
    refunds: &[(Uuid, String)],
) -> sqlx::Result<u64> {
    if refunds.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = refunds.iter().map(|(id, _)| *id).collect();
    let refund_ids: Vec<&str> = refunds.iter().map(|(_, refund)| refund.as_str()).collect();
    Ok(sqlx::query!(
        "UPDATE payments p
         SET status = 'REFUNDED', refund_id = r.refund_id, last_error = NULL, updated_at = now()
         FROM UNNEST($1::uuid[], $2::text[]) AS r(order_id, refund_id)
         WHERE p.order_id = r.order_id AND p.status = 'REFUNDING'",
        &ids,
        &refund_ids as &[&str],
    )
    .execute(conn)
    .await?
    .rows_affected())
}
