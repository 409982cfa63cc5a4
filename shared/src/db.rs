//! The PostgreSQL pool, the embedded migrations and how database errors are classified.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{PgPool, migrate::Migrator};

use crate::config::{Credentials, DatabaseSettings, Secrets};

/// Every migration in `migrations/`, compiled in so that a function can apply them itself.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How long a request waits for a pooled connection before the database counts as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The database role a function logs in as (docs/data.md, "Who may do what"). The roles and
/// their grants are created by a migration; each owns nothing, so none can change the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    OrderApi,
    Inventory,
    Notification,
    Payment,
    OutboxRelay,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::OrderApi,
        Role::Inventory,
        Role::Notification,
        Role::Payment,
        Role::OutboxRelay,
    ];

    /// The role's name in PostgreSQL.
    pub fn name(self) -> &'static str {
        match self {
            Role::OrderApi => "order_api",
            Role::Inventory => "inventory",
            Role::Notification => "notification",
            Role::Payment => "payment",
            Role::OutboxRelay => "outbox_relay",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.name() == name)
    }
}

/// Who logs in: a function as its own role, or db-migrate as whoever the settings name (the
/// owner of the tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    Role(Role),
    Owner,
}

/// Builds connect options, fetching RDS credentials from Secrets Manager when configured.
///
/// - `DATABASE_URL` (local): the URL's server and database; a function logs in as its own
///   role (the local server trusts loopback), db-migrate as the URL's user.
/// - RDS: the secret's user, which for a function is its role's (the template gives each
///   function the secret of its role), over TLS verified for the host (`verify-full`).
///
/// They carry no start-up `options` (`-c name=value`): RDS Proxy refuses a connection that
/// sends them, and a session setting would pin it anyway (docs/scale.md). The statement
/// timeout is the database's default instead (see the migrations).
pub async fn connect_options(
    settings: &DatabaseSettings,
    secrets: &Secrets,
    login: Login,
) -> anyhow::Result<PgConnectOptions> {
    let options = match settings {
        DatabaseSettings::Url(url) => {
            let options = url.expose_secret().parse::<PgConnectOptions>()?;
            match login {
                Login::Role(role) => options.username(role.name()),
                Login::Owner => options,
            }
        }
        DatabaseSettings::Rds {
            host,
            port,
            name,
            secret_arn,
            root_cert,
        } => {
            let credentials: Credentials = secrets.json(secret_arn).await?;
            if let Login::Role(role) = login
                && credentials.username != role.name()
            {
                tracing::warn!(
                    role = role.name(),
                    secret_user = credentials.username,
                    "the database secret is not this function's role's"
                );
            }
            let options = PgConnectOptions::new()
                .host(host)
                .port(*port)
                .database(name)
                .username(&credentials.username)
                .password(credentials.password.expose_secret())
                .ssl_mode(PgSslMode::VerifyFull);
            match root_cert {
                Some(path) => options.ssl_root_cert(path),
                None => options,
            }
        }
    };
    Ok(options)
}

/// A pool like `pool` (same server, database and settings) that logs in as `role`: how tests
/// and benchmarks hand a function a ready-made pool of its own role on a server that trusts
/// loopback.
pub fn as_role(pool: &PgPool, role: Role) -> PgPool {
    let options = (*pool.connect_options()).clone().username(role.name());
    pool.options().clone().connect_lazy_with(options)
}

/// The pool settings every function starts from: `max_connections` per instance and a
/// bounded wait for a connection, so that an exhausted database shows as unavailable.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}

/// A lazily connecting pool: cold start does no network I/O, and a database that is down at
/// start-up does not stop the function from answering `503` until it returns.
pub async fn pool(
    settings: &DatabaseSettings,
    secrets: &Secrets,
    login: Login,
    max_connections: u32,
) -> anyhow::Result<PgPool> {
    Ok(
        Database::connect(settings, secrets, login, pool_options(max_connections))
            .await?
            .pool,
    )
}

/// A function's pool together with what it needs to log in again after the RDS secret was
/// rotated. Every function recovers its credentials through [`Database::recover`].
#[derive(Clone)]
pub struct Database {
    pool: PgPool,
    /// Present when credentials come from Secrets Manager and may be rotated.
    login: Option<(DatabaseSettings, Secrets, Login)>,
}

impl Database {
    /// A lazily connecting pool built from `options`, fetching RDS credentials when configured.
    pub async fn connect(
        settings: &DatabaseSettings,
        secrets: &Secrets,
        login: Login,
        options: PgPoolOptions,
    ) -> anyhow::Result<Self> {
        let connect = connect_options(settings, secrets, login).await?;
        let login = matches!(settings, DatabaseSettings::Rds { .. })
            .then(|| (settings.clone(), secrets.clone(), login));
        Ok(Self {
            pool: options.connect_lazy_with(connect),
            login,
        })
    }

    /// A ready-made pool whose credentials are never refreshed (tests, benchmarks), logged
    /// in as `role` ([`as_role`]).
    pub fn from_pool(pool: &PgPool, role: Role) -> Self {
        Self {
            pool: as_role(pool, role),
            login: None,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// After a failure: when the database refused the credentials, fetches the secret again
    /// (it may have been rotated) and points the pool at the new ones, so that the retry logs
    /// in. Returns whether the credentials were refreshed; never fails, problems are logged.
    pub async fn recover(&self, err: &sqlx::Error) -> bool {
        let Some((settings, secrets, login)) = &self.login else {
            return false;
        };
        if !is_auth_failure(err) {
            return false;
        }
        let DatabaseSettings::Rds { secret_arn, .. } = settings else {
            return false;
        };
        secrets.forget(secret_arn).await;
        match connect_options(settings, secrets, *login).await {
            Ok(options) => {
                self.pool.set_connect_options(options);
                tracing::warn!("the database refused the credentials; fetched them again");
                true
            }
            Err(refresh) => {
                tracing::error!(
                    error = format!("{refresh:#}"),
                    "could not refresh database credentials"
                );
                false
            }
        }
    }
}

/// Errors worth retrying: the database is unreachable, overloaded, restarting or timed out,
/// or it refused credentials that were rotated (after [`Database::recover`] fetched the new
/// ones, the retry logs in).
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception, 53: insufficient resources, 57P0x: shutdown,
            // 57014: statement timeout, 40001/40P01: serialization failure / deadlock,
            // 28: invalid authorization.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P0")
                || code == "57014"
                || code == "40001"
                || code == "40P01"
                || code == "28P01"
                || code == "28000"
        }),
        _ => false,
    }
}

/// The server refused our credentials (invalid password or authorization).
pub fn is_auth_failure(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|code| code == "28P01" || code == "28000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::variable_map;

    #[tokio::test]
    async fn connect_options_send_no_startup_options_which_rds_proxy_refuses() {
        let settings = DatabaseSettings::from_source(variable_map(&[(
            "DATABASE_URL",
            "postgres://app@127.0.0.1:5432/orders",
        )]))
        .unwrap();
        let options = connect_options(&settings, &Secrets::new(), Login::Owner)
            .await
            .unwrap();
        assert_eq!(options.get_options(), None);
    }

    #[sqlx::test(migrations = "../migrations")]
    async fn a_migrated_database_bounds_every_new_session_to_ten_second_statements(
        _: PgPoolOptions,
        options: PgConnectOptions,
    ) {
        let pool = pool_options(1).connect_with(options).await.unwrap();
        let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(timeout, "10s");
    }
}
