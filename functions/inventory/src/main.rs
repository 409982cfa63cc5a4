use inventory::InventoryConfig;
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    shared::metrics::emf::install()?;
    let config = InventoryConfig::from_env()?;
    let consumer = inventory::consumer_from_config(&config, &Secrets::new()).await?;
    shared::consumer::serve(consumer).await
}
