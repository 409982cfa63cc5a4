//! What the metrics cost: the inventory handler's records per second and the order API's
//! orders per second with the EMF recorder installed and flushed after every invocation (as
//! on Lambda), against the same work with no recorder, in the same run.
//!
//! ```text
//! cargo run --release -p bench --bin observability
//! ```
//!
//! A process-wide recorder cannot be removed once installed, so each measurement runs in a
//! child process (this binary with `--child <inventory|order-api> <off|on> ...`), and the
//! children alternate off, on, off, on, ... so that drift on the machine hits both sides.
//! With `on`, the EMF lines go to the child's stdout, a pipe the parent reads, as Lambda's
//! stdout is.
//!
//! Settings: `BENCH_PAIRS` (3 off/on pairs per benchmark, the median of each side is
//! reported), `BENCH_BATCH` (1000 records per inventory batch), `BENCH_BATCHES` (5 batches
//! per inventory child), `BENCH_CLIENTS` (8), `BENCH_DURATION_SECS` (10) and
//! `BENCH_WARMUP_SECS` (2) for the order API, `DATABASE_URL` (a scratch database is created
//! on it and dropped afterwards), `BENCH_KAFKA_BOOTSTRAP` (default: a private broker).

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bench::load::{LoadOptions, closed_loop};
use bench::scratch::ScratchDatabase;
use bench::settings::{env, env_number, env_secs};
use shared::config::{KafkaSettings, Secrets};
use shared::events::{OrderEvent, OrderEventData};
use shared::kafka::KafkaPublisher;
use shared::msk::{BrokerRecord, kafka_event};
use sqlx::PgPool;
use testkit::tansu::Tansu;
use uuid::Uuid;

const CHILD: &str = "--child";
const PRODUCTS: usize = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(CHILD) {
        let [_, which, mode, url, bootstrap] = &args[..] else {
            anyhow::bail!("{CHILD} <inventory|order-api> <off|on> <database url> <bootstrap>");
        };
        if mode == "on" {
            shared::metrics::emf::install_in("OrderSystemBench".to_owned())?;
        }
        let rate = match which.as_str() {
            "inventory" => inventory_child(url, bootstrap).await?,
            "order-api" => order_api_child(url, bootstrap).await?,
            other => anyhow::bail!("no benchmark {other}"),
        };
        println!("rate {rate}");
        return Ok(());
    }
    let base_url = env(
        "DATABASE_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/orders",
    );
    let database = ScratchDatabase::create(&base_url, "bench_observability").await?;
    let outcome = run(&database).await;
    database.drop_database().await?;
    outcome
}

async fn run(database: &ScratchDatabase) -> anyhow::Result<()> {
    let pairs: usize = env_number("BENCH_PAIRS", 3)?;
    let (_broker, bootstrap) = match std::env::var("BENCH_KAFKA_BOOTSTRAP") {
        Ok(bootstrap) if !bootstrap.is_empty() => (None, bootstrap),
        _ => {
            let broker = Tansu::start().await;
            let bootstrap = broker.bootstrap();
            (Some(broker), bootstrap)
        }
    };
    let names: Vec<String> = (0..PRODUCTS).map(product).collect();
    sqlx::query(
        "INSERT INTO stock (product_name, quantity)
         SELECT name, 100000000 FROM UNNEST($1::text[]) AS s(name)",
    )
    .bind(&names)
    .execute(&database.pool)
    .await?;
    println!(
        "observability: metrics off (no recorder) vs on (EMF, flushed per invocation), {pairs} alternating pairs, medians"
    );
    for (which, unit) in [("inventory", "records/s"), ("order-api", "orders/s")] {
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..pairs.max(1) {
            off.push(child(which, "off", &database.url, &bootstrap)?);
            on.push(child(which, "on", &database.url, &bootstrap)?);
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

/// Runs one child and reads its rate.
fn child(which: &str, mode: &str, url: &str, bootstrap: &str) -> anyhow::Result<f64> {
    let output = Command::new(std::env::current_exe()?)
        .args([CHILD, which, mode, url, bootstrap])
        .output()
        .context("the child runs")?;
    ensure!(
        output.status.success(),
        "{which} {mode} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    if mode == "on" {
        ensure!(
            stdout.contains("\"_aws\""),
            "{which} with metrics on wrote no EMF line"
        );
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("rate "))
        .context("the child printed no rate")?
        .parse()
        .context("the rate is a number")
}

fn product(i: usize) -> String {
    format!("bench-product-{:02}", i % PRODUCTS)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Inventory batches through the consumer seam as `shared::consumer::serve` runs them:
/// handle, then flush the metrics.
async fn inventory_child(url: &str, bootstrap: &str) -> anyhow::Result<f64> {
    let size: usize = env_number("BENCH_BATCH", 1_000)?;
    let batches: usize = env_number("BENCH_BATCHES", 5)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await?;
    let inventory = inventory::consumer(pool.clone(), publisher(bootstrap).await?);
    // Warm up the pool, the prepared statements and the producer.
    inventory.handle(placed_batch(&pool, 100).await?).await?;
    shared::metrics::flush();
    let mut busy = Duration::ZERO;
    for _ in 0..batches {
        let event = placed_batch(&pool, size).await?;
        let started = Instant::now();
        let report = inventory.handle(event).await?;
        shared::metrics::flush();
        busy += started.elapsed();
        ensure!(report.confirmed == size, "unexpected report {report:?}");
    }
    Ok((size * batches) as f64 / busy.as_secs_f64())
}

async fn publisher(bootstrap: &str) -> anyhow::Result<KafkaPublisher> {
    let mut settings = KafkaSettings::plaintext(bootstrap);
    settings.delivery_timeout = Duration::from_secs(30);
    KafkaPublisher::new(&settings, &Secrets::new()).await
}

/// `size` new PLACED orders, as the MSK event Lambda would deliver.
async fn placed_batch(
    pool: &PgPool,
    size: usize,
) -> anyhow::Result<aws_lambda_events::event::kafka::KafkaEvent> {
    let events: Vec<OrderEvent> = (0..size)
        .map(|i| {
            OrderEvent::placed(OrderEventData {
                order_id: shared::domain::new_id(),
                customer_name: format!("Customer {i}"),
                customer_email: None,
                product_name: product(i),
                quantity: 1,
                reason: None,
                payment: None,
            })
        })
        .collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.data.order_id).collect();
    let names: Vec<String> = events.iter().map(|e| e.data.product_name.clone()).collect();
    sqlx::query(
        "INSERT INTO orders (id, customer_name, product_name, quantity, status)
         SELECT id, 'Bench', name, 1, 'PLACED' FROM UNNEST($1::uuid[], $2::text[]) AS o(id, name)",
    )
    .bind(&ids)
    .bind(&names)
    .execute(pool)
    .await?;
    let records: Vec<BrokerRecord> = events
        .iter()
        .zip(0..)
        .map(|(event, offset)| BrokerRecord::from_event(event, 0, offset))
        .collect();
    Ok(kafka_event(
        "arn:aws:kafka:local:0:cluster/bench/observability",
        "127.0.0.1:9092",
        records,
    ))
}

/// `POST /api/orders` over HTTP against the real router, each answer followed by a flush of
/// the metrics, as `order_api::lambda` does.
async fn order_api_child(url: &str, bootstrap: &str) -> anyhow::Result<f64> {
    let clients: usize = env_number("BENCH_CLIENTS", 8)?;
    let variables = HashMap::from([
        ("DATABASE_URL".to_owned(), url.to_owned()),
        ("KAFKA_BOOTSTRAP_SERVERS".to_owned(), bootstrap.to_owned()),
        ("DB_MAX_CONNECTIONS".to_owned(), (clients + 4).to_string()),
    ]);
    let config = order_api::OrderApiConfig::from_source(Some(variables))?;
    let state = order_api::AppState::from_config(&config).await?;
    let app = order_api::app(state.clone()).layer(axum::middleware::map_response(
        |response: axum::response::Response| async move {
            shared::metrics::flush();
            response
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target = format!("http://{}/api/orders", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(30))
        .build()?;
    let options = LoadOptions {
        clients,
        warmup: env_secs("BENCH_WARMUP_SECS", 2)?,
        duration: env_secs("BENCH_DURATION_SECS", 10)?,
    };
    let report = closed_loop(options, move |client_no, sequence| {
        let request = client
            .post(&target)
            .header("content-type", "application/json")
            .body(
                serde_json::json!({
                    "customerName": format!("Bench customer {client_no}-{sequence}"),
                    "productName": product(sequence as usize + client_no),
                    "quantity": 1,
                })
                .to_string(),
            );
        async move {
            matches!(request.send().await, Ok(response) if response.status() == reqwest::StatusCode::CREATED)
        }
    })
    .await;
    server.abort();
    state.outbox().flush().await;
    ensure!(report.failed == 0, "{} requests failed", report.failed);
    Ok(report.throughput())
}
