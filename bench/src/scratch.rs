//! The throwaway database every benchmark runs on is testkit's.

pub use testkit::scratch::ScratchDatabase;

use crate::settings::env;

/// A scratch database named `name` on the `DATABASE_URL` server (the local one when unset):
/// every benchmark measures on a database of its own, never on one that holds real data.
pub async fn create(name: &str) -> anyhow::Result<ScratchDatabase> {
    let base_url = env(
        "DATABASE_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/orders",
    );
    ScratchDatabase::create(&base_url, name).await
}

/// Runs `bench` on a scratch database named `name` (see [`create`]) and drops the database
/// afterwards, whether or not `bench` succeeded, so that no run leaves one behind.
pub async fn with_database<T>(
    name: &str,
    bench: impl AsyncFnOnce(&ScratchDatabase) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let database = create(name).await?;
    let outcome = bench(&database).await;
    database.drop_database().await?;
    outcome
}
