//! Wires the production handlers into one process: the order API on a local listener, one
//! MSK trigger emulator per trigger declared in `template.yaml`, and the outbox relay on a
//! timer, all stopped together by one cancellation token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_lambda_events::event::kafka::KafkaEvent;
use inventory::{Inventory, InventoryConfig};
use notification::{NotificationConfig, Notifier};
use order_api::{AppState, OrderApiConfig};
use outbox_relay::RelayConfig;
use serde::Deserialize;
use shared::config::{ConfigError, Secrets, from_env};
use shared::kafka::KafkaPublisher;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::template::{self, Triggers};
use crate::trigger;

/// A production handler, as the trigger emulators call it.
type Handler = Arc<
    dyn Fn(KafkaEvent) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync,
>;

/// Settings of the local runtime itself; the functions read their own as in Lambda.
pub struct LocalConfig {
    pub api_addr: SocketAddr,
    pub template: PathBuf,
    /// Overrides the relay schedule of the template (tests do not wait a minute).
    pub relay_interval: Option<Duration>,
    /// Overrides every trigger's batching window (the latency benchmark runs with 0).
    pub batching_window: Option<Duration>,
}

#[derive(Deserialize)]
struct RawLocalConfig {
    order_api_addr: Option<String>,
    template_path: Option<PathBuf>,
    local_relay_interval_secs: Option<u64>,
    local_batching_window_ms: Option<u64>,
}

impl LocalConfig {
    pub const DEFAULT_API_ADDR: &str = "127.0.0.1:3000";

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
        })
    }
}

/// Runs the whole system until `shutdown` is cancelled; batches in flight finish first.
pub async fn run(config: LocalConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let triggers = template::read(&config.template).with_context(|| {
        format!(
            "could not read the triggers from {}",
            config.template.display()
        )
    })?;
    let api_config = OrderApiConfig::from_env()?;
    let state = AppState::from_config(&api_config).await?;
    shared::db::MIGRATOR.run(state.pool()).await.context(
        "could not apply the database migrations (is PostgreSQL running? try scripts/services up)",
    )?;

    let secrets = Arc::new(Secrets::new());
    let inventory =
        Arc::new(Inventory::from_config(&InventoryConfig::from_env()?, &secrets).await?);
    let notifier =
        Arc::new(Notifier::from_config(&NotificationConfig::from_env()?, secrets.clone()).await?);
    let relay = RelayConfig::from_env()?;
    let relay_pool = shared::db::pool(&relay.database, &secrets, 2).await?;
    let relay_publisher = KafkaPublisher::new(&relay.kafka, &secrets).await?;
    let kafka = shared::kafka::client_config(&relay.kafka, &secrets).await?;

    let mut tasks = JoinSet::new();
    let listener = tokio::net::TcpListener::bind(config.api_addr)
        .await
        .with_context(|| {
            format!(
                "could not listen on {} (is another instance running?)",
                config.api_addr
            )
        })?;
    tasks.spawn({
        let (app, shutdown, outbox) = (
            order_api::app(state.clone()),
            shutdown.clone(),
            state.outbox().clone(),
        );
        async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
                .context("the order API failed");
            // Events of the last answered orders go out before the process exits.
            outbox.flush().await;
            served
        }
    });

    let Triggers {
        msk,
        relay_schedule,
    } = triggers;
    for declared in msk {
        let mut spec = declared.spec;
        if let Some(window) = config.batching_window {
            spec.batching_window = window;
        }
        let arn = format!(
            "arn:aws:kafka:local:000000000000:cluster/local/{}",
            spec.consumer_group
        );
        let handler: Handler = match declared.binary.as_str() {
            "inventory" => {
                let inventory = inventory.clone();
                Arc::new(move |event| {
                    let inventory = inventory.clone();
                    Box::pin(async move {
                        inventory
                            .handle(event)
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    })
                })
            }
            "notification" => {
                let notifier = notifier.clone();
                Arc::new(move |event| {
                    let notifier = notifier.clone();
                    Box::pin(async move {
                        notifier
                            .handle(event)
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    })
                })
            }
            other => bail!(
                "template.yaml declares an MSK trigger for `{other}`, which the local runtime cannot run"
            ),
        };
        tasks.spawn(trigger::run(
            spec,
            kafka.clone(),
            arn,
            move |event| handler(event),
            shutdown.clone(),
        ));
    }

    let interval = config.relay_interval.unwrap_or(relay_schedule);
    tasks.spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    _ = ticks.tick() => {
                        // Failures are logged by `run_once`; the next tick tries again.
                        let _ = outbox_relay::run_once(&relay_pool, &relay_publisher, relay.limits).await;
                    }
                }
            }
        }
    });

    print_banner(config.api_addr);
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
    state.publisher().flush(Duration::from_secs(5));
    outcome
}

fn print_banner(addr: SocketAddr) {
    println!(
        r#"
Order system running locally.
  API          http://{addr}/api/orders   (OpenAPI: http://{addr}/api/openapi.json)
  Mails        http://127.0.0.1:1080      (maildev web UI; API at /api/email)
  Stop         Ctrl-C (finishes the batch in flight, commits, exits)

Try:
  curl -i -X POST http://{addr}/api/orders -H 'Content-Type: application/json' \
    -d '{{"customerName": "Jane Doe", "customerEmail": "jane@example.com", "productName": "Laptop", "quantity": 1}}'
"#
    );
}
