//! The HTTP side of the function: one router, [`app`], served by Lambda, by the local
//! runtime and by the tests alike. Requests are parsed into domain types at this edge and
//! handed to [`crate::store`]; every failure becomes problem+json in [`crate::problem`].
//!
//! - [`orders`]: place one (idempotently, with its event), read one, list them.
//! - [`stock`]: read levels, and set one (an admin route).
//! - [`dead_letters`]: list the records the consumers refused, and replay one (admin routes).
//! - [`health`]: whether the database answers.
//! - [`openapi`]: the OpenAPI 3.1 document generated from the route annotations.

pub mod dead_letters;
pub mod health;
pub mod openapi;
pub mod orders;
pub mod stock;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request};
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
    let (router, _) = openapi::api_router().split_for_parts();
    router
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
        .layer(axum::middleware::map_request(join_trace))
        .layer(axum::middleware::map_response(
            problem::problem_for_bare_errors,
        ))
        .with_state(state)
}

/// Gives the request its span in the order's trace: a child of the caller's W3C `traceparent`
/// header, or the root of a new trace when there is none or it is malformed (never an error;
/// the reason is logged in the request's span).
async fn join_trace(mut request: Request<Body>) -> Request<Body> {
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
    request
        .extensions_mut()
        .insert(TraceContext::continuing(parent));
    request
}

/// Puts the order id on the request's span, so that every later log line of the request
/// carries it.
pub(crate) fn record_order_id(id: uuid::Uuid) {
    tracing::Span::current().record("order_id", tracing::field::display(id));
}
