//! Cold starts: each function's release `bootstrap` started `BENCH_COLD_STARTS` times against
//! a Runtime API stand-in (`testkit::lambda_api`), next to a hello-world Lambda runtime binary
//! (`--bin hello_lambda`) built with the same profile in the same run. For each start:
//!
//! - init: from exec to the runtime's first `next` call;
//! - first invocation: from handing out the first event to its answer;
//! - for order-api with an Extensions API, also until its extension is done (the instance
//!   stays busy, and billed, until then).
//!
//! It prints medians and their ratios to the hello-world's, and the slowest start's first
//! invocation and time until frozen. Targets: init <= 2x, first invocation < 50 ms against
//! local services. It also times the mail sink's greeting, a pause of the sink's own that
//! notification's first mail waits out, and prints notification's first invocation without it.
//!
//! ```text
//! cargo run --release -p bench --bin cold_start
//! ```
//!
//! Settings: `BENCH_COLD_STARTS` (15), `BENCH_BINARIES_DIR` (binaries already built with the
//! release profile, such as `target/release`; default: built now), `DATABASE_URL` (the server to use; a scratch database
//! is created on it and dropped afterwards), `BENCH_KAFKA_BOOTSTRAP` (default: a private
//! broker started for the run), `BENCH_FUNCTION_LOG` (the functions' `RUST_LOG`, `warn`; their
//! logs are under the temporary folder's `lambda-function-logs/`). Mail goes to a private
//! mail sink, payments to a private localstripe.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bench::scratch::{self, ScratchDatabase};
use bench::settings::{env, env_number, load_average};
use bench::stats::{LatencySummary, ms};
use serde_json::{Value, json};
use shared::events::{EventType, OrderEvent, OrderEventData, PaymentData};
use testkit::lambda_api::{FunctionProcess, RuntimeApi, http_api_event};
use testkit::maildev::Maildev;
use testkit::msk::kafka_event;
use testkit::stripe::LocalStripe;
use testkit::tansu::Tansu;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

/// How long a start or an invocation may take before the run fails.
const LIMIT: Duration = Duration::from_secs(30);

/// What one function is started as and sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Event {
    Echo,
    PlaceOrder,
    OrderPlacedForInventory,
    OrderPlacedForNotification,
    OrderReservedForPayment,
    Schedule,
}

struct Subject {
    label: &'static str,
    binary: &'static str,
    extensions: bool,
    event: Event,
    init: Vec<Duration>,
    first: Vec<Duration>,
    frozen: Vec<Duration>,
}

impl Subject {
    fn new(label: &'static str, binary: &'static str, extensions: bool, event: Event) -> Self {
        Self {
            label,
            binary,
            extensions,
            event,
            init: Vec::new(),
            first: Vec::new(),
            frozen: Vec::new(),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    scratch::with_database("bench_cold_start", async |database| run(database).await).await
}

/// Starts every subject `BENCH_COLD_STARTS` times, round-robin, against the run's services,
/// then reports.
async fn run(database: &ScratchDatabase) -> anyhow::Result<()> {
    let starts: usize = env_number("BENCH_COLD_STARTS", 15)?;
    let binaries = binaries().await?;
    let (_broker, bootstrap) = broker().await;
    let mail = Maildev::spawn().await;
    let stripe = LocalStripe::spawn_in_memory().await;
    sqlx::query("INSERT INTO stock (product_name, quantity) VALUES ('Laptop', 1000000)")
        .execute(&database.pool)
        .await?;
    let env = function_env(
        &database.url,
        &bootstrap,
        mail.smtp_port(),
        stripe.base_url(),
    );

    let mut subjects = subjects();
    println!(
        "cold starts: {starts} starts per function, binaries {}, broker {bootstrap}, load average {:.2}",
        bench::settings::env("BENCH_BINARIES_DIR", "built now (release)"),
        load_average().unwrap_or(f64::NAN)
    );
    // Round-robin, so that a busy moment on the shared machine hits every function alike.
    for _ in 0..starts {
        for subject in &mut subjects {
            let binary = &binaries[subject.binary];
            start_once(subject, binary, &env, database).await?;
        }
    }
    let greeting = sink_greeting(mail.smtp_port(), starts).await?;
    report(&mut subjects, greeting);
    Ok(())
}

/// The release binaries to start, by name: those in `BENCH_BINARIES_DIR`, else built now.
async fn binaries() -> anyhow::Result<HashMap<String, PathBuf>> {
    let wanted = [
        ("bench", "hello_lambda"),
        ("order-api", "order-api"),
        ("inventory", "inventory"),
        ("notification", "notification"),
        ("payment", "payment"),
        ("outbox-relay", "outbox-relay"),
    ];
    Ok(match std::env::var("BENCH_BINARIES_DIR") {
        Ok(dir) if !dir.is_empty() => wanted
            .iter()
            .map(|(_, name)| (name.to_string(), Path::new(&dir).join(name)))
            .collect(),
        _ => bench::release_binaries(&wanted).await?,
    })
}

/// The broker's bootstrap address: `BENCH_KAFKA_BOOTSTRAP`, else a private broker's, started
/// now and returned too, to live as long as the run.
async fn broker() -> (Option<Tansu>, String) {
    match std::env::var("BENCH_KAFKA_BOOTSTRAP") {
        Ok(bootstrap) if !bootstrap.is_empty() => (None, bootstrap),
        _ => {
            let broker = Tansu::start().await;
            let bootstrap = broker.bootstrap();
            (Some(broker), bootstrap)
        }
    }
}

/// What is started and timed: the hello-world, then each function with the event it is
/// sent (order-api with and without the Extensions API).
fn subjects() -> [Subject; 7] {
    [
        Subject::new("hello-world", "hello_lambda", false, Event::Echo),
        Subject::new(
            "order-api, no Extensions API",
            "order-api",
            false,
            Event::PlaceOrder,
        ),
        Subject::new(
            "order-api, Extensions API",
            "order-api",
            true,
            Event::PlaceOrder,
        ),
        Subject::new(
            "inventory",
            "inventory",
            false,
            Event::OrderPlacedForInventory,
        ),
        Subject::new(
            "notification",
            "notification",
            false,
            Event::OrderPlacedForNotification,
        ),
        Subject::new("payment", "payment", false, Event::OrderReservedForPayment),
        Subject::new("outbox-relay", "outbox-relay", false, Event::Schedule),
    ]
}

/// The mail sink's time from a new connection to its `220` greeting, median of `samples`.
/// smtp-server, under maildev, waits 100 ms before greeting; SES does not.
async fn sink_greeting(port: u16, samples: usize) -> anyhow::Result<Duration> {
    let mut waits = Vec::new();
    for _ in 0..samples.max(1) {
        let started = Instant::now();
        let socket = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut greeting = String::new();
        tokio::time::timeout(LIMIT, BufReader::new(socket).read_line(&mut greeting)).await??;
        ensure!(
            greeting.starts_with("220"),
            "the mail sink greeted with {greeting:?}"
        );
        waits.push(started.elapsed());
    }
    Ok(median(&mut waits).unwrap_or_default())
}

/// The variables every function reads, pointing at the run's database, broker, mail sink and
/// Stripe stand-in.
fn function_env(
    database_url: &str,
    bootstrap: &str,
    smtp_port: u16,
    stripe_base: &str,
) -> Vec<(String, String)> {
    let mut variables = testkit::runtime::services_env(database_url, bootstrap, smtp_port);
    variables.extend([
        ("STRIPE_API_BASE", stripe_base.to_owned()),
        ("STRIPE_API_KEY", testkit::stripe::API_KEY.to_owned()),
        ("RUST_LOG", env("BENCH_FUNCTION_LOG", "warn")),
    ]);
    variables
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// Starts the function once, hands it its first event and records the timings.
async fn start_once(
    subject: &mut Subject,
    binary: &Path,
    env: &[(String, String)],
    database: &ScratchDatabase,
) -> anyhow::Result<()> {
    let event = first_event(subject.event, database).await?;
    let api = RuntimeApi::start(subject.extensions).await;
    let function = FunctionProcess::start(binary, subject.binary, &api, env)?;
    let log = function.log_path().display().to_string();
    let ready = api
        .first_next(LIMIT)
        .await
        .with_context(|| format!("{}: see {log}", subject.label))?;
    let answer = api
        .invoke(&event, LIMIT)
        .await
        .with_context(|| format!("{}: see {log}", subject.label))?;
    if let Err(error) = &answer.result {
        anyhow::bail!(
            "{} failed its first invocation: {error}; see {log}",
            subject.label
        );
    }
    if subject.event == Event::PlaceOrder {
        let status = &answer.response()["statusCode"];
        anyhow::ensure!(
            status == 201,
            "{}: answered {status}; see {log}",
            subject.label
        );
    }
    subject.init.push(ready.duration_since(function.started));
    subject.first.push(answer.latency());
    if subject.extensions && api.extensions() > 0 {
        let done = api.extensions_done(&answer.request_id, LIMIT).await?;
        subject.frozen.push(done.duration_since(answer.delivered));
    }
    function.stop().await;
    Ok(())
}

/// A guest address no earlier start of this run used: 10.x.y.z, counting up.
fn next_guest_address() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let [_, x, y, z] = NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    format!("10.{x}.{y}.{z}")
}

/// The first event for `event`, with fresh ids so that no start finds its work already done.
async fn first_event(event: Event, database: &ScratchDatabase) -> anyhow::Result<Value> {
    Ok(match event {
        Event::Echo => json!({"hello": "world"}),
        Event::PlaceOrder => {
            let body =
                json!({"customerName": "Ada Lovelace", "productName": "Laptop", "quantity": 1});
            let mut event = http_api_event("POST", "/api/orders", Some(&body.to_string()));
            // Each start's order comes from a guest of its own, as a cold start's first
            // request does: from one address, the default limits (20 unpaid orders per
            // address an hour) would refuse the starts after the 20th with 429.
            event["requestContext"]["http"]["sourceIp"] = json!(next_guest_address());
            event
        }
        Event::OrderPlacedForInventory | Event::OrderPlacedForNotification => {
            let placed = OrderEvent::placed(ada_orders_a_laptop(None));
            sqlx::query(
                "INSERT INTO orders (id, customer_name, customer_email, product_name, quantity, status)
                 VALUES ($1, 'Ada Lovelace', 'ada@example.com', 'Laptop', 1, 'PLACED')",
            )
            .bind(placed.data.order_id)
            .execute(&database.pool)
            .await?;
            msk_batch(&placed)?
        }
        Event::OrderReservedForPayment => {
            let reserved = OrderEvent::new(
                EventType::OrderReserved,
                ada_orders_a_laptop(Some(PaymentData {
                    money: shared::domain::Money::new(129_900, shared::domain::Currency::DEFAULT)?,
                    decline_code: None,
                })),
            );
            // A card that succeeds, as events/payment-orders.sql pays with.
            sqlx::query(
                "INSERT INTO orders (id, customer_name, customer_email, product_name, quantity, status,
                                     payment_method, amount, currency)
                 VALUES ($1, 'Ada Lovelace', 'ada@example.com', 'Laptop', 1, 'RESERVED',
                         'pm_card_visa', 129900, 'usd')",
            )
            .bind(reserved.data.order_id)
            .execute(&database.pool)
            .await?;
            msk_batch(&reserved)?
        }
        Event::Schedule => {
            serde_json::from_str(include_str!("../../../events/outbox-relay-schedule.json"))?
        }
    })
}

/// A new order of one laptop by Ada Lovelace, as the events about it carry it.
fn ada_orders_a_laptop(payment: Option<PaymentData>) -> OrderEventData {
    OrderEventData {
        payment,
        ..testkit::orders::ada_orders("Laptop", 1)
    }
}

/// An MSK trigger's batch holding `event` alone.
fn msk_batch(event: &OrderEvent) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(kafka_event(
        "arn:aws:kafka:us-east-1:123456789012:cluster/bench/1",
        "127.0.0.1:9092",
        [testkit::msk::record(event, 0, 1)],
    ))?)
}

fn median(samples: &mut [Duration]) -> Option<Duration> {
    LatencySummary::from_samples(samples).map(|summary| summary.p50)
}

/// The median and, after a slash, the slowest start: a delay that hits only some starts (a
/// timer in a client library, say) shows in the second figure before it moves the first.
fn median_and_slowest(samples: &mut [Duration]) -> String {
    LatencySummary::from_samples(samples).map_or_else(
        || "-".to_owned(),
        |summary| format!("{} / {}", ms(summary.p50), ms(summary.max)),
    )
}

fn report(subjects: &mut [Subject], greeting: Duration) {
    let hello_init = median(&mut subjects[0].init).unwrap_or_default();
    let hello_first = median(&mut subjects[0].first).unwrap_or_default();
    let ratio = |value: Duration, base: Duration| value.as_secs_f64() / base.as_secs_f64();
    println!(
        "{:<30} {:>10} {:>8}   {:>12} {:>8}   {:>12}   {:>22}",
        "median of the starts",
        "init",
        "x hello",
        "first call",
        "x hello",
        "slowest call",
        "until frozen / slowest"
    );
    for subject in subjects.iter_mut() {
        let init = median(&mut subject.init).unwrap_or_default();
        let first = LatencySummary::from_samples(&mut subject.first);
        let (first, slowest) = first.map_or_else(Default::default, |first| (first.p50, first.max));
        println!(
            "{:<30} {:>10} {:>7.2}x   {:>12} {:>7.1}x   {:>12}   {:>22}",
            subject.label,
            ms(init),
            ratio(init, hello_init),
            ms(first),
            ratio(first, hello_first),
            ms(slowest),
            median_and_slowest(&mut subject.frozen)
        );
    }
    println!("targets: init <= 2x hello-world; first invocation < 50 ms");
    if let Some(notification) = subjects
        .iter_mut()
        .find(|subject| subject.event == Event::OrderPlacedForNotification)
    {
        let first = median(&mut notification.first).unwrap_or_default();
        println!(
            "the mail sink's greeting, connect to 220: {} (median); notification's first invocation without it: {}",
            ms(greeting),
            ms(first.saturating_sub(greeting))
        );
    }
}
