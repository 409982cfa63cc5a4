//! The stock routes: read levels, and set one (an admin route, IAM-authorised in AWS).

use crate::store::{self as repo, StockItem};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::domain::{ProductName, StockLevel};
use utoipa::ToSchema;

use crate::extract::{JsonObject, field};
use crate::handler::orders::FieldErrors;
use crate::problem::{ApiError, FieldError, Problem};
use crate::state::AppState;

/// A product's stock level.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockView {
    pub product_name: String,
    pub quantity: i32,
    pub updated_at: DateTime<Utc>,
}

impl From<StockItem> for StockView {
    fn from(item: StockItem) -> Self {
        Self {
            product_name: item.product_name,
            quantity: item.quantity,
            updated_at: item.updated_at,
        }
    }
}

/// Every product's stock level, by product name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StockListView {
    pub items: Vec<StockView>,
}

/// The body of `PUT /api/stock/{productName}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"quantity": 50}))]
pub struct SetStockRequest {
    /// The new level: an integer from 0 to 1,000,000 (`50.0` is 50; `2.5` is refused).
    #[schema(value_type = i32, required = true, minimum = 0, maximum = 1000000)]
    pub quantity: Option<Value>,
}

fn product_name(path: Result<Path<String>, PathRejection>) -> Result<ProductName, ApiError> {
    let Path(raw) =
        path.map_err(|_| ApiError::bad_request("The product name could not be read"))?;
    ProductName::parse(&raw)
        .map_err(|err| ApiError::Validation(vec![FieldError::new("productName", err.0)]))
}

/// Every product's stock level.
#[utoipa::path(
    get,
    path = "/api/stock",
    tag = "stock",
    responses(
        (status = 200, description = "All stock levels", body = StockListView),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_stock(State(state): State<AppState>) -> Result<Json<StockListView>, ApiError> {
    let items = state.check(repo::list_stock(state.pool()).await).await?;
    Ok(Json(StockListView {
        items: items.into_iter().map(StockView::from).collect(),
    }))
}

/// One product's stock level.
#[utoipa::path(
    get,
    path = "/api/stock/{productName}",
    tag = "stock",
    params(("productName" = ProductName, Path, description = "The product name, URL-encoded")),
    responses(
        (status = 200, description = "The stock level", body = StockView),
        (status = 404, description = "Unknown product", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid product name", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_stock(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<StockView>, ApiError> {
    let product = product_name(path)?;
    state
        .check(repo::get_stock(state.pool(), &product).await)
        .await?
        .map(|item| Json(item.into()))
        .ok_or_else(|| ApiError::NotFound(format!("No stock is recorded for {product:?}")))
}

/// Sets a product's stock level, creating the product if it is new.
#[utoipa::path(
    put,
    path = "/api/stock/{productName}",
    tag = "stock",
    params(("productName" = ProductName, Path, description = "The product name, URL-encoded")),
    request_body(content = SetStockRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new stock level", body = StockView),
        (status = 400, description = "Malformed JSON or not a JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid product name or quantity (all listed)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn set_stock(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    JsonObject(body): JsonObject<SetStockRequest>,
) -> Result<Json<StockView>, ApiError> {
    let mut errors = FieldErrors::default();
    let product = match product_name(path) {
        Ok(product) => Some(product),
        Err(ApiError::Validation(mut found)) => {
            errors.extend(found.drain(..));
            None
        }
        Err(other) => return Err(other),
    };
    let level = errors.check(
        "quantity",
        field::integer(body.quantity.as_ref())
            .and_then(|raw| StockLevel::new(raw).map_err(|err| err.0)),
    );
    let (Some(product), Some(level)) = (product, level) else {
        return Err(ApiError::Validation(errors.into_vec()));
    };
    let item = state
        .check(repo::set_stock(state.pool(), &product, level).await)
        .await?;
    tracing::info!(product = %product, quantity = level.get(), "stock level set");
    Ok(Json(item.into()))
}
