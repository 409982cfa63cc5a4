//! An operator's order routes, `/api/admin/orders` (IAM-authorised in AWS; open on
//! 127.0.0.1 locally): list and filter everyone's orders, read any order, cancel any order.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use shared::lifecycle::CancelRefusal;
use shared::trace::TraceContext;
use uuid::Uuid;

use super::orders::{
    ListOrdersParams, OrderPageView, OrderView, order_for, order_id_from, order_page, query_params,
};
use crate::caller::{CustomerSub, Operator};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::store::{self as repo, CancelError, OrderQuery};

/// Everyone's orders, newest first, optionally filtered, with keyset pagination.
#[utoipa::path(
    get,
    path = "/api/admin/orders",
    operation_id = "list_all_orders",
    tag = "operators",
    security(("operatorIam" = [])),
    params(ListOrdersParams),
    responses(
        (status = 200, description = "One page of orders", body = OrderPageView),
        (status = 400, description = "The query string could not be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No operator credentials", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filters, limit or cursor (all listed)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_orders(
    _: Operator,
    State(state): State<AppState>,
    query: Result<Query<ListOrdersParams>, QueryRejection>,
) -> Result<Json<OrderPageView>, ApiError> {
    let query = OrderQuery::try_from(&query_params(query)?).map_err(ApiError::Validation)?;
    order_page(&state, &query).await
}

/// Any order by id, whoever placed it.
#[utoipa::path(
    get,
    path = "/api/admin/orders/{id}",
    operation_id = "get_any_order",
    tag = "operators",
    security(("operatorIam" = [])),
    params(("id" = Uuid, Path, description = "The order id")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No operator credentials", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_order(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderView>, ApiError> {
    let id = order_id_from(path)?;
    order_for(&state, id, |_| true)
        .await
        .map(|order| Json(order.into()))
}

/// Cancels any order: held stock goes back, a charged order is refunded by the payment
/// function, `order.cancelled` is published and the customer is mailed.
#[utoipa::path(
    post,
    path = "/api/admin/orders/{id}/cancel",
    operation_id = "cancel_any_order",
    tag = "operators",
    security(("operatorIam" = [])),
    params(
        ("id" = Uuid, Path, description = "The order id"),
        ("traceparent" = Option<String>, Header, nullable = false,
         description = "W3C Trace Context. The order's events and log lines join this trace; a missing or malformed one starts a new trace, never an error."),
    ),
    responses(
        (status = 200, description = "The order, now CANCELLED", body = OrderView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No operator credentials", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is already REJECTED or CANCELLED (`urn:problem:order-api:order-final`), or its charge is being made right now (`urn:problem:order-api:payment-in-progress`, retry after Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn cancel_order(
    _: Operator,
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderView>, ApiError> {
    let id = order_id_from(path)?;
    cancelled(&state, id, None, trace).await
}

/// Cancels order `id` (only if `owner`'s, when given) and answers with it as it now is.
pub(crate) async fn cancelled(
    state: &AppState,
    id: Uuid,
    owner: Option<&CustomerSub>,
    trace: TraceContext,
) -> Result<Json<OrderView>, ApiError> {
    let rows = match repo::cancel_order(state.pool(), id, owner, trace).await {
        Ok(rows) => rows,
        Err(CancelError::Store(err)) => return Err(state.fail(err).await),
        Err(CancelError::NotFound) => return Err(ApiError::OrderNotFound(id)),
        Err(CancelError::Refused(CancelRefusal::Final(status))) => {
            return Err(ApiError::OrderFinal { id, status });
        }
        Err(CancelError::Refused(CancelRefusal::PaymentInProgress)) => {
            return Err(ApiError::PaymentInProgress { id });
        }
    };
    tracing::info!("order cancelled");
    shared::metrics::order_cancelled();
    state.outbox().hand_over(rows).await;
    state
        .check(repo::get_order(state.pool(), id).await)
        .await?
        .map(|order| Json(order.into()))
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("cancelled order {id} vanished")))
}
