//! The whole system as a user runs it: HTTP in, decisions in PostgreSQL, mails out, with the
//! broker, the mail sink and the runtime itself failing along the way.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::harness::{FALLBACK_RECIPIENT, System};

const DECIDED_WITHIN: Duration = Duration::from_secs(90);

fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// Mails in the sink per recipient and subject kind (`received` / `rejected`).
async fn mails_by_recipient(system: &System) -> HashMap<(String, &'static str), usize> {
    let mut counts = HashMap::new();
    for mail in system.mail.messages().await {
        let subject = mail["subject"].as_str().unwrap_or_default();
        let kind = if subject.starts_with("We received your order") {
            "received"
        } else if subject.starts_with("We could not fulfil your order") {
            "rejected"
        } else {
            "other"
        };
        for to in mail["to"].as_array().into_iter().flatten() {
            let address = to["address"].as_str().unwrap_or_default().to_lowercase();
            *counts.entry((address, kind)).or_default() += 1;
        }
    }
    counts
}

async fn start(options: PgConnectOptions) -> System {
    let pool = PgPoolOptions::new()
        .connect_with(options.clone())
        .await
        .unwrap();
    System::start(pool, &options).await
}

async fn start_with_cuttable_broker(options: PgConnectOptions) -> System {
    let pool = PgPoolOptions::new()
        .connect_with(options.clone())
        .await
        .unwrap();
    System::start_with_cuttable_broker(pool, &options).await
}

#[sqlx::test(migrations = false)]
async fn the_original_request_ends_confirmed_with_stock_taken_and_a_received_mail(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let system = start(options).await;
    system.set_stock("Laptop", 5).await;

    let (status, id) = system
        .place(json!({"customerName": "Jane Doe", "productName": "Laptop", "quantity": 1}))
        .await;

    assert_eq!(status, 201);
    let id = id.unwrap();
    let order = &system
        .wait_until_decided(std::slice::from_ref(&id), DECIDED_WITHIN)
        .await[0];
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(system.stock("Laptop").await, 4);
    let mails = system
        .mail
        .wait_for_messages(FALLBACK_RECIPIENT, 1, DECIDED_WITHIN)
        .await;
    assert_eq!(mails.len(), 1, "one received mail: {mails:?}");
    assert!(mails[0]["subject"].as_str().unwrap().contains(&id));
}

#[sqlx::test(migrations = false)]
async fn an_order_beyond_the_stock_is_rejected_and_the_customer_is_told(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let system = start(options).await;
    system.set_stock("Monitor", 2).await;
    let customer = unique_email("too-many");

    let (status, id) = system
        .place(json!({"customerName": "Sam", "customerEmail": customer, "productName": "Monitor", "quantity": 3}))
        .await;

    assert_eq!(status, 201);
    let order = &system
        .wait_until_decided(&[id.unwrap()], DECIDED_WITHIN)
        .await[0];
    assert_eq!(order["status"], "REJECTED");
    assert_eq!(order["rejectionReason"], "OUT_OF_STOCK");
    assert_eq!(system.stock("Monitor").await, 2);
    let mails = system
        .mail
        .wait_for_messages(&customer, 2, DECIDED_WITHIN)
        .await;
    let subjects: Vec<&str> = mails.iter().filter_map(|m| m["subject"].as_str()).collect();
    assert_eq!(mails.len(), 2, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("We received your order"))
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("We could not fulfil your order"))
    );
}

/// Places `count` orders for one unit of `products[n % len]`, one every `spacing`; each
/// must be accepted whatever else is down.
async fn place_many(
    system: &System,
    count: usize,
    products: &[&str],
    spacing: Duration,
) -> Vec<(String, String)> {
    let mut placed = Vec::with_capacity(count);
    for n in 0..count {
        let customer = unique_email(&format!("c{n}"));
        let (status, id) = system
            .place(json!({
                "customerName": format!("Customer {n}"),
                "customerEmail": customer,
                "productName": products[n % products.len()],
                "quantity": 1,
            }))
            .await;
        assert_eq!(status, 201, "every order is accepted");
        placed.push((id.unwrap(), customer));
        tokio::time::sleep(spacing).await;
    }
    placed
}

/// Every order decided, confirmed quantities equal to stock consumed, exactly one received
/// mail per customer (and one rejection mail per rejected order).
async fn assert_consistent(
    system: &System,
    pool: &PgPool,
    placed: &[(String, String)],
    initial_stock: &[(&str, i64)],
) {
    let ids: Vec<String> = placed.iter().map(|(id, _)| id.clone()).collect();
    let orders = system
        .wait_until_decided(&ids, Duration::from_secs(120))
        .await;
    let undecided: Vec<&Value> = orders.iter().filter(|o| o["status"] == "PLACED").collect();
    assert!(
        undecided.is_empty(),
        "{} orders never decided",
        undecided.len()
    );

    for (product, initial) in initial_stock {
        let confirmed: i64 = sqlx::query_scalar!(
            r#"SELECT coalesce(sum(quantity), 0)::bigint AS "confirmed!" FROM orders WHERE product_name = $1 AND status = 'CONFIRMED'"#,
            product
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            system.stock(product).await,
            initial - confirmed,
            "{product}"
        );
    }
    let rejected: HashMap<String, bool> = orders
        .iter()
        .map(|o| {
            (
                o["orderId"].as_str().unwrap().to_owned(),
                o["status"] == "REJECTED",
            )
        })
        .collect();

    // Waits until every expected mail is in, then checks the counts exactly (a duplicate
    // fails the check below).
    let mails = testkit::poll_until(Duration::from_secs(120), || async {
        let mails = mails_by_recipient(system).await;
        let complete = placed.iter().all(|(id, customer)| {
            let received = mails
                .get(&(customer.to_lowercase(), "received"))
                .copied()
                .unwrap_or(0);
            let refusals = mails
                .get(&(customer.to_lowercase(), "rejected"))
                .copied()
                .unwrap_or(0);
            received >= 1 && refusals >= usize::from(rejected[id])
        });
        if complete { Ok(mails) } else { Err(mails) }
    })
    .await
    .unwrap_or_else(|incomplete| incomplete);
    for (id, customer) in placed {
        let customer = customer.to_lowercase();
        let received = mails
            .get(&(customer.clone(), "received"))
            .copied()
            .unwrap_or(0);
        assert_eq!(received, 1, "received mails for order {id}");
        let refusals = mails.get(&(customer, "rejected")).copied().unwrap_or(0);
        assert_eq!(
            refusals,
            usize::from(rejected[id]),
            "rejection mails for order {id}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn orders_placed_while_the_broker_is_down_are_all_decided_once_it_returns(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let system = start_with_cuttable_broker(options).await;
    let pool = system.pool.clone();
    system.set_stock("Keyboard", 150).await;
    system.set_stock("Mouse", 40).await;
    let products = ["Keyboard", "Mouse"];
    let spacing = Duration::from_millis(30);

    // 200 orders over about 10 s, with the broker unreachable for 5 s in the middle. The
    // outage is a cut network path (see `Tansu::start_behind_proxy` for why not a restart).
    let mut placed = place_many(&system, 70, &products, spacing).await;
    system.broker.disconnect().await;
    let outage_ends = tokio::time::Instant::now() + Duration::from_secs(5);
    placed.extend(place_many(&system, 60, &products, spacing).await);
    tokio::time::sleep_until(outage_ends).await;
    system.broker.reconnect();
    placed.extend(place_many(&system, 70, &products, spacing).await);

    assert_consistent(&system, &pool, &placed, &[("Keyboard", 150), ("Mouse", 40)]).await;
}

#[sqlx::test(migrations = false)]
async fn killing_the_runtime_mid_stream_loses_nothing_and_applies_nothing_twice(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut system = start(options).await;
    let pool = system.pool.clone();
    system.set_stock("Headphones", 30).await;
    system.set_stock("Mouse", 30).await;
    let products = ["Headphones", "Mouse"];

    let mut placed = place_many(&system, 40, &products, Duration::ZERO).await;
    // Orders are in flight in every stage of the pipeline: kill without warning.
    system.runtime.kill().await;
    system.runtime.restart().await;
    placed.extend(place_many(&system, 40, &products, Duration::ZERO).await);

    assert_consistent(
        &system,
        &pool,
        &placed,
        &[("Headphones", 30), ("Mouse", 30)],
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn mails_held_back_by_an_smtp_outage_arrive_exactly_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut system = start(options).await;
    let pool = system.pool.clone();
    system.set_stock("Laptop", 100).await;
    system.mail.stop().await;

    let placed = place_many(&system, 10, &["Laptop"], Duration::ZERO).await;
    let ids: Vec<String> = placed.iter().map(|(id, _)| id.clone()).collect();
    let orders = system.wait_until_decided(&ids, DECIDED_WITHIN).await;
    assert!(
        orders.iter().all(|o| o["status"] == "CONFIRMED"),
        "orders confirm while mail is down"
    );
    let sent: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM notifications WHERE status = 'SENT'"#
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(sent, 0);

    system.mail.start().await;
    assert_consistent(&system, &pool, &placed, &[("Laptop", 100)]).await;
}

#[sqlx::test(migrations = false)]
async fn the_runtime_exits_cleanly_on_sigterm(_: PgPoolOptions, options: PgConnectOptions) {
    let mut system = start(options).await;

    let code = system
        .runtime
        .terminate()
        .await
        .and_then(|status| status.code());

    assert_eq!(code, Some(0));
}

#[sqlx::test(migrations = false)]
async fn the_runtime_migrates_a_fresh_database_and_serves_the_router_on_its_address(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let system = start(options).await;

    let health = reqwest::get(system.url("/api/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let missing = reqwest::get(system.url("/api/missing")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let migrated: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&system.pool)
        .await
        .unwrap();
    assert!(migrated >= 1, "the runtime applied the migrations");
}

#[test]
fn start_up_with_an_invalid_listen_address_fails_naming_it() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_local-runtime"))
        .env_clear()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders")
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        .env("ORDER_API_ADDR", "port three thousand")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("ORDER_API_ADDR"), "{stderr}");
}
