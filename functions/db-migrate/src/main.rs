use std::sync::Arc;

use db_migrate::handler::{Invocation, response_client};
use db_migrate::{Deps, MigrateConfig, handle};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::lambda::run("db-migrate", async {
        // A start-up failure is kept, not returned: the handler must still answer
        // CloudFormation.
        let deps = match MigrateConfig::from_env() {
            Ok(config) => Deps::from_config(config).await,
            Err(err) => Err(err.into()),
        };
        if let Err(err) = &deps {
            tracing::error!(
                error = format!("{err:#}"),
                "start-up failed; every request will answer FAILED"
            );
        }
        let (deps, http) = (Arc::new(deps), response_client());
        Ok(shared::lambda::each_invocation(
            move |event: LambdaEvent<Value>| {
                let (deps, http) = (deps.clone(), http.clone());
                async move {
                    let invocation = Invocation::from_context(&event.context);
                    handle(deps.as_ref().as_ref(), &http, event.payload, &invocation)
                        .await
                        .map(|_| ())
                        .map_err(Error::from)
                }
            },
        ))
    })
    .await
}
