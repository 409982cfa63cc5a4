use inventory::InventoryConfig;
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run("inventory", async {
        let config = InventoryConfig::from_env()?;
        inventory::consumer_from_config(&config, &Secrets::new()).await
    })
    .await
}
