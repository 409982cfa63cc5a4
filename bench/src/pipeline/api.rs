//! The runtime's order API over HTTP, as the benchmark calls it: placing an order and setting
//! a product's stock, with one shared connection pool.

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use uuid::Uuid;

/// A client of the API at one base URL; cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// The API at `base` (such as `http://127.0.0.1:40123`), with a 30 s timeout per request
    /// and enough idle connections for every POST in flight.
    pub fn new(base: String) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(512)
                .build()
                .expect("a default HTTP client builds"),
            base,
        }
    }

    /// `POST /api/orders`; the new order's id, or an error unless it answered 201.
    pub async fn place(&self, body: &Value) -> anyhow::Result<Uuid> {
        let response = self
            .client
            .post(format!("{}/api/orders", self.base))
            .json(body)
            .send()
            .await
            .context("POST /api/orders")?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        ensure!(status == 201, "POST /api/orders answered {status}: {body}");
        body["orderId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .context("201 without an orderId")
    }

    /// `PUT /api/stock/{product}`.
    pub async fn set_stock(&self, product: &str, quantity: u32) -> anyhow::Result<()> {
        self.put_stock(product, &json!({ "quantity": quantity }))
            .await
    }

    /// `PUT /api/stock/{product}` with a price: `unit_amount` in the smallest unit of
    /// `currency`.
    pub async fn set_priced_stock(
        &self,
        product: &str,
        quantity: u32,
        unit_amount: u64,
        currency: &str,
    ) -> anyhow::Result<()> {
        let body = json!({ "quantity": quantity, "unitAmount": unit_amount, "currency": currency });
        self.put_stock(product, &body).await
    }

    async fn put_stock(&self, product: &str, body: &Value) -> anyhow::Result<()> {
        let response = self
            .client
            .put(format!("{}/api/stock/{product}", self.base))
            .json(body)
            .send()
            .await
            .context("PUT /api/stock")?;
        ensure!(
            response.status().is_success(),
            "PUT /api/stock/{product} answered {}",
            response.status()
        );
        Ok(())
    }
}
