//! localstripe, the local stand-in for Stripe's API (docs/payments.md): the shared instance
//! and private ones a test may stop and restart, with what a test reads back from it.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::process::Service;

/// The key every local run and test uses; localstripe accepts any `sk_test_` key.
pub const API_KEY: &str = "sk_test_local";

/// A localstripe instance: the shared one, or a private one this handle started.
pub struct LocalStripe {
    base: String,
    client: reqwest::Client,
    private: Option<Private>,
}

struct Private {
    /// Its log, and the file its state is kept in across restarts (when it keeps one).
    dir: PathBuf,
    service: Service,
}

/// The Python that runs localstripe: `LOCALSTRIPE_PYTHON`, or the venv `scripts/services`
/// installs.
pub fn python() -> PathBuf {
    std::env::var_os("LOCALSTRIPE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/localstripe-venv/bin/python"))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl LocalStripe {
    /// The instance the local services run (`STRIPE_API_BASE`).
    pub fn shared() -> Self {
        Self {
            base: crate::env("STRIPE_API_BASE", "http://127.0.0.1:8420"),
            client: reqwest::Client::new(),
            private: None,
        }
    }

    /// A private instance on a free port, with a state file of its own.
    pub async fn spawn() -> Self {
        Self::spawn_keeping(true).await
    }

    /// A private instance on a free port that keeps its state in memory only: a restart
    /// loses every object, so an outage of it is [`Self::freeze`] rather than
    /// [`Self::stop`]. localstripe rewrites its whole state file on every change, so one that
    /// must hold thousands of objects (a soak) is far faster without it.
    pub async fn spawn_in_memory() -> Self {
        Self::spawn_keeping(false).await
    }

    async fn spawn_keeping(state: bool) -> Self {
        let dir =
            std::env::temp_dir().join(format!("testkit-localstripe-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temporary folder can be created");
        let port = crate::free_port();
        let mut service =
            Service::new("private localstripe", python(), dir.join("localstripe.log"))
                .arg(repo_root().join("scripts/localstripe-serve.py"))
                .args(["--port", &port.to_string()]);
        if state {
            service = service.arg("--state").arg(dir.join("state.pickle"));
        }
        let mut stripe = Self {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            private: Some(Private { dir, service }),
        };
        stripe.start().await;
        stripe
    }

    /// The base URL to give a client as `STRIPE_API_BASE`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Starts a private instance (again). What it held survives a restart only when it keeps
    /// a state file ([`Self::spawn`]).
    pub async fn start(&mut self) {
        let service = &mut self
            .private
            .as_mut()
            .expect("only a private localstripe can be started")
            .service;
        if service.is_running() {
            return;
        }
        service.spawn().unwrap_or_else(|err| panic!("{err:#}"));
        let (client, base) = (self.client.clone(), self.base.clone());
        service
            .wait_for("answering", Duration::from_secs(30), || {
                list(&client, &base, "payment_intents")
            })
            .await;
    }

    /// Stops a private instance, as a Stripe outage would.
    pub async fn stop(&mut self) {
        self.private
            .as_mut()
            .expect("only a private localstripe can be stopped")
            .service
            .stop()
            .await;
    }

    /// Freezes a private instance (SIGSTOP): it keeps its state, and its port still accepts
    /// connections, but nothing is answered until [`Self::thaw`], as a Stripe that hangs.
    pub fn freeze(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Lets a frozen instance run on (SIGCONT); it then answers what waited.
    pub fn thaw(&self) {
        self.signal(Signal::SIGCONT);
    }

    fn signal(&self, signal: Signal) {
        self.private
            .as_ref()
            .expect("only a private localstripe can be signalled")
            .service
            .signal(signal);
    }

    /// Every PaymentIntent, as Stripe's API shows them (localstripe lists the oldest first).
    pub async fn payment_intents(&self) -> Vec<Value> {
        self.list("payment_intents")
            .await
            .expect("localstripe lists PaymentIntents")
    }

    /// Every Refund.
    pub async fn refunds(&self) -> Vec<Value> {
        self.list("refunds")
            .await
            .expect("localstripe lists Refunds")
    }

    async fn list(&self, resource: &str) -> Result<Vec<Value>, String> {
        list(&self.client, &self.base, resource).await
    }
}

/// Every object of `resource` on the localstripe at `base`, page by page (100 a page, each
/// after the last id of the one before, while Stripe says `has_more`).
async fn list(client: &reqwest::Client, base: &str, resource: &str) -> Result<Vec<Value>, String> {
    let mut objects: Vec<Value> = Vec::new();
    loop {
        let mut query = vec![("limit", "100".to_owned())];
        if let Some(last) = objects.last() {
            let id = last["id"]
                .as_str()
                .ok_or_else(|| format!("a listed {resource} object has no id"))?;
            query.push(("starting_after", id.to_owned()));
        }
        let page: Value = client
            .get(format!("{base}/v1/{resource}"))
            .query(&query)
            .basic_auth(API_KEY, Some(""))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| err.to_string())?
            .json()
            .await
            .map_err(|err| err.to_string())?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        let more = page["has_more"] == true;
        if more && data.is_empty() {
            return Err(format!("{resource}: has_more on an empty page"));
        }
        objects.extend(data);
        if !more {
            return Ok(objects);
        }
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        if let Some(private) = self.private.as_mut() {
            private.service.kill_now();
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&private.dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    async fn pay(stripe: &LocalStripe, payment_method: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/payment_intents", stripe.base_url()))
            .basic_auth(API_KEY, Some(""))
            .form(&[
                ("amount", "2599"),
                ("currency", "eur"),
                ("payment_method", payment_method),
                ("confirm", "true"),
            ])
            .send()
            .await
            .expect("localstripe answers")
    }

    #[tokio::test]
    async fn a_private_localstripe_keeps_its_payments_across_a_restart_and_declines_test_cards() {
        let mut stripe = LocalStripe::spawn().await;
        assert!(stripe.payment_intents().await.is_empty());

        let paid = pay(&stripe, "pm_card_visa").await;
        assert_eq!(paid.status(), 200);
        let declined = pay(&stripe, "pm_card_chargeCustomerFail").await;
        assert_eq!(declined.status(), 402);
        let error: Value = declined.json().await.unwrap();
        assert_eq!(error["error"]["code"], "card_declined");

        stripe.stop().await;
        assert!(stripe.list("payment_intents").await.is_err(), "stopped");
        stripe.start().await;
        let intents = stripe.payment_intents().await;
        let mut statuses: Vec<_> = intents.iter().map(|pi| pi["status"].to_string()).collect();
        statuses.sort();
        assert_eq!(statuses, [r#""requires_payment_method""#, r#""succeeded""#]);
        assert!(intents.iter().all(|pi| pi["amount"] == 2599));
    }

    #[tokio::test]
    async fn listing_pages_past_a_hundred_objects_and_a_frozen_localstripe_answers_once_thawed() {
        let stripe = LocalStripe::spawn_in_memory().await;
        let mut created = HashSet::new();
        for _ in 0..230 {
            let intent: Value = pay(&stripe, "pm_card_visa").await.json().await.unwrap();
            created.insert(intent["id"].as_str().unwrap().to_owned());
        }
        let listed: Vec<String> = stripe
            .payment_intents()
            .await
            .iter()
            .map(|pi| pi["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed.len(), 230, "each listed once");
        assert_eq!(listed.into_iter().collect::<HashSet<_>>(), created);

        stripe.freeze();
        let frozen = reqwest::Client::new()
            .get(format!("{}/v1/payment_intents?limit=1", stripe.base_url()))
            .basic_auth(API_KEY, Some(""))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .expect_err("a frozen localstripe answers nothing");
        assert!(frozen.is_timeout(), "connected, but no answer: {frozen}");
        stripe.thaw();
        assert_eq!(stripe.payment_intents().await.len(), 230, "state kept");
    }
}
