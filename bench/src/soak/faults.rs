//! Injecting faults into the running system: each fault starts, lasts its time, and ends,
//! leaving the system to recover by itself.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use testkit::maildev::Maildev;
use testkit::runtime::LocalRuntime;
use testkit::stripe::LocalStripe;
use testkit::tansu::Tansu;

use super::schedule::{Fault, FaultKind};

/// The `application_name` of the soak's own sessions, which a fault leaves alone.
pub const OBSERVER: &str = "soak-observer";

/// The parts of the running system a fault can reach.
pub struct System {
    pub broker: Tansu,
    pub sink: Maildev,
    pub runtime: LocalRuntime,
    /// The payment stand-in, keeping its state in memory only.
    pub stripe: LocalStripe,
    /// The soak's own pool on the run's database (`application_name` [`OBSERVER`]).
    pub observer: PgPool,
}

impl System {
    /// Starts `fault`, keeps it for its duration, and ends it.
    pub async fn inject(&mut self, fault: Fault) -> anyhow::Result<()> {
        match fault.kind {
            FaultKind::BrokerCut => {
                self.broker.disconnect().await;
                tokio::time::sleep(fault.lasts).await;
                self.broker.reconnect();
            }
            FaultKind::DatabaseConnectionsKilled => {
                let killed = self.kill_database_sessions().await?;
                println!("         {killed} database sessions terminated");
            }
            FaultKind::SmtpStopped => {
                self.sink.stop().await;
                tokio::time::sleep(fault.lasts).await;
                self.sink.start().await;
            }
            FaultKind::RuntimeKilled => {
                self.runtime.kill().await;
                tokio::time::sleep(fault.lasts.min(Duration::from_secs(3))).await;
                self.runtime.try_restart().await?;
            }
            // A freeze rather than a restart: the soak's localstripe keeps its state in
            // memory (its state file is rewritten whole on every change, too slow for
            // thousands of PaymentIntents, and a kill in the middle of that write leaves a
            // torn file), so a restart would lose every PaymentIntent, which neither real
            // Stripe nor the check of one charge per paid order can live with. A frozen
            // Stripe is also the harder outage for the payment function: its calls are
            // accepted and time out, not refused, so it cannot tell whether a charge was made
            // until it looks.
            FaultKind::PaymentStopped => {
                self.stripe.freeze();
                tokio::time::sleep(fault.lasts).await;
                self.stripe.thaw();
            }
        }
        Ok(())
    }

    /// Terminates every session of the run's database except the soak's own.
    async fn kill_database_sessions(&self) -> anyhow::Result<i64> {
        sqlx::query_scalar(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND application_name <> $1",
        )
        .bind(OBSERVER)
        .fetch_one(&self.observer)
        .await
        .context("could not terminate the database sessions")
    }
}
