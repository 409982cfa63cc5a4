//! End-to-end latency and sustained throughput of the whole local pipeline: the real
//! `local-runtime` binary (order API, MSK trigger emulators, outbox relay) as a child process,
//! on a scratch database, a private broker and a private maildev, driven over HTTP.
//!
//! ```text
//! cargo run --release -p bench --bin pipeline
//! ```
//!
//! 1. **Latency.** `BENCH_ORDERS` orders at a steady `BENCH_RATE`; for each, the time from
//!    sending its POST to the first observation of the order `CONFIRMED` (a bulk query over
//!    the orders still pending) and of its "received" mail in the sink (maildev's API, read
//!    from where the previous read stopped), both polled every `BENCH_POLL_MS`.
//! 2. **Sustained rate.** The offered rate steps up (`BENCH_STEPS`, each `BENCH_STEP_SECS`)
//!    while the backlog (orders still `PLACED`, orders without their mail sent) is sampled
//!    from the database. A step is kept up with when every POST succeeded at the offered
//!    rate, the backlog did not grow over the step (least-squares trend under 5 % of the
//!    offered rate, after the step's first fifth), and it drained within `BENCH_DRAIN_SECS`
//!    afterwards. The listed rates stop at the first step not kept up with; then
//!    `BENCH_REFINE` more steps halve the gap between the highest rate kept up with and the
//!    lowest one not.
//!
//! The phases live in `bench::pipeline` (`latency`, `sustained`); this file reads the
//! settings, starts the services (the runtime through `testkit::runtime`) and calls them.
//!
//! The broker is a private tansu with sqlite storage, as `scripts/services` runs the shared
//! one. With the defaults the whole run takes two to four minutes.
//!
//! Settings: `BENCH_ORDERS` (500), `BENCH_RATE` (20 orders/s), `BENCH_STEPS`
//! (`10,20,40,80,160,320,640`), `BENCH_REFINE` (2), `BENCH_STEP_SECS` (10), `BENCH_DRAIN_SECS` (5),
//! `BENCH_POLL_MS` (25), `BENCH_BATCHING_WINDOW_MS` (0, every trigger's batching window),
//! `BENCH_MAX_IN_FLIGHT` (256 POSTs), `BENCH_RUNTIME_BIN` (default: built here with
//! `cargo build --release -p local-runtime`), `DATABASE_URL` (the server to use; a scratch
//! database is created on it and dropped afterwards). `BENCH_ORDERS=0` skips the first
//! phase, `BENCH_STEPS=none` the second.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, ensure};
use bench::pipeline::api::Api;
use bench::pipeline::mailbox::Mailbox;
use bench::pipeline::orders::{PRODUCTS, STOCK};
use bench::pipeline::{Run, Settings, latency, sustained};
use bench::scratch::{self, ScratchDatabase};
use bench::settings::{env, env_number, env_secs};
use sqlx::PgPool;
use testkit::maildev::Maildev;
use testkit::runtime::{LocalRuntime, RuntimeSpec};
use testkit::tansu::Tansu;

fn settings_from_env() -> anyhow::Result<Settings> {
    let steps = env("BENCH_STEPS", "10,20,40,80,160,320,640");
    let steps = if steps == "none" {
        Vec::new()
    } else {
        steps
            .split(',')
            .map(|step| step.trim().parse::<f64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| anyhow!("BENCH_STEPS={steps:?} is not a list of rates"))?
    };
    let settings = Settings {
        orders: env_number("BENCH_ORDERS", 500)?,
        rate: env_number("BENCH_RATE", 20.0)?,
        steps,
        step: env_secs("BENCH_STEP_SECS", 10)?,
        drain: env_secs("BENCH_DRAIN_SECS", 5)?,
        poll: Duration::from_millis(env_number("BENCH_POLL_MS", 25)?),
        batching_window_ms: env_number("BENCH_BATCHING_WINDOW_MS", 0)?,
        max_in_flight: env_number("BENCH_MAX_IN_FLIGHT", 256)?,
        refine: env_number("BENCH_REFINE", 2)?,
    };
    ensure!(settings.rate > 0.0, "BENCH_RATE must be positive");
    ensure!(
        settings.steps.iter().all(|rate| *rate > 0.0),
        "BENCH_STEPS must be positive rates"
    );
    ensure!(
        settings.max_in_flight > 0,
        "BENCH_MAX_IN_FLIGHT must be positive"
    );
    Ok(settings)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = settings_from_env()?;
    let binary = bench::local_runtime_binary().await?;
    scratch::with_database("bench_pipeline", async |database| {
        run(&settings, &binary, database).await
    })
    .await
}

async fn run(settings: &Settings, binary: &Path, database: &ScratchDatabase) -> anyhow::Result<()> {
    let broker = Tansu::start().await;
    let sink = Maildev::spawn().await;
    let spec = RuntimeSpec::new(binary, &database.url, &broker.bootstrap(), sink.smtp_port())
        .with(
            "LOCAL_BATCHING_WINDOW_MS",
            settings.batching_window_ms.to_string(),
        )
        // Stragglers go out within a second or two instead of the schedule's minute; the
        // relay's grace period stays the production one, so it does not race the API.
        .with("LOCAL_RELAY_INTERVAL_SECS", "1")
        // Every order is a guest's from 127.0.0.1, hundreds a second, which the per-address
        // limit (20 an hour) would refuse: this command measures the pipeline behind the
        // API, the order_api command what the limits cost.
        .with("ABUSE_LIMITS", "off")
        .with("RUST_LOG", "warn");
    let runtime = LocalRuntime::try_start(spec).await?;
    println!(
        "pipeline: local-runtime ({}) on 127.0.0.1:{}, private broker {} (sqlite storage), private maildev (SMTP {}), batching window {} ms",
        binary.display(),
        runtime.port(),
        broker.bootstrap(),
        sink.smtp_port(),
        settings.batching_window_ms,
    );
    let log = runtime.log_path().to_owned();
    println!("  runtime log: {}", log.display());
    let api = Api::new(runtime.base_url());
    let outcome = measure(settings, &api, &database.pool, &sink).await;
    let exit = stop(runtime).await;
    if outcome.is_err() {
        eprintln!("see the runtime log: {}", log.display());
    }
    outcome?;
    exit
}

async fn measure(
    settings: &Settings,
    api: &Api,
    pool: &PgPool,
    sink: &Maildev,
) -> anyhow::Result<()> {
    for product in PRODUCTS {
        api.set_stock(product, STOCK).await?;
    }
    let mails = Mailbox::new(sink);
    let run = Run {
        settings,
        api,
        pool,
        mails: &mails,
    };
    latency::warm_up(run).await?;
    if settings.orders > 0 {
        latency::phase(run).await?;
    }
    mails.clear().await?;
    if !settings.steps.is_empty() {
        sustained::phase(run).await?;
    }
    Ok(())
}

/// SIGTERM, as Ctrl-C would, and a clean exit within 30 s: an exit status other than
/// success is an error.
async fn stop(mut runtime: LocalRuntime) -> anyhow::Result<()> {
    let status = runtime
        .try_terminate()
        .await
        .context("local-runtime did not stop cleanly")?;
    if let Some(status) = status {
        ensure!(status.success(), "local-runtime exited with {status}");
    }
    Ok(())
}
