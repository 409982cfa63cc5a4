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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bench::scratch::ScratchDatabase;
use bench::settings::{env, env_number, env_secs};
use bench::stats::{LatencySummary, ms};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::maildev::Maildev;
use testkit::tansu::Tansu;
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

/// The products orders spread over (the key of `order-placed`, so several partitions).
const PRODUCTS: [&str; 5] = ["Laptop", "Monitor", "Keyboard", "Mouse", "Headphones"];
/// Every product's stock, so that no order of the run is rejected.
const STOCK: u32 = 1_000_000;
/// Where the recipients of the run's mails live; the local part names the order.
const MAIL_DOMAIN: &str = "bench.example";
/// How long the latency phase waits for its last order after the last POST.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

struct Settings {
    orders: usize,
    rate: f64,
    steps: Vec<f64>,
    step: Duration,
    drain: Duration,
    poll: Duration,
    batching_window_ms: u64,
    max_in_flight: usize,
    refine: usize,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let steps = env("BENCH_STEPS", "10,20,40,80,160,320,640");
        let steps = if steps == "none" {
            Vec::new()
        } else {
            steps
                .split(',')
                .map(|step| step.trim().parse::<f64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| anyhow::anyhow!("BENCH_STEPS={steps:?} is not a list of rates"))?
        };
        let settings = Self {
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let binary = runtime_binary().await?;
    let base_url = env(
        "DATABASE_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/orders",
    );
    let database = ScratchDatabase::create(&base_url, "bench_pipeline").await?;
    let outcome = run(&settings, &binary, &database).await;
    database.drop_database().await?;
    outcome
}

async fn run(settings: &Settings, binary: &Path, database: &ScratchDatabase) -> anyhow::Result<()> {
    let broker = Tansu::start().await;
    let sink = Maildev::spawn().await;
    let mut runtime = Runtime::start(binary, settings, &database.url, &broker, &sink).await?;
    println!(
        "pipeline: local-runtime ({}) on 127.0.0.1:{}, private broker {} (sqlite storage), private maildev (SMTP {}), batching window {} ms",
        binary.display(),
        runtime.port,
        broker.bootstrap(),
        sink.smtp_port(),
        settings.batching_window_ms,
    );
    println!("  runtime log: {}", runtime.log.display());
    let outcome = measure(settings, &runtime.api(), &database.pool, &sink).await;
    let exit = runtime.stop().await;
    if outcome.is_err() {
        eprintln!("see the runtime log: {}", runtime.log.display());
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

    // Consumer groups join, pools and producers connect: none of that is measured.
    let warmup = latency_run(settings, api, pool, &mails, "warmup", 20, 10.0).await?;
    println!(
        "  warm-up: 20 orders confirmed and mailed (slowest {})",
        ms(warmup.both.map_or(Duration::ZERO, |s| s.max))
    );

    if settings.orders > 0 {
        println!();
        println!(
            "1. end-to-end latency: {} orders at {} orders/s, observed every {} ms",
            settings.orders,
            settings.rate,
            settings.poll.as_millis()
        );
        let report = latency_run(
            settings,
            api,
            pool,
            &mails,
            "latency",
            settings.orders,
            settings.rate,
        )
        .await?;
        report.print();
    }
    mails.clear().await?;

    if !settings.steps.is_empty() {
        println!();
        println!(
            "2. sustained rate: offered rate stepped up, {} s per step; kept up = every POST ok at the offered rate, backlog not growing, drained within {} s",
            settings.step.as_secs(),
            settings.drain.as_secs()
        );
        let mut rows: Vec<StepReport> = Vec::new();
        let mut kept: Option<f64> = None;
        let mut lost: Option<f64> = None;
        // Double up through the listed rates, then halve the gap between the highest rate
        // kept up with and the lowest one not, `BENCH_REFINE` times.
        let mut queue: Vec<f64> = settings.steps.clone();
        queue.reverse();
        let mut refinements = settings.refine;
        while let Some(rate) = queue.pop() {
            let step = rate_step(settings, api, pool, &format!("step{}", rows.len()), rate).await?;
            mails.clear().await?;
            if step.kept_up(settings) {
                kept = Some(kept.map_or(rate, |k: f64| k.max(rate)));
            } else {
                lost = Some(lost.map_or(rate, |l: f64| l.min(rate)));
                queue.clear();
            }
            rows.push(step);
            if queue.is_empty()
                && let (Some(k), Some(l)) = (kept, lost)
                && refinements > 0
                && l - k >= 2.0
            {
                refinements -= 1;
                queue.push(((k + l) / 2.0).round());
            }
        }
        StepReport::print_table(&rows, settings);
        println!();
        match (kept, lost) {
            (Some(k), Some(l)) => println!(
                "sustained: {k} orders/s (the highest rate kept up with; {l} orders/s was not)"
            ),
            (Some(k), None) => println!(
                "sustained: at least {k} orders/s (every step was kept up with; list higher BENCH_STEPS)"
            ),
            (None, _) => println!("sustained: not even the first step was kept up with"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Latency: per order, from POST to CONFIRMED and to its mail in the sink.

struct LatencyReport {
    post: Option<LatencySummary>,
    confirmed: Option<LatencySummary>,
    mailed: Option<LatencySummary>,
    /// Confirmed and mailed: the later of the two.
    both: Option<LatencySummary>,
    achieved_rate: f64,
}

impl LatencyReport {
    fn print(&self) {
        println!(
            "   offered rate achieved: {:.1} orders/s",
            self.achieved_rate
        );
        println!(
            "   {:<34} {:>10} {:>10} {:>10} {:>10}",
            "from sending the POST to", "p50", "p90", "p99", "max"
        );
        for (what, summary) in [
            ("201 Created", self.post),
            ("order CONFIRMED", self.confirmed),
            ("\"received\" mail in the sink", self.mailed),
            ("both (end to end)", self.both),
        ] {
            if let Some(s) = summary {
                println!(
                    "   {what:<34} {:>10} {:>10} {:>10} {:>10}",
                    ms(s.p50),
                    ms(s.p90),
                    ms(s.p99),
                    ms(s.max)
                );
            }
        }
    }
}

/// Places `count` orders at `rate` and waits until each was seen confirmed and mailed.
async fn latency_run(
    settings: &Settings,
    api: &Api,
    pool: &PgPool,
    mails: &Mailbox<'_>,
    tag: &str,
    count: usize,
    rate: f64,
) -> anyhow::Result<LatencyReport> {
    let (placed_tx, placed_rx) = mpsc::unbounded_channel();
    let (offered, observed) = tokio::join!(
        offer(
            api,
            tag,
            count,
            rate,
            settings.max_in_flight,
            Some(placed_tx)
        ),
        observe(pool, mails, tag, placed_rx, settings.poll),
    );
    let offered = offered?;
    let observed = observed?;
    offered.ensure_all_accepted()?;
    ensure!(
        observed.rejected == 0,
        "{} orders were rejected although stock was ample",
        observed.rejected
    );
    let mut post = Vec::new();
    let mut confirmed = Vec::new();
    let mut mailed = Vec::new();
    let mut both = Vec::new();
    for order in &offered.accepted {
        let decided = observed.decided[&order.seq] - order.sent;
        let mail = observed.mailed[&order.seq] - order.sent;
        post.push(order.accepted - order.sent);
        confirmed.push(decided);
        mailed.push(mail);
        both.push(decided.max(mail));
    }
    Ok(LatencyReport {
        post: LatencySummary::from_samples(&mut post),
        confirmed: LatencySummary::from_samples(&mut confirmed),
        mailed: LatencySummary::from_samples(&mut mailed),
        both: LatencySummary::from_samples(&mut both),
        achieved_rate: offered.achieved_rate(),
    })
}

/// When each order of a run was first seen decided and mailed, by sequence number.
struct Observed {
    decided: HashMap<usize, Instant>,
    mailed: HashMap<usize, Instant>,
    rejected: usize,
}

/// Polls until every order that `placed` announces (until it closes) was seen decided in
/// the database and its mail in the sink. Each poll is one query over the orders still
/// pending and one read of the mails that arrived since the last, so the work stays in
/// proportion to what is in flight, not to what the run has placed so far.
async fn observe(
    pool: &PgPool,
    mails: &Mailbox<'_>,
    tag: &str,
    mut placed: mpsc::UnboundedReceiver<(usize, Uuid)>,
    poll: Duration,
) -> anyhow::Result<Observed> {
    let mut pending: HashMap<Uuid, usize> = HashMap::new();
    let mut announced = 0usize;
    let mut closed_at: Option<Instant> = None;
    let mut observed = Observed {
        decided: HashMap::new(),
        mailed: HashMap::new(),
        rejected: 0,
    };
    let prefix = format!("{tag}-");
    loop {
        loop {
            match placed.try_recv() {
                Ok((seq, id)) => {
                    announced += 1;
                    pending.insert(id, seq);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed_at.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        if !pending.is_empty() {
            let ids: Vec<Uuid> = pending.keys().copied().collect();
            let rows: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT id, status FROM orders WHERE id = ANY($1) AND status <> 'PLACED'",
            )
            .bind(&ids)
            .fetch_all(pool)
            .await
            .context("could not poll the orders")?;
            let now = Instant::now();
            for (id, status) in rows {
                if let Some(seq) = pending.remove(&id) {
                    observed.decided.insert(seq, now);
                    if status != "CONFIRMED" {
                        observed.rejected += 1;
                    }
                }
            }
        }
        let (arrived, now) = mails.next_recipients().await?;
        for recipient in arrived {
            let seq = recipient
                .strip_suffix(&format!("@{MAIL_DOMAIN}"))
                .and_then(|local| local.strip_prefix(&prefix))
                .and_then(|seq| seq.parse().ok());
            if let Some(seq) = seq {
                observed.mailed.entry(seq).or_insert(now);
            }
        }
        if let Some(closed) = closed_at {
            if pending.is_empty() && observed.mailed.len() >= announced {
                return Ok(observed);
            }
            if closed.elapsed() > SETTLE_TIMEOUT {
                bail!(
                    "{tag}: after {} s, {} of {announced} orders are still PLACED and {} have no mail",
                    SETTLE_TIMEOUT.as_secs(),
                    pending.len(),
                    announced - observed.mailed.len().min(announced)
                );
            }
        }
        tokio::time::sleep(poll).await;
    }
}

// ---------------------------------------------------------------------------------------
// Sustained rate: backlog while the offered rate steps up.

/// One step of the sustained-rate phase.
struct StepReport {
    offered: f64,
    achieved: f64,
    failures: usize,
    post_p99: Option<Duration>,
    /// Orders decided and mails sent per second while the step ran.
    decided_rate: f64,
    mailed_rate: f64,
    /// Largest backlog seen (orders PLACED, orders without their mail sent).
    max_placed: i64,
    max_unmailed: i64,
    /// Least-squares trend of the larger backlog after the step's first fifth, in orders per second.
    growth: f64,
    /// How long after the last POST the backlog took to reach zero (`None`: it did not).
    drained_after: Option<Duration>,
    /// End to end by the database's clocks (created, decided, mail sent), for the step's orders.
    e2e_p50: Option<Duration>,
    e2e_p99: Option<Duration>,
}

impl StepReport {
    fn kept_up(&self, settings: &Settings) -> bool {
        self.failures == 0
            && self.achieved >= 0.95 * self.offered
            && self.growth <= 0.05 * self.offered
            && self.drained_after.is_some_and(|d| d <= settings.drain)
    }

    fn print_table(rows: &[StepReport], settings: &Settings) {
        println!(
            "   {:>8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>10} {:>8} {:>10} {:>10}  verdict",
            "offered/s",
            "posted/s",
            "POST p99",
            "decided/s",
            "mailed/s",
            "max PLACED",
            "max unsent",
            "trend/s",
            "drained",
            "e2e p50*",
            "e2e p99*",
        );
        for row in rows {
            let opt_ms = |d: Option<Duration>| d.map_or("-".to_owned(), ms);
            println!(
                "   {:>9} {:>9.1} {:>9} {:>9.1} {:>10.1} {:>10} {:>9} {:>10.1} {:>8} {:>10} {:>10}  {}",
                row.offered,
                row.achieved,
                opt_ms(row.post_p99),
                row.decided_rate,
                row.mailed_rate,
                row.max_placed,
                row.max_unmailed,
                row.growth,
                row.drained_after
                    .map_or("no".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
                opt_ms(row.e2e_p50),
                opt_ms(row.e2e_p99),
                if row.kept_up(settings) {
                    "kept up".to_owned()
                } else if row.failures > 0 {
                    format!("{} POSTs failed", row.failures)
                } else {
                    "fell behind".to_owned()
                }
            );
        }
        println!(
            "   * e2e by the database's clocks: order created -> max(inventory decision, mail sent)"
        );
    }
}

#[derive(Debug, Clone, Copy)]
struct Backlog {
    at: Instant,
    placed: i64,
    unmailed: i64,
    decided: i64,
    mailed: i64,
}

async fn backlog(pool: &PgPool) -> anyhow::Result<Backlog> {
    let (placed, decided, total, mailed): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE o.status = 'PLACED'),
                count(*) FILTER (WHERE o.status <> 'PLACED'),
                count(*),
                count(n.order_id)
           FROM orders o
           LEFT JOIN notifications n
             ON n.order_id = o.id AND n.kind = 'ORDER_RECEIVED' AND n.status = 'SENT'",
    )
    .fetch_one(pool)
    .await
    .context("could not count the backlog")?;
    Ok(Backlog {
        at: Instant::now(),
        placed,
        unmailed: total - mailed,
        decided,
        mailed,
    })
}

async fn rate_step(
    settings: &Settings,
    api: &Api,
    pool: &PgPool,
    tag: &str,
    rate: f64,
) -> anyhow::Result<StepReport> {
    let count = (rate * settings.step.as_secs_f64()).round().max(1.0) as usize;
    let start = wait_for_empty_backlog(pool, Duration::from_secs(180))
        .await
        .context("the previous step's backlog did not drain")?;
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (pool, sampling) = (pool.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                samples.push(backlog(&pool).await?);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            anyhow::Ok(samples)
        })
    };
    let offered = offer(api, tag, count, rate, settings.max_in_flight, None).await;
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.await.context("the backlog sampler panicked")??;
    let offered = offered?;
    let at_end = backlog(pool).await?;
    let window = (at_end.at - start.at).as_secs_f64();

    let drained_after = wait_for_empty_backlog(pool, settings.drain * 4)
        .await
        .ok()
        .map(|empty| empty.at - at_end.at);

    // The backlog climbs from zero to its steady level (rate x latency) in the first moments
    // of a step; only what follows tells whether it keeps growing.
    let ramp = settings.step.as_secs_f64() / 5.0;
    let growth = trend(
        &samples
            .iter()
            .map(|s| {
                (
                    (s.at - start.at).as_secs_f64(),
                    s.placed.max(s.unmailed) as f64,
                )
            })
            .filter(|(t, _)| *t >= ramp)
            .collect::<Vec<_>>(),
    );
    let mut post: Vec<Duration> = offered
        .accepted
        .iter()
        .map(|order| order.accepted - order.sent)
        .collect();
    let (e2e_p50, e2e_p99) = db_latency(pool, tag).await?;
    Ok(StepReport {
        offered: rate,
        achieved: offered.achieved_rate(),
        failures: offered.failures,
        post_p99: LatencySummary::from_samples(&mut post).map(|s| s.p99),
        decided_rate: (at_end.decided - start.decided) as f64 / window,
        mailed_rate: (at_end.mailed - start.mailed) as f64 / window,
        max_placed: samples.iter().map(|s| s.placed).max().unwrap_or(0),
        max_unmailed: samples.iter().map(|s| s.unmailed).max().unwrap_or(0),
        growth,
        drained_after,
        e2e_p50,
        e2e_p99,
    })
}

/// Waits until nothing is `PLACED` and every order has its mail; fails after `timeout`.
async fn wait_for_empty_backlog(pool: &PgPool, timeout: Duration) -> anyhow::Result<Backlog> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = backlog(pool).await?;
        if now.placed == 0 && now.unmailed == 0 {
            return Ok(now);
        }
        ensure!(
            Instant::now() < deadline,
            "{} orders PLACED and {} without mail after {timeout:?}",
            now.placed,
            now.unmailed
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The least-squares slope of `(seconds, backlog)` points, in orders per second.
fn trend(points: &[(f64, f64)]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance
    }
}

/// p50 and p99 of order creation to the later of its decision and its mail being sent, by
/// the database's and the function's clocks, for the orders of one step.
async fn db_latency(
    pool: &PgPool,
    tag: &str,
) -> anyhow::Result<(Option<Duration>, Option<Duration>)> {
    let (p50, p99): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY e2e),
                percentile_disc(0.99) WITHIN GROUP (ORDER BY e2e)
           FROM (SELECT extract(epoch FROM greatest(o.updated_at, n.sent_at) - o.created_at)::float8 AS e2e
                   FROM orders o
                   JOIN notifications n ON n.order_id = o.id AND n.kind = 'ORDER_RECEIVED'
                  WHERE o.customer_email LIKE $1 AND o.status <> 'PLACED' AND n.sent_at IS NOT NULL) t",
    )
    .bind(format!("{tag}-%"))
    .fetch_one(pool)
    .await
    .context("could not compute the step's latency")?;
    let secs = |s: Option<f64>| s.map(|s| Duration::from_secs_f64(s.max(0.0)));
    Ok((secs(p50), secs(p99)))
}

// ---------------------------------------------------------------------------------------
// Open-loop load: POSTs sent on a fixed schedule, whatever the answers take.

struct Accepted {
    seq: usize,
    sent: Instant,
    accepted: Instant,
}

struct Offered {
    accepted: Vec<Accepted>,
    failures: usize,
    first_failure: Option<String>,
    /// From the first POST sent to the last one sent.
    sending: Duration,
    count: usize,
}

impl Offered {
    fn achieved_rate(&self) -> f64 {
        if self.count <= 1 || self.sending.is_zero() {
            return self.count as f64;
        }
        (self.count - 1) as f64 / self.sending.as_secs_f64()
    }

    fn ensure_all_accepted(&self) -> anyhow::Result<()> {
        match &self.first_failure {
            None => Ok(()),
            Some(first) => bail!(
                "{} of {} POSTs failed; the first: {first}",
                self.failures,
                self.count
            ),
        }
    }
}

/// Sends `count` orders, the n-th at `n / rate` seconds after the first, each on its own
/// task, with at most `max_in_flight` unanswered (beyond that the schedule slips, which the
/// achieved rate shows). Accepted orders are announced on `placed` as they are answered.
async fn offer(
    api: &Api,
    tag: &str,
    count: usize,
    rate: f64,
    max_in_flight: usize,
    placed: Option<mpsc::UnboundedSender<(usize, Uuid)>>,
) -> anyhow::Result<Offered> {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(count);
    let mut last_sent = Instant::now();
    let first_sent = Instant::now();
    for seq in 0..count {
        tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / rate)).await;
        let slot = slots.clone().acquire_owned().await?;
        last_sent = Instant::now();
        let (api, placed) = (api.clone(), placed.clone());
        let body = order_body(tag, seq);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = api.place(&body).await;
            let accepted = Instant::now();
            drop(slot);
            let id = outcome?;
            if let Some(placed) = placed {
                let _ = placed.send((seq, id));
            }
            anyhow::Ok(Accepted {
                seq,
                sent,
                accepted,
            })
        }));
    }
    drop(placed);
    let mut offered = Offered {
        accepted: Vec::with_capacity(count),
        failures: 0,
        first_failure: None,
        sending: last_sent - first_sent,
        count,
    };
    for task in tasks {
        match task.await.context("a POST task panicked")? {
            Ok(order) => offered.accepted.push(order),
            Err(err) => {
                offered.failures += 1;
                offered
                    .first_failure
                    .get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
    Ok(offered)
}

/// The original request body plus a recipient that names the order in the run.
fn order_body(tag: &str, seq: usize) -> Value {
    json!({
        "customerName": format!("Bench Customer {seq}"),
        "customerEmail": format!("{tag}-{seq}@{MAIL_DOMAIN}"),
        "productName": PRODUCTS[seq % PRODUCTS.len()],
        "quantity": 1,
    })
}

// ---------------------------------------------------------------------------------------
// The runtime process and its API.

/// The `local-runtime` binary: `BENCH_RUNTIME_BIN`, or built now (release) in this workspace.
async fn runtime_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("BENCH_RUNTIME_BIN")
        && !path.is_empty()
    {
        return Ok(PathBuf::from(path));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("building local-runtime (release)...");
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "-p",
            "local-runtime",
            "--bin",
            "local-runtime",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("could not run cargo to build local-runtime")?;
    ensure!(output.status.success(), "building local-runtime failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == "local-runtime"
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo built no local-runtime executable")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The runtime as a user starts it, on the run's own database, broker and mail sink.
struct Runtime {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Runtime {
    async fn start(
        binary: &Path,
        settings: &Settings,
        database_url: &str,
        broker: &Tansu,
        sink: &Maildev,
    ) -> anyhow::Result<Self> {
        let port = testkit::free_port();
        let log = std::env::temp_dir().join(format!("bench-pipeline-runtime-{port}.log"));
        let file = std::fs::File::create(&log).context("could not create the runtime log")?;
        let mut child = Command::new(binary)
            .current_dir(workspace_root())
            .env("DATABASE_URL", database_url)
            .env("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap())
            .env("SMTP_HOST", "127.0.0.1")
            .env("SMTP_PORT", sink.smtp_port().to_string())
            .env("SMTP_TLS", "none")
            .env("MAIL_FROM", "orders@example.com")
            .env("NOTIFY_FALLBACK_TO", "order-desk@example.com")
            .env("ORDER_API_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "LOCAL_BATCHING_WINDOW_MS",
                settings.batching_window_ms.to_string(),
            )
            // Stragglers go out within a second or two instead of the schedule's minute; the
            // relay's grace period stays the production one, so it does not race the API.
            .env("LOCAL_RELAY_INTERVAL_SECS", "1")
            .env("RUST_LOG", "warn")
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = client
                .get(format!("http://127.0.0.1:{port}/api/health"))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "local-runtime exited ({status}) during start-up; see {}",
                    log.display()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "local-runtime did not become healthy within 60 s; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            child: Some(child),
            port,
            log,
        })
    }

    fn api(&self) -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(512)
                .build()
                .expect("a default HTTP client builds"),
            base: format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// SIGTERM, as Ctrl-C would, and a clean exit within 30 s.
    async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            kill(Pid::from_raw(pid as i32), Signal::SIGTERM)?;
        }
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(status) => {
                let status = status?;
                ensure!(status.success(), "local-runtime exited with {status}");
                Ok(())
            }
            Err(_) => {
                child.kill().await?;
                bail!("local-runtime did not exit within 30 s of SIGTERM")
            }
        }
    }
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn place(&self, body: &Value) -> anyhow::Result<Uuid> {
        let response = self
            .client
            .post(format!("{}/api/orders", self.base))
            .json(body)
            .send()
            .await
            .context("POST /api/orders")?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        ensure!(status == 201, "POST /api/orders answered {status}: {body}");
        body["orderId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .context("201 without an orderId")
    }

    async fn set_stock(&self, product: &str, quantity: u32) -> anyhow::Result<()> {
        let response = self
            .client
            .put(format!("{}/api/stock/{product}", self.base))
            .json(&json!({ "quantity": quantity }))
            .send()
            .await
            .context("PUT /api/stock")?;
        ensure!(
            response.status().is_success(),
            "PUT /api/stock/{product} answered {}",
            response.status()
        );
        Ok(())
    }
}

/// The private sink's mails, read in arrival order from where the previous read stopped.
struct Mailbox<'a> {
    sink: &'a Maildev,
    client: reqwest::Client,
    seen: AtomicUsize,
}

impl<'a> Mailbox<'a> {
    fn new(sink: &'a Maildev) -> Self {
        Self {
            sink,
            client: reqwest::Client::new(),
            seen: AtomicUsize::new(0),
        }
    }

    /// The recipients of the mails that arrived since the last call, and when they were read.
    async fn next_recipients(&self) -> anyhow::Result<(HashSet<String>, Instant)> {
        let skip = self.seen.load(Ordering::Relaxed);
        let mails: Vec<Value> = self
            .client
            .get(format!("{}/api/email?skip={skip}", self.sink.api_url()))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("the maildev API did not answer")?
            .json()
            .await
            .context("the maildev API returned no JSON list")?;
        let now = Instant::now();
        self.seen.fetch_add(mails.len(), Ordering::Relaxed);
        let recipients = mails
            .iter()
            .filter_map(|mail| mail["to"].as_array())
            .flatten()
            .filter_map(|to| to["address"].as_str())
            .map(str::to_ascii_lowercase)
            .collect();
        Ok((recipients, now))
    }

    /// Empties the sink, so that later reads (and maildev's memory) stay small.
    async fn clear(&self) -> anyhow::Result<()> {
        self.client
            .delete(format!("{}/api/email/all", self.sink.api_url()))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("could not empty the sink")?;
        self.seen.store(0, Ordering::Relaxed);
        Ok(())
    }
}
