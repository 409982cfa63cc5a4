//! The dead letter routes (admin routes, IAM-authorised in AWS): list the records the
//! consumers refused, and replay one to its topic, once, after its cause was fixed.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Operator;
use crate::handler::orders::{FieldErrors, query_params};
use crate::problem::{ApiError, FieldError, Problem};
use crate::state::AppState;
use crate::store::{self as repo, DeadLetter, DeadLetterQuery, ReplayClaim};

/// A record a consumer refused, with its raw bytes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    pub id: i64,
    /// The consumer that refused the record, e.g. `inventory`.
    pub consumer: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Why the consumer refused it.
    pub reason: String,
    pub received_at: DateTime<Utc>,
    /// When it was replayed; `null` until then.
    pub replayed_at: Option<DateTime<Utc>>,
    /// The record's key, base64; `null` when it had none.
    #[schema(content_encoding = "base64")]
    pub key: Option<String>,
    /// The record's value, base64; `null` when it had none.
    #[schema(content_encoding = "base64")]
    pub value: Option<String>,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(letter: DeadLetter) -> Self {
        Self {
            id: letter.id,
            consumer: letter.consumer,
            topic: letter.topic,
            partition: letter.partition,
            offset: letter.offset,
            reason: letter.error,
            received_at: letter.received_at,
            replayed_at: letter.replayed_at,
            key: letter.key.map(|key| BASE64.encode(key)),
            value: letter.value.map(|value| BASE64.encode(value)),
        }
    }
}

/// One page of dead letters, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPageView {
    pub items: Vec<DeadLetterView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Filter and position for `GET /api/dead-letters`; every value is checked, all at once.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDeadLettersParams {
    /// Only the dead letters of this consumer (`inventory`, `notification`); any other
    /// name lists none.
    #[param(min_length = 1)]
    pub consumer: Option<String>,
    /// Dead letters per page, 1–100.
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
    /// The `nextCursor` of the previous page, passed back unchanged.
    #[param(pattern = "^[0-9]{1,16}_[0-9a-f]{32}$")]
    pub cursor: Option<String>,
}

impl TryFrom<&ListDeadLettersParams> for DeadLetterQuery {
    type Error = Vec<FieldError>;

    fn try_from(params: &ListDeadLettersParams) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let consumer = errors.check(
            "consumer",
            match params.consumer.as_deref() {
                Some("") => Err("must not be empty".to_owned()),
                consumer => Ok(consumer.map(str::to_owned)),
            },
        );
        let page = errors.check_page(params.limit.as_deref(), params.cursor.as_deref());
        match (consumer, page) {
            (Some(consumer), Some((limit, after))) => Ok(Self {
                consumer,
                limit,
                after,
            }),
            _ => Err(errors.into_vec()),
        }
    }
}

fn dead_letter_id(path: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(raw) =
        path.map_err(|_| ApiError::bad_request("The dead letter id could not be read"))?;
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest {
            detail: "The dead letter id must be a positive integer".to_owned(),
            errors: vec![FieldError::new("id", "must be a positive integer")],
        })
}

/// Dead letters, newest first, optionally of one consumer, with keyset pagination. Operators
/// only: IAM-authorised in AWS.
#[utoipa::path(
    get,
    path = "/api/admin/dead-letters",
    tag = "operators",
    security(("operatorIam" = [])),
    params(ListDeadLettersParams),
    responses(
        (status = 200, description = "One page of dead letters", body = DeadLetterPageView),
        (status = 400, description = "The query string could not be read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid consumer, limit or cursor (all listed)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_dead_letters(
    _: Operator,
    State(state): State<AppState>,
    query: Result<Query<ListDeadLettersParams>, QueryRejection>,
) -> Result<Json<DeadLetterPageView>, ApiError> {
    let query = DeadLetterQuery::try_from(&query_params(query)?).map_err(ApiError::Validation)?;
    let page = state
        .check(repo::list_dead_letters(state.pool(), &query).await)
        .await?;
    Ok(Json(DeadLetterPageView {
        items: page.items.into_iter().map(DeadLetterView::from).collect(),
        next_cursor: page.next.map(|cursor| cursor.encode()),
    }))
}

/// Publishes a dead letter's record again, byte for byte, to its topic, where every consumer
/// of the topic reads it. A dead letter is replayed once: the first request claims it, and
/// gives the claim back if the broker does not acknowledge the record. Operators only:
/// IAM-authorised in AWS.
#[utoipa::path(
    post,
    path = "/api/admin/dead-letters/{id}/replay",
    tag = "operators",
    security(("operatorIam" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The dead letter's id")),
    responses(
        (status = 200, description = "Published and acknowledged; the dead letter with its replayedAt", body = DeadLetterView),
        (status = 400, description = "The id is not a positive integer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already replayed, or being replayed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database or broker unavailable; the dead letter stays replayable; see Retry-After", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn replay_dead_letter(
    _: Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DeadLetterView>, ApiError> {
    let id = dead_letter_id(path)?;
    let letter = match state
        .check(repo::claim_dead_letter(state.pool(), id).await)
        .await?
    {
        ReplayClaim::Claimed(letter) => letter,
        ReplayClaim::Taken(at) => return Err(ApiError::AlreadyReplayed { id, at }),
        ReplayClaim::Missing => {
            return Err(ApiError::NotFound(format!(
                "No dead letter has the id {id}"
            )));
        }
    };
    let record = (
        letter.topic.as_str(),
        letter.key.as_deref(),
        letter.value.as_deref(),
    );
    let published = state.publisher().publish_raw([record]).await;
    if let Some(Err(err)) = published.into_iter().next() {
        let claimed_at = letter.replayed_at.expect("a claim sets replayed_at");
        if let Err(release) = repo::release_dead_letter(state.pool(), id, claimed_at).await {
            // Rare (the database went away too); the row then says replayed though it was not.
            tracing::error!(dead_letter = id, error = %release, "could not release the replay claim");
        }
        return Err(ApiError::BrokerUnavailable(err.into()));
    }
    tracing::info!(dead_letter = id, consumer = %letter.consumer, topic = %letter.topic, "dead letter replayed");
    Ok(Json(letter.into()))
}
