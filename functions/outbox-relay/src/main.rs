use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use outbox_relay::{Relay, RelayConfig};
use shared::config::Secrets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run("outbox-relay", async {
        let config = RelayConfig::from_env()?;
        let relay = Arc::new(Relay::from_config(&config, &Secrets::new()).await?);
        Ok(shared::lambda::each_invocation(
            move |_: LambdaEvent<EventBridgeEvent<serde_json::Value>>| {
                let relay = relay.clone();
                async move { relay.run().await }
            },
        ))
    })
    .await
}
