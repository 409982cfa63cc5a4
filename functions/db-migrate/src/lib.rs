//! db-migrate: the CloudFormation custom resource that prepares the system's state on every
//! deploy (docs/architecture.md, "Cloud").
//!
//! - [`config`]: its settings (database, Kafka, topic layout, connection budget).
//! - [`provision`]: the work itself: apply `migrations/`, check the connection budget
//!   ([`budget`]) and create missing Kafka topics.
//! - [`handler`]: the custom resource protocol: parse the request, bound the work by the
//!   function's deadline (panics and timeouts included), and always PUT an answer to the
//!   pre-signed `ResponseURL`, so that a stack never waits an hour for a silent resource.
//!
//! [`handle`] ties them together; `main.rs` only wires it into the Lambda runtime, and a
//! local runner or a test can call it in-process.

pub mod budget;
pub mod config;
pub mod handler;
pub mod provision;

pub use config::MigrateConfig;
pub use handler::{Answer, HandleError, handle};
pub use provision::{Deps, Provisioned};
