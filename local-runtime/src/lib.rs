//! The local runtime: the whole order system in one process, with the production handlers.
//!
//! - [`system`]: wires the API, the triggers and the relay together, and stops them together.
//! - [`template`]: reads the MSK triggers and the relay schedule from `template.yaml`, so that
//!   local and cloud wiring cannot drift.
//! - [`metrics`]: serves the functions' metrics in Prometheus text format.
//! - [`trigger`]: emulates Lambda's MSK event source mapping for one trigger.
//! - [`redrive`]: hands the batches an MSK trigger discarded into its on-failure queue to the
//!   consumer function again (`local-runtime redrive`).

pub mod metrics;
pub mod redrive;
pub mod system;
pub mod template;
pub mod trigger;
