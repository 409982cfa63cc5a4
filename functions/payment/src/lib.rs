//! The payment function: charges orders paid by card once their stock is reserved, and
//! refunds them when they are cancelled, through Stripe (docs/payments.md).
//!
//! An MSK trigger on `order-reserved` and `order-cancelled` delivers batches to the shared
//! consumer seam ([`shared::consumer`]), which hands the decoded records to [`Payments`]:
//!
//! - [`config`]: the function's settings, the Stripe key from Secrets Manager in AWS.
//! - [`stripe`]: the Stripe calls, over plain HTTPS.
//! - `store`: the `payments` rows that make each charge and refund happen at most once.
//! - [`handler`]: claim, call Stripe, record the outcomes and their events, publish.
//!
//! `main.rs` only reads the config and serves [`consumer_from_config`].

pub mod config;
pub mod handler;
mod store;
pub mod stripe;

pub use config::{PaymentConfig, StripeKey, StripeSettings};
pub use handler::{BatchSummary, PaymentError, Payments};
pub use stripe::Stripe;

use shared::config::Secrets;
use shared::connections::Connections;
use shared::consumer::Consumer;
use shared::db::{Database, Role};
use shared::kafka::KafkaPublisher;
use sqlx::PgPool;

/// This function's name in `dead_letters`, and its binary's name.
pub const CONSUMER: &str = "payment";

/// The payment consumer over a ready-made pool, producer and Stripe client (tests,
/// benchmarks).
pub fn consumer(
    pool: PgPool,
    publisher: KafkaPublisher,
    stripe: Stripe,
    concurrency: usize,
) -> Consumer<Payments> {
    let database = Database::from_pool(&pool, Role::Payment);
    Consumer::new(
        Payments::new(database.pool().clone(), publisher, stripe, concurrency),
        database,
    )
}

/// The payment consumer from its settings: pool, producer and Stripe client built once per
/// cold start (Lambda and the local runtime alike).
pub async fn consumer_from_config(
    config: &PaymentConfig,
    secrets: &Secrets,
) -> anyhow::Result<Consumer<Payments>> {
    let Connections {
        database,
        publisher,
    } = Connections::open(config, secrets).await?;
    let key = config.stripe.key.resolve(secrets).await?;
    let stripe = Stripe::new(&config.stripe.api_base, key);
    Ok(Consumer::new(
        Payments::new(
            database.pool().clone(),
            publisher,
            stripe,
            config.concurrency,
        ),
        database,
    ))
}
