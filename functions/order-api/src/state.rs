//! What every request shares: built once per cold start (or per test) and cloned cheaply.

use std::sync::Arc;
use std::time::Duration;

use shared::config::Secrets;
use shared::connections::Connections;
use shared::db::{Database, Role};
use shared::kafka::KafkaPublisher;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::OrderApiConfig;
use crate::limits::Limits;
use crate::problem::ApiError;
use crate::publish::OutboxPublisher;
use crate::store::StoreError;

/// A pooled connection idle for longer than this is checked before use: the server or the
/// network may have dropped it (a Lambda instance sits frozen between requests).
pub const CHECK_CONNECTIONS_IDLE_FOR: Duration = Duration::from_secs(10);

/// The pool, the producer, and what is needed to refresh rotated database credentials.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    database: Database,
    publisher: KafkaPublisher,
    outbox: OutboxPublisher,
    limits: Limits,
}

impl AppState {
    /// Builds the lazily connecting pool and the producer from settings.
    pub async fn from_config(config: &OrderApiConfig) -> anyhow::Result<Self> {
        Self::with_secrets(config, Secrets::new()).await
    }

    /// As [`Self::from_config`], reading secrets through the given client (tests point it
    /// at the local emulator explicitly).
    pub async fn with_secrets(config: &OrderApiConfig, secrets: Secrets) -> anyhow::Result<Self> {
        let Connections {
            database,
            publisher,
        } = Connections::open(config, &secrets).await?;
        Ok(Self::build(database, publisher, config.limits.clone()))
    }

    /// From ready-made parts (tests, benchmarks), with the default abuse limits;
    /// credentials are never refreshed. Must be called within a Tokio runtime (it starts the
    /// outbox publishing task).
    pub fn new(pool: PgPool, publisher: KafkaPublisher) -> Self {
        Self::with_limits(pool, publisher, Limits::default())
    }

    /// As [`Self::new`], with the given limits (tests and benchmarks set their own).
    pub fn with_limits(pool: PgPool, publisher: KafkaPublisher, limits: Limits) -> Self {
        Self::build(
            Database::from_pool(&pool, Role::OrderApi),
            publisher,
            limits,
        )
    }

    fn build(database: Database, publisher: KafkaPublisher, limits: Limits) -> Self {
        Self(Arc::new(Inner {
            outbox: OutboxPublisher::start(database.pool(), publisher.clone()),
            database,
            publisher,
            limits,
        }))
    }

    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    pub fn pool(&self) -> &PgPool {
        self.0.database.pool()
    }

    pub fn publisher(&self) -> &KafkaPublisher {
        &self.0.publisher
    }

    pub fn outbox(&self) -> &OutboxPublisher {
        &self.0.outbox
    }

    /// Turns a repository failure into a response, first refreshing the database
    /// credentials if the server refused them (the secret may have been rotated).
    pub(crate) async fn fail(&self, err: StoreError) -> ApiError {
        // The outbox marks share the pool, so they follow refreshed credentials too.
        if let StoreError::Unavailable(cause) = &err {
            self.0.database.recover(cause).await;
        }
        ApiError::from(err)
    }

    /// As [`Self::fail`], for a whole result.
    pub(crate) async fn check<T>(&self, result: Result<T, StoreError>) -> Result<T, ApiError> {
        match result {
            Ok(value) => Ok(value),
            Err(err) => Err(self.fail(err).await),
        }
    }
}

/// The pool settings of [`shared::db::pool_options`], except that a connection is checked before use
/// only when it sat idle for a while: sqlx's default pings before every use, one extra round
/// trip per request on a busy instance. A connection that fails anyway is discarded by sqlx
/// and the request answers `503`, so the client's retry gets a fresh one.
pub fn request_pool(max_connections: u32) -> PgPoolOptions {
    shared::db::pool_options(max_connections)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_CONNECTIONS_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}
