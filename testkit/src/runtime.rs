//! The `local-runtime` binary as a child process, started as a user starts it, on a
//! database, broker and mail sink of the caller's choosing: the one harness of the local
//! runtime's end-to-end tests and of the pipeline benchmark. The caller may kill it, stop it
//! cleanly, and start it again.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::process::Service;

/// Where mails for orders without `customerEmail` go (`NOTIFY_FALLBACK_TO`).
pub const FALLBACK_RECIPIENT: &str = "order-desk@example.com";

/// The variables that point the functions at the database at `database_url`, the broker at
/// `bootstrap` and the SMTP sink on `smtp_port` (plain SMTP; mail from orders@example.com,
/// and to [`FALLBACK_RECIPIENT`] for orders without an address): the same whether the
/// functions run in the runtime or one is started on its own.
pub fn services_env(
    database_url: &str,
    bootstrap: &str,
    smtp_port: u16,
) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.to_owned()),
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", smtp_port.to_string()),
        ("SMTP_TLS", "none".to_owned()),
        ("MAIL_FROM", "orders@example.com".to_owned()),
        ("NOTIFY_FALLBACK_TO", FALLBACK_RECIPIENT.to_owned()),
    ]
}

/// How to start the runtime: its binary and environment.
#[derive(Debug, Clone)]
pub struct RuntimeSpec {
    pub binary: PathBuf,
    /// Variables on top of the defaults [`RuntimeSpec::new`] sets; later ones win.
    pub env: Vec<(String, String)>,
    /// How long start-up may take until the API answers `/api/health`.
    pub start_timeout: Duration,
}

impl RuntimeSpec {
    /// The runtime on `database_url`, the broker at `bootstrap` and the SMTP sink on
    /// `smtp_port`, with its API on a free port.
    pub fn new(binary: &Path, database_url: &str, bootstrap: &str, smtp_port: u16) -> Self {
        let mut env = services_env(database_url, bootstrap, smtp_port);
        env.extend([
            // The shared localstripe; a test that breaks Stripe sets its own base.
            ("STRIPE_API_KEY", crate::stripe::API_KEY.to_owned()),
            (
                "STRIPE_API_BASE",
                crate::env("STRIPE_API_BASE", "http://127.0.0.1:8420"),
            ),
            // A test system places its orders from one address, so it counts no abuse
            // limit; a test of the limits sets its own with `with`.
            ("ABUSE_LIMITS", "off".to_owned()),
            ("LIMIT_GUEST_MAX_QUANTITY", "10000".to_owned()),
        ]);
        Self {
            binary: binary.to_owned(),
            env: env
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
            start_timeout: Duration::from_secs(60),
        }
    }

    /// Sets one more variable.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }
}

/// A running (or deliberately stopped) runtime; killed on drop.
pub struct LocalRuntime {
    start_timeout: Duration,
    port: u16,
    metrics_port: u16,
    service: Service,
}

/// The workspace root, where `template.yaml` is (the runtime reads it from its working
/// folder), and `scripts/` and `seed/`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl LocalRuntime {
    /// Starts the runtime and waits until its API answers; panics (with where the log is)
    /// when it does not.
    pub async fn start(spec: RuntimeSpec) -> Self {
        match Self::try_start(spec).await {
            Ok(runtime) => runtime,
            Err(err) => panic!("{err:#}"),
        }
    }

    /// As [`Self::start`], with the failure as an error (for commands that must clean up).
    pub async fn try_start(spec: RuntimeSpec) -> anyhow::Result<Self> {
        let (port, metrics_port) = (crate::free_port(), crate::free_port());
        let log_dir = std::env::temp_dir().join("local-runtime-logs");
        std::fs::create_dir_all(&log_dir).expect("a log folder can be created");
        let service = Service::new(
            "the local runtime",
            &spec.binary,
            log_dir.join(format!("runtime-{port}.log")),
        )
        .current_dir(workspace_root())
        .env("ORDER_API_ADDR", format!("127.0.0.1:{port}"))
        .env("LOCAL_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"));
        let service = spec
            .env
            .iter()
            .fold(service, |service, (name, value)| service.env(name, value));
        let mut runtime = Self {
            start_timeout: spec.start_timeout,
            port,
            metrics_port,
            service,
        };
        runtime.try_restart().await?;
        Ok(runtime)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base URL of its API, such as `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where it serves its metrics in Prometheus text format, such as `127.0.0.1:40124`.
    pub fn metrics_addr(&self) -> String {
        format!("127.0.0.1:{}", self.metrics_port)
    }

    /// Its output (stdout and stderr, appended across restarts).
    pub fn log_path(&self) -> &Path {
        self.service.log_path()
    }

    /// Starts the runtime again (after [`Self::kill`] or [`Self::terminate`]) on the same
    /// port, and waits until its API answers.
    pub async fn restart(&mut self) {
        if let Err(err) = self.try_restart().await {
            panic!("{err:#}");
        }
    }

    /// As [`Self::restart`], with the failure as an error.
    pub async fn try_restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.service.is_running(), "the runtime is already running");
        self.service.spawn()?;
        let health = format!("{}/api/health", self.base_url());
        let client = reqwest::Client::new();
        self.service
            .try_wait_for("answering /api/health", self.start_timeout, || {
                let request = client.get(&health).send();
                async move {
                    match request.await {
                        Ok(response) if response.status().is_success() => Ok(()),
                        Ok(response) => Err(response.status().to_string()),
                        Err(err) => Err(err.to_string()),
                    }
                }
            })
            .await
            .map_err(|err| anyhow::anyhow!("the local runtime did not start: {err:#}"))
    }

    /// SIGKILL: no shutdown hooks, nothing flushed or committed.
    pub async fn kill(&mut self) {
        self.service.stop().await;
    }

    /// SIGTERM, as Ctrl-C would; waits up to 30 s for the exit and returns its status
    /// (`None` when it was not running). Panics when it does not exit.
    pub async fn terminate(&mut self) -> Option<ExitStatus> {
        self.try_terminate()
            .await
            .unwrap_or_else(|err| panic!("{err:#}"))
    }

    /// As [`Self::terminate`], with the failure as an error.
    pub async fn try_terminate(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.service.terminate(Duration::from_secs(30)).await
    }
}
