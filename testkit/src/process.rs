//! The one way testkit runs a service as a child process: spawned with its output appended
//! to a log file, waited for (a port, or any probe) while noticing an early exit, stopped,
//! signalled, started again with the same command line, and killed on drop. A start-up that
//! fails names the service and shows the last lines of its log.

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How many lines of the log a failure message shows.
const LOG_LINES: usize = 30;

/// A service's command line, and the child running it (if any). Killed on drop.
pub struct Service {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    log: PathBuf,
    hint: String,
    child: Option<Child>,
}

impl Service {
    /// `program`, called `name` in messages, its stdout and stderr appended to `log`.
    pub fn new(name: &str, program: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            dir: None,
            env: Vec::new(),
            log: log.into(),
            hint: "run scripts/services up first".to_owned(),
            child: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds `arg` to the command line of the next start (a restart with another flag).
    pub fn push_arg(&mut self, arg: impl Into<OsString>) {
        self.args.push(arg.into());
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Sets a variable on top of the environment this process has.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// What a spawn failure tells the reader to do (by default, to start the services,
    /// which install the binaries).
    pub fn hint(mut self, hint: &str) -> Self {
        hint.clone_into(&mut self.hint);
        self
    }

    /// Its output, appended across restarts.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id of the running child.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Spawns the child unless it runs already; does not wait for anything.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|err| {
                anyhow::anyhow!("{}: cannot open {}: {err}", self.name, self.log.display())
            })?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        let child = command.spawn().map_err(|err| {
            anyhow::anyhow!(
                "cannot start {} ({}: {err}); {}",
                self.name,
                self.program.display(),
                self.hint
            )
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Spawns the child and waits until it accepts TCP connections on every one of `ports`
    /// (each within `timeout`); panics, with its log, when it does not.
    pub async fn start(&mut self, ports: &[u16], timeout: Duration) {
        if let Err(err) = self.try_start(ports, timeout).await {
            panic!("{err:#}");
        }
    }

    /// As [`Self::start`], with the failure as an error.
    pub async fn try_start(&mut self, ports: &[u16], timeout: Duration) -> anyhow::Result<()> {
        self.spawn()?;
        for &port in ports {
            self.try_wait_for(
                &format!("listening on 127.0.0.1:{port}"),
                timeout,
                || async move {
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .map(drop)
                        .map_err(|err| err.to_string())
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Polls `probe` as [`crate::eventually`] does, and fails early when the child exits.
    /// Panics with the child's log when the probe does not succeed within `timeout`.
    pub async fn wait_for<T, E, F, Fut>(&mut self, what: &str, timeout: Duration, probe: F) -> T
    where
        E: std::fmt::Debug,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.try_wait_for(what, timeout, probe).await {
            Ok(value) => value,
            Err(err) => panic!("{err:#}"),
        }
    }

    /// As [`Self::wait_for`], with the failure (and the log's last lines) as an error.
    pub async fn try_wait_for<T, E, F, Fut>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: F,
    ) -> anyhow::Result<T>
    where
        E: std::fmt::Debug,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some(child) = self.child.as_mut() else {
            anyhow::bail!("{} is not running", self.name);
        };
        let outcome = crate::poll_until(timeout, || {
            let exited = child.try_wait().ok().flatten();
            let attempt = probe();
            async move {
                if let Some(status) = exited {
                    return Ok(Err(format!("it exited during start-up ({status})")));
                }
                attempt.await.map(Ok).map_err(|err| format!("{err:?}"))
            }
        })
        .await;
        let failure = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(exited)) => {
                self.child = None;
                exited
            }
            Err(last) => format!("not within {timeout:?}; last seen: {last}"),
        };
        anyhow::bail!("{} {what}: {failure}\n{}", self.name, self.log_tail())
    }

    /// The path and last lines of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        let tail = crate::last_lines(&self.log, LOG_LINES);
        format!("its log {}, last lines:\n{tail}", self.log.display())
    }

    /// Kills the child (SIGKILL, as an outage would) and waits for its exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Sends SIGKILL without waiting for the exit (for a `Drop` that removes the child's
    /// files next).
    pub fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
    }

    /// SIGTERM, as Ctrl-C would; waits up to `grace` for the exit and returns its status
    /// (`None` when it was not running). Past `grace` it kills the child and fails.
    pub async fn terminate(&mut self, grace: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(pid) = child.id() {
            kill(Pid::from_raw(pid as i32), Signal::SIGTERM)?;
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => Ok(Some(status?)),
            Err(_) => {
                let _ = child.kill().await;
                anyhow::bail!(
                    "{} did not exit within {grace:?} of SIGTERM; see {}",
                    self.name,
                    self.log.display()
                )
            }
        }
    }

    /// Sends `signal` to the running child (SIGSTOP to freeze it, SIGCONT to thaw it).
    pub fn signal(&self, signal: Signal) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("only a running {} can be signalled", self.name));
        kill(Pid::from_raw(pid as i32), signal)
            .unwrap_or_else(|err| panic!("cannot send {signal} to {}: {err}", self.name));
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> PathBuf {
        std::env::temp_dir().join(format!("testkit-process-{}.log", uuid::Uuid::now_v7()))
    }

    #[tokio::test]
    async fn a_child_that_exits_during_start_up_fails_at_once_with_its_log() {
        let log = log();
        let mut service = Service::new("sh", "sh", &log).args(["-c", "echo broken config; exit 3"]);
        let started = std::time::Instant::now();
        let err = service
            .try_start(&[crate::free_port()], Duration::from_secs(30))
            .await
            .expect_err("it exited");
        let err = format!("{err:#}");
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
        assert!(err.contains("exited during start-up"), "{err}");
        assert!(err.contains("broken config"), "{err}");
        assert!(!service.is_running());
        let _ = std::fs::remove_file(log);
    }

    #[tokio::test]
    async fn a_started_child_is_stopped_and_started_again_with_the_same_command_line() {
        let log = log();
        let mut service = Service::new("sleep", "sleep", &log).arg("600");
        service.spawn().unwrap();
        let first = service.pid().unwrap();
        service.stop().await;
        assert!(!service.is_running());
        service.spawn().unwrap();
        assert_ne!(service.pid().unwrap(), first);
        assert!(
            service
                .terminate(Duration::from_secs(10))
                .await
                .unwrap()
                .is_some(),
            "SIGTERM ends sleep"
        );
        let _ = std::fs::remove_file(log);
    }
}
