use payment::PaymentConfig;
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    shared::metrics::emf::install()?;
    let config = PaymentConfig::from_env()?;
    let consumer = payment::consumer_from_config(&config, &Secrets::new()).await?;
    shared::consumer::serve(consumer).await
}
