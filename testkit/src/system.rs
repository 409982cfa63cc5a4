//! Private services for a command, and the whole system on top of them: what
//! `with-test-services` (optionally with `--system`) and `fuzz-api` start, so that neither
//! publishes to the broker, mails the sink or writes the database that `scripts/run` uses.
//!
//! [`TestServices`] is a Kafka broker (tansu, data in memory, the system's topics created by
//! db-migrate's provisioning) and a mail sink (maildev, mails in a temporary folder), both
//! private. [`TestSystem`] adds the `local-runtime` binary on a migrated scratch database of
//! the `DATABASE_URL` server. Each names itself to a child command through [`TestServices::env`]
//! and [`TestSystem::env`], and [`run_to_end`] runs that command so that everything can be
//! stopped afterwards, also when the caller gets SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus};

use anyhow::Context;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

use crate::maildev::Maildev;
use crate::runtime::{LocalRuntime, RuntimeSpec};
use crate::scratch::ScratchDatabase;
use crate::tansu::Tansu;

/// A private broker and mail sink; both are stopped on drop.
pub struct TestServices {
    pub broker: Tansu,
    pub mail: Maildev,
}

impl TestServices {
    /// Starts both, and says on stdout where they are.
    pub async fn start() -> Self {
        let broker = Tansu::start_in_memory().await;
        let mail = Maildev::spawn().await;
        println!(
            "test services: Kafka {}, SMTP 127.0.0.1:{}, mail API {}",
            broker.bootstrap(),
            mail.smtp_port(),
            mail.api_url()
        );
        Self { broker, mail }
    }

    /// `KAFKA_BOOTSTRAP_SERVERS`, `SMTP_PORT` and `MAILDEV_API_URL`, naming them.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KAFKA_BOOTSTRAP_SERVERS", self.broker.bootstrap()),
            ("SMTP_PORT", self.mail.smtp_port().to_string()),
            ("MAILDEV_API_URL", self.mail.api_url().to_owned()),
        ]
    }
}

/// The whole system on private services: the runtime on a scratch database. Stop it with
/// [`TestSystem::stop`], which also drops the database (a drop only kills the runtime).
pub struct TestSystem {
    pub services: TestServices,
    pub scratch: ScratchDatabase,
    pub runtime: LocalRuntime,
    /// The `local-runtime` binary that runs (for its other subcommands, such as `token`).
    pub binary: PathBuf,
}

impl TestSystem {
    /// Builds the runtime if needed and starts it on a new scratch database of the
    /// `DATABASE_URL` server and on `services`, with `settings` on top of the test
    /// harness's ([`RuntimeSpec`]); says on stdout where it is. On failure, nothing is left
    /// behind (the scratch database is dropped).
    pub async fn start(
        services: TestServices,
        settings: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let binary = runtime_binary().await?;
        let url = std::env::var("DATABASE_URL").context("DATABASE_URL is not set")?;
        let scratch = ScratchDatabase::create(&url, "test_system").await?;
        let spec = RuntimeSpec::new(
            &binary,
            &scratch.url,
            &services.broker.bootstrap(),
            services.mail.smtp_port(),
        );
        let spec = settings
            .iter()
            .fold(spec, |spec, (name, value)| spec.with(name, value.as_str()));
        let runtime = match LocalRuntime::try_start(spec).await {
            Ok(runtime) => runtime,
            Err(err) => {
                if let Err(drop_err) = scratch.drop_database().await {
                    eprintln!("{drop_err:#}");
                }
                return Err(err);
            }
        };
        println!(
            "system: {} on database {} (log: {})",
            runtime.base_url(),
            scratch.options().get_database().unwrap_or_default(),
            runtime.log_path().display()
        );
        Ok(Self {
            services,
            scratch,
            runtime,
            binary,
        })
    }

    /// The services' variables, and `DATABASE_URL` (the scratch database), `SYSTEM_URL`
    /// (the runtime's API), `SYSTEM_LOG` (its log) and `LOCAL_RUNTIME_BIN` (the binary).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.services.env();
        env.extend([
            ("DATABASE_URL", self.scratch.url.clone()),
            ("SYSTEM_URL", self.runtime.base_url()),
            ("SYSTEM_LOG", self.runtime.log_path().display().to_string()),
            ("LOCAL_RUNTIME_BIN", self.binary.display().to_string()),
        ]);
        env
    }

    /// Stops the runtime cleanly, drops the scratch database and stops the services; tries
    /// every step, and returns the first failure.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let stopped = self.runtime.try_terminate().await.map(drop);
        let dropped = self.scratch.drop_database().await;
        stopped.and(dropped)
    }
}

/// Runs `command` to its end and returns its exit status. On SIGINT (which a terminal sends
/// the command too) it waits for the command; on SIGTERM it passes it on first.
pub async fn run_to_end(command: &mut Command) -> anyhow::Result<ExitStatus> {
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
    Ok(status)
}

/// A child's exit status as this process's: its code, or failure when a signal ended it.
pub fn exit_code(status: ExitStatus) -> ExitCode {
    match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

/// The debug `local-runtime` binary beside the running one, built now if needed (it shares
/// its artifacts with the tests and `scripts/run`).
pub async fn runtime_binary() -> anyhow::Result<PathBuf> {
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
