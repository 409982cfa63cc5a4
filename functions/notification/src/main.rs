use notification::NotificationConfig;
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    shared::metrics::emf::install()?;
    let config = NotificationConfig::from_env()?;
    let consumer = notification::consumer_from_config(&config, &Secrets::new()).await?;
    shared::consumer::serve(consumer).await
}
