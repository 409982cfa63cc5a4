//! The order API (docs/api.md): one axum router, served by Lambda, by the local runtime and by
//! the tests alike.
//!
//! - [`config`]: typed settings read once at start-up.
//! - [`store`]: its SQL: orders (placed with their outbox row in one statement), stock and
//!   dead letters.
//! - [`handler`]: the router and its routes; requests are parsed into domain types at this
//!   edge and handed to [`store`].
//! - [`extract`]: the JSON body extractor (content type, size, syntax).
//! - [`paging`]: the lists' `cursor` and `limit` parameters, and their pages.
//! - [`idempotency`]: the `Idempotency-Key` header and the fingerprint of its request.
//! - [`caller`]: who is calling (guest, customer, operator), from the API Gateway request
//!   context, taken once before any handler runs.
//! - [`erasure`]: erasing a customer's name and address from every table.
//! - [`limits`]: the abuse limits on placing orders: which counters an order counts against.
//! - [`order_token`]: the token that lets a guest read the one order it placed.
//! - [`problem`]: every error as RFC 9457 `application/problem+json`, mapped in one place.
//! - [`state`]: the pool and producer shared by every request.
//! - [`publish`]: sends committed outbox rows after the answer, batched across requests.
//! - [`lambda`]: serving on Lambda, flushing those rows before the instance freezes.

pub mod caller;
pub mod config;
pub mod erasure;
pub mod extract;
pub mod handler;
pub mod idempotency;
pub mod lambda;
pub mod limits;
pub mod order_token;
pub mod paging;
pub mod problem;
pub mod publish;
pub mod state;
pub mod store;

pub use config::OrderApiConfig;
pub use handler::openapi::{openapi, openapi_json};
pub use handler::{MAX_BODY_BYTES, app};
pub use state::AppState;
