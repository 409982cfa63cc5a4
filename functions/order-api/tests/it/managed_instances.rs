//! The Lambda binary itself under a Runtime API stand-in, on the test's database and the
//! shared broker: with `AWS_LAMBDA_MAX_CONCURRENCY=8` (Lambda Managed Instances) one instance
//! serves eight requests at once; without it the same binary serves one at a time.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::lambda_api::{Answer, FunctionProcess, RuntimeApi, http_api_event};
use uuid::Uuid;

use crate::support::placed_records;

/// The function's `bootstrap`, as cargo builds it.
const BINARY: &str = env!("CARGO_BIN_EXE_order-api");
const WAIT: Duration = Duration::from_secs(30);

/// Starts the binary against `api`; `concurrency` is `AWS_LAMBDA_MAX_CONCURRENCY`.
fn start_function(
    api: &RuntimeApi,
    options: &PgConnectOptions,
    concurrency: Option<&str>,
) -> FunctionProcess {
    start_function_with(api, options, concurrency, &[])
}

/// As [`start_function`], with more variables.
pub(crate) fn start_function_with(
    api: &RuntimeApi,
    options: &PgConnectOptions,
    concurrency: Option<&str>,
    more: &[(&str, &str)],
) -> FunctionProcess {
    let mut env = vec![
        (
            "DATABASE_URL".to_owned(),
            testkit::postgres::url_of(options),
        ),
        (
            "KAFKA_BOOTSTRAP_SERVERS".to_owned(),
            testkit::kafka::bootstrap(),
        ),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ];
    env.extend(
        more.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    if let Some(concurrency) = concurrency {
        env.push((
            "AWS_LAMBDA_MAX_CONCURRENCY".to_owned(),
            concurrency.to_owned(),
        ));
    }
    FunctionProcess::start(BINARY.as_ref(), "order-api", api, &env).expect("the binary starts")
}

fn place_order(customer: &str) -> serde_json::Value {
    let body =
        serde_json::json!({"customerName": customer, "productName": "Laptop", "quantity": 1});
    http_api_event("POST", "/api/orders", Some(&body.to_string()))
}

/// The order id of a `201` answer (an API Gateway v2 response).
fn placed_order(answer: &Answer) -> Uuid {
    let response = answer.response();
    assert_eq!(response["statusCode"], 201, "{response}");
    let body: serde_json::Value =
        serde_json::from_str(response["body"].as_str().expect("a text body")).unwrap();
    body["orderId"].as_str().unwrap().parse().unwrap()
}

pub(crate) async fn wait_for_answers(
    answers: Vec<tokio::sync::oneshot::Receiver<Answer>>,
) -> Vec<Answer> {
    let all = futures::future::join_all(answers);
    tokio::time::timeout(WAIT, all)
        .await
        .expect("every invocation is answered")
        .into_iter()
        .map(|answer| answer.expect("the stand-in keeps running"))
        .collect()
}

/// Waits until every order's outbox row is deleted as published and its event is on the broker.
async fn assert_published(pool: &PgPool, orders: &HashSet<Uuid>) {
    let subjects: Vec<String> = orders.iter().map(Uuid::to_string).collect();
    testkit::eventually("every published outbox row is deleted", WAIT, || async {
        let unpublished = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM outbox WHERE payload->>'subject' = ANY($1)"#,
            &subjects,
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if unpublished == 0 {
            Ok(())
        } else {
            Err(unpublished)
        }
    })
    .await;
    let records = placed_records(&testkit::kafka::bootstrap(), orders, WAIT).await;
    assert_eq!(records.len(), orders.len(), "one event per order");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn with_a_concurrency_of_eight_one_instance_places_eight_orders_at_once(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    testkit::init_tracing();
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let api = RuntimeApi::start(true).await;
    let function = start_function(&api, &options, Some("8"));
    testkit::eventually("eight runtime workers asking for events", WAIT, || async {
        match api.waiting_next() {
            8 => Ok(()),
            waiting => Err(format!(
                "{waiting} waiting; log: {}",
                function.log_path().display()
            )),
        }
    })
    .await;

    // Hold back every insert until all eight requests are inside the function at once.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE orders IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let answers: Vec<_> = (0..8)
        .map(|n| api.submit(&place_order(&format!("Customer {n}"))))
        .collect();
    testkit::eventually("eight requests in flight at once", WAIT, || async {
        match api.in_flight() {
            8 => Ok(()),
            in_flight => Err(in_flight),
        }
    })
    .await;
    lock.rollback().await.unwrap();

    let answers = wait_for_answers(answers).await;
    let orders: HashSet<Uuid> = answers.iter().map(placed_order).collect();
    assert_eq!(orders.len(), 8, "eight distinct orders");
    let ids: Vec<Uuid> = orders.iter().copied().collect();
    let stored = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM orders WHERE id = ANY($1)"#,
        &ids
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 8);
    assert_published(&pool, &orders).await;
    assert_eq!(
        api.extensions(),
        0,
        "an instance that is never frozen needs no flushing extension"
    );
    function.stop().await;
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn without_a_concurrency_the_same_binary_serves_one_request_at_a_time(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    testkit::init_tracing();
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let api = RuntimeApi::start(true).await;
    let function = start_function(&api, &options, None);
    api.first_next(WAIT).await.unwrap();

    let answers: Vec<_> = (0..4)
        .map(|n| api.submit(&place_order(&format!("Customer {n}"))))
        .collect();
    let answers = wait_for_answers(answers).await;

    let orders: HashSet<Uuid> = answers.iter().map(placed_order).collect();
    assert_eq!(orders.len(), 4);
    assert_eq!(api.max_waiting_next(), 1, "one runtime worker");
    assert_eq!(api.max_in_flight(), 1, "one request at a time");
    assert_eq!(
        api.extensions(),
        1,
        "the extension that flushes after each answer"
    );
    for answer in &answers {
        api.extensions_done(&answer.request_id, WAIT).await.unwrap();
    }
    assert_published(&pool, &orders).await;
    function.stop().await;
}

/// SIGTERM, which Lambda sends before it shuts down an instance with extensions, ends the
/// function cleanly (`shared::lambda::run`), writing the metrics it has not written yet: on
/// Managed Instances they are written once a second, and the order placed just before would
/// otherwise be lost with the instance.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn sigterm_writes_the_metrics_and_ends_the_function_cleanly(
    _pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    testkit::init_tracing();
    let api = RuntimeApi::start(false).await;
    let function = start_function(&api, &options, Some("2"));
    api.first_next(WAIT).await.unwrap();
    let answer = api
        .invoke(&place_order("Shutdown Customer"), WAIT)
        .await
        .unwrap();
    placed_order(&answer);
    let log = function.log_path().to_owned();
    let status = function
        .terminate(Duration::from_secs(10))
        .await
        .expect("it exits within 10 s of SIGTERM")
        .expect("it was running");
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(
        status.success(),
        "a SIGTERM ends it cleanly, not by the signal: {status}\n{output}"
    );
    assert!(
        output.contains("orders_placed_total"),
        "the order's metric is written before it ends:\n{output}"
    );
}
