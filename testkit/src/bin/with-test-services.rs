//! Runs a command (the test suite) against a Kafka broker and a mail sink of its own, so that
//! tests never publish to the broker or mail the sink that `scripts/run` uses: a developer's
//! running system does not replay test events, and tests do not see its traffic.
//!
//! ```sh
//! cargo run -p testkit --bin with-test-services -- cargo nextest run --workspace
//! cargo run -p testkit --bin with-test-services -- --system [--set NAME=VALUE]... -- COMMAND...
//! ```
//!
//! The broker keeps its data in memory, with the system's topics created by db-migrate's
//! provisioning; the sink keeps its mails in a temporary folder ([`testkit::system`] starts
//! them, and the system below, for this binary and for `fuzz-api`). The command gets
//! `KAFKA_BOOTSTRAP_SERVERS`, `SMTP_PORT` and `MAILDEV_API_URL` naming them. PostgreSQL is
//! shared: every database test gets its own database.
//!
//! With `--system`, the whole system runs too: the `local-runtime` binary (built first) on a
//! migrated scratch database of the `DATABASE_URL` server, with `--set` settings on
//! top of the test harness's ([`testkit::runtime::RuntimeSpec`]). The command then also gets
//! `DATABASE_URL` (the scratch database), `SYSTEM_URL` (the runtime's API),
//! `SYSTEM_LOG` (its log) and `LOCAL_RUNTIME_BIN` (the binary).
//!
//! Everything started here is stopped, and the scratch database dropped, when the command
//! ends, also when this process gets SIGINT or SIGTERM. The exit status is the command's.

use std::process::ExitCode;

use anyhow::Context;
use testkit::system::{TestServices, TestSystem, exit_code, run_to_end};
use tokio::process::Command;

/// What the command line asks for.
struct Options {
    /// Settings for the runtime, when it runs (`--system`).
    system: Option<Vec<(String, String)>>,
    command: Vec<String>,
}

fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    let mut args = args.peekable();
    let mut system = None;
    while let Some(arg) = args.next_if(|arg| arg.starts_with("--")) {
        match arg.as_str() {
            "--" => break,
            "--system" => system = Some(Vec::new()),
            "--set" => {
                let setting = args.next().context("--set needs NAME=VALUE")?;
                let (name, value) = setting
                    .split_once('=')
                    .with_context(|| format!("--set {setting}: not NAME=VALUE"))?;
                system
                    .as_mut()
                    .context("--set goes after --system")?
                    .push((name.to_owned(), value.to_owned()));
            }
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    let command: Vec<String> = args.collect();
    anyhow::ensure!(!command.is_empty(), "no command to run");
    Ok(Options { system, command })
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(err) => {
            eprintln!(
                "with-test-services: {err:#}\nusage: with-test-services [--system [--set NAME=VALUE]...] [--] COMMAND [ARGS...]"
            );
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("with-test-services: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let services = TestServices::start().await;
    let mut command = Command::new(&options.command[0]);
    command.args(&options.command[1..]);
    let Some(settings) = options.system else {
        command.envs(services.env());
        return Ok(exit_code(run_to_end(&mut command).await?));
    };
    let system = TestSystem::start(services, &settings).await?;
    command.envs(system.env());
    let outcome = run_to_end(&mut command).await;
    if let Err(err) = system.stop().await {
        eprintln!("with-test-services: {err:#}");
    }
    Ok(exit_code(outcome?))
}
