//! The order system's shared core, used by every Lambda function and the local runtime.
//!
//! - [`domain`]: validated order types, parsed once at the edge.
//! - [`events`]: the CloudEvents contract on the Kafka topics.
//! - [`config`]: typed settings from the environment and Secrets Manager.
//! - [`db`]: the PostgreSQL pool, embedded migrations, error classification.
//! - [`kafka`]: the idempotent producer.
//! - [`outbox`]: enqueue in a transaction, publish after commit, relay stragglers.
//! - [`orders`]: the orders and stock repository, with idempotent order placement.
//! - [`msk`]: decoding and building the Lambda MSK event, and dead-lettering poison records.

pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod kafka;
pub mod msk;
pub mod orders;
pub mod outbox;
