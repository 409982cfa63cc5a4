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
//! provisioning; the sink keeps its mails in a temporary folder. The command gets
//! `KAFKA_BOOTSTRAP_SERVERS`, `SMTP_PORT` and `MAILDEV_API_URL` naming them. PostgreSQL is
//! shared: every database test gets its own database.
//!
//! With `--system`, the whole system runs too: the `local-runtime` binary (built first) on a
//! migrated scratch database of the `DATABASE_URL` server, with `--set` settings on
//! top of the test harness's ([`testkit::runtime::RuntimeSpec`]). The command then also gets
//! `DATABASE_URL` (the scratch database), `SYSTEM_URL` (the runtime's API),
//! `SYSTEM_LOG` (its log) and `LOCAL_RUNTIME_BIN` (the binary). API fuzzing runs this way.
//!
//! Everything started here is stopped, and the scratch database dropped, when the command
//! ends, also when this process gets SIGINT or SIGTERM. The exit status is the command's.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use testkit::maildev::Maildev;
use testkit::runtime::{LocalRuntime, RuntimeSpec};
use testkit::scratch::ScratchDatabase;
use testkit::tansu::Tansu;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

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
    let broker = Tansu::start_in_memory().await;
    let mail = Maildev::spawn().await;
    println!(
        "test services: Kafka {}, SMTP 127.0.0.1:{}, mail API {}",
        broker.bootstrap(),
        mail.smtp_port(),
        mail.api_url()
    );
    let mut command = Command::new(&options.command[0]);
    command
        .args(&options.command[1..])
        .env("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap())
        .env("SMTP_PORT", mail.smtp_port().to_string())
        .env("MAILDEV_API_URL", mail.api_url());
    let Some(settings) = options.system else {
        return run_command(command).await;
    };
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL is not set")?;
    let scratch = ScratchDatabase::create(&url, "test_system").await?;
    let outcome = with_system(command, &scratch, &broker, &mail, &settings).await;
    if let Err(err) = scratch.drop_database().await {
        eprintln!("with-test-services: {err:#}");
    }
    outcome
}

/// Starts the runtime on `scratch`, runs the command against it, and stops it.
async fn with_system(
    mut command: Command,
    scratch: &ScratchDatabase,
    broker: &Tansu,
    mail: &Maildev,
    settings: &[(String, String)],
) -> anyhow::Result<ExitCode> {
    let binary = runtime_binary().await?;
    let spec = RuntimeSpec::new(&binary, &scratch.url, &broker.bootstrap(), mail.smtp_port());
    let spec = settings
        .iter()
        .fold(spec, |spec, (name, value)| spec.with(name, value.as_str()));
    let mut runtime = LocalRuntime::try_start(spec).await?;
    println!(
        "system: {} on database {} (log: {})",
        runtime.base_url(),
        scratch.options().get_database().unwrap_or_default(),
        runtime.log_path().display()
    );
    command
        .env("DATABASE_URL", &scratch.url)
        .env("SYSTEM_URL", runtime.base_url())
        .env("SYSTEM_LOG", runtime.log_path())
        .env("LOCAL_RUNTIME_BIN", &binary);
    let outcome = run_command(command).await;
    if let Err(err) = runtime.try_terminate().await {
        eprintln!("with-test-services: {err:#}");
    }
    outcome
}

/// Runs the command to its end and returns its exit status. On SIGINT (which a terminal
/// sends the command too) it waits for the command; on SIGTERM it passes it on first.
async fn run_command(mut command: Command) -> anyhow::Result<ExitCode> {
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {:?}", command.as_std().get_program()))?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let status = tokio::select! {
        status = child.wait() => status?,
        _ = interrupt.recv() => child.wait().await?,
        _ = terminate.recv() => {
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            child.wait().await?
        }
    };
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// The debug `local-runtime` binary beside this one, built now if needed (it shares its
/// artifacts with the tests and `scripts/run`).
async fn runtime_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "local-runtime",
            "--bin",
            "local-runtime",
        ])
        .status()
        .await
        .context("cannot run cargo build")?;
    anyhow::ensure!(status.success(), "building local-runtime failed");
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name("local-runtime"))
}
