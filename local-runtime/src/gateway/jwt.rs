//! API Gateway's JWT authorizer, locally: the token from the `Authorization` header (with or
//! without `Bearer `), checked as API Gateway documents it checks one:
//!
//! - the header's `alg` is `RS256` (Cognito signs with it; `none` and HMAC are refused) and its
//!   `kid` names a key of the issuer's JWKS, whose signature the token must carry. The JWKS is
//!   fetched over HTTP and cached; an unknown `kid` fetches it again, at most once every
//!   [`JWKS_REFETCH_INTERVAL`].
//! - `iss` equals the configured issuer.
//! - `aud`, when the token has one (Cognito ID tokens), or else `client_id` (Cognito access
//!   tokens), is one of the configured audiences: API Gateway evaluates `aud` whenever it is
//!   present and `client_id` only without it, whatever `token_use` says.
//! - `exp` is after now and `nbf` and `iat` before it, give or take [`CLOCK_SKEW`] (API
//!   Gateway publishes no figure for its tolerance; this is the common one).
//! - `sub` is present (every Cognito token has one; `order-api` needs it).
//!
//! A token that passed is remembered until its `exp` (at most [`VERIFIED_TOKENS`] of them), so
//! that a signed-in customer's next requests cost a map lookup instead of an RSA verification;
//! the expiry is checked again on every use. Nothing else about a valid token can change
//! while it lives, except its key leaving the JWKS, which a remembered token outlives.
//!
//! A valid token's claims are handed on as strings, as API Gateway passes them in
//! `authorizer.jwt.claims`: strings as they are, numbers and booleans as JSON writes them,
//! arrays as `[a b]` and objects as `map[k:v]`; its scopes (`scope`, space-separated, or
//! `scp`) as `authorizer.jwt.scopes`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

pub const ISSUER_VAR: &str = "LOCAL_JWT_ISSUER";
pub const AUDIENCE_VAR: &str = "LOCAL_JWT_AUDIENCE";
pub const JWKS_URL_VAR: &str = "LOCAL_JWT_JWKS_URL";

/// How far `exp`, `nbf` and `iat` may be off.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// The shortest time between two JWKS fetches caused by tokens with an unknown `kid`.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// How many verified tokens are remembered at most; when full, the expired ones are dropped,
/// and when that frees nothing, all of them.
pub const VERIFIED_TOKENS: usize = 10_000;

/// Where one issuer's tokens are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub issuer: String,
    pub audience: Vec<String>,
    pub jwks_url: String,
}

/// The file `scripts/services up` writes the local Cognito settings to.
pub fn state_file() -> PathBuf {
    super::state_dir().join("cognito.env")
}

/// `NAME=value` lines (an `export ` prefix and quotes allowed, `#` comments skipped); an
/// empty map when the file does not exist.
pub fn read_env_file(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (name, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((name.trim().to_owned(), value.to_owned()))
        })
        .collect())
}

/// A local identity setting: the environment variable, else the state file's line.
pub fn setting(name: &str) -> anyhow::Result<Option<String>> {
    if let Some(value) = std::env::var(name).ok().filter(|value| !value.is_empty()) {
        return Ok(Some(value));
    }
    Ok(read_env_file(&state_file())?
        .remove(name)
        .filter(|value| !value.is_empty()))
}

impl JwtSettings {
    /// From the environment, each missing variable from the state file; `None` when none
    /// of the three is set anywhere, an error when only some are.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let issuer = setting(ISSUER_VAR)?;
        let audience = setting(AUDIENCE_VAR)?;
        let jwks_url = setting(JWKS_URL_VAR)?;
        match (issuer, audience, jwks_url) {
            (None, None, None) => Ok(None),
            (Some(issuer), Some(audience), Some(jwks_url)) => {
                let audience: Vec<String> = audience
                    .split(',')
                    .map(str::trim)
                    .filter(|client| !client.is_empty())
                    .map(str::to_owned)
                    .collect();
                if audience.is_empty() {
                    bail!("{AUDIENCE_VAR} names no audience (comma-separated app client ids)");
                }
                Ok(Some(Self {
                    issuer,
                    audience,
                    jwks_url,
                }))
            }
            (issuer, audience, jwks_url) => {
                let missing: Vec<&str> = [
                    (ISSUER_VAR, issuer.is_none()),
                    (AUDIENCE_VAR, audience.is_none()),
                    (JWKS_URL_VAR, jwks_url.is_none()),
                ]
                .into_iter()
                .filter_map(|(name, missing)| missing.then_some(name))
                .collect();
                bail!(
                    "{} not set (nor in {}); set all three JWT settings or none",
                    missing.join(" and "),
                    state_file().display()
                )
            }
        }
    }
}

/// A token the authorizer accepted: what goes into `authorizer.jwt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    pub claims: HashMap<String, String>,
    pub scopes: Option<Vec<String>>,
}

/// A refused request: API Gateway's `401 {"message":"Unauthorized"}`, with a
/// `www-authenticate` header naming what was wrong with the token (none without a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub description: Option<String>,
}

impl Refusal {
    /// No token at all.
    pub fn missing() -> Self {
        Self { description: None }
    }

    /// A token that is not valid, and why.
    pub fn invalid(description: impl Into<String>) -> Self {
        Self {
            description: Some(description.into()),
        }
    }

    pub(crate) fn unauthorized(description: &str) -> Self {
        Self::invalid(description)
    }

    /// The `www-authenticate` value, as API Gateway writes it.
    pub fn challenge(&self) -> String {
        match &self.description {
            None => "Bearer".to_owned(),
            Some(description) => format!(
                r#"Bearer scope="" error="invalid_token" error_description="{}""#,
                description.replace('"', "'")
            ),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let challenge = HeaderValue::from_str(&self.challenge())
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        (
            StatusCode::UNAUTHORIZED,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::WWW_AUTHENTICATE, challenge),
            ],
            r#"{"message":"Unauthorized"}"#,
        )
            .into_response()
    }
}

/// The authorizer of one issuer, with its signing keys cached.
pub struct JwtAuthorizer {
    settings: JwtSettings,
    http: reqwest::Client,
    keys: Mutex<KeyCache>,
    verified: std::sync::Mutex<HashMap<String, Verified>>,
}

/// A token that passed, with the `exp` it must still be before.
#[derive(Clone)]
struct Verified {
    expires_at: u64,
    authorized: Authorized,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

impl JwtAuthorizer {
    pub fn new(settings: JwtSettings) -> anyhow::Result<Self> {
        Ok(Self {
            settings,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .context("cannot build the JWKS client")?,
            keys: Mutex::new(KeyCache::default()),
            verified: std::sync::Mutex::default(),
        })
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// Validates the `Authorization` header's token.
    pub async fn authorize(&self, header: Option<&HeaderValue>) -> Result<Authorized, Refusal> {
        let raw = header
            .map(|value| {
                value
                    .to_str()
                    .map_err(|_| Refusal::invalid("invalid token"))
            })
            .transpose()?
            .map(str::trim)
            .unwrap_or_default();
        // "Bearer" alone (its space trimmed on the way) carries no token either.
        let token = match raw.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => raw[7..].trim(),
            _ if raw.eq_ignore_ascii_case("bearer") => "",
            _ => raw,
        };
        if token.is_empty() {
            return Err(Refusal::missing());
        }
        if let Some(authorized) = self.remembered(token) {
            return Ok(authorized);
        }
        let (authorized, expires_at) = self.verify(token).await?;
        self.remember(token, expires_at, &authorized);
        Ok(authorized)
    }

    /// A token verified before whose `exp` (give or take [`CLOCK_SKEW`]) is still ahead.
    fn remembered(&self, token: &str) -> Option<Authorized> {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        let entry = verified.get(token)?;
        (unix_now() < entry.expires_at + CLOCK_SKEW.as_secs()).then(|| entry.authorized.clone())
    }

    fn remember(&self, token: &str, expires_at: u64, authorized: &Authorized) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_TOKENS {
            let now = unix_now();
            verified.retain(|_, entry| now < entry.expires_at + CLOCK_SKEW.as_secs());
            if verified.len() >= VERIFIED_TOKENS {
                verified.clear();
            }
        }
        verified.insert(
            token.to_owned(),
            Verified {
                expires_at,
                authorized: authorized.clone(),
            },
        );
    }

    /// Every check of the module's list, on a token not seen before; the claims and `exp`.
    async fn verify(&self, token: &str) -> Result<(Authorized, u64), Refusal> {
        let kid = signing_kid(token)?;
        let key = self.key(&kid).await?;
        let claims = self.decode(token, &key)?;
        self.check_claims(&claims)?;

        let scopes = scopes(&claims);
        // `exp` is required above, and a number, or decoding would have failed.
        let expires_at = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let authorized = Authorized {
            claims: claims
                .iter()
                .map(|(name, value)| (name.clone(), claim_string(value)))
                .collect(),
            scopes,
        };
        Ok((authorized, expires_at))
    }

    /// The token's claims, once its signature by `key`, its issuer, `exp` and `nbf` (give or
    /// take [`CLOCK_SKEW`]) and the presence of `exp`, `iss` and `sub` are checked; each
    /// failure described as API Gateway describes it.
    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Map<String, Value>, Refusal> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = CLOCK_SKEW.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // The audience is checked afterwards, by API Gateway's rule (aud, else client_id).
        validation.validate_aud = false;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|err| {
                Refusal::invalid(match err.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                    ErrorKind::ImmatureSignature => "the token is not valid yet".to_owned(),
                    ErrorKind::InvalidIssuer => "the token does not have a valid issuer".to_owned(),
                    ErrorKind::MissingRequiredClaim(claim) => {
                        format!("the token does not have a {claim} claim")
                    }
                    ErrorKind::InvalidSignature => "the token's signature is invalid".to_owned(),
                    ErrorKind::InvalidAlgorithm => "signing method is invalid".to_owned(),
                    _ => "invalid token".to_owned(),
                })
            })?
            .claims;
        Ok(claims)
    }

    /// The checks decoding does not make: `iat` not in the future (give or take
    /// [`CLOCK_SKEW`]), a non-empty `sub` and an accepted audience.
    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), Refusal> {
        let now = unix_now();
        if let Some(iat) = claims.get("iat") {
            match iat.as_u64() {
                Some(iat) if iat <= now + CLOCK_SKEW.as_secs() => {}
                _ => return Err(Refusal::invalid("the token was issued in the future")),
            }
        }
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(Refusal::invalid("the token does not have a sub claim"));
        }
        if !self.audience_matches(claims) {
            return Err(Refusal::invalid("the token does not have a valid audience"));
        }
        Ok(())
    }

    /// `aud` when present (a string or a list, one of which must match), else `client_id`.
    fn audience_matches(&self, claims: &Map<String, Value>) -> bool {
        let accepted = |value: &str| self.settings.audience.iter().any(|a| a == value);
        match claims.get("aud") {
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
            Some(_) => false,
            None => claims
                .get("client_id")
                .and_then(Value::as_str)
                .is_some_and(accepted),
        }
    }

    /// The key for `kid`, fetching the JWKS when it is not known yet (at most once per
    /// [`JWKS_REFETCH_INTERVAL`]).
    async fn key(&self, kid: &str) -> Result<DecodingKey, Refusal> {
        let mut cache = self.keys.lock().await;
        if let Some(key) = cache.keys.get(kid) {
            return Ok(key.clone());
        }
        let due = cache
            .fetched_at
            .is_none_or(|at| at.elapsed() >= JWKS_REFETCH_INTERVAL);
        if due {
            cache.fetched_at = Some(Instant::now());
            match self.fetch_keys().await {
                Ok(keys) => cache.keys = keys,
                Err(err) => tracing::warn!(
                    jwks_url = self.settings.jwks_url,
                    error = format!("{err:#}"),
                    "gateway: could not fetch the JWKS"
                ),
            }
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| Refusal::invalid(format!("no key in the issuer's JWKS has kid {kid}")))
    }

    async fn fetch_keys(&self) -> anyhow::Result<HashMap<String, DecodingKey>> {
        let set: JwkSet = self
            .http
            .get(&self.settings.jwks_url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // Only RSA keys: API Gateway supports no other kind.
            if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(err) => tracing::warn!(kid, error = %err, "gateway: unusable key in the JWKS"),
            }
        }
        tracing::debug!(keys = keys.len(), "gateway: JWKS fetched");
        Ok(keys)
    }
}

/// The `kid` of the token's header, once its `alg` is `RS256`. The header is read by hand,
/// so that `none` and HMAC tokens are refused for their algorithm before anything else looks
/// at them.
fn signing_kid(token: &str) -> Result<String, Refusal> {
    let header = token
        .split('.')
        .next()
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .ok_or_else(|| Refusal::invalid("invalid token"))?;
    match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => {}
        Some(other) => {
            return Err(Refusal::invalid(format!(
                "signing method {other} is invalid"
            )));
        }
        None => return Err(Refusal::invalid("invalid token")),
    }
    header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Refusal::invalid("the token has no kid"))
}

/// The token's scopes, as API Gateway reads them: `scope` (space-separated), else `scp` (a
/// list, or space-separated).
fn scopes(claims: &Map<String, Value>) -> Option<Vec<String>> {
    match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(scope)), _) => {
            Some(scope.split_whitespace().map(str::to_owned).collect())
        }
        (_, Some(Value::Array(scp))) => Some(
            scp.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        (_, Some(Value::String(scp))) => Some(scp.split_whitespace().map(str::to_owned).collect()),
        _ => None,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A claim as API Gateway hands it to the function: a string.
pub fn claim_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(claim_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", claim_string(v)))
                .collect();
            entries.sort();
            format!("map[{}]", entries.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_become_strings_as_api_gateway_writes_them() {
        assert_eq!(claim_string(&json!("ada")), "ada");
        assert_eq!(claim_string(&json!(1_700_000_000)), "1700000000");
        assert_eq!(claim_string(&json!(true)), "true");
        assert_eq!(claim_string(&json!(["admin", "staff"])), "[admin staff]");
        assert_eq!(claim_string(&json!({"b": 2, "a": "x"})), "map[a:x b:2]");
    }

    #[test]
    fn refusals_answer_as_api_gateway_does() {
        assert_eq!(Refusal::missing().challenge(), "Bearer");
        assert_eq!(
            Refusal::invalid("the token has expired").challenge(),
            r#"Bearer scope="" error="invalid_token" error_description="the token has expired""#
        );
    }

    #[test]
    fn a_remembered_token_serves_until_it_expires() {
        let authorizer = JwtAuthorizer::new(JwtSettings {
            issuer: "https://issuer".to_owned(),
            audience: vec!["client".to_owned()],
            jwks_url: "http://127.0.0.1:9/jwks.json".to_owned(),
        })
        .unwrap();
        let authorized = Authorized {
            claims: HashMap::from([("sub".to_owned(), "ada".to_owned())]),
            scopes: None,
        };
        let now = unix_now();
        authorizer.remember("live", now + 300, &authorized);
        authorizer.remember("lapsed", now - CLOCK_SKEW.as_secs() - 1, &authorized);
        assert_eq!(authorizer.remembered("live"), Some(authorized));
        assert_eq!(authorizer.remembered("lapsed"), None);
        assert_eq!(authorizer.remembered("never seen"), None);
    }

    #[test]
    fn the_state_file_reads_export_lines() {
        let dir = std::env::temp_dir().join(format!("gateway-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cognito.env");
        std::fs::write(
            &file,
            "# comment\nexport LOCAL_JWT_ISSUER=https://issuer\nLOCAL_JWT_AUDIENCE=\"a,b\"\n",
        )
        .unwrap();
        let values = read_env_file(&file).unwrap();
        assert_eq!(values["LOCAL_JWT_ISSUER"], "https://issuer");
        assert_eq!(values["LOCAL_JWT_AUDIENCE"], "a,b");
        assert!(read_env_file(&dir.join("absent.env")).unwrap().is_empty());
    }
}
