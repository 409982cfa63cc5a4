//! The request context API Gateway (HTTP API, payload 2.0) hands the order API, for tests
//! that call the router in-process: a guest from an address, a customer whose JWT the
//! gateway validated, an operator whose IAM signature it checked. Built from JSON shaped
//! like the real event's `requestContext`, as lambda_http reads it.

use lambda_http::request::RequestContext;
use serde_json::{Value, json};

fn context(source_ip: &str, authorizer: Option<Value>) -> RequestContext {
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": "127.0.0.1",
        "domainPrefix": "local",
        "requestId": uuid::Uuid::now_v7().to_string(),
        "routeKey": "$default",
        "stage": "$default",
        "time": "07/Dec/2026:00:00:00 +0000",
        "timeEpoch": 1_796_601_600_000_i64,
        "http": {
            "method": "GET",
            "path": "/",
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": "testkit"
        }
    });
    if let Some(authorizer) = authorizer {
        context["authorizer"] = authorizer;
    }
    RequestContext::ApiGatewayV2(
        serde_json::from_value(context).expect("the request context is well-formed"),
    )
}

/// A caller without credentials from `source_ip`.
pub fn guest(source_ip: &str) -> RequestContext {
    context(source_ip, None)
}

/// A customer whose token carried these claims (API Gateway passes every claim as a
/// string).
pub fn customer_with_claims(source_ip: &str, claims: Value) -> RequestContext {
    context(
        source_ip,
        Some(json!({"jwt": {"claims": claims, "scopes": null}})),
    )
}

/// A customer with account `sub` and verified address `email`, as a Cognito ID token
/// carries them.
pub fn customer(source_ip: &str, sub: &str, email: &str) -> RequestContext {
    customer_with_claims(
        source_ip,
        json!({
            "sub": sub,
            "email": email,
            "email_verified": "true",
            "token_use": "id",
            "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test",
        }),
    )
}

/// An IAM-signed operator.
pub fn operator() -> RequestContext {
    context(
        "127.0.0.1",
        Some(json!({"iam": {
            "accessKey": "ASIATESTOPERATOR",
            "accountId": "123456789012",
            "callerId": "AROATESTOPERATOR:operator",
            "principalOrgId": null,
            "userArn": "arn:aws:sts::123456789012:assumed-role/operator/test",
            "userId": "AROATESTOPERATOR:operator"
        }})),
    )
}
