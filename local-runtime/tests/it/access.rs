//! The three audiences end to end, as users and attackers reach the running system: the
//! local runtime's gateway in front of the real order API, tokens from the Cognito emulator
//! (a user pool of the test's own), the broker, inventory and the mail sink.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::cognito::{Forge, Pool};

use crate::harness::System;

const WAIT: Duration = Duration::from_secs(60);

/// The runtime on the test's database (which it migrates itself), checking customers'
/// tokens against `pool`.
async fn system_for(pool: &Pool, options: &PgConnectOptions, more: &[(&str, &str)]) -> System {
    let db = PgPoolOptions::new()
        .connect_with(options.clone())
        .await
        .unwrap();
    let (issuer, jwks) = (pool.issuer(), pool.jwks_url());
    let mut settings = vec![
        ("LOCAL_JWT_ISSUER", issuer.as_str()),
        ("LOCAL_JWT_AUDIENCE", pool.client_id.as_str()),
        ("LOCAL_JWT_JWKS_URL", jwks.as_str()),
    ];
    settings.extend_from_slice(more);
    System::start_with_settings(db, options, &settings).await
}

/// A client whose connections come from `ip`: another client, as API Gateway sees it.
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

#[sqlx::test(migrations = false)]
async fn guests_customers_and_operators_each_reach_only_what_is_theirs(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = Pool::create("access").await;
    let (ada, grace) = (
        pool.create_customer("ada").await,
        pool.create_customer("grace").await,
    );
    let (ada_token, grace_token) = (
        pool.sign_in(&ada).await.id_token,
        pool.sign_in(&grace).await.id_token,
    );
    let system = system_for(&pool, &options, &[]).await;
    system.set_stock("Laptop", 10).await;
    let client = reqwest::Client::new();

    // A guest: the seed's request, then its order read back with its token only.
    let (status, placed) = send(
        client
            .post(system.url("/api/orders"))
            .header("content-type", "application/json")
            .body(r#"{"customerName": "Jane Doe", "productName": "Laptop", "quantity": 1}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(placed["message"], "Order placed successfully!");
    let guest_order = placed["orderId"].as_str().unwrap().to_owned();
    let token = placed["orderToken"].as_str().unwrap().to_owned();
    let guest_url = system.url(&format!("/api/orders/{guest_order}"));
    let (status, _) = send(client.get(&guest_url).header("Order-Token", &token)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, hidden) = send(client.get(&guest_url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{hidden}");

    // Ada, signed in: her order is hers, mailed to her account's address.
    let (status, mine) = send(
        client
            .post(system.url("/api/me/orders"))
            .bearer_auth(&ada_token)
            .json(&json!({"customerName": "Ada", "productName": "Laptop", "quantity": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let ada_order = mine["orderId"].as_str().unwrap().to_owned();
    let (status, listed) = send(
        client
            .get(system.url("/api/me/orders"))
            .bearer_auth(&ada_token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["customerEmail"], ada.email.as_str());

    // Grace can neither see nor cancel it, nor list it; the answer is the unknown order's.
    let ada_path = format!("/api/me/orders/{ada_order}");
    let (status, _) = send(client.get(system.url(&ada_path)).bearer_auth(&grace_token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        client
            .post(system.url(&format!("{ada_path}/cancel")))
            .bearer_auth(&grace_token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, graces) = send(
        client
            .get(system.url("/api/me/orders"))
            .bearer_auth(&grace_token),
    )
    .await;
    assert_eq!(graces["items"], json!([]));

    // Without a valid token the gateway answers as API Gateway does, before the function.
    let forge = Forge::new(&ada_token);
    for (what, token) in [
        ("none", None),
        ("expired", Some(forge.expired())),
        ("another key", Some(forge.signed_by_other_key())),
        (
            "another client",
            Some(forge.for_audience("some-other-client")),
        ),
        ("alg none", Some(forge.alg_none())),
        ("no sub", Some(forge.without("sub"))),
    ] {
        let mut request = client.get(system.url("/api/me/orders"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (status, body) = send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body, json!({"message": "Unauthorized"}), "{what}");
    }

    // The operator (open on 127.0.0.1 locally) sees both orders.
    let (status, all) = send(client.get(system.url("/api/admin/orders"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");

    // The pipeline runs on: Ada's order is confirmed and she is mailed.
    let decided = system
        .wait_until_decided(&[ada_order.clone(), guest_order], WAIT)
        .await;
    assert!(
        decided.iter().all(|order| order["status"] == "CONFIRMED"),
        "{decided:?}"
    );
    let mails = system.mail.wait_for_messages(&ada.email, 1, WAIT).await;
    assert!(!mails.is_empty(), "Ada is mailed at her account's address");
    let (status, cancelled) = send(
        client
            .post(system.url(&format!("{ada_path}/cancel")))
            .bearer_auth(&ada_token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED");
}

#[sqlx::test(migrations = false)]
async fn two_client_addresses_are_two_clients_and_a_header_does_not_make_a_third(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = Pool::create("limits").await;
    let system = system_for(
        &pool,
        &options,
        &[
            ("ABUSE_LIMITS", "on"),
            ("LIMIT_GUEST_UNPAID_ORDERS_PER_IP", "2"),
        ],
    )
    .await;
    system.set_stock("Laptop", 10).await;
    let body = json!({"customerName": "Jane", "productName": "Laptop", "quantity": 1});
    let (first, second) = (client_from([127, 0, 0, 2]), client_from([127, 0, 0, 3]));
    for _ in 0..2 {
        let (status, answer) = send(first.post(system.url("/api/orders")).json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    // A forwarded-for header the client writes does not make it someone else.
    let response = first
        .post(system.url("/api/orders"))
        .header("X-Forwarded-For", "203.0.113.9")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let (status, _) = send(second.post(system.url("/api/orders")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "127.0.0.3 is another client");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&system.pool)
        .await
        .unwrap();
    assert_eq!(orders, 3, "the refused order was not written");
    let metrics = reqwest::get(format!("http://{}/metrics", system.runtime.metrics_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("requests_refused_total{reason=\"rate_limited\"} 1")),
        "{metrics}"
    );
}
