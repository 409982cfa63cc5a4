use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use outbox_relay::{RelayConfig, run_once};
use shared::config::Secrets;
use shared::kafka::KafkaPublisher;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RelayConfig::from_env()?;
    let secrets = Secrets::new();
    let pool = shared::db::pool(&config.database, &secrets, 2).await?;
    let publisher = KafkaPublisher::new(&config.kafka, &secrets).await?;
    let (pool, publisher, limits) = (&pool, &publisher, config.limits);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            run_once(pool, publisher, limits).await.map(|_| ())
        },
    ))
    .await
}
