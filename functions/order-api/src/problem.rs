//! RFC 9457 problem details. [`ApiError`] is the one place where failures become status
//! codes and bodies; responses the framework produces itself (405, 413, a caught panic) are
//! rewritten into the same shape by [`problem_for_bare_errors`]. No body ever carries SQL,
//! internal hostnames or stack traces: those go to the logs only.

use crate::store::{PlaceOrderError, StoreError};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// Seconds a client should wait before retrying while the database or the broker is unavailable.
pub const RETRY_AFTER_SECS: u32 = 2;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI identifying the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    #[schema(example = "urn:problem:order-api:validation-failed")]
    pub problem_type: String,
    #[schema(example = "Your request has invalid fields")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "2 fields are invalid; see errors")]
    pub detail: String,
    /// One entry per invalid field; empty for problems that are not about fields.
    pub errors: Vec<FieldError>,
}

/// One invalid field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct FieldError {
    #[schema(example = "quantity")]
    pub field: String,
    #[schema(example = "must be between 1 and 10000, got 0")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Unreadable input: malformed JSON, a body that is not an object, a malformed id.
    #[error("bad request: {detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("not found: {0}")]
    NotFound(String),
    /// An order the caller may not see: someone else's, a wrong or missing `Order-Token`,
    /// or no order at all. All answer alike, so that the answer tells nothing.
    #[error("order {0} not found for this caller")]
    OrderNotFound(uuid::Uuid),
    /// No usable identity on a route that needs one.
    #[error("no usable credentials")]
    Unauthorized,
    /// An abuse limit ([`crate::limits`]) is reached; nothing was written.
    #[error("abuse limit {counter} reached")]
    RateLimited {
        counter: &'static str,
        retry_after_secs: u64,
    },
    /// Well-formed input with invalid values; lists every bad field.
    #[error("{} invalid fields", .0.len())]
    Validation(Vec<FieldError>),
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    /// A dead letter is replayed once: this one was (at that time), or is being replayed.
    #[error("dead letter {id} was already replayed")]
    AlreadyReplayed { id: i64, at: Option<DateTime<Utc>> },
    /// A cancel of an order that is already `REJECTED` or `CANCELLED`.
    #[error("order {id} is already {status}")]
    OrderFinal {
        id: uuid::Uuid,
        status: shared::domain::OrderStatus,
    },
    /// A cancel while the order's charge is at Stripe; the client retries shortly.
    #[error("the payment of order {id} is in progress")]
    PaymentInProgress { id: uuid::Uuid },
    /// Transient: the database cannot be reached; the client should retry.
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Transient: the broker did not acknowledge a record the client waits for.
    #[error("the broker is unavailable")]
    BrokerUnavailable(#[source] anyhow::Error),
    /// A status the framework produced (405, 413, ...), with a generic problem body.
    #[error("{0}")]
    Status(StatusCode),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound(_) | Self::OrderNotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Validation(_) | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::AlreadyReplayed { .. }
            | Self::OrderFinal { .. }
            | Self::PaymentInProgress { .. } => StatusCode::CONFLICT,
            Self::Unavailable(_) | Self::BrokerUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Status(status) => *status,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The client-facing body; internal causes are deliberately left out.
    pub fn problem(&self) -> Problem {
        let (problem_type, title) = self.kind();
        Problem {
            problem_type: problem_type.to_owned(),
            title: title.to_owned(),
            status: self.status().as_u16(),
            detail: self.detail(),
            errors: self.field_errors(),
        }
    }

    /// The problem's `type` and `title`: what kind of problem it is, the same for every
    /// occurrence.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest { .. } => (
                "urn:problem:order-api:malformed-request",
                "Your request could not be read",
            ),
            Self::UnsupportedMediaType => ("about:blank", "Unsupported Media Type"),
            Self::NotFound(_) | Self::OrderNotFound(_) => ("about:blank", "Not Found"),
            Self::Unauthorized => ("urn:problem:order-api:unauthorized", "Unauthorized"),
            Self::RateLimited { .. } => ("urn:problem:order-api:rate-limited", "Too many orders"),
            Self::Validation(_) => (
                "urn:problem:order-api:validation-failed",
                "Your request has invalid fields",
            ),
            Self::IdempotencyKeyReused => (
                "urn:problem:order-api:idempotency-key-reused",
                "Idempotency-Key already used",
            ),
            Self::AlreadyReplayed { .. } => (
                "urn:problem:order-api:already-replayed",
                "Dead letter already replayed",
            ),
            Self::OrderFinal { .. } => (
                "urn:problem:order-api:order-final",
                "Order cannot be cancelled",
            ),
            Self::PaymentInProgress { .. } => (
                "urn:problem:order-api:payment-in-progress",
                "Payment in progress",
            ),
            Self::Unavailable(_) | Self::BrokerUnavailable(_) => (
                "urn:problem:order-api:service-unavailable",
                "Service temporarily unavailable",
            ),
            Self::Status(status) => ("about:blank", status.canonical_reason().unwrap_or("Error")),
            Self::Unexpected(_) => ("about:blank", "Internal Server Error"),
        }
    }

    /// The problem's `detail`: this occurrence, in words for the client.
    fn detail(&self) -> String {
        match self {
            Self::BadRequest { detail, .. } => detail.clone(),
            Self::UnsupportedMediaType => {
                "The request body must be sent with Content-Type: application/json".to_owned()
            }
            Self::NotFound(what) => what.clone(),
            Self::OrderNotFound(id) => format!("No order {id} was found"),
            Self::Unauthorized => "This route needs a valid identity token".to_owned(),
            Self::RateLimited {
                retry_after_secs, ..
            } => format!(
                "Too many orders from this client or for this address; retry in {retry_after_secs} seconds"
            ),
            Self::Validation(errors) => match errors.len() {
                1 => "1 field is invalid; see errors".to_owned(),
                n => format!("{n} fields are invalid; see errors"),
            },
            Self::IdempotencyKeyReused => "This Idempotency-Key was first used with a different request; use a new key for a new order".to_owned(),
            Self::AlreadyReplayed { id, at } => match at {
                Some(at) => format!(
                    "Dead letter {id} was replayed at {}; a dead letter is replayed once",
                    at.to_rfc3339_opts(SecondsFormat::Micros, true)
                ),
                None => format!("Another request is replaying dead letter {id}"),
            },
            Self::OrderFinal { id, status } => format!("Order {id} is already {status}; only PLACED, RESERVED and CONFIRMED orders can be cancelled"),
            Self::PaymentInProgress { id } => format!("Order {id} is being charged right now; retry the cancel in {RETRY_AFTER_SECS} seconds"),
            Self::Unavailable(_) => format!("The order database cannot be reached; retry in {RETRY_AFTER_SECS} seconds"),
            Self::BrokerUnavailable(_) => format!("The event broker did not acknowledge the record; retry in {RETRY_AFTER_SECS} seconds"),
            Self::Status(status) => generic_detail(*status).to_owned(),
            Self::Unexpected(_) => {
                "Something went wrong on our side; the request may be retried".to_owned()
            }
        }
    }

    /// The problem's `errors`: one entry per field at fault, where the problem is about fields.
    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Self::BadRequest { errors, .. } | Self::Validation(errors) => errors.clone(),
            Self::IdempotencyKeyReused => vec![FieldError::new(
                "Idempotency-Key",
                "was already used with a different request",
            )],
            _ => Vec::new(),
        }
    }
}

fn generic_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "No route matches this path",
        StatusCode::METHOD_NOT_ALLOWED => {
            "This route does not support this method; see the Allow header"
        }
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is larger than 64 KiB",
        StatusCode::BAD_REQUEST => "The request could not be read",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "The request body must be sent with Content-Type: application/json"
        }
        _ if status.is_server_error() => {
            "Something went wrong on our side; the request may be retried"
        }
        _ => "The request was refused",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unexpected(err) => tracing::error!(error = ?err, "request failed"),
            Self::Unavailable(err) => tracing::warn!(error = ?err, "database unavailable"),
            Self::BrokerUnavailable(err) => tracing::warn!(error = ?err, "broker unavailable"),
            other => tracing::info!(error = %other, "request refused"),
        }
        match &self {
            Self::OrderNotFound(_) => shared::metrics::request_refused("not_found"),
            Self::Unauthorized => shared::metrics::request_refused("unauthorized"),
            Self::RateLimited { .. } => shared::metrics::request_refused("rate_limited"),
            _ => {}
        }
        let mut response = (self.status(), Json(self.problem())).into_response();
        let headers = response.headers_mut();
        if let Self::RateLimited {
            retry_after_secs, ..
        } = self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if matches!(
            self,
            Self::Unavailable(_) | Self::BrokerUnavailable(_) | Self::PaymentInProgress { .. }
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => Self::Unavailable(cause.into()),
            StoreError::Unexpected(err) => Self::Unexpected(err),
        }
    }
}

impl From<PlaceOrderError> for ApiError {
    fn from(err: PlaceOrderError) -> Self {
        match err {
            PlaceOrderError::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            // The caller answers with the window's Retry-After; without it, a whole window.
            PlaceOrderError::Limited(counter) => Self::RateLimited {
                counter,
                retry_after_secs: crate::limits::Limits::default().window.as_secs(),
            },
            PlaceOrderError::Store(err) => err.into(),
        }
    }
}

/// The fallback route: `404` for any path the API does not have.
pub async fn not_found() -> ApiError {
    ApiError::Status(StatusCode::NOT_FOUND)
}

/// Rewrites an error response that is not already problem+json (axum's `405`, tower-http's
/// `413`, a caught panic's `500`) into a problem document, keeping its headers (`Allow`).
pub async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let problem = ApiError::Status(status).problem();
    let body = serde_json::to_vec(&problem).expect("problems always serialise");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, body.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_causes_never_reach_the_body() {
        let err = ApiError::Unexpected(anyhow::anyhow!(
            "relation \"orders\" does not exist at db.internal:5432"
        ));
        let body = serde_json::to_string(&err.problem()).unwrap();
        assert!(!body.contains("orders\""), "{body}");
        assert!(!body.contains("db.internal"), "{body}");
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn unavailable_database_asks_the_client_to_retry() {
        let response = ApiError::Unavailable(anyhow::anyhow!("connection refused")).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
