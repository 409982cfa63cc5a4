//! The order system's shared core, used by every Lambda function and the local runtime.
//!
//! - [`domain`]: validated order types, parsed once at the edge.
//! - [`events`]: the CloudEvents contract on the Kafka topics.
//! - [`config`]: typed settings from the environment and Secrets Manager.
//! - [`db`]: the PostgreSQL pool, embedded migrations, error classification, and recovering
//!   rotated credentials.
//! - [`kafka`]: the idempotent producer.
//! - [`outbox`]: enqueue in a transaction, publish after commit, mark published.
//! - [`msk`]: decoding and building the Lambda MSK event, and dead-lettering poison records.
//! - [`consumer`]: the one seam every MSK-triggered function goes through.
//! - [`lambda`]: serving a function on classic Lambda and on Lambda Managed Instances alike,
//!   and pool sizes that follow the instance's concurrency.
//! - [`metrics`]: the business and pipeline metrics, as EMF on Lambda and Prometheus locally.
//! - [`redact`]: masking email addresses in log lines and error text.
//! - [`trace`]: the W3C `traceparent` that makes one order's journey one trace.
//!
//! Only what two or more functions use lives here; each function keeps its own SQL in its
//! `store` module.

pub mod config;
pub mod connections;
pub mod consumer;
pub mod db;
pub mod domain;
pub mod events;
pub mod kafka;
pub mod lambda;
pub mod lifecycle;
pub mod metrics;
pub mod msk;
pub mod outbox;
pub mod redact;
pub mod trace;
