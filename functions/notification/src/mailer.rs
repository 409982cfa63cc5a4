//! The SMTP side: one pooled lettre transport per cold start, every send bounded by a
//! timeout, and each failure classified as permanent (5xx: never retry) or retryable
//! (4xx, connection, timeout, authentication).
//!
//! The first connection is opened at start-up, in the background ([`Mailer::open_early`]):
//! connecting, the server's greeting, EHLO, STARTTLS and AUTH are then off the first
//! invocation's path, which only waits for what is left of them.

use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials as SmtpCredentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{Error as SmtpError, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use shared::config::{Credentials, SecretError, Secrets};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::config::{SmtpAuth, SmtpSettings, SmtpTls};

/// The lettre transport this function uses.
pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// SMTP replies that mean "your login is wrong or missing" rather than "this mail is bad":
/// 530 authentication required, 534 mechanism too weak, 535 credentials invalid,
/// 538 encryption required for the mechanism.
const AUTH_REPLY_CODES: [&str; 4] = ["530", "534", "535", "538"];

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("could not read the SMTP credentials: {0}")]
    Secret(#[from] SecretError),
    #[error("invalid SMTP TLS settings: {0}")]
    Tls(#[source] SmtpError),
}

/// Why one mail was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A 5xx reply to the mail itself: retrying cannot help, the row becomes `FAILED`.
    #[error("{reply}")]
    Rejected { reply: String },
    /// A 4xx reply: the server asks us to try again later.
    #[error("{reply}")]
    Deferred { reply: String },
    /// The server refused our login; the credentials are fetched again before the retry.
    #[error("SMTP authentication failed: {reply}")]
    Authentication { reply: String },
    /// The conversation did not finish in time; the pooled connections are replaced.
    #[error("SMTP timed out after {0:?}")]
    Timeout(Duration),
    /// The server could not be reached, or the connection broke.
    #[error("SMTP unavailable: {0}")]
    Unavailable(String),
}

impl SendError {
    /// Whether the row is done for good (`FAILED`) rather than left for the next attempt.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }

    fn classify(err: &SmtpError) -> Self {
        let detail = std::error::Error::source(err)
            .map(ToString::to_string)
            .unwrap_or_default();
        let Some(code) = err.status() else {
            return Self::Unavailable(err.to_string());
        };
        let code = code.to_string();
        let reply = format!("{code} {detail}").trim_end().to_owned();
        if AUTH_REPLY_CODES.contains(&code.as_str()) {
            Self::Authentication { reply }
        } else if err.is_permanent() {
            Self::Rejected { reply }
        } else {
            Self::Deferred { reply }
        }
    }
}

/// Sends mails through one pooled transport. The transport is built once per cold start and
/// dropped only after a fault that leaves it suspect: a timed-out conversation (a pooled
/// connection may be stuck mid-command) or refused credentials. The next send then builds a
/// fresh one, fetching the credentials again (docs/configuration.md: after an authentication failure).
pub struct Mailer {
    settings: SmtpSettings,
    pool_size: u32,
    secrets: Secrets,
    transport: Mutex<Option<Arc<Transport>>>,
    /// The connection [`Mailer::open_early`] is opening, until a send has waited for it.
    opening: Mutex<Option<JoinHandle<()>>>,
}

impl Mailer {
    /// Builds the pooled transport, fetching credentials from Secrets Manager if configured.
    /// No connection is opened until the first mail.
    pub async fn new(
        settings: SmtpSettings,
        pool_size: usize,
        secrets: Secrets,
    ) -> Result<Self, MailerError> {
        let pool_size = u32::try_from(pool_size.max(1)).unwrap_or(u32::MAX);
        let transport = build_transport(&settings, pool_size, &secrets).await?;
        Ok(Self {
            settings,
            pool_size,
            secrets,
            transport: Mutex::new(Some(Arc::new(transport))),
            opening: Mutex::new(None),
        })
    }

    /// Starts opening the transport's first connection in the background, so that it is ready
    /// (or further along) when the first mail goes out; the first send waits for it instead
    /// of opening a second one. A failure here is only logged: the send connects again and
    /// reports its own outcome.
    pub async fn open_early(self: &Arc<Self>) {
        let mailer = Arc::clone(self);
        let task = tokio::spawn(async move {
            let Ok(transport) = mailer.current().await else {
                return;
            };
            let started = std::time::Instant::now();
            match tokio::time::timeout(mailer.settings.timeout, transport.test_connection()).await {
                Ok(Ok(true)) => tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "SMTP connection opened at start-up"
                ),
                Ok(Ok(false)) => tracing::info!("the SMTP connection opened at start-up broke"),
                Ok(Err(err)) => {
                    tracing::info!(error = %err, "could not open an SMTP connection at start-up")
                }
                Err(_elapsed) => tracing::info!("opening an SMTP connection at start-up timed out"),
            }
        });
        *self.opening.lock().await = Some(task);
    }

    /// Waits (within `timeout`) for the connection [`Mailer::open_early`] is opening, once.
    async fn wait_for_early_connection(&self, timeout: Duration) {
        let Some(task) = self.opening.lock().await.take() else {
            return;
        };
        if tokio::time::timeout(timeout, task).await.is_ok() {
            // The pool takes the connection back in a task of its own, spawned as the
            // warm-up finished: let it run before this send asks the pool for one.
            tokio::task::yield_now().await;
        }
    }

    /// The per-mail bound configured by `SMTP_TIMEOUT_MS`.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// The live transport, or a fresh one if the last was dropped after a fault.
    async fn current(&self) -> Result<Arc<Transport>, SendError> {
        let mut slot = self.transport.lock().await;
        if let Some(transport) = slot.as_ref() {
            return Ok(Arc::clone(transport));
        }
        let fresh = build_transport(&self.settings, self.pool_size, &self.secrets)
            .await
            .map_err(|err| SendError::Unavailable(err.to_string()))?;
        tracing::info!("built a fresh SMTP transport");
        Ok(Arc::clone(slot.insert(Arc::new(fresh))))
    }

    /// Drops `failed` (unless another task already did), so that the next send rebuilds it.
    async fn discard(&self, failed: &Arc<Transport>, forget_credentials: bool) {
        let mut slot = self.transport.lock().await;
        if slot.as_ref().is_some_and(|live| Arc::ptr_eq(live, failed)) {
            *slot = None;
        }
        if forget_credentials && let SmtpAuth::Secret { arn } = &self.settings.auth {
            self.secrets.forget(arn).await;
        }
    }

    /// Sends one mail within `timeout` (capped at the configured SMTP timeout).
    pub async fn send(&self, message: &Message, timeout: Duration) -> Result<(), SendError> {
        let started = std::time::Instant::now();
        self.wait_for_early_connection(timeout.min(self.settings.timeout))
            .await;
        // The wait counts against this mail's time.
        let timeout = timeout
            .min(self.settings.timeout)
            .saturating_sub(started.elapsed());
        let transport = self.current().await?;
        let result = match tokio::time::timeout(timeout, transport.send(message.clone())).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(err)) => Err(SendError::classify(&err)),
            Err(_elapsed) => Err(SendError::Timeout(timeout)),
        };
        match &result {
            Err(SendError::Timeout(_)) => self.discard(&transport, false).await,
            Err(SendError::Authentication { .. }) => self.discard(&transport, true).await,
            _ => {}
        }
        result
    }
}

/// Builds the pooled transport of `settings`: TLS mode, port, credentials, timeouts.
pub async fn build_transport(
    settings: &SmtpSettings,
    pool_size: u32,
    secrets: &Secrets,
) -> Result<Transport, MailerError> {
    let tls_parameters = || TlsParameters::new(settings.host.clone()).map_err(MailerError::Tls);
    let tls = match settings.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_parameters()?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        .port(settings.port)
        .tls(tls)
        // lettre bounds the TCP connect with this; the whole conversation is bounded by
        // `Mailer::send`.
        .timeout(Some(settings.timeout))
        .pool_config(
            PoolConfig::new()
                .max_size(pool_size)
                .idle_timeout(Duration::from_secs(50)),
        );
    let credentials = match &settings.auth {
        SmtpAuth::None => None,
        SmtpAuth::Local(credentials) => Some(credentials.clone()),
        SmtpAuth::Secret { arn } => Some(secrets.json::<Credentials>(arn).await?),
    };
    if let Some(credentials) = credentials {
        builder = builder.credentials(SmtpCredentials::new(
            credentials.username,
            credentials.password.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_five_hundreds_about_the_mail_are_permanent() {
        let rejected = SendError::Rejected {
            reply: "550 5.1.1 no such user".into(),
        };
        assert!(rejected.is_permanent());
        for retryable in [
            SendError::Deferred {
                reply: "451 try later".into(),
            },
            SendError::Authentication {
                reply: "535 bad credentials".into(),
            },
            SendError::Timeout(Duration::from_secs(1)),
            SendError::Unavailable("connection refused".into()),
        ] {
            assert!(!retryable.is_permanent(), "{retryable}");
        }
    }
}
