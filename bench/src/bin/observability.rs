//! What observability costs: the inventory handler's records per second and the order API's
//! orders per second with metrics and tracing on, as on Lambda, against the same work with
//! them off, in the same run.
//!
//! ```text
//! cargo run --release -p bench --bin observability
//! ```
//!
//! Both modes log as the functions do on Lambda: Lambda's JSON log subscriber at INFO
//! (`AWS_LAMBDA_LOG_FORMAT=JSON`, `AWS_LAMBDA_LOG_LEVEL=INFO`, as the template configures
//! them), every line to stdout, each line of a request with its `trace_id`.
//!
//! - **off**: no metrics recorder, input without trace context, no span export.
//! - **on**: the EMF recorder installed and written after every inventory invocation, and
//!   once a second by the order API, as it serves requests at once; traced input (each
//!   request carries a `traceparent` header, each record a `traceparent` header and
//!   attribute, so every request and record continues the caller's trace); and the span
//!   exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`) sending a span per request and per record over
//!   OTLP/HTTP, flushed after invocations as on Lambda, to a receiver in the parent that
//!   stands where the ADOT collector runs on Lambda (it answers 200 and counts what it gets).
//!
//! Carrying the trace context itself (an id per request and record, the outbox column, the
//! header) has no switch: it is part of the data, and runs in both modes.
//!
//! A process-wide recorder or subscriber cannot be removed once installed, so each
//! measurement runs in a child process (this binary with `--child <inventory|order-api>
//! <off|on> ...`), and the children alternate off, on, off, on, ... so that drift on the
//! machine hits both sides. With `on`, the EMF and log lines go to the child's stdout, a pipe
//! the parent reads, as Lambda's stdout is.
//!
//! Settings: `BENCH_PAIRS` (3 off/on pairs per benchmark, the median of each side is
//! reported), `BENCH_BATCH` (1000 records per inventory batch), `BENCH_BATCHES` (5 batches
//! per inventory child), `BENCH_CLIENTS` (8), `BENCH_DURATION_SECS` (10),
//! `BENCH_WARMUP_SECS` (2) and `BENCH_EMF_PER_REQUEST` (`1`: an EMF write after every answer)
//! for the order API, `DATABASE_URL` (a scratch database is created
//! on it and dropped afterwards), `BENCH_KAFKA_BOOTSTRAP` (default: a private broker), and
//! `BENCH_CHILD_WRAPPER`, a command line to run the children under, for a profile:
//!
//! ```text
//! BENCH_PAIRS=1 BENCH_CHILD_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=callgrind.%p" \
//!     target/release/observability
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bench::load::LoadOptions;
use bench::scratch::{self, ScratchDatabase};
use bench::settings::{env, env_number, env_secs};
use bench::stats::median;
use bench::workload::{
    Broker, OrderLoad, gateway, load_orders, placed_batch, product, publisher, stock_products,
};
use tokio::process::Command;

const CHILD: &str = "--child";

/// Where the `on` children send their spans: an OTLP/HTTP endpoint that answers 200, as the
/// collector does, and counts the export requests it gets.
struct SpanReceiver {
    endpoint: String,
    exports: Arc<AtomicU64>,
}

impl SpanReceiver {
    async fn start() -> anyhow::Result<Self> {
        let exports = Arc::new(AtomicU64::new(0));
        let counter = exports.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let counter = counter.clone();
                async move {
                    if !body.is_empty() {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    [("content-type", "application/x-protobuf")]
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { endpoint, exports })
    }

    fn exports(&self) -> u64 {
        self.exports.load(Ordering::Relaxed)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(CHILD) {
        let [_, which, mode, url, bootstrap] = &args[..] else {
            anyhow::bail!("{CHILD} <inventory|order-api> <off|on> <database url> <bootstrap>");
        };
        let on = match mode.as_str() {
            "on" => true,
            "off" => false,
            other => anyhow::bail!("mode {other:?} is neither on nor off"),
        };
        // The parent sets Lambda's log variables, and the span receiver for `on`.
        lambda_runtime::tracing::init_default_subscriber();
        if on {
            shared::metrics::emf::install_in("OrderSystemBench".to_owned())?;
            ensure!(
                shared::trace::export::install_from_env(which)?,
                "no span receiver given"
            );
        }
        let rate = match which.as_str() {
            "inventory" => inventory_child(url, bootstrap, on).await?,
            "order-api" => order_api_child(url, bootstrap, on).await?,
            other => anyhow::bail!("no benchmark {other}"),
        };
        println!("rate {rate}");
        return Ok(());
    }
    scratch::with_database("bench_observability", async |database| run(database).await).await
}

async fn run(database: &ScratchDatabase) -> anyhow::Result<()> {
    let pairs: usize = env_number("BENCH_PAIRS", 3)?;
    let broker = Broker::for_run().await;
    let bootstrap = &broker.bootstrap;
    let spans = SpanReceiver::start().await?;
    stock_products(&database.pool, 100_000_000).await?;
    println!(
        "observability: off (no recorder, untraced input, no span export) vs on (EMF written per inventory invocation and {} by the order API, traced input, spans exported), JSON logs at INFO in both, {pairs} alternating pairs, medians",
        if env("BENCH_EMF_PER_REQUEST", "0") == "1" {
            "per request"
        } else {
            "once a second"
        }
    );
    for (which, unit) in [("inventory", "records/s"), ("order-api", "orders/s")] {
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..pairs.max(1) {
            off.push(child(which, "off", &database.url, bootstrap, &spans).await?);
            on.push(child(which, "on", &database.url, bootstrap, &spans).await?);
        }
        let runs = |rates: &[f64]| {
            rates
                .iter()
                .map(|rate| format!("{rate:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  {which:<10} off {:>8.0} {unit}   (runs: {})",
            median(&mut off.clone()),
            runs(&off)
        );
        println!(
            "  {which:<10} on  {:>8.0} {unit}   (runs: {})",
            median(&mut on.clone()),
            runs(&on)
        );
        let ratio = median(&mut on) / median(&mut off);
        println!(
            "  {which:<10} on / off = {ratio:.3} (target >= 0.95{})",
            if ratio >= 0.95 { ", met" } else { ", NOT met" }
        );
    }
    Ok(())
}

/// Runs one child and reads its rate; checks that both logged, and that `on` wrote EMF and
/// sent spans while `off` did neither.
async fn child(
    which: &str,
    mode: &str,
    url: &str,
    bootstrap: &str,
    spans: &SpanReceiver,
) -> anyhow::Result<f64> {
    // `BENCH_CHILD_WRAPPER`: a command line the children run under, such as a profiler.
    let wrapper = env("BENCH_CHILD_WRAPPER", "");
    let mut wrapper = wrapper.split_whitespace();
    let mut command = match wrapper.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(wrapper).arg(std::env::current_exe()?);
            command
        }
        None => Command::new(std::env::current_exe()?),
    };
    command
        .args([CHILD, which, mode, url, bootstrap])
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .env_remove("RUST_LOG")
        .env_remove(shared::trace::export::ENDPOINT_VARIABLE);
    if mode == "on" {
        command.env(shared::trace::export::ENDPOINT_VARIABLE, &spans.endpoint);
    }
    let exports_before = spans.exports();
    let output = command.output().await.context("the child runs")?;
    let exported = spans.exports() - exports_before;
    ensure!(
        output.status.success(),
        "{which} {mode} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        stdout.contains("\"level\":\"INFO\""),
        "{which} {mode} wrote no JSON log line"
    );
    // The API logs each request at INFO; the inventory's per-record lines are DEBUG.
    ensure!(
        which != "order-api" || stdout.contains("\"trace_id\""),
        "{which} {mode} wrote no log line with a trace id"
    );
    let emf = stdout.contains("\"_aws\"");
    if mode == "on" {
        ensure!(emf, "{which} with metrics on wrote no EMF line");
        ensure!(exported > 0, "{which} with tracing on exported no spans");
    } else {
        ensure!(!emf, "{which} with metrics off wrote EMF lines");
        ensure!(exported == 0, "{which} with tracing off exported spans");
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("rate "))
        .context("the child printed no rate")?
        .parse()
        .context("the rate is a number")
}

/// Inventory batches through the consumer seam as `shared::lambda::each_invocation` runs them:
/// handle, then flush the metrics and the spans.
async fn inventory_child(url: &str, bootstrap: &str, traced: bool) -> anyhow::Result<f64> {
    let size: usize = env_number("BENCH_BATCH", 1_000)?;
    let batches: usize = env_number("BENCH_BATCHES", 5)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await?;
    let inventory = inventory::consumer(pool.clone(), publisher(bootstrap).await?);
    // Warm up the pool, the prepared statements and the producer.
    inventory
        .handle(placed_batch(&pool, 100, traced).await?)
        .await?;
    shared::metrics::flush();
    let mut busy = Duration::ZERO;
    for _ in 0..batches {
        let event = placed_batch(&pool, size, traced).await?;
        let started = Instant::now();
        let report = inventory.handle(event).await?;
        shared::metrics::flush();
        shared::trace::export::flush().await;
        busy += started.elapsed();
        ensure!(report.confirmed == size, "unexpected report {report:?}");
    }
    Ok((size * batches) as f64 / busy.as_secs_f64())
}

/// `POST /api/orders` over HTTP against the real router behind the local API Gateway (as
/// `local-runtime` serves it), served as `order_api::lambda`
/// serves requests at once (Lambda Managed Instances): the metrics written once a second,
/// each answer followed by a flush of the spans (itself at most once a second).
/// `BENCH_EMF_PER_REQUEST=1` writes the metrics after every answer instead, as before.
async fn order_api_child(url: &str, bootstrap: &str, traced: bool) -> anyhow::Result<f64> {
    let clients: usize = env_number("BENCH_CLIENTS", 8)?;
    let emf_per_request = env("BENCH_EMF_PER_REQUEST", "0") == "1";
    let variables = HashMap::from([
        ("DATABASE_URL".to_owned(), url.to_owned()),
        ("KAFKA_BOOTSTRAP_SERVERS".to_owned(), bootstrap.to_owned()),
        ("DB_MAX_CONNECTIONS".to_owned(), (clients + 4).to_string()),
        // The clients are guests from one address, which the per-address limit refuses
        // after its 20th order; this command measures what metrics and tracing cost, and
        // the order_api command what the limits cost.
        ("ABUSE_LIMITS".to_owned(), "off".to_owned()),
    ]);
    let config = order_api::OrderApiConfig::from_source(Some(variables))?;
    let state = order_api::AppState::from_config(&config).await?;
    let metrics = (!emf_per_request).then(|| {
        tokio::spawn(order_api::lambda::write_metrics_every(
            order_api::lambda::METRICS_INTERVAL,
        ))
    });
    let app = order_api::app(state.clone()).layer(axum::middleware::map_response(
        move |response: axum::response::Response| async move {
            if emf_per_request {
                shared::metrics::flush();
            }
            shared::trace::export::flush().await;
            response
        },
    ));
    let options = LoadOptions {
        clients,
        warmup: env_secs("BENCH_WARMUP_SECS", 2)?,
        duration: env_secs("BENCH_DURATION_SECS", 10)?,
    };
    let report = load_orders(
        app,
        &gateway(None)?,
        options,
        order_body,
        OrderLoad::guests().traced(traced),
    )
    .await?;
    state.outbox().flush().await;
    if let Some(metrics) = metrics {
        metrics.abort();
        shared::metrics::flush();
    }
    ensure!(report.failed == 0, "{} requests failed", report.failed);
    Ok(report.throughput())
}

/// One order of one unit, the products in turn.
fn order_body(client_no: usize, sequence: u64) -> serde_json::Value {
    serde_json::json!({
        "customerName": format!("Bench customer {client_no}-{sequence}"),
        "productName": product(sequence as usize + client_no),
        "quantity": 1,
    })
}
