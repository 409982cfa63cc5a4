//! The local runtime: the whole order system in one process, with the production handlers.
//!
//! - [`system`]: wires the API, the triggers and the relay together, and stops them together.
//! - [`gateway`]: stands in for API Gateway in front of the order API: the routes and
//!   authorizers of `template.yaml` (JWT against the local Cognito user pool, IAM) and the
//!   request context the order API reads who is calling from.
//! - [`template`]: reads the MSK triggers and the relay schedule from `template.yaml`, so that
//!   local and cloud wiring cannot drift.
//! - [`metrics`]: serves the functions' metrics in Prometheus text format.
//! - [`trigger`]: emulates Lambda's MSK event source mapping for one trigger.
//!
//! The redrive of the on-failure queues is the operator's, in `operator/`.

pub mod gateway;
pub mod metrics;
pub mod system;
pub mod template;
pub mod trigger;
