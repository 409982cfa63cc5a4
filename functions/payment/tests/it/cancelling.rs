//! Cancellation against the payment step: a charged order is refunded once, however often
//! `order.cancelled` arrives, and a cancel racing the charge ends in one consistent state.

use std::time::Duration;

use order_api::store::{CancelError, cancel_order};
use shared::events::EventType;
use shared::lifecycle::CancelRefusal;
use shared::trace::TraceContext;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::*;

/// Cancels through the API's store function, retrying while the charge is at Stripe, as a
/// client retries the 409 it gets then.
async fn cancel(pool: &PgPool, id: Uuid) -> Result<(), CancelError> {
    loop {
        match cancel_order(pool, id, None, TraceContext::new_root()).await {
            Err(CancelError::Refused(CancelRefusal::PaymentInProgress)) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other.map(|_rows| ()),
        }
    }
}

impl Flow {
    /// Runs the payment function on every `order.cancelled` event emitted.
    async fn refund(&self) -> payment::BatchSummary {
        let cancelled = self.events(EventType::OrderCancelled).await;
        self.payment
            .handle(batch(&cancelled, 100))
            .await
            .expect("the refunds go through")
            .summary
    }
}

async fn refunds_of(flow: &Flow, order: Uuid) -> usize {
    let intents: Vec<String> = flow
        .intents_of(order)
        .await
        .iter()
        .map(|intent| intent["id"].as_str().unwrap().to_owned())
        .collect();
    flow.stripe
        .refunds()
        .await
        .iter()
        .filter(|refund| {
            intents
                .iter()
                .any(|id| refund["payment_intent"] == id.as_str())
        })
        .count()
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_cancelled_paid_order_is_refunded_once_however_often_the_event_arrives(pool: PgPool) {
    set_stock(&pool, "Laptop", 10, Some(1000)).await;
    let flow = Flow::new(&pool).await;
    let placed = flow
        .place_and_reserve(&[("Laptop", 3, Some(GOOD_CARD))])
        .await;
    let order = placed[0].data.order_id;
    flow.pay().await.unwrap();
    flow.settle().await;
    assert_eq!(order_state(&pool, order).await.0, "CONFIRMED");

    cancel(&pool, order).await.unwrap();
    let first = flow.refund().await;
    let again = flow.refund().await;

    assert_eq!((first.refunded, again.refunded), (1, 0));
    assert_eq!(refunds_of(&flow, order).await, 1);
    assert_eq!(
        payment_state(&pool, order).await,
        Some(("REFUNDED".to_owned(), None))
    );
    assert_eq!(order_state(&pool, order).await.0, "CANCELLED");
    assert_eq!(stock(&pool, "Laptop").await, 10);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_refund_whose_outcome_was_lost_is_not_made_twice(pool: PgPool) {
    set_stock(&pool, "Laptop", 10, Some(1000)).await;
    let flow = Flow::new(&pool).await;
    let placed = flow
        .place_and_reserve(&[("Laptop", 1, Some(GOOD_CARD))])
        .await;
    let order = placed[0].data.order_id;
    flow.pay().await.unwrap();
    cancel(&pool, order).await.unwrap();
    // The first attempt reached Stripe, then the function stopped before recording it.
    let intent: String = sqlx::query_scalar!(
        r#"UPDATE payments SET attempts = 1 WHERE order_id = $1
           RETURNING payment_intent_id AS "payment_intent_id!""#,
        order
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let stripe = payment::Stripe::new(
        flow.stripe.base_url(),
        secrecy::SecretString::from(testkit::stripe::API_KEY),
    );
    stripe.refund(order, &intent).await.unwrap();

    assert_eq!(flow.refund().await.refunded, 1);
    assert_eq!(
        refunds_of(&flow, order).await,
        1,
        "localstripe would take a second"
    );
}

/// Orders are charged while each is cancelled at the same moment. Whatever the order of
/// events, each ends cancelled with its stock back, and either was never charged or was
/// charged once and refunded once.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn cancels_racing_the_charge_end_in_one_consistent_state(pool: PgPool) {
    set_stock(&pool, "Laptop", 100, Some(1000)).await;
    let flow = Flow::new(&pool).await;
    let orders: Vec<_> = (0..8).map(|_| ("Laptop", 2, Some(GOOD_CARD))).collect();
    let placed = flow.place_and_reserve(&orders).await;
    assert_eq!(stock(&pool, "Laptop").await, 84);

    let cancels = placed.iter().map(|order| {
        let pool = pool.clone();
        let id = order.data.order_id;
        tokio::spawn(async move { cancel(&pool, id).await })
    });
    let cancels: Vec<_> = cancels.collect();
    let paid = flow.pay().await.unwrap();
    for cancel in cancels {
        cancel.await.unwrap().expect("every cancel ends accepted");
    }
    flow.settle().await;
    flow.refund().await;

    assert_eq!(stock(&pool, "Laptop").await, 100, "every unit back, once");
    let mut charged = 0;
    for order in &placed {
        let id = order.data.order_id;
        assert_eq!(order_state(&pool, id).await.0, "CANCELLED");
        let intents = flow.intents_of(id).await;
        let payment = payment_state(&pool, id).await.map(|(status, _)| status);
        match intents.len() {
            0 => assert!(
                matches!(payment.as_deref(), None | Some("VOIDED") | Some("PENDING")),
                "no charge, so nothing to refund: {payment:?}"
            ),
            1 => {
                charged += 1;
                assert_eq!(payment.as_deref(), Some("REFUNDED"));
                assert_eq!(refunds_of(&flow, id).await, 1);
            }
            n => panic!("order {id} charged {n} times"),
        }
    }
    assert_eq!(charged, paid.charged);
}
