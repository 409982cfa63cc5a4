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
