//! A mixed-fault soak of the whole local system: the real `local-runtime` binary on a scratch
//! database, a private broker behind a cuttable network and a private maildev, driven with
//! steady orders while faults from a seeded schedule come and go. At the end it checks and
//! prints the invariants (see `bench::soak::invariants`).
//!
//! ```text
//! cargo run --release -p bench --bin soak
//! ```
//!
//! Every product has a price. Part of the orders keep the original body (paid on invoice),
//! the others pay by card at a private localstripe, which declines some of them (see
//! `bench::soak::payment_method`).
//!
//! Beside those guests' orders, whose fate the invariants follow, more callers go on through
//! the run (`bench::soak::audiences`): guests who read their order with its token, customers
//! signed in to a Cognito user pool of the run's own (on the emulator; the runtime's gateway
//! checks their ID tokens against it) who place, list, read and cancel their orders, and the
//! operator, who reads and cancels orders and sets stock. Their orders are kept apart from
//! the invariants' per-order checks; every answer they get must be the promised one.
//!
//! The runtime's abuse limits are on, each raised just above what the run sends from one
//! address (the main guests all come from 127.0.0.1, the side guests and each customer from an
//! address of their own), so that nothing the soak sends is refused for its rate; the
//! per-email limit of guests stays the default (every guest order names its own address).
//!
//! Faults: the broker's network cut, every database session killed, the SMTP sink stopped,
//! the runtime SIGKILLed and restarted, the payment stand-in stopped (frozen). Every
//! `SOAK_POISON_EVERY`-th order also brings a poison record on `order-placed`. One product
//! has little stock, so that orders are rejected too and rejection mails are part of the check.
//!
//! Settings: `SOAK_SECS` (600), `SOAK_RATE` (10 orders/s), `SOAK_SEED` (1),
//! `SOAK_MEAN_FAULT_GAP_SECS` (12), `SOAK_POISON_EVERY` (250), `SOAK_DRAIN_SECS` (180),
//! `SOAK_CUSTOMERS` (3), `SOAK_SIDE_RATE` (3 steps/s of the other callers; 0: none),
//! `BENCH_RUNTIME_BIN` (default: built here), `DATABASE_URL` (the server to use).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use bench::pipeline::api::Api;
use bench::pipeline::offered_load::{Offered, offer_bodies};
use bench::pipeline::orders::{PRODUCTS, customer_email_pattern, order_seq};
use bench::scratch::{self, ScratchDatabase};
use bench::settings::{env_number, env_secs};
use bench::soak::audiences::{Customer, OPERATOR_PRODUCT, SideTraffic, Tally};
use bench::soak::faults::{OBSERVER, System};
use bench::soak::invariants::{self, Run};
use bench::soak::schedule::{self, FaultKind};
use bench::soak::{self as plan, Settings};
use local_runtime::gateway::jwt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::cognito::Pool;
use testkit::maildev::Maildev;
use testkit::runtime::{LocalRuntime, RuntimeSpec};
use testkit::stripe::LocalStripe;
use testkit::tansu::Tansu;
use tokio::sync::Mutex;

/// The product that runs out, and its stock.
const SCARCE: (&str, i64) = ("Headphones", 150);
/// Every other product's stock: more than the run orders.
const AMPLE: i64 = 1_000_000;
/// Each product's price, in cents.
const PRICES: [(&str, u64); 5] = [
    ("Laptop", 129_900),
    ("Monitor", 24_900),
    ("Keyboard", 4_999),
    ("Mouse", 1_999),
    ("Headphones", 8_999),
];
const CURRENCY: &str = "usd";
/// The relay's grace period in this run (the runtime's `RELAY_MIN_AGE_SECS`).
const RELAY_WINDOW: Duration = Duration::from_secs(5);
/// The consumers of `order-placed`, each of which dead-letters a poison record once.
const ORDER_PLACED_READERS: usize = 2;
const TAG: &str = "soak";

fn settings() -> anyhow::Result<Settings> {
    Ok(Settings {
        duration: env_secs("SOAK_SECS", 600)?,
        rate: env_number("SOAK_RATE", 10.0)?,
        seed: env_number("SOAK_SEED", 1)?,
        mean_fault_gap: env_secs("SOAK_MEAN_FAULT_GAP_SECS", 12)?,
        poison_every: env_number("SOAK_POISON_EVERY", 250)?,
        drain: env_secs("SOAK_DRAIN_SECS", 180)?,
        customers: env_number("SOAK_CUSTOMERS", 3)?,
        side_rate: env_number("SOAK_SIDE_RATE", 3.0)?,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    ensure!(settings.rate > 0.0, "SOAK_RATE must be positive");
    ensure!(
        settings.poison_every > 0,
        "SOAK_POISON_EVERY must be positive"
    );
    let binary = bench::local_runtime_binary().await?;
    let database = scratch::create("soak").await?;
    let outcome = soak(&settings, binary, &database).await;
    if outcome.is_ok() {
        database.drop_database().await?;
    } else {
        eprintln!(
            "the run's database is kept for inspection: {}",
            database.url
        );
    }
    outcome
}

/// Starts the system on its own services, drives it through the faults, lets it settle and
/// checks the invariants; fails if one did not hold.
async fn soak(
    settings: &Settings,
    binary: PathBuf,
    database: &ScratchDatabase,
) -> anyhow::Result<()> {
    let services = start_services(settings).await;
    let count = (settings.duration.as_secs_f64() * settings.rate) as usize;
    let runtime = start_runtime(settings, &binary, database, &services, count).await?;
    let observer = connect_observer(database).await?;
    let Services {
        broker,
        sink,
        stripe,
        identity,
        customers,
    } = services;
    let api = Api::new(runtime.base_url());
    let side = SideTraffic::new(&runtime.base_url(), customers);
    print_plan(settings, &runtime, &identity);

    let initial_stock = stock_products(&api).await?;
    let faults = schedule::draw(settings.seed, settings.duration, settings.mean_fault_gap);
    println!("  fault schedule: {} faults", faults.len());

    let system = Arc::new(Mutex::new(System {
        broker,
        sink,
        runtime,
        stripe,
        observer: observer.clone(),
    }));
    let mut traffic = drive(settings, &api, &system, faults, side, count).await?;
    let answered = traffic.accepted.len();
    let unanswered = created_without_answer(&observer, &mut traffic.accepted).await?;
    print_offered(count, answered, unanswered, &traffic.offered);

    let system = Arc::into_inner(system)
        .context("the injector still holds the system")?
        .into_inner();
    drain(&observer, &traffic.accepted, settings.drain).await;
    let mails = system.sink.messages().await;
    let payment_intents = system.stripe.payment_intents().await;
    let bootstrap = system.broker.bootstrap();
    let run = Run {
        tag: TAG,
        accepted: &traffic.accepted,
        initial_stock: &initial_stock,
        poison: &traffic.poison,
        poison_readers: ORDER_PLACED_READERS,
        relay_window: RELAY_WINDOW,
        bootstrap: &bootstrap,
    };
    let checks = invariants::check(&run, &observer, &mails, &payment_intents).await?;

    println!();
    print_results(&observer, &traffic, &checks).await?;
    let mut system = system;
    let _ = system.runtime.try_terminate().await;
    let failed =
        checks.iter().filter(|check| !check.held).count() + usize::from(traffic.side.wrong() > 0);
    ensure!(failed == 0, "{failed} checks did not hold");
    Ok(())
}

/// The services the runtime works with, each private to the run, and the customers signed in
/// to its user pool.
struct Services {
    broker: Tansu,
    sink: Maildev,
    stripe: LocalStripe,
    identity: Pool,
    customers: Vec<Customer>,
}

/// Starts the run's broker (behind a cuttable network), SMTP sink, payment stand-in and user
/// pool, and signs in its customers (at least one).
async fn start_services(settings: &Settings) -> Services {
    let broker = Tansu::start_behind_proxy().await;
    let sink = Maildev::spawn().await;
    // In memory: see `FaultKind::PaymentStopped` for why it is frozen rather than restarted.
    let stripe = LocalStripe::spawn_in_memory().await;
    let identity = Pool::create("soak").await;
    let mut customers = Vec::with_capacity(settings.customers);
    for _ in 0..settings.customers.max(1) {
        let customer = identity.create_customer("soakcustomer").await;
        let bearer = identity.sign_in(&customer).await.id_token;
        customers.push(Customer {
            email: customer.email,
            bearer,
        });
    }
    Services {
        broker,
        sink,
        stripe,
        identity,
        customers,
    }
}

/// Starts the runtime on the run's database and services, with a short relay window and the
/// abuse limits on but above what the run sends (`count` main orders).
async fn start_runtime(
    settings: &Settings,
    binary: &Path,
    database: &ScratchDatabase,
    services: &Services,
    count: usize,
) -> anyhow::Result<LocalRuntime> {
    let Services {
        broker,
        sink,
        stripe,
        identity,
        ..
    } = services;
    // Each limit a little above what its one address or mailbox sends in the run.
    let per_guest_address = (count + count / 10 + 100).to_string();
    let per_customer = (settings.duration.as_secs_f64() * settings.side_rate) as usize + 100;
    let spec = RuntimeSpec::new(binary, &database.url, &broker.bootstrap(), sink.smtp_port())
        .with("KAFKA_DELIVERY_TIMEOUT_MS", "2000")
        .with("LOCAL_RELAY_INTERVAL_SECS", "1")
        .with("RELAY_MIN_AGE_SECS", RELAY_WINDOW.as_secs().to_string())
        .with("STRIPE_API_BASE", stripe.base_url())
        .with("ABUSE_LIMITS", "on")
        .with("LIMIT_GUEST_MAX_QUANTITY", "10")
        .with("LIMIT_GUEST_UNPAID_ORDERS_PER_IP", &per_guest_address)
        .with("LIMIT_GUEST_CARD_ATTEMPTS_PER_IP", &per_guest_address)
        .with(
            "LIMIT_CUSTOMER_UNPAID_ORDERS_PER_IP",
            per_customer.to_string(),
        )
        .with("LIMIT_CUSTOMER_ORDERS_PER_EMAIL", per_customer.to_string())
        // The gateway checks the customers' tokens against the run's own user pool.
        .with(jwt::ISSUER_VAR, identity.issuer())
        .with(jwt::AUDIENCE_VAR, identity.client_id.clone())
        .with(jwt::JWKS_URL_VAR, identity.jwks_url())
        // The trigger's info lines show where it read a partition again (see its docs).
        .with("RUST_LOG", "warn,local_runtime::trigger=info");
    LocalRuntime::try_start(spec).await
}

/// A small pool on the run's database under the observer's application name, which the
/// fault that kills every database session spares.
async fn connect_observer(database: &ScratchDatabase) -> anyhow::Result<sqlx::PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(
            database
                .url
                .parse::<PgConnectOptions>()?
                .application_name(OBSERVER),
        )
        .await
        .context("could not connect to the run's database")
}

/// Prints what the run is about to do, and where the runtime's log is.
fn print_plan(settings: &Settings, runtime: &LocalRuntime, identity: &Pool) {
    println!(
        "soak: {} s at {} orders/s, seed {}, runtime log {}",
        settings.duration.as_secs(),
        settings.rate,
        settings.seed,
        runtime.log_path().display()
    );
    println!(
        "  beside them: {} steps/s of side guests, {} customers (pool {}) and the operator",
        settings.side_rate,
        settings.customers.max(1),
        identity.id
    );
}

/// Prices and stocks every product (the scarce one low) and empties the operator's product;
/// returns the initial stock of the guests' products.
async fn stock_products(api: &Api) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut initial_stock = BTreeMap::new();
    for product in PRODUCTS {
        let level = if product == SCARCE.0 { SCARCE.1 } else { AMPLE };
        let (_, price) = PRICES
            .iter()
            .find(|(name, _)| *name == product)
            .context("every product has a price")?;
        api.set_priced_stock(product, u32::try_from(level)?, *price, CURRENCY)
            .await?;
        initial_stock.insert(product.to_owned(), level);
    }
    api.set_stock(OPERATOR_PRODUCT, 0).await?;
    Ok(initial_stock)
}

/// What happened while the run's traffic went on.
struct Traffic {
    /// How the main guests' orders were answered.
    offered: Offered,
    /// The orders accepted, by their sequence number in the run.
    accepted: BTreeMap<usize, uuid::Uuid>,
    /// How many faults of each kind were injected.
    injected: BTreeMap<FaultKind, usize>,
    /// The poison records produced.
    poison: HashSet<Vec<u8>>,
    /// How the other callers' requests were answered.
    side: Tally,
}

/// Offers the `count` main orders while the faults come and go, the poison records go out
/// and the other callers go on, all for the run's duration; returns once all of them are done.
async fn drive(
    settings: &Settings,
    api: &Api,
    system: &Arc<Mutex<System>>,
    faults: Vec<schedule::Fault>,
    side: SideTraffic,
    count: usize,
) -> anyhow::Result<Traffic> {
    let (placed_tx, mut placed_rx) = tokio::sync::mpsc::unbounded_channel();
    let started = tokio::time::Instant::now();
    let injector = tokio::spawn({
        let system = system.clone();
        async move {
            let mut injected: BTreeMap<FaultKind, usize> = BTreeMap::new();
            for fault in faults {
                tokio::time::sleep_until(started + fault.at).await;
                println!(
                    "  {:>5.0} s  {} for {} s",
                    fault.at.as_secs_f64(),
                    fault.kind.name(),
                    fault.lasts.as_secs()
                );
                system.lock().await.inject(fault).await?;
                *injected.entry(fault.kind).or_default() += 1;
            }
            anyhow::Ok(injected)
        }
    });
    let poison = tokio::spawn(produce_poison(
        system.lock().await.broker.bootstrap(),
        count / settings.poison_every,
        settings.duration,
    ));
    let side = tokio::spawn({
        let (until, rate) = (started + settings.duration, settings.side_rate);
        async move {
            if rate > 0.0 {
                side.run(until, rate).await
            } else {
                Tally::default()
            }
        }
    });
    let offered = offer_bodies(api, count, settings.rate, 256, Some(placed_tx), |seq| {
        plan::order(TAG, seq)
    })
    .await?;
    let injected = injector.await.context("the fault injector panicked")??;
    let side = side.await.context("the side traffic panicked")?;
    let poison = poison.await.context("the poison producer panicked")??;
    let mut accepted = BTreeMap::new();
    while let Ok((seq, id)) = placed_rx.try_recv() {
        accepted.insert(seq, id);
    }
    Ok(Traffic {
        offered,
        accepted,
        injected,
        poison,
        side,
    })
}

/// Prints how the `count` main orders were answered: `answered` accepted, `unanswered`
/// created though their answer was lost, the rest refused.
fn print_offered(count: usize, answered: usize, unanswered: usize, offered: &Offered) {
    let by_card = (0..count)
        .filter(|seq| plan::payment_method(*seq).is_some())
        .count();
    let declining = (0..count)
        .filter(|seq| plan::payment_method(*seq) == Some(plan::DECLINING_CARD))
        .count();
    println!(
        "  offered {count} orders ({by_card} by card, {declining} of them with a declining card): {answered} accepted, {unanswered} created though their answer was lost, {} refused while faults were on (first failure: {})",
        offered.failures - unanswered,
        offered.first_failure.as_deref().unwrap_or("none")
    );
}

/// Prints the run's results: the accepted orders by outcome, the faults and poison records
/// injected, each invariant and how the other callers were answered.
async fn print_results(
    observer: &sqlx::PgPool,
    traffic: &Traffic,
    checks: &[invariants::Check],
) -> anyhow::Result<()> {
    println!("accepted orders by outcome:");
    for (outcome, orders) in outcomes(observer, &traffic.accepted).await? {
        println!("  {outcome:<36} {orders}");
    }
    println!("faults injected:");
    for kind in FaultKind::ALL {
        println!(
            "  {:<36} {}",
            kind.name(),
            traffic.injected.get(&kind).copied().unwrap_or(0)
        );
    }
    println!(
        "  {:<36} {}",
        "poison records produced",
        traffic.poison.len()
    );
    println!("invariants:");
    for check in checks {
        println!(
            "  {}  {}: {}",
            if check.held { "ok    " } else { "FAILED" },
            check.name,
            check.detail
        );
    }
    print_side(&traffic.side);
    Ok(())
}

/// Prints how the guests, customers and the operator beside the main guests were answered.
fn print_side(side: &Tally) {
    let total = side.total();
    println!("guests, customers and the operator beside them (ok / failed in faults / wrong):");
    for (request, counts) in &side.by_request {
        println!(
            "  {request:<52} {:>5} / {:>3} / {}",
            counts.ok, counts.failed, counts.wrong
        );
    }
    println!(
        "  {}  every answer the promised one: {} right, {} lost to faults, {} wrong{}",
        if side.wrong() == 0 {
            "ok    "
        } else {
            "FAILED"
        },
        total.ok,
        total.failed,
        total.wrong,
        side.first_wrong
            .as_deref()
            .map(|first| format!(" (first: {first})"))
            .unwrap_or_default()
    );
}

/// Produces `count` poison records (not JSON) to `order-placed`, spread over `over`, each
/// value unique so that its dead letters can be traced to it.
async fn produce_poison(
    bootstrap: String,
    count: usize,
    over: Duration,
) -> anyhow::Result<HashSet<Vec<u8>>> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "600000")
        .create()
        .context("could not create the poison producer")?;
    let mut produced = HashSet::new();
    let gap = over / u32::try_from(count.max(1))?;
    for n in 0..count {
        tokio::time::sleep(gap).await;
        let value = format!("soak poison record {n}: not a CloudEvent").into_bytes();
        producer
            .send(
                FutureRecord::to("order-placed")
                    .key("poison")
                    .payload(&value),
                Duration::from_secs(600),
            )
            .await
            .map_err(|(err, _)| anyhow::anyhow!("could not produce a poison record: {err}"))?;
        produced.insert(value);
    }
    Ok(produced)
}

/// Adds to `accepted` the orders of the run that were created although their POST got no
/// answer (the runtime was killed after committing one and before answering), which the
/// system must carry like any other; returns how many.
async fn created_without_answer(
    pool: &sqlx::PgPool,
    accepted: &mut BTreeMap<usize, uuid::Uuid>,
) -> anyhow::Result<usize> {
    let rows: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, customer_email FROM orders WHERE customer_email LIKE $1")
            .bind(customer_email_pattern(TAG))
            .fetch_all(pool)
            .await
            .context("could not read the run's orders")?;
    let mut added = 0;
    for (id, email) in rows {
        let seq = order_seq(&email.to_ascii_lowercase(), TAG).with_context(|| {
            format!("order {id} has an address of no order of the run: {email}")
        })?;
        let known = *accepted.entry(seq).or_insert_with(|| {
            added += 1;
            id
        });
        ensure!(
            known == id,
            "orders {known} and {id} were both created for order {seq} of the run"
        );
    }
    Ok(added)
}

/// How the accepted orders ended: by status, with how they paid or why they were rejected.
async fn outcomes(
    pool: &sqlx::PgPool,
    accepted: &BTreeMap<usize, uuid::Uuid>,
) -> anyhow::Result<Vec<(String, i64)>> {
    let ids: Vec<uuid::Uuid> = accepted.values().copied().collect();
    sqlx::query_as(
        "SELECT status || CASE
                    WHEN status = 'REJECTED' THEN ' ' || coalesce(rejection_reason, '')
                    WHEN payment_method IS NOT NULL THEN ' paid by card'
                    ELSE ' on invoice' END,
                count(*)
         FROM orders WHERE id = ANY($1) GROUP BY 1 ORDER BY 1",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .context("could not count the orders by outcome")
}

/// Waits (up to `limit`) until every accepted order is decided and has its mails, so that
/// the checks see the settled state; the checks themselves say what is missing if not.
async fn drain(pool: &sqlx::PgPool, accepted: &BTreeMap<usize, uuid::Uuid>, limit: Duration) {
    let ids: Vec<uuid::Uuid> = accepted.values().copied().collect();
    let settled = testkit::poll_until(limit, || async {
        let (undecided, unmailed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status IN ('PLACED', 'RESERVED')),
                    count(*) FILTER (WHERE EXISTS (
                        SELECT 1 FROM (VALUES
                            ('ORDER_RECEIVED', true),
                            ('ORDER_REJECTED', status = 'REJECTED'),
                            ('ORDER_CONFIRMED', status = 'CONFIRMED' AND payment_method IS NOT NULL)
                        ) AS due (kind, wanted)
                        WHERE due.wanted AND NOT EXISTS (
                            SELECT 1 FROM notifications n
                            WHERE n.order_id = orders.id AND n.kind = due.kind
                              AND n.status IN ('SENT', 'FAILED', 'SKIPPED'))))
             FROM orders WHERE id = ANY($1) AND customer_email LIKE $2",
        )
        .bind(&ids)
        .bind(customer_email_pattern(TAG))
        .fetch_one(pool)
        .await
        .map_err(|err| err.to_string())?;
        let unpublished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(pool)
                .await
                .map_err(|err| err.to_string())?;
        if undecided == 0 && unmailed == 0 && unpublished == 0 {
            Ok(())
        } else {
            Err(format!(
                "{undecided} PLACED or RESERVED, {unmailed} without every mail they are due, {unpublished} unpublished"
            ))
        }
    })
    .await;
    if let Err(left) = settled {
        println!("  not settled after {} s: {left}", limit.as_secs());
    }
    // Long enough for a mail the sink is still taking in to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
}
