//! The work the inventory, order API and observability commands share: the products and their
//! stock, the broker (the given one or a private one), the inventory's `order.placed` batches
//! as Lambda delivers them, and order load (`POST /api/orders`, `POST /api/me/orders`) against
//! the real router behind the local API Gateway.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use local_runtime::gateway::{DeclaredApi, Gateway, JwtSettings};
use shared::domain::EmailAddress;
use shared::events::OrderEvent;
use shared::kafka::KafkaPublisher;
use shared::trace::{TRACEPARENT, TraceContext};
use sqlx::PgPool;
use testkit::msk::{BrokerRecord, kafka_event};
use testkit::tansu::Tansu;
use uuid::Uuid;

use crate::load::{LoadOptions, LoadReport, closed_loop};

/// How many products the inventory batches spread over.
pub const PRODUCTS: usize = 50;

/// The `i`-th product of [`PRODUCTS`].
pub fn product(i: usize) -> String {
    format!("bench-product-{:02}", i % PRODUCTS)
}

/// Gives every product of [`PRODUCTS`] `quantity` in stock.
pub async fn stock_products(pool: &PgPool, quantity: i32) -> anyhow::Result<()> {
    let names: Vec<String> = (0..PRODUCTS).map(product).collect();
    sqlx::query(
        "INSERT INTO stock (product_name, quantity)
         SELECT name, $2 FROM UNNEST($1::text[]) AS s(name)",
    )
    .bind(&names)
    .bind(quantity)
    .execute(pool)
    .await?;
    Ok(())
}

/// The broker a run uses: `BENCH_KAFKA_BOOTSTRAP`, or a private one started for the run (so
/// the shared topics stay clean), stopped when this is dropped.
pub struct Broker {
    _private: Option<Tansu>,
    pub bootstrap: String,
}

impl Broker {
    pub async fn for_run() -> Self {
        match std::env::var("BENCH_KAFKA_BOOTSTRAP") {
            Ok(bootstrap) if !bootstrap.is_empty() => Self {
                _private: None,
                bootstrap,
            },
            _ => {
                let broker = Tansu::start().await;
                Self {
                    bootstrap: broker.bootstrap(),
                    _private: Some(broker),
                }
            }
        }
    }
}

/// A producer as the functions build it, with a delivery timeout no benchmark reaches.
pub async fn publisher(bootstrap: &str) -> anyhow::Result<KafkaPublisher> {
    testkit::kafka::try_publisher(bootstrap, Duration::from_secs(30)).await
}

/// Inserts `size` PLACED orders spread over the products and returns their `order.placed`
/// batch as the MSK event Lambda would deliver. With `traced`, each record belongs to a trace
/// of its own (the `traceparent` header and attribute), as the order API writes them.
pub async fn placed_batch(pool: &PgPool, size: usize, traced: bool) -> anyhow::Result<KafkaEvent> {
    let events: Vec<OrderEvent> = (0..size)
        .map(|i| {
            let event = OrderEvent::placed(testkit::orders::order_data(
                &format!("Customer {i}"),
                Some(&format!("customer{i}@example.com")),
                &product(i),
                1,
            ));
            if traced {
                event.in_trace(TraceContext::new_root())
            } else {
                event
            }
        })
        .collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.data.order_id).collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e.data.customer_name.as_str())
        .collect();
    let emails: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.data.customer_email.as_ref().map(EmailAddress::as_str))
        .collect();
    let products: Vec<&str> = events
        .iter()
        .map(|e| e.data.product_name.as_str())
        .collect();
    sqlx::query(
        "INSERT INTO orders (id, customer_name, customer_email, product_name, quantity, status)
         SELECT id, name, email, product, 1, 'PLACED'
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[]) AS o(id, name, email, product)",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&emails)
    .bind(&products)
    .execute(pool)
    .await?;
    // Each product keeps to one partition, offsets grow per partition.
    let mut offsets = [0_i64; 3];
    let records: Vec<BrokerRecord> = events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let partition = (i % PRODUCTS) % 3;
            offsets[partition] += 1;
            testkit::msk::record(event, partition as i32, offsets[partition])
        })
        .collect();
    Ok(kafka_event(
        "arn:aws:kafka:us-east-1:123456789012:cluster/bench/1",
        "127.0.0.1:9092",
        records,
    ))
}

/// `template.yaml`, whose routes and authorizers the local gateway serves.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

/// The local API Gateway the runtime serves the order API behind: the routes and
/// authorizers of `template.yaml`, the JWT ones validated against `jwt` (a pool of the
/// run's own), or else against the local Cognito user pool of `scripts/services up` (the
/// `LOCAL_JWT_*` variables or `.state/cognito.env`), as `local-runtime` does.
pub fn gateway(jwt: Option<JwtSettings>) -> anyhow::Result<Gateway> {
    match jwt {
        Some(settings) => Gateway::new(DeclaredApi::read(&template_path())?, Some(settings)),
        None => Gateway::from_template(&template_path()),
    }
}

/// The JWT settings of a Cognito user pool on the emulator, as the gateway checks its tokens.
pub fn jwt_settings(pool: &testkit::cognito::Pool) -> JwtSettings {
    JwtSettings {
        issuer: pool.issuer(),
        audience: vec![pool.client_id.clone()],
        jwks_url: pool.jwks_url(),
    }
}

/// `count` loopback addresses other than 127.0.0.1 (127.0.0.2, 127.0.0.3, ...), which Linux
/// routes to the loopback interface without any set-up: a load generator binds its
/// connections to them to come from several clients, as the API's per-address counters see
/// clients.
pub fn loopback_sources(count: usize) -> Vec<IpAddr> {
    (0..count.clamp(1, 250))
        .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + n as u8)))
        .collect()
}

/// Who the load's orders come from and where they go.
#[derive(Debug, Clone)]
pub struct OrderLoad {
    /// `/api/orders` (guests) or `/api/me/orders` (customers).
    pub path: &'static str,
    /// The local addresses the clients connect from, client `n` from `sources[n % len]`;
    /// empty: the system's choice (127.0.0.1).
    pub sources: Vec<IpAddr>,
    /// Bearer tokens, client `n` sending `bearers[n % len]`; empty: none (a guest).
    pub bearers: Vec<String>,
    /// Every request carries a `traceparent` of a new trace, as a traced caller sends it.
    pub traced: bool,
}

impl OrderLoad {
    /// Guests placing orders from 127.0.0.1.
    pub fn guests() -> Self {
        Self {
            path: "/api/orders",
            sources: Vec::new(),
            bearers: Vec::new(),
            traced: false,
        }
    }

    /// Signed-in customers, client `n` with token `bearers[n % len]`.
    pub fn customers(bearers: Vec<String>) -> Self {
        Self {
            path: "/api/me/orders",
            bearers,
            ..Self::guests()
        }
    }

    pub fn from_sources(self, sources: Vec<IpAddr>) -> Self {
        Self { sources, ..self }
    }

    pub fn traced(self, traced: bool) -> Self {
        Self { traced, ..self }
    }
}

/// Serves `app` behind `gateway` on a free local port (with the peer address, which the
/// gateway makes the request context's `http.sourceIp`) and drives `POST` orders over HTTP
/// with closed-loop clients, each body made by `body(client, sequence)`. Only 201 counts as
/// success.
pub async fn load_orders(
    app: axum::Router,
    gateway: &Gateway,
    options: LoadOptions,
    body: fn(usize, u64) -> serde_json::Value,
    load: OrderLoad,
) -> anyhow::Result<LoadReport> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{}", listener.local_addr()?, load.path);
    let served = gateway
        .wrap(app)
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, served).await {
            eprintln!("the server failed: {err}");
        }
    });
    let sources: Vec<Option<IpAddr>> = if load.sources.is_empty() {
        vec![None]
    } else {
        load.sources.iter().copied().map(Some).collect()
    };
    let per_source = options.clients.div_ceil(sources.len()).max(1);
    let clients = sources
        .into_iter()
        .map(|source| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(per_source)
                .timeout(Duration::from_secs(30))
                .local_address(source)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bearers = load.bearers;
    let traced = load.traced;
    let report = closed_loop(options, move |client_no, sequence| {
        let mut request = clients[client_no % clients.len()]
            .post(&url)
            .header("content-type", "application/json")
            .body(body(client_no, sequence).to_string());
        if !bearers.is_empty() {
            request = request.bearer_auth(&bearers[client_no % bearers.len()]);
        }
        if traced {
            request = request.header(TRACEPARENT, TraceContext::new_root().to_string());
        }
        async move {
            matches!(request.send().await, Ok(response) if response.status() == reqwest::StatusCode::CREATED)
        }
    })
    .await;
    server.abort();
    Ok(report)
}
