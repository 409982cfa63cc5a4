//! The maildev mail sink: its REST API (`/api/email`), and private instances a test may stop.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::process::Service;

/// A maildev instance: the shared one, or a private one this handle started.
pub struct Maildev {
    api: String,
    smtp_port: u16,
    web_port: u16,
    private: Option<Private>,
}

struct Private {
    dir: PathBuf,
    service: Service,
}

/// The maildev binary: `MAILDEV_BIN`, or the copy `scripts/services` installs.
pub fn binary() -> PathBuf {
    std::env::var_os("MAILDEV_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.tools/node/node_modules/.bin/maildev")
        })
}

impl Maildev {
    /// The sink the local services run (`MAILDEV_API_URL`, `SMTP_PORT`).
    pub fn shared() -> Self {
        let api = crate::env("MAILDEV_API_URL", "http://127.0.0.1:1080");
        let smtp_port = crate::env("SMTP_PORT", "1025")
            .parse()
            .expect("SMTP_PORT is a port number");
        let web_port = api
            .rsplit(':')
            .next()
            .and_then(|port| port.trim_end_matches('/').parse().ok())
            .unwrap_or(1080);
        Self {
            api,
            smtp_port,
            web_port,
            private: None,
        }
    }

    /// A private sink on free ports, with its own mail folder.
    pub async fn spawn() -> Self {
        let dir = std::env::temp_dir().join(format!("testkit-maildev-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("mail")).expect("a temporary folder can be created");
        let (smtp_port, web_port) = (crate::free_port(), crate::free_port());
        let service = Service::new("private maildev", binary(), dir.join("maildev.log"))
            .args(["--ip", "127.0.0.1", "--web-ip", "127.0.0.1", "--silent"])
            .args([
                "--smtp",
                &smtp_port.to_string(),
                "--web",
                &web_port.to_string(),
            ])
            .arg("--mail-directory")
            .arg(dir.join("mail"));
        let mut sink = Self {
            api: format!("http://127.0.0.1:{web_port}"),
            smtp_port,
            web_port,
            private: Some(Private { dir, service }),
        };
        sink.start().await;
        sink
    }

    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    pub fn api_url(&self) -> &str {
        &self.api
    }

    /// Starts a private sink (again). Its mails survive a restart.
    pub async fn start(&mut self) {
        let (smtp_port, web_port) = (self.smtp_port, self.web_port);
        let service = &mut self
            .private
            .as_mut()
            .expect("only a private sink can be started")
            .service;
        if service.is_running() {
            return;
        }
        service.start(&[smtp_port], Duration::from_secs(30)).await;
        // It reads every mail in its folder back before its API answers: after a soak's
        // thousands of mails on a busy machine, that alone can take half a minute.
        service.start(&[web_port], Duration::from_secs(120)).await;
    }

    /// Stops a private sink, as an SMTP outage would.
    pub async fn stop(&mut self) {
        self.private
            .as_mut()
            .expect("only a private sink can be stopped")
            .service
            .stop()
            .await;
    }

    /// Every mail in the sink, as maildev's API returns them (`to`, `subject`, `text`, `html`, `headers`).
    pub async fn messages(&self) -> Vec<Value> {
        reqwest::get(format!("{}/api/email", self.api))
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("the maildev API answers")
            .json()
            .await
            .expect("the maildev API returns JSON")
    }

    /// The mails addressed to `address`.
    pub async fn messages_to(&self, address: &str) -> Vec<Value> {
        self.messages()
            .await
            .into_iter()
            .filter(|mail| is_addressed_to(mail, address))
            .collect()
    }

    /// Waits until at least `count` mails reached `address`, then briefly longer so that a
    /// duplicate would show; returns them all. Gives up after `timeout` with what arrived.
    pub async fn wait_for_messages(
        &self,
        address: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let arrived = crate::poll_until(timeout, || async {
            let found = self.messages_to(address).await;
            if found.len() >= count {
                Ok(())
            } else {
                Err(found)
            }
        })
        .await;
        match arrived {
            Ok(()) => {
                // Long enough for a duplicate on its way to show.
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.messages_to(address).await
            }
            Err(found) => found,
        }
    }
}

fn is_addressed_to(mail: &Value, address: &str) -> bool {
    mail["to"].as_array().is_some_and(|to| {
        to.iter().any(|r| {
            r["address"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(address))
        })
    })
}

impl Drop for Maildev {
    fn drop(&mut self) {
        if let Some(private) = self.private.as_mut() {
            private.service.kill_now();
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&private.dir);
            }
        }
    }
}
