//! `GET /api/health`: whether the database answers, within a short timeout.

use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// How long the health check waits for the database.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The health check's answer when everything works.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Checks the database with `SELECT 1`.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    tokio::time::timeout(
        HEALTH_TIMEOUT,
        sqlx::query!("SELECT 1 AS alive").fetch_one(state.pool()),
    )
    .await
    .context("the database did not answer in time")
    .and_then(|result| result.context("the database refused the health check"))
    .map_err(ApiError::Unavailable)?;
    Ok(Json(Health {
        status: "ok".to_owned(),
    }))
}
