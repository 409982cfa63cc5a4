//! Runs `pgbench` with a custom script and reads back its throughput and, from its
//! per-transaction log, the latency distribution.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::stats::LatencySummary;

/// How pgbench talks to the server (`-M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Simple,
    Extended,
    /// Extended protocol with prepared statements, as sqlx uses.
    Prepared,
}

impl Protocol {
    fn flag(self) -> &'static str {
        match self {
            Self::Simple => "simple",
            Self::Extended => "extended",
            Self::Prepared => "prepared",
        }
    }
}

/// One pgbench run: `pgbench -n -c <clients> -j <threads> -T <duration> -M <protocol> -f <script>`.
#[derive(Debug, Clone)]
pub struct PgBench {
    /// A libpq connection URI.
    pub database_url: String,
    pub clients: u32,
    pub threads: u32,
    pub duration: Duration,
    pub protocol: Protocol,
    /// The custom script's text (pgbench's script language).
    pub script: String,
    /// Transactions per second to hold to (`-R`), or as fast as it goes.
    pub rate: Option<f64>,
    /// The program to run; `PGBENCH` or `pgbench` on `PATH` by default.
    pub program: PathBuf,
}

impl PgBench {
    pub fn new(database_url: impl Into<String>, script: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            clients: 16,
            threads: 2,
            duration: Duration::from_secs(20),
            protocol: Protocol::Prepared,
            script: script.into(),
            rate: None,
            program: std::env::var_os("PGBENCH")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("pgbench")),
        }
    }

    /// The command line, for the report.
    pub fn describe(&self) -> String {
        format!(
            "pgbench -n -c {} -j {} -T {} -M {}{} -f <script>",
            self.clients,
            self.threads,
            self.duration.as_secs(),
            self.protocol.flag(),
            self.rate
                .map(|rate| format!(" -R {rate:.0}"))
                .unwrap_or_default()
        )
    }

    /// Runs pgbench to completion (blocking; call it from `spawn_blocking` in async code).
    pub fn run(&self) -> anyhow::Result<PgBenchReport> {
        let dir = std::env::temp_dir().join(format!("bench-pgbench-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).context("could not create a temporary folder")?;
        let result = self.run_in(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn run_in(&self, dir: &Path) -> anyhow::Result<PgBenchReport> {
        let script = dir.join("script.sql");
        std::fs::write(&script, &self.script).context("could not write the pgbench script")?;
        let mut command = Command::new(&self.program);
        if let Some(rate) = self.rate {
            command.args(["-R", &format!("{rate:.0}")]);
        }
        let output = command
            .current_dir(dir)
            .arg("-n")
            .args(["-c", &self.clients.to_string()])
            .args(["-j", &self.threads.to_string()])
            .args(["-T", &self.duration.as_secs().max(1).to_string()])
            .args(["-M", self.protocol.flag()])
            .arg("-f")
            .arg(&script)
            .arg("-l")
            .arg(format!("--log-prefix={}", dir.join("txlog").display()))
            .arg(&self.database_url)
            .output()
            .with_context(|| format!("could not run {}", self.program.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "pgbench failed ({}):\n{}\n{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut report = parse_summary(&stdout)?;
        report.latency = LatencySummary::from_samples(&mut read_transaction_log(dir)?);
        Ok(report)
    }
}

/// What pgbench reported.
#[derive(Debug, Clone)]
pub struct PgBenchReport {
    pub transactions: u64,
    pub failed: u64,
    /// Transactions per second, without the initial connection time.
    pub tps: f64,
    /// From the per-transaction log.
    pub latency: Option<LatencySummary>,
}

/// Reads the summary pgbench prints on stdout.
pub fn parse_summary(stdout: &str) -> anyhow::Result<PgBenchReport> {
    let value_after = |label: &str| {
        stdout.lines().find_map(|line| {
            line.trim()
                .strip_prefix(label)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
    };
    let transactions = value_after("number of transactions actually processed:")
        .and_then(|raw| raw.split('/').next().and_then(|n| n.parse().ok()))
        .context("pgbench printed no transaction count")?;
    let failed = value_after("number of failed transactions:")
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(0);
    let tps = value_after("tps =")
        .and_then(|raw| raw.parse().ok())
        .with_context(|| format!("pgbench printed no tps line:\n{stdout}"))?;
    Ok(PgBenchReport {
        transactions,
        failed,
        tps,
        latency: None,
    })
}

/// Latencies from `txlog.*` files: `client_id transaction_no time_us script_no epoch us`.
fn read_transaction_log(dir: &Path) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("txlog"));
        if !is_log {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("could not read {}", path.display()))?;
        latencies.extend(parse_transaction_log(&text));
    }
    Ok(latencies)
}

/// The successful transactions' latencies in one log file (failed ones log a word instead).
pub fn parse_transaction_log(text: &str) -> impl Iterator<Item = Duration> + '_ {
    text.lines().filter_map(|line| {
        line.split_whitespace()
            .nth(2)
            .and_then(|micros| micros.parse::<u64>().ok())
            .map(Duration::from_micros)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
transaction type: /tmp/script.sql
scaling factor: 1
query mode: prepared
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 81234
number of failed transactions: 0 (0.000%)
latency average = 3.938 ms
initial connection time = 21.318 ms
tps = 4062.871935 (without initial connection time)
";

    #[test]
    fn the_summary_is_read() {
        let report = parse_summary(SAMPLE).unwrap();
        assert_eq!(report.transactions, 81234);
        assert_eq!(report.failed, 0);
        assert!((report.tps - 4062.871935).abs() < 1e-6);
    }

    #[test]
    fn the_transaction_log_gives_latencies_and_skips_failures() {
        let log =
            "0 0 3120 0 1764000000 123\n0 1 failed 0 1764000000 456\n1 0 2500 0 1764000000 789\n";
        let latencies: Vec<_> = parse_transaction_log(log).collect();
        assert_eq!(
            latencies,
            [Duration::from_micros(3120), Duration::from_micros(2500)]
        );
    }
}
