//! The stock routes: read levels and prices, and set them (an admin route, IAM-authorised
//! in AWS).

use crate::store::{self as repo, StockItem};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::domain::{Currency, Price, ProductName, StockLevel, UnitAmount};
use utoipa::ToSchema;

use crate::caller::Operator;
use crate::extract::{JsonObject, field};
use crate::handler::orders::FieldErrors;
use crate::problem::{ApiError, FieldError, Problem};
use crate::state::AppState;

/// A product's stock level and price.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockView {
    pub product_name: String,
    pub quantity: i32,
    /// The price of one unit in the smallest unit of `currency` (cents for `usd`);
    /// `null` for a product without a price, which cannot be paid for.
    #[schema(minimum = 0, maximum = 100000000)]
    pub unit_amount: Option<i64>,
    /// `null` exactly when `unitAmount` is.
    #[schema(value_type = Option<Currency>)]
    pub currency: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<StockItem> for StockView {
    fn from(item: StockItem) -> Self {
        Self {
            product_name: item.product_name.to_string(),
            quantity: item.quantity,
            unit_amount: item.price.map(|price| price.unit_amount.get()),
            currency: item.price.map(|price| price.currency.to_string()),
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
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"quantity": 50, "unitAmount": 129900, "currency": "usd"}))]
pub struct SetStockRequest {
    /// The new level: an integer from 0 to 1,000,000 (`50.0` is 50; `2.5` is refused).
    #[schema(value_type = i32, required = true, minimum = 0, maximum = 1000000)]
    pub quantity: Option<Value>,
    /// The price of one unit in the smallest unit of the currency (cents for `usd`), an
    /// integer from 0 to 100,000,000. Left out, the product keeps its price.
    #[schema(value_type = i64, required = false, minimum = 0, maximum = 100000000)]
    #[serde(default, deserialize_with = "present")]
    pub unit_amount: Option<Value>,
    /// `usd` when `unitAmount` is given without it; only together with `unitAmount`.
    #[schema(value_type = Currency, required = false)]
    #[serde(default, deserialize_with = "present")]
    pub currency: Option<Value>,
}

/// A field that is there, `null` included (`Option<Value>` alone reads `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(value).map(Some)
}

/// Reads the price fields: a price when `unitAmount` is given, none when it is left out,
/// and an error for a currency without an amount. `null` is refused rather than read as
/// "left out", as the OpenAPI document says (neither field is nullable).
fn price(body: &SetStockRequest, errors: &mut FieldErrors) -> Option<Option<Price>> {
    let unit_amount = errors.check(
        "unitAmount",
        match body.unit_amount.as_ref() {
            None => Ok(None),
            Some(Value::Null) => {
                Err("must be an integer; leave it out to keep the price".to_owned())
            }
            given => field::integer(given)
                .and_then(|raw| UnitAmount::new(raw).map_err(|err| err.0))
                .map(Some),
        },
    );
    let currency = errors.check(
        "currency",
        match body.currency.as_ref() {
            None => Ok(None),
            Some(Value::String(raw)) => Currency::parse(raw).map(Some).map_err(|err| err.0),
            Some(_) => Err("must be a string".to_owned()),
        },
    );
    match (unit_amount?, currency?) {
        (Some(unit_amount), currency) => Some(Some(Price {
            unit_amount,
            currency: currency.unwrap_or(Currency::DEFAULT),
        })),
        (None, None) => Some(None),
        (None, Some(_)) => {
            errors.extend([FieldError::new(
                "currency",
                "is only accepted together with unitAmount",
            )]);
            None
        }
    }
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

/// Sets a product's stock level, creating the product if it is new, and its price when
/// `unitAmount` is given. Operators only.
#[utoipa::path(
    put,
    path = "/api/admin/stock/{productName}",
    tag = "operators",
    security(("operatorIam" = [])),
    params(("productName" = ProductName, Path, description = "The product name, URL-encoded")),
    request_body(content = SetStockRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new stock level", body = StockView),
        (status = 400, description = "Malformed JSON or not a JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No operator credentials", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid product name, quantity, unitAmount or currency (all listed)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn set_stock(
    _: Operator,
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
    let price = price(&body, &mut errors);
    let (Some(product), Some(level), Some(price)) = (product, level, price) else {
        return Err(ApiError::Validation(errors.into_vec()));
    };
    let item = state
        .check(repo::set_stock(state.pool(), &product, level, price).await)
        .await?;
    tracing::info!(
        product = %product,
        quantity = level.get(),
        unit_amount = price.map(|price| price.unit_amount.get()),
        currency = price.map(|price| price.currency.as_str()),
        "stock level set"
    );
    Ok(Json(item.into()))
}
