//! The span exporter as the ADOT collector sees it: real OTLP/HTTP requests (protobuf) on a
//! local port, decoded with the OpenTelemetry protocol's own message types. (Its own test
//! binary: the exporter is installed once per process.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind as ProtoSpanKind};
use prost::Message;
use shared::trace::TraceContext;
use shared::trace::export::{self, FinishedSpan, KeyValue, SpanKind};

/// Every span the receiver was sent, with its service name.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = store.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                for resource_spans in request.resource_spans {
                    let service = resource_spans
                        .resource
                        .iter()
                        .flat_map(|resource| &resource.attributes)
                        .find(|attribute| attribute.key == "service.name")
                        .and_then(|attribute| attribute.value.as_ref())
                        .map(|value| format!("{:?}", value.value))
                        .unwrap_or_default();
                    for scope in resource_spans.scope_spans {
                        for span in scope.spans {
                            store.lock().unwrap().push((service.clone(), span));
                        }
                    }
                }
                ([("content-type", "application/x-protobuf")], Vec::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_with_exactly_the_ids_the_events_carry() {
    let (url, received) = collector().await;
    assert!(!export::is_on());
    export::install("inventory", Some(&url)).unwrap();
    assert!(export::is_on());

    let caller: TraceContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    let request = caller.child();
    let started = TraceContext::new_root();
    let start = SystemTime::now() - Duration::from_millis(20);
    for (name, context) in [("continued", request), ("started", started)] {
        export::record(FinishedSpan {
            name: name.to_owned(),
            kind: SpanKind::Consumer,
            context,
            start,
            end: SystemTime::now(),
            attributes: vec![KeyValue::new("messaging.destination.name", "order-placed")],
        });
    }
    export::flush().await;

    let spans = received.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let span = |name: &str| {
        spans
            .iter()
            .find(|(_, span)| span.name == name)
            .unwrap_or_else(|| panic!("no span {name}: {spans:?}"))
    };
    let (service, continued) = span("continued");
    assert!(service.contains("inventory"), "{service}");
    assert_eq!(
        hex::encode(&continued.trace_id),
        caller.trace_id().to_string()
    );
    assert_eq!(
        hex::encode(&continued.span_id),
        request.span_id().to_string()
    );
    assert_eq!(
        hex::encode(&continued.parent_span_id),
        caller.span_id().to_string()
    );
    assert_eq!(continued.kind, ProtoSpanKind::Consumer as i32);
    assert!(continued.end_time_unix_nano > continued.start_time_unix_nano);
    assert_eq!(continued.attributes[0].key, "messaging.destination.name");

    let (_, root) = span("started");
    assert_eq!(hex::encode(&root.trace_id), started.trace_id().to_string());
    assert_eq!(hex::encode(&root.span_id), started.span_id().to_string());
    assert!(root.parent_span_id.is_empty(), "a new trace has no parent");
}
