use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use outbox_relay::{Relay, RelayConfig};
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RelayConfig::from_env()?;
    let relay = Arc::new(Relay::from_config(&config, &Secrets::new()).await?);
    shared::metrics::emf::install()?;
    shared::lambda::serve(move |_: LambdaEvent<EventBridgeEvent<serde_json::Value>>| {
        let relay = relay.clone();
        async move { relay.run().await }
    })
    .await
}
