//! `local-runtime token <email> [--password <password>] [--access]`: signs a customer in to
//! the local Cognito user pool (moto) with `USER_PASSWORD_AUTH` and prints the ID token (or
//! the access token), for curl:
//!
//! ```text
//! curl -H "Authorization: Bearer $(cargo run -q -p local-runtime -- token ada@example.com)" \
//!   http://127.0.0.1:3000/api/me/orders
//! ```
//!
//! The app client comes from `LOCAL_COGNITO_CLIENT_ID`, the password, when not given, from
//! `LOCAL_COGNITO_DEMO_PASSWORD` (the demo customers' one); both from the environment or
//! `.state/cognito.env`, which `scripts/services up` writes. Cognito's endpoint is
//! `AWS_ENDPOINT_URL` (the local emulator), in `AWS_REGION`.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::jwt::setting;

pub const CLIENT_ID_VAR: &str = "LOCAL_COGNITO_CLIENT_ID";
pub const DEMO_PASSWORD_VAR: &str = "LOCAL_COGNITO_DEMO_PASSWORD";

/// The tokens of one sign-in.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
}

/// `InitiateAuth` with `USER_PASSWORD_AUTH`, as a browser app would call it (the call needs
/// no AWS credentials; the emulator is told the region through the credential scope).
pub async fn sign_in(
    endpoint: &str,
    region: &str,
    client_id: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<Tokens> {
    let response = reqwest::Client::new()
        .post(format!("{}/", endpoint.trim_end_matches('/')))
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "X-Amz-Target",
            "AWSCognitoIdentityProviderService.InitiateAuth",
        )
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=local/20240101/{region}/cognito-idp/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
        )
        .body(
            json!({
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": client_id,
                "AuthParameters": { "USERNAME": username, "PASSWORD": password },
            })
            .to_string(),
        )
        .send()
        .await
        .with_context(|| format!("Cognito does not answer at {endpoint} (scripts/services up)"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "sign-in refused ({status}): {} {}",
            body["__type"].as_str().unwrap_or_default(),
            body["message"].as_str().unwrap_or_default()
        );
    }
    let result = &body["AuthenticationResult"];
    let token = |name: &str| {
        result[name].as_str().map(str::to_owned).with_context(|| {
            format!(
                "no {name} in the answer (challenge {})",
                body["ChallengeName"]
            )
        })
    };
    Ok(Tokens {
        id_token: token("IdToken")?,
        access_token: token("AccessToken")?,
    })
}

/// The `token` command.
pub async fn print_token(args: &[String]) -> anyhow::Result<()> {
    let usage = "usage: local-runtime token <email> [--password <password>] [--access]";
    let mut email = None;
    let mut password = None;
    let mut access = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--password" => password = Some(args.next().context(usage)?.clone()),
            "--access" => access = true,
            other if email.is_none() && !other.starts_with('-') => email = Some(other.to_owned()),
            _ => bail!("{usage}"),
        }
    }
    let email = email.context(usage)?;
    let client_id = setting(CLIENT_ID_VAR)?.with_context(|| {
        format!(
            "{CLIENT_ID_VAR} is not set and {} does not exist: run scripts/services up",
            super::jwt::state_file().display()
        )
    })?;
    let password = match password {
        Some(password) => password,
        None => setting(DEMO_PASSWORD_VAR)?
            .with_context(|| format!("give --password (no {DEMO_PASSWORD_VAR} is set)"))?,
    };
    let endpoint = setting("AWS_ENDPOINT_URL")?.unwrap_or_else(|| "http://127.0.0.1:4566".into());
    let region = setting("AWS_REGION")?.unwrap_or_else(|| "us-east-1".into());
    let tokens = sign_in(&endpoint, &region, &client_id, &email, &password).await?;
    println!(
        "{}",
        if access {
            tokens.access_token
        } else {
            tokens.id_token
        }
    );
    Ok(())
}
