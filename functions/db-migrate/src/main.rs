use db_migrate::handler::{Invocation, response_client};
use db_migrate::{Deps, MigrateConfig, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A start-up failure is kept, not returned: the handler must still answer CloudFormation.
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
    let http = response_client();
    let (deps, http) = (&deps, &http);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let invocation = Invocation::from_context(&event.context);
        handle(deps.as_ref(), http, event.payload, &invocation)
            .await
            .map(|_| ())
            .map_err(Error::from)
    }))
    .await
}
