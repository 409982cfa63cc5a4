//! db-migrate: the CloudFormation custom resource that prepares the system's state on every
//! deploy (DESIGN §8).
//!
//! - [`config`]: its settings (database, Kafka, topic layout).
//! - [`provision`]: the work itself: apply `migrations/` and create missing Kafka topics.
//! - [`resource`]: the custom resource protocol: parse the request, bound the work by the
//!   function's deadline (panics and timeouts included), and always PUT an answer to the
//!   pre-signed `ResponseURL`, so that a stack never waits an hour for a silent resource.
//!
//! [`handle`] ties them together; `main.rs` only wires it into the Lambda runtime, and a
//! local runner or a test can call it in-process.

pub mod config;
pub mod provision;
pub mod resource;

pub use config::MigrateConfig;
pub use provision::{Deps, Provisioned};
pub use resource::{Answer, HandleError, handle};
