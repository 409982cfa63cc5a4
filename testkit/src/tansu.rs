//! A private broker per test: the same tansu binary as the shared one, on a free port, with
//! sqlite storage in its own folder, so a test can stop it and start it again with its data.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use shared::config::{KafkaSettings, Secrets};
use shared::events::topics;

use crate::process::Service;

/// A running (or deliberately stopped) private broker. Killed and deleted on drop.
pub struct Tansu {
    /// Where the broker listens; clients use [`Tansu::port`], which may be a proxy's.
    listen_port: u16,
    dir: PathBuf,
    service: Service,
    /// With [`Tansu::start_behind_proxy`], every client connection goes through this.
    network: Option<crate::proxy::TcpProxy>,
}

/// Survives restarts; tansu resolves the path against its working directory.
const SQLITE: &str = "sqlite://tansu.db";
const MEMORY: &str = "memory://tansu/";

/// The broker binary: `TANSU_BIN`, or the copy `scripts/services` installs.
pub fn binary() -> PathBuf {
    std::env::var_os("TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/tansu"))
}

impl Tansu {
    /// Starts a broker and creates the system's topics with three partitions each.
    pub async fn start() -> Self {
        let broker = Self::start_empty(crate::free_port(), None, SQLITE).await;
        broker.create_system_topics().await;
        broker
    }

    /// Starts a broker with the system's topics that keeps its data in memory only: quicker
    /// to write, and gone when it stops (the broker a whole test run shares).
    pub async fn start_in_memory() -> Self {
        let broker = Self::start_empty(crate::free_port(), None, MEMORY).await;
        broker.create_system_topics().await;
        broker
    }

    /// Starts a broker with no topics at all, keeping data in memory (for tests of what
    /// creates them).
    pub async fn start_without_topics() -> Self {
        Self::start_empty(crate::free_port(), None, MEMORY).await
    }

    /// Starts a broker that advertises a proxy's address, so that every client connection
    /// goes through it and [`Tansu::disconnect`] is an outage as clients see one, while the
    /// broker keeps its state. It keeps data in memory: tansu 0.6's sqlite engine panics
    /// (and then refuses every produce) when an idempotent producer bumps its epoch after
    /// messages timed out in an outage; its memory engine answers with the proper error.
    pub async fn start_behind_proxy() -> Self {
        let listen_port = crate::free_port();
        let proxy = crate::proxy::TcpProxy::start(format!("127.0.0.1:{listen_port}")).await;
        let broker = Self::start_empty(listen_port, Some(proxy), MEMORY).await;
        broker.create_system_topics().await;
        broker
    }

    async fn start_empty(
        listen_port: u16,
        network: Option<crate::proxy::TcpProxy>,
        storage: &'static str,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("testkit-tansu-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temporary folder can be created");
        let listener = format!("tcp://127.0.0.1:{listen_port}");
        let advertised = format!(
            "tcp://127.0.0.1:{}",
            network
                .as_ref()
                .map_or(listen_port, crate::proxy::TcpProxy::port)
        );
        let service = Service::new("the private tansu broker", binary(), dir.join("broker.log"))
            .current_dir(&dir)
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &advertised])
            .args(["--storage-engine", storage]);
        let mut broker = Self {
            listen_port,
            dir,
            service,
            network,
        };
        broker.launch().await;
        broker
    }

    /// The system's topics, three partitions each, created by db-migrate's provisioning as
    /// on every deploy.
    async fn create_system_topics(&self) {
        let layout = db_migrate::config::TopicLayout {
            partitions: 3,
            ..Default::default()
        };
        db_migrate::provision::ensure_topics(
            &KafkaSettings::plaintext(self.bootstrap()),
            &Secrets::new(),
            layout,
            &topics::ALL,
        )
        .await
        .expect("db-migrate's provisioning creates the topics");
    }

    /// Starts a broker that requires SASL/SCRAM, knowing `user` with `password`, with the
    /// system's topics.
    pub async fn start_with_user(user: &str, password: &str) -> Self {
        let mut broker = Self::start().await;
        broker.cli(&["user", "create", user, password]).await;
        broker.stop().await;
        broker.service.push_arg("--authentication");
        broker.launch().await;
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// The broker's own log, for a failing test's message.
    pub fn log_path(&self) -> PathBuf {
        self.service.log_path().to_owned()
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.network
            .as_ref()
            .map_or(self.listen_port, crate::proxy::TcpProxy::port)
    }

    /// Cuts every client off the broker (only with [`Tansu::start_behind_proxy`]).
    pub async fn disconnect(&self) {
        self.network
            .as_ref()
            .expect("started behind a proxy")
            .cut()
            .await;
    }

    pub fn reconnect(&self) {
        self.network
            .as_ref()
            .expect("started behind a proxy")
            .restore();
    }

    /// Kills the broker, as an outage would.
    pub async fn stop(&mut self) {
        self.service.stop().await;
    }

    /// Starts the broker again on the same port and storage, so its data is still there.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }

    pub async fn create_topic(&self, name: &str, partitions: u32) {
        self.cli(&[
            "topic",
            "create",
            name,
            "--partitions",
            &partitions.to_string(),
        ])
        .await;
    }

    /// Runs a `tansu` administration command against this broker.
    async fn cli(&self, args: &[&str]) {
        let output = Command::new(binary())
            .args(args)
            .arg("--broker")
            .arg(format!("tcp://{}", self.bootstrap()))
            .output()
            .await
            .expect("the tansu binary runs");
        assert!(
            output.status.success(),
            "tansu {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    async fn launch(&mut self) {
        self.service
            .start(&[self.listen_port], Duration::from_secs(20))
            .await;
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.service.kill_now();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
