//! Redelivered events and attempts whose outcome was lost charge and release once.

use payment::stripe::{Charge, Created};
use secrecy::SecretString;
use shared::domain::{Currency, Money};
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
/// An earlier attempt got as far as it did at Stripe (`confirmed`: the confirmation went
/// through, its answer lost; or not), recorded the intent's id, and stopped: the retry reads
/// that intent back and confirms it only if nobody did, so the order is charged once.
async fn retry_after_an_earlier_attempt(pool: PgPool, confirmed: bool) {
    set_stock(&pool, "Laptop", 10, Some(2500)).await;
    let flow = Flow::new(&pool).await;
    let placed = flow
        .place_and_reserve(&[("Laptop", 2, Some(GOOD_CARD))])
        .await;
    let order = placed[0].data.order_id;
    let stripe = payment::Stripe::new(
        flow.stripe.base_url(),
        SecretString::from(testkit::stripe::API_KEY),
    );
    let Created::Intent(intent) = stripe
        .create_intent(
            order,
            Money::new(5000, Currency::DEFAULT).unwrap(),
            GOOD_CARD,
        )
        .await
        .unwrap()
    else {
        panic!("a good card's intent is created");
    };
    sqlx::query!(
        "INSERT INTO payments (order_id, amount, currency, payment_method, status, attempts,
                               payment_intent_id)
         VALUES ($1, 5000, 'usd', $2, 'PENDING', 1, $3)",
        order,
        GOOD_CARD,
        &intent,
    )
    .execute(&pool)
    .await
    .unwrap();
    if confirmed {
        let lost = stripe.confirm(order, &intent).await.unwrap();
        assert!(matches!(lost, Charge::Succeeded { .. }));
    }

    let retry = flow.pay().await.unwrap();
    assert_eq!(retry.charged, 1);
    flow.settle().await;

    let intents = flow.intents_of(order).await;
    assert_eq!(intents.len(), 1, "no second intent: {intents:?}");
    assert_eq!(intents[0]["id"], intent.as_str());
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(order_state(&pool, order).await.0, "CONFIRMED");
    assert_eq!(
        payment_state(&pool, order).await,
        Some(("SUCCEEDED".to_owned(), None))
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_attempt_whose_confirmation_was_lost_is_settled_by_the_charge_stripe_already_made(
    pool: PgPool,
) {
    retry_after_an_earlier_attempt(pool, true).await;
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_intent_an_earlier_attempt_created_but_never_confirmed_is_confirmed_once(pool: PgPool) {
    retry_after_an_earlier_attempt(pool, false).await;
}

/// The database refused the new PaymentIntent's id (here a trigger raising
/// `too_many_connections`, as an overloaded server would): the intent is left unconfirmed,
/// the batch fails as a transient database failure, not a Stripe one, and the retry charges
/// the order once, with a second intent.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_intent_whose_id_could_not_be_recorded_is_never_confirmed_and_the_retry_charges_once(
    pool: PgPool,
) {
    set_stock(&pool, "Laptop", 10, Some(2500)).await;
    let flow = Flow::new(&pool).await;
    let placed = flow
        .place_and_reserve(&[("Laptop", 1, Some(GOOD_CARD))])
        .await;
    let order = placed[0].data.order_id;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_intent_ids() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'refused for the test' USING ERRCODE = '53300'; END $$;
         CREATE TRIGGER refuse_intent_ids BEFORE UPDATE OF payment_intent_id ON payments
         FOR EACH ROW WHEN (NEW.payment_intent_id IS NOT NULL) EXECUTE FUNCTION refuse_intent_ids();",
    )
    .execute(&pool)
    .await
    .unwrap();

    assert_eq!(
        flow.pay().await.unwrap_err(),
        "Transient.DatabaseUnavailable"
    );
    let unrecorded = flow.intents_of(order).await;
    assert_eq!(unrecorded.len(), 1, "{unrecorded:?}");
    assert_eq!(unrecorded[0]["status"], "requires_confirmation");
    assert_eq!(order_state(&pool, order).await.0, "RESERVED");

    sqlx::query("DROP TRIGGER refuse_intent_ids ON payments")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(flow.pay().await.unwrap().charged, 1);
    flow.settle().await;
    let intents = flow.intents_of(order).await;
    let succeeded: Vec<_> = intents
        .iter()
        .filter(|intent| intent["status"] == "succeeded")
        .collect();
    assert_eq!(succeeded.len(), 1, "{intents:?}");
    assert_ne!(succeeded[0]["id"], unrecorded[0]["id"]);
    assert_eq!(order_state(&pool, order).await.0, "CONFIRMED");
}
