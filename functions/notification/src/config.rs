//! Settings of the notification function (docs/configuration.md), read once at start-up. A missing or
//! invalid value stops start-up with an error naming the variable.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use lettre::Address;
use lettre::message::Mailbox;
use secrecy::SecretString;
use serde::Deserialize;
use shared::config::{ConfigError, Credentials, DatabaseSettings, from_source, variables_of};

/// How the SMTP connection is secured (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text, for a local sink only.
    None,
    /// Plain connect, then a required STARTTLS upgrade (submission, port 587).
    Starttls,
    /// TLS from the first byte (submissions, port 465).
    Tls,
}

impl SmtpTls {
    /// The conventional port of each mode, used when `SMTP_PORT` is not set.
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::Starttls => 587,
            Self::Tls => 465,
        }
    }
}

/// Where the SMTP login comes from, if the server wants one.
#[derive(Clone)]
pub enum SmtpAuth {
    None,
    /// `SMTP_USERNAME` / `SMTP_PASSWORD`, for local runs.
    Local(Credentials),
    /// `SMTP_SECRET_ARN`: a Secrets Manager secret holding `username` and `password`, fetched
    /// once per cold start and again after the server refuses it.
    Secret {
        arn: String,
    },
}

impl std::fmt::Debug for SmtpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Local(credentials) => write!(f, "Local({:?}, <password>)", credentials.username),
            Self::Secret { arn } => write!(f, "Secret({arn:?})"),
        }
    }
}

/// The SMTP server and how to talk to it.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub auth: SmtpAuth,
    /// Bound on one whole SMTP conversation (connect, auth, envelope, data). Keep it well
    /// below the function's timeout.
    pub timeout: Duration,
}

impl SmtpSettings {
    /// An unauthenticated plain-text server, as local sinks and tests use.
    pub fn plain(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls: SmtpTls::None,
            auth: SmtpAuth::None,
            timeout: DEFAULT_SMTP_TIMEOUT,
        }
    }
}

/// What every mail carries and where mails without a customer address go.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `MAIL_FROM`, e.g. `Orders <orders@example.com>`.
    pub from: Mailbox,
    /// `NOTIFY_FALLBACK_TO`: the recipient when an order has no customer email.
    pub fallback_to: Option<Address>,
}

impl MailSettings {
    pub fn new(from: Mailbox, fallback_to: Option<Address>) -> Self {
        Self { from, fallback_to }
    }

    /// The right-hand side of every `Message-ID`: the sender's domain.
    pub fn message_id_domain(&self) -> &str {
        self.from.email.domain()
    }
}

/// Everything the notification function reads at start-up.
#[derive(Clone)]
pub struct NotificationConfig {
    pub database: DatabaseSettings,
    pub smtp: SmtpSettings,
    pub mail: MailSettings,
    /// How many mails of one batch are in flight at once (`NOTIFY_CONCURRENCY`); also the
    /// number of pooled SMTP connections kept.
    pub concurrency: usize,
    /// Database connections per function instance (`DB_MAX_CONNECTIONS`); by default 2, or one
    /// per invocation the instance serves at once (up to 50).
    pub db_max_connections: u32,
}

impl std::fmt::Debug for NotificationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationConfig")
            .field("smtp", &self.smtp)
            .field("mail", &self.mail)
            .field("concurrency", &self.concurrency)
            .field("db_max_connections", &self.db_max_connections)
            .finish_non_exhaustive()
    }
}

/// The per-mail SMTP bound when `SMTP_TIMEOUT_MS` is not set.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Mails in flight per batch when `NOTIFY_CONCURRENCY` is not set.
pub const DEFAULT_CONCURRENCY: usize = 8;
const MAX_CONCURRENCY: usize = 64;

#[derive(Deserialize)]
struct RawSettings {
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_tls: Option<SmtpTls>,
    smtp_secret_arn: Option<String>,
    smtp_username: Option<String>,
    smtp_password: Option<SecretString>,
    smtp_timeout_ms: Option<u64>,
    mail_from: Option<String>,
    notify_fallback_to: Option<String>,
    notify_concurrency: Option<usize>,
    db_max_connections: Option<u32>,
}

/// Treats an empty variable as unset, as shells and templates often leave them.
fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl NotificationConfig {
    /// Reads the process environment; see [`NotificationConfig::from_source`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(None)
    }

    /// Every variable [`NotificationConfig::from_env`] reads (the template contract test
    /// compares them with `template.yaml`).
    pub fn variables() -> Vec<String> {
        let mut variables = variables_of::<RawSettings>();
        variables.extend(DatabaseSettings::variables());
        variables.push(shared::metrics::emf::NAMESPACE_VARIABLE.to_owned());
        variables.push(shared::trace::export::ENDPOINT_VARIABLE.to_owned());
        variables
    }

    /// Reads the database, `SMTP_*`, `MAIL_FROM` and `NOTIFY_*` variables from `variables`
    /// (or the environment when `None`).
    pub fn from_source(variables: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let raw: RawSettings = from_source(variables.clone())?;
        let host = non_empty(raw.smtp_host)
            .ok_or_else(|| ConfigError::new("SMTP_HOST", "is required but not set"))?;
        let tls = raw.smtp_tls.unwrap_or(SmtpTls::Starttls);
        let port = match raw.smtp_port {
            Some(0) => {
                return Err(ConfigError::new(
                    "SMTP_PORT",
                    "must be a port number 1-65535",
                ));
            }
            Some(port) => port,
            None => tls.default_port(),
        };
        let auth = match (non_empty(raw.smtp_secret_arn), non_empty(raw.smtp_username)) {
            (Some(arn), _) => SmtpAuth::Secret { arn },
            (None, Some(username)) => {
                let password = raw.smtp_password.ok_or_else(|| {
                    ConfigError::new("SMTP_PASSWORD", "is required when SMTP_USERNAME is set")
                })?;
                SmtpAuth::Local(Credentials { username, password })
            }
            (None, None) => SmtpAuth::None,
        };
        let timeout = match raw.smtp_timeout_ms {
            Some(0) => return Err(ConfigError::new("SMTP_TIMEOUT_MS", "must be positive")),
            Some(ms) => Duration::from_millis(ms),
            None => DEFAULT_SMTP_TIMEOUT,
        };
        let from = non_empty(raw.mail_from)
            .ok_or_else(|| ConfigError::new("MAIL_FROM", "is required but not set"))?;
        let from = Mailbox::from_str(&from).map_err(|err| {
            ConfigError::new("MAIL_FROM", format!("is not a valid mailbox: {err}"))
        })?;
        let fallback_to = non_empty(raw.notify_fallback_to)
            .map(|raw| {
                Address::from_str(&raw).map_err(|err| {
                    ConfigError::new(
                        "NOTIFY_FALLBACK_TO",
                        format!("is not a valid address: {err}"),
                    )
                })
            })
            .transpose()?;
        let concurrency = raw.notify_concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(ConfigError::new(
                "NOTIFY_CONCURRENCY",
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        let invocations = shared::lambda::max_concurrency(variables.clone());
        let db_max_connections = raw
            .db_max_connections
            .unwrap_or_else(|| shared::lambda::default_pool_size(2, invocations, 0).min(50));
        if !(1..=50).contains(&db_max_connections) {
            return Err(ConfigError::new(
                "DB_MAX_CONNECTIONS",
                "must be between 1 and 50",
            ));
        }
        Ok(Self {
            database: DatabaseSettings::from_source(variables)?,
            smtp: SmtpSettings {
                host,
                port,
                tls,
                auth,
                timeout,
            },
            mail: MailSettings { from, fallback_to },
            concurrency,
            db_max_connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use shared::config::variable_map as vars;

    const BASE: [(&str, &str); 3] = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1/orders"),
        ("SMTP_HOST", "127.0.0.1"),
        ("MAIL_FROM", "orders@example.com"),
    ];

    fn with(extra: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        let mut pairs = BASE.to_vec();
        pairs.extend_from_slice(extra);
        vars(&pairs)
    }

    #[test]
    fn local_settings_parse_into_types() {
        let config = NotificationConfig::from_source(with(&[
            ("SMTP_PORT", "1025"),
            ("SMTP_TLS", "none"),
            ("SMTP_TIMEOUT_MS", "2500"),
            ("NOTIFY_FALLBACK_TO", "ops@example.com"),
            ("NOTIFY_CONCURRENCY", "4"),
        ]))
        .unwrap();
        assert_eq!(config.smtp.port, 1025);
        assert_eq!(config.smtp.tls, SmtpTls::None);
        assert_eq!(config.smtp.timeout, Duration::from_millis(2500));
        assert!(matches!(config.smtp.auth, SmtpAuth::None));
        assert_eq!(
            config.mail.fallback_to.unwrap().to_string(),
            "ops@example.com"
        );
        assert_eq!(config.mail.from.email.domain(), "example.com");
        assert_eq!(config.concurrency, 4);
    }

    #[test]
    fn port_follows_the_tls_mode_when_unset() {
        let config = NotificationConfig::from_source(with(&[("SMTP_TLS", "tls")])).unwrap();
        assert_eq!(config.smtp.port, 465);
        let config = NotificationConfig::from_source(with(&[])).unwrap();
        assert_eq!(
            (config.smtp.tls, config.smtp.port),
            (SmtpTls::Starttls, 587)
        );
    }

    #[test]
    fn a_secret_arn_wins_over_local_credentials() {
        let config = NotificationConfig::from_source(with(&[
            (
                "SMTP_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:000000000000:secret:smtp",
            ),
            ("SMTP_USERNAME", "local"),
        ]))
        .unwrap();
        assert!(matches!(config.smtp.auth, SmtpAuth::Secret { .. }));
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("SMTP_TLS", "ssl")], "SMTP_TLS"),
            (&[("SMTP_PORT", "smtp")], "SMTP_PORT"),
            (&[("SMTP_USERNAME", "orders")], "SMTP_PASSWORD"),
            (&[("MAIL_FROM", "not a mailbox")], "MAIL_FROM"),
            (&[("NOTIFY_FALLBACK_TO", "nobody")], "NOTIFY_FALLBACK_TO"),
            (&[("NOTIFY_CONCURRENCY", "0")], "NOTIFY_CONCURRENCY"),
        ];
        for (extra, variable) in cases {
            let err = NotificationConfig::from_source(with(extra)).unwrap_err();
            assert!(err.to_string().contains(variable), "{variable}: {err}");
        }
        let err =
            NotificationConfig::from_source(vars(&[("MAIL_FROM", "a@example.com")])).unwrap_err();
        assert_eq!(err.variable, "SMTP_HOST");
        let err = NotificationConfig::from_source(vars(&[("SMTP_HOST", "h")])).unwrap_err();
        assert_eq!(err.variable, "MAIL_FROM");
    }

    #[test]
    fn variables_lists_what_the_loader_reads() {
        let variables = NotificationConfig::variables();
        for name in [
            "SMTP_HOST",
            "SMTP_TLS",
            "SMTP_SECRET_ARN",
            "MAIL_FROM",
            "NOTIFY_FALLBACK_TO",
            "DATABASE_URL",
        ] {
            assert!(
                variables.iter().any(|v| v == name),
                "{name} in {variables:?}"
            );
        }
    }
}
