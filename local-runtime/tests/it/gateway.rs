//! The local API gateway against the real Cognito emulator (moto): a fresh user pool, app
//! client and customer per test, real sign-ins, forged tokens for the refusals. The gateway
//! stands in front of a router that echoes the request context it was handed, served over
//! real TCP with the peer address, and clients connect from 127.0.0.2 and 127.0.0.3.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use lambda_http::request::RequestContext;
use local_runtime::gateway::{DeclaredApi, Gateway, Guard, JwtSettings};
use serde_json::{Value, json};
use testkit::cognito::{Customer, Forge, Pool, Tokens};

/// The shape of the order API's routes in `template.yaml`, with the three audiences; the
/// gateway's unit tests read the same.
const TEMPLATE: &str = include_str!("../../src/gateway/test_template.yaml");

/// Answers with the request context it was handed (500 when there was none).
fn echo() -> Router {
    Router::new().fallback(|request: Request| async move {
        match request.extensions().get::<RequestContext>() {
            Some(context) => Json(serde_json::to_value(context).unwrap()).into_response(),
            None => (StatusCode::INTERNAL_SERVER_ERROR, "no request context").into_response(),
        }
    })
}

struct Setup {
    pool: Pool,
    customer: Customer,
    tokens: Tokens,
    base: String,
}

impl Setup {
    /// A fresh pool with one signed-in customer, and the gateway in front of [`echo`].
    async fn start() -> Self {
        testkit::init_tracing();
        let pool = Pool::create("gateway-test").await;
        let customer = pool.create_customer("ada").await;
        let tokens = pool.sign_in(&customer).await;
        let settings = JwtSettings {
            issuer: pool.issuer(),
            audience: vec![pool.client_id.clone()],
            jwks_url: pool.jwks_url(),
        };
        let gateway = Gateway::new(DeclaredApi::parse(TEMPLATE).unwrap(), Some(settings)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = gateway.wrap(echo());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            pool,
            customer,
            tokens,
            base,
        }
    }

    /// A client whose connections come from `ip` (any address of 127.0.0.0/8 is local).
    fn client_from(ip: [u8; 4]) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
            .build()
            .unwrap()
    }

    /// `GET /api/me/orders/42` with `authorization` (when some) from 127.0.0.2.
    async fn get_my_order(&self, authorization: Option<&str>) -> reqwest::Response {
        let mut request =
            Self::client_from([127, 0, 0, 2]).get(format!("{}/api/me/orders/42", self.base));
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        request.send().await.unwrap()
    }

    /// The request context a bearer token gets through with.
    async fn context_with(&self, token: &str) -> Value {
        let response = self.get_my_order(Some(&format!("Bearer {token}"))).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap()
        );
        response.json().await.unwrap()
    }

    /// Asserts API Gateway's refusal, and returns its `www-authenticate`.
    async fn assert_refused(&self, authorization: Option<&str>) -> String {
        let response = self.get_my_order(authorization).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "API Gateway answers JSON"
        );
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"message":"Unauthorized"}"#
        );
        challenge
    }

    async fn assert_token_refused(&self, token: &str, description: &str) {
        let challenge = self.assert_refused(Some(&format!("Bearer {token}"))).await;
        assert_eq!(
            challenge,
            format!(r#"Bearer scope="" error="invalid_token" error_description="{description}""#)
        );
    }
}

fn claims(context: &Value) -> &Value {
    &context["authorizer"]["jwt"]["claims"]
}

#[tokio::test]
async fn a_valid_id_token_passes_with_the_customers_claims_and_the_peer_address() {
    let setup = Setup::start().await;
    let context = setup.context_with(&setup.tokens.id_token).await;

    let claims = claims(&context);
    assert_eq!(claims["sub"], setup.customer.sub);
    assert_eq!(claims["email"], setup.customer.email);
    assert_eq!(claims["token_use"], "id");
    assert_eq!(claims["aud"], setup.pool.client_id);
    assert_eq!(claims["iss"], setup.pool.issuer());
    // API Gateway hands every claim on as a string, numbers included.
    let exp = claims["exp"].as_str().expect("exp is a string");
    assert!(exp.parse::<u64>().unwrap() > testkit::cognito::now());
    assert!(context["authorizer"]["iam"].is_null());

    assert_eq!(context["http"]["sourceIp"], "127.0.0.2");
    assert_eq!(context["http"]["method"], "GET");
    assert_eq!(context["http"]["path"], "/api/me/orders/42");
    assert_eq!(context["routeKey"], "GET /api/me/orders/{id}");
    assert_eq!(context["stage"], "$default");
    assert!(!context["requestId"].as_str().unwrap().is_empty());
    assert!(
        context["timeEpoch"].as_i64().unwrap() > 1_600_000_000_000,
        "milliseconds"
    );
}

#[tokio::test]
async fn a_valid_access_token_passes_with_its_client_and_scopes() {
    let setup = Setup::start().await;
    let context = setup.context_with(&setup.tokens.access_token).await;

    let claims = claims(&context);
    assert_eq!(claims["sub"], setup.customer.sub);
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["client_id"], setup.pool.client_id);
    assert!(
        claims.get("email").is_none(),
        "access tokens carry no email"
    );
    assert_eq!(
        context["authorizer"]["jwt"]["scopes"],
        json!(["aws.cognito.signin.user.admin"])
    );
}

#[tokio::test]
async fn a_token_without_the_bearer_prefix_passes_as_api_gateway_accepts_it() {
    let setup = Setup::start().await;
    let response = setup.get_my_order(Some(&setup.tokens.id_token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let context: Value = response.json().await.unwrap();
    assert_eq!(claims(&context)["sub"], setup.customer.sub);
}

#[tokio::test]
async fn two_clients_are_told_apart_by_their_address_and_never_by_a_header() {
    let setup = Setup::start().await;
    let mut seen = Vec::new();
    for ip in [[127, 0, 0, 2], [127, 0, 0, 3]] {
        let response = Setup::client_from(ip)
            .post(format!("{}/api/me/orders", setup.base))
            .bearer_auth(&setup.tokens.id_token)
            .header("X-Forwarded-For", "203.0.113.9")
            .header("X-Real-IP", "203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let context: Value = response.json().await.unwrap();
        assert_eq!(context["routeKey"], "POST /api/me/orders");
        seen.push(context["http"]["sourceIp"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["127.0.0.2", "127.0.0.3"]);
}

#[tokio::test]
async fn a_request_without_a_token_is_refused_as_api_gateway_refuses_it() {
    let setup = Setup::start().await;
    assert_eq!(setup.assert_refused(None).await, "Bearer");
    assert_eq!(setup.assert_refused(Some("Bearer ")).await, "Bearer");
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_the_pools_kid_is_refused() {
    let setup = Setup::start().await;
    let forged = Forge::new(&setup.tokens.id_token).signed_by_other_key();
    setup
        .assert_token_refused(&forged, "the token's signature is invalid")
        .await;
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_an_unknown_kid_is_refused() {
    let setup = Setup::start().await;
    let forged = Forge::new(&setup.tokens.id_token).signed_by_unknown_kid();
    let kid = testkit::cognito::header(&forged)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    setup
        .assert_token_refused(
            &forged,
            &format!("no key in the issuer's JWKS has kid {kid}"),
        )
        .await;
    // The keys it did fetch still serve the genuine token.
    setup.context_with(&setup.tokens.id_token).await;
}

#[tokio::test]
async fn a_token_re_signed_unchanged_with_the_pools_key_passes_so_forgeries_fail_for_their_change_alone()
 {
    let setup = Setup::start().await;
    let context = setup
        .context_with(&Forge::new(&setup.tokens.id_token).unchanged())
        .await;
    assert_eq!(claims(&context)["sub"], setup.customer.sub);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let setup = Setup::start().await;
    let forged = Forge::new(&setup.tokens.id_token).expired();
    setup
        .assert_token_refused(&forged, "the token has expired")
        .await;
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let setup = Setup::start().await;
    let forged = Forge::new(&setup.tokens.id_token).not_yet_valid();
    setup
        .assert_token_refused(&forged, "the token is not valid yet")
        .await;
}

#[tokio::test]
async fn tokens_of_another_app_client_are_refused() {
    let setup = Setup::start().await;
    // Genuine tokens, from the same pool, through a client the gateway does not accept.
    let other = setup.pool.add_client("gateway-test-other").await;
    let tokens = setup.pool.sign_in_with(&other, &setup.customer).await;
    for token in [&tokens.id_token, &tokens.access_token] {
        setup
            .assert_token_refused(token, "the token does not have a valid audience")
            .await;
    }
    let forged = Forge::new(&setup.tokens.access_token).for_audience(&other);
    setup
        .assert_token_refused(&forged, "the token does not have a valid audience")
        .await;
}

#[tokio::test]
async fn a_token_of_another_issuer_is_refused() {
    let setup = Setup::start().await;
    let other = Pool::create("gateway-test-issuer").await;
    let forged = Forge::new(&setup.tokens.id_token).with_issuer(&other.issuer());
    setup
        .assert_token_refused(&forged, "the token does not have a valid issuer")
        .await;
}

#[tokio::test]
async fn a_token_with_alg_none_is_refused() {
    let setup = Setup::start().await;
    let forged = Forge::new(&setup.tokens.id_token).alg_none();
    setup
        .assert_token_refused(&forged, "signing method none is invalid")
        .await;
}

#[tokio::test]
async fn a_token_signed_with_hs256_and_the_public_key_is_refused() {
    let setup = Setup::start().await;
    let forged = Forge::new(&setup.tokens.id_token).hs256();
    setup
        .assert_token_refused(&forged, "signing method HS256 is invalid")
        .await;
}

#[tokio::test]
async fn a_token_without_sub_is_refused() {
    let setup = Setup::start().await;
    let forged = Forge::new(&setup.tokens.id_token).without("sub");
    setup
        .assert_token_refused(&forged, "the token does not have a sub claim")
        .await;
}

#[tokio::test]
async fn a_token_that_is_not_a_jwt_is_refused() {
    let setup = Setup::start().await;
    setup
        .assert_token_refused("not-a-token", "invalid token")
        .await;
}

#[tokio::test]
async fn token_use_does_not_decide_the_audience_check_aud_does_as_in_api_gateway() {
    let setup = Setup::start().await;
    // An ID token relabelled as an access token still has its aud, which is checked.
    let relabelled = Forge::new(&setup.tokens.id_token).with_token_use("access");
    assert_eq!(
        claims(&setup.context_with(&relabelled).await)["token_use"],
        "access"
    );
    // An access token has no aud, so its client_id is checked, whatever token_use says.
    let relabelled = Forge::new(&setup.tokens.access_token).with_token_use("id");
    setup.context_with(&relabelled).await;
    // Another client's id in aud is refused even with the right client_id beside it.
    let other = setup.pool.add_client("gateway-test-aud").await;
    let both = Forge::new(&setup.tokens.access_token).resigned(|claims| {
        claims.insert("aud".into(), json!(other));
    });
    setup
        .assert_token_refused(&both, "the token does not have a valid audience")
        .await;
}

#[tokio::test]
async fn guest_routes_pass_without_a_token_and_without_an_authorizer() {
    let setup = Setup::start().await;
    let client = Setup::client_from([127, 0, 0, 3]);
    for authorization in [None, Some("Bearer not-even-a-token")] {
        let mut request = client.post(format!("{}/api/orders", setup.base));
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let context: Value = response.json().await.unwrap();
        assert_eq!(context["routeKey"], "POST /api/orders");
        assert!(context["authorizer"].is_null(), "{context}");
        assert_eq!(context["http"]["sourceIp"], "127.0.0.3");
    }
}

#[tokio::test]
async fn admin_routes_pass_with_the_local_operator_as_the_iam_caller() {
    let setup = Setup::start().await;
    let response = Setup::client_from([127, 0, 0, 2])
        .put(format!("{}/api/admin/stock/Laptop", setup.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let context: Value = response.json().await.unwrap();
    assert_eq!(context["routeKey"], "PUT /api/admin/stock/{productName}");
    let iam = &context["authorizer"]["iam"];
    assert_eq!(iam["userArn"], local_runtime::gateway::LOCAL_OPERATOR_ARN);
    assert_eq!(iam["accountId"], local_runtime::gateway::LOCAL_ACCOUNT_ID);
    assert!(context["authorizer"]["jwt"].is_null());
}

#[tokio::test]
async fn paths_no_route_matches_pass_through_as_the_default_route() {
    let setup = Setup::start().await;
    let client = Setup::client_from([127, 0, 0, 2]);
    // No route at all, and a JWT route's path with another method.
    for (method, path) in [("GET", "/api/nowhere"), ("DELETE", "/api/me/orders/42")] {
        let response = client
            .request(method.parse().unwrap(), format!("{}{path}", setup.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        let context: Value = response.json().await.unwrap();
        assert_eq!(context["routeKey"], "$default");
        assert!(context["authorizer"].is_null());
    }
}

#[tokio::test]
async fn the_token_command_prints_an_id_token_of_the_customer() {
    let setup = Setup::start().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_local-runtime"))
        .args([
            "token",
            &setup.customer.email,
            "--password",
            &setup.customer.password,
        ])
        .env("LOCAL_COGNITO_CLIENT_ID", &setup.pool.client_id)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    let context = setup.context_with(token.trim()).await;
    assert_eq!(claims(&context)["sub"], setup.customer.sub);
    assert_eq!(claims(&context)["token_use"], "id");
}

#[test]
fn the_repositorys_template_declares_guards_the_gateway_understands() {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let api = DeclaredApi::read(&template).unwrap();
    assert!(!api.routes.is_empty());
    for route in &api.routes {
        if route.path.starts_with("/api/me/") || route.path == "/api/me" {
            assert!(
                matches!(route.guard, Guard::Jwt(_)),
                "{} is a customer route",
                route.key()
            );
        }
        if route.path.starts_with("/api/admin/") {
            assert_eq!(
                route.guard,
                Guard::Iam,
                "{} is an operator route",
                route.key()
            );
        }
    }
}
