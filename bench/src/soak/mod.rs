//! The mixed-fault soak (`src/bin/soak.rs`): steady orders through the whole local system
//! while faults from a seeded schedule come and go, then the invariants that must hold
//! whatever happened.
//!
//! - [`schedule`]: which fault starts when and for how long, drawn from a fixed seed.
//! - [`faults`]: injecting each kind of fault into the running system.
//! - [`invariants`]: what is checked at the end, each with its count.

pub mod faults;
pub mod invariants;
pub mod schedule;

use std::time::Duration;

/// The soak's knobs (the command reads them from `SOAK_*` variables).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long orders are offered.
    pub duration: Duration,
    /// Orders per second.
    pub rate: f64,
    /// The seed of the fault schedule (and of everything else drawn at random).
    pub seed: u64,
    /// The mean gap between the starts of two faults.
    pub mean_fault_gap: Duration,
    /// Every this many orders, a poison record is produced to `order-placed`.
    pub poison_every: usize,
    /// How long the system gets after the last order to decide and mail everything.
    pub drain: Duration,
}
