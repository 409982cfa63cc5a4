//! The abuse limits, counted in PostgreSQL: they hold across instances, a refused order
//! writes nothing but its count, and two client addresses are two clients.

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use futures::future::join_all;
use order_api::limits::{AudienceLimits, Limits};
use order_api::{AppState, app};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::managed_instances::{start_function_with, wait_for_answers};
use crate::support::{Reply, as_customer, as_guest, call, counts, order_body, post_json};
use testkit::kafka::publisher;

fn guest_limits(unpaid_per_ip: u32, per_email: u32, cards_per_ip: u32) -> Limits {
    Limits {
        guest: AudienceLimits {
            unpaid_orders_per_ip: unpaid_per_ip,
            orders_per_email: per_email,
            card_attempts_per_ip: cards_per_ip,
        },
        ..Limits::default()
    }
}

/// An instance of the API with a pool of its own, as a second Lambda instance has.
async fn instance(pool: &PgPool, limits: Limits) -> Router {
    let own_pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let publisher = publisher(&testkit::kafka::bootstrap(), Duration::from_secs(10)).await;
    app(AppState::with_limits(own_pool, publisher, limits))
}

async fn place_from(app: &Router, ip: &str, body: &serde_json::Value) -> Reply {
    call(
        app,
        as_guest(post_json("/api/orders", body.to_string()), ip),
    )
    .await
}

fn assert_limited(reply: &Reply) {
    let problem = reply.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem.problem_type, "urn:problem:order-api:rate-limited");
    let wait: u64 = reply.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn twenty_concurrent_guest_orders_from_one_address_against_a_limit_of_five_place_five(
    pool: PgPool,
) {
    testkit::init_tracing();
    let limits = guest_limits(5, 100, 10);
    let instances = [
        instance(&pool, limits.clone()).await,
        instance(&pool, limits).await,
    ];
    let replies = join_all((0..20).map(|n| {
        let app = instances[n % 2].clone();
        async move {
            let body = order_body(&format!("Guest {n}"), "Laptop", 1);
            place_from(&app, "127.0.0.2", &body).await
        }
    }))
    .await;
    let placed = replies
        .iter()
        .filter(|reply| reply.status == StatusCode::CREATED)
        .count();
    let refused: Vec<_> = replies
        .iter()
        .filter(|reply| reply.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!((placed, refused.len()), (5, 15));
    refused.iter().for_each(|reply| assert_limited(reply));
    assert_eq!(
        counts(&pool).await,
        (5, 5),
        "a refused order writes nothing"
    );

    // Another address is another client, with a count of its own.
    let other = place_from(
        &instances[0],
        "127.0.0.3",
        &order_body("Other", "Laptop", 1),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text);
}

/// The same, with two processes of the function's own binary, each under a Lambda Runtime
/// API stand-in serving ten requests at once, as two Lambda Managed Instances would.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn twenty_concurrent_guest_orders_across_two_function_processes_place_five(
    pool_options: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    testkit::init_tracing();
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let limit = [("LIMIT_GUEST_UNPAID_ORDERS_PER_IP", "5")];
    let apis = [
        testkit::lambda_api::RuntimeApi::start(false).await,
        testkit::lambda_api::RuntimeApi::start(false).await,
    ];
    let functions: Vec<_> = apis
        .iter()
        .map(|api| start_function_with(api, &options, Some("10"), &limit))
        .collect();
    testkit::eventually(
        "both processes ask for events",
        Duration::from_secs(30),
        || async {
            match apis.iter().map(|api| api.waiting_next()).min() {
                Some(10) => Ok(()),
                waiting => Err(format!("{waiting:?} waiting")),
            }
        },
    )
    .await;
    let answers = (0..20)
        .map(|n| {
            let body = order_body(&format!("Guest {n}"), "Laptop", 1).to_string();
            let event = testkit::lambda_api::http_api_event("POST", "/api/orders", Some(&body));
            apis[n % 2].submit(&event)
        })
        .collect();
    let statuses: Vec<u64> = wait_for_answers(answers)
        .await
        .iter()
        .map(|answer| answer.response()["statusCode"].as_u64().unwrap())
        .collect();
    let placed = statuses.iter().filter(|status| **status == 201).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!((placed, refused), (5, 15), "{statuses:?}");
    assert_eq!(
        counts(&pool).await,
        (5, 5),
        "a refused order writes nothing"
    );
    for function in functions {
        function.stop().await;
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn one_address_is_mailed_at_most_the_limit_whatever_the_client(pool: PgPool) {
    let app = instance(&pool, guest_limits(100, 2, 100)).await;
    let mut body = order_body("Ada", "Laptop", 1);
    body["customerEmail"] = json!("victim@example.com");
    for ip in ["127.0.0.2", "127.0.0.3"] {
        assert_eq!(
            place_from(&app, ip, &body).await.status,
            StatusCode::CREATED
        );
    }
    // The same mailbox, capitalised otherwise, from a third address.
    body["customerEmail"] = json!("Victim@Example.com");
    assert_limited(&place_from(&app, "127.0.0.4", &body).await);
    assert_eq!(counts(&pool).await, (2, 2));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn card_attempts_are_limited_apart_from_unpaid_orders(pool: PgPool) {
    let app = instance(&pool, guest_limits(100, 100, 2)).await;
    let mut card = order_body("Ada", "Laptop", 1);
    card["paymentMethod"] = json!("pm_card_visa");
    for _ in 0..2 {
        assert_eq!(
            place_from(&app, "127.0.0.2", &card).await.status,
            StatusCode::CREATED
        );
    }
    assert_limited(&place_from(&app, "127.0.0.2", &card).await);
    // Paying on invoice is counted apart.
    let unpaid = place_from(&app, "127.0.0.2", &order_body("Ada", "Laptop", 1)).await;
    assert_eq!(unpaid.status, StatusCode::CREATED);
    let card_orders = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM orders WHERE payment_method IS NOT NULL"#
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        card_orders, 2,
        "the refused card attempt never reaches payment"
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn customers_have_looser_limits_than_guests(pool: PgPool) {
    let limits = Limits {
        customer: AudienceLimits {
            unpaid_orders_per_ip: 4,
            orders_per_email: 100,
            card_attempts_per_ip: 100,
        },
        ..guest_limits(2, 100, 100)
    };
    let app = instance(&pool, limits).await;
    for _ in 0..2 {
        let reply = place_from(&app, "127.0.0.2", &order_body("Ada", "Laptop", 1)).await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    assert_limited(&place_from(&app, "127.0.0.2", &order_body("Ada", "Laptop", 1)).await);
    let customer = || {
        as_customer(
            post_json("/api/me/orders", order_body("Ada", "Laptop", 1).to_string()),
            "sub-ada",
            "ada@example.com",
        )
    };
    for _ in 0..4 {
        assert_eq!(call(&app, customer()).await.status, StatusCode::CREATED);
    }
    assert_limited(&call(&app, customer()).await);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn counters_keep_no_address_only_hashes(pool: PgPool) {
    let app = instance(&pool, Limits::default()).await;
    let mut body = order_body("Ada", "Laptop", 1);
    body["customerEmail"] = json!("ada@example.com");
    assert_eq!(
        place_from(&app, "127.0.0.2", &body).await.status,
        StatusCode::CREATED
    );
    let rows: Vec<_> =
        sqlx::query!("SELECT counter, subject, hits FROM request_counts ORDER BY counter")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.counter, row.subject, row.hits))
            .collect();
    let names: Vec<_> = rows
        .iter()
        .map(|(name, _, hits)| (name.as_str(), *hits))
        .collect();
    assert_eq!(
        names,
        [
            ("guest_orders_per_email", 1),
            ("guest_unpaid_orders_per_ip", 1)
        ]
    );
    for (_, subject, _) in &rows {
        assert_eq!(subject.len(), 32);
        let text = String::from_utf8_lossy(subject);
        assert!(!text.contains("ada@") && !text.contains("127.0.0.2"));
    }
}
