//! The inventory function's SQL: one set-based statement per step of a batch's transaction,
//! so the round trips of a batch do not grow with its size. Every statement takes its locks
//! in a fixed order (event ids, order ids, product names, each sorted), so two invocations on
//! overlapping products wait for each other but never deadlock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use shared::domain::{
    CustomerName, EmailAddress, Money, OrderStatus, Price, ProductName, Quantity, RejectionReason,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::CONSUMER;

use crate::decide::{Decision, OpenOrder, StockRow};

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

/// Locks the given orders that are still open (`PLACED` or `RESERVED`), in id order.
pub(crate) async fn lock_open_orders(
    conn: &mut PgConnection,
    order_ids: &BTreeSet<Uuid>,
) -> sqlx::Result<HashMap<Uuid, OpenOrder>> {
    if order_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = order_ids.iter().copied().collect();
    let orders = sqlx::query_as!(
        OpenOrder,
        r#"SELECT id, customer_name AS "customer_name: CustomerName",
                  customer_email AS "customer_email: EmailAddress",
                  product_name AS "product_name: ProductName", quantity AS "quantity: Quantity",
                  status AS "status: OrderStatus",
                  payment_method IS NOT NULL AS "paid_by_card!",
                  CASE WHEN amount IS NULL THEN NULL ELSE (amount, currency) END
                      AS "amount?: Money"
         FROM orders
         WHERE id = ANY($1) AND status IN ('PLACED', 'RESERVED')
         ORDER BY id
         FOR UPDATE"#,
        &ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(orders.into_iter().map(|order| (order.id, order)).collect())
}

/// Locks the stock rows of the given products, in product-name order; returns their levels
/// and prices.
pub(crate) async fn lock_stock(
    conn: &mut PgConnection,
    products: &BTreeSet<&str>,
) -> sqlx::Result<HashMap<String, StockRow>> {
    if products.is_empty() {
        return Ok(HashMap::new());
    }
    let names: Vec<String> = products.iter().map(|name| (*name).to_owned()).collect();
    let rows = sqlx::query!(
        r#"SELECT product_name, quantity,
                  CASE WHEN unit_amount IS NULL THEN NULL ELSE (unit_amount, currency) END
                      AS "price?: Price"
         FROM stock
         WHERE product_name = ANY($1)
         ORDER BY product_name
         FOR UPDATE"#,
        &names,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let stock = StockRow {
                level: row.quantity,
                price: row.price,
            };
            (row.product_name, stock)
        })
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

/// Sets the decided orders' status, reason, amount and currency in one statement, only
/// where the order is still in the status it was decided from; returns how many orders
/// changed. The amount of a reserved or confirmed order comes from the stock row this
/// transaction holds locked, so a later price change never alters it.
pub(crate) async fn record_decisions(
    conn: &mut PgConnection,
    decisions: &[Decision],
) -> sqlx::Result<u64> {
    if decisions.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = decisions.iter().map(|d| d.order_id).collect();
    let from: Vec<&str> = decisions.iter().map(|d| d.from.as_str()).collect();
    let to: Vec<&str> = decisions.iter().map(|d| d.to.as_str()).collect();
    let reasons: Vec<Option<&str>> = decisions
        .iter()
        .map(|d| d.reason.map(RejectionReason::as_str))
        .collect();
    let amounts: Vec<Option<i64>> = decisions
        .iter()
        .map(|d| d.amount.map(Money::amount))
        .collect();
    let currencies: Vec<Option<&str>> = decisions
        .iter()
        .map(|d| d.amount.map(|money| money.currency().as_str()))
        .collect();
    Ok(sqlx::query!(
        "UPDATE orders SET status = d.status, rejection_reason = d.reason, updated_at = now(),
             amount = d.amount, currency = d.currency
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
             AS d(id, from_status, status, reason, amount, currency)
         WHERE orders.id = d.id AND orders.status = d.from_status",
        &ids,
        &from as &[&str],
        &to as &[&str],
        &reasons as &[Option<&str>],
        &amounts as &[Option<i64>],
        &currencies as &[Option<&str>],
    )
    .execute(conn)
    .await?
    .rows_affected())
}
