//! A function's connections, opened the same way by every function that writes the database
//! and publishes events: a lazily connecting pool logged in as the function's own role
//! (docs/data.md, "Who may do what"), and its Kafka producer.

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;

use crate::config::{DatabaseSettings, KafkaSettings, Secrets};
use crate::db::{Database, Login, Role};
use crate::kafka::KafkaPublisher;

/// What [`Connections::open`] opened.
pub struct Connections {
    pub database: Database,
    pub publisher: KafkaPublisher,
}

impl Connections {
    /// The pool of `role` with `pool` options on `database`, and a producer for `kafka`.
    pub async fn open(
        database: &DatabaseSettings,
        kafka: &KafkaSettings,
        secrets: &Secrets,
        role: Role,
        pool: PgPoolOptions,
    ) -> anyhow::Result<Self> {
        let database = Database::connect(database, secrets, Login::Role(role), pool)
            .await
            .context("could not configure the database connection")?;
        let publisher = KafkaPublisher::new(kafka, secrets)
            .await
            .context("could not create the Kafka producer")?;
        Ok(Self {
            database,
            publisher,
        })
    }
}
