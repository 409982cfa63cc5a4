//! The outbox relay: on a schedule, publishes outbox rows still unpublished after a grace
//! period (their writer's own publish failed, or it crashed between commit and publish).
//! See docs/failure-rules.md, "Outbox".
//!
//! - [`config`]: the function's settings.
//! - [`store`]: its SQL, claiming stragglers with `FOR UPDATE SKIP LOCKED`.
//! - [`handler`]: one run in bounded batches; `main.rs` only wires it to the schedule.
//! - [`retention`]: each run also prunes what is kept no longer than it serves.

pub mod config;
pub mod handler;
pub mod retention;
mod store;

pub use config::RelayConfig;
pub use handler::{Relay, RelayError, RelayLimits, RelayReport, run_once};

use shared::config::Secrets;
use shared::connections::Connections;

impl Relay {
    /// The pool (see [`RelayConfig::max_connections`]) and the producer, once per cold start.
    pub async fn from_config(config: &RelayConfig, secrets: &Secrets) -> anyhow::Result<Self> {
        let Connections {
            database,
            publisher,
        } = Connections::open(config, secrets).await?;
        Ok(Self::new(database, publisher, config.limits).with_retention(config.retention))
    }
}
