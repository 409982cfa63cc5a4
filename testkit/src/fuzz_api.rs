//! The order API under schemathesis, against the whole system on private services: what the
//! `fuzz-api` binary runs (its documentation says what is fuzzed, as whom, and why so).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Instant;

use anyhow::Context;
use serde_json::Value;
use sqlx::PgPool;
use tokio::process::Command;

use crate::runtime::workspace_root;
use crate::system::{TestServices, TestSystem, run_to_end};

/// What a run is given: `FUZZ_*` variables, and arguments for `schemathesis run`.
#[derive(Debug, Clone)]
pub struct Options {
    /// `FUZZ_SEED`: the generation seed (the same seed and code give the same run).
    pub seed: String,
    /// `FUZZ_MAX_EXAMPLES`: test cases per operation and phase.
    pub max_examples: String,
    /// `FUZZ_WORKERS`: concurrent schemathesis workers.
    pub workers: String,
    /// `FUZZ_CUSTOMER`: the customer signed in.
    pub customer: String,
    /// Added to `schemathesis run`, before the document's URL.
    pub extra_args: Vec<String>,
}

impl Options {
    /// The `FUZZ_*` variables, or their defaults.
    pub fn from_env(extra_args: Vec<String>) -> Self {
        Self {
            seed: crate::env("FUZZ_SEED", "20251129"),
            max_examples: crate::env("FUZZ_MAX_EXAMPLES", "150"),
            workers: crate::env("FUZZ_WORKERS", "1"),
            customer: crate::env("FUZZ_CUSTOMER", "ada@example.com"),
            extra_args,
        }
    }
}

/// Says something on stderr, as every line of a run does.
fn log(message: &str) {
    eprintln!("[fuzz-api] {message}");
}

/// The runtime's settings on top of the test harness's: the relay quick, the log quiet, the
/// abuse limits off and the guest's quantity ceiling at its default (the binary says why).
fn settings() -> Vec<(String, String)> {
    [
        ("LOCAL_RELAY_INTERVAL_SECS", "1".to_owned()),
        ("RUST_LOG", crate::env("RUST_LOG", "warn")),
        ("ABUSE_LIMITS", "off".to_owned()),
        ("LIMIT_GUEST_MAX_QUANTITY", "10".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Installs schemathesis if needed (`scripts/install-dev-tools`, which pins its version),
/// starts the system, fuzzes it and stops it. `Ok(true)` when schemathesis exited 0 with 0
/// findings.
pub async fn run(options: &Options) -> anyhow::Result<bool> {
    let schemathesis = install_schemathesis().await?;
    let system = TestSystem::start(TestServices::start().await, &settings()).await?;
    let outcome = fuzz(&system, &schemathesis, options).await;
    if let Err(err) = system.stop().await {
        log(&format!("{err:#}"));
    }
    outcome
}

/// The schemathesis program, installed by `scripts/install-dev-tools` (a no-op once there).
async fn install_schemathesis() -> anyhow::Result<PathBuf> {
    let output = Command::new(workspace_root().join("scripts/install-dev-tools"))
        .arg("schemathesis")
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("cannot run scripts/install-dev-tools")?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/install-dev-tools schemathesis failed ({})",
        output.status
    );
    let bin = String::from_utf8(output.stdout).context("install-dev-tools printed no path")?;
    Ok(Path::new(bin.trim()).join("schemathesis"))
}

/// Signs the customer in, loads the seed data, runs schemathesis and summarises its report.
async fn fuzz(system: &TestSystem, schemathesis: &Path, options: &Options) -> anyhow::Result<bool> {
    log(&format!(
        "local-runtime on {}, broker {}, SMTP 127.0.0.1:{}",
        system.runtime.base_url(),
        system.services.broker.bootstrap(),
        system.services.mail.smtp_port()
    ));
    let token = customer_token(&system.binary, &options.customer).await?;
    seed(&system.scratch.pool).await?;
    let report = std::env::temp_dir().join(format!(
        "fuzz-api-report.{}.json",
        uuid::Uuid::now_v7().simple()
    ));
    let started = Instant::now();
    let status = schemathesis_run(schemathesis, options, system, &token, &report).await;
    let summary = std::fs::read(&report)
        .context("no report")
        .and_then(|json| Summary::from_report(&json));
    let _ = std::fs::remove_file(&report);
    let status = status?;
    let passed = status.success() && matches!(&summary, Ok(summary) if summary.findings() == 0);
    log(&format!(
        "schemathesis took {}s: {} (exit {})",
        started.elapsed().as_secs(),
        match &summary {
            Ok(summary) => summary.line(),
            Err(err) => format!("{err:#}"),
        },
        status
            .code()
            .map_or_else(|| status.to_string(), |code| code.to_string())
    ));
    if !passed {
        log("the runtime's last log lines:");
        eprintln!("{}", crate::last_lines(system.runtime.log_path(), 20));
    }
    Ok(passed)
}

/// The customer's ID token from the local Cognito user pool, by the runtime's `token`
/// subcommand (it signs in with the demo password `scripts/services up` set).
async fn customer_token(binary: &Path, customer: &str) -> anyhow::Result<String> {
    let failed = || {
        format!(
            "could not sign {customer} in to the local Cognito user pool (scripts/services up creates it)"
        )
    };
    let output = Command::new(binary)
        .args(["token", customer])
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .await
        .with_context(failed)?;
    anyhow::ensure!(output.status.success(), failed());
    Ok(String::from_utf8(output.stdout)
        .with_context(failed)?
        .trim()
        .to_owned())
}

/// The demo stock (seed/stock.sql), and records the consumers refused, so that listing and
/// replaying dead letters meet real ones (a replayed record is refused again and becomes a
/// new dead letter).
async fn seed(pool: &PgPool) -> anyhow::Result<()> {
    let mut db = pool.acquire().await.context("no connection for the seed")?;
    crate::orders::load_demo_stock(&mut db).await?;
    sqlx::query!(
        r#"INSERT INTO dead_letters (consumer, topic, "partition", "offset", key, value, error)
           SELECT consumer, 'order-placed', 0, n, convert_to('Laptop', 'UTF8'),
                  convert_to('{oops', 'UTF8'), 'value is not valid JSON'
           FROM generate_series(1, 20) AS n,
                (VALUES ('inventory'), ('notification')) AS consumers (consumer)"#
    )
    .execute(pool)
    .await
    .context("could not insert the dead letters")?;
    Ok(())
}

/// `schemathesis run` with every check and phase, the fixed seed and the options, writing
/// its JSON report to `report`; its exit status.
async fn schemathesis_run(
    schemathesis: &Path,
    options: &Options,
    system: &TestSystem,
    token: &str,
    report: &Path,
) -> anyhow::Result<ExitStatus> {
    log(&format!(
        "{}: all checks; phases examples, coverage, fuzzing, stateful; seed {}; at most {} examples per operation; {} worker(s)",
        schemathesis_version(schemathesis).await,
        options.seed,
        options.max_examples,
        options.workers
    ));
    let mut command = Command::new(schemathesis);
    command
        .current_dir(workspace_root())
        // The customer schemathesis is (testkit/fuzz/schemathesis.toml reads the variable).
        .env("FUZZ_CUSTOMER_TOKEN", token)
        .args([
            "--no-color",
            "--config-file",
            "testkit/fuzz/schemathesis.toml",
            "run",
        ])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--seed", &options.seed])
        .args(["--max-examples", &options.max_examples])
        .args(["--workers", &options.workers])
        .args(["--generation-database", "none"])
        .args(["--report", "json", "--report-json-path"])
        .arg(report)
        .args(&options.extra_args)
        .arg(format!("{}/api/openapi.json", system.runtime.base_url()));
    run_to_end(&mut command).await
}

/// "schemathesis 4.32.5", from the installed program (the pin is install-dev-tools').
async fn schemathesis_version(schemathesis: &Path) -> String {
    let output = Command::new(schemathesis).arg("--version").output().await;
    let printed = output
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .unwrap_or_default();
    // It prints "schemathesis, version 4.32.5".
    match printed.split_whitespace().last() {
        Some(version) => format!("schemathesis {version}"),
        None => "schemathesis".to_owned(),
    }
}

/// What schemathesis' JSON report says: failures, errors and warnings all count as findings.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub failures: u64,
    pub errors: u64,
    /// "KIND: LABEL", one per operation a warning concerns.
    pub warnings: Vec<String>,
    pub test_cases: u64,
    /// The test cases the hooks dropped as documented refusals.
    pub filtered: u64,
}

impl Summary {
    /// Reads the report (`--report json`), and lists each warning on stderr.
    pub fn from_report(json: &[u8]) -> anyhow::Result<Self> {
        let report: Value = serde_json::from_slice(json).context("the report is not JSON")?;
        let count = |key: &str| -> anyhow::Result<u64> {
            report[key]
                .as_array()
                .with_context(|| format!("the report has no {key} list"))?
                .iter()
                .map(|group| group["count"].as_u64().context("a group without a count"))
                .sum()
        };
        // Every warning kind is present, each with the operations it concerns.
        let mut warnings = Vec::new();
        let kinds = report["warnings"]
            .as_object()
            .context("the report has no warnings")?;
        for (kind, labels) in kinds {
            for label in labels.as_array().context("warnings that are not a list")? {
                let label = label
                    .as_str()
                    .map_or_else(|| label.to_string(), str::to_owned);
                log(&format!("warning {kind}: {label}"));
                warnings.push(format!("{kind}: {label}"));
            }
        }
        let number = |value: &Value, what: &str| {
            value
                .as_u64()
                .with_context(|| format!("the report has no {what}"))
        };
        Ok(Self {
            failures: count("failures")?,
            errors: count("errors")?,
            warnings,
            test_cases: number(&report["test_cases"]["generated"], "test_cases.generated")?,
            filtered: number(&report["filtered"], "filtered")?,
        })
    }

    pub fn findings(&self) -> u64 {
        self.failures + self.errors + self.warnings.len() as u64
    }

    /// The one line a run ends with.
    pub fn line(&self) -> String {
        format!(
            "{} findings ({} failures, {} errors, {} warnings) in {} test cases; \
             {} documented refusals accepted (reused Idempotency-Key, guest quantity, \
             another customer's address, a malformed order id)",
            self.findings(),
            self.failures,
            self.errors,
            self.warnings.len(),
            self.test_cases,
            self.filtered
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_error_and_warning_is_a_finding() {
        let report = br#"{
            "failures": [{"count": 2}, {"count": 1}],
            "errors": [{"count": 1}],
            "warnings": {"missing_test_data": ["GET /a", "GET /b"], "unused_openapi_auth": []},
            "test_cases": {"generated": 3120},
            "filtered": 7
        }"#;
        let summary = Summary::from_report(report).unwrap();
        assert_eq!(summary.findings(), 6);
        assert_eq!(
            summary.warnings,
            ["missing_test_data: GET /a", "missing_test_data: GET /b"]
        );
        assert!(summary.line().starts_with(
            "6 findings (3 failures, 1 errors, 2 warnings) in 3120 test cases; 7 documented"
        ));
    }

    #[test]
    fn a_report_without_findings_counts_none() {
        let report = br#"{"failures": [], "errors": [], "warnings": {},
            "test_cases": {"generated": 10}, "filtered": 0}"#;
        assert_eq!(Summary::from_report(report).unwrap().findings(), 0);
    }
}
