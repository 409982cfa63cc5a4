//! Serving a function to the Lambda Runtime API: [`run`] is the whole `main` of every function
//! (the HTTP API, the MSK consumers, the scheduled relay, the custom resource), so that logs,
//! metrics, trace export and shutdown are set up the same way in each.
//!
//! Both execution models are served (docs/scale.md, "Lambda Managed Instances"):
//!
//! - classic Lambda: one invocation at a time per instance, `AWS_LAMBDA_MAX_CONCURRENCY`
//!   unset;
//! - Lambda Managed Instances: Lambda sets `AWS_LAMBDA_MAX_CONCURRENCY` to the number of
//!   invocations one execution environment serves at once, and the runtime polls for that
//!   many in parallel (lambda_runtime's `run_concurrent`).
//!
//! One binary serves both: [`each_invocation`] runs sequentially when the variable is unset,
//! and the pool sizes follow [`max_concurrency`] through [`default_pool_size`].

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::from_source;
use crate::metrics;
use crate::trace::export;

/// The variable Lambda Managed Instances set to the invocations one instance serves at once.
pub const MAX_CONCURRENCY_VARIABLE: &str = "AWS_LAMBDA_MAX_CONCURRENCY";

#[derive(serde::Deserialize)]
struct RawConcurrency {
    aws_lambda_max_concurrency: Option<String>,
}

/// The invocations one instance serves at once, read as the runtime reads it: a positive
/// number, or 1 (sequential) when the variable is unset, empty or not a positive number.
/// `None` reads the environment.
pub fn max_concurrency(variables: Option<HashMap<String, String>>) -> u32 {
    from_source::<RawConcurrency>(variables)
        .ok()
        .and_then(|raw| raw.aws_lambda_max_concurrency)
        .and_then(|value| value.trim().parse::<u32>().ok())
        .filter(|&concurrency| concurrency > 0)
        .unwrap_or(1)
}

/// A pool size for when `DB_MAX_CONNECTIONS` is not set: the function's classic default, or,
/// when one instance serves `concurrency` invocations at once, one connection per invocation
/// plus the `off_request` connections its background work holds, whichever is larger.
pub fn default_pool_size(classic_default: u32, concurrency: u32, off_request: u32) -> u32 {
    classic_default.max(concurrency.saturating_add(off_request))
}

/// What a function serves once [`run`] has built it: an MSK consumer, the HTTP API, or any
/// per-invocation handler ([`each_invocation`]).
pub trait Serve {
    /// Serves invocations until the instance is shut down.
    fn serve(self) -> impl Future<Output = Result<(), lambda_runtime::Error>>;
}

/// The whole `main` of a function named `name` (as X-Ray shows it when
/// `AWS_LAMBDA_FUNCTION_NAME` is unset): installs the log subscriber, the EMF metrics
/// recorder and, when the collector is configured, trace export; builds what it serves with
/// `start` (an error there fails the instance's init, which Lambda reports); serves it until
/// the instance shuts down. On SIGTERM (which Lambda sends before it shuts down an instance
/// with extensions, such as the trace collector's) it writes the metrics and sends the spans
/// still queued, then ends.
pub async fn run<S, Start>(name: &'static str, start: Start) -> Result<(), lambda_runtime::Error>
where
    S: Serve,
    Start: Future<Output = anyhow::Result<S>>,
{
    lambda_runtime::tracing::init_default_subscriber();
    metrics::emf::install()?;
    export::install_from_env(name)?;
    let served = start.await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        served = served.serve() => served,
        _ = terminate.recv() => {
            tracing::info!("shutting down");
            metrics::flush();
            export::flush_now().await;
            Ok(())
        }
    }
}

/// A function that runs `handler` for each invocation (the scheduled relay, the custom
/// resource, the MSK consumers), as many at once as `AWS_LAMBDA_MAX_CONCURRENCY` says (one
/// when it is unset), writing the metrics and sending the spans after each one.
pub fn each_invocation<E, F>(handler: F) -> EachInvocation<E, F> {
    EachInvocation {
        handler,
        event: PhantomData,
    }
}

/// See [`each_invocation`].
pub struct EachInvocation<E, F> {
    handler: F,
    event: PhantomData<fn(E)>,
}

impl<E, R, Err, F, Fut> Serve for EachInvocation<E, F>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    Err: Into<Diagnostic> + Debug + Send + 'static,
    F: Fn(LambdaEvent<E>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<R, Err>> + Send + 'static,
{
    async fn serve(self) -> Result<(), lambda_runtime::Error> {
        let handler = self.handler;
        let concurrency = max_concurrency(None);
        tracing::info!(concurrency, "serving invocations");
        lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<E>| {
            let response = handler(event);
            async move {
                let response = response.await;
                metrics::flush();
                export::flush().await;
                response
            }
        }))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::variable_map;

    #[test]
    fn concurrency_is_read_as_the_runtime_reads_it() {
        assert_eq!(max_concurrency(variable_map(&[])), 1);
        let read = |value| max_concurrency(variable_map(&[(MAX_CONCURRENCY_VARIABLE, value)]));
        assert_eq!(read("8"), 8);
        assert_eq!(read("0"), 1);
        assert_eq!(read(""), 1);
        assert_eq!(read("many"), 1);
    }

    #[test]
    fn pools_grow_with_concurrency_and_never_below_the_classic_default() {
        assert_eq!(default_pool_size(4, 1, 2), 4);
        assert_eq!(default_pool_size(4, 8, 2), 10);
        assert_eq!(default_pool_size(2, 1, 0), 2);
        assert_eq!(default_pool_size(2, 16, 0), 16);
    }
}
