//! A whole system for one test: a fresh database, a private broker and mail sink, and the
//! `local-runtime` binary started as a user starts it, which the test may kill and restart.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use testkit::maildev::Maildev;
use testkit::tansu::Tansu;
use tokio::process::{Child, Command};

/// Where mails for orders without `customerEmail` go in these tests.
pub const FALLBACK_RECIPIENT: &str = "order-desk@example.com";

/// The URL of a `#[sqlx::test]` database, for a child process to connect to.
pub fn database_url(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}:postgres@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options
            .get_database()
            .expect("sqlx::test names the database"),
    )
}

pub struct System {
    pub database_url: String,
    pub pool: PgPool,
    pub broker: Tansu,
    pub mail: Maildev,
    pub api_port: u16,
    runtime: Option<Child>,
    client: reqwest::Client,
}

impl System {
    /// Starts the services and the runtime on the test's own database, with a broker that
    /// keeps its data across restarts.
    pub async fn start(pool: PgPool, options: &PgConnectOptions) -> Self {
        Self::start_with(pool, options, Tansu::start().await).await
    }

    /// As [`System::start`], with a broker whose network path the test can cut.
    pub async fn start_with_cuttable_broker(pool: PgPool, options: &PgConnectOptions) -> Self {
        Self::start_with(pool, options, Tansu::start_behind_proxy().await).await
    }

    async fn start_with(pool: PgPool, options: &PgConnectOptions, broker: Tansu) -> Self {
        testkit::init_tracing();
        let mut system = Self {
            database_url: database_url(options),
            pool,
            broker,
            mail: Maildev::spawn().await,
            api_port: testkit::free_port(),
            runtime: None,
            client: reqwest::Client::new(),
        };
        system.start_runtime().await;
        system
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    /// Starts the runtime and waits until its API answers.
    pub async fn start_runtime(&mut self) {
        let log_dir = std::env::temp_dir().join("local-runtime-tests");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("runtime-{}.log", self.api_port)))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_local-runtime"))
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .env("DATABASE_URL", &self.database_url)
            .env("KAFKA_BOOTSTRAP_SERVERS", self.broker.bootstrap())
            .env("KAFKA_DELIVERY_TIMEOUT_MS", "1500")
            .env("SMTP_HOST", "127.0.0.1")
            .env("SMTP_PORT", self.mail.smtp_port().to_string())
            .env("SMTP_TLS", "none")
            .env("MAIL_FROM", "orders@example.com")
            .env("NOTIFY_FALLBACK_TO", FALLBACK_RECIPIENT)
            .env("ORDER_API_ADDR", format!("127.0.0.1:{}", self.api_port))
            // Tests cannot wait a minute for the relay: run it often, for rows older than 1 s.
            .env("LOCAL_RELAY_INTERVAL_SECS", "1")
            .env("RELAY_MIN_AGE_SECS", "1")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the local-runtime binary starts");
        self.runtime = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let health = self.client.get(self.url("/api/health")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the local runtime did not become healthy; see {}",
                log_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no shutdown hooks, nothing flushed or committed.
    pub async fn kill_runtime(&mut self) {
        if let Some(mut child) = self.runtime.take() {
            child.kill().await.unwrap();
        }
    }

    /// SIGTERM, then waits for a clean exit and returns its status code.
    pub async fn terminate_runtime(&mut self) -> Option<i32> {
        let mut child = self.runtime.take()?;
        let pid = Pid::from_raw(child.id().expect("running") as i32);
        kill(pid, Signal::SIGTERM).expect("the runtime can be signalled");
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the runtime exits within 30 s of SIGTERM")
            .unwrap()
            .code()
    }

    pub async fn set_stock(&self, product: &str, quantity: i32) {
        let response = self
            .client
            .put(self.url(&format!("/api/stock/{product}")))
            .json(&json!({ "quantity": quantity }))
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

    pub async fn order(&self, id: &str) -> Value {
        self.client
            .get(self.url(&format!("/api/orders/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until every order left `PLACED`; returns their final states.
    pub async fn wait_until_decided(&self, ids: &[String], timeout: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let placed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM orders WHERE id::text = ANY($1) AND status = 'PLACED'",
            )
            .bind(ids)
            .fetch_one(&self.pool)
            .await
            .unwrap();
            if placed == 0 || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut orders = Vec::with_capacity(ids.len());
        for id in ids {
            orders.push(self.order(id).await);
        }
        orders
    }

    pub async fn stock(&self, product: &str) -> i64 {
        sqlx::query_scalar("SELECT quantity::bigint FROM stock WHERE product_name = $1")
            .bind(product)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}
