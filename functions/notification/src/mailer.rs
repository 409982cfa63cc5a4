//! The SMTP side: this instance's few SMTP connections, every send bounded by a timeout,
//! and each failure classified as permanent (5xx: never retry) or retryable (4xx,
//! connection, timeout, authentication).
//!
//! lettre speaks SMTP over connections this module opens itself, because lettre 0.11's own
//! transport leaves Nagle's algorithm on: it writes a mail's body and its closing `.` in two
//! writes, and the second then waits for the server's delayed acknowledgement of the first,
//! about 40 ms on every mail (docs/scale.md, "Notification: the mail sink, and the mail's last
//! write"). Here every socket has `TCP_NODELAY`.
//!
//! The first connection is opened at start-up, in the background ([`Mailer::open_early`]):
//! connecting, the server's greeting, EHLO, STARTTLS and AUTH are then off the first
//! invocation's path, which only waits for what is left of them.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials as SmtpCredentials, DEFAULT_MECHANISMS};
#[allow(deprecated)] // lettre's TLS stream; see `ImplicitTls`.
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret;
use shared::config::{Credentials, SecretError, Secrets};
use shared::redact::redact_emails;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use crate::config::{SmtpAuth, SmtpSettings, SmtpTls};

/// How long a connection may sit unused before it is closed rather than reused; servers
/// commonly drop idle clients after a minute.
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// SMTP replies that mean "your login is wrong or missing" rather than "this mail is bad":
/// 530 authentication required, 534 mechanism too weak, 535 credentials invalid,
/// 538 encryption required for the mechanism.
const AUTH_REPLY_CODES: [&str; 4] = ["530", "534", "535", "538"];

/// Why the mailer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("could not read the SMTP credentials: {0}")]
    Secret(#[from] SecretError),
    #[error("invalid SMTP TLS settings: {0}")]
    Tls(#[source] SmtpError),
}

/// Why one mail was not sent. Its text is logged and stored in `notifications.last_error`,
/// so every address in it is masked ([`redact_emails`]): servers commonly repeat the
/// recipient in their replies (`550 5.1.1 <a***@example.com>: Recipient address rejected`).
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
    /// The conversation did not finish in time; its connection is closed.
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
            // lettre's text ends with what the server said, when it said something unusual.
            return Self::Unavailable(redact_emails(&err.to_string()).into_owned());
        };
        let code = code.to_string();
        let reply = redact_emails(format!("{code} {detail}").trim_end()).into_owned();
        if AUTH_REPLY_CODES.contains(&code.as_str()) {
            Self::Authentication { reply }
        } else if err.is_permanent() {
            Self::Rejected { reply }
        } else {
            Self::Deferred { reply }
        }
    }
}

/// Sends mails over a small pool of SMTP connections, kept for the life of the instance.
/// A connection goes back to the pool only after a mail it carried was accepted; any fault
/// (a reply lettre treats as fatal, a timed-out conversation, a broken socket) closes it, and
/// refused credentials are fetched again for the next connection (docs/configuration.md:
/// after an authentication failure).
pub struct Mailer {
    settings: SmtpSettings,
    /// Connections kept idle at most: the number of mails this instance sends at once.
    pool_size: usize,
    secrets: Secrets,
    /// The STARTTLS or implicit TLS parameters, built once.
    tls: Option<TlsParameters>,
    hello: ClientId,
    idle: Mutex<Vec<IdleConnection>>,
    /// The connection [`Mailer::open_early`] is opening, until a send has waited for it.
    opening: Mutex<Option<JoinHandle<()>>>,
}

struct IdleConnection {
    connection: AsyncSmtpConnection,
    since: Instant,
}

impl Mailer {
    /// Checks the TLS settings and fetches the credentials from Secrets Manager if configured,
    /// so that a wrong setting stops start-up. No connection is opened until
    /// [`Mailer::open_early`] or the first mail.
    pub async fn new(
        settings: SmtpSettings,
        pool_size: usize,
        secrets: Secrets,
    ) -> Result<Self, MailerError> {
        let tls = match settings.tls {
            SmtpTls::None => None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                Some(TlsParameters::new(settings.host.clone()).map_err(MailerError::Tls)?)
            }
        };
        let mailer = Self {
            settings,
            pool_size: pool_size.max(1),
            secrets,
            tls,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            opening: Mutex::new(None),
        };
        mailer.credentials().await?;
        Ok(mailer)
    }

    /// Starts opening the first connection in the background, so that it is ready (or further
    /// along) when the first mail goes out; the first send waits for it instead of opening a
    /// second one. A failure here is only logged: the send connects again and reports its own
    /// outcome.
    pub async fn open_early(self: &Arc<Self>) {
        let mailer = Arc::clone(self);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            match tokio::time::timeout(mailer.settings.timeout, mailer.open()).await {
                Ok(Ok(connection)) => {
                    tracing::debug!(
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "SMTP connection opened at start-up"
                    );
                    mailer.park(connection).await;
                }
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
        // On a timeout the task goes on, and parks its connection for a later mail.
        let _ = tokio::time::timeout(timeout, task).await;
    }

    /// The per-mail bound configured by `SMTP_TIMEOUT_MS`.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// Sends one mail within `timeout` (capped at the configured SMTP timeout).
    pub async fn send(&self, message: &Message, timeout: Duration) -> Result<(), SendError> {
        let started = Instant::now();
        let timeout = timeout.min(self.settings.timeout);
        self.wait_for_early_connection(timeout).await;
        // The wait counts against this mail's time.
        let timeout = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(timeout, self.send_over_a_connection(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                if matches!(error, SendError::Authentication { .. })
                    && let SmtpAuth::Secret { arn } = &self.settings.auth
                {
                    // Refused credentials: the next connection fetches them again.
                    self.secrets.forget(arn).await;
                }
                Err(error)
            }
            // The connection, dropped mid-conversation, is closed.
            Err(_elapsed) => Err(SendError::Timeout(timeout)),
        }
    }

    async fn send_over_a_connection(&self, message: &Message) -> Result<(), SendError> {
        let mut connection = match self.reuse().await {
            Some(connection) => connection,
            None => self.open().await?,
        };
        match connection
            .send(message.envelope(), &message.formatted())
            .await
        {
            Ok(_response) => {
                self.park(connection).await;
                Ok(())
            }
            // A connection that failed is dropped, never parked.
            Err(err) => Err(SendError::classify(&err)),
        }
    }

    /// An idle connection that still answers `NOOP`, the newest first.
    async fn reuse(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let idle = self.idle.lock().await.pop()?;
            let mut connection = idle.connection;
            if idle.since.elapsed() < IDLE_TIMEOUT && connection.test_connected().await {
                return Some(connection);
            }
            connection.abort().await;
        }
    }

    /// Keeps `connection` for the next mail, unless enough are idle already.
    async fn park(&self, mut connection: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().await;
        if connection.has_broken() || idle.len() >= self.pool_size {
            drop(idle);
            connection.abort().await;
            return;
        }
        idle.push(IdleConnection {
            connection,
            since: Instant::now(),
        });
    }

    /// Connects with `TCP_NODELAY`, reads the greeting, says EHLO, secures the connection as
    /// configured and logs in.
    async fn open(&self) -> Result<AsyncSmtpConnection, SendError> {
        let socket = connect(&self.settings.host, self.settings.port)
            .await
            .map_err(|err| {
                SendError::Unavailable(format!(
                    "cannot connect to {}:{}: {err}",
                    self.settings.host, self.settings.port
                ))
            })?;
        let stream: Box<dyn AsyncTokioStream> = match (&self.settings.tls, &self.tls) {
            (SmtpTls::Tls, Some(tls)) => Box::new(
                ImplicitTls::wrap(socket, tls.clone())
                    .await
                    .map_err(|err| SendError::classify(&err))?,
            ),
            _ => Box::new(socket),
        };
        let mut connection = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|err| SendError::classify(&err))?;
        if let (SmtpTls::Starttls, Some(tls)) = (&self.settings.tls, &self.tls) {
            connection
                .starttls(tls.clone(), &self.hello)
                .await
                .map_err(|err| SendError::classify(&err))?;
        }
        let credentials = self
            .credentials()
            .await
            .map_err(|err| SendError::Unavailable(err.to_string()))?;
        if let Some(credentials) = credentials {
            connection
                .auth(DEFAULT_MECHANISMS, &credentials)
                .await
                .map_err(|err| SendError::classify(&err))?;
        }
        Ok(connection)
    }

    /// The login, if the server wants one: from the settings, or from Secrets Manager (cached
    /// there until [`Mailer::send`] forgets refused ones).
    async fn credentials(&self) -> Result<Option<SmtpCredentials>, SecretError> {
        let credentials = match &self.settings.auth {
            SmtpAuth::None => return Ok(None),
            SmtpAuth::Local(credentials) => credentials.clone(),
            SmtpAuth::Secret { arn } => self.secrets.json::<Credentials>(arn).await?,
        };
        Ok(Some(SmtpCredentials::new(
            credentials.username,
            credentials.password.expose_secret().to_owned(),
        )))
    }
}

/// Opens a TCP connection to the first address of `host` that answers, with Nagle's
/// algorithm off: lettre writes a mail's closing `.` separately from its body.
async fn connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpStream::connect((host, port)).await?;
    socket.set_nodelay(true)?;
    Ok(socket)
}

/// A TLS connection from the first byte (`SMTP_TLS=tls`), over a socket of ours: lettre's
/// own TLS stream, which speaks the `futures` I/O traits, adapted to the `tokio` ones that
/// [`AsyncSmtpConnection::connect_with_transport`] takes. lettre marks that stream as not
/// meant to be public; using it keeps one TLS configuration (lettre's, as STARTTLS uses).
#[allow(deprecated)]
#[derive(Debug)]
struct ImplicitTls(Compat<AsyncNetworkStream>);

#[allow(deprecated)]
impl ImplicitTls {
    async fn wrap(socket: TcpStream, tls: TlsParameters) -> Result<Self, SmtpError> {
        let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(socket));
        stream.upgrade_tls(tls).await?;
        Ok(Self(stream.compat()))
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().peer_addr()
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nagle's algorithm would hold a mail's closing `.` until the server acknowledges its
    /// body, which servers delay by up to 40 ms.
    #[tokio::test]
    async fn sockets_have_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let socket = connect("127.0.0.1", port).await.unwrap();
        assert!(socket.nodelay().unwrap());
    }

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
