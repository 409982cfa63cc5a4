//! A closed-loop load generator: `clients` tasks each send a request, wait for it, and send
//! the next, for a warm-up and then a measured window. Only requests that start and finish
//! inside the window count, so the warm-up and the tail do not skew the figures.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::stats::LatencySummary;

/// How hard and how long to push.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What the measured window saw.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub succeeded: u64,
    pub failed: u64,
    pub window: Duration,
    /// Latencies of the successful requests.
    pub latency: Option<LatencySummary>,
}

impl LoadReport {
    /// Successful requests per second over the measured window.
    pub fn throughput(&self) -> f64 {
        self.succeeded as f64 / self.window.as_secs_f64()
    }
}

/// Runs `request(client, sequence)` in a closed loop from `options.clients` tasks. The
/// future resolves to whether the request succeeded.
pub async fn closed_loop<F, Fut>(options: LoadOptions, request: F) -> LoadReport
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let request = Arc::new(request);
    let start = Instant::now() + options.warmup;
    let end = start + options.duration;
    let tasks: Vec<_> = (0..options.clients)
        .map(|client| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failed = 0u64;
                let mut sequence = 0u64;
                loop {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    let ok = request(client, sequence).await;
                    sequence += 1;
                    let finished = Instant::now();
                    if began >= start && finished <= end {
                        if ok {
                            latencies.push(finished - began);
                        } else {
                            failed += 1;
                        }
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (mine, my_failures) = task.await.expect("a load client does not panic");
        latencies.extend(mine);
        failed += my_failures;
    }
    LoadReport {
        succeeded: latencies.len() as u64,
        failed,
        window: options.duration,
        latency: LatencySummary::from_samples(&mut latencies),
    }
}
