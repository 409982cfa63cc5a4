//! The inventory function's SQL: one set-based statement per step of a batch's transaction,
//! so the round trips of a batch do not grow with its size. Every statement takes its locks
//! in a fixed order (event ids, order ids, product names, each sorted), so two invocations on
//! overlapping products wait for each other but never deadlock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use shared::domain::{OrderStatus, RejectionReason};
use shared::events::OrderEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::CONSUMER;
use crate::decide::PlacedOrder;

/// Claims the events for this consumer in `processed_events`; returns the ids this
/// transaction claimed. An id held by another transaction makes this one wait for it: if that
/// commits, the event is a duplicate here, and if it rolls back, the claim is ours.
pub(crate) async fn claim_events(
    conn: &mut PgConnection,
    event_ids: &BTreeSet<Uuid>,
) -> sqlx::Result<HashSet<Uuid>> {
    if event_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<Uuid> = event_ids.iter().copied().collect();
    let claimed = sqlx::query_scalar!(
        "INSERT INTO processed_events (consumer, event_id)
         SELECT $1, event_id FROM UNNEST($2::uuid[]) AS e(event_id) ORDER BY event_id
         ON CONFLICT (consumer, event_id) DO NOTHING
         RETURNING event_id",
        CONSUMER,
        &ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(claimed.into_iter().collect())
}

/// Locks the given orders that are still `PLACED`, in id order.
pub(crate) async fn lock_placed_orders(
    conn: &mut PgConnection,
    order_ids: &BTreeSet<Uuid>,
) -> sqlx::Result<HashMap<Uuid, PlacedOrder>> {
    if order_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = order_ids.iter().copied().collect();
    let orders = sqlx::query_as!(
        PlacedOrder,
        "SELECT id, customer_name, customer_email, product_name, quantity
         FROM orders
         WHERE id = ANY($1) AND status = 'PLACED'
         ORDER BY id
         FOR UPDATE",
        &ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(orders.into_iter().map(|order| (order.id, order)).collect())
}

/// Locks the stock rows of the given products, in product-name order; returns their levels.
pub(crate) async fn lock_stock(
    conn: &mut PgConnection,
    products: &BTreeSet<&str>,
) -> sqlx::Result<HashMap<String, i32>> {
    if products.is_empty() {
        return Ok(HashMap::new());
    }
    let names: Vec<String> = products.iter().map(|name| (*name).to_owned()).collect();
    let rows = sqlx::query!(
        "SELECT product_name, quantity
         FROM stock
         WHERE product_name = ANY($1)
         ORDER BY product_name
         FOR UPDATE",
        &names,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.product_name, row.quantity))
        .collect())
}

/// Decrements the locked stock rows by what the batch took, in one statement; returns how
/// many rows changed. The check constraint refuses a negative level even if a decision were
/// wrong.
pub(crate) async fn take_stock(
    conn: &mut PgConnection,
    taken: &BTreeMap<String, i32>,
) -> sqlx::Result<u64> {
    if taken.is_empty() {
        return Ok(0);
    }
    let names: Vec<String> = taken.keys().cloned().collect();
    let units: Vec<i32> = taken.values().copied().collect();
    Ok(sqlx::query!(
        "UPDATE stock SET quantity = stock.quantity - t.taken, updated_at = now()
         FROM UNNEST($1::text[], $2::int[]) AS t(product_name, taken)
         WHERE stock.product_name = t.product_name",
        &names,
        &units,
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Sets the decided orders' status and reason in one statement, only where still `PLACED`;
/// returns how many orders changed. An event without a reason confirms its order, and a
/// confirmed order whose product has a price gets its amount (quantity × unit amount) and
/// currency from the stock row this transaction holds locked, so a later price change never
/// alters it.
pub(crate) async fn record_decisions(
    conn: &mut PgConnection,
    decisions: &[OrderEvent],
) -> sqlx::Result<u64> {
    if decisions.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(decisions.len());
    let mut statuses = Vec::with_capacity(decisions.len());
    let mut reasons: Vec<Option<String>> = Vec::with_capacity(decisions.len());
    for event in decisions {
        ids.push(event.data.order_id);
        let (status, reason) = match event.data.reason {
            None => (OrderStatus::Confirmed, None),
            Some(reason) => (OrderStatus::Rejected, Some(reason)),
        };
        statuses.push(status.as_str().to_owned());
        reasons.push(reason.map(|reason| RejectionReason::as_str(reason).to_owned()));
    }
    Ok(sqlx::query!(
        "UPDATE orders SET status = d.status, rejection_reason = d.reason, updated_at = now(),
             amount = CASE WHEN d.reason IS NULL THEN orders.quantity::bigint
                 * (SELECT s.unit_amount FROM stock s WHERE s.product_name = orders.product_name) END,
             currency = CASE WHEN d.reason IS NULL THEN
                 (SELECT s.currency FROM stock s WHERE s.product_name = orders.product_name) END
         FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS d(id, status, reason)
         WHERE orders.id = d.id AND orders.status = 'PLACED'",
        &ids,
        &statuses,
        &reasons as &[Option<String>],
    )
    .execute(conn)
    .await?
    .rows_affected())
}
