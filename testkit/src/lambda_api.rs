//! A stand-in for the Lambda Runtime API (and, optionally, the Extensions API) on a local
//! port, to run a function's real `bootstrap` binary as Lambda runs it: the binary asks for
//! events with `next` and posts each answer back. It counts what a test needs to see:
//!
//! - how many `next` calls wait at once (one in the classic model; as many as
//!   `AWS_LAMBDA_MAX_CONCURRENCY` on Lambda Managed Instances) and how many invocations are
//!   in flight at once;
//! - when the runtime first asked for an event (the end of init), when each invocation was
//!   handed out and answered, and when every registered extension was done with it (the
//!   instance would freeze then).
//!
//! [`FunctionProcess`] starts a binary against it with the variables Lambda sets.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::process::Service;

/// The path prefix of the Runtime API.
const RUNTIME: &str = "/2018-06-01/runtime";
/// The path prefix of the Extensions API.
const EXTENSION: &str = "/2020-01-01/extension";
/// How long each invocation may run, as the deadline header says.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);

/// What a function answered to one invocation, and when.
#[derive(Debug)]
pub struct Answer {
    pub request_id: String,
    /// When a `next` call took the invocation.
    pub delivered: Instant,
    /// When the function posted its response or error.
    pub answered: Instant,
    /// The response body, or the error body (`errorType`, `errorMessage`).
    pub result: Result<Value, Value>,
}

impl Answer {
    /// From delivery to answer.
    pub fn latency(&self) -> Duration {
        self.answered.duration_since(self.delivered)
    }

    /// The response, or a panic showing the error the function reported.
    pub fn response(&self) -> &Value {
        match &self.result {
            Ok(response) => response,
            Err(error) => panic!("invocation {} failed: {error}", self.request_id),
        }
    }
}

struct Pending {
    request_id: String,
    payload: Vec<u8>,
    reply: oneshot::Sender<Answer>,
}

struct InFlight {
    delivered: Instant,
    reply: oneshot::Sender<Answer>,
}

struct RegisteredExtension {
    send: mpsc::UnboundedSender<Value>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    /// Events sent and not yet taken.
    queued: AtomicUsize,
    /// The request id of the last INVOKE event it took, until it asks for the next.
    busy_with: Mutex<Option<String>>,
}

impl RegisteredExtension {
    /// Still working on an invocation, or yet to take one.
    fn busy(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0 || self.busy_with.lock().unwrap().is_some()
    }
}

#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn up(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    fn down(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Lowers the gauge when a `next` call ends, answered or abandoned.
struct Waiting<'a>(&'a Gauge);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.down();
    }
}

struct Shared {
    extensions_enabled: bool,
    queue_in: mpsc::UnboundedSender<Pending>,
    queue_out: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    waiting_next: Gauge,
    running: Gauge,
    first_next: Mutex<Option<Instant>>,
    first_next_seen: Notify,
    init_error: Mutex<Option<Value>>,
    extensions: Mutex<HashMap<String, Arc<RegisteredExtension>>>,
    /// When each extension finished with each invocation (asked for its next event).
    extension_done: Mutex<HashMap<String, Vec<Instant>>>,
    extension_progress: Notify,
}

/// The stand-in, serving on 127.0.0.1 until dropped.
pub struct RuntimeApi {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Starts the Runtime API; with `extensions`, also the Extensions API (without it,
    /// registering an extension fails as it does under emulators that lack it).
    pub async fn start(extensions: bool) -> Self {
        let (queue_in, queue_out) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            extensions_enabled: extensions,
            queue_in,
            queue_out: tokio::sync::Mutex::new(queue_out),
            in_flight: Mutex::default(),
            waiting_next: Gauge::default(),
            running: Gauge::default(),
            first_next: Mutex::default(),
            first_next_seen: Notify::new(),
            init_error: Mutex::default(),
            extensions: Mutex::default(),
            extension_done: Mutex::default(),
            extension_progress: Notify::new(),
        });
        let router = Router::new()
            .route(&format!("{RUNTIME}/invocation/next"), get(next))
            .route(
                &format!("{RUNTIME}/invocation/{{id}}/response"),
                post(respond),
            )
            .route(&format!("{RUNTIME}/invocation/{{id}}/error"), post(fail))
            .route(&format!("{RUNTIME}/init/error"), post(init_error))
            .route(&format!("{EXTENSION}/register"), post(register))
            .route(&format!("{EXTENSION}/event/next"), get(extension_next))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the loopback interface has free ports");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            addr,
            shared,
            server,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The variables Lambda sets for a function named `name` that the runtime needs.
    pub fn lambda_env(&self, name: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// Queues one invocation; the future resolves with the function's answer.
    pub fn submit(&self, payload: &Value) -> oneshot::Receiver<Answer> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            request_id: uuid::Uuid::now_v7().to_string(),
            payload: serde_json::to_vec(payload).expect("JSON values serialise"),
            reply,
        };
        self.shared
            .queue_in
            .send(pending)
            .expect("the queue lives as long as the stand-in");
        answer
    }

    /// Invokes the function once and waits up to `timeout` for its answer.
    pub async fn invoke(&self, payload: &Value, timeout: Duration) -> anyhow::Result<Answer> {
        let answer = self.submit(payload);
        tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))?
            .map_err(|_| anyhow::anyhow!("the stand-in stopped"))
    }

    /// Waits up to `timeout` for the runtime's first `next` call (the end of its init) and
    /// returns when it came.
    pub async fn first_next(&self, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen = self.shared.first_next_seen.notified();
            if let Some(at) = *self.shared.first_next.lock().unwrap() {
                return Ok(at);
            }
            if let Some(error) = self.init_error() {
                anyhow::bail!("the function reported an init error: {error}");
            }
            if tokio::time::timeout_at(deadline, seen).await.is_err() {
                anyhow::bail!("the runtime did not ask for an event within {timeout:?}");
            }
        }
    }

    /// The init error the runtime reported, if any.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.lock().unwrap().clone()
    }

    /// `next` calls of the runtime waiting for an event right now.
    pub fn waiting_next(&self) -> usize {
        self.shared.waiting_next.now.load(Ordering::SeqCst)
    }

    /// The most `next` calls that ever waited at once.
    pub fn max_waiting_next(&self) -> usize {
        self.shared.waiting_next.max.load(Ordering::SeqCst)
    }

    /// Invocations handed out and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.shared.running.now.load(Ordering::SeqCst)
    }

    /// The most invocations ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.running.max.load(Ordering::SeqCst)
    }

    /// Extensions registered so far.
    pub fn extensions(&self) -> usize {
        self.shared.extensions.lock().unwrap().len()
    }

    /// Waits up to `timeout` until every registered extension is done with invocation
    /// `request_id` (has asked for its next event), and returns when the last one was: the
    /// moment Lambda would freeze the instance.
    pub async fn extensions_done(
        &self,
        request_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progress = self.shared.extension_progress.notified();
            let registered = self.extensions();
            if let Some(done) = self.shared.extension_done.lock().unwrap().get(request_id)
                && done.len() >= registered
            {
                return Ok(done.iter().copied().max().unwrap_or_else(Instant::now));
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                anyhow::bail!("the extensions were not done with {request_id} within {timeout:?}");
            }
        }
    }
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    {
        let mut first = shared.first_next.lock().unwrap();
        if first.is_none() {
            *first = Some(Instant::now());
            shared.first_next_seen.notify_waiters();
        }
    }
    shared.waiting_next.up();
    let waiting = Waiting(&shared.waiting_next);
    let pending = {
        let mut queue = shared.queue_out.lock().await;
        let pending = queue.recv().await;
        // As on classic Lambda, the next invocation starts once every extension is done
        // with the previous one.
        loop {
            let progress = shared.extension_progress.notified();
            let busy = shared.extensions.lock().unwrap().values().any(|e| e.busy());
            if !busy {
                break;
            }
            progress.await;
        }
        pending
    };
    drop(waiting);
    let Some(pending) = pending else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let delivered = Instant::now();
    shared.running.up();
    shared.in_flight.lock().unwrap().insert(
        pending.request_id.clone(),
        InFlight {
            delivered,
            reply: pending.reply,
        },
    );
    let deadline_ms = epoch_ms(SystemTime::now() + INVOCATION_TIMEOUT);
    let event = json!({
        "eventType": "INVOKE",
        "deadlineMs": deadline_ms,
        "requestId": pending.request_id,
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:local",
        "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-00000000-000000000000000000000000"},
    });
    for extension in shared.extensions.lock().unwrap().values() {
        extension.queued.fetch_add(1, Ordering::SeqCst);
        let _ = extension.send.send(event.clone());
    }
    let mut headers = HeaderMap::new();
    let header = |value: &str| HeaderValue::from_str(value).expect("ASCII header values");
    headers.insert("lambda-runtime-aws-request-id", header(&pending.request_id));
    headers.insert(
        "lambda-runtime-deadline-ms",
        header(&deadline_ms.to_string()),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header("arn:aws:lambda:us-east-1:123456789012:function:local"),
    );
    headers.insert("content-type", header("application/json"));
    (StatusCode::OK, headers, pending.payload).into_response()
}

fn settle(shared: &Shared, id: &str, result: Result<Value, Value>) -> StatusCode {
    let Some(in_flight) = shared.in_flight.lock().unwrap().remove(id) else {
        return StatusCode::BAD_REQUEST;
    };
    shared.running.down();
    let _ = in_flight.reply.send(Answer {
        request_id: id.to_owned(),
        delivered: in_flight.delivered,
        answered: Instant::now(),
        result,
    });
    StatusCode::ACCEPTED
}

fn json_body(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn respond(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    settle(&shared, &id, Ok(json_body(&body)))
}

async fn fail(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    settle(&shared, &id, Err(json_body(&body)))
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap() = Some(json_body(&body));
    shared.first_next_seen.notify_waiters();
    StatusCode::ACCEPTED
}

async fn register(State(shared): State<Arc<Shared>>) -> Response {
    if !shared.extensions_enabled {
        return StatusCode::NOT_FOUND.into_response();
    }
    let id = uuid::Uuid::now_v7().to_string();
    let (send, events) = mpsc::unbounded_channel();
    shared.extensions.lock().unwrap().insert(
        id.clone(),
        Arc::new(RegisteredExtension {
            send,
            events: tokio::sync::Mutex::new(events),
            queued: AtomicUsize::new(0),
            busy_with: Mutex::default(),
        }),
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-extension-identifier",
        HeaderValue::from_str(&id).expect("a UUID is a header value"),
    );
    let body =
        json!({"functionName": "local", "functionVersion": "$LATEST", "handler": "bootstrap"});
    (StatusCode::OK, headers, axum::Json(body)).into_response()
}

async fn extension_next(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(id) = headers
        .get("lambda-extension-identifier")
        .and_then(|id| id.to_str().ok())
    else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let Some(extension) = shared.extensions.lock().unwrap().get(id).cloned() else {
        return StatusCode::FORBIDDEN.into_response();
    };
    if let Some(done_with) = extension.busy_with.lock().unwrap().take() {
        shared
            .extension_done
            .lock()
            .unwrap()
            .entry(done_with)
            .or_default()
            .push(Instant::now());
        shared.extension_progress.notify_waiters();
    }
    let Some(event) = extension.events.lock().await.recv().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    *extension.busy_with.lock().unwrap() = event["requestId"].as_str().map(str::to_owned);
    extension.queued.fetch_sub(1, Ordering::SeqCst);
    axum::Json(event).into_response()
}

/// An API Gateway HTTP API (payload 2.0) event, as Lambda hands it to order-api.
pub fn http_api_event(method: &str, path: &str, body: Option<&str>) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.local"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "api.local",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "testkit"
            },
            "requestId": uuid::Uuid::now_v7().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "29/Nov/2026:00:00:00 +0000",
            "timeEpoch": epoch_ms(SystemTime::now())
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// A function's binary running against a [`RuntimeApi`]; killed on drop.
pub struct FunctionProcess {
    service: Service,
    /// Just before the binary was started.
    pub started: Instant,
}

impl FunctionProcess {
    /// Starts `binary` as Lambda function `name` against `api`, with `env` on top of the
    /// variables Lambda sets; its output goes to a log file in the temporary folder.
    pub fn start(
        binary: &Path,
        name: &str,
        api: &RuntimeApi,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let log_dir = std::env::temp_dir().join("lambda-function-logs");
        std::fs::create_dir_all(&log_dir)?;
        let log = log_dir.join(format!("{name}-{}.log", uuid::Uuid::now_v7()));
        let mut service = api
            .lambda_env(name)
            .iter()
            .chain(env)
            .fold(Service::new(name, binary, log), |service, (key, value)| {
                service.env(key, value)
            })
            .hint("build it first");
        let started = Instant::now();
        service.spawn()?;
        Ok(Self { service, started })
    }

    /// Its output so far.
    pub fn log_path(&self) -> &Path {
        self.service.log_path()
    }

    /// Stops it (SIGKILL) and waits for the exit.
    pub async fn stop(mut self) {
        self.service.stop().await;
    }

    /// SIGTERM, as Lambda sends it before it shuts an instance down; waits up to `grace`
    /// for the exit and returns its status.
    pub async fn terminate(
        mut self,
        grace: Duration,
    ) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.service.terminate(grace).await
    }
}
