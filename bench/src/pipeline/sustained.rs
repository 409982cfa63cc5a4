//! Phase 2, sustained rate: the offered rate steps up (`BENCH_STEPS`, each `BENCH_STEP_SECS`)
//! while the backlog (orders still `PLACED`, orders without their mail sent) is sampled from
//! the database. A step is kept up with when every POST succeeded at the offered rate, the
//! backlog did not grow over the step (least-squares trend under 5 % of the offered rate,
//! after the step's first fifth), and it drained within `BENCH_DRAIN_SECS` afterwards. The
//! listed rates stop at the first step not kept up with; then `BENCH_REFINE` more steps halve
//! the gap between the highest rate kept up with and the lowest one not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::PgPool;

use super::api::Api;
use super::offered_load::offer;
use super::orders::customer_email_pattern;
use super::{Run, Settings};
use crate::cpu::CpuTimes;
use crate::stats::{LatencySummary, ms};

/// The programs whose CPU time a step splits per order: the database, the broker, the
/// runtime (the functions), the mail sink (maildev runs as `node`) and this load generator.
const PROGRAMS: [&str; 5] = ["postgres", "tansu", "local-runtime", "node", "pipeline"];

/// How long a step waits for the previous step's backlog to drain before it starts.
const PREVIOUS_BACKLOG_TIMEOUT: Duration = Duration::from_secs(180);
/// How often the backlog is sampled while a step runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How often the backlog is sampled after a step, to time how long it takes to drain.
const DRAIN_SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Phase 2: steps through `settings.steps` (then refines), and prints a row per step and
/// the highest rate kept up with.
pub async fn phase(run: Run<'_>) -> anyhow::Result<()> {
    let settings = run.settings;
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
        let step = rate_step(
            settings,
            run.api,
            run.pool,
            &format!("step{}", rows.len()),
            rate,
        )
        .await?;
        run.mails.clear().await?;
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
    Ok(())
}

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
    /// CPU µs of each of [`PROGRAMS`] from the step's start until its backlog drained, per
    /// accepted order.
    cpu_per_order: Vec<f64>,
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
        println!();
        println!(
            "   CPU per accepted order, µs, from each step's start until its backlog drained (idle polling included):"
        );
        print!("   {:>9}", "offered/s");
        for program in PROGRAMS {
            print!(" {program:>13}");
        }
        println!(" {:>13}", "all");
        for row in rows {
            print!("   {:>9}", row.offered);
            for micros in &row.cpu_per_order {
                print!(" {micros:>13.0}");
            }
            let all: f64 = row.cpu_per_order.iter().sum();
            println!(" {all:>13.0}");
        }
    }
}

/// The backlog at one instant, with the running totals the rates are computed from.
#[derive(Debug, Clone, Copy)]
struct Backlog {
    at: Instant,
    placed: i64,
    unmailed: i64,
    decided: i64,
    mailed: i64,
}

impl Backlog {
    /// Nothing `PLACED` and every order has its mail.
    fn is_empty(&self) -> bool {
        self.placed == 0 && self.unmailed == 0
    }
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
    let start = wait_for_empty_backlog(pool, PREVIOUS_BACKLOG_TIMEOUT)
        .await
        .context("the previous step's backlog did not drain")?;
    let cpu_at_start = CpuTimes::read(&PROGRAMS);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (pool, sampling) = (pool.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                samples.push(backlog(&pool).await?);
                tokio::time::sleep(SAMPLE_EVERY).await;
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

    let drained_after = sample_until_empty(pool, settings.drain * 4)
        .await
        .map(|empty| empty.at - at_end.at);
    let cpu = CpuTimes::read(&PROGRAMS).since(&cpu_at_start);
    let cpu_per_order = cpu
        .micros_per(offered.accepted.len())
        .into_iter()
        .map(|(_, micros)| micros)
        .collect();

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
        cpu_per_order,
    })
}

/// Waits until nothing is `PLACED` and every order has its mail, and returns the sample that
/// saw it so; fails after `timeout`, or at once when the backlog cannot be read.
async fn wait_for_empty_backlog(pool: &PgPool, timeout: Duration) -> anyhow::Result<Backlog> {
    let outcome = testkit::poll_until(timeout, || async move {
        match backlog(pool).await {
            Ok(now) if now.is_empty() => Ok(Ok(now)),
            Ok(now) => Err(now),
            // Not a reason to keep polling: give the error back at once.
            Err(err) => Ok(Err(err)),
        }
    })
    .await;
    match outcome {
        Ok(sampled) => sampled,
        Err(last) => bail!(
            "{} orders PLACED and {} without mail after {timeout:?}",
            last.placed,
            last.unmailed
        ),
    }
}

/// Samples the backlog every [`DRAIN_SAMPLE_EVERY`] until it is empty and returns that
/// sample; `None` when it is not empty within `timeout` or cannot be read. A measurement, not
/// a wait: the sample's instant is the step's "drained" figure, so its cadence is fixed rather
/// than `testkit::poll_until`'s growing pauses.
async fn sample_until_empty(pool: &PgPool, timeout: Duration) -> Option<Backlog> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = backlog(pool).await.ok()?;
        if now.is_empty() {
            return Some(now);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(DRAIN_SAMPLE_EVERY).await;
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
    .bind(customer_email_pattern(tag))
    .fetch_one(pool)
    .await
    .context("could not compute the step's latency")?;
    let secs = |s: Option<f64>| s.map(|s| Duration::from_secs_f64(s.max(0.0)));
    Ok((secs(p50), secs(p99)))
}
