//! Integration tests of the payment function against real PostgreSQL, Kafka and localstripe,
//! with the inventory function on either side of it, as the flow runs: inventory reserves,
//! payment charges, inventory confirms or gives the stock back. Each `#[sqlx::test]` gets a
//! fresh, migrated database; each test a private localstripe it may stop and restart.

mod cancelling;
mod charging;
mod exactly_once;
mod helpers;
