use aws_lambda_events::event::kafka::KafkaEvent;
use inventory::{Inventory, InventoryConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::config::Secrets;
use shared::db::refresh_credentials_after;
use shared::kafka::KafkaPublisher;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = InventoryConfig::from_env()?;
    let secrets = Secrets::new();
    let pool = shared::db::pool(&config.database, &secrets, config.max_connections).await?;
    let publisher = KafkaPublisher::new(&config.kafka, &secrets).await?;
    let inventory = Inventory::new(pool, publisher);
    let (inventory, config, secrets) = (&inventory, &config, &secrets);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KafkaEvent>| async move {
            let result = inventory.handle(event.payload).await;
            if let Some(db_err) = result.as_ref().err().and_then(|err| err.database_error()) {
                // A rotated password: fetch it again so that Lambda's retry logs in.
                if let Err(err) =
                    refresh_credentials_after(db_err, inventory.pool(), &config.database, secrets)
                        .await
                {
                    tracing::warn!(error = %err, "could not refresh database credentials");
                }
            }
            result
        },
    ))
    .await
}
