//! The Lambda entry point: configuration, pool and producer once per cold start, then the
//! same router as every other way of serving the API.

use order_api::{AppState, OrderApiConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    shared::metrics::emf::install()?;
    let config = OrderApiConfig::from_env()?;
    let state = AppState::from_config(&config).await?;
    order_api::lambda::run(state).await
}
