//! What the order routes of every audience share: the request and answer bodies, placing
//! an order (validated, counted against the abuse limits, idempotent, with its event), and
//! the guest routes themselves: place an order, and read it back with its `Order-Token`.
//! A customer's routes are in [`super::my_orders`], an operator's in [`super::admin_orders`].

use crate::idempotency::IdempotencyKey;
use crate::paging::{CursorId, PageCursor, PageLimit};
use crate::store::{
    self as repo, Order, OrderPage, OrderQuery, Owner, PlaceOrderError, Placement, Placing,
};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::domain::{
    CustomerName, EmailAddress, Invalid, Money, NewOrder, OrderStatus, PaymentMethodId,
    PaymentStatus, ProductName, Quantity, RejectionReason, new_id,
};
use shared::trace::TraceContext;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::caller::{Customer, Guest};
use crate::extract::{JsonObject, field};
use crate::handler::record_order_id;
use crate::limits::{Audience, Limits, OrderAttempt};
use crate::order_token::{self, ORDER_TOKEN_HEADER, OrderToken};
use crate::problem::{ApiError, FieldError, Problem};
use crate::state::AppState;

/// The message the original system answered with; clients may match on it.
pub const ORDER_PLACED_MESSAGE: &str = "Order placed successfully!";
/// Makes a retried POST return the first order instead of placing another.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a response that repeats an earlier one for the same `Idempotency-Key`.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The body of `POST /api/orders`. Unknown fields are ignored, so the original system's
/// body works unchanged. Values are read leniently and checked all together.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "customerName": "Ada Lovelace",
    "customerEmail": "ada@example.com",
    "productName": "Laptop",
    "quantity": 1,
    "paymentMethod": "pm_card_visa"
}))]
pub struct PlaceOrderRequest {
    #[schema(value_type = CustomerName, required = true)]
    pub customer_name: Option<Value>,
    /// Where order mails go; optional.
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    pub customer_email: Option<Value>,
    #[schema(value_type = ProductName, required = true)]
    pub product_name: Option<Value>,
    /// Units ordered: an integer from 1 to 10,000. A number with a zero fraction is that
    /// integer (`2.0` is 2), as JSON Schema counts it; `1.5` is refused.
    #[schema(value_type = i32, required = true, minimum = 1, maximum = 10000)]
    pub quantity: Option<Value>,
    /// Pay by card: a Stripe PaymentMethod id (`pm_...`) created with Stripe.js. The order
    /// is charged once its stock is reserved; its product must have a price (else it is
    /// rejected with `NO_PRICE`). Without it the order is confirmed once its stock is
    /// reserved and paid on invoice.
    #[schema(value_type = Option<String>, pattern = "^pm_[A-Za-z0-9_]{1,252}$", min_length = 4, max_length = 255)]
    pub payment_method: Option<Value>,
}

/// Collects field errors while parsing, so that one response lists all of them.
#[derive(Default)]
pub(crate) struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub(crate) fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|message| self.0.push(FieldError::new(field, message)))
            .ok()
    }

    /// Reads an optional query value with `parse`, recording its refusal under `field`: the
    /// list routes read every filter this way, so each refusal is worded alike.
    pub(crate) fn check_optional<T>(
        &mut self,
        field: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, Invalid>,
    ) -> Option<Option<T>> {
        self.check(field, raw.map(parse).transpose().map_err(|err| err.0))
    }

    /// A list's `limit` (the default when left out) and `cursor` query values: every
    /// newest-first list pages the same way, orders by UUID and dead letters by serial id.
    pub(crate) fn check_page<Id: CursorId>(
        &mut self,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Option<(PageLimit, Option<PageCursor<Id>>)> {
        let limit = self
            .check_optional("limit", limit, PageLimit::parse)
            .map(Option::unwrap_or_default);
        let after = self.check_optional("cursor", cursor, PageCursor::decode);
        limit.zip(after)
    }

    pub(crate) fn extend(&mut self, errors: impl IntoIterator<Item = FieldError>) {
        self.0.extend(errors);
    }

    pub(crate) fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}

impl TryFrom<&PlaceOrderRequest> for NewOrder {
    type Error = Vec<FieldError>;

    fn try_from(body: &PlaceOrderRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let customer_name = errors.check(
            "customerName",
            field::string(body.customer_name.as_ref())
                .and_then(|raw| CustomerName::parse(raw).map_err(|err| err.0)),
        );
        let customer_email = errors.check(
            "customerEmail",
            field::optional_string(body.customer_email.as_ref()).and_then(|raw| {
                raw.map(EmailAddress::parse)
                    .transpose()
                    .map_err(|err| err.0)
            }),
        );
        let product_name = errors.check(
            "productName",
            field::string(body.product_name.as_ref())
                .and_then(|raw| ProductName::parse(raw).map_err(|err| err.0)),
        );
        let quantity = errors.check(
            "quantity",
            field::integer(body.quantity.as_ref())
                .and_then(|raw| Quantity::new(raw).map_err(|err| err.0)),
        );
        let payment_method = errors.check(
            "paymentMethod",
            field::optional_string(body.payment_method.as_ref()).and_then(|raw| {
                raw.map(PaymentMethodId::parse)
                    .transpose()
                    .map_err(|err| err.0)
            }),
        );
        match (
            customer_name,
            customer_email,
            product_name,
            quantity,
            payment_method,
        ) {
            (
                Some(customer_name),
                Some(customer_email),
                Some(product_name),
                Some(quantity),
                Some(payment_method),
            ) => Ok(Self {
                customer_name,
                customer_email,
                product_name,
                quantity,
                payment_method,
            }),
            _ => Err(errors.into_vec()),
        }
    }
}

/// The answer to a placed order (the original system's shape, plus the status).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPlaced {
    #[schema(example = "Order placed successfully!")]
    pub message: String,
    pub order_id: Uuid,
    pub status: OrderStatus,
    /// A guest's order only: the token that reads this order (`GET /api/orders/{id}` with
    /// the `Order-Token` header). It is shown once: keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 43, max_length = 43)]
    pub order_token: Option<String>,
}

/// An order as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub order_id: Uuid,
    pub customer_name: String,
    pub customer_email: Option<String>,
    pub product_name: String,
    pub quantity: i32,
    pub status: OrderStatus,
    /// Set once inventory rejected the order.
    pub rejection_reason: Option<RejectionReason>,
    /// `quantity × unitAmount` in the smallest unit of `currency`, as the price was when the
    /// stock was reserved; `null` before that and for a product without a price.
    #[schema(minimum = 0)]
    pub amount: Option<i64>,
    #[schema(value_type = Option<shared::domain::Currency>)]
    pub currency: Option<String>,
    /// The card payment, for an order placed with `paymentMethod` once the payment function
    /// has taken it up; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An order's card payment as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    pub status: PaymentStatus,
    /// Stripe's decline code when the payment was declined (`authentication_required` when
    /// the card asked for 3-D Secure, which this system cannot complete). Shown to the
    /// customer who owns the order and to operators; always `null` for a guest, who
    /// cannot be told apart from someone testing stolen cards.
    pub decline_code: Option<String>,
}

impl OrderView {
    /// The order as a guest sees it: without the decline code.
    pub fn for_guest(mut self) -> Self {
        if let Some(payment) = &mut self.payment {
            payment.decline_code = None;
        }
        self
    }
}

impl From<Order> for OrderView {
    fn from(order: Order) -> Self {
        Self {
            order_id: order.id,
            customer_name: order.customer_name.to_string(),
            customer_email: order.customer_email.as_ref().map(ToString::to_string),
            product_name: order.product_name.to_string(),
            quantity: order.quantity.get(),
            status: order.status,
            rejection_reason: order.rejection_reason,
            amount: order.amount.map(Money::amount),
            currency: order.amount.map(|money| money.currency().to_string()),
            payment: order.payment_status.map(|status| PaymentView {
                status,
                decline_code: order.decline_code,
            }),
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

/// One page of orders, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPageView {
    pub items: Vec<OrderView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and position for an operator's `GET /api/admin/orders`; every value is checked,
/// all at once.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListOrdersParams {
    /// Only orders placed with this email address.
    #[param(value_type = Option<String>, format = Email)]
    pub customer_email: Option<String>,
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    pub status: Option<String>,
    /// Orders per page, 1–100.
    #[param(value_type = Option<i32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
    /// The `nextCursor` of the previous page, passed back unchanged.
    #[param(pattern = "^[0-9]{1,16}_[0-9a-f]{32}$")]
    pub cursor: Option<String>,
}

impl TryFrom<&ListOrdersParams> for OrderQuery {
    type Error = Vec<FieldError>;

    fn try_from(params: &ListOrdersParams) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let customer_email = errors.check_optional(
            "customerEmail",
            params.customer_email.as_deref(),
            EmailAddress::parse,
        );
        let status = errors.check_optional("status", params.status.as_deref(), OrderStatus::parse);
        let page = errors.check_page(params.limit.as_deref(), params.cursor.as_deref());
        match (customer_email, status, page) {
            (Some(customer_email), Some(status), Some((limit, after))) => Ok(Self {
                owner: None,
                customer_email,
                status,
                limit,
                after,
            }),
            _ => Err(errors.into_vec()),
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, String> {
    headers
        .get(IDEMPOTENCY_KEY)
        .map(|value| {
            let raw = value
                .to_str()
                .map_err(|_| "must be visible ASCII characters".to_owned())?;
            IdempotencyKey::parse(raw).map_err(|err| err.0)
        })
        .transpose()
}

/// Who places an order.
pub(crate) enum Placer<'a> {
    Guest(&'a Guest),
    Customer(&'a Customer),
}

/// What placing an order takes from the request, whoever places it: the caller's trace, the
/// headers (for the `Idempotency-Key`) and the body. Both place routes take it whole, after
/// their caller, so that they read the request alike and refuse it alike.
pub struct OrderRequest {
    state: AppState,
    trace: TraceContext,
    headers: HeaderMap,
    body: PlaceOrderRequest,
}

impl FromRequest<AppState> for OrderRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Extension(trace) = Extension::<TraceContext>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let JsonObject(body) = JsonObject::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            state: state.clone(),
            trace,
            headers,
            body,
        })
    }
}

impl OrderRequest {
    /// Places the order for `placer`: validates the body (every bad field listed at once),
    /// counts it against the abuse limits, and commits it with its `order.placed` event,
    /// which is published right after the answer. A broker that is down does not fail the
    /// order; the outbox relay publishes the event later. `location` is where the new order
    /// is read.
    pub(crate) async fn place(
        self,
        placer: Placer<'_>,
        location: &str,
    ) -> Result<Response, ApiError> {
        let Self {
            state,
            trace,
            headers,
            body,
        } = self;
        let limits = state.limits();
        let (mut order, key) = validate(limits, &headers, &body, &placer)?;
        let token = matches!(placer, Placer::Guest(_)).then(OrderToken::generate);
        let token_hash = token.as_ref().map(OrderToken::hash);
        let (owner, audience, source_ip) = match (&placer, &token_hash) {
            (Placer::Customer(customer), _) => {
                // Mail goes to the account's address, never to one the body names.
                order.customer_email = customer.email.clone();
                (
                    Owner::Customer(&customer.sub),
                    Audience::Customer,
                    customer.source_ip,
                )
            }
            (Placer::Guest(guest), Some(token_hash)) => (
                Owner::Guest { token_hash },
                Audience::Guest,
                guest.source_ip,
            ),
            (Placer::Guest(_), None) => unreachable!("a guest's order always has a token"),
        };
        let counters = limits.counters_for(&OrderAttempt {
            audience,
            source_ip,
            email: order.customer_email.as_ref(),
            by_card: order.payment_method.is_some(),
        });
        let window = limits.window_at(std::time::SystemTime::now());

        let id = new_id();
        record_order_id(id);
        let placing = Placing {
            id,
            order: &order,
            owner,
            idempotency_key: key.as_ref(),
            counters: &counters,
            window,
            trace,
        };
        let placement = match repo::place_order(state.pool(), &placing).await {
            Ok(placement) => placement,
            Err(err) => return Err(refused(&state, err, window.retry_after_secs).await),
        };
        let replayed = matches!(placement, Placement::Replayed(_));
        let placed = match placement {
            Placement::Created {
                order: placed,
                outbox: rows,
            } => {
                tracing::info!(product = %order.product_name, quantity = order.quantity.get(), "order placed");
                shared::metrics::order_placed();
                state.outbox().hand_over(rows).await;
                placed
            }
            Placement::Replayed(first) => {
                record_order_id(first.id);
                tracing::info!("repeated Idempotency-Key: returning the first order");
                first
            }
        };
        Ok(placed_response(&placed, replayed, token, location))
    }
}

/// What a placement the store refused answers: a store failure as the state maps it (a
/// database that is down is a 503 with `Retry-After`), an abuse limit reached as a 429 that
/// says when the window turns, anything else as its own error.
async fn refused(state: &AppState, err: PlaceOrderError, retry_after_secs: u64) -> ApiError {
    match err {
        PlaceOrderError::Store(err) => state.fail(err).await,
        PlaceOrderError::Limited(counter) => {
            tracing::info!(counter, "abuse limit reached: order refused");
            ApiError::RateLimited {
                counter,
                retry_after_secs,
            }
        }
        err => err.into(),
    }
}

/// The body and the `Idempotency-Key` of an order to place, every bad field listed at once:
/// the body's own rules, and those of who places it (a guest's quantity ceiling; a customer
/// may name no other address than the account's).
fn validate(
    limits: &Limits,
    headers: &HeaderMap,
    body: &PlaceOrderRequest,
    placer: &Placer<'_>,
) -> Result<(NewOrder, Option<IdempotencyKey>), ApiError> {
    let mut errors = Vec::new();
    let order = NewOrder::try_from(body)
        .map_err(|found| errors.extend(found))
        .ok();
    let key = idempotency_key(headers)
        .map_err(|message| errors.push(FieldError::new("Idempotency-Key", message)))
        .ok()
        .flatten();
    match (&placer, &order) {
        (Placer::Guest(_), Some(order))
            if i64::from(order.quantity.get()) > limits.guest_max_quantity =>
        {
            errors.push(FieldError::new(
                "quantity",
                format!(
                    "guests may order at most {} units at once; sign in to order more",
                    limits.guest_max_quantity
                ),
            ));
        }
        (Placer::Customer(customer), Some(order)) => {
            let named = order.customer_email.as_ref().map(EmailAddress::as_str);
            let own = customer.email.as_ref().map(EmailAddress::as_str);
            if named.is_some_and(|named| !own.is_some_and(|own| own.eq_ignore_ascii_case(named))) {
                errors.push(FieldError::new(
                    "customerEmail",
                    "must be the address of the signed-in account, or left out (mails go to that address)",
                ));
            }
        }
        _ => {}
    }
    match order.filter(|_| errors.is_empty()) {
        Some(order) => Ok((order, key)),
        None => Err(ApiError::Validation(errors)),
    }
}

/// `201` with the order's location, its id and status, and a guest's order token;
/// `Idempotent-Replayed: true` when it is the first order of a repeated key.
fn placed_response(
    placed: &Order,
    replayed: bool,
    token: Option<OrderToken>,
    location: &str,
) -> Response {
    let location = HeaderValue::try_from(format!("{location}/{}", placed.id))
        .expect("a UUID path is a valid header value");
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(OrderPlaced {
            message: ORDER_PLACED_MESSAGE.to_owned(),
            order_id: placed.id,
            status: placed.status,
            order_token: token.map(|token| token.as_str().to_owned()),
        }),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// Places an order as a guest, with the original system's body and answer. The answer adds
/// the `orderToken` that reads the order back. Guests are held to the abuse limits and to
/// a smaller quantity than signed-in customers.
#[utoipa::path(
    post,
    path = "/api/orders",
    tag = "orders",
    request_body(content = PlaceOrderRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255,
         description = "1–255 characters, best a random value. Repeating a request with the same key and body returns the first order and creates nothing (a guest's repeat gets a new orderToken, which replaces the first); the same key with another body is 422."),
        ("traceparent" = Option<String>, Header, nullable = false,
         description = "W3C Trace Context. The order's events and log lines join this trace; a missing or malformed one starts a new trace, never an error."),
    ),
    responses(
        (status = 201, description = "Order placed (or replayed for a repeated Idempotency-Key)", body = OrderPlaced,
         headers(
            ("Location" = String, description = "/api/orders/{orderId}"),
            ("Idempotent-Replayed" = String, description = "`true` when this repeats the first answer for the Idempotency-Key"),
         )),
        (status = 400, description = "Malformed JSON or not a JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, all listed (`urn:problem:order-api:validation-failed`), a guest's quantity over the guest limit among them; or an Idempotency-Key first used with another request (`urn:problem:order-api:idempotency-key-reused`), as the IETF Idempotency-Key draft asks: a request that the schema allows is still refused when its key was used for a different order, and nothing is written", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many orders from this client address or for this email address in the current window (`urn:problem:order-api:rate-limited`); nothing was written", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u32, description = "Seconds until the window ends"))),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 500, description = "Unexpected failure", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn place_order(guest: Guest, request: OrderRequest) -> Result<Response, ApiError> {
    request.place(Placer::Guest(&guest), "/api/orders").await
}

/// A guest's order, read with the `Order-Token` its placing answered with. Someone else's
/// order, a wrong or missing token and an unknown id all answer the same `404`.
#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    tag = "orders",
    params(
        ("id" = Uuid, Path, description = "The order id returned when it was placed"),
        ("Order-Token" = Option<String>, Header, nullable = false,
         description = "The orderToken returned when the order was placed. Without it, or with another, the answer is the same 404 as for an unknown id."),
    ),
    responses(
        (status = 200, description = "The order (a declined payment without its decline code)", body = OrderView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order for this token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_order(
    _: Guest,
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderView>, ApiError> {
    let id = order_id_from(path)?;
    let presented = headers
        .get(ORDER_TOKEN_HEADER)
        .and_then(|value| value.to_str().ok());
    order_for(&state, id, |order| {
        order_token::matches(presented, order.order_token_hash.as_deref())
    })
    .await
    .map(|order| Json(OrderView::from(order).for_guest()))
}

/// Order `id` when `visible` says the caller may see it. An unknown order and one that
/// is not the caller's answer the same `404`, so that no caller learns of another's orders.
pub(crate) async fn order_for(
    state: &AppState,
    id: Uuid,
    visible: impl FnOnce(&Order) -> bool,
) -> Result<Order, ApiError> {
    state
        .check(repo::get_order(state.pool(), id).await)
        .await?
        .filter(visible)
        .ok_or(ApiError::OrderNotFound(id))
}

/// One page of the orders `query` selects, as every audience's list route answers it.
pub(crate) async fn order_page(
    state: &AppState,
    query: &OrderQuery,
) -> Result<Json<OrderPageView>, ApiError> {
    let page = state
        .check(repo::list_orders(state.pool(), query).await)
        .await?;
    Ok(Json(page.into()))
}

/// The order id in the path, recorded on the request's span; `400` when it is not a UUID.
pub(crate) fn order_id_from(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(raw) = path.map_err(|_| ApiError::bad_request("The order id could not be read"))?;
    let id = Uuid::parse_str(&raw).map_err(|_| ApiError::BadRequest {
        detail: "The order id must be a UUID".to_owned(),
        errors: vec![FieldError::new("id", "must be a UUID")],
    })?;
    record_order_id(id);
    Ok(id)
}

/// Reads a query string into `T`, `400` when it cannot be read at all.
pub(crate) fn query_params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(params)| params)
        .map_err(|_| ApiError::bad_request("The query string could not be read"))
}

impl From<OrderPage> for OrderPageView {
    fn from(page: OrderPage) -> Self {
        Self {
            items: page.items.into_iter().map(OrderView::from).collect(),
            next_cursor: page.next.map(|cursor| cursor.encode()),
        }
    }
}
