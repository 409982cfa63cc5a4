//! `scripts/run`'s work once the services are up: Prometheus, the demo seed, and the local
//! runtime in the foreground.
//!
//! Why the seed waits: the runtime applies migrations/ itself at start-up, so the tables
//! exist only once it has started (after a possibly long first build). The seed runs as soon
//! as the runtime answers on `RUNTIME_HEALTH_URL` and the `stock` table exists; it upserts,
//! so running it again just resets the demo products' levels.

use std::fmt::Display;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::{Connection as _, PgConnection};
use tokio::signal::unix::{SignalKind, signal};

use super::{Settings, port_open};
use crate::process::Service;

/// The command that runs the local runtime unless `RUNTIME_CMD` says otherwise. A debug
/// build shares its artifacts with `scripts/test`, so the first start after the tests is quick.
pub const DEFAULT_RUNTIME_CMD: &str = "cargo run -p local-runtime";

fn log(message: impl Display) {
    println!("[run] {message}");
}

/// `run [--seed|--no-seed]`: `--seed` only seeds (a runtime runs elsewhere); otherwise
/// Prometheus and the seed in the background, the runtime in the foreground, and the exit
/// status is the runtime's.
pub async fn main(settings: &Settings, args: &[String]) -> anyhow::Result<ExitCode> {
    let seed = match args.first().map(String::as_str) {
        Some("--seed") => {
            seed_when_ready(settings).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Some("--no-seed") => false,
        None => true,
        Some(other) => {
            anyhow::bail!("unknown option {other:?}; usage: scripts/run [--no-seed|--seed]")
        }
    };
    let mut prometheus = start_prometheus(settings).await?;
    // In this task rather than spawned: it stops when the runtime does, done or not.
    let seeding = async {
        if seed && let Err(err) = seed_when_ready(settings).await {
            eprintln!("[run] seed: {err:#}");
        }
        std::future::pending::<std::convert::Infallible>().await
    };
    let code = tokio::select! {
        code = run_runtime() => code,
        never = seeding => match never {},
    };
    if let Some(prometheus) = prometheus.as_mut() {
        let _ = prometheus.terminate(Duration::from_secs(10)).await;
    }
    code
}

/// Runs `RUNTIME_CMD` through bash (it may hold quotes or several words) in this process
/// group, so that Ctrl-C reaches it directly; this process outlives it to clean up.
async fn run_runtime() -> anyhow::Result<ExitCode> {
    let command = crate::env("RUNTIME_CMD", DEFAULT_RUNTIME_CMD);
    log(format!("starting: {command}"));
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut child = tokio::process::Command::new("bash")
        .args(["-c", &command])
        .spawn()
        .with_context(|| format!("cannot start {command}"))?;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("cannot wait for the runtime")?,
            // The terminal sends Ctrl-C to the runtime too: wait for it to finish.
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {
                if let Some(pid) = child.id() {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                }
            }
        }
    };
    let code = status
        .code()
        .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s))
        .unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Prometheus (the Debian package `scripts/services up` installs) on `PROMETHEUS_ADDR` with
/// prometheus/prometheus.yml, scraping the runtime's metrics, its data in .state/prometheus;
/// unless something already answers there. Stops with the runtime.
async fn start_prometheus(settings: &Settings) -> anyhow::Result<Option<Service>> {
    let addr = crate::env("PROMETHEUS_ADDR", "127.0.0.1:9090");
    let port: u16 = addr
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .with_context(|| format!("PROMETHEUS_ADDR={addr:?} is not host:port"))?;
    if port_open(port).await {
        log(format!(
            "prometheus: something already answers on {addr}; not starting another"
        ));
        return Ok(None);
    }
    let data = settings.state_dir.join("prometheus");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let log_path = settings.log_dir().join("prometheus.log");
    std::fs::create_dir_all(settings.log_dir())
        .with_context(|| format!("cannot create {}", settings.log_dir().display()))?;
    let config = settings.repo_root.join("prometheus/prometheus.yml");
    let mut prometheus = Service::new("prometheus", "prometheus", &log_path).args([
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", data.display()),
        format!("--web.listen-address={addr}"),
    ]);
    if prometheus.spawn().is_err() {
        log(
            "prometheus: not installed (scripts/services up installs it); metrics only on 127.0.0.1:9464",
        );
        return Ok(None);
    }
    log(format!(
        "prometheus: http://{addr} (log: {})",
        log_path.display()
    ));
    Ok(Some(prometheus))
}

/// Waits (without a time limit: the first build takes minutes) until the runtime is ready,
/// then loads seed/stock.sql.
async fn seed_when_ready(settings: &Settings) -> anyhow::Result<()> {
    let health = crate::env("RUNTIME_HEALTH_URL", "http://127.0.0.1:3000/api/health");
    let mut next_note = Instant::now() + Duration::from_secs(60);
    while !runtime_ready(settings, &health).await {
        if Instant::now() >= next_note {
            log(format!(
                "seed: still waiting for {health} and the stock table"
            ));
            next_note = Instant::now() + Duration::from_secs(60);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let mut db = PgConnection::connect(settings.database_url.as_str())
        .await
        .context("seed: cannot connect with DATABASE_URL")?;
    crate::orders::load_demo_stock(&mut db)
        .await
        .context("seed")?;
    log("seed: demo stock loaded from seed/stock.sql");
    Ok(())
}

async fn runtime_ready(settings: &Settings, health: &str) -> bool {
    let answered = reqwest::Client::new()
        .get(health)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success());
    if !answered {
        return false;
    }
    let Ok(mut db) = PgConnection::connect(settings.database_url.as_str()).await else {
        return false;
    };
    sqlx::query_scalar::<_, bool>("SELECT to_regclass('public.stock') IS NOT NULL")
        .fetch_one(&mut db)
        .await
        .unwrap_or(false)
}
