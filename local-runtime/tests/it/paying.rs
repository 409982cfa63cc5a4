//! Paying by card and cancelling, through the whole system: HTTP in, inventory, the payment
//! function against a private localstripe, inventory again, mails out.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::harness::{System, connect};

const WITHIN: Duration = Duration::from_secs(90);

fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// Waits until the order has left `PLACED` and `RESERVED` (and its payment, if any, has
/// settled); returns its view.
async fn settled(system: &System, id: &str) -> Value {
    testkit::poll_until(WITHIN, || async {
        let order = system.order(id).await;
        let open = matches!(order["status"].as_str(), Some("PLACED" | "RESERVED"))
            || order["payment"]["status"] == "REFUNDING";
        if open { Err(order) } else { Ok(order) }
    })
    .await
    .unwrap_or_else(|order| panic!("order {id} did not settle: {order}"))
}

async fn start(options: PgConnectOptions) -> System {
    let pool = connect(&options).await;
    let system = System::start_paying(pool, &options).await;
    system
        .set_stock_with(
            "Laptop",
            json!({"quantity": 10, "unitAmount": 129900, "currency": "usd"}),
        )
        .await;
    system
}

fn intents_of(intents: &[Value], id: &str) -> Vec<Value> {
    intents
        .iter()
        .filter(|intent| intent["metadata"]["order_id"] == id)
        .cloned()
        .collect()
}

#[sqlx::test(migrations = false)]
async fn a_paid_order_is_charged_once_confirmed_and_mailed_with_its_amount(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let system = start(options).await;
    let customer = unique_email("paid");

    let (status, id) = system
        .place(
            json!({"customerName": "Ada", "customerEmail": customer, "productName": "Laptop",
                      "quantity": 2, "paymentMethod": "pm_card_visa"}),
        )
        .await;

    assert_eq!(status, 201);
    let id = id.unwrap();
    let order = settled(&system, &id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["amount"], 259800);
    assert_eq!(order["payment"]["status"], "SUCCEEDED");
    assert_eq!(system.stock("Laptop").await, 8);
    let intents = system.stripe.as_ref().unwrap().payment_intents().await;
    let ours = intents_of(&intents, &id);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0]["amount"], 259800);
    let mails = system.mail.wait_for_messages(&customer, 2, WITHIN).await;
    let confirmation = mails
        .iter()
        .find(|mail| mail["subject"].as_str().unwrap().ends_with("is confirmed"))
        .expect("the confirmation mail");
    assert!(
        confirmation["text"]
            .as_str()
            .unwrap()
            .contains("2598.00 USD")
    );
}

#[sqlx::test(migrations = false)]
async fn a_declined_card_rejects_the_order_gives_the_stock_back_and_mails_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let system = start(options).await;
    let customer = unique_email("declined");

    let (_, id) = system
        .place(
            json!({"customerName": "Sam", "customerEmail": customer, "productName": "Laptop",
                      "quantity": 3, "paymentMethod": "pm_card_chargeCustomerFail"}),
        )
        .await;

    let id = id.unwrap();
    let order = settled(&system, &id).await;
    assert_eq!(order["status"], "REJECTED", "{order}");
    assert_eq!(order["rejectionReason"], "PAYMENT_DECLINED");
    assert_eq!(order["payment"]["declineCode"], "card_declined");
    assert_eq!(system.stock("Laptop").await, 10, "back to its level before");
    let mails = system.mail.wait_for_messages(&customer, 2, WITHIN).await;
    let rejections: Vec<_> = mails
        .iter()
        .filter(|mail| {
            mail["subject"]
                .as_str()
                .unwrap()
                .starts_with("We could not fulfil your order")
        })
        .collect();
    assert_eq!(rejections.len(), 1, "{mails:?}");
    assert!(rejections[0]["text"].as_str().unwrap().contains("declined"));
}

#[sqlx::test(migrations = false)]
async fn a_cancelled_paid_order_is_refunded_once_its_stock_comes_back_and_it_is_mailed(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let system = start(options).await;
    let customer = unique_email("cancelled");
    let (_, id) = system
        .place(
            json!({"customerName": "Grace", "customerEmail": customer, "productName": "Laptop",
                      "quantity": 1, "paymentMethod": "pm_card_visa"}),
        )
        .await;
    let id = id.unwrap();
    assert_eq!(settled(&system, &id).await["status"], "CONFIRMED");

    let (status, body) = system.cancel(&id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "CANCELLED");
    let (again, problem) = system.cancel(&id).await;
    assert_eq!(again, 409, "{problem}");

    let order = settled(&system, &id).await;
    assert_eq!(order["payment"]["status"], "REFUNDED", "{order}");
    assert_eq!(system.stock("Laptop").await, 10);
    let stripe = system.stripe.as_ref().unwrap();
    let intent = intents_of(&stripe.payment_intents().await, &id)[0]["id"].clone();
    let refunds: Vec<_> = stripe
        .refunds()
        .await
        .into_iter()
        .filter(|refund| refund["payment_intent"] == intent)
        .collect();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    let mails = system.mail.wait_for_messages(&customer, 3, WITHIN).await;
    assert!(
        mails
            .iter()
            .any(|mail| mail["subject"].as_str().unwrap().ends_with("was cancelled")),
        "{mails:?}"
    );
}
