//! Erasing a customer from the running system: orders through every path (confirmed, paid,
//! declined, cancelled) and a poison record that named them, then the operator's erasure,
//! after which the address is nowhere in the database.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::harness::System;

const WAIT: Duration = Duration::from_secs(60);

/// The whole database as `pg_dump` writes its rows (bytea as hex), to search for a value.
fn dump(options: &PgConnectOptions) -> String {
    let output = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", "-h", options.get_host()])
        .args([
            "-p",
            &options.get_port().to_string(),
            "-U",
            options.get_username(),
        ])
        .arg(
            options
                .get_database()
                .expect("sqlx::test names the database"),
        )
        .output()
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the dump is text")
}

fn hex(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}

/// A record no consumer can process (its `quantity` is missing) that names the customer.
async fn send_poison(bootstrap: &str, email: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let value = json!({
        "specversion": "1.0", "id": uuid::Uuid::now_v7(), "source": "order-api",
        "type": "order.placed", "time": "2026-12-07T00:00:00Z",
        "subject": uuid::Uuid::now_v7(), "datacontenttype": "application/json",
        "data": {"orderId": uuid::Uuid::now_v7(), "customerName": "Ada Erasable",
                 "customerEmail": email, "productName": "Laptop"}
    })
    .to_string();
    producer
        .send(
            FutureRecord::to(shared::events::topics::ORDER_PLACED)
                .key("Laptop")
                .payload(&value),
            Duration::from_secs(10),
        )
        .await
        .expect("the broker takes the record");
}

#[sqlx::test(migrations = false)]
async fn an_erased_customer_is_nowhere_in_the_database_and_a_second_erasure_changes_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let db = PgPoolOptions::new()
        .connect_with(options.clone())
        .await
        .unwrap();
    let system = System::start_paying(db, &options).await;
    system
        .set_stock_with(
            "Laptop",
            json!({"quantity": 20, "unitAmount": 1000, "currency": "usd"}),
        )
        .await;
    let email = format!("ada-{}@example.com", uuid::Uuid::now_v7().simple());
    let order = |payment: Option<&str>| {
        let mut body = json!({"customerName": "Ada Erasable", "customerEmail": email,
                              "productName": "Laptop", "quantity": 1});
        if let Some(payment) = payment {
            body["paymentMethod"] = json!(payment);
        }
        body
    };
    let mut ids = Vec::new();
    for payment in [
        None,
        Some("pm_card_visa"),
        Some("pm_card_chargeCustomerFail"),
        None,
    ] {
        let (status, id) = system.place(order(payment)).await;
        assert_eq!(status, 201);
        ids.push(id.unwrap());
    }
    // Card orders pass through RESERVED until the payment settles.
    testkit::eventually("every order settled", WAIT, || async {
        let mut statuses = Vec::new();
        for id in &ids {
            statuses.push(system.order(id).await["status"].clone());
        }
        let want = [
            json!("CONFIRMED"),
            json!("CONFIRMED"),
            json!("REJECTED"),
            json!("CONFIRMED"),
        ];
        if statuses == want {
            Ok(())
        } else {
            Err(statuses)
        }
    })
    .await;
    let (status, _) = system.cancel(&ids[3]).await;
    assert_eq!(status, 200);
    send_poison(&system.broker.bootstrap(), &email).await;

    // Let the pipeline finish with the customer: mails sent, the poison record stored.
    testkit::eventually("mails sent and the poison record stored", WAIT, || async {
        let (mails, letters): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM notifications WHERE status = 'SENT'),
                    (SELECT count(*) FROM dead_letters)",
        )
        .fetch_one(&system.pool)
        .await
        .unwrap();
        // Received (4), declined (1), cancelled (1); the poison record for both consumers.
        if mails >= 6 && letters >= 2 {
            Ok(())
        } else {
            Err((mails, letters))
        }
    })
    .await;
    assert!(
        dump(&options).contains(&email),
        "the dump finds what is there"
    );

    let client = reqwest::Client::new();
    let erase = || async {
        let response = client
            .post(system.url("/api/admin/customers/erase"))
            .json(&json!({ "email": email.to_uppercase() }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };
    let first = erase().await;
    assert_eq!(first["erased"]["orders"], 4, "{first}");
    assert!(
        first["erased"]["notifications"].as_i64().unwrap() >= 6,
        "{first}"
    );
    assert!(
        first["erased"]["deadLetters"].as_i64().unwrap() >= 2,
        "{first}"
    );
    let second = erase().await;
    assert_eq!(
        second,
        json!({"erased": {"orders": 0, "notifications": 0, "deadLetters": 0, "outbox": 0}})
    );

    let dump = dump(&options).to_lowercase();
    assert!(
        !dump.contains(&email),
        "the address is still in the database"
    );
    assert!(
        !dump.contains(&hex(&email)),
        "the address is still in a bytea column"
    );
    assert!(
        !dump.contains("ada erasable"),
        "the name is still in the database"
    );
    // The books keep the amounts and statuses.
    let order = system.order(&ids[1]).await;
    assert_eq!(
        (
            &order["customerName"],
            &order["customerEmail"],
            &order["amount"],
            &order["status"]
        ),
        (
            &json!("Erased customer"),
            &Value::Null,
            &json!(1000),
            &json!("CONFIRMED")
        )
    );
}
