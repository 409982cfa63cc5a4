//! One trace per order through the whole local system: the caller's `traceparent` reaches the
//! order's records on both topics (Kafka header and CloudEvents attribute, read back by a real
//! Kafka consumer) and every log line about the order, the notification's included.

use std::time::Duration;

use serde_json::json;
use shared::events::topics;
use shared::trace::{TRACEPARENT, TraceContext};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::kafka::ReceivedRecord;

use crate::harness::{System, connect};

const WITHIN: Duration = Duration::from_secs(90);

/// The order's record on `topic`, and the trace context its header and attribute both name.
async fn traced_record(system: &System, topic: &str, order_id: &str) -> TraceContext {
    let records = testkit::kafka::read_records(
        &system.broker.bootstrap(),
        topic,
        |record: &ReceivedRecord| record.json()["subject"] == order_id,
        1,
        WITHIN,
    )
    .await;
    assert_eq!(records.len(), 1, "one {topic} record for {order_id}");
    let header = records[0]
        .header(TRACEPARENT)
        .unwrap_or_else(|| panic!("{topic} record without a traceparent header"));
    let header = std::str::from_utf8(header).unwrap();
    assert_eq!(
        records[0].json()["traceparent"],
        header,
        "the CloudEvents attribute names the same context as the header"
    );
    header.parse().unwrap()
}

#[sqlx::test(migrations = false)]
async fn an_orders_trace_runs_from_its_request_through_both_topics_into_the_notification_logs(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = connect(&options).await;
    let system = System::start_with_json_logs(pool, &options).await;
    system.set_stock("Globe", 2).await;
    let caller = TraceContext::new_root();
    let trace_id = caller.trace_id().to_string();
    let customer = format!("traced-{}@example.com", uuid::Uuid::now_v7().simple());

    let response = reqwest::Client::new()
        .post(system.url("/api/orders"))
        .header(TRACEPARENT, caller.to_string())
        .json(&json!({"customerName": "Tracy", "customerEmail": customer, "productName": "Globe", "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let order_id = response.json::<serde_json::Value>().await.unwrap()["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let decided = system
        .wait_until_decided(std::slice::from_ref(&order_id), WITHIN)
        .await;
    assert_eq!(decided[0]["status"], "CONFIRMED");

    let placed = traced_record(&system, topics::ORDER_PLACED, &order_id).await;
    let confirmed = traced_record(&system, topics::ORDER_CONFIRMED, &order_id).await;
    assert_eq!(placed.trace_id(), caller.trace_id());
    assert_eq!(confirmed.trace_id(), caller.trace_id());
    // Each hop is a span of its own: the request's, then the inventory record's.
    assert_ne!(placed.span_id(), caller.span_id());
    assert_ne!(confirmed.span_id(), placed.span_id());

    // The "we received your order" mail, then every log line about the order.
    system.mail.wait_for_messages(&customer, 1, WITHIN).await;
    let (log, order_id) = (system.runtime.log_path(), order_id.as_str());
    let lines = testkit::eventually(
        &format!("the log lines about {order_id} in {}", log.display()),
        Duration::from_secs(30),
        move || async move {
            let lines = lines_about(log, order_id);
            let messages: Vec<&str> = lines
                .iter()
                .filter_map(|line| line["fields"]["message"].as_str())
                .collect();
            if messages.contains(&"order placed") && messages.contains(&"notification sent") {
                Ok(lines)
            } else {
                Err(messages.join(" | "))
            }
        },
    )
    .await;
    for line in &lines {
        let spans = line["spans"].as_array().unwrap();
        assert!(
            spans.iter().any(|span| span["trace_id"] == trace_id),
            "a log line about the order without its trace id: {line}"
        );
    }
}

/// The runtime's JSON log lines that some span ties to `order_id`, except those of the test's
/// own reads of the order (`GET` requests, each a trace of its own).
fn lines_about(log: &std::path::Path, order_id: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| {
            line["spans"].as_array().is_some_and(|spans| {
                spans.iter().any(|span| span["order_id"] == order_id)
                    && !spans
                        .iter()
                        .any(|span| span["name"] == "request" && span["method"] == "GET")
            })
        })
        .collect()
}
