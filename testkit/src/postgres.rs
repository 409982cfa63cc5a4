//! A private PostgreSQL cluster per test (`initdb` into a temporary folder), for what the
//! shared server cannot show: password authentication (the shared one trusts 127.0.0.1),
//! settings such as a small `max_connections`, and TLS with a certificate of a chosen name.
//! It speaks TLS as RDS does, with a certificate from a throwaway CA of its own
//! ([`Cluster::ca_path`]). Stopped and deleted on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::process::Service;

/// The superuser's password in every private cluster.
pub const SUPERUSER_PASSWORD: &str = "testkit-superuser";

/// The functions' database roles (see the migrations); [`Cluster::start`] trusts them on
/// loopback as the shared server does, so that they log in without a password.
pub const FUNCTION_ROLES: [&str; 5] = [
    "order_api",
    "inventory",
    "notification",
    "payment",
    "outbox_relay",
];

/// How a private cluster is set up.
#[derive(Debug, Clone)]
pub struct ClusterOptions<'a> {
    /// `postgresql.conf` settings, such as `[("max_connections", "20")]`.
    pub settings: &'a [(&'a str, &'a str)],
    /// The DNS name the server's certificate is for (`localhost` also gets `127.0.0.1`).
    pub server_name: &'a str,
    /// Whether the functions' roles log in without a password (as on the shared server);
    /// otherwise every user needs its password.
    pub trust_function_roles: bool,
}

impl Default for ClusterOptions<'_> {
    fn default() -> Self {
        Self {
            settings: &[],
            server_name: "localhost",
            trust_function_roles: true,
        }
    }
}

/// A running private cluster, listening on 127.0.0.1 with SCRAM password authentication.
pub struct Cluster {
    port: u16,
    dir: PathBuf,
    server: Service,
}

/// The newest installed server's binaries (Debian keeps them out of PATH).
fn bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    versions.sort_by_key(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .map(|version| version.join("bin").join(name))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// PostgreSQL refuses to run as root; as root, the cluster runs as `postgres`.
fn run_as_postgres() -> bool {
    nix::unistd::geteuid().is_root()
}

fn as_server_user(program: &Path) -> Command {
    if run_as_postgres() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The server, run as [`as_server_user`] does.
fn server_service(data: &Path, log: PathBuf) -> Service {
    let program = bin("postgres");
    let service = if run_as_postgres() {
        Service::new("the private PostgreSQL", "runuser", log)
            .args(["-u", "postgres", "--"])
            .arg(program)
    } else {
        Service::new("the private PostgreSQL", program, log)
    };
    service
        .hint("install PostgreSQL's server package")
        .arg("-D")
        .arg(data)
}

fn openssl(args: &[&str], dir: &Path) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`ca.crt`) and a server certificate it signed for `server_name` (`server.crt`,
/// `server.key`), in `dir`.
fn certificates(dir: &Path, server_name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-days",
        "2",
        "-subj",
        "/CN=testkit CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&ca, dir);
    let names = if server_name == "localhost" {
        "subjectAltName=DNS:localhost,IP:127.0.0.1".to_owned()
    } else {
        format!("subjectAltName=DNS:{server_name}")
    };
    let subject = format!("/CN={server_name}");
    let mut server = vec!["req", "-x509", "-CA", "ca.crt", "-CAkey", "ca.key"];
    server.extend(ec);
    server.extend([
        "-days",
        "2",
        "-subj",
        &subject,
        "-addext",
        &names,
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
        "-keyout",
        "server.key",
        "-out",
        "server.crt",
    ]);
    openssl(&server, dir);
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}

impl Cluster {
    /// Starts a cluster with the given `postgresql.conf` settings, such as
    /// `[("max_connections", "20")]`, a certificate for `localhost` and the functions' roles
    /// trusted.
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        Self::start_with(ClusterOptions {
            settings,
            ..ClusterOptions::default()
        })
        .await
    }

    /// Starts a cluster set up as `options` say.
    pub async fn start_with(options: ClusterOptions<'_>) -> Self {
        let dir = std::env::temp_dir().join(format!("testkit-postgres-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temporary folder can be created");
        let password_file = dir.join("password");
        std::fs::write(&password_file, SUPERUSER_PASSWORD).unwrap();
        certificates(&dir, options.server_name);
        let mut hba = String::from("local all all scram-sha-256\n");
        if options.trust_function_roles {
            hba.push_str(&format!(
                "host all {} 127.0.0.1/32 trust\n",
                FUNCTION_ROLES.join(",")
            ));
        }
        hba.push_str("host all all 127.0.0.1/32 scram-sha-256\n");
        std::fs::write(dir.join("pg_hba.conf"), hba).unwrap();
        let data = dir.join("data");
        if run_as_postgres() {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "could not hand {} to postgres",
                dir.display()
            );
        }
        let output = as_server_user(&bin("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", password_file.display()))
            .output()
            .await
            .expect("initdb runs (install PostgreSQL's server package)");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = crate::free_port();
        let mut server = server_service(&data, dir.join("server.log"))
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "fsync=off", "-c", "ssl=on"])
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                dir.join("server.crt").display()
            ))
            .arg("-c")
            .arg(format!("ssl_key_file={}", dir.join("server.key").display()))
            .arg("-c")
            .arg(format!("hba_file={}", dir.join("pg_hba.conf").display()));
        for (name, value) in options.settings {
            server.push_arg("-c");
            server.push_arg(format!("{name}={value}"));
        }
        server.start(&[port], Duration::from_secs(30)).await;
        Self { port, dir, server }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for `user` with `password` on database `database`.
    pub fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The superuser's URL on database `postgres`.
    pub fn superuser_url(&self) -> String {
        self.url("postgres", SUPERUSER_PASSWORD, "postgres")
    }

    /// A new database `name` with the migrations applied by the superuser, as db-migrate
    /// applies them (which creates the functions' roles); the superuser's pool on it.
    pub async fn migrated_database(&self, name: &str) -> sqlx::PgPool {
        let admin = sqlx::PgPool::connect(&self.superuser_url()).await.unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let owner = sqlx::PgPool::connect(&self.url("postgres", SUPERUSER_PASSWORD, name))
            .await
            .unwrap();
        crate::MIGRATOR.run(&owner).await.unwrap();
        owner
    }

    /// Gives `role` (a function's role, say) the password `password`.
    pub async fn set_password(&self, role: &str, password: &str) {
        let admin = sqlx::PgPool::connect(&self.superuser_url()).await.unwrap();
        sqlx::raw_sql(&format!("ALTER ROLE {role} PASSWORD '{password}'"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    }

    /// The CA that signed the server's certificate (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server's log, for a failing test's message.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.server.kill_now();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The URL of a `#[sqlx::test]` database, for a child process (a function's binary, the
/// local runtime) to connect to. Local PostgreSQL trusts loopback, so the password is a
/// placeholder.
pub fn url_of(options: &sqlx::postgres::PgConnectOptions) -> String {
    format!(
        "postgres://{}:postgres@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options
            .get_database()
            .expect("sqlx::test names the database"),
    )
}

/// The `host:port` the database of `options` listens on, for a proxy to stand in front of.
pub fn address_of(options: &sqlx::postgres::PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// A pool of up to `max_connections` straight to the database of `options`: the test's own
/// way in, beside the pool it routes through a proxy.
pub async fn direct_pool(
    options: &sqlx::postgres::PgConnectOptions,
    max_connections: u32,
) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options.clone())
        .await
        .unwrap()
}

/// A lazily connecting pool of up to `max_connections` to the database of `options`, but on
/// `port` (a proxy's, which the test cuts), that waits at most 3 s for a connection.
pub fn pool_through(
    options: &sqlx::postgres::PgConnectOptions,
    port: u16,
    max_connections: u32,
) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options.clone().port(port))
}
