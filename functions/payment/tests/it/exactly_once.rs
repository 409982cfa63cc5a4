//! Redelivered events and attempts whose outcome was lost charge and release once.

use secrecy::SecretString;
use shared::events::EventType;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_same_events_delivered_twice_charge_once_and_give_stock_back_once(pool: PgPool) {
    set_stock(&pool, "Laptop", 10, Some(1000)).await;
    let flow = Flow::new(&pool).await;
    let placed = flow
        .place_and_reserve(&[
            ("Laptop", 1, Some(GOOD_CARD)),
            ("Laptop", 4, Some(DECLINED_CARD)),
        ])
        .await;

    let first = flow.pay().await.unwrap();
    let again = flow.pay().await.unwrap();
    assert_eq!((first.charged, first.declined), (1, 1));
    assert_eq!(
        (
            again.charged,
            again.declined,
            again.skipped,
            again.published
        ),
        (0, 0, 2, 0)
    );
    let settled = flow.settle().await;
    let resettled = flow.settle().await;
    assert_eq!((settled.confirmed, settled.rejected), (1, 1));
    assert_eq!(
        (
            resettled.confirmed,
            resettled.rejected,
            resettled.duplicates
        ),
        (0, 0, 2)
    );

    for order in &placed {
        assert_eq!(flow.intents_of(order.data.order_id).await.len(), 1);
    }
    assert_eq!(
        stock(&pool, "Laptop").await,
        9,
        "one unit sold, four given back once"
    );
    assert_eq!(flow.events(EventType::OrderPaid).await.len(), 1);
    assert_eq!(flow.events(EventType::OrderPaymentFailed).await.len(), 1);
    assert_eq!(flow.events(EventType::OrderRejected).await.len(), 1);
}

/// The function stopped after Stripe charged but before the outcome was recorded: the
/// payment row says an attempt was made. localstripe ignores `Idempotency-Key`, so a second
/// create would charge again; the retry finds the first charge instead.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_attempt_whose_outcome_was_lost_is_settled_by_the_charge_stripe_already_made(
    pool: PgPool,
) {
    set_stock(&pool, "Laptop", 10, Some(2500)).await;
    let flow = Flow::new(&pool).await;
    let placed = flow
        .place_and_reserve(&[("Laptop", 2, Some(GOOD_CARD))])
        .await;
    let order = placed[0].data.order_id;
    sqlx::query(
        "INSERT INTO payments (order_id, amount, currency, payment_method, status, attempts)
         VALUES ($1, 5000, 'usd', $2, 'PENDING', 1)",
    )
    .bind(order)
    .bind(GOOD_CARD)
    .execute(&pool)
    .await
    .unwrap();
    let stripe = payment::Stripe::new(
        flow.stripe.base_url(),
        SecretString::from(testkit::stripe::API_KEY),
    );
    let lost = stripe.charge(order, 5000, "usd", GOOD_CARD).await.unwrap();
    assert!(matches!(lost, payment::stripe::Charge::Succeeded { .. }));

    let retry = flow.pay().await.unwrap();
    assert_eq!(retry.charged, 1);
    flow.settle().await;

    assert_eq!(flow.intents_of(order).await.len(), 1, "not charged twice");
    assert_eq!(order_state(&pool, order).await.0, "CONFIRMED");
    assert_eq!(
        payment_state(&pool, order).await,
        Some(("SUCCEEDED".to_owned(), None))
    );
}
