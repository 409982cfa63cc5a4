//! Seeding orders, running the functions on the events they hand each other, reading back.

use aws_lambda_events::event::kafka::KafkaEvent;
use inventory::Inventory;
use payment::{Payments, Stripe};
use secrecy::SecretString;
use shared::consumer::Consumer;
use shared::events::{EventType, OrderEvent};
use sqlx::PgPool;
use testkit::stripe::{API_KEY, LocalStripe};
use uuid::Uuid;

/// Succeeds on confirm.
pub const GOOD_CARD: &str = "pm_card_visa";
/// Declined on confirm (`card_declined`).
pub const DECLINED_CARD: &str = "pm_card_chargeCustomerFail";

/// The functions of a test, over one database and a private localstripe.
pub struct Flow {
    pub pool: PgPool,
    pub stripe: LocalStripe,
    pub inventory: Consumer<Inventory>,
    pub payment: Consumer<Payments>,
}

impl Flow {
    pub async fn new(pool: &PgPool) -> Self {
        testkit::init_tracing();
        let stripe = LocalStripe::spawn().await;
        let publisher = testkit::kafka::shared_publisher().await;
        let client = Stripe::new(stripe.base_url(), SecretString::from(API_KEY));
        Self {
            pool: pool.clone(),
            inventory: inventory::consumer(pool.clone(), publisher.clone()),
            payment: payment::consumer(pool.clone(), publisher, client, 4),
            stripe,
        }
    }

    /// Places `orders` (product, quantity, payment method) and lets inventory decide them;
    /// returns the `order.placed` events.
    pub async fn place_and_reserve(&self, orders: &[(&str, i32, Option<&str>)]) -> Vec<OrderEvent> {
        let mut placed = Vec::new();
        for (product, quantity, payment_method) in orders {
            placed.push(
                testkit::orders::insert_placed(&self.pool, product, *quantity, *payment_method)
                    .await,
            );
        }
        self.inventory
            .handle(batch(&placed, 0))
            .await
            .expect("inventory decides the orders");
        placed
    }

    /// The events of `kind` the functions emitted for this test's orders, oldest first: those
    /// sent, read back from the broker (the outbox forgets an event once the broker has it;
    /// every handler returns once its events are acknowledged, so reading the topic to its end
    /// finds them all), and those still waiting in the outbox (a cancel written through the
    /// order API's store is not published by it).
    pub async fn events(&self, kind: EventType) -> Vec<OrderEvent> {
        testkit::orders::emitted_events(&self.pool, kind.topic())
            .await
            .into_iter()
            .filter(|event| event.event_type == kind)
            .collect()
    }

    /// Runs the payment function on every `order.reserved` event sent.
    pub async fn pay(&self) -> Result<payment::BatchSummary, String> {
        let reserved = self.events(EventType::OrderReserved).await;
        self.payment
            .handle(batch(&reserved, 0))
            .await
            .map(|report| report.summary)
            .map_err(|failure| failure.error_type())
    }

    /// Runs inventory on every payment outcome sent.
    pub async fn settle(&self) -> inventory::BatchSummary {
        let mut outcomes = self.events(EventType::OrderPaid).await;
        outcomes.extend(self.events(EventType::OrderPaymentFailed).await);
        self.inventory
            .handle(batch(&outcomes, 0))
            .await
            .expect("inventory settles the payments")
            .summary
    }

    /// The PaymentIntents localstripe holds for `order_id`.
    pub async fn intents_of(&self, order_id: Uuid) -> Vec<serde_json::Value> {
        let order = order_id.to_string();
        self.stripe
            .payment_intents()
            .await
            .into_iter()
            .filter(|intent| intent["metadata"]["order_id"] == order.as_str())
            .collect()
    }
}

/// Sets a product's stock and price (`unit_amount` in cents of `usd`, or no price).
pub async fn set_stock(pool: &PgPool, product: &str, quantity: i32, unit_amount: Option<i64>) {
    sqlx::query!(
        "INSERT INTO stock (product_name, quantity, unit_amount, currency)
         VALUES ($1, $2, $3, CASE WHEN $3::bigint IS NULL THEN NULL ELSE 'usd' END)
         ON CONFLICT (product_name) DO UPDATE
             SET quantity = EXCLUDED.quantity, unit_amount = EXCLUDED.unit_amount,
                 currency = EXCLUDED.currency",
        product,
        quantity,
        unit_amount,
    )
    .execute(pool)
    .await
    .expect("stock can be set");
}

/// A batch carrying `events` on one partition per topic, from offset `first_offset`.
pub fn batch(events: &[OrderEvent], first_offset: i64) -> KafkaEvent {
    testkit::msk::batch_of(events, 0, first_offset)
}

/// `(status, rejection_reason, amount)` of an order.
pub async fn order_state(pool: &PgPool, id: Uuid) -> (String, Option<String>, Option<i64>) {
    let order = sqlx::query!(
        "SELECT status, rejection_reason, amount FROM orders WHERE id = $1",
        id
    )
    .fetch_one(pool)
    .await
    .expect("the order exists");
    (order.status, order.rejection_reason, order.amount)
}

/// `(status, decline_code)` of an order's payment.
pub async fn payment_state(pool: &PgPool, id: Uuid) -> Option<(String, Option<String>)> {
    sqlx::query!(
        "SELECT status, decline_code FROM payments WHERE order_id = $1",
        id
    )
    .fetch_optional(pool)
    .await
    .expect("payments can be read")
    .map(|payment| (payment.status, payment.decline_code))
}

pub async fn stock(pool: &PgPool, product: &str) -> i32 {
    testkit::orders::stock_level(pool, product)
        .await
        .expect("the product exists")
}
