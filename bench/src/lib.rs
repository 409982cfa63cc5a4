//! Helpers for the benchmark commands in `src/bin/` (run them with
//! `cargo run --release -p bench --bin <name>`). Each command drives real services and prints
//! a comparison; none of this runs under `cargo test`.
//!
//! - [`stats`]: latency percentiles from raw samples.
//! - [`cpu`]: CPU time by program from `/proc`, to split an order's cost between the
//!   database, the broker, the functions and the mail sink.
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
//!   and stock, the broker, `order.placed` batches, and guests' and customers' order load
//!   against the real router behind the local API Gateway (`local_runtime::gateway`).
//! - [`local_runtime_binary`]: the runtime the end-to-end commands start, and
//!   [`release_binaries`]: any of the workspace's binaries, built with the release profile.

pub mod cpu;
pub mod load;
pub mod pgbench;
pub mod pipeline;
pub mod scratch;
pub mod settings;
pub mod soak;
pub mod stats;
pub mod workload;

use std::collections::HashMap;
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
    let mut built = release_binaries(&[("local-runtime", "local-runtime")]).await?;
    Ok(built
        .remove("local-runtime")
        .expect("release_binaries returns every binary"))
}

/// Builds the given `(package, binary)` pairs now with the release profile, in one cargo
/// run, and returns each binary's path by name.
pub async fn release_binaries(
    binaries: &[(&str, &str)],
) -> anyhow::Result<HashMap<String, PathBuf>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let names: Vec<&str> = binaries.iter().map(|(_, binary)| *binary).collect();
    eprintln!("building {} (release)...", names.join(", "));
    let mut command = Command::new(cargo);
    command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ]);
    for (package, binary) in binaries {
        command.args(["-p", package, "--bin", binary]);
    }
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("could not run cargo")?;
    ensure!(
        output.status.success(),
        "building {} failed",
        names.join(", ")
    );
    let built: HashMap<String, PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?;
            let executable = message["executable"].as_str()?;
            names
                .contains(&name)
                .then(|| (name.to_owned(), PathBuf::from(executable)))
        })
        .collect();
    for name in &names {
        ensure!(
            built.contains_key(*name),
            "cargo built no {name} executable"
        );
    }
    Ok(built)
}
