//! The local backing services of `scripts/services` and `scripts/run` (docs/architecture.md,
//! "Local runs"): PostgreSQL, tansu (Kafka API), moto (Secrets Manager and the customers'
//! Cognito user pool), maildev (SMTP and its mail API) and localstripe (Stripe's API), or the
//! same from docker-compose.yml.
//!
//! The scripts keep only what must be shell (installing the tools); everything that starts,
//! checks, provisions and stops the services lives here, behind the `services` binary. The
//! daemons outlive the command that started them; `down` stops only what `up` started.

mod cognito_pool;
mod compose;
mod daemon;
mod native;
mod postgres;
pub mod run;

use std::fmt::Display;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use url::Url;

use daemon::Daemons;

/// What `scripts/services` prints for a command it does not know.
const USAGE: &str = "usage: scripts/services up|down|status|reset|env";

/// One line of progress, as the shell script printed it.
fn log(message: impl Display) {
    println!("[services] {message}");
}

/// A warning: something is off, but the command goes on.
fn warn(message: impl Display) {
    eprintln!("[services] warning: {message}");
}

/// How `up` runs the services (`SERVICES_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Native,
    Compose,
}

/// Where everything is, and the ports, read from the variables the applications read (so
/// that one setting moves a service and its clients together).
#[derive(Debug, Clone)]
pub struct Settings {
    pub repo_root: PathBuf,
    pub tools_dir: PathBuf,
    pub state_dir: PathBuf,
    /// `DATABASE_URL`: the application's database.
    pub database_url: Url,
    pub pg_host: String,
    pub pg_port: u16,
    pub pg_db: String,
    pub kafka_port: u16,
    pub aws_endpoint_url: String,
    pub moto_port: u16,
    pub smtp_port: u16,
    pub maildev_api_url: String,
    pub maildev_web_port: u16,
    pub stripe_api_base: String,
    pub stripe_api_key: String,
    pub stripe_port: u16,
    pub tansu_bin: PathBuf,
    pub maildev_bin: PathBuf,
    /// `SERVICES_TIMEOUT`: how long each wait for a service may take.
    pub timeout: Duration,
    pub mode: Mode,
}

impl Settings {
    /// From the environment `scripts/env.sh` sets up (cargo's `[env]` defaults otherwise).
    pub fn from_env() -> anyhow::Result<Self> {
        let repo_root = std::env::var_os("REPO_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
        let tools_dir = path_var("TOOLS_DIR", &repo_root.join(".tools"));
        let state_dir = path_var("STATE_DIR", &repo_root.join(".state"));
        let database_url = parse_url(
            "DATABASE_URL",
            "postgres://postgres:postgres@127.0.0.1:5432/orders",
        )?;
        let aws_endpoint_url = crate::env("AWS_ENDPOINT_URL", "http://127.0.0.1:4566");
        let maildev_api_url = crate::env("MAILDEV_API_URL", "http://127.0.0.1:1080");
        let stripe_api_base = crate::env("STRIPE_API_BASE", "http://127.0.0.1:8420");
        Ok(Self {
            pg_host: database_url.host_str().unwrap_or("127.0.0.1").to_owned(),
            pg_port: database_url.port().unwrap_or(5432),
            pg_db: database_url.path().trim_start_matches('/').to_owned(),
            kafka_port: kafka_port(&crate::env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))?,
            moto_port: url_port("AWS_ENDPOINT_URL", &aws_endpoint_url)?,
            smtp_port: port_var("SMTP_PORT", "1025")?,
            maildev_web_port: url_port("MAILDEV_API_URL", &maildev_api_url)?,
            stripe_port: url_port("STRIPE_API_BASE", &stripe_api_base)?,
            stripe_api_key: crate::env("STRIPE_API_KEY", "sk_test_local"),
            tansu_bin: path_var("TANSU_BIN", &tools_dir.join("bin/tansu")),
            maildev_bin: path_var(
                "MAILDEV_BIN",
                &tools_dir.join("node/node_modules/.bin/maildev"),
            ),
            timeout: Duration::from_secs(port_var("SERVICES_TIMEOUT", "60")?.into()),
            mode: mode()?,
            database_url,
            aws_endpoint_url,
            maildev_api_url,
            stripe_api_base,
            repo_root,
            tools_dir,
            state_dir,
        })
    }

    /// The same server's `postgres` database, where databases are created and dropped.
    pub fn admin_url(&self) -> Url {
        let mut url = self.database_url.clone();
        url.set_path("/postgres");
        url
    }

    pub fn pid_dir(&self) -> PathBuf {
        self.state_dir.join("pids")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    /// Written by `up` when it started a PostgreSQL cluster, so that `down` stops only that.
    pub fn cluster_mark(&self) -> PathBuf {
        self.pid_dir().join("postgres.cluster")
    }

    /// Written by `up` on the compose path: the compose command that brought the stack up.
    pub fn compose_mark(&self) -> PathBuf {
        self.state_dir.join("compose.up")
    }

    /// The local Cognito user pool's settings, as export lines.
    pub fn cognito_env(&self) -> PathBuf {
        self.state_dir.join("cognito.env")
    }

    /// The Python of moto's venv, which also runs the secrets script.
    pub fn moto_python(&self) -> PathBuf {
        self.tools_dir.join("venv/bin/python")
    }

    fn daemons(&self) -> Daemons {
        Daemons::new(self.pid_dir(), self.log_dir())
    }
}

fn path_var(name: &str, default: &Path) -> PathBuf {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| default.to_owned())
}

fn parse_url(name: &str, default: &str) -> anyhow::Result<Url> {
    let raw = crate::env(name, default);
    Url::parse(&raw).with_context(|| format!("{name}={raw:?} is not a URL"))
}

/// The port of an http(s) URL, written or implied by its scheme.
fn url_port(name: &str, raw: &str) -> anyhow::Result<u16> {
    let url = Url::parse(raw).with_context(|| format!("{name}={raw:?} is not a URL"))?;
    url.port_or_known_default()
        .with_context(|| format!("{name}={raw:?} names no port"))
}

/// The port of the first broker in a `host:port,host:port` list.
fn kafka_port(servers: &str) -> anyhow::Result<u16> {
    let first = servers.split(',').next().unwrap_or_default().trim();
    first
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .with_context(|| format!("KAFKA_BOOTSTRAP_SERVERS={servers:?} names no host:port"))
}

fn port_var(name: &str, default: &str) -> anyhow::Result<u16> {
    let raw = crate::env(name, default);
    raw.parse()
        .with_context(|| format!("{name}={raw:?} is not a number up to 65535"))
}

fn mode() -> anyhow::Result<Mode> {
    match crate::env("SERVICES_MODE", "auto").as_str() {
        "auto" => Ok(Mode::Auto),
        "native" => Ok(Mode::Native),
        "compose" => Ok(Mode::Compose),
        other => anyhow::bail!("SERVICES_MODE must be auto, native or compose (got '{other}')"),
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` (within a second).
async fn port_open(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    matches!(
        tokio::time::timeout(Duration::from_secs(1), connect).await,
        Ok(Ok(_))
    )
}

/// Runs `scripts/services <command>` (less `env`, which the script prints itself).
pub async fn main(args: &[String]) -> anyhow::Result<ExitCode> {
    let (command, rest) = args.split_first().context(USAGE)?;
    let settings = Settings::from_env()?;
    if command == "run" {
        return run::main(&settings, rest).await;
    }
    for dir in [settings.pid_dir(), settings.log_dir()] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if command == "status" {
        status(&settings).await;
        return Ok(ExitCode::SUCCESS);
    }
    // One up/down/reset at a time (scripts/test and scripts/run may race); released at exit.
    let _lock = lock(&settings.state_dir.join(".lock"))?;
    match command.as_str() {
        "up" => up(&settings).await?,
        "down" => down(&settings, &[]).await?,
        "reset" => reset(&settings).await?,
        other => anyhow::bail!("unknown command {other:?}; {USAGE}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Takes the exclusive lock on `path`, waiting for whoever holds it. The file is opened
/// close-on-exec, so the daemons started meanwhile do not inherit (and hold) it.
fn lock(path: &Path) -> anyhow::Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// Brings up whatever is missing (idempotent), from docker-compose.yml when a Docker engine
/// and Compose v2 are there (and `SERVICES_MODE` allows), natively otherwise.
pub async fn up(settings: &Settings) -> anyhow::Result<()> {
    match compose::find(settings).await? {
        Some(compose) => compose::up(settings, &compose).await,
        None => native::up(settings).await,
    }
}

/// Stops what `up` started (the compose stack, the daemons, the cluster), nothing else.
/// `compose_args` go to `compose down`.
pub async fn down(settings: &Settings, compose_args: &[&str]) -> anyhow::Result<()> {
    compose::down(settings, compose_args).await?;
    let daemons = settings.daemons();
    for name in daemon::NAMES {
        daemons.stop(name).await?;
    }
    postgres::stop_cluster(settings)?;
    log("down: stopped what this script had started");
    Ok(())
}

/// `down`, the database dropped and created again, and `$STATE_DIR` deleted.
pub async fn reset(settings: &Settings) -> anyhow::Result<()> {
    if settings.compose_mark().exists() {
        // The volumes hold the database and Kafka data.
        down(settings, &["-v", "--remove-orphans"]).await?;
    } else {
        postgres::recreate_database(settings).await?;
        down(settings, &[]).await?;
    }
    log(format!("deleting {}", settings.state_dir.display()));
    std::fs::remove_dir_all(&settings.state_dir)
        .with_context(|| format!("cannot delete {}", settings.state_dir.display()))
}

/// One line per service: up or down, its ports, and who started it.
pub async fn status(settings: &Settings) {
    let services: [(&str, Vec<u16>, &str); 5] = [
        ("postgres", vec![settings.pg_port], "postgres"),
        ("kafka", vec![settings.kafka_port], "tansu"),
        ("moto", vec![settings.moto_port], "moto"),
        (
            "maildev",
            vec![settings.smtp_port, settings.maildev_web_port],
            "maildev",
        ),
        ("localstripe", vec![settings.stripe_port], "localstripe"),
    ];
    for (name, ports, daemon) in services {
        println!("{}", status_line(settings, name, &ports, daemon).await);
    }
}

async fn status_line(settings: &Settings, name: &str, ports: &[u16], daemon: &str) -> String {
    let mut up = true;
    for &port in ports {
        up &= port_open(port).await;
    }
    let cluster = std::fs::read_to_string(settings.cluster_mark()).ok();
    let who = match (name, cluster, settings.daemons().our_pid(daemon)) {
        ("postgres", Some(cluster), _) => {
            format!("scripts/services (cluster {})", cluster.trim())
        }
        (name, _, Some(pid)) if name != "postgres" => format!("scripts/services (pid {pid})"),
        _ if settings.compose_mark().exists() => "docker compose".to_owned(),
        _ if up => "already running (not started by scripts/services)".to_owned(),
        _ => "-".to_owned(),
    };
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let state = if up { "up" } else { "down" };
    format!(
        "{name:<11} {state:<5} 127.0.0.1:{:<12} {who}",
        ports.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_the_urls_and_lists_the_applications_read() {
        assert_eq!(
            kafka_port("127.0.0.1:19092,127.0.0.1:19093").unwrap(),
            19092
        );
        assert!(kafka_port("localhost").is_err());
        assert_eq!(url_port("X", "http://127.0.0.1:15000").unwrap(), 15000);
        assert_eq!(url_port("X", "http://localhost/").unwrap(), 80);
    }
}
