//! The functions' metrics ([`shared::metrics`]) in Prometheus text format, served on
//! `LOCAL_METRICS_ADDR` (default `127.0.0.1:9464`) at `/metrics` for the Prometheus that
//! `scripts/run` starts (docs/observability.md).

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use shared::metrics::{BATCH_RECORDS_BUCKETS, BATCH_SECONDS_BUCKETS, names};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Installs the process-wide Prometheus recorder, with the histogram buckets of
/// [`shared::metrics`].
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::BATCH_RECORDS.to_owned()),
            BATCH_RECORDS_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::BATCH_SECONDS.to_owned()),
            BATCH_SECONDS_BUCKETS,
        )?
        .install_recorder()
        .context("could not install the Prometheus recorder")?;
    shared::metrics::describe();
    Ok(handle)
}

/// The router: `GET /metrics` answers the current values in the text exposition format.
pub fn app(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                handle.run_upkeep();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    )
}

/// Binds `addr`; a clear error when the port is taken.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "could not listen on {addr} for the metrics (set LOCAL_METRICS_ADDR to another address)"
        )
    })
}

/// Serves [`app`] on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, app(handle))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("the metrics endpoint failed")
}
