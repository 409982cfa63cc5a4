//! A signed-in customer's routes, `/api/me/orders`: place an order, list and read one's own,
//! cancel one's own. The owner is the token's `sub` and mail goes to the token's `email`,
//! never to an address the body names. Another customer's order answers `404`, exactly as
//! an unknown id does.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use shared::trace::TraceContext;
use utoipa::IntoParams;

use super::admin_orders::cancelled;
use super::orders::{
    ListOrdersParams, OrderPageView, OrderRequest, OrderView, PlaceOrderRequest, Placer, order_for,
    order_id_from, order_page, query_params,
};
use crate::caller::Customer;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::store::OrderQuery;

/// Where a customer reads the orders they placed.
const MY_ORDERS: &str = "/api/me/orders";

/// Filters and position for `GET /api/me/orders`; every value is checked, all at once.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct MyOrdersParams {
    /// Only orders in this status.
    #[param(value_type = Option<shared::domain::OrderStatus>)]
    pub status: Option<String>,
    /// Orders per page, 1–100.
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
    /// The `nextCursor` of the previous page, passed back unchanged.
    #[param(pattern = "^[0-9]{1,16}_[0-9a-f]{32}$")]
    pub cursor: Option<String>,
}

/// Places an order for the signed-in customer. The body is the guest's; `customerEmail` may
/// be left out, and if given must be the account's own address. Customers have looser
/// abuse limits than guests and may order up to 10,000 units.
#[utoipa::path(
    post,
    path = "/api/me/orders",
    tag = "my orders",
    security(("customerJwt" = [])),
    request_body(content = PlaceOrderRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255,
         description = "1–255 characters. Repeating a request with the same key and body returns the first order and creates nothing; the same key with another body (or from another account) is 422."),
        ("traceparent" = Option<String>, Header, nullable = false,
         description = "W3C Trace Context; a missing or malformed one starts a new trace."),
    ),
    responses(
        (status = 201, description = "Order placed (or replayed for a repeated Idempotency-Key)", body = super::orders::OrderPlaced,
         headers(("Location" = String, description = "/api/me/orders/{orderId}"))),
        (status = 400, description = "Malformed JSON or not a JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token (answered by API Gateway, or here for a token without `sub`)"),
        (status = 413, description = "Body larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, all listed, a `customerEmail` that is not the account's among them; or a reused Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many orders from this client address or for this account's address in the current window; nothing was written", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u32, description = "Seconds until the window ends"))),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn place_my_order(
    customer: Customer,
    request: OrderRequest,
) -> Result<Response, ApiError> {
    request.place(Placer::Customer(&customer), MY_ORDERS).await
}

/// The signed-in customer's orders, newest first, with keyset pagination.
#[utoipa::path(
    get,
    path = "/api/me/orders",
    tag = "my orders",
    security(("customerJwt" = [])),
    params(MyOrdersParams),
    responses(
        (status = 200, description = "One page of the customer's orders", body = OrderPageView),
        (status = 400, description = "The query string could not be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token"),
        (status = 422, description = "Invalid status, limit or cursor (all listed)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_my_orders(
    customer: Customer,
    State(state): State<AppState>,
    query: Result<Query<MyOrdersParams>, QueryRejection>,
) -> Result<Json<OrderPageView>, ApiError> {
    let params = query_params(query)?;
    let mut query = OrderQuery::try_from(&ListOrdersParams {
        customer_email: None,
        status: params.status,
        limit: params.limit,
        cursor: params.cursor,
    })
    .map_err(ApiError::Validation)?;
    query.owner = Some(customer.sub);
    order_page(&state, &query).await
}

/// One of the signed-in customer's orders.
#[utoipa::path(
    get,
    path = "/api/me/orders/{id}",
    tag = "my orders",
    security(("customerJwt" = [])),
    params(("id" = uuid::Uuid, Path, description = "The order id returned when it was placed")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such order among the customer's", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_my_order(
    customer: Customer,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderView>, ApiError> {
    let id = order_id_from(path)?;
    order_for(&state, id, |order| {
        order.customer_sub.as_deref() == Some(customer.sub.as_str())
    })
    .await
    .map(|order| Json(order.into()))
}

/// Cancels one of the signed-in customer's orders, with the operator's rules: held stock
/// goes back, a charged order is refunded, and the customer is mailed.
#[utoipa::path(
    post,
    path = "/api/me/orders/{id}/cancel",
    tag = "my orders",
    security(("customerJwt" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The order id returned when it was placed"),
        ("traceparent" = Option<String>, Header, nullable = false,
         description = "W3C Trace Context; a missing or malformed one starts a new trace."),
    ),
    responses(
        (status = 200, description = "The order, now CANCELLED", body = OrderView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such order among the customer's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is already REJECTED or CANCELLED, or its charge is being made right now (retry after Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn cancel_my_order(
    customer: Customer,
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderView>, ApiError> {
    let id = order_id_from(path)?;
    cancelled(&state, id, Some(&customer.sub), trace).await
}
