use payment::PaymentConfig;
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run("payment", async {
        let config = PaymentConfig::from_env()?;
        payment::consumer_from_config(&config, &Secrets::new()).await
    })
    .await
}
