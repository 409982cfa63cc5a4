//! The functions' metrics as an operator sees them locally: scraped from the runtime by a
//! real Prometheus with the repository's configuration and rules, and read back through
//! Prometheus's HTTP query API.

use std::time::Duration;

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::prometheus::Prometheus;

use crate::harness::{System, connect};

const DECIDED_WITHIN: Duration = Duration::from_secs(90);

/// Waits until `promql` yields `expected` in Prometheus.
async fn assert_eventually(prometheus: &Prometheus, promql: &str, expected: f64) {
    testkit::eventually(
        &format!("{promql} == {expected}"),
        Duration::from_secs(30),
        || async move {
            match prometheus.value(promql).await {
                Ok(Some(value)) if value == expected => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn orders_of_known_outcomes_are_counted_exactly_by_the_local_prometheus(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = connect(&options).await;
    let system = System::start(pool, &options).await;
    let prometheus = Prometheus::start(&system.runtime.metrics_addr()).await;
    system.set_stock("Keyboard", 3).await;
    let customer = format!("counted-{}@example.com", uuid::Uuid::now_v7().simple());

    // Five keyboards for a stock of three, one product nobody sells, and a retry of the
    // first order under its Idempotency-Key (not a new order).
    let mut ids = Vec::new();
    for n in 0..5 {
        let body = json!({"customerName": format!("Buyer {n}"), "customerEmail": customer, "productName": "Keyboard", "quantity": 1});
        let response = reqwest::Client::new()
            .post(system.url("/api/orders"))
            .header("Idempotency-Key", format!("counted-{n}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        ids.push(
            response.json::<serde_json::Value>().await.unwrap()["orderId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        // One at a time, so that the first three are the ones confirmed.
        system.wait_until_decided(&ids, DECIDED_WITHIN).await;
    }
    let retry = reqwest::Client::new()
        .post(system.url("/api/orders"))
        .header("Idempotency-Key", "counted-0")
        .json(&json!({"customerName": "Buyer 0", "customerEmail": customer, "productName": "Keyboard", "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let (status, unknown) = system
        .place(json!({"customerName": "Nobody", "customerEmail": customer, "productName": "Perpetuum Mobile", "quantity": 1}))
        .await;
    assert_eq!(status, 201);
    ids.push(unknown.unwrap());
    let orders = system.wait_until_decided(&ids, DECIDED_WITHIN).await;
    let statuses: Vec<_> = orders
        .iter()
        .map(|order| (order["status"].clone(), order["rejectionReason"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            (json!("CONFIRMED"), json!(null)),
            (json!("CONFIRMED"), json!(null)),
            (json!("CONFIRMED"), json!(null)),
            (json!("REJECTED"), json!("OUT_OF_STOCK")),
            (json!("REJECTED"), json!("OUT_OF_STOCK")),
            (json!("REJECTED"), json!("UNKNOWN_PRODUCT")),
        ]
    );
    // Six "received" mails and three "could not fulfil" ones.
    system
        .mail
        .wait_for_messages(&customer, 9, DECIDED_WITHIN)
        .await;

    assert_eventually(&prometheus, r#"up{job="local-runtime"}"#, 1.0).await;
    assert_eventually(&prometheus, "sum(orders_placed_total)", 6.0).await;
    assert_eventually(&prometheus, "sum(orders_confirmed_total)", 3.0).await;
    assert_eventually(
        &prometheus,
        r#"sum(orders_rejected_total{reason="OUT_OF_STOCK"})"#,
        2.0,
    )
    .await;
    assert_eventually(
        &prometheus,
        r#"sum(orders_rejected_total{reason="UNKNOWN_PRODUCT"})"#,
        1.0,
    )
    .await;
    assert_eventually(&prometheus, r#"sum(mails_total{outcome="sent"})"#, 9.0).await;
    assert_eventually(
        &prometheus,
        r#"sum(batch_records_sum{consumer="inventory"})"#,
        6.0,
    )
    .await;
    // Nothing was refused, so no series exists at all.
    assert_eq!(
        prometheus.value("sum(dead_letters_total)").await.unwrap(),
        None
    );
    assert_eventually(
        &prometheus,
        "count(outbox_oldest_unpublished_seconds < 30)",
        1.0,
    )
    .await;

    // The repository's rules loaded and evaluate without errors.
    let rules: serde_json::Value = reqwest::get(format!("{}/api/v1/rules", prometheus.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rules: Vec<_> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().clone())
        .collect();
    assert!(rules.len() >= 10, "{rules:?}");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
}
