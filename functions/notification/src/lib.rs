//! The notification function: emails customers about their orders (docs/failure-rules.md,
//! "Notification").
//!
//! An MSK trigger on `order-placed` and `order-rejected` delivers batches to the shared
//! consumer seam ([`shared::consumer`]), which hands the decoded records to [`Notifier`]; it
//! sends at most one mail per order and kind:
//!
//! - [`config`]: `SMTP_*`, `MAIL_FROM`, `NOTIFY_*` read once into typed settings.
//! - [`content`]: which event becomes which mail, and the mail itself (askama templates,
//!   stable `Message-ID`, `X-Order-Id`).
//! - [`mailer`]: the SMTP connections (lettre over sockets of ours), timeouts and SMTP error classification.
//! - [`store`]: the `notifications` bookkeeping, one set-based statement per step.
//! - [`handler`]: the batch handler tying them together; `main.rs` only reads the config and
//!   serves [`consumer_from_config`].

pub mod config;
pub mod content;
pub mod handler;
pub mod mailer;
pub mod store;

use std::sync::Arc;

pub use config::{MailSettings, NotificationConfig, SmtpAuth, SmtpSettings, SmtpTls};
pub use handler::{BatchSummary, CONSUMER, NotificationError, Notifier, send_deadline};
pub use mailer::{Mailer, SendError};

use shared::config::Secrets;
use shared::consumer::Consumer;
use shared::db::{Database, Login, Role};
use sqlx::PgPool;

/// The notification consumer over a ready-made pool and mailer (tests, benchmarks);
/// `concurrency` bounds the mails in flight within one batch.
pub fn consumer(
    pool: PgPool,
    mailer: Arc<Mailer>,
    mail: MailSettings,
    concurrency: usize,
) -> Consumer<Notifier> {
    let database = Database::from_pool(&pool, Role::Notification);
    Consumer::new(
        Notifier::new(database.pool().clone(), mailer, mail, concurrency),
        database,
    )
}

/// The notification consumer from its settings: the database pool and the mailer
/// are built once per cold start (Lambda and the local runtime alike), and SMTP credentials
/// are fetched here, once.
pub async fn consumer_from_config(
    config: &NotificationConfig,
    secrets: &Secrets,
) -> anyhow::Result<Consumer<Notifier>> {
    // The SMTP connection first: it is the slowest peer, and opening it in the background
    // keeps it off the first invocation's path (docs/scale.md, "Cold starts").
    let mailer =
        Arc::new(Mailer::new(config.smtp.clone(), config.concurrency, secrets.clone()).await?);
    mailer.open_early().await;
    let database = Database::connect(
        &config.database,
        secrets,
        Login::Role(Role::Notification),
        shared::db::pool_options(config.db_max_connections),
    )
    .await?;
    let notifier = Notifier::new(
        database.pool().clone(),
        mailer,
        config.mail.clone(),
        config.concurrency,
    );
    Ok(Consumer::new(notifier, database))
}
