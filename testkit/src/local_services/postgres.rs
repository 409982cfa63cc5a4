//! The local PostgreSQL: the server that answers on `DATABASE_URL`'s port, or else the
//! newest Debian cluster, started (and created when missing) with `pg_ctlcluster` as root;
//! then the application's database.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection};

use super::{Settings, log, port_open, warn};

/// Makes sure the server answers, `DATABASE_URL` connects, and its database exists.
pub async fn ensure(settings: &Settings) -> anyhow::Result<()> {
    if answers(settings).await {
        log(format!(
            "postgres: answering on 127.0.0.1:{}",
            settings.pg_port
        ));
    } else {
        start_cluster(settings).await?;
    }
    if connect(settings).await.is_err() {
        set_password(settings);
    }
    let mut admin = connect(settings).await.with_context(|| {
        format!(
            "postgres: cannot connect with DATABASE_URL ({})",
            redacted(settings)
        )
    })?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&settings.pg_db)
        .fetch_optional(&mut admin)
        .await
        .context("postgres: cannot list the databases")?;
    if exists.is_none() {
        log(format!("postgres: creating database {}", settings.pg_db));
        create_database(&mut admin, &settings.pg_db).await?;
    }
    log(format!("postgres: ready (database {})", settings.pg_db));
    Ok(())
}

/// Drops the application's database and creates it empty, when the server is reachable.
pub async fn recreate_database(settings: &Settings) -> anyhow::Result<()> {
    let Ok(mut admin) = connect(settings).await else {
        warn(format!(
            "postgres: not reachable, database {} left as it is",
            settings.pg_db
        ));
        return Ok(());
    };
    let db = &settings.pg_db;
    log(format!("postgres: dropping and recreating database {db}"));
    let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(db));
    sqlx::raw_sql(&drop)
        .execute(&mut admin)
        .await
        .with_context(|| format!("postgres: cannot drop database {db}"))?;
    create_database(&mut admin, db).await
}

/// Stops the cluster `up` started, if it started one.
pub fn stop_cluster(settings: &Settings) -> anyhow::Result<()> {
    let mark = settings.cluster_mark();
    let Ok(cluster) = std::fs::read_to_string(&mark) else {
        return Ok(());
    };
    let mut words = cluster.split_whitespace();
    if let (Some(version), Some(name)) = (words.next(), words.next()) {
        log(format!("postgres: stopping cluster {version}/{name}"));
        let stop = ["--skip-systemctl-redirect", version, name, "stop"];
        if let Err(err) = as_root("pg_ctlcluster", &stop) {
            warn(format!("postgres: {err:#}"));
        }
    }
    std::fs::remove_file(&mark).with_context(|| format!("cannot remove {}", mark.display()))
}

async fn create_database(admin: &mut PgConnection, db: &str) -> anyhow::Result<()> {
    sqlx::raw_sql(&format!("CREATE DATABASE {}", quoted(db)))
        .execute(admin)
        .await
        .with_context(|| format!("postgres: cannot create database {db}"))?;
    Ok(())
}

fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

async fn connect(settings: &Settings) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect(settings.admin_url().as_str()).await
}

/// The admin URL without its password, for messages.
fn redacted(settings: &Settings) -> String {
    let mut url = settings.admin_url();
    let _ = url.set_password(None);
    url.to_string()
}

/// `pg_isready` where installed (it tells a server still starting from a ready one), else
/// whether the port is open.
async fn answers(settings: &Settings) -> bool {
    let port = settings.pg_port.to_string();
    let ready = tokio::process::Command::new("pg_isready")
        .args(["-q", "-h", &settings.pg_host, "-p", &port])
        .status()
        .await;
    match ready {
        Ok(status) => status.success(),
        Err(_) => port_open(settings.pg_port).await,
    }
}

/// Starts the newest installed Debian cluster (`main`), creating it on our port first when
/// there is none, and marks it as ours for `down`.
async fn start_cluster(settings: &Settings) -> anyhow::Result<()> {
    let version =
        newest_server().context("postgres: no server installed (apt-get install postgresql)")?;
    if !PathBuf::from(format!("/etc/postgresql/{version}/main")).is_dir() {
        log(format!("postgres: creating cluster {version}/main"));
        as_root(
            "pg_createcluster",
            &[&version, "main", "-p", &settings.pg_port.to_string()],
        )?;
    }
    log(format!("postgres: starting cluster {version}/main"));
    as_root(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", "start"],
    )?;
    let mark = settings.cluster_mark();
    std::fs::write(&mark, format!("{version} main\n"))
        .with_context(|| format!("cannot write {}", mark.display()))?;
    let log_path = PathBuf::from(format!("/var/log/postgresql/postgresql-{version}-main.log"));
    let what = format!("pg_isready on 127.0.0.1:{}", settings.pg_port);
    settings
        .daemons()
        .wait_until("postgres", &log_path, None, &what, settings.timeout, || {
            answers(settings)
        })
        .await
}

/// The newest version under /usr/lib/postgresql that has a server binary.
fn newest_server() -> Option<String> {
    let entries = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    let mut versions: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("bin/postgres").exists())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    let key = |v: &String| -> Vec<u32> { v.split('.').filter_map(|n| n.parse().ok()).collect() };
    versions.sort_by_key(key);
    versions.pop()
}

/// A fresh Debian cluster wants a password on 127.0.0.1: give the `postgres` role the one in
/// DATABASE_URL, over the local socket. Best effort; the connection that follows tells.
fn set_password(settings: &Settings) {
    let url = settings.admin_url();
    let Some(password) = url.password() else {
        return;
    };
    let is_postgres_user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .is_some();
    if url.username() != "postgres" || !is_postgres_user {
        return;
    }
    log("postgres: setting the postgres role's password from DATABASE_URL");
    let sql = format!(
        "ALTER ROLE postgres PASSWORD '{}'",
        password.replace('\'', "''")
    );
    let port = settings.pg_port.to_string();
    let args = ["-u", "postgres", "--", "psql", "-p", &port, "-qc", &sql];
    if let Err(err) = as_root("runuser", &args) {
        warn(format!("postgres: {err:#}"));
    }
}

/// Runs `program` as root: directly when we are root, else through sudo.
pub fn as_root(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut command = if nix::unistd::getuid().is_root() {
        Command::new(program)
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg(program);
        sudo
    };
    let status = command
        .args(args)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {program} as root (is sudo installed?)"))?;
    anyhow::ensure!(
        status.success(),
        "{program} {} failed ({status})",
        args.join(" ")
    );
    Ok(())
}
