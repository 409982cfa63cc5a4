//! A function's connections, opened the same way by every function that writes the database
//! and publishes events: a lazily connecting pool logged in as the function's own role
//! (docs/data.md, "Who may do what"), and its Kafka producer.

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;

use crate::config::{DatabaseSettings, KafkaSettings, Secrets};
use crate::db::{Database, Login, Role};
use crate::kafka::KafkaPublisher;

/// What a function's configuration says about its connections.
pub trait ConnectionSettings {
    /// The database role the function logs in as.
    const ROLE: Role;
    fn database(&self) -> &DatabaseSettings;
    fn kafka(&self) -> &KafkaSettings;
    /// The pool's options (its size, above all).
    fn pool(&self) -> PgPoolOptions;
}

/// Implements [`ConnectionSettings`] for a function's configuration type that keeps its
/// connections in the fields `database` ([`DatabaseSettings`]), `kafka` ([`KafkaSettings`])
/// and `max_connections` (the pool size, for [`crate::db::pool_options`]), as most functions'
/// configurations do: `impl_connection_settings!(InventoryConfig, Role::Inventory);`. The
/// crate that uses it depends on `sqlx`, as every function does.
#[macro_export]
macro_rules! impl_connection_settings {
    ($config:ty, $role:expr) => {
        impl $crate::connections::ConnectionSettings for $config {
            const ROLE: $crate::db::Role = $role;

            fn database(&self) -> &$crate::config::DatabaseSettings {
                &self.database
            }

            fn kafka(&self) -> &$crate::config::KafkaSettings {
                &self.kafka
            }

            fn pool(&self) -> ::sqlx::postgres::PgPoolOptions {
                $crate::db::pool_options(self.max_connections)
            }
        }
    };
}

/// What [`Connections::open`] opened.
pub struct Connections {
    pub database: Database,
    pub publisher: KafkaPublisher,
}

impl Connections {
    /// The pool of the function's role, and its producer, as `config` says.
    pub async fn open<C: ConnectionSettings>(
        config: &C,
        secrets: &Secrets,
    ) -> anyhow::Result<Self> {
        let database = Database::connect(
            config.database(),
            secrets,
            Login::Role(C::ROLE),
            config.pool(),
        )
        .await
        .context("could not configure the database connection")?;
        let publisher = KafkaPublisher::new(config.kafka(), secrets)
            .await
            .context("could not create the Kafka producer")?;
        Ok(Self {
            database,
            publisher,
        })
    }
}
