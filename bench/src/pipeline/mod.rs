//! The end-to-end pipeline benchmark (`src/bin/pipeline.rs`), phase by phase: the command
//! itself only reads the settings, starts the services and calls these in order.
//!
//! - [`latency`]: phase 1, per order the time from its POST to `CONFIRMED` and to its mail.
//! - [`sustained`]: phase 2, the offered rate stepped up while the backlog is watched.
//! - [`offered_load`]: the open-loop generator both phases send their POSTs with.
//! - [`orders`]: what the run orders, and the recipient address that names each order.
//! - [`api`]: the runtime's HTTP API, as the generator and the set-up call it.
//! - [`mailbox`]: the private mail sink, read incrementally.

pub mod api;
pub mod latency;
pub mod mailbox;
pub mod offered_load;
pub mod orders;
pub mod sustained;

use std::time::Duration;

use sqlx::PgPool;

use self::api::Api;
use self::mailbox::Mailbox;

/// The benchmark's knobs (the command reads them from `BENCH_*` variables).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Orders of the latency phase (`0`: skip it).
    pub orders: usize,
    /// Their offered rate, in orders per second.
    pub rate: f64,
    /// The offered rates of the sustained phase, in order (empty: skip it).
    pub steps: Vec<f64>,
    /// How long each step offers its rate.
    pub step: Duration,
    /// How soon after a step's last POST its backlog must be gone for the step to count as
    /// kept up with.
    pub drain: Duration,
    /// How often the latency phase looks for confirmations and mails.
    pub poll: Duration,
    /// Every trigger's batching window (`LOCAL_BATCHING_WINDOW_MS` of the runtime).
    pub batching_window_ms: u64,
    /// At most this many POSTs unanswered at once.
    pub max_in_flight: usize,
    /// How many steps halve the gap between the highest rate kept up with and the lowest not.
    pub refine: usize,
}

/// What every phase works with: the knobs, the API it sends orders to, the database whose
/// backlog and statuses it watches, and the mail sink it reads. The command builds it once,
/// so the phases cannot be handed a mismatched set.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub settings: &'a Settings,
    pub api: &'a Api,
    pub pool: &'a PgPool,
    pub mails: &'a Mailbox<'a>,
}
