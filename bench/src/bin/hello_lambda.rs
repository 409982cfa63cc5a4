//! The baseline of the cold-start benchmark (`--bin cold_start`): the smallest function the
//! Lambda runtime can serve, echoing its event, built with the same profile as the functions.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
