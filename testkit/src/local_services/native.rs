//! The native path of `up`: each service is reused when something answers on its port, and
//! otherwise started as a daemon from the tools `scripts/services` installed.

use std::time::Instant;

use anyhow::Context as _;

use super::daemon::{Daemons, failure};
use super::{Settings, cognito_pool, log, port_open, postgres};

/// Brings up every service that does not answer yet, then provisions.
pub async fn up(settings: &Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    let daemons = settings.daemons();
    postgres::ensure(settings).await?;
    ensure_moto(settings, &daemons).await?;
    ensure_maildev(settings, &daemons).await?;
    ensure_localstripe(settings, &daemons).await?;
    ensure_tansu(settings, &daemons).await?;
    provision(settings).await?;
    let secs = started.elapsed().as_secs();
    log(format!(
        "all services up in {secs}s (scripts/services status)"
    ));
    Ok(())
}

async fn ensure_tansu(settings: &Settings, daemons: &Daemons) -> anyhow::Result<()> {
    let port = settings.kafka_port;
    if port_open(port).await {
        log(format!("kafka: answering on 127.0.0.1:{port}"));
    } else {
        let dir = settings.state_dir.join("tansu");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let listener = format!("tcp://127.0.0.1:{port}");
        let args = [
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &listener,
            "--storage-engine",
            "sqlite://tansu.db",
        ]
        .map(String::from);
        // tansu opens a sqlite:// path relative to its working directory (even one written
        // as an absolute path), so it runs inside $STATE_DIR/tansu.
        let mut child = daemons.start("tansu", &settings.tansu_bin, &args, Some(&dir))?;
        let what = format!("port {port}");
        let log_path = daemons.log_path("tansu");
        daemons
            .wait_until(
                "tansu",
                &log_path,
                Some(&mut child),
                &what,
                settings.timeout,
                || port_open(port),
            )
            .await?;
    }
    log("kafka: ready");
    Ok(())
}

/// moto, then the secrets (the same script LocalStack runs as its ready.d hook), then the
/// Cognito user pool.
async fn ensure_moto(settings: &Settings, daemons: &Daemons) -> anyhow::Result<()> {
    let port = settings.moto_port;
    let log_path = daemons.log_path("moto");
    if port_open(port).await {
        log(format!("moto: answering on 127.0.0.1:{port}"));
    } else {
        let moto = settings.tools_dir.join("venv/bin/moto_server");
        let args = [
            "-H".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
        ];
        let mut child = daemons.start("moto", &moto, &args, None)?;
        daemons
            .wait_until(
                "moto",
                &log_path,
                Some(&mut child),
                &format!("port {port}"),
                settings.timeout,
                || port_open(port),
            )
            .await?;
    }
    create_secrets(settings, &log_path)?;
    log("moto: ready (secrets created)");
    if let Err(err) = cognito_pool::ensure(settings).await {
        let message = format!("creating the Cognito user pool failed: {err:#}");
        return Err(failure("moto", &message, &log_path));
    }
    Ok(())
}

fn create_secrets(settings: &Settings, log_path: &std::path::Path) -> anyhow::Result<()> {
    let script = settings
        .repo_root
        .join("localstack/init/ready.d/create-secrets.py");
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let python = settings.moto_python();
    let status = std::process::Command::new(&python)
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .status()
        .with_context(|| format!("moto: cannot run {}", python.display()))?;
    if !status.success() {
        let message = format!("creating the secrets failed ({})", script.display());
        return Err(failure("moto", &message, log_path));
    }
    Ok(())
}

async fn ensure_maildev(settings: &Settings, daemons: &Daemons) -> anyhow::Result<()> {
    let (smtp, web) = (settings.smtp_port, settings.maildev_web_port);
    if port_open(smtp).await && port_open(web).await {
        log(format!("maildev: answering on 127.0.0.1:{smtp} and :{web}"));
        return Ok(());
    }
    let args = [
        "--smtp",
        &smtp.to_string(),
        "--ip",
        "127.0.0.1",
        "--web",
        &web.to_string(),
        "--web-ip",
        "127.0.0.1",
    ]
    .map(String::from);
    let mut child = daemons.start("maildev", &settings.maildev_bin, &args, None)?;
    let log_path = daemons.log_path("maildev");
    daemons
        .wait_until(
            "maildev",
            &log_path,
            Some(&mut child),
            &format!("port {smtp}"),
            settings.timeout,
            || port_open(smtp),
        )
        .await?;
    let api = format!(
        "{}/api/email",
        settings.maildev_api_url.trim_end_matches('/')
    );
    daemons
        .wait_until(
            "maildev",
            &log_path,
            Some(&mut child),
            &api,
            settings.timeout,
            || answers_ok(reqwest::Client::new().get(&api)),
        )
        .await?;
    log("maildev: ready");
    Ok(())
}

async fn ensure_localstripe(settings: &Settings, daemons: &Daemons) -> anyhow::Result<()> {
    let port = settings.stripe_port;
    let mut child = None;
    if port_open(port).await {
        log(format!("localstripe: answering on 127.0.0.1:{port}"));
    } else {
        let dir = settings.state_dir.join("localstripe");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let python = settings.tools_dir.join("localstripe-venv/bin/python");
        let serve = settings.repo_root.join("scripts/localstripe-serve.py");
        let args = [
            serve.display().to_string(),
            "--port".to_owned(),
            port.to_string(),
            "--state".to_owned(),
            dir.join("state.pickle").display().to_string(),
        ];
        child = Some(daemons.start("localstripe", &python, &args, None)?);
    }
    // Answers as Stripe does once it serves the API with our key.
    let base = settings.stripe_api_base.trim_end_matches('/');
    let url = format!("{base}/v1/payment_intents?limit=1");
    let what = format!("{base}/v1/payment_intents");
    let key = &settings.stripe_api_key;
    let log_path = daemons.log_path("localstripe");
    daemons
        .wait_until(
            "localstripe",
            &log_path,
            child.as_mut(),
            &what,
            settings.timeout,
            || answers_ok(reqwest::Client::new().get(&url).basic_auth(key, Some(""))),
        )
        .await?;
    log("localstripe: ready");
    Ok(())
}

/// Whether the request gets a 2xx answer within two seconds.
async fn answers_ok(request: reqwest::RequestBuilder) -> bool {
    let sent = request
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await;
    sent.is_ok_and(|response| response.status().is_success())
}

/// What db-migrate does on every deploy, against the local services: apply migrations/ to
/// the database and create the Kafka topics that are missing. The topic list lives in the
/// code (shared::events::topics), nowhere else.
pub async fn provision(settings: &Settings) -> anyhow::Result<()> {
    log("provisioning: migrations and Kafka topics (db-migrate's provisioning)");
    let config = db_migrate::MigrateConfig::from_env()
        .context("provisioning: db-migrate's settings are incomplete")?;
    let deps = db_migrate::Deps::from_config(config)
        .await
        .context("provisioning: cannot reach the database")?;
    let done = db_migrate::provision::provision(&deps)
        .await
        .with_context(|| {
            format!(
                "provisioning: db-migrate's provisioning failed (database {}, broker on port {})",
                settings.pg_db, settings.kafka_port
            )
        })?;
    log(format!(
        "provisioning: done (schema version {}, topics created: {})",
        done.schema_version,
        if done.topics_created.is_empty() {
            "none".to_owned()
        } else {
            done.topics_created.join(", ")
        }
    ));
    Ok(())
}
