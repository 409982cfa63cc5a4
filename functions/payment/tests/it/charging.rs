//! What a charge comes to: confirmed, declined, asked for 3-D Secure, refused for want of a
//! price, or retried after Stripe was away.

use secrecy::SecretString;
use shared::events::EventType;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_order_without_a_payment_method_is_confirmed_as_before_and_never_charged(pool: PgPool) {
    set_stock(&pool, "Laptop", 5, Some(129_900)).await;
    let flow = Flow::new(&pool).await;

    let placed = flow.place_and_reserve(&[("Laptop", 1, None)]).await;
    let order = placed[0].data.order_id;

    assert_eq!(
        order_state(&pool, order).await,
        ("CONFIRMED".to_owned(), None, Some(129_900))
    );
    assert!(flow.events(EventType::OrderReserved).await.is_empty());
    assert_eq!(flow.pay().await.unwrap().charged, 0);
    assert_eq!(payment_state(&pool, order).await, None);
    assert!(flow.stripe.payment_intents().await.is_empty());
    let confirmed = flow.events(EventType::OrderConfirmed).await;
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0].data.payment, None, "paid on invoice");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_successful_charge_confirms_the_order_with_one_payment_intent_of_its_amount(
    pool: PgPool,
) {
    set_stock(&pool, "Laptop", 5, Some(1999)).await;
    let flow = Flow::new(&pool).await;

    let placed = flow
        .place_and_reserve(&[("Laptop", 3, Some(GOOD_CARD))])
        .await;
    let order = placed[0].data.order_id;
    assert_eq!(
        order_state(&pool, order).await,
        ("RESERVED".to_owned(), None, Some(5997))
    );
    assert_eq!(
        stock(&pool, "Laptop").await,
        2,
        "held while the payment runs"
    );

    let paid = flow.pay().await.unwrap();
    assert_eq!((paid.charged, paid.declined), (1, 0));
    let settled = flow.settle().await;
    assert_eq!(settled.confirmed, 1);

    assert_eq!(
        order_state(&pool, order).await,
        ("CONFIRMED".to_owned(), None, Some(5997))
    );
    assert_eq!(
        payment_state(&pool, order).await,
        Some(("SUCCEEDED".to_owned(), None))
    );
    assert_eq!(stock(&pool, "Laptop").await, 2);
    let intents = flow.intents_of(order).await;
    assert_eq!(intents.len(), 1, "{intents:?}");
    assert_eq!(intents[0]["amount"], 5997);
    assert_eq!(intents[0]["currency"], "usd");
    assert_eq!(intents[0]["status"], "succeeded");
    let confirmed = flow.events(EventType::OrderConfirmed).await;
    let payment = confirmed[0]
        .data
        .payment
        .clone()
        .expect("a paid order says so");
    assert_eq!(payment.money.to_string(), "59.97 USD");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_declined_card_rejects_the_order_and_gives_its_stock_back(pool: PgPool) {
    set_stock(&pool, "Laptop", 5, Some(1999)).await;
    let flow = Flow::new(&pool).await;

    let placed = flow
        .place_and_reserve(&[("Laptop", 2, Some(DECLINED_CARD))])
        .await;
    let order = placed[0].data.order_id;
    assert_eq!(stock(&pool, "Laptop").await, 3);

    let paid = flow.pay().await.unwrap();
    assert_eq!((paid.charged, paid.declined), (0, 1));
    let failed = flow.events(EventType::OrderPaymentFailed).await;
    assert_eq!(
        failed[0]
            .data
            .payment
            .as_ref()
            .unwrap()
            .decline_code
            .as_deref(),
        Some("card_declined")
    );
    let settled = flow.settle().await;
    assert_eq!(settled.rejected, 1);

    assert_eq!(stock(&pool, "Laptop").await, 5, "back to its level before");
    assert_eq!(
        order_state(&pool, order).await,
        (
            "REJECTED".to_owned(),
            Some("PAYMENT_DECLINED".to_owned()),
            Some(3998)
        )
    );
    assert_eq!(
        payment_state(&pool, order).await,
        Some(("DECLINED".to_owned(), Some("card_declined".to_owned())))
    );
    let rejected = flow.events(EventType::OrderRejected).await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].data.reason,
        Some(shared::domain::RejectionReason::PaymentDeclined)
    );
}

/// A card that asks for 3-D Secure leaves the PaymentIntent in `requires_action`; nobody is
/// there to authenticate, so it counts as a decline with its own code.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_card_that_asks_for_customer_action_is_declined_as_authentication_required(pool: PgPool) {
    set_stock(&pool, "Laptop", 5, Some(1999)).await;
    let flow = Flow::new(&pool).await;
    let method: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/payment_methods", flow.stripe.base_url()))
        .bearer_auth(testkit::stripe::API_KEY)
        .form(&[
            ("type", "card"),
            ("card[number]", "4000002760003184"),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2030"),
            ("card[cvc]", "123"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let method = method["id"]
        .as_str()
        .expect("a PaymentMethod id")
        .to_owned();

    let placed = flow
        .place_and_reserve(&[("Laptop", 1, Some(method.as_str()))])
        .await;
    let order = placed[0].data.order_id;
    assert_eq!(flow.pay().await.unwrap().declined, 1);
    flow.settle().await;

    assert_eq!(
        payment_state(&pool, order).await,
        Some((
            "DECLINED".to_owned(),
            Some(payment::stripe::AUTHENTICATION_REQUIRED.to_owned())
        ))
    );
    assert_eq!(order_state(&pool, order).await.0, "REJECTED");
    assert_eq!(stock(&pool, "Laptop").await, 5);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_order_paid_by_card_for_a_product_without_a_price_is_rejected_no_price(pool: PgPool) {
    set_stock(&pool, "Mystery Box", 5, None).await;
    let flow = Flow::new(&pool).await;

    let placed = flow
        .place_and_reserve(&[("Mystery Box", 1, Some(GOOD_CARD))])
        .await;

    assert_eq!(
        order_state(&pool, placed[0].data.order_id).await,
        ("REJECTED".to_owned(), Some("NO_PRICE".to_owned()), None)
    );
    assert_eq!(stock(&pool, "Mystery Box").await, 5);
    assert!(flow.events(EventType::OrderReserved).await.is_empty());
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn stripe_away_fails_the_batch_as_transient_and_the_retry_charges_each_order_once(
    pool: PgPool,
) {
    set_stock(&pool, "Laptop", 10, Some(1000)).await;
    let mut flow = Flow::new(&pool).await;
    let placed = flow
        .place_and_reserve(&[
            ("Laptop", 1, Some(GOOD_CARD)),
            ("Laptop", 2, Some(GOOD_CARD)),
            ("Laptop", 3, Some(DECLINED_CARD)),
        ])
        .await;

    flow.stripe.stop().await;
    assert_eq!(flow.pay().await.unwrap_err(), "Transient.StripeUnavailable");
    for order in &placed {
        assert_eq!(
            payment_state(&pool, order.data.order_id).await,
            Some(("PENDING".to_owned(), None))
        );
    }
    flow.stripe.start().await;
    let retry = flow.pay().await.unwrap();
    assert_eq!((retry.charged, retry.declined), (2, 1));
    flow.settle().await;

    for (order, amount) in placed.iter().zip([1000, 2000, 3000]) {
        let intents = flow.intents_of(order.data.order_id).await;
        assert_eq!(intents.len(), 1, "one charge per order: {intents:?}");
        assert_eq!(intents[0]["amount"], amount);
    }
    assert_eq!(stock(&pool, "Laptop").await, 7);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_refused_api_key_fails_the_batch_as_permanent_and_charges_nothing(pool: PgPool) {
    set_stock(&pool, "Laptop", 10, Some(1000)).await;
    let flow = Flow::new(&pool).await;
    flow.place_and_reserve(&[("Laptop", 1, Some(GOOD_CARD))])
        .await;
    let wrong_key = payment::consumer(
        pool.clone(),
        testkit::kafka::shared_publisher().await,
        payment::Stripe::new(flow.stripe.base_url(), SecretString::from("rk_live_wrong")),
        4,
    );

    let reserved = flow.events(EventType::OrderReserved).await;
    let failure = wrong_key.handle(batch(&reserved, 0)).await.unwrap_err();

    assert_eq!(failure.error_type(), "Permanent.StripeUnauthorized");
    assert!(flow.stripe.payment_intents().await.is_empty());
    assert!(flow.events(EventType::OrderPaid).await.is_empty());
}

/// The sample under `events/` that `cargo lambda invoke payment` uses, with its orders.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_sample_event_charges_its_first_order_and_declines_its_second(pool: PgPool) {
    let flow = Flow::new(&pool).await;
    sqlx::raw_sql(include_str!("../../../../events/payment-orders.sql"))
        .execute(&pool)
        .await
        .unwrap();
    let sample: aws_lambda_events::event::kafka::KafkaEvent = serde_json::from_str(include_str!(
        "../../../../events/payment-order-reserved.json"
    ))
    .unwrap();

    let report = flow.payment.handle(sample).await.unwrap();

    assert_eq!((report.charged, report.declined), (1, 1));
    let ada = "019ab5c0-0031-7000-8000-000000000031".parse().unwrap();
    assert_eq!(flow.intents_of(ada).await[0]["amount"], 129900);
}
