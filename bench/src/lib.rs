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

pub mod load;
pub mod pgbench;
pub mod pipeline;
pub mod scratch;
pub mod settings;
pub mod stats;
