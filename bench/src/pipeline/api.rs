//! The runtime's order API over HTTP, as the benchmarks and the soak call it, with one shared
//! connection pool: placing an order as a guest or as a signed-in customer, reading and
//! cancelling it as its owner, and the operator's routes (`/api/admin/...`: stock, orders),
//! which the local gateway leaves open on 127.0.0.1 as IAM guards them in AWS.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// A client of the API at one base URL; cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

/// An order the API accepted: its id, and the token its guest reads it with (none for a
/// customer's order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub id: Uuid,
    pub token: Option<String>,
}

/// An answer: its status and its body (`Null` when it had none or it was not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Api {
    /// The API at `base` (such as `http://127.0.0.1:40123`), with a 30 s timeout per request
    /// and enough idle connections for every POST in flight.
    pub fn new(base: String) -> Self {
        Self::from_source(base, None)
    }

    /// As [`Self::new`], with every connection made from the local address `source` (such
    /// as `127.0.0.7`): the API's per-address abuse limits count each source on its own.
    pub fn from_source(base: String, source: Option<IpAddr>) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(512)
                .local_address(source)
                .build()
                .expect("a default HTTP client builds"),
            base,
        }
    }

    /// `POST /api/orders` as a guest; the new order's id, or an error unless it answered 201.
    pub async fn place(&self, body: &Value) -> anyhow::Result<Uuid> {
        Ok(self.place_as_guest(body).await?.id)
    }

    /// `POST /api/orders` as a guest; the new order's id and its `orderToken`.
    pub async fn place_as_guest(&self, body: &Value) -> anyhow::Result<Placed> {
        self.place_at("/api/orders", None, body).await
    }

    /// `POST /api/me/orders` as the customer whose ID (or access) token is `bearer`.
    pub async fn place_as_customer(&self, bearer: &str, body: &Value) -> anyhow::Result<Placed> {
        self.place_at("/api/me/orders", Some(bearer), body).await
    }

    async fn place_at(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<Placed> {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        ensure!(status == 201, "POST {path} answered {status}: {body}");
        let id = body["orderId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .context("201 without an orderId")?;
        Ok(Placed {
            id,
            token: body["orderToken"].as_str().map(str::to_owned),
        })
    }

    /// `GET /api/orders/{id}` as a guest, with its `Order-Token` if given.
    pub async fn guest_order(&self, id: Uuid, token: Option<&str>) -> anyhow::Result<Answer> {
        let mut request = self.client.get(format!("{}/api/orders/{id}", self.base));
        if let Some(token) = token {
            request = request.header("Order-Token", token);
        }
        answer(request, "GET /api/orders/{id}").await
    }

    /// `GET /api/me/orders` with the query `query` (such as `limit=50`).
    pub async fn my_orders(&self, bearer: &str, query: &str) -> anyhow::Result<Answer> {
        let request = self
            .client
            .get(format!("{}/api/me/orders?{query}", self.base))
            .bearer_auth(bearer);
        answer(request, "GET /api/me/orders").await
    }

    /// `GET /api/me/orders/{id}`.
    pub async fn my_order(&self, bearer: &str, id: Uuid) -> anyhow::Result<Answer> {
        let request = self
            .client
            .get(format!("{}/api/me/orders/{id}", self.base))
            .bearer_auth(bearer);
        answer(request, "GET /api/me/orders/{id}").await
    }

    /// `POST /api/me/orders/{id}/cancel`.
    pub async fn cancel_mine(&self, bearer: &str, id: Uuid) -> anyhow::Result<Answer> {
        let request = self
            .client
            .post(format!("{}/api/me/orders/{id}/cancel", self.base))
            .bearer_auth(bearer);
        answer(request, "POST /api/me/orders/{id}/cancel").await
    }

    /// `GET /api/admin/orders` with the query `query` (such as `customerEmail=...&limit=10`).
    pub async fn admin_orders(&self, query: &str) -> anyhow::Result<Answer> {
        let request = self
            .client
            .get(format!("{}/api/admin/orders?{query}", self.base));
        answer(request, "GET /api/admin/orders").await
    }

    /// `GET /api/admin/orders/{id}`.
    pub async fn admin_order(&self, id: Uuid) -> anyhow::Result<Answer> {
        let request = self
            .client
            .get(format!("{}/api/admin/orders/{id}", self.base));
        answer(request, "GET /api/admin/orders/{id}").await
    }

    /// `POST /api/admin/orders/{id}/cancel`.
    pub async fn admin_cancel(&self, id: Uuid) -> anyhow::Result<Answer> {
        let request = self
            .client
            .post(format!("{}/api/admin/orders/{id}/cancel", self.base));
        answer(request, "POST /api/admin/orders/{id}/cancel").await
    }

    /// `GET /api/admin/dead-letters` with the query `query`.
    pub async fn dead_letters(&self, query: &str) -> anyhow::Result<Answer> {
        let request = self
            .client
            .get(format!("{}/api/admin/dead-letters?{query}", self.base));
        answer(request, "GET /api/admin/dead-letters").await
    }

    /// `GET /api/stock/{product}` (open to everyone).
    pub async fn stock(&self, product: &str) -> anyhow::Result<Answer> {
        let request = self
            .client
            .get(format!("{}/api/stock/{product}", self.base));
        answer(request, "GET /api/stock/{productName}").await
    }

    /// `PUT /api/admin/stock/{product}`.
    pub async fn set_stock(&self, product: &str, quantity: u32) -> anyhow::Result<()> {
        self.put_stock(product, &json!({ "quantity": quantity }))
            .await
    }

    /// `PUT /api/admin/stock/{product}` with a price: `unit_amount` in the smallest unit of
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
            .put(format!("{}/api/admin/stock/{product}", self.base))
            .json(body)
            .send()
            .await
            .context("PUT /api/admin/stock")?;
        ensure!(
            response.status().is_success(),
            "PUT /api/admin/stock/{product} answered {}",
            response.status()
        );
        Ok(())
    }
}

/// Sends `request`; its status and JSON body, or an error when nothing came back.
async fn answer(request: RequestBuilder, what: &str) -> anyhow::Result<Answer> {
    let response = request.send().await.context(what.to_owned())?;
    let status = response.status();
    let body = response.json().await.unwrap_or_default();
    Ok(Answer { status, body })
}
