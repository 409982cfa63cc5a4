//! The HTTP side of the function: one router, [`app`], served by Lambda, by the local
//! runtime and by the tests alike. Requests are parsed into domain types at this edge and
//! handed to [`crate::store`]; every failure becomes problem+json in [`crate::problem`].
//!
//! The path says whom a route is for (docs/access.md): `/api/orders` and the stock reads
//! for guests, `/api/me/...` for signed-in customers, `/api/admin/...` for operators. Each
//! handler takes the [`crate::caller`] its route is for.
//!
//! - [`orders`]: what every audience's order routes share, and a guest's: place an order,
//!   read it back with its token.
//! - [`my_orders`]: a customer's own orders: place, list, read, cancel.
//! - [`admin_orders`]: every order, for operators: list, read, cancel.
//! - [`stock`]: read levels, and set one (operators).
//! - [`dead_letters`]: list the records the consumers refused, and replay one (operators).
//! - [`erasure`]: erase a customer (operators), or oneself (customers).
//! - [`health`]: whether the database answers.
//! - [`openapi`]: the OpenAPI 3.1 document generated from the route annotations.

pub mod admin_orders;
pub mod dead_letters;
pub mod erasure;
pub mod health;
pub mod my_orders;
pub mod openapi;
pub mod orders;
pub mod stock;

use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request};
use axum::middleware::Next;
use axum::response::Response;
use shared::trace::export::{self, FinishedSpan, KeyValue, SpanKind};
use shared::trace::{TRACEPARENT, TraceContext, TraceParentError};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::{Level, Span};

use crate::problem;
use crate::state::AppState;

/// The largest request body accepted; larger ones get `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole API as one router: routes, the 404 fallback, the body limit, panics caught as
/// `500`, a tracing span per request in the caller's trace (carrying the trace id, and the
/// order id once known), and problem+json for every error the framework itself produces.
pub fn app(state: AppState) -> Router {
    routes()
        .fallback(problem::not_found)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::new())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let trace = request.extensions().get::<TraceContext>();
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        trace_id = trace.map(|trace| tracing::field::display(trace.trace_id())),
                        span_id = trace.map(|trace| tracing::field::display(trace.span_id())),
                        order_id = tracing::field::Empty,
                    )
                })
                .on_request(|request: &Request<_>, _: &Span| {
                    if let Some(err) = request.extensions().get::<TraceParentError>() {
                        tracing::info!(error = %err, "malformed traceparent: the request starts a new trace");
                    }
                    tracing::debug!("started processing request");
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(axum::middleware::from_fn(join_trace))
        .layer(axum::middleware::map_response(
            problem::problem_for_bare_errors,
        ))
        .with_state(state)
}

/// Every route, as axum serves it. The same routes with their documentation are
/// [`openapi::api_router`]'s, which builds the whole OpenAPI document as it goes: a third of
/// the instructions of a cold start's init, for a document the serving router does not need.
/// A test requests every documented operation of this router and fails on a path or method
/// it does not route.
fn routes() -> Router<AppState> {
    use axum::routing::put;
    use axum::routing::{get, post};
    Router::new()
        .route("/api/orders", post(orders::place_order))
        .route("/api/orders/{id}", get(orders::get_order))
        .route("/api/stock", get(stock::list_stock))
        .route("/api/stock/{productName}", get(stock::get_stock))
        .route(
            "/api/me/orders",
            post(my_orders::place_my_order).get(my_orders::list_my_orders),
        )
        .route("/api/me/orders/{id}", get(my_orders::get_my_order))
        .route(
            "/api/me/orders/{id}/cancel",
            post(my_orders::cancel_my_order),
        )
        .route("/api/admin/orders", get(admin_orders::list_orders))
        .route("/api/admin/orders/{id}", get(admin_orders::get_order))
        .route(
            "/api/admin/orders/{id}/cancel",
            post(admin_orders::cancel_order),
        )
        .route("/api/admin/stock/{productName}", put(stock::set_stock))
        .route("/api/admin/customers/erase", post(erasure::erase_customer))
        .route("/api/me", axum::routing::delete(erasure::erase_me))
        .route(
            "/api/admin/dead-letters",
            get(dead_letters::list_dead_letters),
        )
        .route(
            "/api/admin/dead-letters/{id}/replay",
            post(dead_letters::replay_dead_letter),
        )
        .route("/api/health", get(health::health))
        .route("/api/openapi.json", get(openapi::openapi_document))
}

/// Gives the request its span in the order's trace: a child of the caller's W3C `traceparent`
/// header, or the root of a new trace when there is none or it is malformed (never an error;
/// the reason is logged in the request's span). The span goes to X-Ray when spans are
/// exported.
async fn join_trace(mut request: Request<Body>, next: Next) -> Response {
    let parent = request
        .headers()
        .get(TRACEPARENT)
        .map(|value| TraceContext::parse_bytes(HeaderValue::as_bytes(value)));
    let parent = match parent {
        Some(Ok(parent)) => Some(parent),
        Some(Err(err)) => {
            request.extensions_mut().insert(err);
            None
        }
        None => None,
    };
    let context = TraceContext::continuing(parent);
    request.extensions_mut().insert(context);
    if !export::is_on() {
        return next.run(request).await;
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let start = SystemTime::now();
    let response = next.run(request).await;
    export::record(FinishedSpan {
        name: format!("{method} {path}"),
        kind: SpanKind::Server,
        context,
        start,
        end: SystemTime::now(),
        attributes: vec![
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("url.path", path),
            KeyValue::new(
                "http.response.status_code",
                i64::from(response.status().as_u16()),
            ),
        ],
    });
    response
}

/// Puts the order id on the request's span, so that every later log line of the request
/// carries it.
pub(crate) fn record_order_id(id: uuid::Uuid) {
    tracing::Span::current().record("order_id", tracing::field::display(id));
}
