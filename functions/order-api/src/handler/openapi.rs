//! The OpenAPI 3.1 document, generated from the route annotations. It is served at
//! `GET /api/openapi.json` and committed as `openapi.json` (a test keeps the two equal;
//! regenerate with `UPDATE_OPENAPI=1 cargo test -p order-api openapi`).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{admin_orders, dead_letters, erasure, health, my_orders, orders, stock};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-api",
        description = "Places orders and publishes them to Kafka through a transactional outbox; reads orders and manages stock. Every error is an RFC 9457 application/problem+json document.",
        license(name = "MIT", identifier = "MIT"),
    ),
    tags(
        (name = "orders", description = "Guests: place an order, and read it back with its Order-Token"),
        (name = "my orders", description = "Signed-in customers (a JWT from the shop's identity provider): their own orders"),
        (name = "operators", description = "Operators (IAM-signed requests in AWS): every order, stock and prices, dead letters"),
        (name = "stock", description = "Stock levels"),
        (name = "operations", description = "Health and API description"),
    ),
    modifiers(&SecuritySchemes),
)]
struct ApiDoc;

/// The two ways of proving who one is: a customer's bearer JWT (validated by API Gateway's
/// JWT authorizer), and an operator's AWS Signature Version 4 (API Gateway's IAM
/// authorization).
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "customerJwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An ID or access token of the shop's Cognito user pool (or the configured OIDC issuer)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operatorIam",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "An AWS Signature Version 4 of the request by an IAM principal allowed to invoke the admin routes (open on 127.0.0.1 in local runs)",
            ))),
        );
    }
}

/// Every route with its documentation, from which [`openapi`] builds the document. The
/// serving router, [`crate::app`], lists the same routes without it.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(orders::place_order))
        .routes(routes!(orders::get_order))
        .routes(routes!(stock::list_stock))
        .routes(routes!(stock::get_stock))
        .routes(routes!(
            my_orders::place_my_order,
            my_orders::list_my_orders
        ))
        .routes(routes!(my_orders::get_my_order))
        .routes(routes!(my_orders::cancel_my_order))
        .routes(routes!(admin_orders::list_orders))
        .routes(routes!(admin_orders::get_order))
        .routes(routes!(admin_orders::cancel_order))
        .routes(routes!(stock::set_stock))
        .routes(routes!(erasure::erase_customer))
        .routes(routes!(erasure::erase_me))
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
    erase_names_exactly_one(&mut api);
    api
}

/// `POST /api/admin/customers/erase` takes exactly one of `email` and `sub`, as a string:
/// JSON Schema's `oneOf`, which utoipa's attributes cannot state on a struct's fields.
fn erase_names_exactly_one(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::extensions::Extensions;
    use utoipa::openapi::schema::Schema;
    let Some(RefOr::T(Schema::Object(body))) = api
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut("EraseRequest"))
    else {
        panic!("the erasure route documents its body as EraseRequest");
    };
    body.extensions
        .get_or_insert_with(Extensions::default)
        .insert(
            "oneOf".to_owned(),
            serde_json::json!([
                {"required": ["email"], "properties": {"email": {"type": "string"}}},
                {"required": ["sub"], "properties": {"sub": {"type": "string"}}},
            ]),
        );
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
