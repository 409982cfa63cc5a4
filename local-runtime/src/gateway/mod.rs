//! The local stand-in for API Gateway (HTTP API, payload format 2.0) in front of the order
//! API: for every request it finds the route `template.yaml` declares for it (the HttpApi
//! events of the order API's function), applies that route's authorizer as API Gateway
//! does, and hands the order API the same request context lambda_http hands it in AWS
//! (`lambda_http::request::RequestContext::ApiGatewayV2` in the request's extensions).
//!
//! By the route's `Auth.Authorizer`:
//! - none (or `NONE`): the request passes.
//! - `AWS_IAM`: the request passes with an `iam` authorizer description naming the local
//!   operator ([`LOCAL_OPERATOR_ARN`]). The runtime listens on 127.0.0.1 only, so the operator
//!   routes are open to whoever is on the machine, as they always were locally.
//! - a JWT authorizer (any name under an `AWS::Serverless::HttpApi`'s `Auth.Authorizers` with
//!   a `JwtConfiguration`): the `Authorization` header is validated as API Gateway's JWT
//!   authorizer does ([`jwt`]); on success the claims go to `authorizer.jwt.claims` (as
//!   strings, as API Gateway passes them) and the token's scopes to `authorizer.jwt.scopes`;
//!   on failure the answer is API Gateway's `401 {"message":"Unauthorized"}` with its
//!   `www-authenticate` header, counted as `requests_refused_total{reason="unauthorized"}`.
//!
//! Every request gets `http.sourceIp` from the TCP peer address (serve the router with
//! `into_make_service_with_connect_info::<SocketAddr>()`; no header is ever read for it),
//! `http.method`, `http.path`, `routeKey` (`POST /api/me/orders`, or `$default` when no route
//! matches), `requestId`, `stage` (`$default`) and `timeEpoch`. A request no route matches
//! passes through untouched by any authorizer, and the order API's router answers 404 or 405.
//!
//! # Settings (environment)
//!
//! The JWT authorizers validate against the local Cognito user pool (moto) that
//! `scripts/services up` creates; the template's own `JwtConfiguration` names the cloud pool
//! through intrinsics, so locally these variables stand in for it:
//!
//! - `LOCAL_JWT_ISSUER`: the issuer tokens must carry in `iss`, such as
//!   `https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc` (moto writes Cognito's
//!   issuer into its tokens, not its own address).
//! - `LOCAL_JWT_AUDIENCE`: the accepted audiences (the app client ids), comma-separated.
//! - `LOCAL_JWT_JWKS_URL`: where the pool's signing keys are served, such as
//!   `http://127.0.0.1:4566/us-east-1_abc/.well-known/jwks.json`.
//!
//! A variable that is not set is taken from `$STATE_DIR/cognito.env` (default
//! `.state/cognito.env`), which `scripts/services up` writes (as `export NAME=value` lines,
//! with `LOCAL_COGNITO_USER_POOL_ID`, `LOCAL_COGNITO_CLIENT_ID` and
//! `LOCAL_COGNITO_DEMO_PASSWORD` for `local-runtime token`). When the template declares a JWT
//! route and the three are still missing, the runtime warns and answers those routes `401`. The same
//! settings serve every JWT authorizer the template declares.

pub mod jwt;
pub mod signin;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use sam_template::{Template, render};
use serde_json::{Value, json};
use serde_norway::Value as Yaml;

pub use jwt::{JwtAuthorizer, JwtSettings, Refusal};

/// The function whose HttpApi routes the gateway serves.
pub const ORDER_API_FUNCTION: &str = "OrderApiFunction";
/// The binary of that function, to find it when the logical id differs.
pub const ORDER_API_BINARY: &str = "order-api";
/// The principal the `AWS_IAM` routes see locally (`authorizer.iam.userArn`).
pub const LOCAL_OPERATOR_ARN: &str = "arn:aws:iam::000000000000:user/local-operator";
/// The account id local request contexts carry.
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";

/// What guards one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    Open,
    Iam,
    /// A JWT authorizer, by its name in the template.
    Jwt(String),
}

/// One HttpApi route of the template: `GET /api/orders/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub guard: Guard,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: one path segment.
    Parameter,
    /// `{name+}`: the rest of the path (one segment at least).
    Greedy,
}

impl Route {
    fn new(method: &str, path: &str, guard: Guard) -> Self {
        let segments = path
            .trim_start_matches('/')
            .split('/')
            .map(
                |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) if name.ends_with('+') => Segment::Greedy,
                    Some(_) => Segment::Parameter,
                    None => Segment::Literal(segment.to_owned()),
                },
            )
            .collect();
        Self {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            guard,
            segments,
        }
    }

    /// `POST /api/me/orders`, as API Gateway's `routeKey`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn matches_method(&self, method: &str) -> bool {
        self.method == "ANY" || self.method == method
    }

    /// How specific the path match is, or `None` when it does not match: literals beat
    /// parameters, which beat a greedy tail (API Gateway's order of preference).
    fn path_match(&self, path: &str) -> Option<(usize, usize)> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (mut literals, mut parameters) = (0, 0);
        for (at, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Greedy => {
                    let rest = parts.get(at..).unwrap_or_default();
                    return (!rest.is_empty() && !rest[0].is_empty())
                        .then_some((literals, parameters));
                }
                Segment::Literal(literal) => {
                    if parts.get(at) != Some(&literal.as_str()) {
                        return None;
                    }
                    literals += 1;
                }
                Segment::Parameter => {
                    if parts.get(at).is_none_or(|part| part.is_empty()) {
                        return None;
                    }
                    parameters += 1;
                }
            }
        }
        (parts.len() == self.segments.len()).then_some((literals, parameters))
    }
}

/// The gateway: the routes and the authorizers they name.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    routes: Vec<Route>,
    jwt: Option<JwtAuthorizer>,
}

/// What the template says about the API: its routes and which authorizer names are JWT ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredApi {
    pub routes: Vec<Route>,
    /// The JWT authorizers declared under `Auth.Authorizers` (name → issuer as written).
    pub jwt_authorizers: HashMap<String, String>,
}

impl DeclaredApi {
    /// Whether any route needs the JWT settings.
    pub fn needs_jwt(&self) -> bool {
        self.routes
            .iter()
            .any(|route| matches!(route.guard, Guard::Jwt(_)))
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text)
    }

    /// The order API function's HttpApi routes, each with its guard.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let template = Template::parse(text)?;
        let function = template
            .function(ORDER_API_FUNCTION)
            .or_else(|| {
                template
                    .functions
                    .iter()
                    .find(|function| function.binary.as_deref() == Some(ORDER_API_BINARY))
            })
            .with_context(|| {
                format!("the template has no {ORDER_API_FUNCTION} (binary {ORDER_API_BINARY})")
            })?;

        // The authorizers live on the AWS::Serverless::HttpApi resources, which the typed
        // view does not cover; they are read from the YAML itself.
        let root: Yaml = serde_norway::from_str(text)?;
        let mut jwt_authorizers = HashMap::new();
        let mut default_authorizer = None;
        for (_, resource) in root["Resources"].as_mapping().into_iter().flatten() {
            if resource["Type"].as_str() != Some("AWS::Serverless::HttpApi") {
                continue;
            }
            let auth = &resource["Properties"]["Auth"];
            for (name, authorizer) in auth["Authorizers"].as_mapping().into_iter().flatten() {
                let jwt = &authorizer["JwtConfiguration"];
                if let (Some(name), false) = (name.as_str(), jwt.is_null()) {
                    jwt_authorizers.insert(name.to_owned(), render(&jwt["issuer"]));
                }
            }
            if let Some(name) = auth["DefaultAuthorizer"].as_str() {
                default_authorizer = Some(name.to_owned());
            }
        }

        let mut routes = Vec::new();
        for (method, path, authorizer) in function.http_routes() {
            let guard = match authorizer.or(default_authorizer.as_deref()) {
                None | Some("NONE") => Guard::Open,
                Some("AWS_IAM") => Guard::Iam,
                Some(name) if jwt_authorizers.contains_key(name) => Guard::Jwt(name.to_owned()),
                Some(other) => bail!(
                    "{method} {path} names the authorizer {other:?}, which is neither AWS_IAM nor \
                     a JWT authorizer declared under the HttpApi's Auth.Authorizers"
                ),
            };
            routes.push(Route::new(method, path, guard));
        }
        Ok(Self {
            routes,
            jwt_authorizers,
        })
    }
}

impl Gateway {
    /// The gateway for `api`; without `jwt`, the routes a JWT authorizer guards answer 401.
    pub fn new(api: DeclaredApi, jwt: Option<JwtSettings>) -> anyhow::Result<Self> {
        let jwt = match (api.needs_jwt(), jwt) {
            (_, Some(settings)) => Some(JwtAuthorizer::new(settings)?),
            (false, None) => None,
            (true, None) => {
                // Where the local emulator has no Cognito (LocalStack's free edition, in
                // compose mode), the system still runs; only the customer routes answer 401.
                let mut names: Vec<&str> = api.jwt_authorizers.keys().map(String::as_str).collect();
                names.sort_unstable();
                tracing::warn!(
                    authorizers = %names.join(", "),
                    "no JWT settings ({}, {}, {} unset and not in {}): the customer routes answer \
                     401; scripts/services up creates the local Cognito user pool and writes them",
                    jwt::ISSUER_VAR,
                    jwt::AUDIENCE_VAR,
                    jwt::JWKS_URL_VAR,
                    jwt::state_file().display(),
                );
                None
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                routes: api.routes,
                jwt,
            }),
        })
    }

    /// The gateway for the template at `path`, with the JWT settings from the environment
    /// (or the state file) when a route needs them.
    pub fn from_template(path: &Path) -> anyhow::Result<Self> {
        let api = DeclaredApi::read(path).with_context(|| {
            format!("could not read the HTTP API routes from {}", path.display())
        })?;
        let settings = if api.needs_jwt() {
            JwtSettings::from_env()?
        } else {
            JwtSettings::from_env().ok().flatten()
        };
        Self::new(api, settings)
    }

    pub fn routes(&self) -> &[Route] {
        &self.inner.routes
    }

    /// `app` behind the gateway. Serve the result with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn wrap(&self, app: Router) -> Router {
        Router::new()
            .fallback_service(app)
            .layer(middleware::from_fn_with_state(self.clone(), gateway))
    }

    /// The most specific route for `method` and `path`, as API Gateway picks it.
    pub fn route(&self, method: &str, path: &str) -> Option<&Route> {
        self.inner
            .routes
            .iter()
            .filter(|route| route.matches_method(method))
            .filter_map(|route| route.path_match(path).map(|rank| (rank, route)))
            // An exact method beats ANY; more literals beat parameters.
            .max_by_key(|((literals, parameters), route)| {
                (
                    route.segments.iter().all(|s| *s != Segment::Greedy),
                    *literals,
                    usize::MAX - parameters,
                    route.method != "ANY",
                )
            })
            .map(|(_, route)| route)
    }
}

/// The state file `scripts/services up` writes the local identity settings to.
pub fn state_dir() -> PathBuf {
    std::env::var_os("STATE_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".state"))
}

async fn gateway(State(gateway): State<Gateway>, mut request: Request, next: Next) -> Response {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
    else {
        tracing::error!("the local gateway needs the peer address: serve with connect info");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"message":"Internal Server Error"}"#,
        )
            .into_response();
    };
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let route = gateway.route(&method, &path).cloned();

    let authorizer = match route.as_ref().map(|route| &route.guard) {
        None | Some(Guard::Open) => None,
        Some(Guard::Iam) => Some(json!({ "iam": local_operator() })),
        Some(Guard::Jwt(_)) => {
            let Some(jwt) = gateway.inner.jwt.as_ref() else {
                // No settings (see Gateway::new): no token can be checked, so none passes.
                return Refusal::unauthorized("no JWT settings").into_response();
            };
            let header = request.headers().get(header::AUTHORIZATION);
            match jwt.authorize(header).await {
                Ok(authorized) => Some(json!({
                    "jwt": { "claims": authorized.claims, "scopes": authorized.scopes }
                })),
                Err(refusal) => {
                    tracing::info!(
                        route = route.as_ref().map(Route::key),
                        reason = refusal.description.as_deref().unwrap_or("no token"),
                        "gateway: request refused"
                    );
                    shared::metrics::request_refused("unauthorized");
                    return refusal.into_response();
                }
            }
        }
    };

    let context = request_context(&request, &method, &path, route.as_ref(), peer, authorizer);
    match serde_json::from_value::<ApiGatewayV2httpRequestContext>(context) {
        Ok(context) => {
            request
                .extensions_mut()
                .insert(RequestContext::ApiGatewayV2(context));
            next.run(request).await
        }
        Err(err) => {
            tracing::error!(error = %err, "gateway: could not build the request context");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"message":"Internal Server Error"}"#,
            )
                .into_response()
        }
    }
}

fn local_operator() -> Value {
    json!({
        "accessKey": "LOCAL",
        "accountId": LOCAL_ACCOUNT_ID,
        "callerId": "local-operator",
        "principalOrgId": null,
        "userArn": LOCAL_OPERATOR_ARN,
        "userId": "local-operator",
    })
}

/// The payload 2.0 `requestContext`, as JSON in API Gateway's own field names.
fn request_context(
    request: &Request,
    method: &str,
    path: &str,
    route: Option<&Route>,
    peer: SocketAddr,
    authorizer: Option<Value>,
) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let header = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
            .map(str::to_owned)
    };
    let domain = header(header::HOST).unwrap_or_else(|| "localhost".to_owned());
    let mut context = json!({
        "accountId": LOCAL_ACCOUNT_ID,
        "apiId": "local",
        "domainName": domain,
        "domainPrefix": domain.split('.').next().unwrap_or_default(),
        "http": {
            "method": method,
            "path": path,
            "protocol": format!("{:?}", request.version()),
            "sourceIp": peer.ip().to_canonical().to_string(),
            "userAgent": header(header::USER_AGENT).unwrap_or_default(),
        },
        "requestId": uuid::Uuid::now_v7().to_string(),
        "routeKey": route.map_or_else(|| "$default".to_owned(), Route::key),
        "stage": "$default",
        "time": chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": now.as_millis() as i64,
    });
    if let Some(authorizer) = authorizer {
        context["authorizer"] = authorizer;
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shared with the integration tests, which serve these routes to real clients.
    const TEMPLATE: &str = include_str!("test_template.yaml");

    fn declared() -> DeclaredApi {
        DeclaredApi::parse(TEMPLATE).unwrap()
    }

    #[test]
    fn routes_take_their_guard_from_the_authorizer_they_name() {
        let api = declared();
        assert!(api.needs_jwt());
        assert!(api.jwt_authorizers.contains_key("CustomerJwt"));
        let guards: Vec<(String, Guard)> = api
            .routes
            .iter()
            .map(|route| (route.key(), route.guard.clone()))
            .collect();
        assert!(guards.contains(&("POST /api/orders".to_owned(), Guard::Open)));
        assert!(guards.contains(&(
            "GET /api/me/orders/{id}".to_owned(),
            Guard::Jwt("CustomerJwt".to_owned())
        )));
        assert!(guards.contains(&("PUT /api/admin/stock/{productName}".to_owned(), Guard::Iam)));
    }

    /// Without Cognito (compose mode) the system still runs: the customer routes answer 401
    /// and every other route is served.
    #[tokio::test]
    async fn without_jwt_settings_the_customer_routes_answer_401_and_the_rest_is_served() {
        use tower::ServiceExt;
        let gateway = Gateway::new(declared(), None).expect("the gateway starts");
        let app = gateway.wrap(Router::new().fallback(|| async { "served" }));
        let call = |method: &str, path: &str| {
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 2], 40_000))));
            app.clone().oneshot(request)
        };
        let customer = call("GET", "/api/me/orders/1").await.unwrap();
        assert_eq!(customer.status(), StatusCode::UNAUTHORIZED);
        let guest = call("POST", "/api/orders").await.unwrap();
        assert_eq!(guest.status(), StatusCode::OK);
    }

    #[test]
    fn an_undeclared_authorizer_is_a_template_error() {
        let text = TEMPLATE.replace("Authorizer: CustomerJwt }", "Authorizer: Nobody }");
        assert!(DeclaredApi::parse(&text).is_err());
    }

    #[test]
    fn requests_find_the_most_specific_route() {
        let mut api = declared();
        api.routes
            .push(Route::new("GET", "/api/me/orders/latest", Guard::Open));
        let gateway = Gateway {
            inner: Arc::new(Inner {
                routes: api.routes,
                jwt: None,
            }),
        };
        let key = |method: &str, path: &str| gateway.route(method, path).map(Route::key);
        assert_eq!(
            key("GET", "/api/me/orders").as_deref(),
            Some("GET /api/me/orders")
        );
        assert_eq!(
            key("GET", "/api/me/orders/42").as_deref(),
            Some("GET /api/me/orders/{id}")
        );
        assert_eq!(
            key("GET", "/api/me/orders/latest").as_deref(),
            Some("GET /api/me/orders/latest")
        );
        assert_eq!(key("DELETE", "/api/me/orders"), None);
        assert_eq!(key("GET", "/api/me/orders/42/items"), None);
        assert_eq!(key("GET", "/api/me/orders/"), None);
        assert_eq!(
            key("DELETE", "/api/files/a/b/c").as_deref(),
            Some("ANY /api/files/{proxy+}")
        );
        assert_eq!(key("GET", "/api/files"), None);
    }
}
