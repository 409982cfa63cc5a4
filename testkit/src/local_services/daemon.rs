//! Daemons that outlive the command starting them: each runs in a session of its own
//! (`setsid`), stdin from /dev/null, its output appended to `$STATE_DIR/logs/NAME.log` (so
//! that CI's pipes close), its pid in `$STATE_DIR/pids/NAME.pid`. A pid file is trusted only
//! while the process's command line still names the service, since pids are recycled.

use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{log, warn};

/// Every daemon `up` may start, in the order `down` stops them.
pub const NAMES: [&str; 4] = ["tansu", "maildev", "moto", "localstripe"];

/// How many lines of a log a failure shows.
const LOG_LINES: usize = 40;

/// What a daemon's command line contains, to tell it from a process that got its old pid.
fn pattern(name: &str) -> &str {
    match name {
        "moto" => "moto_server",
        "localstripe" => "localstripe-serve",
        other => other,
    }
}

/// The pid and log directories of one `$STATE_DIR`.
pub struct Daemons {
    pid_dir: PathBuf,
    log_dir: PathBuf,
}

impl Daemons {
    pub fn new(pid_dir: PathBuf, log_dir: PathBuf) -> Self {
        Self { pid_dir, log_dir }
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    fn pid_path(&self, name: &str) -> PathBuf {
        self.pid_dir.join(format!("{name}.pid"))
    }

    /// Starts `program` detached as the daemon `name`, in `dir` when given. The child is
    /// returned only so that a wait can notice its exit; dropping it leaves it running.
    pub fn start(
        &self,
        name: &str,
        program: &Path,
        args: &[String],
        dir: Option<&Path>,
    ) -> anyhow::Result<Child> {
        anyhow::ensure!(
            program.exists(),
            "{name}: {} is not installed (scripts/services up installs it)",
            program.display()
        );
        let log_path = self.log_path(name);
        log(format!("{name}: starting (log: {})", log_path.display()));
        let mut log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let now = chrono::Utc::now().format("%FT%TZ");
        writeln!(log_file, "\n===== {now} starting {name} =====")
            .with_context(|| format!("cannot write to {}", log_path.display()))?;
        // setsid(1) execs in place (this child leads no process group), so its pid is the
        // daemon's own.
        let mut command = Command::new("setsid");
        command
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let child = command
            .spawn()
            .with_context(|| format!("{name}: cannot start {}", program.display()))?;
        let pid_path = self.pid_path(name);
        std::fs::write(&pid_path, format!("{}\n", child.id()))
            .with_context(|| format!("cannot write {}", pid_path.display()))?;
        Ok(child)
    }

    /// The pid from `name`'s pid file, if that process is alive and still the daemon.
    pub fn our_pid(&self, name: &str) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_path(name))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        kill(Pid::from_raw(pid), None).ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(pattern(name))
            .then_some(pid)
    }

    /// Polls `ready` every half second until it holds. Fails (showing the end of `log`) when
    /// `timeout` passes, or at once when `child` exits first.
    pub async fn wait_until<F, Fut>(
        &self,
        name: &str,
        log: &Path,
        mut child: Option<&mut Child>,
        what: &str,
        timeout: Duration,
        mut ready: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        while !ready().await {
            if let Some(child) = child.as_deref_mut()
                && let Some(status) = child.try_wait().context("cannot check on the child")?
            {
                let _ = std::fs::remove_file(self.pid_path(name));
                return Err(failure(
                    name,
                    &format!("process exited before {what} ({status})"),
                    log,
                ));
            }
            if Instant::now() >= deadline {
                let secs = timeout.as_secs();
                let message = format!("not ready after {secs}s (waiting for {what})");
                return Err(failure(name, &message, log));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }

    /// SIGTERM to the daemon `name` if it is ours, SIGKILL when it is still there 15 s later.
    pub async fn stop(&self, name: &str) -> anyhow::Result<()> {
        if let Some(pid) = self.our_pid(name) {
            log(format!("{name}: stopping pid {pid}"));
            let pid = Pid::from_raw(pid);
            let _ = kill(pid, Signal::SIGTERM);
            for _ in 0..30 {
                if kill(pid, None).is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if kill(pid, None).is_ok() {
                warn(format!(
                    "{name}: still running after 15s, killing pid {pid}"
                ));
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        match std::fs::remove_file(self.pid_path(name)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("cannot remove {name}'s pid file"))
            }
            _ => Ok(()),
        }
    }
}

/// The error for a service that failed: what happened, and the last lines of its log.
pub fn failure(name: &str, message: &str, log: &Path) -> anyhow::Error {
    anyhow::anyhow!("{name}: {message}{}", log_tail(log))
}

/// The last lines of `log` between markers, or nothing when it is empty or unreadable.
pub fn log_tail(log: &Path) -> String {
    let tail = crate::last_lines(log, LOG_LINES);
    if tail.is_empty() {
        return String::new();
    }
    format!(
        "\n----- last lines of {} -----\n{tail}\n-----",
        log.display()
    )
}
