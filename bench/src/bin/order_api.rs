//! Order throughput and latency against the real router behind the local API Gateway (served
//! on a local listener, driven over HTTP), a real database and a real broker, in three runs of
//! the same build:
//!
//! 1. baseline: guests' `POST /api/orders` with the abuse limits off (`ABUSE_LIMITS=off`),
//! 2. guest: the same requests with the limits on (each order counted against its client's
//!    address and its email address, in the statement that places it),
//! 3. customer: `POST /api/me/orders` with real Cognito ID tokens from the emulator (a user
//!    pool of the run's own), validated RS256 against the pool's JWKS by the local gateway as
//!    `local-runtime` validates them, limits on;
//!
//! then the ratios guest/baseline and customer/baseline (target >= 0.9 each: what knowing who
//! calls and counting abuse may cost). The three runs are repeated in `BENCH_ROUNDS` rounds,
//! every other one in reverse order (baseline, guest, customer, then customer, guest,
//! baseline), so that a machine that slows down or speeds up meanwhile favours none of them;
//! each round's ratios are printed, and the ratios of the runs' mean throughputs judged. None of the clients reads the `orderToken` of a guest's
//! answer. Next to them, pgbench runs the one statement the API sends to place an order (the
//! order and its outbox row in one CTE, without counters, as in the baseline) with as many
//! clients, and the ratio baseline/pgbench. For every run it prints the CPU time each program
//! used per order or transaction (`bench::cpu`): where the gap goes. Last, the ratio of
//! PostgreSQL's CPU per transaction to its CPU per baseline order: the throughput ratio where
//! the database is the only shared resource, as on AWS.
//!
//! The clients connect from several loopback addresses (127.0.0.2, 127.0.0.3, ...; the
//! gateway takes `http.sourceIp` from the TCP peer, as API Gateway does) and every guest order
//! names its own `customerEmail`. The limits count per address and per email address, each
//! counter one row updated in the statement that places the order, so one address for every
//! client would make all of them queue on one row lock: the run would measure that lock, one
//! busy client's worth of orders, not the bookkeeping every order pays. Spread over addresses
//! and emails, as real clients are, the cost measured is the counting itself. The limits are
//! raised only as far as the run needs (per address); the per-email limit of guests stays the
//! default.
//!
//! ```text
//! cargo run --release -p bench --bin order_api
//! ```
//!
//! Settings: `BENCH_CLIENTS` (16), `BENCH_SOURCES` (the client addresses, as many as clients),
//! `BENCH_DURATION_SECS` (20, per run), `BENCH_WARMUP_SECS` (3, per run),
//! `BENCH_PGBENCH_THREADS` (2), `BENCH_ROUNDS` (2), `DATABASE_URL` (the server to use; a scratch database is
//! created on it and dropped afterwards), `BENCH_KAFKA_BOOTSTRAP` (default: a private broker
//! started for the run, so the shared topics stay clean), `KAFKA_DELIVERY_TIMEOUT_MS`,
//! `AWS_ENDPOINT_URL` (the Cognito emulator, as `scripts/services up` runs it).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use bench::cpu::CpuTimes;
use bench::load::{LoadOptions, LoadReport};
use bench::pgbench::{PgBench, PgBenchReport};
use bench::scratch::{self, ScratchDatabase};
use bench::settings::{env_number, env_secs, load_average};
use bench::stats::ms;
use bench::workload::{Broker, OrderLoad, gateway, jwt_settings, load_orders, loopback_sources};
use local_runtime::gateway::Gateway;
use order_api::{AppState, OrderApiConfig, app};
use shared::domain::{CustomerName, EmailAddress, NewOrder, ProductName, Quantity, new_id};
use shared::events::{OrderEvent, OrderEventData, topics};
use shared::trace::TraceContext;
use testkit::cognito::Pool;

/// The programs an API order keeps busy: the database, the broker, and this process (the API,
/// the gateway and the clients); and those pgbench's transactions do: the database, and this
/// process, which reaps pgbench and so is charged with its time.
const API_PROGRAMS: [&str; 3] = ["postgres", "tansu", "order_api"];
const PGBENCH_PROGRAMS: [&str; 2] = ["postgres", "order_api"];

/// The products the load spreads over (the key of `order-placed`).
const PRODUCTS: [&str; 5] = ["Laptop", "Monitor", "Keyboard", "Mouse", "Headphones"];

/// A per-address limit no run reaches: raised for the load generator's few addresses, which
/// stand for many clients.
const UNREACHED: &str = "1000000000";

/// PostgreSQL's CPU per API order over its CPU per pgbench transaction of the same statement
/// at the same rate, at most: what the outbox (its delete) may cost beyond the statement.
const OUTBOX_TARGET: f64 = 1.25;

/// The ratio of a run with limits to the baseline that the limits may cost at most.
const TARGET: f64 = 0.9;

struct Settings {
    clients: usize,
    sources: usize,
    warmup: Duration,
    duration: Duration,
    pgbench_threads: u32,
    rounds: usize,
}

/// One run of the API: who calls, and with which limits.
#[derive(Clone)]
struct Run {
    name: &'static str,
    describe: &'static str,
    /// Variables on top of the database and broker ones.
    limits: &'static [(&'static str, &'static str)],
    load: OrderLoad,
    body: fn(usize, u64) -> serde_json::Value,
}

/// What one run measured.
struct Measured {
    name: &'static str,
    report: LoadReport,
    cpu: CpuTimes,
    orders: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = env_number("BENCH_CLIENTS", 16)?;
    let settings = Settings {
        clients,
        sources: env_number("BENCH_SOURCES", clients)?,
        warmup: env_secs("BENCH_WARMUP_SECS", 3)?,
        duration: env_secs("BENCH_DURATION_SECS", 20)?,
        pgbench_threads: env_number("BENCH_PGBENCH_THREADS", 2)?,
        rounds: env_number("BENCH_ROUNDS", 2)?,
    };
    scratch::with_database("bench_order_api", async |database| {
        run(&settings, database).await
    })
    .await
}

async fn run(settings: &Settings, database: &ScratchDatabase) -> anyhow::Result<()> {
    let broker = Broker::for_run().await;
    let sources = loopback_sources(settings.sources);

    // A user pool of the run's own, one customer per client, each signed in once (an ID
    // token lasts an hour); the gateway checks the tokens against this pool's JWKS.
    let pool = Pool::create("bench-order-api").await;
    let mut bearers = Vec::with_capacity(settings.clients);
    for client in 0..settings.clients {
        let customer = pool.create_customer(&format!("bench-{client}")).await;
        bearers.push(pool.sign_in(&customer).await.id_token);
    }
    let gateway = gateway(Some(jwt_settings(&pool)))?;
    let runs = audiences(bearers, &sources);
    let target = Target {
        settings,
        database,
        bootstrap: &broker.bootstrap,
        gateway: &gateway,
        sources: &sources,
    };
    let rounds = measure_rounds(&target, &runs).await?;
    let measured = &rounds[0];

    let script = pgbench_script(database).await?;
    let (baseline, pgbench_cpu) = run_pgbench(settings, database, &script, None).await?;
    // PostgreSQL's CPU per transaction depends on its load (a WAL flush and a wake-up serve
    // more commits when it is busy), so the API's outbox overhead is read against pgbench
    // held to the API's own rate.
    let api_rate = measured[0].report.throughput();
    let (paced, paced_cpu) = run_pgbench(settings, database, &script, Some(api_rate)).await?;

    println!();
    for (number, round) in rounds.iter().enumerate() {
        println!("round {}:", number + 1);
        print_audience_ratios(round);
    }
    print_mean_ratios(&rounds);
    let api = &measured[0];
    print_ratio(&api.report, &baseline);
    print_database_ratio(
        &api.cpu,
        api.orders,
        &pgbench_cpu,
        usize::try_from(baseline.transactions)?,
    );
    print_outbox_overhead(
        &api.cpu,
        api.orders,
        &paced_cpu,
        usize::try_from(paced.transactions)?,
    );
    Ok(())
}

/// The three runs: the baseline (limits off), guests and customers with the limits on.
fn audiences(bearers: Vec<String>, sources: &[std::net::IpAddr]) -> [Run; 3] {
    let guests = OrderLoad::guests().from_sources(sources.to_vec());
    [
        Run {
            name: "baseline",
            describe: "guests' POST /api/orders, ABUSE_LIMITS=off",
            limits: &[("ABUSE_LIMITS", "off")],
            load: guests.clone(),
            body: guest_body,
        },
        Run {
            name: "guest",
            describe: "guests' POST /api/orders, limits on (per address raised, per email default)",
            limits: &[
                ("ABUSE_LIMITS", "on"),
                ("LIMIT_GUEST_UNPAID_ORDERS_PER_IP", UNREACHED),
            ],
            load: guests,
            body: guest_body,
        },
        Run {
            name: "customer",
            describe: "customers' POST /api/me/orders with Cognito ID tokens, limits on (raised)",
            limits: &[
                ("ABUSE_LIMITS", "on"),
                ("LIMIT_CUSTOMER_UNPAID_ORDERS_PER_IP", UNREACHED),
                ("LIMIT_CUSTOMER_ORDERS_PER_EMAIL", UNREACHED),
            ],
            load: OrderLoad::customers(bearers).from_sources(sources.to_vec()),
            body: customer_body,
        },
    ]
}

/// What every run is measured against.
struct Target<'a> {
    settings: &'a Settings,
    database: &'a ScratchDatabase,
    bootstrap: &'a str,
    gateway: &'a Gateway,
    sources: &'a [std::net::IpAddr],
}

/// `BENCH_ROUNDS` rounds of `runs`, every other one in reverse order; `rounds[r][i]` is run
/// `i` (in the order of `runs`) of round `r`.
async fn measure_rounds(target: &Target<'_>, runs: &[Run]) -> anyhow::Result<Vec<Vec<Measured>>> {
    let settings = target.settings;
    let mut rounds = Vec::new();
    for round in 0..settings.rounds.max(1) {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut measured: Vec<Option<Measured>> = (0..runs.len()).map(|_| None).collect();
        for index in order {
            let run = runs[index].clone();
            println!(
                "order-api {} (round {}): {}, over HTTP behind the local gateway, {} clients from {} addresses ({}..), {} s measured after {} s warm-up",
                run.name,
                round + 1,
                run.describe,
                settings.clients,
                target.sources.len(),
                target.sources[0],
                settings.duration.as_secs(),
                settings.warmup.as_secs()
            );
            measured[index] = Some(
                measure_api(
                    settings,
                    target.database,
                    target.bootstrap,
                    target.gateway,
                    run,
                )
                .await?,
            );
        }
        rounds.push(
            measured
                .into_iter()
                .map(|m| m.expect("every run measured"))
                .collect(),
        );
    }
    Ok(rounds)
}

/// pgbench with the API's statement, as fast as it goes or held to `rate`; its report and
/// the CPU the programs spent.
async fn run_pgbench(
    settings: &Settings,
    database: &ScratchDatabase,
    script: &str,
    rate: Option<f64>,
) -> anyhow::Result<(PgBenchReport, CpuTimes)> {
    let mut pgbench = PgBench::new(database.url.clone(), script);
    pgbench.clients = u32::try_from(settings.clients)?;
    pgbench.threads = settings.pgbench_threads;
    pgbench.duration = settings.duration;
    pgbench.rate = rate;
    println!(
        "pgbench: the API's order + outbox statement (no counters, as the baseline), {}",
        pgbench.describe()
    );
    print_load("before");
    let cpu_before = CpuTimes::read(&PGBENCH_PROGRAMS);
    let report = tokio::task::spawn_blocking(move || pgbench.run()).await??;
    let cpu = CpuTimes::read(&PGBENCH_PROGRAMS).since(&cpu_before);
    print_load("after");
    println!(
        "  transactions {} ok, {} failed",
        report.transactions, report.failed
    );
    println!("  throughput {:.1} tps", report.tps);
    if let Some(latency) = report.latency {
        println!("  latency    {latency}");
    }
    print_cpu(
        "per transaction",
        &cpu,
        usize::try_from(report.transactions)?,
    );
    Ok((report, cpu))
}

/// PostgreSQL's CPU per order or transaction, in µs.
fn postgres_micros(cpu: &CpuTimes, count: usize) -> Option<f64> {
    cpu.micros_per(count)
        .into_iter()
        .find_map(|(program, micros)| (program == "postgres").then_some(micros))
}

/// What PostgreSQL does per order beyond the statement itself (chiefly the outbox delete),
/// as its CPU per baseline order over its CPU per pgbench transaction at the same rate.
fn print_outbox_overhead(api: &CpuTimes, orders: usize, paced: &CpuTimes, transactions: usize) {
    if let (Some(per_order), Some(per_transaction)) = (
        postgres_micros(api, orders),
        postgres_micros(paced, transactions),
    ) && per_transaction > 0.0
    {
        let ratio = per_order / per_transaction;
        println!(
            "PostgreSQL CPU per baseline API order / per pgbench transaction at the same rate = {per_order:.0} / {per_transaction:.0} µs = {ratio:.2}x (target <= {OUTBOX_TARGET:.2}x, {})",
            if ratio <= OUTBOX_TARGET {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

/// Over all rounds: each run's mean orders/s against the baseline's, judged by the target.
fn print_mean_ratios(rounds: &[Vec<Measured>]) {
    let Some(first) = rounds.first() else {
        return;
    };
    let mean = |index: usize| {
        rounds
            .iter()
            .map(|round| round[index].report.throughput())
            .sum::<f64>()
            / rounds.len() as f64
    };
    let base = mean(0);
    for (index, run) in first.iter().enumerate().skip(1) {
        let ratio = mean(index) / base;
        println!(
            "mean over {} rounds: {} / baseline throughput = {:.1} / {:.1} = {ratio:.2}x (target >= {TARGET:.2}x{})",
            rounds.len(),
            run.name,
            mean(index),
            base,
            if ratio >= TARGET {
                ", met"
            } else {
                ", NOT met"
            }
        );
    }
}

/// Each run with limits against the baseline, and the CPU each program spent per order more
/// (or less) than in the baseline.
fn print_audience_ratios(measured: &[Measured]) {
    let Some((baseline, others)) = measured.split_first() else {
        return;
    };
    let base = baseline.report.throughput();
    println!("orders/s: {}", {
        let all: Vec<String> = measured
            .iter()
            .map(|m| format!("{} {:.1}", m.name, m.report.throughput()))
            .collect();
        all.join(", ")
    });
    for run in others {
        let ratio = run.report.throughput() / base;
        println!(
            "ratio: {} / baseline throughput = {:.1} / {:.1} = {ratio:.2}x (target >= {TARGET:.2}x{})",
            run.name,
            run.report.throughput(),
            base,
            if ratio >= TARGET {
                ", met"
            } else {
                ", NOT met"
            }
        );
        let base_cpu = baseline.cpu.micros_per(baseline.orders);
        let split: Vec<String> = run
            .cpu
            .micros_per(run.orders)
            .into_iter()
            .zip(base_cpu)
            .map(|((program, micros), (_, before))| format!("{program} {:+.0}", micros - before))
            .collect();
        println!("  CPU µs per order vs baseline: {}", split.join(", "));
        if let (Some(latency), Some(before)) = (run.report.latency, baseline.report.latency) {
            println!(
                "  latency p50 {} / p99 {}  vs baseline p50 {} / p99 {}",
                ms(latency.p50),
                ms(latency.p99),
                ms(before.p50),
                ms(before.p99)
            );
        }
    }
}

/// The ratio where only the database is shared: PostgreSQL's CPU per pgbench transaction over
/// its CPU per API order. Here the API shares two cores with the broker and with its own
/// HTTP clients, which pgbench does not; on AWS the functions and the brokers run on
/// machines of their own and the database instance is what the API's rate is bound by.
fn print_database_ratio(api: &CpuTimes, orders: usize, baseline: &CpuTimes, transactions: usize) {
    if let (Some(per_order), Some(per_transaction)) = (
        postgres_micros(api, orders),
        postgres_micros(baseline, transactions),
    ) && per_order > 0.0
    {
        println!(
            "database-bound ratio: PostgreSQL CPU per pgbench transaction / per baseline API order = {per_transaction:.0} / {per_order:.0} µs = {:.2}x (the throughput ratio when only the database's CPU is shared)",
            per_transaction / per_order
        );
    }
}

/// One run: the router with `run`'s limits, served behind the gateway on a free port and
/// driven by the closed-loop clients; then its figures, and the tables emptied for the next.
async fn measure_api(
    settings: &Settings,
    database: &ScratchDatabase,
    bootstrap: &str,
    gateway: &Gateway,
    run: Run,
) -> anyhow::Result<Measured> {
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
    for (name, value) in run.limits {
        variables.insert((*name).to_owned(), (*value).to_owned());
    }
    let config = OrderApiConfig::from_source(Some(variables))?;
    let state = AppState::from_config(&config).await?;
    let options = LoadOptions {
        clients: settings.clients,
        warmup: settings.warmup,
        duration: settings.duration,
    };
    print_load("before");
    let cpu_before = CpuTimes::read(&API_PROGRAMS);
    // The same router the Lambda function and the local binary serve, behind the gateway
    // the local binary puts in front of it.
    let report = load_orders(app(state.clone()), gateway, options, run.body, run.load).await?;
    // Events are published after each answer; wait for the last ones before counting.
    state.outbox().flush().await;
    let cpu = CpuTimes::read(&API_PROGRAMS).since(&cpu_before);
    print_load("after");
    let (pending, total) = outbox_counts(database).await?;
    let counted: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(hits), 0)::bigint FROM request_counts")
            .fetch_one(&database.pool)
            .await?;
    println!(
        "  requests   {} ok, {} failed",
        report.succeeded, report.failed
    );
    println!("  throughput {:.1} orders/s", report.throughput());
    if let Some(latency) = report.latency {
        println!("  latency    {latency}");
    }
    println!(
        "  events     {} of {total} published by the API (delivery timeout {} ms), {pending} left for the relay; {counted} counter hits",
        total - pending,
        config.kafka.delivery_timeout.as_millis()
    );
    let orders = usize::try_from(total)?;
    print_cpu("per order (warm-up included)", &cpu, orders);
    ensure!(
        report.failed == 0,
        "{}: {} requests were not answered 201 (a limit reached, a token refused?)",
        run.name,
        report.failed
    );
    state.pool().close().await;
    sqlx::query("TRUNCATE orders, outbox, request_counts CASCADE")
        .execute(&database.pool)
        .await?;
    Ok(Measured {
        name: run.name,
        report,
        cpu,
        orders,
    })
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

/// A guest's next order: the products in turn, quantities 1 to 10 (a guest's most), and an
/// email address of its own, as many guests' orders have.
fn guest_body(client_no: usize, sequence: u64) -> serde_json::Value {
    serde_json::json!({
        "customerName": format!("Bench customer {client_no}-{sequence}"),
        "customerEmail": format!("guest-{client_no}-{sequence}@bench.example"),
        "productName": PRODUCTS[(sequence as usize + client_no) % PRODUCTS.len()],
        "quantity": 1 + sequence % 10,
    })
}

/// A customer's next order: as a guest's, without an address (mail goes to the account's).
fn customer_body(client_no: usize, sequence: u64) -> serde_json::Value {
    serde_json::json!({
        "customerName": format!("Bench customer {client_no}-{sequence}"),
        "productName": PRODUCTS[(sequence as usize + client_no) % PRODUCTS.len()],
        "quantity": 1 + sequence % 10,
    })
}

/// Unpublished events (the outbox keeps a row only until the broker acknowledged it) and
/// all events (one `order.placed` per order).
async fn outbox_counts(database: &ScratchDatabase) -> anyhow::Result<(i64, i64)> {
    Ok(
        sqlx::query_as("SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM orders)")
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
        customer_email: Some(EmailAddress::parse("guest-12-345@bench.example").expect("valid")),
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
    // In the order `place_order` binds them: a guest's order (its email address, no
    // idempotency key, no card, the hash of its order token), counted against no limit, as
    // the baseline run places them.
    let arguments = [
        "bench_uuid_v7()".to_owned(),
        "'Bench customer ' || :n".to_owned(),
        "'guest-' || :n || '@bench.example'".to_owned(),
        "'Keyboard'".to_owned(),
        ":q".to_owned(),
        "NULL".to_owned(),
        "NULL".to_owned(),
        format!("'{}'", topics::ORDER_PLACED),
        "'Keyboard'".to_owned(),
        format!("'{payload}'"),
        "NULL".to_owned(),
        format!("'{trace}'"),
        // The counters (names, subjects, limits) and their window: none.
        "'{}'".to_owned(),
        "'{}'".to_owned(),
        "'{}'".to_owned(),
        "0".to_owned(),
        // No customer account; the token's hash.
        "NULL".to_owned(),
        "sha256(int8send(:n))".to_owned(),
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
