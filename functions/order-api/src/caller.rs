//! Who is calling, taken once at the edge from the request context that API Gateway hands
//! the function (and the local runtime hands it the same way): a handler takes the caller
//! its route is for, so no route can forget to check (docs/access.md).
//!
//! The function trusts that context and checks nothing else: in AWS, API Gateway has
//! validated the customer's JWT (the `CustomerJwt` authorizer) or the operator's IAM
//! signature before the request arrives; locally the runtime does the same from
//! `template.yaml`. The client's address is the one API Gateway saw (`http.sourceIp`),
//! never a header the client writes.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use shared::domain::{EmailAddress, Invalid};

use crate::problem::ApiError;

/// A caller without credentials, on the guest routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// The client's address, as API Gateway saw it.
    pub source_ip: IpAddr,
}

/// A signed-in customer, on the `/api/me` routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// The account, the token's `sub`: the owner of every order the customer places.
    pub sub: CustomerSub,
    /// The token's verified `email`, where orders' mails go; `None` for a token without one
    /// (an access token), whose orders are placed without mail.
    pub email: Option<EmailAddress>,
    pub source_ip: IpAddr,
}

/// An operator, on the `/api/admin` routes (IAM-signed in AWS; local runs are open on
/// 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Who signed the request (the IAM user or role ARN), for the logs.
    pub principal: String,
}

/// The identity provider's subject: an opaque account id of 1 to 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomerSub(String);

impl CustomerSub {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS || raw.chars().any(char::is_control) {
            return Err(Invalid(format!(
                "must be 1 to {} characters without control characters",
                Self::MAX_CHARS
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The API Gateway (HTTP API, payload 2.0) request context, or a refusal when the request
/// did not come through a gateway at all: a wiring fault, never the client's.
fn gateway_context(parts: &Parts) -> Result<&ApiGatewayV2httpRequestContext, ApiError> {
    match parts.extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => Ok(context),
        _ => Err(ApiError::Unexpected(anyhow::anyhow!(
            "the request carries no API Gateway HTTP API request context"
        ))),
    }
}

/// The credentials the gateway's authorizer checked that `pick` takes (a JWT's, an IAM
/// signature's); `401` without them, as the gateway itself answers a request without any.
fn authorized<'a, T>(
    context: &'a ApiGatewayV2httpRequestContext,
    pick: impl FnOnce(&'a ApiGatewayRequestAuthorizer) -> Option<&'a T>,
) -> Result<&'a T, ApiError> {
    context
        .authorizer
        .as_ref()
        .and_then(pick)
        .ok_or(ApiError::Unauthorized)
}

fn source_ip(context: &ApiGatewayV2httpRequestContext) -> Result<IpAddr, ApiError> {
    context
        .http
        .source_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| {
            ApiError::Unexpected(anyhow::anyhow!(
                "the request context has no valid http.sourceIp"
            ))
        })
}

impl<S: Send + Sync> FromRequestParts<S> for Guest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let context = gateway_context(parts)?;
        Ok(Self {
            source_ip: source_ip(context)?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Customer {
    type Rejection = ApiError;

    /// The claims of the JWT the gateway validated. Without a usable `sub` there is no
    /// customer, so the answer is `401`, as the gateway gives for a token without one.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let context = gateway_context(parts)?;
        let claims = &authorized(context, |authorizer| authorizer.jwt.as_ref())?.claims;
        let sub = claims
            .get("sub")
            .and_then(|sub| CustomerSub::parse(sub).ok())
            .ok_or(ApiError::Unauthorized)?;
        // Cognito marks an address it has not verified; such an address is not the
        // customer's to have mail sent to.
        let verified = claims.get("email_verified").map(String::as_str) != Some("false");
        let email = claims
            .get("email")
            .filter(|_| verified)
            .and_then(|email| EmailAddress::parse(email).ok());
        Ok(Self {
            sub,
            email,
            source_ip: source_ip(context)?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = ApiError;

    /// An IAM-authorised request; anything else is `401` (API Gateway refuses unsigned
    /// requests before they arrive, so this only guards against a route wired without IAM).
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let context = gateway_context(parts)?;
        let iam = authorized(context, |authorizer| authorizer.iam.as_ref())?;
        Ok(Self {
            principal: iam
                .user_arn
                .clone()
                .or_else(|| iam.caller_id.clone())
                .unwrap_or_else(|| "unknown".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_an_opaque_bounded_string() {
        assert!(CustomerSub::parse("4f1c-9a").is_ok());
        assert!(CustomerSub::parse("").is_err());
        assert!(CustomerSub::parse(&"x".repeat(256)).is_err());
        assert!(CustomerSub::parse("a\nb").is_err());
    }
}
