//! What the mails say and to whom they go, read back from the shared maildev.

use shared::domain::RejectionReason;
use sqlx::PgPool;
use testkit::maildev::Maildev;

use crate::helpers::*;

/// The mails that reached `address`, once `count` of them have (or [`MAIL_WAIT`] passed),
/// failing unless exactly `count` did: every test reads the mails it checks this way.
async fn mails_to(address: &str, count: usize) -> Vec<serde_json::Value> {
    let mails = Maildev::shared()
        .wait_for_messages(address, count, MAIL_WAIT)
        .await;
    assert_eq!(mails.len(), count, "{mails:#?}");
    mails
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_placed_order_mails_the_customer_once_with_text_html_and_stable_headers(pool: PgPool) {
    let email = unique_address("placed");
    let event = placed("Ada Lovelace", Some(&email));
    let order_id = event.data.order_id;
    let notifier = shared_notifier(&pool, None).await;

    let summary = notifier.handle(batch(&[&event])).await.unwrap();

    assert_eq!((summary.records, summary.sent), (1, 1), "{summary:?}");
    let mails = mails_to(&email, 1).await;
    let mail = &mails[0];
    assert_eq!(
        mail["subject"],
        format!("We received your order {order_id}").as_str()
    );
    assert_eq!(mail["from"][0]["address"], "orders@shop.example");
    assert_eq!(
        header(mail, "message-id"),
        format!("<{}@shop.example>", event.id)
    );
    assert_eq!(header(mail, "x-order-id"), order_id.to_string());
    for part in ["text", "html"] {
        let body = text(mail, part);
        assert!(body.contains("Ada Lovelace"), "{part}: {body}");
        assert!(body.contains("We received your order"), "{part}: {body}");
        assert!(body.contains(&order_id.to_string()), "{part}: {body}");
        assert!(body.contains("Laptop"), "{part}: {body}");
    }
    assert!(text(mail, "text").contains("Quantity: 2"));
    assert!(text(mail, "html").contains("<td>2</td>"));

    let row = row(&pool, order_id, "ORDER_RECEIVED").await;
    assert_eq!(row.status, "SENT");
    assert_eq!(row.recipient.as_deref(), Some(email.as_str()));
    assert_eq!(row.attempts, 1);
    assert!(row.sent_at.is_some());
    assert_eq!(row.last_error, None);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_rejected_order_mails_why_it_could_not_be_fulfilled(pool: PgPool) {
    let email = unique_address("rejected");
    let out_of_stock = rejected(
        &placed("Alan Turing", Some(&email)),
        RejectionReason::OutOfStock,
    );
    let unknown = rejected(
        &placed("Alan Turing", Some(&email)),
        RejectionReason::UnknownProduct,
    );
    let notifier = shared_notifier(&pool, None).await;

    let summary = notifier
        .handle(batch(&[&out_of_stock, &unknown]))
        .await
        .unwrap();

    assert_eq!(summary.sent, 2, "{summary:?}");
    let mails = mails_to(&email, 2).await;
    for (event, why) in [
        (
            &out_of_stock,
            "we do not have enough of this product in stock",
        ),
        (&unknown, "we do not sell a product by that name"),
    ] {
        let order_id = event.data.order_id.to_string();
        let mail = mails
            .iter()
            .find(|mail| header(mail, "x-order-id") == order_id)
            .expect("one mail per order");
        assert_eq!(
            mail["subject"],
            format!("We could not fulfil your order {order_id}").as_str()
        );
        assert_eq!(
            header(mail, "message-id"),
            format!("<{}@shop.example>", event.id)
        );
        for part in ["text", "html"] {
            let body = text(mail, part);
            assert!(body.contains("we could not fulfil your order"), "{body}");
            assert!(body.contains(why), "{part}: {body}");
            assert!(!body.contains("OUT_OF_STOCK") && !body.contains("UNKNOWN_PRODUCT"));
        }
        let row = row(&pool, event.data.order_id, "ORDER_REJECTED").await;
        assert_eq!(row.status, "SENT");
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_order_without_email_is_mailed_to_the_fallback_address(pool: PgPool) {
    let fallback = unique_address("fallback");
    let event = placed("Grace Hopper", None);
    let notifier = shared_notifier(&pool, Some(&fallback)).await;

    let summary = notifier.handle(batch(&[&event])).await.unwrap();

    assert_eq!(summary.sent, 1, "{summary:?}");
    let mails = mails_to(&fallback, 1).await;
    assert_eq!(
        header(&mails[0], "x-order-id"),
        event.data.order_id.to_string()
    );
    let row = row(&pool, event.data.order_id, "ORDER_RECEIVED").await;
    assert_eq!(row.status, "SENT");
    assert_eq!(row.recipient.as_deref(), Some(fallback.as_str()));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_order_without_email_and_without_fallback_is_skipped(pool: PgPool) {
    let event = placed("Grace Hopper", None);
    let notifier = shared_notifier(&pool, None).await;

    let summary = notifier.handle(batch(&[&event])).await.unwrap();

    assert_eq!((summary.skipped, summary.sent), (1, 0), "{summary:?}");
    let row = row(&pool, event.data.order_id, "ORDER_RECEIVED").await;
    assert_eq!(row.status, "SKIPPED");
    assert_eq!(row.recipient, None);
    assert_eq!(row.attempts, 0);
    assert_eq!(row.sent_at, None);

    // SKIPPED is final: a redelivery leaves it alone.
    let again = notifier.handle(batch(&[&event])).await.unwrap();
    assert_eq!((again.already_done, again.skipped), (1, 0), "{again:?}");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_script_tag_in_the_customer_name_is_escaped_in_the_html(pool: PgPool) {
    let email = unique_address("escaping");
    let name = "<script>alert('pwned')</script> Mallory";
    let event = placed(name, Some(&email));
    let notifier = shared_notifier(&pool, None).await;

    notifier.handle(batch(&[&event])).await.unwrap();

    let mails = mails_to(&email, 1).await;
    let html = text(&mails[0], "html");
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("Hello &#60;script&#62;alert(&#39;pwned&#39;)&#60;/script&#62; Mallory,"),
        "{html}"
    );
    // The plain-text part shows the name as given: nothing there is interpreted.
    assert!(text(&mails[0], "text").contains(&format!("Hello {name},")));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_paid_order_is_mailed_its_confirmation_with_the_amount_and_an_invoiced_one_is_not(
    pool: PgPool,
) {
    use shared::domain::{Currency, Money};
    use shared::events::{EventType, OrderEvent, OrderEventData, PaymentData};
    let email = unique_address("confirmed");
    let order = placed("Grace Hopper", Some(&email));
    let paid = OrderEvent::confirmed(OrderEventData {
        payment: Some(PaymentData {
            money: Money::new(259_800, Currency::DEFAULT).unwrap(),
            decline_code: None,
        }),
        ..order.data.clone()
    });
    let invoiced = OrderEvent::confirmed(placed("Grace Hopper", Some(&email)).data);
    let cancelled = OrderEvent::of_kind(EventType::OrderCancelled, paid.data.clone());
    let notifier = shared_notifier(&pool, None).await;

    let summary = notifier
        .handle(batch(&[&paid, &invoiced, &cancelled]))
        .await
        .unwrap();
    // A redelivery sends nothing more.
    notifier
        .handle(batch(&[&paid, &invoiced, &cancelled]))
        .await
        .unwrap();

    assert_eq!(summary.sent, 2, "{summary:?}");
    let mails = mails_to(&email, 2).await;
    let subject = |mail: &serde_json::Value| mail["subject"].as_str().unwrap().to_owned();
    let confirmed = mails
        .iter()
        .find(|mail| subject(mail).ends_with("is confirmed"))
        .expect("the confirmation");
    let cancel = mails
        .iter()
        .find(|mail| subject(mail).ends_with("was cancelled"))
        .expect("the cancellation");
    let order_id = order.data.order_id.to_string();
    for mail in [confirmed, cancel] {
        assert!(subject(mail).contains(&order_id));
        assert_eq!(header(mail, "x-order-id"), order_id);
        for part in ["text", "html"] {
            assert!(text(mail, part).contains("2598.00 USD"), "{part}");
        }
    }
    assert_eq!(
        header(confirmed, "message-id"),
        format!("<{}@shop.example>", paid.id)
    );
    assert!(text(cancel, "text").contains("refunded"));
    assert_eq!(
        row(&pool, order.data.order_id, "ORDER_CONFIRMED")
            .await
            .status,
        "SENT"
    );
    assert_eq!(
        row(&pool, order.data.order_id, "ORDER_CANCELLED")
            .await
            .status,
        "SENT"
    );
}
