//! At the connection limit (docs/scale.md, "When the database refuses"): many order-api
//! instances, each with its own state and pool as Lambda gives them, place orders against a
//! PostgreSQL that accepts only 20 connections. Every answer is `201` or `503`, and once the
//! burst is over every accepted order is decided and mailed exactly once, with stock conserved.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, header};
use order_api::{AppState, OrderApiConfig};
use shared::config::variable_map;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::postgres::Cluster;
use tower::ServiceExt;

use crate::harness::{System, create_orders_database};

/// As many order-api instances as a burst may start, far more than the database can serve.
const INSTANCES: usize = 60;
const ORDERS: usize = 2_000;
const MAX_CONNECTIONS: &str = "20";
const PRODUCTS: [&str; 4] = ["Limit Lamp", "Limit Desk", "Limit Chair", "Limit Shelf"];
/// Less stock than the orders ask for, so that both decisions happen.
const STOCK_EACH: i64 = 150;
const SETTLED_WITHIN: Duration = Duration::from_secs(300);

/// One order as the client placed it, and what the API answered.
struct Placed {
    status: u16,
    id: Option<String>,
    email: String,
}

/// A simulated Lambda instance: its own configuration, pool, producer and router. It serves
/// one request at a time and flushes the outbox after each answer, as the Lambda path does.
async fn place_orders(url: String, bootstrap: String, next: Arc<AtomicUsize>) -> Vec<Placed> {
    let config = OrderApiConfig::from_source(variable_map(&[
        ("DATABASE_URL", &url),
        ("KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        // One client places every order: no abuse limit.
        ("ABUSE_LIMITS", "off"),
    ]))
    .unwrap();
    let state = AppState::from_config(&config).await.unwrap();
    let router = order_api::app(state.clone());
    let mut placed = Vec::new();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= ORDERS {
            break;
        }
        let product = PRODUCTS[n % PRODUCTS.len()];
        let quantity = (n % 3 + 1) as i64;
        let email = format!("limit-{n}-{}@example.com", uuid::Uuid::now_v7().simple());
        let body = serde_json::json!({"customerName": "Lim", "customerEmail": email,
                                      "productName": product, "quantity": quantity});
        let mut request = Request::post("/api/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        request
            .extensions_mut()
            .insert(testkit::api_gateway::guest("127.0.0.1"));
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if status == 503 {
            assert_eq!(
                headers
                    .get(header::RETRY_AFTER)
                    .map(|v| v.to_str().unwrap()),
                Some("2"),
                "{body}"
            );
            assert_eq!(
                headers[header::CONTENT_TYPE],
                "application/problem+json",
                "{body}"
            );
            assert_eq!(body["type"], "urn:problem:order-api:service-unavailable");
        }
        state.outbox().flush().await;
        placed.push(Placed {
            status,
            id: body["orderId"].as_str().map(str::to_owned),
            email,
        });
    }
    // The burst is over: the instance goes away and so do its connections.
    state.pool().close().await;
    placed
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_beyond_the_connection_limit_answers_201_or_503_and_loses_nothing() {
    let cluster = Cluster::start(&[("max_connections", MAX_CONNECTIONS)]).await;
    let url = create_orders_database(&cluster).await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(url.parse::<PgConnectOptions>().unwrap());
    let system = System::start_on(pool, &url).await;
    for product in PRODUCTS {
        system.set_stock(product, STOCK_EACH as i32).await;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let instances: Vec<_> = (0..INSTANCES)
        .map(|_| {
            tokio::spawn(place_orders(
                url.clone(),
                system.broker.bootstrap(),
                next.clone(),
            ))
        })
        .collect();
    let mut placed = Vec::with_capacity(ORDERS);
    for instance in instances {
        placed.extend(instance.await.unwrap());
    }

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for order in &placed {
        *by_status.entry(order.status).or_default() += 1;
    }
    assert_eq!(placed.len(), ORDERS);
    assert!(
        by_status.keys().all(|status| [201, 503].contains(status)),
        "answers by status: {by_status:?}"
    );
    let accepted: Vec<&Placed> = placed.iter().filter(|o| o.status == 201).collect();
    assert!(
        by_status.get(&503).is_some_and(|&refused| refused > 0),
        "the database never refused a connection, so the limit was not tested: {by_status:?}"
    );
    assert!(!accepted.is_empty(), "{by_status:?}");
    tracing::info!(?by_status, "burst answered");

    let ids: Vec<String> = accepted.iter().map(|o| o.id.clone().unwrap()).collect();
    let stored: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM orders"#)
        .fetch_one(&system.pool)
        .await
        .unwrap();
    assert_eq!(stored, ids.len() as i64, "only accepted orders are stored");
    testkit::eventually(
        "every accepted order is decided",
        SETTLED_WITHIN,
        || async {
            let placed: i64 = sqlx::query_scalar!(
                r#"SELECT count(*) AS "count!" FROM orders WHERE id::text = ANY($1) AND status <> 'PLACED'"#,
                &ids
            )
            .fetch_one(&system.pool)
            .await
            .unwrap();
            if placed == ids.len() as i64 {
                Ok(())
            } else {
                Err(placed)
            }
        },
    )
    .await;

    // A received mail per accepted order, and a rejected mail for each rejected one.
    let statuses: Vec<(String, String)> =
        sqlx::query!(r#"SELECT customer_email AS "customer_email!", status FROM orders"#)
            .fetch_all(&system.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|order| (order.customer_email, order.status))
            .collect();
    let expected: HashMap<String, usize> = statuses
        .into_iter()
        .map(|(email, status)| {
            (
                email.to_lowercase(),
                if status == "REJECTED" { 2 } else { 1 },
            )
        })
        .collect();
    assert_eq!(expected.len(), ids.len());
    testkit::eventually("every accepted order is mailed", SETTLED_WITHIN, || async {
        let counts = mail_counts(&system).await;
        let missing = expected
            .iter()
            .filter(|(email, n)| counts.get(*email).copied().unwrap_or(0) < **n)
            .count();
        if missing == 0 { Ok(()) } else { Err(missing) }
    })
    .await;
    // Long enough for a duplicate on its way to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = mail_counts(&system).await;
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(email, n)| counts.get(*email) != Some(*n))
        .collect();
    assert!(
        wrong.is_empty(),
        "mailed a different number of times than expected: {wrong:?}"
    );
    let refused_but_mailed = placed
        .iter()
        .filter(|o| o.status == 503 && counts.contains_key(&o.email))
        .count();
    assert_eq!(refused_but_mailed, 0, "a refused order was mailed");

    let decided: Vec<(String, String, i32)> = sqlx::query!(
        "SELECT product_name, status, quantity FROM orders WHERE status = 'CONFIRMED'",
    )
    .fetch_all(&system.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|order| (order.product_name, order.status, order.quantity))
    .collect();
    for product in PRODUCTS {
        let confirmed: i64 = decided
            .iter()
            .filter(|(name, _, _)| name == product)
            .map(|(_, _, quantity)| i64::from(*quantity))
            .sum();
        let left = system.stock(product).await;
        assert_eq!(
            left + confirmed,
            STOCK_EACH,
            "{product}: {left} left and {confirmed} confirmed"
        );
        assert!(left >= 0);
    }
}

/// Mails in the sink per recipient.
async fn mail_counts(system: &System) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for mail in system.mail.messages().await {
        for to in mail["to"].as_array().into_iter().flatten() {
            let address = to["address"].as_str().unwrap_or_default().to_lowercase();
            *counts.entry(address).or_default() += 1;
        }
    }
    counts
}
