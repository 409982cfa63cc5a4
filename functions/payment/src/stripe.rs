//! The few Stripe calls the function makes, over plain HTTPS (docs/payments.md): create and
//! confirm a PaymentIntent, refund one, and find what an earlier attempt already did.
//!
//! Every request carries an `Idempotency-Key` derived from the order id, so real Stripe
//! replays the first answer to a retried request. localstripe ignores the key, so the
//! function never relies on it alone: a charge is two steps, an unconfirmed PaymentIntent
//! whose id is recorded before it is confirmed, so a confirmation whose outcome is unknown
//! is settled by reading that one PaymentIntent back (see [`Stripe::retrieve`]).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use shared::domain::Money;
use shared::redact::redact_emails;
use uuid::Uuid;

/// One Stripe request may take this long, well inside the function's timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The metadata key that ties a PaymentIntent to its order (`metadata[order_id]`).
pub const ORDER_ID_METADATA: &str = "order_id";

/// The decline code recorded when the card asks for customer action (3-D Secure), which an
/// asynchronous charge cannot complete; it is Stripe's own code for that case.
pub const AUTHENTICATION_REQUIRED: &str = "authentication_required";

/// A Stripe API client: base URL and secret key.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    base: String,
    key: SecretString,
}

/// A PaymentIntent as far as the function reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
    #[serde(default)]
    pub last_payment_error: Option<ApiErrorBody>,
}

/// Stripe's `error` object. Its `message` is prose for people and may quote what the
/// request or the customer object holds (an email address, a name), so the function never
/// logs or stores it: it is not even read. `type`, `code` and `param` say what went wrong.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiErrorBody {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<PaymentIntentRef>,
}

/// The PaymentIntent an error refers to.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntentRef {
    pub id: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ApiErrorBody,
}

#[derive(Deserialize)]
struct ListPage<T> {
    data: Vec<T>,
}

/// What creating a PaymentIntent came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Created, unconfirmed: its id.
    Intent(String),
    /// Stripe refused the payment method or amount for good: the charge is declined.
    Refused(Charge),
}

/// A Refund as far as the function reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Refund {
    pub id: String,
}

/// What a charge came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    Succeeded {
        intent: String,
    },
    /// The card was refused, or asked for customer action; `code` says which.
    Declined {
        intent: Option<String>,
        code: String,
    },
}

/// A Stripe call that did not give an answer the function can act on. Its text is logged
/// and stored in `payments.last_error`, so it holds no personal data: Stripe's own prose
/// (`message`) is left out, and anything else that comes from outside has its addresses
/// masked ([`redact_emails`]).
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Unreachable, timed out, a 5xx or a 429: the same call can succeed later.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    /// The key was refused (401/403): nothing succeeds until the configuration is fixed.
    #[error("Stripe refused the API key: {0}")]
    Unauthorized(String),
    /// Stripe refused a request the function built (a bug, or an object in an unexpected
    /// state). `detail` is Stripe's error type, code and parameter, and the request id to
    /// find the full answer by in Stripe's dashboard.
    #[error("Stripe refused the request ({status}): {detail}")]
    Refused { status: u16, detail: String },
}

impl StripeError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl Stripe {
    pub fn new(base: &str, key: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("a plain HTTPS client can be built");
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
        }
    }

    /// Creates an unconfirmed PaymentIntent for `order_id`: nothing is charged until it is
    /// confirmed, so one whose answer was lost on the way back costs nothing (real Stripe
    /// replays it for the same `Idempotency-Key`; elsewhere it stays unconfirmed, unused).
    #[tracing::instrument(skip_all, fields(order_id = %order_id), err(Display))]
    pub async fn create_intent(
        &self,
        order_id: Uuid,
        money: Money,
        payment_method: &str,
    ) -> Result<Created, StripeError> {
        let form = [
            ("amount", money.amount().to_string()),
            ("currency", money.currency().to_string()),
            ("payment_method", payment_method.to_owned()),
            ("metadata[order_id]", order_id.to_string()),
        ];
        let response = self
            .post("/v1/payment_intents", &payment_key(order_id), &form)
            .await?;
        match refusal(response).await? {
            Ok(response) => read::<PaymentIntent>(response)
                .await
                .map(|intent| Created::Intent(intent.id)),
            Err(declined) => Ok(Created::Refused(declined)),
        }
    }

    /// Confirms `intent`, created for `order_id`: the charge itself.
    #[tracing::instrument(skip_all, fields(order_id = %order_id, intent), err(Display))]
    pub async fn confirm(&self, order_id: Uuid, intent: &str) -> Result<Charge, StripeError> {
        let form: [(&str, &str); 0] = [];
        let response = self
            .post(
                &format!("/v1/payment_intents/{intent}/confirm"),
                &confirm_key(order_id),
                &form,
            )
            .await?;
        match refusal(response).await? {
            Ok(response) => outcome(read(response).await?),
            Err(declined) => Ok(declined),
        }
    }

    /// The PaymentIntent `intent` as it is now: what an earlier attempt's confirmation, whose
    /// answer was lost, came to.
    #[tracing::instrument(skip_all, fields(intent), err(Display))]
    pub async fn retrieve(&self, intent: &str) -> Result<PaymentIntent, StripeError> {
        read(self.get(&format!("/v1/payment_intents/{intent}")).await?).await
    }

    /// What an intent read back by [`Self::retrieve`] came to.
    pub fn settle(intent: PaymentIntent) -> Result<Charge, StripeError> {
        outcome(intent)
    }

    /// Refunds the whole of `intent` for `order_id`.
    #[tracing::instrument(skip_all, fields(order_id = %order_id), err(Display))]
    pub async fn refund(&self, order_id: Uuid, intent: &str) -> Result<Refund, StripeError> {
        let form = [("payment_intent", intent.to_owned())];
        read(
            self.post("/v1/refunds", &refund_key(order_id), &form)
                .await?,
        )
        .await
    }

    /// A Refund an earlier attempt already made for `intent`, if any.
    pub async fn find_refund(&self, intent: &str) -> Result<Option<Refund>, StripeError> {
        let page: ListPage<Refund> = read(
            self.get(&format!("/v1/refunds?payment_intent={intent}&limit=1"))
                .await?,
        )
        .await?;
        Ok(page.data.into_iter().next())
    }

    async fn post<K: serde::Serialize, V: serde::Serialize>(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(K, V)],
    ) -> Result<reqwest::Response, StripeError> {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose_secret())
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(unavailable)
            .and_then(classify)
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, StripeError> {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose_secret())
            .send()
            .await
            .map_err(unavailable)
            .and_then(classify)
    }
}

/// The charge's `Idempotency-Key`: one per order.
pub fn payment_key(order_id: Uuid) -> String {
    format!("order-{order_id}-payment")
}

/// The confirmation's own `Idempotency-Key`.
pub fn confirm_key(order_id: Uuid) -> String {
    format!("order-{order_id}-payment-confirm")
}

/// The refund's own `Idempotency-Key`.
pub fn refund_key(order_id: Uuid) -> String {
    format!("order-{order_id}-refund")
}

/// A 4xx left after [`classify`] refuses this order's payment for good: 402 is a card error,
/// and any other (an unknown PaymentMethod is a 404, one in another currency a 400) is a
/// decline too, so that the order is rejected and its stock given back instead of retried
/// forever. Anything else goes back to the caller to read.
async fn refusal(
    response: reqwest::Response,
) -> Result<Result<reqwest::Response, Charge>, StripeError> {
    let status = response.status();
    if !status.is_client_error() {
        return Ok(Ok(response));
    }
    let body = error_body(response).await;
    let fallback = if status.as_u16() == 402 {
        "card_declined"
    } else {
        "invalid_request"
    };
    Ok(Err(Charge::Declined {
        intent: body.payment_intent.map(|intent| intent.id),
        code: body
            .decline_code
            .or(body.code)
            .unwrap_or_else(|| fallback.to_owned()),
    }))
}

fn unavailable(err: reqwest::Error) -> StripeError {
    StripeError::Unavailable(redact_emails(&err.to_string()).into_owned())
}

/// Sorts a response by status: 5xx and 429 are transient, 401/403 the key; a 402 (a card
/// error) and 2xx go back to the caller; any other 4xx is a refused request.
fn classify(response: reqwest::Response) -> Result<reqwest::Response, StripeError> {
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(StripeError::Unavailable(format!("HTTP {status}")));
    }
    if matches!(status.as_u16(), 401 | 403) {
        return Err(StripeError::Unauthorized(format!("HTTP {status}")));
    }
    Ok(response)
}

async fn error_body(response: reqwest::Response) -> ApiErrorBody {
    response
        .json::<ErrorEnvelope>()
        .await
        .map(|envelope| envelope.error)
        .unwrap_or_default()
}

async fn read<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, StripeError> {
    let status = response.status();
    if !status.is_success() {
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = error_body(response).await;
        return Err(refused(status.as_u16(), &body, request_id.as_deref()));
    }
    response.json().await.map_err(|err| {
        StripeError::Unavailable(redact_emails(&format!("unreadable answer: {err}")).into_owned())
    })
}

/// A refused request, described by Stripe's machine-readable fields only:
/// `type=invalid_request_error code=resource_missing param=payment_intent request=req_123`.
fn refused(status: u16, body: &ApiErrorBody, request_id: Option<&str>) -> StripeError {
    let fields: Vec<String> = [
        ("type", body.kind.as_deref()),
        ("code", body.code.as_deref()),
        ("decline_code", body.decline_code.as_deref()),
        ("param", body.param.as_deref()),
        ("request", request_id),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|value| format!("{name}={value}")))
    .collect();
    let detail = if fields.is_empty() {
        "no error code".to_owned()
    } else {
        fields.join(" ")
    };
    StripeError::Refused {
        status,
        detail: redact_emails(&detail).into_owned(),
    }
}

/// A PaymentIntent's status as a charge outcome. `requires_action` (3-D Secure) is a decline
/// with [`AUTHENTICATION_REQUIRED`]; `requires_payment_method` is the state a declined
/// confirmation leaves behind.
fn outcome(intent: PaymentIntent) -> Result<Charge, StripeError> {
    match intent.status.as_str() {
        "succeeded" => Ok(Charge::Succeeded { intent: intent.id }),
        "requires_action" => Ok(Charge::Declined {
            intent: Some(intent.id),
            code: AUTHENTICATION_REQUIRED.to_owned(),
        }),
        "requires_payment_method" => {
            let error = intent.last_payment_error.unwrap_or_default();
            Ok(Charge::Declined {
                intent: Some(intent.id),
                code: error
                    .decline_code
                    .or(error.code)
                    .unwrap_or_else(|| "card_declined".to_owned()),
            })
        }
        // `processing` and the like: not settled yet; ask again with the next retry.
        other => Err(StripeError::Unavailable(format!(
            "PaymentIntent {} is {other}",
            intent.id
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stripe's error object as it comes, with a message that quotes the customer.
    fn error_body() -> ApiErrorBody {
        serde_json::from_value::<ErrorEnvelope>(serde_json::json!({
            "error": {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "payment_method",
                "message": "No such PaymentMethod for customer Ada Lovelace <ada@example.com>",
                "doc_url": "https://stripe.com/docs/error-codes/resource-missing"
            }
        }))
        .unwrap()
        .error
    }

    #[test]
    fn a_refused_request_is_described_by_codes_not_by_stripe_s_message() {
        let err = refused(404, &error_body(), Some("req_123")).to_string();
        assert_eq!(
            err,
            "Stripe refused the request (404): type=invalid_request_error \
             code=resource_missing param=payment_method request=req_123"
        );
        for personal in ["Ada", "Lovelace", "ada@example.com"] {
            assert!(!err.contains(personal), "{personal} in {err}");
        }
    }

    #[test]
    fn a_refused_request_without_codes_still_says_so() {
        let err = refused(400, &ApiErrorBody::default(), None).to_string();
        assert_eq!(err, "Stripe refused the request (400): no error code");
    }

    #[test]
    fn addresses_in_codes_are_masked_all_the_same() {
        let body = ApiErrorBody {
            param: Some("ada@example.com".to_owned()),
            ..ApiErrorBody::default()
        };
        let err = refused(400, &body, None).to_string();
        // `=` may be part of a local part, so `param=` goes with it.
        assert!(err.ends_with("(400): p***@example.com"), "{err}");
        assert!(!err.contains("ada@"), "{err}");
    }
}
