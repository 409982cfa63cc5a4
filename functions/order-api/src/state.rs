//! What every request shares: built once per cold start (or per test) and cloned cheaply.

use std::sync::Arc;

use anyhow::Context;
use shared::config::{DatabaseSettings, Secrets};
use shared::kafka::KafkaPublisher;
use shared::orders::StoreError;
use sqlx::PgPool;

use crate::config::OrderApiConfig;
use crate::problem::ApiError;

/// The pool, the producer, and what is needed to refresh rotated database credentials.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    pool: PgPool,
    publisher: KafkaPublisher,
    /// Present when credentials come from Secrets Manager and may be rotated.
    credentials: Option<(DatabaseSettings, Secrets)>,
}

impl AppState {
    /// Builds the lazily connecting pool and the producer from settings.
    pub async fn from_config(config: &OrderApiConfig) -> anyhow::Result<Self> {
        Self::with_secrets(config, Secrets::new()).await
    }

    /// As [`Self::from_config`], reading secrets through the given client (tests point it
    /// at the local emulator explicitly).
    pub async fn with_secrets(config: &OrderApiConfig, secrets: Secrets) -> anyhow::Result<Self> {
        let pool = shared::db::pool(&config.database, &secrets, config.max_connections)
            .await
            .context("could not configure the database pool")?;
        let publisher = KafkaPublisher::new(&config.kafka, &secrets)
            .await
            .context("could not create the Kafka producer")?;
        Ok(Self(Arc::new(Inner {
            pool,
            publisher,
            credentials: Some((config.database.clone(), secrets)),
        })))
    }

    /// From ready-made parts (tests, benchmarks); credentials are never refreshed.
    pub fn new(pool: PgPool, publisher: KafkaPublisher) -> Self {
        Self(Arc::new(Inner {
            pool,
            publisher,
            credentials: None,
        }))
    }

    pub fn pool(&self) -> &PgPool {
        &self.0.pool
    }

    pub fn publisher(&self) -> &KafkaPublisher {
        &self.0.publisher
    }

    /// Turns a repository failure into a response, first refreshing the database
    /// credentials if the server refused them (the secret may have been rotated).
    pub(crate) async fn fail(&self, err: StoreError) -> ApiError {
        if let (StoreError::Unavailable(cause), Some((settings, secrets))) =
            (&err, &self.0.credentials)
        {
            match shared::db::refresh_credentials_after(cause, &self.0.pool, settings, secrets)
                .await
            {
                Ok(true) => tracing::warn!("database refused credentials; fetched them again"),
                Ok(false) => {}
                Err(refresh) => {
                    tracing::error!(error = ?refresh, "could not refresh database credentials")
                }
            }
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
