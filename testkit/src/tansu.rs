//! A private broker per test: the same tansu binary as the shared one, on a free port, with
//! sqlite storage in its own folder, so a test can stop it and start it again with its data.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use shared::events::topics;

/// A running (or deliberately stopped) private broker. Killed and deleted on drop.
pub struct Tansu {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// The broker binary: `TANSU_BIN`, or the copy `scripts/services` installs.
pub fn binary() -> PathBuf {
    std::env::var_os("TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/tansu"))
}

impl Tansu {
    /// Starts a broker and creates the system's topics with three partitions each.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("testkit-tansu-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temporary folder can be created");
        let mut broker = Self {
            port: crate::free_port(),
            dir,
            child: None,
        };
        broker.launch().await;
        for topic in topics::ALL {
            broker.create_topic(topic, 3).await;
        }
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the broker, as an outage would.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the broker again on the same port and storage, so its data is still there.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }

    pub async fn create_topic(&self, name: &str, partitions: u32) {
        let output = Command::new(binary())
            .args(["topic", "create", name, "--partitions"])
            .arg(partitions.to_string())
            .arg("--broker")
            .arg(format!("tcp://{}", self.bootstrap()))
            .output()
            .await
            .expect("the tansu binary runs");
        assert!(
            output.status.success(),
            "creating topic {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    async fn launch(&mut self) {
        let url = format!("tcp://{}", self.bootstrap());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .expect("the broker log can be opened");
        let child = Command::new(binary())
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // tansu resolves sqlite paths against its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start {} ({err}); run scripts/services up first",
                    binary().display()
                )
            });
        self.child = Some(child);
        crate::wait_for_port(
            self.port,
            "the private tansu broker",
            Duration::from_secs(20),
        )
        .await;
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
