//! Test helpers that drive real services, and break them on purpose.
//!
//! - [`api_gateway`]: the request context API Gateway hands the order API, for in-process
//!   calls as a guest, a customer or an operator.
//! - [`emf`]: checks log lines against the CloudWatch Embedded Metric Format specification.
//! - [`kafka`]: read back what a test published, from the shared broker or a private one.
//! - [`tansu`]: a private Kafka-compatible broker per test, which a test may stop and restart.
//! - [`proxy`]: a TCP proxy to put between code and a service, to cut the connection.
//! - [`msk`]: fake MSK deliveries of our events, as Lambda's trigger builds them.
//! - [`orders`]: orders seeded as the API writes them, and the events emitted for them.
//! - [`maildev`]: the mail sink's REST API, and private sinks a test may stop.
//! - [`postgres`]: a private PostgreSQL cluster with password authentication and settings
//!   of the test's choosing.
//! - [`prometheus`]: a private Prometheus with the repository's rules, and its query API.
//! - [`secrets`]: the Secrets Manager emulator.
//! - [`stripe`]: localstripe, the local stand-in for Stripe's API, and private instances.
//! - [`process`]: the one child-process type every service above runs as.
//! - [`scratch`]: a throwaway, migrated database next to the configured one.
//! - [`runtime`]: the `local-runtime` binary as a child process, as a user runs it.
//! - [`system`]: private services for a command, and the whole system on them
//!   (`with-test-services`, `fuzz-api`).
//! - [`fuzz_api`]: the order API under schemathesis, against the whole system.
//! - [`local_services`]: the shared local services of `scripts/services` and `scripts/run`,
//!   started as daemons that outlive the command, checked, provisioned and stopped.
//! - [`lambda_api`]: a stand-in for the Lambda Runtime and Extensions APIs, to run a
//!   function's real binary as Lambda does, one invocation at a time or many at once.
//! - [`eventually`]: the one way tests wait, always with a deadline.
//! - [`MIGRATOR`]: the schema every `#[sqlx::test]` database gets
//!   (`#[sqlx::test(migrator = "testkit::MIGRATOR")]`).
//!
//! Defaults match `scripts/env.sh`, so tests run after `scripts/services up` without setup.

pub mod api_gateway;
pub mod cognito;
pub mod emf;
pub mod fuzz_api;
pub mod kafka;
pub mod lambda_api;
pub mod local_services;
pub mod maildev;
pub mod msk;
pub mod orders;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod runtime;
pub mod scratch;
pub mod secrets;
pub mod stripe;
pub mod system;
pub mod tansu;

use std::future::Future;
use std::sync::Once;
use std::time::Duration;

/// The migrations the functions embed, for `#[sqlx::test(migrator = "testkit::MIGRATOR")]`.
pub use shared::db::MIGRATOR;

/// An environment variable, or the local default that `scripts/env.sh` also uses.
pub fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Logs to the test output only when `TEST_LOG` is set, so passing runs stay quiet.
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_test_writer()
                .try_init();
        }
    });
}

/// The last `count` lines of the file at `path`, for a failure message; empty when the file
/// is empty or cannot be read.
pub fn last_lines(path: &std::path::Path, count: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// A port that was free a moment ago, for a private service.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the loopback interface has free ports")
}

/// Waits until something accepts TCP connections on `port`, or panics with `what` after `timeout`.
pub async fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    eventually(what, timeout, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|err| format!("127.0.0.1:{port}: {err}"))
    })
    .await;
}

/// The one way tests wait: polls `probe` (quickly at first, then every 200 ms) until it
/// returns `Ok`, and returns that value. Past `timeout` it panics, naming `what` and the
/// last `Err` the probe returned, so a failing test says what it saw.
pub async fn eventually<T, E, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match poll_until(timeout, probe).await {
        Ok(value) => value,
        Err(last) => panic!("{what}: not within {timeout:?}; last seen: {last:?}"),
    }
}

/// As [`eventually`], but gives the last `Err` back instead of panicking, for waits whose
/// caller reports what it has (a reader that returns the records that did arrive).
pub async fn poll_until<T, E, F, Fut>(timeout: Duration, mut probe: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        let last = match probe().await {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(last);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
