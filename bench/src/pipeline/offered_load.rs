//! Open-loop load: POSTs sent on a fixed schedule (the n-th at `n / rate` seconds), whatever
//! the answers take, so that a slow system shows as latency and backlog rather than as a
//! lower offered rate. Both phases place their orders with [`offer`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use super::api::Api;
use super::orders::order_body;

/// One order the API accepted (201), and when.
pub struct Accepted {
    pub seq: usize,
    pub sent: Instant,
    pub accepted: Instant,
}

/// What a run of [`offer`] sent and got back.
pub struct Offered {
    pub accepted: Vec<Accepted>,
    pub failures: usize,
    pub first_failure: Option<String>,
    /// From the first POST sent to the last one sent.
    pub sending: Duration,
    pub count: usize,
}

impl Offered {
    /// POSTs per second actually sent (the schedule slips when `max_in_flight` is reached).
    pub fn achieved_rate(&self) -> f64 {
        if self.count <= 1 || self.sending.is_zero() {
            return self.count as f64;
        }
        (self.count - 1) as f64 / self.sending.as_secs_f64()
    }

    /// An error naming the first failure, unless every POST was accepted.
    pub fn ensure_all_accepted(&self) -> anyhow::Result<()> {
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
pub async fn offer(
    api: &Api,
    tag: &str,
    count: usize,
    rate: f64,
    max_in_flight: usize,
    placed: Option<mpsc::UnboundedSender<(usize, Uuid)>>,
) -> anyhow::Result<Offered> {
    offer_bodies(api, count, rate, max_in_flight, placed, |seq| {
        order_body(tag, seq)
    })
    .await
}

/// As [`offer`], with the n-th request body `body(n)`.
pub async fn offer_bodies(
    api: &Api,
    count: usize,
    rate: f64,
    max_in_flight: usize,
    placed: Option<mpsc::UnboundedSender<(usize, Uuid)>>,
    body: impl Fn(usize) -> Value,
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
        let body = body(seq);
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
