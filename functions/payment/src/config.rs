//! Settings of the payment function (docs/configuration.md), read once per cold start.

use shared::db::Role;
use std::collections::HashMap;

use secrecy::SecretString;
use serde::Deserialize;
use shared::config::{
    ConfigError, DatabaseSettings, KafkaSettings, SecretError, Secrets, from_source,
    per_invocation_pool_size, variables_with_connections,
};

/// Stripe's own API, used unless `STRIPE_API_BASE` points elsewhere (localstripe locally).
pub const STRIPE_API_BASE: &str = "https://api.stripe.com";

/// Where the Stripe secret key comes from.
#[derive(Clone)]
pub enum StripeKey {
    /// `STRIPE_API_KEY`, for local runs (localstripe takes any `sk_test_` key).
    Local(SecretString),
    /// `STRIPE_SECRET_ARN`: a Secrets Manager secret `{"apiKey": "sk_..."}`, read once per
    /// cold start.
    Secret { arn: String },
}

impl std::fmt::Debug for StripeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(_) => f.write_str("Local(<key>)"),
            Self::Secret { arn } => write!(f, "Secret({arn:?})"),
        }
    }
}

/// The secret's JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StripeSecret {
    api_key: SecretString,
}

impl StripeKey {
    /// The key itself, from the secret when it is one.
    pub async fn resolve(&self, secrets: &Secrets) -> Result<SecretString, SecretError> {
        match self {
            Self::Local(key) => Ok(key.clone()),
            Self::Secret { arn } => Ok(secrets.json::<StripeSecret>(arn).await?.api_key),
        }
    }
}

/// How to reach Stripe.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub api_base: String,
    pub key: StripeKey,
}

/// Everything the function needs to build its pool, producer and Stripe client.
#[derive(Clone)]
pub struct PaymentConfig {
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub stripe: StripeSettings,
    /// Pool size (`DB_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// Stripe calls of one batch in flight at once (`PAYMENT_CONCURRENCY`, 1–64, 8 by default).
    pub concurrency: usize,
}

#[derive(Deserialize)]
struct RawPaymentSettings {
    db_max_connections: Option<u32>,
    payment_concurrency: Option<usize>,
    stripe_api_base: Option<String>,
    stripe_api_key: Option<SecretString>,
    stripe_secret_arn: Option<String>,
}

impl PaymentConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(None)
    }

    /// Every variable [`Self::from_env`] reads (the template contract test compares them
    /// with `template.yaml`).
    pub fn variables() -> Vec<String> {
        let mut names = variables_with_connections::<RawPaymentSettings>();
        names.push(shared::metrics::emf::NAMESPACE_VARIABLE.to_owned());
        names.push(shared::trace::export::ENDPOINT_VARIABLE.to_owned());
        names
    }

    /// As [`Self::from_env`], from an explicit map of variables.
    pub fn from_source(variables: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let raw: RawPaymentSettings = from_source(variables.clone())?;
        // One connection per batch served at once on Managed Instances (docs/configuration.md).
        let max_connections = per_invocation_pool_size(raw.db_max_connections, variables.clone())?;
        let concurrency = raw.payment_concurrency.unwrap_or(8);
        if !(1..=64).contains(&concurrency) {
            return Err(ConfigError::new(
                "PAYMENT_CONCURRENCY",
                "must be between 1 and 64",
            ));
        }
        let key = match (raw.stripe_secret_arn, raw.stripe_api_key) {
            (Some(arn), _) if !arn.is_empty() => StripeKey::Secret { arn },
            (_, Some(key)) => StripeKey::Local(key),
            _ => {
                return Err(ConfigError::new(
                    "STRIPE_SECRET_ARN",
                    "is required when STRIPE_API_KEY is not set",
                ));
            }
        };
        let api_base = raw
            .stripe_api_base
            .unwrap_or_else(|| STRIPE_API_BASE.to_owned());
        let parsed = reqwest::Url::parse(&api_base)
            .map_err(|err| ConfigError::new("STRIPE_API_BASE", err.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::new(
                "STRIPE_API_BASE",
                "must be an http or https URL",
            ));
        }
        Ok(Self {
            database: DatabaseSettings::from_source(variables.clone())?,
            kafka: KafkaSettings::from_source(variables)?,
            stripe: StripeSettings {
                api_base: api_base.trim_end_matches('/').to_owned(),
                key,
            },
            max_connections,
            concurrency,
        })
    }
}

shared::impl_connection_settings!(PaymentConfig, Role::Payment);

#[cfg(test)]
mod tests {
    use super::*;

    use shared::config::variable_map as vars;

    const BASE: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders"),
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Result<PaymentConfig, ConfigError> {
        let mut pairs = BASE.to_vec();
        pairs.extend_from_slice(extra);
        PaymentConfig::from_source(vars(&pairs))
    }

    #[test]
    fn a_local_key_and_base_are_read_with_defaults() {
        let config = with(&[
            ("STRIPE_API_KEY", "sk_test_local"),
            ("STRIPE_API_BASE", "http://127.0.0.1:8420/"),
        ])
        .unwrap();
        assert!(matches!(config.stripe.key, StripeKey::Local(_)));
        assert_eq!(config.stripe.api_base, "http://127.0.0.1:8420");
        assert_eq!((config.max_connections, config.concurrency), (2, 8));
    }

    #[test]
    fn the_secret_wins_and_stripe_itself_is_the_default_base() {
        let config = with(&[
            (
                "STRIPE_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:stripe",
            ),
            ("STRIPE_API_KEY", "sk_test_local"),
        ])
        .unwrap();
        assert!(matches!(config.stripe.key, StripeKey::Secret { .. }));
        assert_eq!(config.stripe.api_base, STRIPE_API_BASE);
    }

    #[test]
    fn a_missing_key_and_bad_values_are_named() {
        assert_eq!(with(&[]).err().unwrap().variable, "STRIPE_SECRET_ARN");
        let bad_base = with(&[("STRIPE_API_KEY", "k"), ("STRIPE_API_BASE", "ftp://x")]);
        assert_eq!(bad_base.err().unwrap().variable, "STRIPE_API_BASE");
        let bad_concurrency = with(&[("STRIPE_API_KEY", "k"), ("PAYMENT_CONCURRENCY", "0")]);
        assert_eq!(
            bad_concurrency.err().unwrap().variable,
            "PAYMENT_CONCURRENCY"
        );
    }
}
