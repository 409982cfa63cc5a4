//! Wires the production handlers into one process: db-migrate's provisioning (migrations and
//! topics) at start, the order API on a local listener, one MSK trigger emulator per trigger
//! declared in `template.yaml`, and the outbox relay on a timer, all stopped together by one
//! cancellation token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use db_migrate::MigrateConfig;
use operator::consumer;
use order_api::{AppState, OrderApiConfig};
use outbox_relay::{Relay, RelayConfig};
use rdkafka::ClientConfig;
use serde::Deserialize;
use shared::config::{ConfigError, Secrets, from_env};
use shared::consumer::{Invocation, MskFunction};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::template::{self, DeclaredTrigger, Triggers};
use crate::trigger;

/// Settings of the local runtime itself; the functions read their own as in Lambda.
pub struct LocalConfig {
    pub api_addr: SocketAddr,
    pub template: PathBuf,
    /// Overrides the relay schedule of the template (tests do not wait a minute).
    pub relay_interval: Option<Duration>,
    /// Overrides every trigger's batching window (the latency benchmark runs with 0).
    pub batching_window: Option<Duration>,
    /// Where the metrics are served in Prometheus text format.
    pub metrics_addr: SocketAddr,
}

#[derive(Deserialize)]
struct RawLocalConfig {
    order_api_addr: Option<String>,
    template_path: Option<PathBuf>,
    local_relay_interval_secs: Option<u64>,
    local_batching_window_ms: Option<u64>,
    local_metrics_addr: Option<String>,
}

impl LocalConfig {
    pub const DEFAULT_API_ADDR: &str = "127.0.0.1:3000";
    pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

    pub fn from_env() -> Result<Self, ConfigError> {
        let raw: RawLocalConfig = from_env()?;
        let addr = raw
            .order_api_addr
            .unwrap_or_else(|| Self::DEFAULT_API_ADDR.to_owned());
        Ok(Self {
            api_addr: addr.parse().map_err(|_| {
                ConfigError::new(
                    "ORDER_API_ADDR",
                    format!(
                        "{addr:?} is not an address such as {}",
                        Self::DEFAULT_API_ADDR
                    ),
                )
            })?,
            template: raw
                .template_path
                .unwrap_or_else(|| PathBuf::from("template.yaml")),
            relay_interval: raw.local_relay_interval_secs.map(Duration::from_secs),
            batching_window: raw.local_batching_window_ms.map(Duration::from_millis),
            metrics_addr: parse_addr(
                "LOCAL_METRICS_ADDR",
                raw.local_metrics_addr,
                Self::DEFAULT_METRICS_ADDR,
            )?,
        })
    }
}

/// `raw` (else `default`) as a socket address, or an error naming `variable`.
fn parse_addr(
    variable: &str,
    raw: Option<String>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let addr = raw.unwrap_or_else(|| default.to_owned());
    addr.parse().map_err(|_| {
        ConfigError::new(
            variable,
            format!("{addr:?} is not an address such as {default}"),
        )
    })
}

/// Does what db-migrate does on every deploy: applies the migrations and creates the Kafka
/// topics that are missing. The runtime does it at start; `local-runtime provision` does
/// only this, for scripts that need the schema and the topics before anything runs.
pub async fn provision() -> anyhow::Result<()> {
    let deps = db_migrate::Deps::from_config(MigrateConfig::from_env()?).await?;
    let done = db_migrate::provision::provision(&deps).await.context(
        "could not provision the database and the topics (is everything up? try scripts/services up)",
    )?;
    tracing::info!(
        schema_version = done.schema_version,
        topics_created = ?done.topics_created,
        "database migrated and topics present"
    );
    Ok(())
}

/// Every consumer function this runtime can run, each knowing its binary's name; the
/// triggers `template.yaml` declares pick theirs by that name.
async fn consumers(secrets: &Secrets) -> anyhow::Result<Vec<Arc<dyn MskFunction>>> {
    Ok(vec![
        consumer(inventory::CONSUMER, secrets).await?,
        consumer(notification::CONSUMER, secrets).await?,
        consumer(payment::CONSUMER, secrets).await?,
    ])
}

/// Runs the whole system until `shutdown` is cancelled; batches in flight finish first.
pub async fn run(config: LocalConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let triggers = template::read(&config.template).with_context(|| {
        format!(
            "could not read the triggers from {}",
            config.template.display()
        )
    })?;
    // Before anything starts: a JWT route without the local identity settings stops here.
    let gateway = crate::gateway::Gateway::from_template(&config.template)?;
    let metrics = crate::metrics::install()?;
    let metrics_listener = crate::metrics::bind(config.metrics_addr).await?;
    provision().await?;
    let secrets = Secrets::new();
    let state = AppState::with_secrets(&OrderApiConfig::from_env()?, secrets.clone()).await?;
    let consumers = consumers(&secrets).await?;
    let relay_config = RelayConfig::from_env()?;
    let relay = Relay::from_config(&relay_config, &secrets).await?;
    let kafka = shared::kafka::client_config(&relay_config.kafka, &secrets).await?;

    let mut tasks = JoinSet::new();
    spawn_api(&mut tasks, config.api_addr, &gateway, &state, &shutdown).await?;
    tasks.spawn(crate::metrics::serve(
        metrics_listener,
        metrics,
        shutdown.clone(),
    ));
    let Triggers {
        msk,
        relay_schedule,
    } = triggers;
    for declared in msk {
        spawn_trigger(
            &mut tasks,
            declared,
            config.batching_window,
            &consumers,
            &kafka,
            &shutdown,
        )?;
    }
    let interval = config.relay_interval.unwrap_or(relay_schedule);
    spawn_relay(&mut tasks, relay, interval, &shutdown);

    print_banner(config.api_addr, config.metrics_addr);
    let outcome = wait_for(tasks, &shutdown).await;
    state.publisher().flush(Duration::from_secs(5));
    outcome
}

/// The runtime's tasks, each running until shutdown or failure.
type Tasks = JoinSet<anyhow::Result<()>>;

/// Listens on `addr` and serves the order API, behind `gateway`, until `shutdown`; the events
/// of the last answered orders go out before the task ends.
async fn spawn_api(
    tasks: &mut Tasks,
    addr: SocketAddr,
    gateway: &crate::gateway::Gateway,
    state: &AppState,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr} (is another instance running?)"))?;
    tasks.spawn({
        let (app, shutdown, outbox) = (
            gateway.wrap(order_api::app(state.clone())),
            shutdown.clone(),
            state.outbox().clone(),
        );
        async move {
            // The peer address is the request context's http.sourceIp, as API Gateway's is.
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("the order API failed");
            // Events of the last answered orders go out before the process exits.
            outbox.flush().await;
            served
        }
    });
    Ok(())
}

/// Emulates one MSK trigger `template.yaml` declares (with `batching_window`, if set, in
/// place of its own), handing its batches to the consumer function it names.
fn spawn_trigger(
    tasks: &mut Tasks,
    declared: DeclaredTrigger,
    batching_window: Option<Duration>,
    consumers: &[Arc<dyn MskFunction>],
    kafka: &ClientConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut spec = declared.spec;
    if let Some(window) = batching_window {
        spec.batching_window = window;
    }
    let arn = format!(
        "arn:aws:kafka:local:000000000000:cluster/local/{}",
        spec.consumer_group
    );
    let consumer = consumers
        .iter()
        .find(|consumer| consumer.name() == declared.binary)
        .cloned()
        .with_context(|| {
            format!(
                "template.yaml declares an MSK trigger for `{}`, which is none of this runtime's consumers",
                declared.binary
            )
        })?;
    tasks.spawn(trigger::run(
        spec,
        kafka.clone(),
        arn,
        move |event| {
            let consumer = consumer.clone();
            async move {
                consumer
                    .invoke(event, Invocation::default())
                    .await
                    .map(drop)
                    .map_err(|failed| format!("{}: {}", failed.error_type, failed.error_message))
            }
        },
        shutdown.clone(),
    ));
    Ok(())
}

/// Runs the outbox relay every `interval` until `shutdown`.
fn spawn_relay(tasks: &mut Tasks, relay: Relay, interval: Duration, shutdown: &CancellationToken) {
    tasks.spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    _ = ticks.tick() => {
                        // Failures are logged by the relay; the next tick tries again.
                        let _ = relay.run().await;
                    }
                }
            }
        }
    });
}

/// Waits for every task to end; the first to fail (or panic) cancels `shutdown`, so that the
/// others stop too, and its error is the outcome.
async fn wait_for(mut tasks: Tasks, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let result = joined
            .context("a runtime task panicked")
            .and_then(|result| result);
        if let Err(err) = result {
            tracing::error!(
                error = format!("{err:#}"),
                "a runtime task failed; shutting down"
            );
            shutdown.cancel();
            outcome = outcome.and(Err(err));
        }
    }
    outcome
}

fn print_banner(addr: SocketAddr, metrics: SocketAddr) {
    println!(
        r#"
Order system running locally.
  API          http://{addr}/api/orders   (OpenAPI: http://{addr}/api/openapi.json)
  Mails        http://127.0.0.1:1080      (maildev web UI; API at /api/email)
  Metrics      http://{metrics}/metrics   (Prometheus text format)
  Prometheus   http://127.0.0.1:9090      (graphs, alerts; started by scripts/run)
  Stop         Ctrl-C (finishes the batches in flight, commits, exits)

Try, as a guest (the answer's orderToken reads the order back: -H 'Order-Token: ...'):
  curl -i -X POST http://{addr}/api/orders -H 'Content-Type: application/json' \
    -d '{{"customerName": "Jane Doe", "customerEmail": "jane@example.com", "productName": "Laptop", "quantity": 1}}'
as a signed-in demo customer (ada@example.com or grace@example.com):
  TOKEN=$(cargo run -q -p local-runtime -- token ada@example.com)
  curl http://{addr}/api/me/orders -H "Authorization: Bearer $TOKEN"
as an operator (open on 127.0.0.1):
  curl http://{addr}/api/admin/orders
"#
    );
}
