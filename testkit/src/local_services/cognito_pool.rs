//! The customers' identity provider on the emulator: the user pool, an app client without a
//! secret that allows `USER_PASSWORD_AUTH` (and `ADMIN_USER_PASSWORD_AUTH`), and the demo
//! customers with confirmed accounts, verified emails and permanent passwords.
//!
//! Idempotent: the pool and the client are found by name (never duplicated), the customers'
//! attributes and passwords are brought back to these. Writes `$STATE_DIR/cognito.env`
//! (export lines), where the local runtime's API gateway and `local-runtime token <email>`
//! find the ids, the issuer and the JWKS URL.

use anyhow::Context as _;
use serde_json::{Value, json};

use super::{Settings, log};
use crate::cognito::try_call;

const POOL_NAME: &str = "order-system-local";
const CLIENT_NAME: &str = "order-system-local-web";
/// The demo customers (README); they share one demo password.
const CUSTOMERS: [(&str, &str); 2] = [
    ("ada@example.com", "Ada Lovelace"),
    ("grace@example.com", "Grace Hopper"),
];
const PASSWORD: &str = "Demo-Customer-1";
const AUTH_FLOWS: [&str; 3] = [
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
];

/// Makes sure the pool, its client and the demo customers exist; writes the settings file.
pub async fn ensure(settings: &Settings) -> anyhow::Result<()> {
    let pool_id = ensure_pool().await?;
    let client_id = ensure_client(&pool_id).await?;
    for (email, name) in CUSTOMERS {
        ensure_customer(&pool_id, email, name).await?;
    }
    write_settings(settings, &pool_id, &client_id)?;
    log(format!(
        "cognito: user pool ready (settings in {})",
        settings.cognito_env().display()
    ));
    Ok(())
}

/// One Cognito call, its failure named after the action.
async fn call(action: &str, body: Value) -> anyhow::Result<Value> {
    try_call(action, body)
        .await
        .map_err(|err| anyhow::anyhow!("Cognito {action}: {err}"))
}

/// Every item of a paginated listing (`key` holds a page's items).
async fn list_all(action: &str, mut body: Value, key: &str) -> anyhow::Result<Vec<Value>> {
    let mut items = Vec::new();
    loop {
        let page = call(action, body.clone()).await?;
        items.extend(page[key].as_array().cloned().unwrap_or_default());
        match page["NextToken"].as_str() {
            Some(token) if !token.is_empty() => body["NextToken"] = json!(token),
            _ => return Ok(items),
        }
    }
}

fn string(value: &Value, field: &str, what: &str) -> anyhow::Result<String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{what} has no {field}: {value}"))
}

/// The pool named [`POOL_NAME`]; should there ever be two, always the same one: the oldest.
async fn ensure_pool() -> anyhow::Result<String> {
    let mut pools: Vec<Value> = list_all("ListUserPools", json!({"MaxResults": 60}), "UserPools")
        .await?
        .into_iter()
        .filter(|pool| pool["Name"] == POOL_NAME)
        .collect();
    pools.sort_by(|a, b| {
        let created = |p: &Value| p["CreationDate"].as_f64().unwrap_or_default();
        created(a)
            .total_cmp(&created(b))
            .then_with(|| a["Id"].as_str().cmp(&b["Id"].as_str()))
    });
    if let Some(pool) = pools.first() {
        let id = string(pool, "Id", "a listed user pool")?;
        log(format!("cognito: user pool {POOL_NAME}: exists ({id})"));
        return Ok(id);
    }
    let created = call(
        "CreateUserPool",
        json!({
            "PoolName": POOL_NAME,
            "UsernameAttributes": ["email"],
            "AutoVerifiedAttributes": ["email"],
            "Schema": [{
                "Name": "email", "AttributeDataType": "String", "Required": true, "Mutable": true
            }],
        }),
    )
    .await?;
    let id = string(&created["UserPool"], "Id", "the created user pool")?;
    log(format!("cognito: user pool {POOL_NAME}: created ({id})"));
    Ok(id)
}

/// The app client named [`CLIENT_NAME`] (the first by id), its auth flows brought back.
async fn ensure_client(pool_id: &str) -> anyhow::Result<String> {
    let listing = json!({"UserPoolId": pool_id, "MaxResults": 60});
    let mut ids: Vec<String> = list_all("ListUserPoolClients", listing, "UserPoolClients")
        .await?
        .iter()
        .filter(|client| client["ClientName"] == CLIENT_NAME)
        .filter_map(|client| client["ClientId"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    if let Some(id) = ids.into_iter().next() {
        call(
            "UpdateUserPoolClient",
            json!({
                "UserPoolId": pool_id, "ClientId": id, "ClientName": CLIENT_NAME,
                "ExplicitAuthFlows": AUTH_FLOWS,
            }),
        )
        .await?;
        log(format!("cognito: app client {CLIENT_NAME}: exists ({id})"));
        return Ok(id);
    }
    let created = call(
        "CreateUserPoolClient",
        json!({
            "UserPoolId": pool_id, "ClientName": CLIENT_NAME, "GenerateSecret": false,
            "ExplicitAuthFlows": AUTH_FLOWS,
        }),
    )
    .await?;
    let id = string(
        &created["UserPoolClient"],
        "ClientId",
        "the created app client",
    )?;
    log(format!("cognito: app client {CLIENT_NAME}: created ({id})"));
    Ok(id)
}

/// A demo customer: confirmed (a permanent password, so no new-password challenge at
/// sign-in), email verified, named.
async fn ensure_customer(pool_id: &str, email: &str, name: &str) -> anyhow::Result<()> {
    let verified_and_named = json!([
        {"Name": "email_verified", "Value": "true"},
        {"Name": "name", "Value": name},
    ]);
    let user = json!({"UserPoolId": pool_id, "Username": email});
    let state = match try_call("AdminGetUser", user).await {
        Ok(_) => {
            // Not the email itself: moto refuses to set an email to the value it already has.
            call(
                "AdminUpdateUserAttributes",
                json!({
                    "UserPoolId": pool_id, "Username": email,
                    "UserAttributes": verified_and_named,
                }),
            )
            .await?;
            "exists"
        }
        Err(err) if err.contains("UserNotFoundException") => {
            let mut attributes = vec![json!({"Name": "email", "Value": email})];
            attributes.extend(verified_and_named.as_array().cloned().unwrap_or_default());
            call(
                "AdminCreateUser",
                json!({
                    "UserPoolId": pool_id, "Username": email,
                    "UserAttributes": attributes, "MessageAction": "SUPPRESS",
                }),
            )
            .await?;
            "created"
        }
        Err(err) => anyhow::bail!("Cognito AdminGetUser {email}: {err}"),
    };
    call(
        "AdminSetUserPassword",
        json!({
            "UserPoolId": pool_id, "Username": email, "Password": PASSWORD, "Permanent": true,
        }),
    )
    .await?;
    log(format!("cognito: customer {email}: {state}"));
    Ok(())
}

/// `$STATE_DIR/cognito.env`, replaced in one rename so a reader never sees half of it.
fn write_settings(settings: &Settings, pool_id: &str, client_id: &str) -> anyhow::Result<()> {
    let region = crate::env("AWS_REGION", &crate::env("AWS_DEFAULT_REGION", "us-east-1"));
    let endpoint = settings.aws_endpoint_url.trim_end_matches('/');
    let lines = [
        ("LOCAL_COGNITO_USER_POOL_ID", pool_id.to_owned()),
        ("LOCAL_COGNITO_CLIENT_ID", client_id.to_owned()),
        ("LOCAL_COGNITO_DEMO_PASSWORD", PASSWORD.to_owned()),
        // The issuer moto writes into its tokens: Cognito's, not the emulator's address.
        (
            "LOCAL_JWT_ISSUER",
            format!("https://cognito-idp.{region}.amazonaws.com/{pool_id}"),
        ),
        ("LOCAL_JWT_AUDIENCE", client_id.to_owned()),
        (
            "LOCAL_JWT_JWKS_URL",
            format!("{endpoint}/{pool_id}/.well-known/jwks.json"),
        ),
    ];
    let mut text = String::from(
        "# Written by scripts/services up: the local Cognito user pool (moto). Do not edit.\n",
    );
    for (key, value) in lines {
        text.push_str(&format!("export {key}={value}\n"));
    }
    let path = settings.cognito_env();
    let tmp = path.with_extension("env.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))
}
