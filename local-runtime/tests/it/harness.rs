//! A whole system for one test: a fresh database, a private broker and mail sink, and the
//! `local-runtime` binary started as a user starts it, which the test may kill and restart.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::maildev::Maildev;
use testkit::postgres::{Cluster, SUPERUSER_PASSWORD};
use testkit::runtime::{LocalRuntime, RuntimeSpec};
use testkit::stripe::LocalStripe;
use testkit::tansu::Tansu;

pub use testkit::postgres::url_of as database_url;
pub use testkit::runtime::FALLBACK_RECIPIENT;

/// A pool on the test's own database, as the tests hand it to [`System`].
pub async fn connect(options: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .connect_with(options.clone())
        .await
        .unwrap()
}

/// Creates the `orders` database on a private `cluster`; its URL, as the superuser. The one
/// connection that creates it is closed again, so that it counts against no limit.
pub async fn create_orders_database(cluster: &Cluster) -> String {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&cluster.superuser_url())
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE orders")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    cluster.url("postgres", SUPERUSER_PASSWORD, "orders")
}

pub struct System {
    pub pool: PgPool,
    pub broker: Tansu,
    pub mail: Maildev,
    pub runtime: LocalRuntime,
    /// A private localstripe, for the tests that pay; the others use the shared one.
    pub stripe: Option<LocalStripe>,
    client: reqwest::Client,
}

impl System {
    /// Starts the services and the runtime on the test's own database, with a broker that
    /// keeps its data across restarts.
    pub async fn start(pool: PgPool, options: &PgConnectOptions) -> Self {
        Self::start_with(pool, &database_url(options), Tansu::start().await, None).await
    }

    /// As [`System::start`], with a private localstripe the test can read back.
    pub async fn start_paying(pool: PgPool, options: &PgConnectOptions) -> Self {
        let stripe = LocalStripe::spawn().await;
        Self::start_with(
            pool,
            &database_url(options),
            Tansu::start().await,
            Some(stripe),
        )
        .await
    }

    /// As [`System::start`], with the runtime logging JSON lines as Lambda's JSON log format
    /// does (`AWS_LAMBDA_LOG_FORMAT=JSON`), for tests that read its log.
    pub async fn start_with_json_logs(pool: PgPool, options: &PgConnectOptions) -> Self {
        Self::start_with_env(
            pool,
            &database_url(options),
            Tansu::start().await,
            None,
            &[("AWS_LAMBDA_LOG_FORMAT", "JSON")],
        )
        .await
    }

    /// As [`System::start`], with more settings for the runtime (they win over the harness's).
    pub async fn start_with_settings(
        pool: PgPool,
        options: &PgConnectOptions,
        settings: &[(&str, &str)],
    ) -> Self {
        Self::start_with_env(
            pool,
            &database_url(options),
            Tansu::start().await,
            None,
            settings,
        )
        .await
    }

    /// As [`System::start`], on the database at `url` (a private cluster of the test's own).
    pub async fn start_on(pool: PgPool, url: &str) -> Self {
        Self::start_with(pool, url, Tansu::start().await, None).await
    }

    /// As [`System::start`], with a broker whose network path the test can cut.
    pub async fn start_with_cuttable_broker(pool: PgPool, options: &PgConnectOptions) -> Self {
        Self::start_with(
            pool,
            &database_url(options),
            Tansu::start_behind_proxy().await,
            None,
        )
        .await
    }

    async fn start_with(
        pool: PgPool,
        database_url: &str,
        broker: Tansu,
        stripe: Option<LocalStripe>,
    ) -> Self {
        Self::start_with_env(pool, database_url, broker, stripe, &[]).await
    }

    async fn start_with_env(
        pool: PgPool,
        database_url: &str,
        broker: Tansu,
        stripe: Option<LocalStripe>,
        env: &[(&str, &str)],
    ) -> Self {
        testkit::init_tracing();
        let mail = Maildev::spawn().await;
        let spec = RuntimeSpec::new(
            env!("CARGO_BIN_EXE_local-runtime").as_ref(),
            database_url,
            &broker.bootstrap(),
            mail.smtp_port(),
        )
        .with("KAFKA_DELIVERY_TIMEOUT_MS", "1500")
        // Tests cannot wait a minute for the relay: run it often, for rows older than 1 s.
        .with("LOCAL_RELAY_INTERVAL_SECS", "1")
        .with("RELAY_MIN_AGE_SECS", "1")
        .with("RUST_LOG", "info");
        let spec = match &stripe {
            Some(stripe) => spec.with("STRIPE_API_BASE", stripe.base_url()),
            None => spec,
        };
        let spec = env
            .iter()
            .fold(spec, |spec, (name, value)| spec.with(name, *value));
        Self {
            pool,
            broker,
            mail,
            runtime: LocalRuntime::start(spec).await,
            stripe,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.runtime.base_url())
    }

    pub async fn set_stock(&self, product: &str, quantity: i32) {
        self.set_stock_with(product, json!({ "quantity": quantity }))
            .await;
    }

    /// `PUT /api/admin/stock/{product}` with `body`.
    pub async fn set_stock_with(&self, product: &str, body: Value) {
        let response = self
            .client
            .put(self.url(&format!("/api/admin/stock/{product}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    /// Places an order; returns the HTTP status and the order id when there is one.
    pub async fn place(&self, body: Value) -> (u16, Option<String>) {
        let response = self
            .client
            .post(self.url("/api/orders"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        (status, body["orderId"].as_str().map(str::to_owned))
    }

    /// `POST /api/admin/orders/{id}/cancel`: the status and the body.
    pub async fn cancel(&self, id: &str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(&format!("/api/admin/orders/{id}/cancel")))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    pub async fn order(&self, id: &str) -> Value {
        self.client
            .get(self.url(&format!("/api/admin/orders/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until every order left `PLACED`; returns their final states.
    pub async fn wait_until_decided(&self, ids: &[String], timeout: Duration) -> Vec<Value> {
        // Gives up quietly: the caller's assertions on the states say what went wrong.
        let _ = testkit::poll_until(timeout, || async {
            let placed = sqlx::query_scalar!(
                r#"SELECT count(*) AS "count!" FROM orders
                   WHERE id::text = ANY($1) AND status = 'PLACED'"#,
                ids,
            )
            .fetch_one(&self.pool)
            .await
            .unwrap();
            if placed == 0 { Ok(()) } else { Err(placed) }
        })
        .await;
        let mut orders = Vec::with_capacity(ids.len());
        for id in ids {
            orders.push(self.order(id).await);
        }
        orders
    }

    pub async fn stock(&self, product: &str) -> i64 {
        let level = testkit::orders::stock_level(&self.pool, product).await;
        i64::from(level.expect("the product has stock"))
    }
}
