//! The Lambda entry point: configuration, pool and producer once per cold start, then the
//! same router as every other way of serving the API.

use order_api::{AppState, OrderApiConfig, app};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = OrderApiConfig::from_env()?;
    let state = AppState::from_config(&config).await?;
    lambda_http::run(app(state)).await
}
