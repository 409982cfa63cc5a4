//! Serving the router on Lambda, answering as soon as the order is committed.
//!
//! An instance freezes when the runtime and every registered extension have asked for the
//! next event. So the function registers an internal extension which, on each invocation,
//! waits for the request to be answered and then for the outbox publisher to flush: API
//! Gateway gets the `201` after the commit, and the instance stays awake until the event is
//! on the broker (or left for the relay). Where no Extensions API answers (some local
//! emulators), each request flushes before it answers instead.
//!
//! On Lambda Managed Instances (`AWS_LAMBDA_MAX_CONCURRENCY` set) one instance serves many
//! requests at once and is never frozen between them: requests answer after the commit and
//! the publishing task sends their events in the background, with no extension; the
//! metrics are written once a second ([`write_metrics_every`]), not after every request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use lambda_extension::{Extension, LambdaEvent, NextEvent};
use lambda_http::{Body, Request, Response, service_fn};
use shared::kafka::KafkaPublisher;
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::publish::OutboxPublisher;
use crate::{AppState, app};

/// The extension's name, as the Extensions API lists it.
const EXTENSION_NAME: &str = "order-api-outbox-flush";

/// The API as a Lambda function: `shared::lambda::run` serves it.
pub struct HttpApi(pub AppState);

impl shared::lambda::Serve for HttpApi {
    fn serve(self) -> impl std::future::Future<Output = Result<(), lambda_http::Error>> {
        serve(self.0)
    }
}

/// Serves `app(state)` to the Lambda Runtime API until the instance is shut down.
async fn serve(state: AppState) -> Result<(), lambda_http::Error> {
    let router = Routed {
        router: app(state.clone()),
        publisher: state.publisher().clone(),
    };
    let concurrency = shared::lambda::max_concurrency(None);
    if concurrency > 1 {
        // Lambda Managed Instances never freeze an instance between invocations, so the
        // publishing task keeps sending after each answer with no extension to wait for it,
        // and the metrics of all the requests in flight are written together once a second
        // rather than as one EMF line per request.
        tracing::info!(
            concurrency,
            "serving requests at once; events are published in the background"
        );
        tokio::spawn(write_metrics_every(METRICS_INTERVAL));
        let handler = service_fn(move |request: Request| {
            let router = router.clone();
            async move { router.route(request).await }
        });
        return lambda_http::run_concurrent(handler).await;
    }
    let answered = Arc::new(Notify::new());
    let flusher = FlushAfterAnswer {
        outbox: state.outbox().clone(),
        answered: answered.clone(),
    };
    // Internal extensions must register before the runtime asks for its first event.
    let extension = Extension::new()
        .with_extension_name(EXTENSION_NAME)
        .with_events(&["INVOKE"])
        .with_events_processor(lambda_extension::service_fn(move |event| {
            let flusher = flusher.clone();
            async move { flusher.after_invoke(event).await }
        }))
        .register()
        .await;
    let outbox = state.outbox().clone();
    match extension {
        Ok(extension) => {
            tracing::info!(
                extension = EXTENSION_NAME,
                "events are published after each answer"
            );
            let handler = service_fn(move |request: Request| {
                let (router, answered) = (router.clone(), answered.clone());
                async move {
                    let response = router.route(request).await;
                    shared::metrics::flush();
                    // The extension's invocation waits for this before it flushes.
                    answered.notify_one();
                    response
                }
            });
            tokio::try_join!(lambda_http::run_concurrent(handler), extension.run())?;
            Ok(())
        }
        Err(err) => {
            tracing::warn!(error = %err, "no Lambda Extensions API; events are published before each answer");
            let handler = service_fn(move |request: Request| {
                let (router, outbox) = (router.clone(), outbox.clone());
                async move {
                    let response = router.route(request).await;
                    shared::metrics::flush();
                    outbox.flush().await;
                    shared::trace::export::flush().await;
                    response
                }
            });
            lambda_http::run_concurrent(handler).await
        }
    }
}

/// How often an instance that serves requests at once writes the metrics it recorded.
pub const METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// Writes the metrics recorded since the last write (`shared::metrics::flush`) every
/// `interval`, for as long as the process runs. CloudWatch adds up the counters of all the
/// lines, so the totals are those of one line per request, for one write a second instead of
/// one per request. An environment shut down between two writes loses at most the last
/// interval's counts.
pub async fn write_metrics_every(interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        shared::metrics::flush();
    }
}

/// The router, and the producer its requests' events go out through.
#[derive(Clone)]
struct Routed {
    router: Router,
    publisher: KafkaPublisher,
}

impl Routed {
    /// Routes one request, and turns axum's answer into Lambda's body type, which (unlike
    /// axum's) may be shared between threads, as serving requests at once requires. An
    /// instance's first request starts the producer (`KafkaPublisher::prefetch`), which then
    /// connects while the request does its database work rather than during init.
    async fn route(self, request: Request) -> Result<Response<Body>, Infallible> {
        self.publisher
            .prefetch(&[shared::events::topics::ORDER_PLACED]);
        let response = self.router.oneshot(request).await?;
        Ok(lambda_http::IntoResponse::into_response(response).await)
    }
}

/// The extension's side: one answer, then a flush, per invocation.
#[derive(Clone)]
struct FlushAfterAnswer {
    outbox: OutboxPublisher,
    /// Signalled once per answered request; a signal sent before the extension waits is kept.
    answered: Arc<Notify>,
}

impl FlushAfterAnswer {
    async fn after_invoke(&self, event: LambdaEvent) -> Result<(), lambda_extension::Error> {
        let NextEvent::Invoke(invoke) = event.next else {
            return Ok(());
        };
        // An event the runtime could not even hand to the router is never answered: wait no
        // longer than the invocation may run (Lambda then resets the instance). Local
        // emulators send a deadline in the past; there is none then (`timeout` never fires).
        let limit = time_left(invoke.deadline_ms).unwrap_or(Duration::MAX);
        let answered = tokio::time::timeout(limit, self.answered.notified()).await;
        if answered.is_err() {
            tracing::warn!(request_id = %invoke.request_id, "no answer before the deadline; nothing to flush");
            return Ok(());
        }
        self.outbox.flush().await;
        shared::trace::export::flush().await;
        Ok(())
    }
}

/// Time until `deadline_ms` (milliseconds since the Unix epoch), if that is in the future.
fn time_left(deadline_ms: u64) -> Option<Duration> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    Duration::from_millis(deadline_ms)
        .checked_sub(now)
        .filter(|left| !left.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_in_the_past_means_no_deadline() {
        assert_eq!(time_left(0), None);
        let in_a_minute = SystemTime::now() + Duration::from_secs(60);
        let ms = in_a_minute.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = time_left(ms).expect("a future deadline");
        assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(60));
    }
}
