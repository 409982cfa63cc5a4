//! The operator's room for recovery: what gives the system back the work it set aside once
//! the cause is gone (docs/failure-rules.md, "Redriving discarded batches").
//!
//! - [`redrive`]: hands the batches an MSK trigger discarded into its SQS on-failure queue to
//!   the consumer function again (`operator redrive --queue-url <url> --function <name>`).
//! - Dead letters, the poison records a consumer stored in `dead_letters` instead of failing
//!   its batch, are listed and replayed to their topic by the order API, because the replay
//!   publishes through the API's producer and answers per record:
//!   `GET /api/admin/dead-letters` and `POST /api/admin/dead-letters/{id}/replay`
//!   (`functions/order-api/src/handler/dead_letters.rs`, README.md, "Operate").
//!
//! [`consumer`] builds a consumer function by its binary's name; the local runtime builds its
//! consumers through it too.

pub mod redrive;

use std::sync::Arc;

use inventory::InventoryConfig;
use notification::NotificationConfig;
use payment::PaymentConfig;
use shared::config::Secrets;
use shared::consumer::MskFunction;

/// One consumer function by its binary's name, built from its settings as on Lambda.
pub async fn consumer(name: &str, secrets: &Secrets) -> anyhow::Result<Arc<dyn MskFunction>> {
    Ok(match name {
        inventory::CONSUMER => {
            Arc::new(inventory::consumer_from_config(&InventoryConfig::from_env()?, secrets).await?)
        }
        notification::CONSUMER => Arc::new(
            notification::consumer_from_config(&NotificationConfig::from_env()?, secrets).await?,
        ),
        payment::CONSUMER => {
            Arc::new(payment::consumer_from_config(&PaymentConfig::from_env()?, secrets).await?)
        }
        other => anyhow::bail!(
            "no consumer function is named {other:?}; use {}, {} or {}",
            inventory::CONSUMER,
            notification::CONSUMER,
            payment::CONSUMER
        ),
    })
}
