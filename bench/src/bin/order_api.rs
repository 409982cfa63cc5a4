//! `POST /api/orders` throughput and latency against the real router (served on a local
//! listener, driven over HTTP), a real database and a real broker, next to pgbench running
//! the one statement the API sends to place an order (the order and its outbox row in one
//! CTE) with as many clients, then the ratio. For both sides it prints the CPU time each
//! program used per order or transaction (`bench::cpu`): where the gap goes. Last, the ratio
//! of PostgreSQL's CPU per transaction to its CPU per order: the throughput ratio where the
//! database is the only shared resource, as on AWS.
//!
//! ```text
//! cargo run --release -p bench --bin order_api
//! ```
//!
//! Settings: `BENCH_CLIENTS` (16), `BENCH_DURATION_SECS` (20), `BENCH_WARMUP_SECS` (3),
//! `BENCH_PGBENCH_THREADS` (2), `DATABASE_URL` (the server to use; a scratch database is
//! created on it and dropped afterwards), `BENCH_KAFKA_BOOTSTRAP` (default: a private broker
//! started for the run, so the shared topics stay clean), `KAFKA_DELIVERY_TIMEOUT_MS`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use bench::cpu::CpuTimes;
use bench::load::{LoadOptions, LoadReport};
use bench::pgbench::{PgBench, PgBenchReport};
use bench::scratch::ScratchDatabase;
use bench::settings::{env, env_number, env_secs, load_average};
use bench::stats::ms;
use bench::workload::{Broker, load_orders};
use order_api::{AppState, OrderApiConfig, app};
use shared::domain::{CustomerName, NewOrder, ProductName, Quantity, new_id};
use shared::events::{OrderEvent, OrderEventData, topics};
use shared::trace::TraceContext;

/// The programs an API order keeps busy: the database, the broker, and this process (the API
/// and its clients); and those pgbench's transactions do: the database, and this process,
/// which reaps pgbench and so is charged with its time.
const API_PROGRAMS: [&str; 3] = ["postgres", "tansu", "order_api"];
const PGBENCH_PROGRAMS: [&str; 2] = ["postgres", "order_api"];

/// The products the load spreads over (the key of `order-placed`).
const PRODUCTS: [&str; 5] = ["Laptop", "Monitor", "Keyboard", "Mouse", "Headphones"];

struct Settings {
    clients: usize,
    warmup: Duration,
    duration: Duration,
    pgbench_threads: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings {
        clients: env_number("BENCH_CLIENTS", 16)?,
        warmup: env_secs("BENCH_WARMUP_SECS", 3)?,
        duration: env_secs("BENCH_DURATION_SECS", 20)?,
        pgbench_threads: env_number("BENCH_PGBENCH_THREADS", 2)?,
    };
    let base_url = env(
        "DATABASE_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/orders",
    );
    let database = ScratchDatabase::create(&base_url, "bench_order_api").await?;
    let outcome = run(&settings, &database).await;
    database.drop_database().await?;
    outcome
}

async fn run(settings: &Settings, database: &ScratchDatabase) -> anyhow::Result<()> {
    let broker = Broker::for_run().await;

    println!(
        "order-api: POST /api/orders over HTTP, {} clients, {} s measured after {} s warm-up",
        settings.clients,
        settings.duration.as_secs(),
        settings.warmup.as_secs()
    );
    print_load("before");
    let cpu_before = CpuTimes::read(&API_PROGRAMS);
    let (api, delivery_timeout) = load_api(settings, database, &broker.bootstrap).await?;
    let api_cpu = CpuTimes::read(&API_PROGRAMS).since(&cpu_before);
    print_load("after");
    let (pending, total) = outbox_counts(database).await?;
    println!("  requests   {} ok, {} failed", api.succeeded, api.failed);
    println!("  throughput {:.1} orders/s", api.throughput());
    if let Some(latency) = api.latency {
        println!("  latency    {latency}");
    }
    println!(
        "  events     {} of {total} published by the API (delivery timeout {} ms), {pending} left for the relay",
        total - pending,
        delivery_timeout.as_millis()
    );
    print_cpu(
        "per order (warm-up included)",
        &api_cpu,
        usize::try_from(total)?,
    );

    sqlx::query("TRUNCATE orders, outbox CASCADE")
        .execute(&database.pool)
        .await?;
    let mut pgbench = PgBench::new(database.url.clone(), pgbench_script(database).await?);
    pgbench.clients = u32::try_from(settings.clients)?;
    pgbench.threads = settings.pgbench_threads;
    pgbench.duration = settings.duration;
    println!(
        "pgbench: the API's order + outbox statement, {}",
        pgbench.describe()
    );
    print_load("before");
    let cpu_before = CpuTimes::read(&PGBENCH_PROGRAMS);
    let baseline = tokio::task::spawn_blocking(move || pgbench.run()).await??;
    let pgbench_cpu = CpuTimes::read(&PGBENCH_PROGRAMS).since(&cpu_before);
    print_load("after");
    println!(
        "  transactions {} ok, {} failed",
        baseline.transactions, baseline.failed
    );
    println!("  throughput {:.1} tps", baseline.tps);
    if let Some(latency) = baseline.latency {
        println!("  latency    {latency}");
    }
    print_cpu(
        "per transaction",
        &pgbench_cpu,
        usize::try_from(baseline.transactions)?,
    );

    print_ratio(&api, &baseline);
    print_database_ratio(
        &api_cpu,
        usize::try_from(total)?,
        &pgbench_cpu,
        usize::try_from(baseline.transactions)?,
    );
    Ok(())
}

/// The ratio where only the database is shared: PostgreSQL's CPU per pgbench transaction over
/// its CPU per API order. Here the API shares two cores with the broker and with its own
/// HTTP clients, which pgbench does not; on AWS the functions and the brokers run on
/// machines of their own and the database instance is what the API's rate is bound by.
fn print_database_ratio(api: &CpuTimes, orders: usize, baseline: &CpuTimes, transactions: usize) {
    let postgres = |cpu: &CpuTimes, count: usize| {
        cpu.micros_per(count)
            .into_iter()
            .find_map(|(program, micros)| (program == "postgres").then_some(micros))
    };
    if let (Some(per_order), Some(per_transaction)) =
        (postgres(api, orders), postgres(baseline, transactions))
        && per_order > 0.0
    {
        println!(
            "database-bound ratio: PostgreSQL CPU per pgbench transaction / per API order = {per_transaction:.0} / {per_order:.0} µs = {:.2}x (the throughput ratio when only the database's CPU is shared)",
            per_transaction / per_order
        );
    }
}

/// Serves the router on a free port and drives it with the closed-loop clients.
async fn load_api(
    settings: &Settings,
    database: &ScratchDatabase,
    bootstrap: &str,
) -> anyhow::Result<(LoadReport, Duration)> {
    let mut variables = HashMap::from([
        ("DATABASE_URL".to_owned(), database.url.clone()),
        ("KAFKA_BOOTSTRAP_SERVERS".to_owned(), bootstrap.to_owned()),
        (
            "DB_MAX_CONNECTIONS".to_owned(),
            (settings.clients + 4).to_string(),
        ),
    ]);
    if let Ok(timeout) = std::env::var("KAFKA_DELIVERY_TIMEOUT_MS") {
        variables.insert("KAFKA_DELIVERY_TIMEOUT_MS".to_owned(), timeout);
    }
    let config = OrderApiConfig::from_source(Some(variables))?;
    let state = AppState::from_config(&config).await?;
    let options = LoadOptions {
        clients: settings.clients,
        warmup: settings.warmup,
        duration: settings.duration,
    };
    // The same router the Lambda function and the local binary serve.
    let report = load_orders(app(state.clone()), options, order_body, false).await?;
    // Events are published after each answer; wait for the last ones before counting.
    state.outbox().flush().await;
    Ok((report, config.kafka.delivery_timeout))
}

/// Prints each program's CPU time per unit of work.
fn print_cpu(per: &str, cpu: &CpuTimes, count: usize) {
    let split: Vec<String> = cpu
        .micros_per(count)
        .into_iter()
        .map(|(program, micros)| format!("{program} {micros:.0}"))
        .collect();
    println!("  CPU µs {per}: {}", split.join(", "));
}

/// The body of a client's next order: the products in turn, quantities 1 to 10.
fn order_body(client_no: usize, sequence: u64) -> serde_json::Value {
    serde_json::json!({
        "customerName": format!("Bench customer {client_no}-{sequence}"),
        "productName": PRODUCTS[(sequence as usize + client_no) % PRODUCTS.len()],
        "quantity": 1 + sequence % 10,
    })
}

/// Unpublished and total outbox rows.
async fn outbox_counts(database: &ScratchDatabase) -> anyhow::Result<(i64, i64)> {
    Ok(
        sqlx::query_as("SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM outbox")
            .fetch_one(&database.pool)
            .await?,
    )
}

/// The API's statement in pgbench's language: the text sqlx checked at compile time for
/// order-api (its query data in `.sqlx/`), its parameters bound to one order row (a UUIDv7
/// id, as the API uses), one real `order.placed` envelope and its trace context.
async fn pgbench_script(database: &ScratchDatabase) -> anyhow::Result<String> {
    // PostgreSQL 15 has no uuidv7(); this builds one from the clock and random bits.
    sqlx::query(
        "CREATE OR REPLACE FUNCTION bench_uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
           SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
             PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
             FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
         $$",
    )
    .execute(&database.pool)
    .await
    .context("could not create bench_uuid_v7()")?;
    let order = NewOrder {
        customer_name: CustomerName::parse("Bench customer 12-345").expect("valid"),
        customer_email: None,
        product_name: ProductName::parse("Keyboard").expect("valid"),
        quantity: Quantity::new(3).expect("valid"),
        payment_method: None,
    };
    let trace = TraceContext::new_root();
    let event =
        OrderEvent::placed(OrderEventData::from_new_order(new_id(), &order)).in_trace(trace);
    // Pretty-printed (then put on one line) so that no `:name` appears: pgbench would take it
    // for a variable. jsonb stores the same value either way.
    let payload = serde_json::to_string_pretty(&event)?
        .replace('\n', " ")
        .replace('\'', "''");
    // In the order `place_order` binds them.
    let arguments = [
        "bench_uuid_v7()".to_owned(),
        "'Bench customer ' || :n".to_owned(),
        "NULL".to_owned(),
        "'Keyboard'".to_owned(),
        ":q".to_owned(),
        "NULL".to_owned(),
        "NULL".to_owned(),
        format!("'{}'", topics::ORDER_PLACED),
        "'Keyboard'".to_owned(),
        format!("'{payload}'"),
        "NULL".to_owned(),
        format!("'{trace}'"),
    ];
    let statement = bind_literally(&place_order_statement()?, &arguments)?;
    Ok(format!(
        "\\set n random(1, 1000000000)\n\\set q random(1, 10)\n{statement};\n"
    ))
}

/// order-api's order + outbox statement, from the query data sqlx keeps for the compile-time
/// checks: exactly one checked query inserts into both tables.
fn place_order_statement() -> anyhow::Result<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.sqlx");
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("could not read {}", dir.display()))?
    {
        let path = entry?.path();
        let data: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if let Some(query) = data["query"].as_str()
            && query.contains("INSERT INTO orders")
            && query.contains("INSERT INTO outbox")
        {
            found.push(query.to_owned());
        }
    }
    match <[String; 1]>::try_from(found) {
        Ok([statement]) => Ok(statement),
        Err(found) => anyhow::bail!(
            "expected one query inserting an order and its outbox row in {}, found {}",
            dir.display(),
            found.len()
        ),
    }
}

/// `statement` with `$1`, `$2`, ... replaced by `arguments`; every placeholder must have one.
fn bind_literally(statement: &str, arguments: &[String]) -> anyhow::Result<String> {
    let mut bound = statement.to_owned();
    // From the highest number down, so that `$1` does not take the start of `$10`.
    for (index, argument) in arguments.iter().enumerate().rev() {
        let placeholder = format!("${}", index + 1);
        anyhow::ensure!(
            bound.contains(&placeholder),
            "the statement has no {placeholder}"
        );
        bound = bound.replace(&placeholder, argument);
    }
    anyhow::ensure!(
        !bound.contains(&format!("${}", arguments.len() + 1)),
        "the statement has more parameters than the {} bound here",
        arguments.len()
    );
    Ok(bound)
}

/// Other work on the machine skews both figures; the load average shows how much there was.
fn print_load(when: &str) {
    if let Some(load) = load_average() {
        println!("  load average {when}: {load:.2}");
    }
}

fn print_ratio(api: &LoadReport, baseline: &PgBenchReport) {
    let ratio = api.throughput() / baseline.tps;
    println!(
        "ratio: order-api / pgbench throughput = {:.1} / {:.1} = {ratio:.2}x (target >= 0.70x{})",
        api.throughput(),
        baseline.tps,
        if ratio >= 0.7 { ", met" } else { ", NOT met" }
    );
    if let (Some(api), Some(db)) = (api.latency, baseline.latency) {
        println!(
            "latency: order-api p50 {} / p99 {}  vs  pgbench p50 {} / p99 {}",
            ms(api.p50),
            ms(api.p99),
            ms(db.p50),
            ms(db.p99)
        );
    }
}
