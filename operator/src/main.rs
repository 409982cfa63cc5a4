//! `operator redrive --queue-url <url> --function <name>`: redrives an on-failure queue
//! (see the library's documentation for what else recovery means here).

use std::process::ExitCode;

use anyhow::Context;
use operator::redrive;
use shared::config::{KafkaSettings, Secrets};

const USAGE: &str = "usage: operator redrive --queue-url <url> --function <name>";

#[tokio::main]
async fn main() -> ExitCode {
    lambda_runtime::tracing::init_default_subscriber();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("redrive") => match redrive_args(&args[1..]) {
            Ok((queue_url, function)) => run_redrive(queue_url, function).await,
            Err(err) => Err(err),
        },
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}; {USAGE}")),
        None => Err(anyhow::anyhow!("no command; {USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("operator: {err:#}");
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
            .ok_or_else(|| anyhow::anyhow!("redrive needs {flag} <value>; {USAGE}"))
    };
    Ok((value("--queue-url")?, value("--function")?))
}

/// Hands every batch described in an on-failure queue to the named consumer function, run in
/// this process with its own settings, and fails if any message had to stay in the queue.
async fn run_redrive(queue_url: &str, function: &str) -> anyhow::Result<()> {
    let secrets = Secrets::new();
    let function = operator::consumer(function, &secrets).await?;
    let sqs = aws_sdk_sqs::Client::new(
        &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
    );
    let report = redrive::run(
        &sqs,
        queue_url,
        &KafkaSettings::from_env()?,
        &secrets,
        function.as_ref(),
    )
    .await
    .with_context(|| format!("could not redrive {queue_url}"))?;
    println!(
        "redriven: {} batches ({} records) handed to {}",
        report.redriven,
        report.records,
        function.name()
    );
    for (message, reason) in &report.failed {
        println!("left in the queue: message {message}: {reason}");
    }
    anyhow::ensure!(
        report.failed.is_empty(),
        "{} messages stay in the queue; they are visible again after {} s",
        report.failed.len(),
        redrive::VISIBILITY_TIMEOUT_SECS
    );
    Ok(())
}
