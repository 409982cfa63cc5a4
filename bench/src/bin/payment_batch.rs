//! Payments per second through the real payment handler (a Lambda-shaped batch of reserved
//! orders: decode, claim in PostgreSQL, create and confirm a PaymentIntent each, record the
//! outcomes and their events, publish) against a private localstripe, next to a bare loop of
//! the same Stripe client creating and confirming PaymentIntents at the same concurrency,
//! then the ratio.
//!
//! ```text
//! scripts/with-test-services cargo run --release -p bench --bin payment_batch
//! ```
//!
//! `with-test-services` gives the run a broker with the topics the handler publishes to.
//! Settings: `BENCH_PAYMENTS` (100 per batch), `BENCH_CONCURRENCY` (8, Stripe calls in flight
//! in both paths), `BENCH_ROUNDS` (4; the paths alternate, taking turns to go first, and the
//! geometric mean of the rounds' ratios is reported), `DATABASE_URL` (a scratch database is created on it and dropped afterwards),
//! `KAFKA_BOOTSTRAP_SERVERS`.

use std::time::Instant;

use anyhow::ensure;
use bench::scratch::ScratchDatabase;
use bench::settings::{BatchSettings, env};
use futures::{StreamExt, TryStreamExt, stream};
use payment::Stripe;
use payment::stripe::{Charge, Created};
use shared::config::{KafkaSettings, Secrets};
use shared::domain::{Currency, Money, new_id};
use shared::events::{EventType, OrderEvent, OrderEventData, PaymentData};
use shared::kafka::KafkaPublisher;
use testkit::msk::kafka_event;
use testkit::orders::order_data;
use testkit::stripe::{API_KEY, LocalStripe};
use uuid::Uuid;

const AMOUNT: i64 = 129_900;
const CARD: &str = "pm_card_visa";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    BatchSettings::from_env("BENCH_PAYMENTS", 100, 4)?
        .run_on_scratch("bench_payment", run)
        .await
}

/// Warms up, then times the payment consumer and bare Stripe calls round by round, each
/// round in the other order.
async fn run(settings: &BatchSettings, database: &ScratchDatabase) -> anyhow::Result<()> {
    let stripe = LocalStripe::spawn().await;
    let client = Stripe::new(stripe.base_url(), API_KEY.into());
    let kafka = KafkaSettings::plaintext(env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"));
    let publisher = KafkaPublisher::new(&kafka, &Secrets::new()).await?;
    let handler = payment::consumer(
        database.pool.clone(),
        publisher,
        client.clone(),
        settings.concurrency,
    );
    println!(
        "payment benchmark: batches of {} reserved orders, {} Stripe calls in flight, {} rounds, private localstripe at {}",
        settings.batch,
        settings.concurrency,
        settings.rounds,
        stripe.base_url(),
    );
    // Warm both paths (connections, localstripe's first requests).
    handler_round(&handler, database, settings.concurrency * 2).await?;
    bare_round(&client, settings.concurrency * 2, settings.concurrency).await?;

    let mut handler_rates = Vec::new();
    let mut bare_rates = Vec::new();
    for round in 1..=settings.rounds {
        // localstripe slows down as it accumulates objects (it writes its whole state to its
        // file on every change), so the path that goes second would always meet a larger
        // state: they take turns going first.
        let (handler, bare) = if round % 2 == 1 {
            let handler = handler_round(&handler, database, settings.batch).await?;
            let bare = bare_round(&client, settings.batch, settings.concurrency).await?;
            (handler, bare)
        } else {
            let bare = bare_round(&client, settings.batch, settings.concurrency).await?;
            let handler = handler_round(&handler, database, settings.batch).await?;
            (handler, bare)
        };
        println!(
            "  round {round}: handler {handler:7.1} payments/s   bare client loop {bare:7.1} payments/s   ratio {:.2}",
            handler / bare
        );
        handler_rates.push(handler);
        bare_rates.push(bare);
    }
    // Rates fall from round to round as localstripe's state grows, so medians across rounds
    // compare little; each round's ratio does, and their geometric mean over rounds that
    // alternate who goes first cancels the first-mover advantage.
    let ratios: Vec<f64> = handler_rates
        .iter()
        .zip(&bare_rates)
        .map(|(handler, bare)| handler / bare)
        .collect();
    let geometric_mean =
        (ratios.iter().map(|ratio| ratio.ln()).sum::<f64>() / ratios.len() as f64).exp();
    println!();
    println!(
        "handler (decode, claim, charge, record, publish) / bare create-and-confirm loop at the same concurrency:"
    );
    println!(
        "ratio {geometric_mean:.2}, the geometric mean of the {} rounds' ratios (target >= 0.80)",
        ratios.len()
    );

    let succeeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'SUCCEEDED'")
            .fetch_one(&database.pool)
            .await?;
    let charged_by_handler = settings.batch * settings.rounds + settings.concurrency * 2;
    ensure!(
        succeeded as usize == charged_by_handler,
        "{succeeded} payments SUCCEEDED, expected {charged_by_handler}"
    );
    println!("check: {succeeded} payments SUCCEEDED, one per order");
    Ok(())
}

/// Inserts `count` RESERVED orders paid by card and hands their `order.reserved` events to
/// the handler in one batch; payments per second.
async fn handler_round(
    handler: &shared::consumer::Consumer<payment::Payments>,
    database: &ScratchDatabase,
    count: usize,
) -> anyhow::Result<f64> {
    let ids: Vec<Uuid> = (0..count).map(|_| new_id()).collect();
    sqlx::query(
        "INSERT INTO orders (id, customer_name, product_name, quantity, status, payment_method,
                             amount, currency)
         SELECT id, 'Ada Lovelace', 'Laptop', 1, 'RESERVED', $2, $3, 'usd'
         FROM UNNEST($1::uuid[]) AS t(id)",
    )
    .bind(&ids)
    .bind(CARD)
    .bind(AMOUNT)
    .execute(&database.pool)
    .await?;
    let events: Vec<OrderEvent> = ids.iter().map(|id| reserved(*id)).collect();
    let batch = kafka_event(
        "arn:aws:kafka:local:000000000000:cluster/bench/payment",
        "127.0.0.1:9092",
        events
            .iter()
            .enumerate()
            .map(|(i, event)| testkit::msk::record(event, (i % 3) as i32, i as i64)),
    );
    let started = Instant::now();
    let summary = handler.handle(batch).await?;
    let elapsed = started.elapsed();
    ensure!(summary.charged == count, "the handler reported {summary:?}");
    Ok(count as f64 / elapsed.as_secs_f64())
}

fn reserved(order_id: Uuid) -> OrderEvent {
    OrderEvent::of_kind(
        EventType::OrderReserved,
        OrderEventData {
            order_id,
            payment: Some(PaymentData {
                money: Money::new(AMOUNT, Currency::DEFAULT).expect("a valid amount"),
                decline_code: None,
            }),
            ..order_data("Ada Lovelace", None, "Laptop", 1)
        },
    )
}

/// `count` charges of the same client (create, then confirm: the calls the function makes),
/// `concurrency` at a time, with no bookkeeping; payments per second.
async fn bare_round(client: &Stripe, count: usize, concurrency: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let charges: Vec<Charge> = stream::iter(0..count)
        .map(|_| async move {
            let order_id = new_id();
            match client
                .create_intent(order_id, Money::new(AMOUNT, Currency::DEFAULT)?, CARD)
                .await?
            {
                Created::Intent(intent) => Ok(client.confirm(order_id, &intent).await?),
                Created::Refused(charge) => Ok::<_, anyhow::Error>(charge),
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let elapsed = started.elapsed();
    ensure!(
        charges
            .iter()
            .all(|charge| matches!(charge, Charge::Succeeded { .. })),
        "a bare charge did not succeed"
    );
    Ok(count as f64 / elapsed.as_secs_f64())
}
