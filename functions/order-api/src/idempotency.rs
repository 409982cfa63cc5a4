//! Idempotent POSTs: the `Idempotency-Key` header, parsed at the HTTP edge, and the
//! fingerprint of the request it was first sent with, so that a reused key with another body
//! is told apart from a retry.

use sha2::{Digest, Sha256};
use shared::domain::{EmailAddress, Invalid, NewOrder, PaymentMethodId};

/// A client-chosen key (1–255 characters) that makes retrying a POST safe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if chars == 0 {
            return Err(Invalid("must not be empty".to_owned()));
        }
        if chars > Self::MAX_CHARS {
            return Err(Invalid(format!(
                "must be at most {} characters, got {chars}",
                Self::MAX_CHARS
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of the canonical form of a validated request, so that a reused key with another
/// body is detected. Field order is fixed by the struct, values are already normalised.
///
/// A customer's account is part of it, so that another account (or a guest) that sends the
/// same key and body is told the key is taken rather than shown someone else's order.
pub fn request_fingerprint(order: &NewOrder, owner_sub: Option<&str>) -> [u8; 32] {
    #[derive(serde::Serialize)]
    struct Canonical<'a> {
        customer_email: Option<&'a str>,
        customer_name: &'a str,
        product_name: &'a str,
        quantity: i32,
        // Absent when not given, so that a request without it keeps the fingerprint it had
        // before payments existed.
        #[serde(skip_serializing_if = "Option::is_none")]
        payment_method: Option<&'a str>,
        // Absent for a guest, likewise.
        #[serde(skip_serializing_if = "Option::is_none")]
        customer_sub: Option<&'a str>,
    }
    let canonical = Canonical {
        customer_email: order.customer_email.as_ref().map(EmailAddress::as_str),
        customer_name: order.customer_name.as_str(),
        product_name: order.product_name.as_str(),
        quantity: order.quantity.get(),
        payment_method: order.payment_method.as_ref().map(PaymentMethodId::as_str),
        customer_sub: owner_sub,
    };
    let bytes = serde_json::to_vec(&canonical).expect("plain structs always serialise");
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::{CustomerName, ProductName, Quantity};

    fn order(name: &str, quantity: i64) -> NewOrder {
        NewOrder {
            customer_name: CustomerName::parse(name).unwrap(),
            customer_email: None,
            product_name: ProductName::parse("Laptop").unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
            payment_method: None,
        }
    }

    #[test]
    fn fingerprints_depend_on_every_field_and_only_on_validated_values() {
        assert_eq!(
            request_fingerprint(&order("Ada", 1), None),
            request_fingerprint(&order("  Ada ", 1), None)
        );
        assert_ne!(
            request_fingerprint(&order("Ada", 1), None),
            request_fingerprint(&order("Ada", 2), None)
        );
        let mut with_email = order("Ada", 1);
        with_email.customer_email = Some(EmailAddress::parse("ada@example.com").unwrap());
        assert_ne!(
            request_fingerprint(&order("Ada", 1), None),
            request_fingerprint(&with_email, None)
        );
        // Another account's request with the same key and body is another request.
        assert_ne!(
            request_fingerprint(&order("Ada", 1), Some("sub-a")),
            request_fingerprint(&order("Ada", 1), Some("sub-b"))
        );
        assert_ne!(
            request_fingerprint(&order("Ada", 1), Some("sub-a")),
            request_fingerprint(&order("Ada", 1), None)
        );
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }
}
