//! `local-runtime`: the whole system in one process (docs/architecture.md, "Local runs").
//! `local-runtime provision` only migrates the database and creates the topics;
//! `local-runtime token <email> [--password <password>] [--access]` prints a customer's token
//! from the local Cognito user pool (see `gateway::signin`).

use std::process::ExitCode;

use local_runtime::system::{self, LocalConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    lambda_runtime::tracing::init_default_subscriber();
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        // Only db-migrate's work (migrations and topics), then exit.
        Some("provision") => system::provision().await,
        // A demo customer's token from the local Cognito user pool, for curl.
        Some("token") => local_runtime::gateway::signin::print_token(&args[1..]).await,
        Some(other) => Err(anyhow::anyhow!(
            "unknown command {other:?}; run without arguments, with `provision`, or with \
             `token <email>` (the on-failure queue redrive is `operator redrive`)"
        )),
        None => match LocalConfig::from_env() {
            Ok(config) => system::run(config, shutdown).await,
            Err(err) => Err(err.into()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("local-runtime: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM: stop polling, finish the batches in flight, commit, exit.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
