//! Integration tests of the inventory function against real PostgreSQL and Kafka.
//! Each `#[sqlx::test]` gets a fresh, migrated database; Kafka is the shared local broker
//! unless a test needs an outage, then it starts a private one.

mod concurrency;
mod credentials;
mod decisions;
mod exactly_once;
mod failures;
mod helpers;
mod poison;
mod round_trips;
