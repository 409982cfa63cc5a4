//! The OpenAPI 3.1 document, generated from the route annotations. It is served at
//! `GET /api/openapi.json` and committed as `openapi.json` (a test keeps the two equal;
//! regenerate with `UPDATE_OPENAPI=1 cargo test -p order-api openapi`).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{dead_letters, health, orders, stock};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-api",
        description = "Places orders and publishes them to Kafka through a transactional outbox; reads orders and manages stock. Every error is an RFC 9457 application/problem+json document.",
        license(name = "MIT", identifier = "MIT"),
    ),
    tags(
        (name = "orders", description = "Place and read orders"),
        (name = "stock", description = "Stock levels"),
        (name = "dead letters", description = "Records the consumers refused: list and replay them (admin)"),
        (name = "operations", description = "Health and API description"),
    ),
)]
struct ApiDoc;

/// Every route with its documentation, from which [`openapi`] builds the document. The
/// serving router, [`crate::app`], lists the same routes without it.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(orders::place_order, orders::list_orders))
        .routes(routes!(orders::get_order))
        .routes(routes!(orders::cancel_order))
        .routes(routes!(stock::list_stock))
        .routes(routes!(stock::get_stock, stock::set_stock))
        .routes(routes!(dead_letters::list_dead_letters))
        .routes(routes!(dead_letters::replay_dead_letter))
        .routes(routes!(health::health))
        .routes(routes!(openapi_document))
}

/// The document as generated from the code.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = api_router().split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    currency_needs_unit_amount(&mut api);
    api
}

/// `PUT /api/stock/{productName}` refuses a `currency` without `unitAmount`. utoipa has no
/// attribute for JSON Schema's `dependentRequired` (OpenAPI 3.1 schemas are JSON Schema
/// 2020-12), so the keyword is added to the generated schema here.
fn currency_needs_unit_amount(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::extensions::Extensions;
    use utoipa::openapi::schema::Schema;
    let Some(RefOr::T(Schema::Object(body))) = api
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut("SetStockRequest"))
    else {
        panic!("the stock route documents its body as SetStockRequest");
    };
    body.extensions
        .get_or_insert_with(Extensions::default)
        .insert(
            "dependentRequired".to_owned(),
            serde_json::json!({"currency": ["unitAmount"]}),
        );
}

/// The document as committed in `openapi.json`: pretty-printed, ending with a newline.
pub fn openapi_json() -> String {
    let mut json = openapi()
        .to_pretty_json()
        .expect("the OpenAPI document always serialises");
    json.push('\n');
    json
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")),
)]
pub async fn openapi_document() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.get_or_init(openapi_json).as_str(),
    )
}
