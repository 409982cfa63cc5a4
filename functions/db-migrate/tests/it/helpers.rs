use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::put;
use db_migrate::Deps;
use db_migrate::config::TopicLayout;
use db_migrate::handle;
use db_migrate::handler::{Invocation, response_client};
use serde_json::{Value, json};
use shared::config::{KafkaSettings, Secrets};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub fn deps(pool: PgPool, bootstrap: &str) -> Deps {
    Deps {
        pool,
        kafka: KafkaSettings::plaintext(bootstrap),
        secrets: Arc::new(Secrets::new()),
        topics: TopicLayout::default(),
        budget: None,
        role_secrets: Vec::new(),
    }
}

/// One PUT the fake CloudFormation endpoint received.
#[derive(Debug, Clone)]
pub struct Received {
    pub content_type: Option<String>,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    /// Answer 503 to this many PUTs before accepting, to exercise the retries.
    refuse_first: Arc<Mutex<usize>>,
}

/// Plays the pre-signed S3 URL CloudFormation hands to a custom resource.
pub struct ResponseUrl {
    port: u16,
    recorder: Recorder,
}

impl ResponseUrl {
    pub async fn start() -> Self {
        Self::refusing_first(0).await
    }

    pub async fn refusing_first(refusals: usize) -> Self {
        let recorder = Recorder {
            refuse_first: Arc::new(Mutex::new(refusals)),
            ..Recorder::default()
        };
        let app = Router::new()
            .route("/cfn-response/{request}", put(record))
            .with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { port, recorder }
    }

    pub fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/cfn-response/req?X-Amz-Signature=abc",
            self.port
        )
    }

    pub fn received(&self) -> Vec<Received> {
        self.recorder.received.lock().unwrap().clone()
    }

    /// The one answer that was accepted.
    pub fn answer(&self) -> Value {
        let received = self.received();
        assert_eq!(
            received.len(),
            1,
            "expected exactly one answer: {received:?}"
        );
        received[0].body.clone()
    }
}

async fn record(State(recorder): State<Recorder>, headers: HeaderMap, body: Bytes) -> StatusCode {
    {
        let mut refusals = recorder.refuse_first.lock().unwrap();
        if *refusals > 0 {
            *refusals -= 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    recorder.received.lock().unwrap().push(Received {
        content_type: headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: serde_json::from_slice(&body).expect("the answer is JSON"),
    });
    StatusCode::OK
}

/// A custom resource request as CloudFormation sends it.
pub fn request(request_type: &str, response_url: &str) -> Value {
    let mut event = json!({
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:db-migrate",
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/orders/abc",
        "RequestId": format!("req-{}", uuid::Uuid::now_v7()),
        "ResourceType": "Custom::DatabaseMigration",
        "LogicalResourceId": "DatabaseMigration",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:db-migrate",
            "MigrationsHash": "1f2e3d"
        }
    });
    if request_type != "Create" {
        event["PhysicalResourceId"] = json!(db_migrate::handler::PHYSICAL_RESOURCE_ID);
    }
    if request_type == "Update" {
        event["OldResourceProperties"] = json!({
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:db-migrate",
            "MigrationsHash": "000000"
        });
    }
    event
}

/// A Lambda invocation with plenty of time left.
pub fn invocation() -> Invocation {
    invocation_with(Duration::from_secs(120))
}

pub fn invocation_with(left: Duration) -> Invocation {
    Invocation {
        deadline: Instant::now() + left,
        log_stream: Some("2026/11/24/[$LATEST]test".to_owned()),
    }
}

pub async fn table_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Sends a `request_type` request answered at `cfn` through the handler, with plenty of time
/// left; the tests then read what `cfn` received.
pub async fn answer_request(
    deps: Result<&Deps, &anyhow::Error>,
    request_type: &str,
    cfn: &ResponseUrl,
) {
    answer_request_within(deps, request_type, cfn, &invocation()).await
}

/// [`answer_request`] within the time `invocation` leaves.
pub async fn answer_request_within(
    deps: Result<&Deps, &anyhow::Error>,
    request_type: &str,
    cfn: &ResponseUrl,
    invocation: &Invocation,
) {
    handle(
        deps,
        &response_client(),
        request(request_type, &cfn.url()),
        invocation,
    )
    .await
    .unwrap();
}

/// A pool that connects only when used, to 127.0.0.1:`port`, waiting `acquire_timeout` for a
/// connection: for databases that are not there or do not answer.
pub fn lazy_pool_at(port: u16, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(PgConnectOptions::new().host("127.0.0.1").port(port))
}
