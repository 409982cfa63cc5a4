//! `cargo lambda watch` and `cargo lambda invoke` with the samples under `events/` (docs/architecture.md, "Local runs"):
//! the inventory and order-api functions as cargo-lambda builds and serves them, on the test's
//! own database and a private broker.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::tansu::Tansu;

use crate::harness::database_url;
use tokio::process::{Child, Command};

/// The order and event of `events/inventory-order-placed.json` (1 Laptop).
const SAMPLE_ORDER: &str = "019ab5c0-0001-7000-8000-000000000001";
const SAMPLE_EVENT: &str = "019ab5c0-0001-7000-9000-0000e0000001";

/// `cargo lambda watch` compiles the function on its first invoke, on a shared machine.
const FIRST_INVOKE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cargo-lambda that `scripts/install-lint-tools` installs, or one on `PATH`.
fn cargo_lambda() -> PathBuf {
    let tools = std::env::var_os("TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools"));
    let installed = tools.join("venv-lint/bin/cargo-lambda");
    if installed.is_file() {
        return installed;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("cargo-lambda"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "cargo-lambda is not installed (looked for {} and on PATH): run scripts/install-lint-tools",
                installed.display()
            )
        })
}

/// `cargo lambda watch` in a process group of its own, stopped on drop as a developer stops it.
struct Watch {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Watch {
    async fn start(database_url: &str, broker: &Tansu) -> Self {
        let port = testkit::free_port();
        let log = std::env::temp_dir().join(format!("cargo-lambda-watch-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(cargo_lambda())
            .args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .arg("--ignore-changes")
            .current_dir(workspace_root())
            .env("DATABASE_URL", database_url)
            .env("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap())
            .env("KAFKA_SECURITY", "plaintext")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start cargo-lambda ({err}): run scripts/install-lint-tools")
            });
        testkit::wait_for_port(port, "cargo lambda watch", Duration::from_secs(60)).await;
        Self { child, port, log }
    }

    /// `cargo lambda invoke <function> --data-file <sample>`: the function's answer, or a panic
    /// with cargo-lambda's output when the invocation failed.
    async fn invoke(&self, function: &str, sample: &str) -> Value {
        let invoke = Command::new(cargo_lambda())
            .args(["lambda", "invoke", function, "--data-file"])
            .arg(workspace_root().join("events").join(sample))
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &self.port.to_string()])
            .args(["--output-format", "json"])
            .current_dir(workspace_root())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(FIRST_INVOKE_TIMEOUT, invoke)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "cargo lambda invoke {function} did not answer within {:?}; see {}",
                    FIRST_INVOKE_TIMEOUT,
                    self.log.display()
                )
            })
            .expect("cargo-lambda runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "cargo lambda invoke {function} failed ({}): {stdout}{}\n(see {})",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.log.display()
        );
        serde_json::from_str(&stdout)
            .unwrap_or_else(|err| panic!("the answer is not JSON ({err}): {stdout}"))
    }
}

impl Drop for Watch {
    /// Ctrl-C, on which cargo-lambda stops the function processes it started (each in a
    /// process group of its own); SIGKILL to its group if it has not exited within 10 s.
    fn drop(&mut self) {
        let Some(pid) = self.child.id() else { return };
        let group = Pid::from_raw(pid as i32);
        let _ = killpg(group, Signal::SIGINT);
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = killpg(group, Signal::SIGKILL);
    }
}

async fn order_status(pool: &PgPool, id: &str) -> String {
    sqlx::query_scalar!("SELECT status FROM orders WHERE id::text = $1", id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn stock(pool: &PgPool, product: &str) -> i32 {
    testkit::orders::stock_level(pool, product).await.unwrap()
}

async fn apply(pool: &PgPool, file: &str) {
    let sql = std::fs::read_to_string(workspace_root().join(file)).unwrap();
    sqlx::raw_sql(&sql)
        .execute(pool)
        .await
        .unwrap_or_else(|err| panic!("{file}: {err}"));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn invoking_inventory_with_its_sample_under_cargo_lambda_watch_confirms_the_order(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    testkit::init_tracing();
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    apply(&pool, "seed/stock.sql").await;
    apply(&pool, "events/inventory-orders.sql").await;
    let laptops = stock(&pool, "Laptop").await;
    let broker = Tansu::start().await;
    let watch = Watch::start(&database_url(&options), &broker).await;

    let answer = watch
        .invoke("inventory", "inventory-order-placed.json")
        .await;

    assert_eq!(answer["confirmed"], 1, "{answer}");
    assert_eq!(order_status(&pool, SAMPLE_ORDER).await, "CONFIRMED");
    assert_eq!(stock(&pool, "Laptop").await, laptops - 1);
    let processed = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM processed_events
                          WHERE consumer = 'inventory' AND event_id::text = $1) AS "exists!""#,
        SAMPLE_EVENT,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(processed, "the sample's event is recorded as processed");
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn invoking_order_api_under_cargo_lambda_watch_answers_201_and_publishes_after_the_answer(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    testkit::init_tracing();
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let broker = Tansu::start().await;
    let watch = Watch::start(&database_url(&options), &broker).await;

    let answer = watch
        .invoke("order-api", "order-api-place-order.json")
        .await;

    assert_eq!(answer["statusCode"], 201, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["message"], "Order placed successfully!");
    let id = body["orderId"].as_str().unwrap().to_owned();
    assert_eq!(order_status(&pool, &id).await, "PLACED");
    // The event goes out after the answer, while the extension keeps the instance awake.
    let records = testkit::kafka::read_records(
        &broker.bootstrap(),
        shared::events::topics::ORDER_PLACED,
        |record| record.json()["subject"] == id.as_str(),
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(records.len(), 1, "one order.placed event for {id}");
    testkit::eventually(
        "the published outbox row deleted",
        Duration::from_secs(10),
        || async {
            let left = sqlx::query_scalar!(
                r#"SELECT count(*) AS "count!" FROM outbox WHERE payload->>'subject' = $1"#,
                &id,
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if left == 0 {
                Ok(())
            } else {
                Err("still in the outbox")
            }
        },
    )
    .await;
    let log = std::fs::read_to_string(&watch.log).unwrap();
    assert!(
        log.contains("events are published after each answer")
            && !log.contains("no Lambda Extensions API"),
        "the flush extension registered as on Lambda:\n{log}"
    );
}
