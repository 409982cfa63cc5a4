//! The inventory function: consumes `order-placed` through an MSK trigger and decides each
//! order, confirmed or rejected, with exactly-once effects (DESIGN §5).
//!
//! - [`config`]: the function's settings, read once per cold start.
//! - [`handler`]: one batch in one transaction with a fixed number of round trips, then publish.
//! - `decide`: the pure, greedy decision of a batch, in offset order per partition.

pub mod config;
mod decide;
pub mod handler;

pub use config::InventoryConfig;
pub use handler::{BatchSummary, Inventory, InventoryError};

/// This function's name in `processed_events` and `dead_letters`.
pub const CONSUMER: &str = "inventory";
