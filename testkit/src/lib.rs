//! Test helpers that drive real services, and break them on purpose.
//!
//! - [`kafka`]: read back what a test published, from the shared broker or a private one.
//! - [`tansu`]: a private Kafka-compatible broker per test, which a test may stop and restart.
//! - [`proxy`]: a TCP proxy to put between code and a service, to cut the connection.
//! - [`maildev`]: the mail sink's REST API, and private sinks a test may stop.
//!
//! Defaults match `scripts/env.sh`, so tests run after `scripts/services up` without setup.

pub mod kafka;
pub mod maildev;
pub mod proxy;
pub mod tansu;

use std::sync::Once;

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

/// A port that was free a moment ago, for a private service.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the loopback interface has free ports")
}

/// Waits until something accepts TCP connections on `port`, or panics with `what` after `timeout`.
pub async fn wait_for_port(port: u16, what: &str, timeout: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port} within {timeout:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
