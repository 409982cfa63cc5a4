use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use outbox_relay::{Relay, RelayConfig};
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RelayConfig::from_env()?;
    let relay = &Relay::from_config(&config, &Secrets::new()).await?;
    shared::metrics::emf::install()?;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            let report = relay.run().await;
            shared::metrics::flush();
            report
        },
    ))
    .await
}
