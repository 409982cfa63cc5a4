//! Benchmark knobs, read from the environment with defaults.

use std::time::Duration;

/// A variable, or `default` when unset or empty.
pub fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A numeric variable; a value that does not parse is an error naming the variable.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(raw) if !raw.is_empty() => raw
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={raw:?} is not a valid number")),
        _ => Ok(default),
    }
}

/// Seconds from a variable.
pub fn env_secs(name: &str, default: u64) -> anyhow::Result<Duration> {
    env_number(name, default).map(Duration::from_secs)
}

/// The 1-minute load average (Linux), to show in reports how busy the machine was.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The knobs of the benchmarks that time a handler's batch against a bare loop of the same
/// client: both paths must run the same number of items at the same concurrency for their
/// ratio to mean anything, so they read them in one place.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Items per batch (mails, payments…), from the benchmark's own variable.
    pub batch: usize,
    /// Items in flight at once in both paths, `BENCH_CONCURRENCY` (default 8).
    pub concurrency: usize,
    /// Measured rounds, `BENCH_ROUNDS`, at least 1.
    pub rounds: usize,
}

impl BatchSettings {
    /// Reads the batch size from `batch_var` (default `batch`), then the shared
    /// concurrency and rounds (default `rounds`).
    pub fn from_env(batch_var: &str, batch: usize, rounds: usize) -> anyhow::Result<Self> {
        Ok(Self {
            batch: env_number(batch_var, batch)?,
            concurrency: env_number("BENCH_CONCURRENCY", 8)?,
            rounds: env_number::<usize>("BENCH_ROUNDS", rounds)?.max(1),
        })
    }

    /// Runs `bench` with these settings on a scratch database named `database`, which is
    /// dropped afterwards, so that every batch benchmark starts from empty tables.
    pub async fn run_on_scratch(
        &self,
        database: &str,
        bench: impl AsyncFnOnce(&Self, &crate::scratch::ScratchDatabase) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        crate::scratch::with_database(database, async |scratch| bench(self, scratch).await).await
    }
}
