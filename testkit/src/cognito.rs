//! Cognito user pools on the local emulator (moto, `AWS_ENDPOINT_URL`), for tests of who is
//! calling: a fresh pool, app client and customer per test (unique names), real sign-ins
//! that return real ID and access tokens, and forged tokens for the refusals.
//!
//! The emulator is driven through Cognito's JSON API directly (`X-Amz-Target` calls), which is
//! all a test needs; the credential scope of the `Authorization` header tells moto the region
//! (it does not check signatures).
//!
//! Forging: moto signs every pool's tokens with the one RSA key it ships (the
//! `jwks-private.json` of its `cognitoidp` resources, `kid` `dummy`). [`Forge`] re-signs a
//! real token's claims with that key after changing one thing (expired, another audience, no
//! `sub`, another `token_use`), so that the signature is valid and only the change is wrong;
//! or signs them with a key of its own (under moto's `kid` or an unknown one), or not at all
//! (`alg: none`), or with HS256. The keys come from moto's venv Python (`MOTO_PYTHON`, else
//! `.tools/venv/bin/python`, which `scripts/services up` installs).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

/// The password every test customer gets (it meets Cognito's default policy).
pub const PASSWORD: &str = "Test-Customer-1";

/// One Cognito API call to the emulator; panics with the emulator's answer on failure.
pub async fn call(action: &str, body: Value) -> Value {
    try_call(action, body)
        .await
        .unwrap_or_else(|err| panic!("Cognito {action}: {err}"))
}

/// As [`call`], with the failure (status, `__type`, message) as an error.
pub async fn try_call(action: &str, body: Value) -> Result<Value, String> {
    let endpoint = crate::env("AWS_ENDPOINT_URL", "http://127.0.0.1:4566");
    let region = region();
    let response = reqwest::Client::new()
        .post(format!("{}/", endpoint.trim_end_matches('/')))
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "X-Amz-Target",
            format!("AWSCognitoIdentityProviderService.{action}"),
        )
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=test/20240101/{region}/cognito-idp/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
        )
        .body(body.to_string())
        .send()
        .await
        .map_err(|err| {
            format!("the emulator at {endpoint} does not answer (scripts/services up): {err}")
        })?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(answer)
    } else {
        Err(format!(
            "{status}: {} {}",
            answer["__type"].as_str().unwrap_or_default(),
            answer["message"].as_str().unwrap_or_default()
        ))
    }
}

fn region() -> String {
    crate::env("AWS_REGION", "us-east-1")
}

/// A user pool of the test's own, with one app client that signs in with passwords.
#[derive(Debug, Clone)]
pub struct Pool {
    pub id: String,
    pub client_id: String,
}

/// A confirmed customer with a verified email and a permanent password.
#[derive(Debug, Clone)]
pub struct Customer {
    pub email: String,
    pub password: String,
    /// The account's `sub`, as the tokens carry it.
    pub sub: String,
}

/// The tokens of one sign-in.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
}

impl Pool {
    /// A fresh pool (email as the username, emails verified) and app client, named
    /// `<prefix>-<unique>`.
    pub async fn create(prefix: &str) -> Self {
        let name = format!("{prefix}-{}", uuid::Uuid::now_v7().simple());
        let pool = call(
            "CreateUserPool",
            json!({
                "PoolName": name,
                "UsernameAttributes": ["email"],
                "AutoVerifiedAttributes": ["email"],
            }),
        )
        .await;
        let id = pool["UserPool"]["Id"]
            .as_str()
            .expect("a created pool has an id")
            .to_owned();
        let mut pool = Self {
            id,
            client_id: String::new(),
        };
        pool.client_id = pool.add_client(&format!("{name}-web")).await;
        pool
    }

    /// Another app client of this pool (no secret, password sign-in); its id.
    pub async fn add_client(&self, name: &str) -> String {
        let client = call(
            "CreateUserPoolClient",
            json!({
                "UserPoolId": self.id,
                "ClientName": name,
                "GenerateSecret": false,
                "ExplicitAuthFlows": [
                    "ALLOW_USER_PASSWORD_AUTH",
                    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
                    "ALLOW_REFRESH_TOKEN_AUTH"
                ],
            }),
        )
        .await;
        client["UserPoolClient"]["ClientId"]
            .as_str()
            .expect("a created client has an id")
            .to_owned()
    }

    /// The issuer moto writes into this pool's tokens (Cognito's, not the emulator's address).
    pub fn issuer(&self) -> String {
        format!("https://cognito-idp.{}.amazonaws.com/{}", region(), self.id)
    }

    /// Where the emulator serves this pool's signing keys.
    pub fn jwks_url(&self) -> String {
        format!(
            "{}/{}/.well-known/jwks.json",
            crate::env("AWS_ENDPOINT_URL", "http://127.0.0.1:4566").trim_end_matches('/'),
            self.id
        )
    }

    /// A customer with a unique address (`<local>-<unique>@example.com`), confirmed, email
    /// verified, with the permanent password [`PASSWORD`].
    pub async fn create_customer(&self, local: &str) -> Customer {
        let email = format!("{local}-{}@example.com", uuid::Uuid::now_v7().simple());
        call(
            "AdminCreateUser",
            json!({
                "UserPoolId": self.id,
                "Username": email,
                "MessageAction": "SUPPRESS",
                "UserAttributes": [
                    {"Name": "email", "Value": email},
                    {"Name": "email_verified", "Value": "true"},
                ],
            }),
        )
        .await;
        call(
            "AdminSetUserPassword",
            json!({
                "UserPoolId": self.id,
                "Username": email,
                "Password": PASSWORD,
                "Permanent": true,
            }),
        )
        .await;
        let user = call(
            "AdminGetUser",
            json!({ "UserPoolId": self.id, "Username": email }),
        )
        .await;
        assert_eq!(
            user["UserStatus"], "CONFIRMED",
            "a customer with a permanent password is confirmed"
        );
        let sub = user["UserAttributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|attribute| attribute["Name"] == "sub")
            .and_then(|attribute| attribute["Value"].as_str())
            .expect("every Cognito user has a sub")
            .to_owned();
        Customer {
            email,
            password: PASSWORD.to_owned(),
            sub,
        }
    }

    /// Signs `customer` in through this pool's app client (`USER_PASSWORD_AUTH`).
    pub async fn sign_in(&self, customer: &Customer) -> Tokens {
        self.sign_in_with(&self.client_id, customer).await
    }

    /// Signs `customer` in through the app client `client_id`.
    pub async fn sign_in_with(&self, client_id: &str, customer: &Customer) -> Tokens {
        let answer = call(
            "InitiateAuth",
            json!({
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": client_id,
                "AuthParameters": {
                    "USERNAME": customer.email,
                    "PASSWORD": customer.password,
                },
            }),
        )
        .await;
        let result = &answer["AuthenticationResult"];
        let token = |name: &str| {
            result[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in the sign-in's answer: {answer}"))
                .to_owned()
        };
        Tokens {
            id_token: token("IdToken"),
            access_token: token("AccessToken"),
        }
    }
}

/// A token's claims, read without checking anything.
pub fn claims(token: &str) -> Map<String, Value> {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(payload)
            .expect("the payload is base64url"),
    )
    .expect("the payload is a JSON object")
}

/// A token's header, read without checking anything.
pub fn header(token: &str) -> Map<String, Value> {
    let header = token.split('.').next().expect("a JWT has a header");
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(header)
            .expect("the header is base64url"),
    )
    .expect("the header is a JSON object")
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

struct Keys {
    /// The key moto signs every token with.
    moto: EncodingKey,
    /// moto's public modulus, the secret of the HS256 key-confusion forgery.
    moto_modulus: Vec<u8>,
    /// A key of the forger's own.
    other: EncodingKey,
}

/// The Python of moto's venv.
pub fn moto_python() -> PathBuf {
    std::env::var_os("MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("TOOLS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools"))
                .join("venv/bin/python")
        })
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        const SCRIPT: &str = r#"
import json
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey
from moto.utilities.utils import load_resource

moto = RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))
other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
print(json.dumps({
    "moto": moto.as_pem(private=True).decode(),
    "moto_n": moto.as_dict()["n"],
    "other": other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode(),
}))
"#;
        let python = moto_python();
        let output = std::process::Command::new(&python)
            .args(["-c", SCRIPT])
            .output()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run {} (scripts/services up installs moto): {err}",
                    python.display()
                )
            });
        assert!(
            output.status.success(),
            "{} could not read moto's signing key: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let keys: Value =
            serde_json::from_slice(&output.stdout).expect("the key script prints JSON");
        let pem = |name: &str| {
            EncodingKey::from_rsa_pem(keys[name].as_str().expect("a PEM").as_bytes())
                .unwrap_or_else(|err| panic!("the {name} key is a usable RSA key: {err}"))
        };
        Keys {
            moto: pem("moto"),
            moto_modulus: URL_SAFE_NO_PAD
                .decode(keys["moto_n"].as_str().expect("moto's modulus"))
                .expect("the modulus is base64url"),
            other: pem("other"),
        }
    })
}

/// Forged variants of a real token (`genuine`, from [`Pool::sign_in`]).
pub struct Forge<'a> {
    genuine: &'a str,
}

impl<'a> Forge<'a> {
    pub fn new(genuine: &'a str) -> Self {
        Self { genuine }
    }

    fn kid(&self) -> String {
        header(self.genuine)["kid"]
            .as_str()
            .expect("moto's tokens name their key")
            .to_owned()
    }

    /// The claims changed by `change`, signed with moto's own key: valid but for the change.
    pub fn resigned(&self, change: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut claims = claims(self.genuine);
        change(&mut claims);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid());
        jsonwebtoken::encode(&header, &claims, &keys().moto).expect("moto's key signs")
    }

    /// The token as it is, re-signed with moto's key (proves the re-signing itself is sound).
    pub fn unchanged(&self) -> String {
        self.resigned(|_| {})
    }

    /// Expired an hour ago (issued two hours ago).
    pub fn expired(&self) -> String {
        let now = now();
        self.resigned(|claims| {
            claims.insert("iat".into(), json!(now - 7200));
            claims.insert("auth_time".into(), json!(now - 7200));
            claims.insert("exp".into(), json!(now - 3600));
        })
    }

    /// Not valid for another hour (`nbf`).
    pub fn not_yet_valid(&self) -> String {
        let later = now() + 3600;
        self.resigned(|claims| {
            claims.insert("nbf".into(), json!(later));
        })
    }

    /// For another app client: `aud` (ID tokens) or `client_id` (access tokens) replaced.
    pub fn for_audience(&self, audience: &str) -> String {
        self.resigned(|claims| {
            let field = if claims.contains_key("aud") {
                "aud"
            } else {
                "client_id"
            };
            claims.insert(field.into(), json!(audience));
        })
    }

    /// From another issuer.
    pub fn with_issuer(&self, issuer: &str) -> String {
        self.resigned(|claims| {
            claims.insert("iss".into(), json!(issuer));
        })
    }

    /// Without the claim `name` (such as `sub`).
    pub fn without(&self, name: &str) -> String {
        self.resigned(|claims| {
            claims.remove(name);
        })
    }

    /// With `token_use` set to `token_use` (`id`, `access`, or anything else).
    pub fn with_token_use(&self, token_use: &str) -> String {
        self.resigned(|claims| {
            claims.insert("token_use".into(), json!(token_use));
        })
    }

    /// The genuine claims signed with another RSA key, under moto's `kid`.
    pub fn signed_by_other_key(&self) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid());
        jsonwebtoken::encode(&header, &claims(self.genuine), &keys().other)
            .expect("the other key signs")
    }

    /// The genuine claims signed with another RSA key, under a `kid` the pool does not have.
    pub fn signed_by_unknown_kid(&self) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(format!("forged-{}", uuid::Uuid::now_v7().simple()));
        jsonwebtoken::encode(&header, &claims(self.genuine), &keys().other)
            .expect("the other key signs")
    }

    /// The genuine claims with `alg: none` and no signature.
    pub fn alg_none(&self) -> String {
        let header = json!({ "alg": "none", "typ": "JWT", "kid": self.kid() });
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims(self.genuine)).to_string())
        )
    }

    /// The genuine claims signed with HS256, keyed with moto's public modulus (the classic
    /// confusion of a public key with an HMAC secret).
    pub fn hs256(&self) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid());
        jsonwebtoken::encode(
            &header,
            &claims(self.genuine),
            &EncodingKey::from_secret(&keys().moto_modulus).expect("a non-empty secret"),
        )
        .expect("HMAC signs")
    }
}
