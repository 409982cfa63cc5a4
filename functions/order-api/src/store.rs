//! The order API's SQL: orders, stock levels and dead letters (docs/data.md). What a request
//! says is parsed at the edge ([`crate::paging`], [`crate::idempotency`]); what a change may
//! do is decided by the order's rules (`shared::lifecycle`); this module only reads and writes.
//!
//! Placing an order writes the order and its `order.placed` outbox row in one statement;
//! an `Idempotency-Key` makes a retried request return the first order instead of a second
//! one, race-free because the key is unique and claimed with `ON CONFLICT DO NOTHING`.
//! Every query is checked against the schema at compile time (`sqlx::query!`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use shared::db;
use shared::domain::{
    CustomerName, EmailAddress, Money, NewOrder, OrderStatus, PaymentMethodId, PaymentStatus,
    Price, ProductName, Quantity, RejectionReason, StockLevel,
};
use shared::events::{EventType, OrderEvent, OrderEventData, PaymentData};
use shared::lifecycle::{self, CancelRefusal, Cancellation, PaymentState};
use shared::outbox::{OutboxEntry, OutboxRow};
use shared::trace::TraceContext;

use crate::caller::CustomerSub;
use crate::idempotency::{IdempotencyKey, request_fingerprint};
use crate::limits::{Counter, Window};
use crate::paging::{Cursor, DeadLetterCursor, Page, PageLimit};

/// A failed repository call, classified so that callers can answer "retry later" or "bug".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Transient: the database is unreachable, overloaded, timed out, or refused credentials
    /// that may have been rotated. Retrying later can succeed.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Permanent: anything else (a bug or a broken invariant).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl StoreError {
    pub(crate) fn from_sqlx(err: sqlx::Error, context: &'static str) -> Self {
        if db::is_transient(&err) {
            Self::Unavailable(err)
        } else {
            Self::Unexpected(anyhow::Error::new(err).context(context))
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Why an order could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    /// The `Idempotency-Key` was first used with a different request; nothing was written.
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// An abuse limit is reached: this counter's hits in the window are over its limit.
    /// Nothing was written but the count.
    #[error("abuse limit {0} reached")]
    Limited(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who an order belongs to, as stored.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// A guest, who reads the order with the token whose SHA-256 this is.
    Guest { token_hash: &'a [u8; 32] },
    /// A signed-in customer's account.
    Customer(&'a CustomerSub),
}

impl Owner<'_> {
    fn sub(&self) -> Option<&str> {
        match self {
            Self::Customer(sub) => Some(sub.as_str()),
            Self::Guest { .. } => None,
        }
    }

    fn token_hash(&self) -> Option<&[u8]> {
        match self {
            Self::Guest { token_hash } => Some(token_hash.as_slice()),
            Self::Customer(_) => None,
        }
    }
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: Uuid,
    pub customer_name: CustomerName,
    pub customer_email: Option<EmailAddress>,
    pub product_name: ProductName,
    pub quantity: Quantity,
    pub status: OrderStatus,
    pub rejection_reason: Option<RejectionReason>,
    /// `quantity × unit price`, as it was when inventory reserved the stock.
    pub amount: Option<Money>,
    /// The status of its card payment, for an order placed with a payment method once the
    /// payment function claimed it.
    pub payment_status: Option<PaymentStatus>,
    /// Stripe's reason for a declined payment.
    pub decline_code: Option<String>,
    /// The customer account that placed it; `None` for a guest's order.
    pub customer_sub: Option<String>,
    /// SHA-256 of a guest order's token; `None` for a customer's order and for orders
    /// placed before tokens existed (readable by operators only).
    pub order_token_hash: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The outcome of [`place_order`].
#[derive(Debug)]
pub enum Placement {
    /// A new order, committed with its outbox rows, which the caller should now publish.
    Created {
        order: Order,
        outbox: Vec<OutboxRow>,
    },
    /// The same `Idempotency-Key` and request were seen before: the first order, unchanged.
    Replayed(Order),
}

impl Placement {
    pub fn order(&self) -> &Order {
        match self {
            Self::Created { order, .. } | Self::Replayed(order) => order,
        }
    }
}

/// What [`place_order`] needs besides the order.
pub struct Placing<'a> {
    pub id: Uuid,
    pub order: &'a NewOrder,
    pub owner: Owner<'a>,
    pub idempotency_key: Option<&'a IdempotencyKey>,
    /// The abuse-limit counters this order counts against, in locking order.
    pub counters: &'a [Counter],
    pub window: Window,
    pub trace: TraceContext,
}

/// Counts the order against its abuse limits, then inserts it as `PLACED` together with
/// its `order.placed` outbox row, the event in the request's trace: one statement, so that
/// all of it commits together without an explicit transaction (one round trip instead of
/// five) and a refused order writes nothing but the count.
///
/// Each counter row is locked by its upsert until the statement commits, so concurrent
/// orders against one counter are counted one after another, across every instance: with
/// a limit of 5, exactly 5 of 20 concurrent orders pass. Counters are taken in the order
/// given ([`crate::limits::Limits::counters_for`] fixes it), so two orders cannot deadlock.
/// Every attempt counts, refused or replayed.
///
/// With an idempotency key, a request already seen returns the first order and writes
/// nothing else; concurrent requests sharing a key create exactly one order.
#[tracing::instrument(skip_all, fields(order_id = %placing.id), err(Debug))]
pub async fn place_order(
    pool: &PgPool,
    placing: &Placing<'_>,
) -> Result<Placement, PlaceOrderError> {
    let fingerprint = placing
        .idempotency_key
        .map(|_| request_fingerprint(placing.order, placing.owner.sub()));
    let event = OutboxEntry::from_event(
        &OrderEvent::placed(OrderEventData::from_new_order(placing.id, placing.order))
            .in_trace(placing.trace),
    );
    let placed = insert_counted(pool, placing, &event, fingerprint.as_ref()).await?;
    if let Some(refused) = placed.refused {
        let counter = placing
            .counters
            .iter()
            .find(|counter| counter.name == refused)
            .map(|counter| counter.name)
            .ok_or_else(|| {
                StoreError::Unexpected(anyhow::anyhow!("an unknown counter refused: {refused}"))
            })?;
        return Err(PlaceOrderError::Limited(counter));
    }
    match placed.into_order(placing.owner) {
        Some((order, outbox_id)) => Ok(Placement::Created {
            order,
            outbox: vec![event.stored_as(outbox_id)],
        }),
        None => {
            let key = placing
                .idempotency_key
                .expect("only a keyed insert can conflict");
            replay(pool, key, fingerprint.as_ref(), placing.owner).await
        }
    }
}

/// What `queries/place_order.sql` answers: the counter that refused the order, or the order
/// as inserted with its outbox row's id, or neither (an idempotency key already taken).
struct PlacedRow {
    refused: Option<String>,
    id: Option<Uuid>,
    customer_name: Option<CustomerName>,
    customer_email: Option<EmailAddress>,
    product_name: Option<ProductName>,
    quantity: Option<Quantity>,
    status: Option<OrderStatus>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    outbox_id: Option<i64>,
}

impl PlacedRow {
    /// The inserted order and its outbox row's id; `None` when nothing was inserted. A new
    /// order has no rejection, amount or payment yet.
    fn into_order(self, owner: Owner<'_>) -> Option<(Order, i64)> {
        let order = Order {
            id: self.id?,
            customer_name: self.customer_name?,
            customer_email: self.customer_email,
            product_name: self.product_name?,
            quantity: self.quantity?,
            status: self.status?,
            rejection_reason: None,
            amount: None,
            payment_status: None,
            decline_code: None,
            customer_sub: owner.sub().map(str::to_owned),
            order_token_hash: owner.token_hash().map(<[u8]>::to_vec),
            created_at: self.created_at?,
            updated_at: self.updated_at?,
        };
        Some((order, self.outbox_id?))
    }
}

/// Runs the one statement that counts and places (`queries/place_order.sql`). With a key, a
/// concurrent insert of the same key makes it wait for the other statement; if that
/// committed, nothing is inserted (the outbox insert reads no row from `placed`) and the
/// order columns come back NULL.
async fn insert_counted(
    pool: &PgPool,
    placing: &Placing<'_>,
    event: &OutboxEntry,
    fingerprint: Option<&[u8; 32]>,
) -> Result<PlacedRow, StoreError> {
    let Placing {
        id,
        order,
        owner,
        idempotency_key,
        counters,
        window,
        ..
    } = *placing;
    let counter_names: Vec<&str> = counters.iter().map(|counter| counter.name).collect();
    let counter_subjects: Vec<&[u8]> = counters
        .iter()
        .map(|counter| counter.subject.as_slice())
        .collect();
    let counter_limits: Vec<i32> = counters.iter().map(|counter| counter.limit).collect();
    sqlx::query_file_as!(
        PlacedRow,
        "queries/place_order.sql",
        id,
        order.customer_name.as_str(),
        order.customer_email.as_ref().map(EmailAddress::as_str),
        order.product_name.as_str(),
        order.quantity.get(),
        idempotency_key.map(IdempotencyKey::as_str),
        fingerprint.map(<[u8; 32]>::as_slice),
        &event.topic,
        &event.key,
        &event.payload,
        order.payment_method.as_ref().map(PaymentMethodId::as_str),
        event.traceparent.as_deref(),
        &counter_names as &[&str],
        &counter_subjects as &[&[u8]],
        &counter_limits,
        window.start_secs,
        owner.sub(),
        owner.token_hash(),
    )
    .fetch_one(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "insert order and its order.placed event"))
}

/// Reads the order that won `key` (committed, since the conflicting insert waited for it).
/// A guest's repeat gets a new token for it, which replaces the first: the client that
/// lost the first answer can still read its order, and only the newest token reads it.
async fn replay(
    pool: &PgPool,
    key: &IdempotencyKey,
    fingerprint: Option<&[u8; 32]>,
    owner: Owner<'_>,
) -> Result<Placement, PlaceOrderError> {
    let winner = sqlx::query!(
        "SELECT id, request_fingerprint, order_token_hash FROM orders WHERE idempotency_key = $1",
        key.as_str(),
    )
    .fetch_optional(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "read the order of an idempotency key"))?
    .ok_or_else(|| {
        StoreError::Unexpected(anyhow::anyhow!(
            "idempotency key conflicted but no order holds it"
        ))
    })?;
    if winner.request_fingerprint.as_deref() != fingerprint.map(<[u8; 32]>::as_slice) {
        return Err(PlaceOrderError::IdempotencyKeyReused);
    }
    if let (Owner::Guest { token_hash }, Some(_)) = (owner, &winner.order_token_hash) {
        sqlx::query!(
            "UPDATE orders SET order_token_hash = $2 WHERE id = $1",
            winner.id,
            token_hash.as_slice(),
        )
        .execute(pool)
        .await
        .map_err(|err| StoreError::from_sqlx(err, "renew a replayed order's token"))?;
    }
    let order = get_order(pool, winner.id).await?.ok_or_else(|| {
        StoreError::Unexpected(anyhow::anyhow!("the order of an idempotency key went away"))
    })?;
    Ok(Placement::Replayed(order))
}

/// One order by id, if it exists.
pub async fn get_order(pool: &PgPool, id: Uuid) -> Result<Option<Order>, StoreError> {
    sqlx::query_as!(
        Order,
        r#"SELECT o.id, o.customer_name AS "customer_name: CustomerName",
                o.customer_email AS "customer_email: EmailAddress",
                o.product_name AS "product_name: ProductName", o.quantity AS "quantity: Quantity",
                o.status AS "status: OrderStatus",
                o.rejection_reason AS "rejection_reason: RejectionReason",
                CASE WHEN o.amount IS NULL THEN NULL ELSE (o.amount, o.currency) END
                    AS "amount?: Money",
                o.created_at, o.updated_at, o.customer_sub, o.order_token_hash,
                p.status AS "payment_status?: PaymentStatus", p.decline_code AS "decline_code?"
         FROM orders o LEFT JOIN payments p ON p.order_id = o.id
         WHERE o.id = $1"#,
        id,
    )
    .fetch_optional(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "read order"))
}

/// Why an order could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such order")]
    NotFound,
    /// The order's rules refuse it.
    #[error(transparent)]
    Refused(#[from] CancelRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cancels order `id` (only if `owner`'s, when given: another's is [`CancelError::NotFound`])
/// in one transaction: the order row and its payment row are locked (orders first, as every
/// function takes them), then what `shared::lifecycle::cancel` decides is written (held stock
/// given back, the payment voided or marked `REFUNDING` for the payment function) and
/// `order.cancelled` is enqueued. Returns the outbox rows to publish. Concurrent cancels of
/// one order queue on the row lock; all but the first find it `CANCELLED`. The event goes
/// on in the cancel request's trace.
#[tracing::instrument(skip_all, fields(order_id = %id), err(Debug))]
pub async fn cancel_order(
    pool: &PgPool,
    id: Uuid,
    owner: Option<&CustomerSub>,
    trace: TraceContext,
) -> Result<Vec<OutboxRow>, CancelError> {
    let failed = |context| move |err| CancelError::Store(StoreError::from_sqlx(err, context));
    let mut tx = pool.begin().await.map_err(failed("begin the cancel"))?;
    let order = sqlx::query!(
        r#"SELECT status AS "status: OrderStatus",
                  customer_name AS "customer_name: CustomerName",
                  customer_email AS "customer_email: EmailAddress",
                  product_name AS "product_name: ProductName", quantity AS "quantity: Quantity",
                  CASE WHEN amount IS NULL THEN NULL ELSE (amount, currency) END
                      AS "amount?: Money"
         FROM orders WHERE id = $1 AND ($2::text IS NULL OR customer_sub = $2) FOR UPDATE"#,
        id,
        owner.map(CustomerSub::as_str),
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(failed("lock the order"))?
    .ok_or(CancelError::NotFound)?;
    let payment = lock_payment(&mut tx, id).await?;
    let cancellation = lifecycle::cancel(order.status, payment)?;
    write_cancellation(
        &mut tx,
        id,
        &order.product_name,
        order.quantity,
        cancellation,
    )
    .await?;
    let refund = cancellation.refunds();
    let event = OrderEvent::of_kind(
        EventType::OrderCancelled,
        OrderEventData {
            order_id: id,
            customer_name: order.customer_name,
            customer_email: order.customer_email,
            product_name: order.product_name,
            quantity: order.quantity,
            reason: None,
            // The amount to be refunded, for the mail; absent when nothing was charged.
            payment: order.amount.filter(|_| refund).map(|money| PaymentData {
                money,
                decline_code: None,
            }),
        },
    )
    .in_trace(trace);
    let rows = shared::outbox::enqueue(&mut tx, std::slice::from_ref(&event))
        .await
        .map_err(failed("enqueue order.cancelled"))?;
    tx.commit().await.map_err(failed("commit the cancel"))?;
    Ok(rows)
}

impl Cursor {
    /// The position just after `order`.
    pub fn after(order: &Order) -> Self {
        Self {
            at: order.created_at,
            id: order.id,
        }
    }
}

/// Locks the payment of order `id`, if it has one, for a cancel.
async fn lock_payment(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
) -> Result<Option<PaymentState>, StoreError> {
    let payment = sqlx::query!(
        "SELECT status, attempts FROM payments WHERE order_id = $1 FOR UPDATE",
        id,
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "lock the payment"))?;
    payment
        .map(|payment| {
            PaymentStatus::parse(&payment.status).map(|status| PaymentState {
                status,
                attempts: payment.attempts,
            })
        })
        .transpose()
        .map_err(|err| StoreError::Unexpected(anyhow::anyhow!("payment of {id} is invalid: {err}")))
}

/// Writes what cancelling order `id` does (its stock given back, its payment's next status)
/// and marks it `CANCELLED`.
async fn write_cancellation(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    product_name: &ProductName,
    quantity: Quantity,
    cancellation: Cancellation,
) -> Result<(), StoreError> {
    let failed = |context| move |err| StoreError::from_sqlx(err, context);
    if cancellation.gives_stock_back {
        sqlx::query!(
            "UPDATE stock SET quantity = quantity + $2, updated_at = now()
             WHERE product_name = $1",
            product_name.as_str(),
            quantity.get(),
        )
        .execute(&mut *tx)
        .await
        .map_err(failed("give the stock back"))?;
    }
    if let Some(next) = cancellation.payment {
        sqlx::query!(
            "UPDATE payments SET status = $2, updated_at = now() WHERE order_id = $1",
            id,
            next.as_str(),
        )
        .execute(&mut *tx)
        .await
        .map_err(failed("update the payment"))?;
    }
    sqlx::query!(
        "UPDATE orders SET status = 'CANCELLED', updated_at = now() WHERE id = $1",
        id,
    )
    .execute(&mut *tx)
    .await
    .map_err(failed("cancel the order"))?;
    Ok(())
}

/// Which orders to list, and from where.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Only this customer's orders (the `/api/me` list); `None` lists everyone's.
    pub owner: Option<CustomerSub>,
    pub customer_email: Option<EmailAddress>,
    pub status: Option<OrderStatus>,
    pub limit: PageLimit,
    pub after: Option<Cursor>,
}

/// One page of orders.
pub type OrderPage = Page<Order, Uuid>;

/// Keyset pagination over `(created_at, id)` descending. One statement serves every
/// combination of filters: an absent filter is a `NULL` parameter, which PostgreSQL folds
/// away when it plans the query for the values at hand.
pub async fn list_orders(pool: &PgPool, query: &OrderQuery) -> Result<OrderPage, StoreError> {
    let orders = sqlx::query_as!(
        Order,
        r#"SELECT o.id, o.customer_name AS "customer_name: CustomerName",
                o.customer_email AS "customer_email: EmailAddress",
                o.product_name AS "product_name: ProductName", o.quantity AS "quantity: Quantity",
                o.status AS "status: OrderStatus",
                o.rejection_reason AS "rejection_reason: RejectionReason",
                CASE WHEN o.amount IS NULL THEN NULL ELSE (o.amount, o.currency) END
                    AS "amount?: Money",
                o.created_at, o.updated_at, o.customer_sub, o.order_token_hash,
                p.status AS "payment_status?: PaymentStatus", p.decline_code AS "decline_code?"
         FROM orders o LEFT JOIN payments p ON p.order_id = o.id
         WHERE ($1::text IS NULL OR o.customer_email = $1)
           AND ($2::text IS NULL OR o.status = $2)
           AND ($3::timestamptz IS NULL OR (o.created_at, o.id) < ($3, $4::uuid))
           AND ($6::text IS NULL OR o.customer_sub = $6)
         ORDER BY o.created_at DESC, o.id DESC
         LIMIT $5"#,
        query.customer_email.as_ref().map(EmailAddress::as_str),
        query.status.map(OrderStatus::as_str),
        query.after.map(|cursor| cursor.at),
        query.after.map(|cursor| cursor.id),
        query.limit.rows_to_fetch(),
        query.owner.as_ref().map(CustomerSub::as_str),
    )
    .fetch_all(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "list orders"))?;
    Ok(Page::from_rows(orders, query.limit, Cursor::after))
}

/// A product's stock level and price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockItem {
    pub product_name: ProductName,
    pub quantity: i32,
    /// `None` when the product has no price.
    pub price: Option<Price>,
    pub updated_at: DateTime<Utc>,
}

/// One product's stock level, if the product is known.
pub async fn get_stock(
    pool: &PgPool,
    product: &ProductName,
) -> Result<Option<StockItem>, StoreError> {
    sqlx::query_as!(
        StockItem,
        r#"SELECT product_name AS "product_name: ProductName", quantity,
                CASE WHEN unit_amount IS NULL THEN NULL ELSE (unit_amount, currency) END
                    AS "price?: Price",
                updated_at
         FROM stock WHERE product_name = $1"#,
        product.as_str(),
    )
    .fetch_optional(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "read stock"))
}

/// Every product's stock level, by product name.
pub async fn list_stock(pool: &PgPool) -> Result<Vec<StockItem>, StoreError> {
    sqlx::query_as!(
        StockItem,
        r#"SELECT product_name AS "product_name: ProductName", quantity,
                CASE WHEN unit_amount IS NULL THEN NULL ELSE (unit_amount, currency) END
                    AS "price?: Price",
                updated_at
         FROM stock ORDER BY product_name"#,
    )
    .fetch_all(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "list stock"))
}

/// Sets a product's stock level, creating the product if it is new, and its price when
/// `price` is given; without one, the product keeps the price it has (or stays without).
pub async fn set_stock(
    pool: &PgPool,
    product: &ProductName,
    level: StockLevel,
    price: Option<Price>,
) -> Result<StockItem, StoreError> {
    sqlx::query_as!(
        StockItem,
        r#"INSERT INTO stock (product_name, quantity, unit_amount, currency) VALUES ($1, $2, $3, $4)
         ON CONFLICT (product_name) DO UPDATE
             SET quantity = EXCLUDED.quantity,
                 unit_amount = COALESCE(EXCLUDED.unit_amount, stock.unit_amount),
                 currency = COALESCE(EXCLUDED.currency, stock.currency),
                 updated_at = now()
         RETURNING product_name AS "product_name: ProductName", quantity,
             CASE WHEN unit_amount IS NULL THEN NULL ELSE (unit_amount, currency) END
                 AS "price?: Price",
             updated_at"#,
        product.as_str(),
        level.get(),
        price.map(|price| price.unit_amount.get()),
        price.map(|price| price.currency.as_str()),
    )
    .fetch_one(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "set stock"))
}

/// A record a consumer refused, as `dead_letters` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Why the consumer refused it.
    pub error: String,
    pub received_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
}

impl DeadLetterCursor {
    /// The position just after `letter`.
    pub fn after(letter: &DeadLetter) -> Self {
        Self {
            at: letter.received_at,
            id: letter.id,
        }
    }
}

/// Which dead letters to list, and from where.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterQuery {
    pub consumer: Option<String>,
    pub limit: PageLimit,
    pub after: Option<DeadLetterCursor>,
}

/// One page of dead letters.
pub type DeadLetterPage = Page<DeadLetter, i64>;

/// Dead letters newest first (by `received_at`, then id), keyset-paginated as orders are.
pub async fn list_dead_letters(
    pool: &PgPool,
    query: &DeadLetterQuery,
) -> Result<DeadLetterPage, StoreError> {
    // PostgreSQL text cannot hold NUL, so no consumer is named with one (and the query would
    // fail instead of matching nothing).
    if query
        .consumer
        .as_deref()
        .is_some_and(|name| name.contains('\0'))
    {
        return Ok(Page {
            items: Vec::new(),
            next: None,
        });
    }
    let rows = sqlx::query_as!(
        DeadLetter,
        r#"SELECT id, consumer, topic, "partition", "offset", key, value, error, received_at,
                  replayed_at
           FROM dead_letters
           WHERE ($1::text IS NULL OR consumer = $1)
             AND ($2::timestamptz IS NULL OR (received_at, id) < ($2, $3::bigint))
           ORDER BY received_at DESC, id DESC
           LIMIT $4"#,
        query.consumer.as_deref(),
        query.after.map(|cursor| cursor.at),
        query.after.map(|cursor| cursor.id),
        query.limit.rows_to_fetch(),
    )
    .fetch_all(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "list dead letters"))?;
    Ok(Page::from_rows(rows, query.limit, DeadLetterCursor::after))
}

/// The outcome of [`claim_dead_letter`].
#[derive(Debug)]
pub enum ReplayClaim {
    /// This caller may replay it now; `replayed_at` is the claim, to release if it fails.
    Claimed(DeadLetter),
    /// Replayed, or being replayed, since this time (`None`: a failed replay released it
    /// just now).
    Taken(Option<DateTime<Utc>>),
    Missing,
}

/// Claims dead letter `id` for its one replay by setting `replayed_at`. Concurrent claims
/// of one row wait for each other and then see it set, so exactly one caller gets it.
pub async fn claim_dead_letter(pool: &PgPool, id: i64) -> Result<ReplayClaim, StoreError> {
    let claimed = sqlx::query_as!(
        DeadLetter,
        r#"UPDATE dead_letters SET replayed_at = now()
           WHERE id = $1 AND replayed_at IS NULL
           RETURNING id, consumer, topic, "partition", "offset", key, value, error, received_at,
                     replayed_at"#,
        id,
    )
    .fetch_optional(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "claim a dead letter"))?;
    if let Some(letter) = claimed {
        return Ok(ReplayClaim::Claimed(letter));
    }
    // Only to say why: it is missing, or someone replayed it.
    let taken = sqlx::query_scalar!("SELECT replayed_at FROM dead_letters WHERE id = $1", id)
        .fetch_optional(pool)
        .await
        .map_err(|err| StoreError::from_sqlx(err, "read a dead letter"))?;
    Ok(taken.map_or(ReplayClaim::Missing, ReplayClaim::Taken))
}

/// Gives a claim back after the broker did not acknowledge the replay, so that the dead
/// letter can be replayed again. Only the claim made at `claimed_at` is released.
pub async fn release_dead_letter(
    pool: &PgPool,
    id: i64,
    claimed_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE dead_letters SET replayed_at = NULL WHERE id = $1 AND replayed_at = $2",
        id,
        claimed_at,
    )
    .execute(pool)
    .await
    .map_err(|err| StoreError::from_sqlx(err, "release a dead letter claim"))?;
    Ok(())
}
