//! The CloudFormation custom resource protocol. Whatever happens to the work (an error, a
//! panic, a hang), CloudFormation gets an answer through the pre-signed `ResponseURL` before
//! the function's own deadline; otherwise the stack would wait an hour for it.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus,
};
use serde_json::Value;

use crate::provision::{Deps, Provisioned, provision};

/// The resource's id, the same on every deploy: an Update never reads as a replacement.
pub const PHYSICAL_RESOURCE_ID: &str = "order-system-schema-and-topics";

/// Time kept back from the function's deadline to deliver the answer.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(20);

/// CloudFormation limits the whole answer to 4 KiB; the reason gets at most this much.
const MAX_REASON_CHARS: usize = 1500;
/// Each PUT to the response URL may take this long; a few are tried until the deadline.
const PUT_TIMEOUT: Duration = Duration::from_secs(10);
const PUT_ATTEMPTS: u32 = 4;

/// What was sent to CloudFormation (the `aws_lambda_events` response body).
pub type Answer = CloudFormationCustomResourceResponse;

/// Why an invocation could not answer CloudFormation.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("the event is not a CloudFormation custom resource request: it has no ResponseURL")]
    NotARequest,
    #[error("could not deliver the answer to CloudFormation's response URL: {0:#}")]
    Respond(anyhow::Error),
}

/// The invocation's limits, from the Lambda context or set by a test.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// When the function will be stopped.
    pub deadline: Instant,
    /// Named in failure reasons so that the stack's events point at the logs.
    pub log_stream: Option<String>,
}

impl Invocation {
    pub fn from_context(context: &lambda_runtime::Context) -> Self {
        let left = context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        Self {
            deadline: Instant::now() + left,
            log_stream: Some(context.env_config.log_stream.clone()).filter(|s| !s.is_empty()),
        }
    }
}

/// One custom resource event: Create and Update provision, Delete does nothing (the data
/// outlives the stack's resource; RDS has its own deletion policy). `deps` is the start-up
/// result, so that a function that could not even configure itself still answers `FAILED`.
#[tracing::instrument(skip_all, fields(request_type, request_id))]
pub async fn handle(
    deps: Result<&Deps, &anyhow::Error>,
    http: &reqwest::Client,
    event: Value,
    invocation: &Invocation,
) -> Result<Answer, HandleError> {
    let Some(response_url) = event.get("ResponseURL").and_then(Value::as_str) else {
        return Err(HandleError::NotARequest);
    };
    let field = |name: &str| {
        event
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let span = tracing::Span::current();
    span.record("request_type", field("RequestType"));
    span.record("request_id", field("RequestId"));

    let mut answer = Answer::default();
    answer.stack_id = field("StackId");
    answer.request_id = field("RequestId");
    answer.logical_resource_id = field("LogicalResourceId");
    answer.physical_resource_id = Some(field("PhysicalResourceId"))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| PHYSICAL_RESOURCE_ID.to_owned());

    let outcome = match serde_json::from_value::<CloudFormationCustomResourceRequest>(event.clone())
    {
        Err(err) => Err(format!("malformed custom resource request: {err}")),
        Ok(CloudFormationCustomResourceRequest::Delete(_)) => {
            tracing::info!("delete: nothing to do, the schema and topics are kept");
            Ok(HashMap::new())
        }
        Ok(CloudFormationCustomResourceRequest::Create(_))
        | Ok(CloudFormationCustomResourceRequest::Update(_)) => match deps {
            Err(err) => Err(format!("the function could not start: {err:#}")),
            Ok(deps) => {
                let deps = deps.clone();
                let budget = budget(invocation.deadline);
                guarded(async move { provision(&deps).await }, budget)
                    .await
                    .map(|done| data(&done))
            }
        },
        // The enum is non-exhaustive: a future request type is refused, not ignored.
        Ok(_) => Err("unknown RequestType".to_owned()),
    };

    match outcome {
        Ok(data) => {
            answer.status = CloudFormationCustomResourceResponseStatus::Success;
            answer.data = data;
        }
        Err(reason) => {
            tracing::error!(%reason, "answering FAILED");
            answer.status = CloudFormationCustomResourceResponseStatus::Failed;
            answer.reason = Some(with_log_stream(reason, invocation));
        }
    }
    respond(http, response_url, &answer, invocation.deadline)
        .await
        .map_err(HandleError::Respond)?;
    Ok(answer)
}

/// The time the work may take: up to the deadline less the margin to answer.
fn budget(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(ANSWER_MARGIN)
        .max(Duration::from_secs(1))
}

fn data(done: &Provisioned) -> HashMap<String, String> {
    HashMap::from([
        ("SchemaVersion".to_owned(), done.schema_version.to_string()),
        ("TopicsCreated".to_owned(), done.topics_created.join(",")),
        ("TopicsExisting".to_owned(), done.topics_existing.join(",")),
    ])
}

/// Runs `work` on its own task, bounded by `budget`: an error, a panic or a timeout all come
/// back as a reason for CloudFormation, and a timed-out task is aborted.
pub async fn guarded<T, F>(work: F, budget: Duration) -> Result<T, String>
where
    T: Send + 'static,
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let task = tokio::spawn(work);
    let abort = task.abort_handle();
    match tokio::time::timeout(budget, task).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(err))) => Err(format!("{err:#}")),
        Ok(Err(join)) if join.is_panic() => Err(format!(
            "the migration panicked: {}",
            panic_message(join.into_panic())
        )),
        Ok(Err(_)) => Err("the migration was cancelled".to_owned()),
        Err(_elapsed) => {
            abort.abort();
            Err(format!(
                "the migration did not finish within {}s, before the function's timeout",
                budget.as_secs()
            ))
        }
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

fn with_log_stream(reason: String, invocation: &Invocation) -> String {
    let mut reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
    if let Some(stream) = &invocation.log_stream {
        reason.push_str(&format!(" (CloudWatch log stream: {stream})"));
    }
    reason
}

/// PUTs the answer to the pre-signed URL, retrying a few times while time is left.
async fn respond(
    http: &reqwest::Client,
    url: &str,
    answer: &Answer,
    deadline: Instant,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(answer)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        // The URL is signed without a content type, so none is sent (as cfn-response does).
        let result = http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .body(body.clone())
            .timeout(PUT_TIMEOUT.min(left.max(Duration::from_secs(1))))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match result {
            Ok(_) => {
                tracing::info!(status = ?answer.status, "answered CloudFormation");
                return Ok(());
            }
            Err(err) if attempt < PUT_ATTEMPTS && left > Duration::from_secs(3) => {
                tracing::warn!(error = %err, attempt, "answering CloudFormation failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// The HTTP client for answers; rustls, no proxies from the environment needed.
pub fn response_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("a TLS client can be built")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_the_work_becomes_a_reason() {
        let outcome: Result<(), _> =
            guarded(async { panic!("boom in step two") }, Duration::from_secs(5)).await;
        let reason = outcome.unwrap_err();
        assert!(
            reason.contains("panicked") && reason.contains("boom in step two"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn work_that_outlives_its_budget_becomes_a_reason() {
        let outcome: Result<(), _> = guarded(
            async {
                std::future::pending::<()>().await;
                Ok(())
            },
            Duration::from_millis(200),
        )
        .await;
        assert!(outcome.unwrap_err().contains("did not finish"));
    }

    #[tokio::test]
    async fn an_error_chain_is_kept_in_the_reason() {
        let outcome: Result<(), _> = guarded(
            async { Err(anyhow::anyhow!("connection refused").context("applying migrations")) },
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            outcome.unwrap_err(),
            "applying migrations: connection refused"
        );
    }

    #[test]
    fn the_budget_keeps_the_answer_margin_back() {
        let deadline = Instant::now() + Duration::from_secs(300);
        let budget = budget(deadline);
        assert!(budget <= Duration::from_secs(280) && budget > Duration::from_secs(270));
        assert_eq!(super::budget(Instant::now()), Duration::from_secs(1));
    }

    #[test]
    fn long_reasons_are_cut_and_name_the_log_stream() {
        let invocation = Invocation {
            deadline: Instant::now(),
            log_stream: Some("2026/11/24/[$LATEST]abc".to_owned()),
        };
        let reason = with_log_stream("x".repeat(10_000), &invocation);
        assert!(reason.len() < 1600);
        assert!(reason.ends_with("(CloudWatch log stream: 2026/11/24/[$LATEST]abc)"));
    }
}
