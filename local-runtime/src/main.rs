//! `local-runtime`: the whole system in one process (docs/architecture.md, "Local runs").
//! `local-runtime provision` only migrates the database and creates the topics;
//! `local-runtime redrive --queue-url <url> --function <name>` redrives an on-failure queue;
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
        Some("redrive") => match redrive_args(&args[1..]) {
            Ok((queue_url, function)) => system::redrive(queue_url, function).await,
            Err(err) => Err(err),
        },
        Some(other) => Err(anyhow::anyhow!(
            "unknown command {other:?}; run without arguments, with `provision`, with \
             `redrive --queue-url <url> --function <name>`, or with `token <email>`"
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

/// `--queue-url <url> --function <name>`, in either order.
fn redrive_args(args: &[String]) -> anyhow::Result<(&str, &str)> {
    let value = |flag: &str| {
        args.iter()
            .position(|arg| arg == flag)
            .and_then(|at| args.get(at + 1))
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("redrive needs {flag} <value>"))
    };
    Ok((value("--queue-url")?, value("--function")?))
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
