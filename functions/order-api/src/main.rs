//! The Lambda entry point: configuration, pool and producer once per cold start, then the
//! same router as every other way of serving the API.

use order_api::lambda::HttpApi;
use order_api::{AppState, OrderApiConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run("order-api", async {
        let config = OrderApiConfig::from_env()?;
        Ok(HttpApi(AppState::from_config(&config).await?))
    })
    .await
}
