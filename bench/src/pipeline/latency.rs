//! Phase 1, end-to-end latency: orders at a steady rate, and per order the time from sending
//! its POST to the first observation of it `CONFIRMED` (a bulk query over the orders still
//! pending) and of its "received" mail in the sink, both polled every `BENCH_POLL_MS`. The
//! warm-up runs the same way, unmeasured.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::Run;
use super::mailbox::Mailbox;
use super::offered_load::offer;
use super::orders::order_seq;
use crate::stats::{LatencySummary, ms};

/// How long the latency phase waits for its last order after the last POST.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Consumer groups join, pools and producers connect: 20 orders at 10/s, of which only the
/// slowest is shown.
pub async fn warm_up(run: Run<'_>) -> anyhow::Result<()> {
    let warmup = latency_run(run, "warmup", 20, 10.0).await?;
    println!(
        "  warm-up: 20 orders confirmed and mailed (slowest {})",
        ms(warmup.both.map_or(Duration::ZERO, |s| s.max))
    );
    Ok(())
}

/// Phase 1: `settings.orders` orders at `settings.rate`; prints the latencies.
pub async fn phase(run: Run<'_>) -> anyhow::Result<()> {
    let Run { settings, .. } = run;
    println!();
    println!(
        "1. end-to-end latency: {} orders at {} orders/s, observed every {} ms",
        settings.orders,
        settings.rate,
        settings.poll.as_millis()
    );
    let report = latency_run(run, "latency", settings.orders, settings.rate).await?;
    report.print();
    Ok(())
}

/// Per order, from POST to CONFIRMED and to its mail in the sink.
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
    run: Run<'_>,
    tag: &str,
    count: usize,
    rate: f64,
) -> anyhow::Result<LatencyReport> {
    let Run {
        settings,
        api,
        pool,
        mails,
    } = run;
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
///
/// This is a measurement at a fixed cadence (`poll`), not a wait: the instants it records
/// are the latencies, so it does not use `testkit::poll_until`, whose pauses grow.
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
            if let Some(seq) = order_seq(&recipient, tag) {
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
