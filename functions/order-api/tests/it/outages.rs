//! Outages: a broker that is down does not fail orders; a database that is down is a `503`
//! with `Retry-After`, and service resumes when it returns.

use std::collections::HashSet;
use std::time::Duration;

use axum::http::{StatusCode, header};
use order_api::{AppState, app};
use outbox_relay::{RelayError, RelayLimits, run_once};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::orders::unpublished;
use testkit::proxy::TcpProxy;
use testkit::tansu::Tansu;
use uuid::Uuid;

use crate::support::{call, get, no_limits, order_body, place, placed_records, post_json};
use testkit::kafka::publisher;

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn orders_are_accepted_while_kafka_is_down_and_the_relay_publishes_each_once(pool: PgPool) {
    testkit::init_tracing();
    let mut broker = Tansu::start().await;
    let state = AppState::with_limits(
        pool.clone(),
        publisher(&broker.bootstrap(), Duration::from_secs(1)).await,
        no_limits(),
    );
    let api = app(state.clone());
    broker.stop().await;

    let mut ids = HashSet::new();
    for n in 0..3 {
        ids.insert(place(&api, &order_body(&format!("Offline {n}"), "Laptop", 1)).await);
    }
    assert_eq!(ids.len(), 3);
    // The answers came at once; the publisher now gives up on the broker.
    state.outbox().flush().await;
    assert_eq!(unpublished(&pool).await, 3, "the events wait in the outbox");

    broker.restart().await;
    // The relay is its own function with its own producer; rows are old enough at once.
    let relay_publisher = publisher(&broker.bootstrap(), Duration::from_secs(5)).await;
    let limits = RelayLimits {
        min_age: Duration::ZERO,
        ..RelayLimits::default()
    };
    testkit::eventually(
        "the relay publishing every row",
        Duration::from_secs(10),
        || async {
            // The broker may still refuse a run while clients reconnect; the database must not.
            match run_once(&pool, &relay_publisher, limits).await {
                Ok(_) | Err(RelayError::Broker { .. }) => {}
                Err(err) => panic!("the relay failed: {err}"),
            }
            match unpublished(&pool).await {
                0 => Ok(()),
                left => Err(format!("{left} rows unpublished")),
            }
        },
    )
    .await;

    let records = placed_records(&broker.bootstrap(), &ids, Duration::from_secs(30)).await;
    let mut per_order: Vec<Uuid> = records
        .iter()
        .map(|record| record.json()["subject"].as_str().unwrap().parse().unwrap())
        .collect();
    per_order.sort();
    let mut expected: Vec<Uuid> = ids.into_iter().collect();
    expected.sort();
    assert_eq!(per_order, expected, "exactly one event per order");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_database_outage_is_503_with_retry_after_and_service_resumes(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    testkit::init_tracing();
    let upstream = format!("{}:{}", connect.get_host(), connect.get_port());
    let proxy = TcpProxy::start(upstream).await;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(connect.clone().host("127.0.0.1").port(proxy.port()));
    let api = app(AppState::with_limits(
        pool.clone(),
        publisher(&testkit::kafka::bootstrap(), Duration::from_secs(10)).await,
        no_limits(),
    ));
    let body = order_body("Ada", "Laptop", 1).to_string();
    place(&api, &order_body("Before", "Laptop", 1)).await;

    proxy.cut().await;

    let reply = call(&api, post_json("/api/orders", body.clone())).await;
    reply.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers[header::RETRY_AFTER], "2");
    for path in ["/api/health", "/api/admin/orders", "/api/stock"] {
        let reply = call(&api, get(path)).await;
        reply.problem(StatusCode::SERVICE_UNAVAILABLE);
        assert!(reply.headers.contains_key(header::RETRY_AFTER), "{path}");
    }

    proxy.restore();

    // The same router, with no restart, serves again (a reconnect may take a few tries).
    testkit::eventually(
        "an order placed after the database came back",
        Duration::from_secs(10),
        || async {
            match call(&api, post_json("/api/orders", body.clone()))
                .await
                .status
            {
                StatusCode::CREATED => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(call(&api, get("/api/health")).await.status, StatusCode::OK);
    let direct = PgPoolOptions::new().connect_with(connect).await.unwrap();
    let orders = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM orders"#)
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(orders, 2, "only the orders answered with 201 exist");
}
