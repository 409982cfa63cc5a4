//! Mails per second through the real notification handler (a Lambda-shaped batch of placed
//! orders: decode, claim in PostgreSQL, render, send over pooled SMTP, record) into maildev,
//! next to a bare send loop over the same mailer at the same concurrency into the same sink,
//! then the ratio. A third path, the same loop over lettre's own pooled transport, shows what
//! the mailer's own connections (Nagle's algorithm off) gain.
//!
//! ```text
//! cargo run --release -p bench --bin notification_batch
//! ```
//!
//! Settings: `BENCH_MAILS` (500 per batch), `BENCH_CONCURRENCY` (8, mails in flight in both
//! paths), `BENCH_ROUNDS` (3; the paths alternate and the median round is reported),
//! `DATABASE_URL` (the server to use; a scratch database is created on it and dropped
//! afterwards), `BENCH_SMTP_PORT` (default: a private maildev started for the run, so the
//! shared sink is not flooded; set 1025 to use the shared one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bench::scratch::ScratchDatabase;
use bench::settings::BatchSettings;
use bench::stats::median;
use futures::{StreamExt, TryStreamExt, stream};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use notification::content::{Notice, render};
use notification::{MailSettings, Mailer, SmtpSettings};
use shared::config::Secrets;
use shared::domain::new_id;
use shared::events::OrderEvent;
use testkit::maildev::Maildev;
use testkit::msk::kafka_event;

const MAIL_FROM: &str = "Orders <orders@shop.example>";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    BatchSettings::from_env("BENCH_MAILS", 500, 3)?
        .run_on_scratch("bench_notification", run)
        .await
}

/// Warms up, measures the three paths round by round, then checks that every mail went out.
async fn run(settings: &BatchSettings, database: &ScratchDatabase) -> anyhow::Result<()> {
    let (sink, smtp_port) = smtp_sink().await?;
    let mut smtp = SmtpSettings::plain("127.0.0.1", smtp_port);
    smtp.timeout = Duration::from_secs(30);
    let mailer = Arc::new(Mailer::new(smtp, settings.concurrency, Secrets::new()).await?);
    let mail = MailSettings::new(MAIL_FROM.parse()?, None);
    let notifier = notification::consumer(
        database.pool.clone(),
        Arc::clone(&mailer),
        mail,
        settings.concurrency,
    );
    let lettre = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(smtp_port)
        .timeout(Some(Duration::from_secs(30)))
        .pool_config(PoolConfig::new().max_size(settings.concurrency as u32))
        .build();
    let run_id = new_id().simple().to_string();
    let recipient = format!("bench-{run_id}@example.com");
    // The bare loop sends the same bodies the handler renders, so only the handler's own
    // work (decoding, bookkeeping, rendering) separates the two.
    let sample = Notice::from_event(&placed(&recipient)).expect("a placed event calls for mail");
    let paths = Paths {
        notifier: &notifier,
        bare: [Sender::Mailer(&mailer), Sender::Lettre(&lettre)],
        recipient: &recipient,
        bodies: render(&sample)?,
    };

    println!(
        "notification benchmark: batches of {} placed orders, {} mails in flight, {} rounds, SMTP 127.0.0.1:{smtp_port} ({})",
        settings.batch,
        settings.concurrency,
        settings.rounds,
        if sink.is_some() {
            "private maildev"
        } else {
            "BENCH_SMTP_PORT"
        },
    );
    warm_up(settings, &paths).await?;
    measure(settings, &paths).await?;
    check_delivered(settings, database, sink.as_ref(), &paths).await
}

/// The SMTP sink: the port `BENCH_SMTP_PORT` names, else a private maildev started for the
/// run (returned too, so that it lives as long as the run and can be asked what it received).
async fn smtp_sink() -> anyhow::Result<(Option<Maildev>, u16)> {
    Ok(match std::env::var("BENCH_SMTP_PORT") {
        Ok(port) if !port.is_empty() => (None, port.parse().context("BENCH_SMTP_PORT")?),
        _ => {
            let sink = Maildev::spawn().await;
            let port = sink.smtp_port();
            (Some(sink), port)
        }
    })
}

/// The three paths a mail can take to the sink, and what they send.
struct Paths<'a> {
    /// The real handler, over the mailer.
    notifier: &'a shared::consumer::Consumer<notification::Notifier>,
    /// The bare send loops: over the same mailer, and over lettre's pooled transport.
    bare: [Sender<'a>; 2],
    recipient: &'a str,
    /// The bodies the handler renders for a placed order, which the bare loops send.
    bodies: notification::content::Rendered,
}

/// Warms every pool so that none pays for connection set-up in the measured rounds.
async fn warm_up(settings: &BatchSettings, paths: &Paths<'_>) -> anyhow::Result<()> {
    handler_round(paths.notifier, paths.recipient, settings.concurrency * 2).await?;
    for path in &paths.bare {
        bare_round(
            path,
            paths.recipient,
            &paths.bodies,
            settings.concurrency * 2,
            settings.concurrency,
        )
        .await?;
    }
    Ok(())
}

/// The measured rounds, each path in turn, each round printed; then the medians and ratios.
async fn measure(settings: &BatchSettings, paths: &Paths<'_>) -> anyhow::Result<()> {
    let mut handler_rates = Vec::new();
    let mut bare_rates = Vec::new();
    let mut lettre_rates = Vec::new();
    for round in 1..=settings.rounds {
        let handler = handler_round(paths.notifier, paths.recipient, settings.batch).await?;
        let [bare_rate, lettre_rate] = [
            bare_round(
                &paths.bare[0],
                paths.recipient,
                &paths.bodies,
                settings.batch,
                settings.concurrency,
            )
            .await?,
            bare_round(
                &paths.bare[1],
                paths.recipient,
                &paths.bodies,
                settings.batch,
                settings.concurrency,
            )
            .await?,
        ];
        println!(
            "  round {round}: handler {handler:8.1} mails/s   bare mailer {bare_rate:8.1} mails/s   bare lettre transport {lettre_rate:8.1} mails/s   ratio {:.2}",
            handler / bare_rate
        );
        handler_rates.push(handler);
        bare_rates.push(bare_rate);
        lettre_rates.push(lettre_rate);
    }
    let handler = median(&mut handler_rates);
    let bare_rate = median(&mut bare_rates);
    let lettre_rate = median(&mut lettre_rates);
    println!();
    println!("handler (decode, claim, render, send, record): {handler:.1} mails/s (median)");
    println!("bare send loop over the mailer, same concurrency: {bare_rate:.1} mails/s (median)");
    println!("bare send loop over lettre's pooled transport:  {lettre_rate:.1} mails/s (median)");
    println!(
        "ratio handler / bare: {:.2} (target >= 0.70)",
        handler / bare_rate
    );
    println!(
        "ratio mailer / lettre's transport: {:.2} (Nagle's algorithm off against on)",
        bare_rate / lettre_rate
    );
    Ok(())
}

/// Checks that the handler recorded every mail of the run as SENT and, with a private sink,
/// that the sink received every mail of all three paths.
async fn check_delivered(
    settings: &BatchSettings,
    database: &ScratchDatabase,
    sink: Option<&Maildev>,
    paths: &Paths<'_>,
) -> anyhow::Result<()> {
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE status = 'SENT'")
        .fetch_one(&database.pool)
        .await?;
    let expected = settings.batch * settings.rounds + settings.concurrency * 2;
    ensure!(
        sent as usize == expected,
        "{sent} notifications SENT, expected {expected}"
    );
    if let Some(sink) = sink {
        let received = sink.messages_to(paths.recipient).await.len();
        let expected = expected
            + paths.bare.len() * (settings.batch * settings.rounds + settings.concurrency * 2);
        ensure!(
            received == expected,
            "the sink holds {received} mails, expected {expected}"
        );
        println!(
            "check: {sent} rows SENT, the sink received all {received} mails of all three paths"
        );
    }
    Ok(())
}

fn placed(recipient: &str) -> OrderEvent {
    OrderEvent::placed(testkit::orders::order_data(
        "Ada Lovelace",
        Some(recipient),
        "Laptop",
        1,
    ))
}

/// One Lambda-shaped batch of `mails` new orders through the real handler; mails per second.
async fn handler_round(
    notifier: &shared::consumer::Consumer<notification::Notifier>,
    recipient: &str,
    mails: usize,
) -> anyhow::Result<f64> {
    let events: Vec<OrderEvent> = (0..mails).map(|_| placed(recipient)).collect();
    let batch = kafka_event(
        "arn:aws:kafka:local:000000000000:cluster/bench/notification",
        "127.0.0.1:9092",
        events
            .iter()
            .enumerate()
            .map(|(i, event)| testkit::msk::record(event, (i % 3) as i32, i as i64)),
    );
    let started = Instant::now();
    let summary = notifier.handle(batch).await?;
    let elapsed = started.elapsed();
    ensure!(summary.sent == mails, "the handler sent {summary:?}");
    Ok(mails as f64 / elapsed.as_secs_f64())
}

/// What a bare send loop sends through.
enum Sender<'a> {
    /// The notification function's mailer, without the handler around it.
    Mailer(&'a Mailer),
    /// lettre's own pooled transport.
    Lettre(&'a AsyncSmtpTransport<Tokio1Executor>),
}

impl Sender<'_> {
    async fn send(&self, message: Message) -> anyhow::Result<()> {
        match self {
            Self::Mailer(mailer) => Ok(mailer.send(&message, Duration::from_secs(30)).await?),
            Self::Lettre(transport) => {
                transport.send(message).await?;
                Ok(())
            }
        }
    }
}

/// `mails` sends through `sender`, `concurrency` at a time; mails per second.
async fn bare_round(
    sender: &Sender<'_>,
    recipient: &str,
    bodies: &notification::content::Rendered,
    mails: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let from: Mailbox = MAIL_FROM.parse()?;
    let to: Mailbox = recipient.parse()?;
    let started = Instant::now();
    stream::iter(0..mails)
        .map(|i| {
            let message = Message::builder()
                .from(from.clone())
                .to(to.clone())
                .subject(format!("{} #{i}", bodies.subject))
                .message_id(Some(format!("<bare-{}@shop.example>", new_id())))
                .multipart(MultiPart::alternative_plain_html(
                    bodies.text.clone(),
                    bodies.html.clone(),
                ));
            async move { sender.send(message?).await }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(mails as f64 / started.elapsed().as_secs_f64())
}
