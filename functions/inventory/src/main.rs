use aws_lambda_events::event::kafka::KafkaEvent;
use inventory::{Inventory, InventoryConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = InventoryConfig::from_env()?;
    let secrets = Secrets::new();
    let inventory = Inventory::from_config(&config, &secrets).await?;
    let (inventory, config, secrets) = (&inventory, &config, &secrets);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KafkaEvent>| async move {
            let result = inventory.handle(event.payload).await;
            let db_err = result.as_ref().err().and_then(|err| err.database_error());
            shared::db::recover_credentials(db_err, inventory.pool(), &config.database, secrets)
                .await;
            result
        },
    ))
    .await
}
