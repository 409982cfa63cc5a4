//! Starts `tests/smtp_server.py` (aiosmtpd) with the tools venv's Python and reads what it
//! accepted from its output.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::helpers::smtp_on;

/// A real SMTP server that rejects, defers, holds or requires AUTH as told.
pub struct SmtpServer {
    port: u16,
    stdin: ChildStdin,
    accepted: Arc<Mutex<Vec<Value>>>,
    _child: Child,
}

fn python() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tools = std::env::var_os("TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join(".tools"));
    tools.join("venv/bin/python")
}

impl SmtpServer {
    /// Starts a server with `args` (see the script's doc) on a free port.
    pub async fn start(args: &[&str]) -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let mut child = Command::new(python())
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start {} ({err}); run scripts/services up first",
                    python().display()
                )
            });
        let stdin = child.stdin.take().expect("stdin is piped");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the SMTP server starts within 30 s")
            .expect("the SMTP server's output is readable")
            .unwrap_or_else(|| {
                panic!(
                    "the SMTP server exited at start; is aiosmtpd installed? (scripts/services up)"
                )
            });
        let port = first
            .strip_prefix("LISTENING ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the SMTP server: {first}"));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn({
            let accepted = Arc::clone(&accepted);
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let mail: Value = serde_json::from_str(&line).expect("one JSON line per mail");
                    accepted.lock().unwrap().push(mail);
                }
            }
        });
        Self {
            port,
            stdin,
            accepted,
            _child: child,
        }
    }

    /// Plain SMTP settings pointing at this server.
    pub fn settings(&self) -> notification::SmtpSettings {
        smtp_on(self.port)
    }

    /// Every mail accepted so far (`to`, `message_id`, `user`).
    pub fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().unwrap().clone()
    }

    /// Waits until at least `count` mails were accepted (or 15 s passed) and returns them all.
    pub async fn wait_for_accepted(&self, count: usize) -> Vec<Value> {
        // Gives up quietly: the caller's assertions on what was accepted say what went wrong.
        let _ = testkit::poll_until(Duration::from_secs(15), || async {
            let accepted = self.accepted.lock().unwrap().len();
            if accepted >= count {
                Ok(())
            } else {
                Err(accepted)
            }
        })
        .await;
        self.accepted()
    }

    /// Lets one mail held by `--hold` get its final 250.
    pub async fn release_one(&mut self) {
        self.stdin.write_all(b"release\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }
}

/// The recipients of the accepted mails.
pub fn recipients(accepted: &[Value]) -> Vec<String> {
    accepted
        .iter()
        .flat_map(|mail| mail["to"].as_array().cloned().unwrap_or_default())
        .filter_map(|to| to.as_str().map(str::to_owned))
        .collect()
}
