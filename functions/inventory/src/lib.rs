//! The inventory function: consumes `order-placed` through an MSK trigger and decides each
//! order, confirmed or rejected, with exactly-once effects (docs/failure-rules.md).
//!
//! - [`config`]: the function's settings, read once per cold start.
//! - [`store`]: its SQL, one set-based statement per step of a batch.
//! - [`handler`]: one batch in one transaction with a fixed number of round trips, then publish.
//! - `decide`: the pure, greedy decision of a batch, in offset order per partition.
//!
//! Decoding, dead letters, error reporting and credential recovery are the shared consumer
//! seam's ([`shared::consumer`]); `main.rs` only reads the config and serves [`consumer`].

pub mod config;
mod decide;
pub mod handler;
mod store;

pub use config::InventoryConfig;
pub use handler::{BatchSummary, Inventory, InventoryError};

use shared::config::Secrets;
use shared::connections::Connections;
use shared::consumer::Consumer;
use shared::db::{Database, Role};
use shared::kafka::KafkaPublisher;
use sqlx::PgPool;

/// This function's name in `processed_events` and `dead_letters`, and its binary's name.
pub const CONSUMER: &str = "inventory";

/// The inventory consumer over a ready-made pool and producer (tests, benchmarks).
pub fn consumer(pool: PgPool, publisher: KafkaPublisher) -> Consumer<Inventory> {
    let database = Database::from_pool(&pool, Role::Inventory);
    Consumer::new(Inventory::new(database.pool().clone(), publisher), database)
}

/// The inventory consumer from its settings: pool and producer built once per cold start
/// (Lambda and the local runtime alike).
pub async fn consumer_from_config(
    config: &InventoryConfig,
    secrets: &Secrets,
) -> anyhow::Result<Consumer<Inventory>> {
    let Connections {
        database,
        publisher,
    } = Connections::open(config, secrets).await?;
    Ok(Consumer::new(
        Inventory::new(database.pool().clone(), publisher),
        database,
    ))
}
