//! Helpers shared by the integration tests: the app over a real pool and broker, requests
//! in-process (`oneshot`) or over a real listener (`spawn_app`), and read-backs.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use lambda_http::request::RequestContext;
use order_api::limits::Limits;
use order_api::problem::{PROBLEM_JSON, Problem};
use order_api::{AppState, app};
use serde_json::Value;
use shared::domain::Quantity;
use shared::events::topics;
use sqlx::PgPool;
use testkit::api_gateway;
use testkit::kafka::ReceivedRecord;
use tower::ServiceExt;
use uuid::Uuid;

/// The request body of the original system, unchanged.
pub const SEED_BODY: &str =
    r#"{"customerName": "Jane Doe", "productName": "Laptop", "quantity": 1}"#;

/// No abuse limit and no guest quantity cap: for tests about something else.
pub fn no_limits() -> Limits {
    Limits {
        guest_max_quantity: Quantity::MAX,
        ..Limits::off()
    }
}

/// The app over `pool` and the shared broker, without abuse limits (tests of the limits
/// set their own with [`test_app_with_limits`]).
pub async fn test_app(pool: &PgPool) -> Router {
    test_app_with_limits(pool, no_limits()).await
}

pub async fn test_app_with_limits(pool: &PgPool, limits: Limits) -> Router {
    testkit::init_tracing();
    let publisher =
        testkit::kafka::publisher(&testkit::kafka::bootstrap(), Duration::from_secs(10)).await;
    app(AppState::with_limits(pool.clone(), publisher, limits))
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.text))
    }

    /// Asserts an RFC 9457 problem with `status`, and returns it.
    pub fn problem(&self, status: StatusCode) -> Problem {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            PROBLEM_JSON,
            "{}",
            self.text
        );
        let problem: Problem = serde_json::from_str(&self.text)
            .unwrap_or_else(|err| panic!("not a problem document ({err}): {}", self.text));
        assert_eq!(problem.status, status.as_u16());
        assert!(!problem.title.is_empty() && !problem.detail.is_empty());
        problem
    }

    /// The fields a `422` problem lists, in order.
    pub fn invalid_fields(&self) -> Vec<String> {
        self.problem(StatusCode::UNPROCESSABLE_ENTITY)
            .errors
            .into_iter()
            .map(|error| error.field)
            .collect()
    }
}

/// Sends `request` in-process as API Gateway would hand it over: with the request context
/// it carries, or, where it carries none, as an operator on `/api/admin` routes and as a
/// guest from 127.0.0.1 elsewhere (a local run's gateway does the same).
pub async fn call(app: &Router, mut request: Request<Body>) -> Reply {
    if request.extensions().get::<RequestContext>().is_none() {
        let context = if request.uri().path().starts_with("/api/admin/") {
            api_gateway::operator()
        } else {
            api_gateway::guest("127.0.0.1")
        };
        request.extensions_mut().insert(context);
    }
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body can be read");
    Reply {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).expect("bodies are UTF-8"),
    }
}

pub fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

pub fn post_order_with_key(body: &Value, key: &str) -> Request<Body> {
    Request::post("/api/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_string().into())
        .unwrap()
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// `request` as sent by the customer `sub` with address `email`, from 127.0.0.1.
pub fn as_customer(mut request: Request<Body>, sub: &str, email: &str) -> Request<Body> {
    request
        .extensions_mut()
        .insert(api_gateway::customer("127.0.0.1", sub, email));
    request
}

/// `request` as sent by a guest from `ip`.
pub fn as_guest(mut request: Request<Body>, ip: &str) -> Request<Body> {
    request.extensions_mut().insert(api_gateway::guest(ip));
    request
}

/// `request` with a guest's `Order-Token`.
pub fn with_order_token(mut request: Request<Body>, token: &str) -> Request<Body> {
    request.headers_mut().insert(
        "order-token",
        token.parse().expect("tokens are header-safe"),
    );
    request
}

/// A valid order body for `customer` and `product`.
pub fn order_body(customer: &str, product: &str, quantity: i64) -> Value {
    serde_json::json!({"customerName": customer, "productName": product, "quantity": quantity})
}

/// Places an order in-process and returns its id.
pub async fn place(app: &Router, body: &Value) -> Uuid {
    let reply = call(app, post_json("/api/orders", body.to_string())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()["orderId"].as_str().unwrap().parse().unwrap()
}

/// Orders, and `order.placed` events emitted for them ([`testkit::orders::emitted_events`]).
pub async fn counts(pool: &PgPool) -> (i64, i64) {
    let orders = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM orders"#)
        .fetch_one(pool)
        .await
        .unwrap();
    let events = testkit::orders::emitted_events(pool, topics::ORDER_PLACED)
        .await
        .len();
    (orders, events as i64)
}

/// `order.placed` records on `bootstrap` whose subject is one of `orders`, duplicates kept.
pub async fn placed_records(
    bootstrap: &str,
    orders: &HashSet<Uuid>,
    timeout: Duration,
) -> Vec<ReceivedRecord> {
    let wanted: HashSet<String> = orders.iter().map(Uuid::to_string).collect();
    testkit::kafka::read_records(
        bootstrap,
        topics::ORDER_PLACED,
        |record| {
            record.json()["subject"]
                .as_str()
                .is_some_and(|subject| wanted.contains(subject))
        },
        orders.len(),
        timeout,
    )
    .await
}

/// The app served on a real listener on a free port, driven like any HTTP client would.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn spawn_app(state: AppState) -> TestApp {
    testkit::init_tracing();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback has free ports");
    let address = format!("http://{}", listener.local_addr().unwrap());
    // As a guest from the connection's address, as API Gateway sees its clients.
    let guests = app(state).layer(axum::middleware::from_fn(
        |ConnectInfo(peer): ConnectInfo<SocketAddr>,
         mut request: Request<Body>,
         next: axum::middleware::Next| async move {
            request
                .extensions_mut()
                .insert(api_gateway::guest(&peer.ip().to_string()));
            next.run(request).await
        },
    ));
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            guests.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("the server runs");
    });
    TestApp {
        address,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        server,
    }
}

impl TestApp {
    pub async fn post_order(&self, body: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/api/orders", self.address))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("the API answers")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the API answers")
    }
}
