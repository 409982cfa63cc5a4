//! The notification function: emails customers about their orders (DESIGN §5, issue 4).
//!
//! An MSK trigger on `order-placed` and `order-rejected` delivers batches to
//! [`Notifier::handle`], which sends at most one mail per order and kind:
//!
//! - [`config`]: `SMTP_*`, `MAIL_FROM`, `NOTIFY_*` read once into typed settings.
//! - [`content`]: which event becomes which mail, and the mail itself (askama templates,
//!   stable `Message-ID`, `X-Order-Id`).
//! - [`mailer`]: the pooled lettre transport, timeouts and SMTP error classification.
//! - [`store`]: the `notifications` bookkeeping, one set-based statement per step.
//! - [`handler`]: the batch handler tying them together; `main.rs` only wires it to Lambda.

pub mod config;
pub mod content;
pub mod handler;
pub mod mailer;
pub mod store;

pub use config::{MailSettings, NotificationConfig, SmtpAuth, SmtpSettings, SmtpTls};
pub use handler::{BatchSummary, CONSUMER, NotificationError, Notifier, send_deadline};
pub use mailer::{Mailer, SendError};
