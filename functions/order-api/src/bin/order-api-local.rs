//! The order API on a plain local listener (127.0.0.1:3000, or `ORDER_API_ADDR`): applies the
//! migrations, then serves the same router as the Lambda function.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use order_api::{AppState, OrderApiConfig, app};
use shared::config::ConfigError;

const DEFAULT_ADDR: &str = "127.0.0.1:3000";

#[tokio::main]
async fn main() -> ExitCode {
    lambda_http::tracing::init_default_subscriber();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("order-api-local: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = OrderApiConfig::from_env()?;
    let addr = listen_addr()?;
    let state = AppState::from_config(&config).await?;
    shared::db::MIGRATOR
        .run(state.pool())
        .await
        .context("could not apply the database migrations")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr}"))?;
    tracing::info!(%addr, "order API listening");
    axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(shutdown())
        .await
        .context("the server failed")?;
    state.publisher().flush(Duration::from_secs(5));
    Ok(())
}

fn listen_addr() -> Result<SocketAddr, ConfigError> {
    let raw = std::env::var("ORDER_API_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
    raw.parse().map_err(|_| {
        ConfigError::new(
            "ORDER_API_ADDR",
            format!("{raw:?} is not an address such as {DEFAULT_ADDR}"),
        )
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
