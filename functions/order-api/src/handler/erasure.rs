//! Erasing a customer: an operator erases anyone by address or account
//! (`POST /api/admin/customers/erase`), a signed-in customer erases themself
//! (`DELETE /api/me`). Names and addresses are replaced wherever they are kept; amounts and
//! statuses stay for the books ([`crate::erasure`]).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::domain::EmailAddress;
use utoipa::ToSchema;

use crate::caller::{Customer, CustomerSub, Operator};
use crate::erasure::{self, Erased, Subject};
use crate::extract::{JsonObject, field};
use crate::handler::orders::FieldErrors;
use crate::problem::{ApiError, FieldError, Problem};
use crate::state::AppState;

/// Whom an operator erases: exactly one of an email address or a customer account.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct EraseRequest {
    /// Every order placed with this address (in any capitalisation), and its mails.
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    pub email: Option<Value>,
    /// Every order of this account (the identity provider's `sub`): 1 to 255 characters
    /// without control characters.
    #[schema(value_type = Option<String>, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,255}$")]
    pub sub: Option<Value>,
}

/// What an erasure changed, per table.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureView {
    pub erased: Erased,
}

/// Erases a customer by email address or account: their name and address are replaced in
/// every table that holds them, amounts and statuses stay. Idempotent: a second erasure of
/// the same customer changes nothing and answers zeros. Events already sent stay in Kafka
/// until the topics' retention removes them.
#[utoipa::path(
    post,
    path = "/api/admin/customers/erase",
    tag = "operators",
    security(("operatorIam" = [])),
    request_body(content = EraseRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Erased; how many rows changed in each table", body = ErasureView),
        (status = 400, description = "Malformed JSON or not a JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No operator credentials", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Neither or both of email and sub, or an invalid one", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn erase_customer(
    operator: Operator,
    State(state): State<AppState>,
    JsonObject(body): JsonObject<EraseRequest>,
) -> Result<Json<ErasureView>, ApiError> {
    let mut errors = FieldErrors::default();
    let email = errors
        .check(
            "email",
            field::optional_string(body.email.as_ref()).and_then(|raw| {
                raw.map(EmailAddress::parse)
                    .transpose()
                    .map_err(|err| err.0)
            }),
        )
        .flatten();
    let sub = errors
        .check(
            "sub",
            field::optional_string(body.sub.as_ref())
                .and_then(|raw| raw.map(CustomerSub::parse).transpose().map_err(|err| err.0)),
        )
        .flatten();
    let mut errors = errors.into_vec();
    if errors.is_empty() && email.is_some() == sub.is_some() {
        errors.push(FieldError::new(
            "email",
            "give exactly one of email and sub",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let subject = Subject {
        email: email.as_ref().map(EmailAddress::as_str),
        sub: sub.as_ref().map(CustomerSub::as_str),
    };
    let erased = state
        .check(erasure::erase(state.pool(), subject).await)
        .await?;
    tracing::info!(operator = %operator.principal, ?erased, "customer erased");
    Ok(Json(ErasureView { erased }))
}

/// Erases the signed-in customer: every order of the account, and of its verified address,
/// as an operator's erasure does. The account itself lives with the identity provider.
#[utoipa::path(
    delete,
    path = "/api/me",
    tag = "my orders",
    security(("customerJwt" = [])),
    responses(
        (status = 200, description = "Erased; how many rows changed in each table", body = ErasureView),
        (status = 401, description = "No valid token"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn erase_me(
    customer: Customer,
    State(state): State<AppState>,
) -> Result<Json<ErasureView>, ApiError> {
    let subject = Subject {
        email: customer.email.as_ref().map(EmailAddress::as_str),
        sub: Some(customer.sub.as_str()),
    };
    let erased = state
        .check(erasure::erase(state.pool(), subject).await)
        .await?;
    tracing::info!(?erased, "customer erased themself");
    Ok(Json(ErasureView { erased }))
}
