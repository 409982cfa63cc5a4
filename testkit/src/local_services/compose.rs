//! The compose path: where a Docker engine answers and Compose v2 exists, `up` runs
//! docker-compose.yml instead of native services, and `down` takes that stack down again.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::Command;

use super::{Mode, Settings, cognito_pool, log, native, warn};

/// The services of docker-compose.yml that `up` waits for.
const SERVICES: [&str; 5] = ["postgres", "kafka", "maildev", "localstack", "localstripe"];

/// The compose command to use (`docker compose`, `docker-compose`, ...), or `None` for the
/// native path. `SERVICES_MODE=compose` fails when there is none.
pub async fn find(settings: &Settings) -> anyhow::Result<Option<Vec<String>>> {
    let mode = settings.mode;
    if mode == Mode::Native {
        return Ok(None);
    }
    let engine = docker_answers().await;
    let found = if engine {
        compose_command(settings).await
    } else {
        None
    };
    if mode == Mode::Compose {
        anyhow::ensure!(engine, "SERVICES_MODE=compose but no Docker engine answers");
        anyhow::ensure!(
            found.is_some(),
            "SERVICES_MODE=compose but no Compose v2 command found"
        );
    }
    Ok(found)
}

/// `docker info`, within 20 seconds.
async fn docker_answers() -> bool {
    succeeds(&["docker", "info"]).await
}

async fn succeeds(command: &[&str]) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let run = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(20), run).await,
        Ok(Ok(status)) if status.success()
    )
}

/// The first compose command whose `up` has `--wait` (Compose v2; the old Python
/// docker-compose lacks it).
async fn compose_command(settings: &Settings) -> Option<Vec<String>> {
    let tools = &settings.tools_dir;
    let candidates = [
        vec!["docker".to_owned(), "compose".to_owned()],
        vec!["docker-compose".to_owned()],
        vec![tools.join("bin/docker-compose").display().to_string()],
    ];
    for candidate in candidates {
        let help = Command::new(&candidate[0])
            .args(&candidate[1..])
            .args(["up", "--help"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .await;
        if help.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("--wait")) {
            return Some(candidate);
        }
    }
    None
}

/// `compose up -d --wait`, then the Cognito pool (where the emulator has Cognito) and the
/// provisioning.
pub async fn up(settings: &Settings, compose: &[String]) -> anyhow::Result<()> {
    log(format!(
        "Docker engine found: using {} -f docker-compose.yml",
        compose.join(" ")
    ));
    let mut args = vec!["up", "-d", "--wait"];
    args.extend(SERVICES);
    run(settings, compose, &args).await?;
    let mark = settings.compose_mark();
    std::fs::write(&mark, format!("{}\n", compose.join(" ")))
        .with_context(|| format!("cannot write {}", mark.display()))?;
    // LocalStack's community edition has no Cognito: without it the JWT routes cannot start.
    if let Err(err) = cognito_pool::ensure(settings).await {
        warn(format!(
            "cognito: the emulator on {} has no Cognito user pools ({err:#}); the runtime's \
             /api/me routes need SERVICES_MODE=native",
            settings.aws_endpoint_url
        ));
    }
    native::provision(settings).await?;
    log("all services up (docker compose)");
    Ok(())
}

/// Takes the stack down (with `args`, such as `-v`) if `up` brought it up.
pub async fn down(settings: &Settings, args: &[&str]) -> anyhow::Result<()> {
    let mark = settings.compose_mark();
    let Ok(compose) = std::fs::read_to_string(&mark) else {
        return Ok(());
    };
    let compose: Vec<String> = compose.split_whitespace().map(String::from).collect();
    anyhow::ensure!(!compose.is_empty(), "{} is empty", mark.display());
    log("stopping the compose stack");
    let mut down = vec!["down"];
    down.extend(args);
    run(settings, &compose, &down).await?;
    std::fs::remove_file(&mark).with_context(|| format!("cannot remove {}", mark.display()))
}

/// `compose -f docker-compose.yml args...`, its output shown as it comes.
async fn run(settings: &Settings, compose: &[String], args: &[&str]) -> anyhow::Result<()> {
    let file = settings.repo_root.join("docker-compose.yml");
    let status = Command::new(&compose[0])
        .args(&compose[1..])
        .arg("-f")
        .arg(&file)
        .args(args)
        .status()
        .await
        .with_context(|| format!("cannot run {}", compose.join(" ")))?;
    anyhow::ensure!(
        status.success(),
        "{} -f docker-compose.yml {} failed ({status})",
        compose.join(" "),
        args.join(" ")
    );
    Ok(())
}
