//! Building notifiers and batches, and reading `notifications` back.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::kafka::KafkaEvent;
use chrono::{DateTime, Utc};
use notification::{MailSettings, Mailer, Notifier, SmtpSettings};
use serde_json::Value;
use shared::config::Secrets;
use shared::consumer::Consumer;
use shared::domain::RejectionReason;
use shared::events::OrderEvent;
use sqlx::PgPool;
use testkit::maildev::Maildev;
use uuid::Uuid;

pub const MAIL_FROM: &str = "Orders <orders@shop.example>";
/// How long a test waits for mail to show up in a sink.
pub const MAIL_WAIT: Duration = Duration::from_secs(15);

/// A recipient no other test (or earlier run) uses, so the shared sink can be read per test.
pub fn unique_address(tag: &str) -> String {
    format!("{tag}-{}@example.com", Uuid::now_v7())
}

/// The SMTP settings of a plain local sink on `port`.
pub fn smtp_on(port: u16) -> SmtpSettings {
    let mut settings = SmtpSettings::plain("127.0.0.1", port);
    settings.timeout = Duration::from_secs(5);
    settings
}

pub fn mail_settings(fallback: Option<&str>) -> MailSettings {
    MailSettings::new(
        MAIL_FROM.parse().expect("a valid sender"),
        fallback.map(|address| address.parse().expect("a valid fallback address")),
    )
}

/// A notifier sending through `smtp`, with `NOTIFY_FALLBACK_TO` = `fallback`.
pub async fn notifier_with(
    pool: &PgPool,
    smtp: SmtpSettings,
    secrets: Secrets,
    fallback: Option<&str>,
) -> Consumer<Notifier> {
    testkit::init_tracing();
    let mailer = Mailer::new(smtp, 4, secrets)
        .await
        .expect("the SMTP transport builds");
    notification::consumer(pool.clone(), Arc::new(mailer), mail_settings(fallback), 4)
}

pub async fn notifier(
    pool: &PgPool,
    smtp: SmtpSettings,
    fallback: Option<&str>,
) -> Consumer<Notifier> {
    notifier_with(pool, smtp, Secrets::new(), fallback).await
}

/// A notifier on the shared maildev.
pub async fn shared_notifier(pool: &PgPool, fallback: Option<&str>) -> Consumer<Notifier> {
    notifier(pool, smtp_on(Maildev::shared().smtp_port()), fallback).await
}

pub fn placed(customer_name: &str, customer_email: Option<&str>) -> OrderEvent {
    OrderEvent::placed(testkit::orders::order_data(
        customer_name,
        customer_email,
        "Laptop",
        2,
    ))
}

pub fn rejected(placed: &OrderEvent, reason: RejectionReason) -> OrderEvent {
    OrderEvent::rejected(placed.data.clone(), reason)
}

/// The batch Lambda would deliver for `events`, spread over partitions in offset order.
pub fn batch(events: &[&OrderEvent]) -> KafkaEvent {
    testkit::msk::batch(
        events
            .iter()
            .enumerate()
            .map(|(i, event)| testkit::msk::record(event, (i % 3) as i32, 100 + i as i64)),
    )
}

/// One `notifications` row.
#[derive(Debug)]
pub struct Row {
    pub recipient: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

pub async fn row(pool: &PgPool, order_id: Uuid, kind: &str) -> Row {
    sqlx::query_as!(
        Row,
        "SELECT recipient, status, attempts, last_error, sent_at
         FROM notifications WHERE order_id = $1 AND kind = $2",
        order_id,
        kind,
    )
    .fetch_one(pool)
    .await
    .unwrap_or_else(|err| panic!("no notification row {order_id} {kind}: {err}"))
}

pub async fn count_with_status(pool: &PgPool, status: &str) -> i64 {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM notifications WHERE status = $1"#,
        status
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A header of a mail as maildev's API returns it (lower-case names).
pub fn header<'a>(mail: &'a Value, name: &str) -> &'a str {
    mail["headers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("mail has no {name} header: {}", mail["headers"]))
}

pub fn text<'a>(mail: &'a Value, part: &str) -> &'a str {
    mail[part]
        .as_str()
        .unwrap_or_else(|| panic!("mail has no {part} part"))
}
