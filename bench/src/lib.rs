//! Helpers for the benchmark commands in `src/bin/` (run them with
//! `cargo run --release -p bench --bin <name>`). Each command drives real services and prints
//! a comparison; none of this runs under `cargo test`.
//!
//! - [`stats`]: latency percentiles from raw samples.
//! - [`load`]: a closed-loop load generator (N clients, each sending its next request as soon
//!   as the previous one finishes) for any async request.
//! - [`pgbench`]: runs `pgbench` with a custom script and reads its throughput and
//!   per-transaction latencies.
//! - [`scratch`]: a throwaway, migrated database so a run never touches real data.
//! - [`settings`]: benchmark knobs from the environment.
//! - [`pipeline`]: the phases of the end-to-end pipeline benchmark (`--bin pipeline`):
//!   latency, sustained rate, and the open-loop load, API client and mailbox they share.
//! - [`soak`]: the mixed-fault soak (`--bin soak`): its seeded fault schedule, the faults,
//!   and the invariants checked at the end.
//! - [`workload`]: what the inventory, order API and observability commands share: products
//!   and stock, the broker, `order.placed` batches, and `POST /api/orders` load.
//! - [`local_runtime_binary`]: the runtime the end-to-end commands start.

pub mod load;
pub mod pgbench;
pub mod pipeline;
pub mod scratch;
pub mod settings;
pub mod soak;
pub mod stats;
pub mod workload;

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use serde_json::Value;
use tokio::process::Command;

/// The `local-runtime` binary: `BENCH_RUNTIME_BIN`, or built now (release) in this workspace.
pub async fn local_runtime_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("BENCH_RUNTIME_BIN")
        && !path.is_empty()
    {
        return Ok(PathBuf::from(path));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("building local-runtime (release)...");
    let output = Command::new(cargo)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args([
            "build",
            "--release",
            "-p",
            "local-runtime",
            "--bin",
            "local-runtime",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("could not run cargo to build local-runtime")?;
    ensure!(output.status.success(), "building local-runtime failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == "local-runtime"
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo built no local-runtime executable")
}
