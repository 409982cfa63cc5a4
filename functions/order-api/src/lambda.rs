//! Serving the router on Lambda, answering as soon as the order is committed.
//!
//! An instance freezes when the runtime and every registered extension have asked for the
//! next event. So the function registers an internal extension which, on each invocation,
//! waits for the request to be answered and then for the outbox publisher to flush: API
//! Gateway gets the `201` after the commit, and the instance stays awake until the event is
//! on the broker (or left for the relay). Where no Extensions API answers (some local
//! emulators), each request flushes before it answers instead.

use lambda_extension::{Extension, LambdaEvent, NextEvent};
use lambda_http::{Request, service_fn};
use tokio::sync::{Mutex, mpsc};
use tower::ServiceExt;

use crate::publish::OutboxPublisher;
use crate::{AppState, app};

/// The extension's name, as the Extensions API lists it.
const EXTENSION_NAME: &str = "order-api-outbox-flush";

/// Serves `app(state)` to the Lambda Runtime API until the instance is shut down.
pub async fn run(state: AppState) -> Result<(), lambda_http::Error> {
    let router = app(state.clone());
    let (answered, answers) = mpsc::unbounded_channel::<()>();
    let flusher = FlushAfterAnswer {
        outbox: state.outbox().clone(),
        answers: std::sync::Arc::new(Mutex::new(answers)),
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
            let handler = service_fn(move |request: Request| {
                let (router, answered) = (router.clone(), answered.clone());
                async move {
                    let response = router.oneshot(request).await;
                    // The extension's invocation waits for this before it flushes.
                    let _ = answered.send(());
                    response
                }
            });
            tokio::try_join!(lambda_http::run(handler), extension.run())?;
            Ok(())
        }
        Err(err) => {
            tracing::warn!(error = %err, "no Lambda Extensions API; events are published before each answer");
            let handler = service_fn(move |request: Request| {
                let (router, outbox) = (router.clone(), outbox.clone());
                async move {
                    let response = router.oneshot(request).await;
                    outbox.flush().await;
                    response
                }
            });
            lambda_http::run(handler).await
        }
    }
}

/// The extension's side: one answer, then a flush, per invocation.
#[derive(Clone)]
struct FlushAfterAnswer {
    outbox: OutboxPublisher,
    answers: std::sync::Arc<Mutex<mpsc::UnboundedReceiver<()>>>,
}

impl FlushAfterAnswer {
    async fn after_invoke(&self, event: LambdaEvent) -> Result<(), lambda_extension::Error> {
        if let NextEvent::Invoke(_) = event.next {
            self.answers
                .lock()
                .await
                .recv()
                .await
                .ok_or("the request handler has stopped")?;
            self.outbox.flush().await;
        }
        Ok(())
    }
}
