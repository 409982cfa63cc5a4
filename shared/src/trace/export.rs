//! The spans of an order's trace, sent to X-Ray in AWS (docs/observability.md, "X-Ray").
//!
//! For every request and record it handles, a function records one span with exactly the ids
//! of its [`TraceContext`], the ids its events and log lines carry, so that X-Ray shows the
//! same trace. Spans go over OTLP/HTTP to the AWS Distro for OpenTelemetry (ADOT) collector,
//! which runs as a Lambda layer next to the function and forwards them to X-Ray. The exporter
//! is on only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the template sets it together with
//! the layer); otherwise recording a span costs one check.
//!
//! Spans are queued in memory by a batch processor on its own thread, which sends them every
//! few seconds while the instance runs. Lambda freezes an idle instance, so [`flush`] at the
//! end of an invocation also sends them, at most once per [`FLUSH_INTERVAL`]: a busy
//! instance does not pay a round trip to the collector per invocation, and an instance that
//! goes idle has sent everything but at most its last second's spans, which go out with its
//! next invocation (or are lost if Lambda shuts it down first).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::Context;
use opentelemetry::trace::{
    SpanBuilder, SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracer, SdkTracerProvider};

use super::{SpanId, TraceContext, TraceId};

/// What a span's kind and attributes are made of, so that callers need no OpenTelemetry
/// dependency of their own.
pub use opentelemetry::KeyValue;
pub use opentelemetry::trace::SpanKind;

/// The variable that switches the exporter on: the collector's OTLP/HTTP base URL
/// (`/v1/traces` is appended).
pub const ENDPOINT_VARIABLE: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

struct Exporter {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// The shortest time between two forced sends by [`flush`].
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// When [`flush`] last forced a send.
static LAST_FLUSH: Mutex<Option<Instant>> = Mutex::new(None);

/// Starts exporting when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; says whether it did.
/// `service` names the function in X-Ray (`AWS_LAMBDA_FUNCTION_NAME` wins when set).
pub fn install_from_env(service: &str) -> anyhow::Result<bool> {
    match std::env::var(ENDPOINT_VARIABLE) {
        Ok(endpoint) if !endpoint.trim().is_empty() => {
            let service =
                std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| service.to_owned());
            install(&service, None)?;
            tracing::info!(
                endpoint,
                service,
                "trace spans go to the OpenTelemetry collector"
            );
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Starts exporting to `traces_url` (a full `.../v1/traces` URL), or where the standard
/// `OTEL_EXPORTER_OTLP_*` variables say when `None`. Once per process.
pub fn install(service: &str, traces_url: Option<&str>) -> anyhow::Result<()> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(url) = traces_url {
        exporter = exporter.with_endpoint(url);
    }
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter.build()?).build())
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("order-system");
    EXPORTER
        .set(Exporter { provider, tracer })
        .map_err(|_| anyhow::anyhow!("the trace span exporter is already installed"))
}

/// Whether spans are exported, so that callers skip gathering what a span needs.
pub fn is_on() -> bool {
    EXPORTER.get().is_some()
}

/// A request or record handled: its context (whose ids the span takes as they are; its
/// parent, when known, is the span's parent), what it was, and when.
pub struct FinishedSpan {
    pub name: String,
    pub kind: SpanKind,
    pub context: TraceContext,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
}

/// Queues `span` for export. Does nothing when the exporter is off.
pub fn record(span: FinishedSpan) {
    let Some(exporter) = EXPORTER.get() else {
        return;
    };
    let context = span.context;
    let flags = if context.is_sampled() {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let parent = match context.parent_id() {
        Some(parent) => Context::new().with_remote_span_context(SpanContext::new(
            trace_id(context.trace_id()),
            span_id(parent),
            flags,
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    let mut exported = SpanBuilder::from_name(span.name)
        .with_kind(span.kind)
        .with_trace_id(trace_id(context.trace_id()))
        .with_span_id(span_id(context.span_id()))
        .with_start_time(span.start)
        .with_end_time(span.end)
        .with_attributes(span.attributes)
        .start_with_context(&exporter.tracer, &parent);
    opentelemetry::trace::Span::end_with_timestamp(&mut exported, span.end);
}

/// Sends the queued spans (at the end of an invocation) on a blocking thread, unless a send
/// was forced less than [`FLUSH_INTERVAL`] ago. A collector that fails is logged, never an
/// error: the work is done either way.
pub async fn flush() {
    if !is_on() {
        return;
    }
    {
        let mut last = LAST_FLUSH
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < FLUSH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
    }
    flush_now().await;
}

/// Sends the queued spans now, on a blocking thread (when the instance shuts down).
pub async fn flush_now() {
    if !is_on() {
        return;
    }
    let flushed = tokio::task::spawn_blocking(|| {
        EXPORTER
            .get()
            .map(|exporter| exporter.provider.force_flush())
    })
    .await;
    match flushed {
        Ok(Some(Err(err))) => tracing::warn!(error = %err, "trace spans not sent"),
        Err(err) => tracing::warn!(error = %err, "trace spans not sent"),
        Ok(_) => {}
    }
}

fn trace_id(id: TraceId) -> opentelemetry::trace::TraceId {
    opentelemetry::trace::TraceId::from_bytes(id.0)
}

fn span_id(id: SpanId) -> opentelemetry::trace::SpanId {
    opentelemetry::trace::SpanId::from_bytes(id.0)
}
