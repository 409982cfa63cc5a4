//! Validated domain types. Each is parsed once at the edge, so code past the edge never re-checks.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value was refused; the message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid(message.into())
}

/// A trimmed, non-empty name of at most 255 characters (the width of the original columns).
fn parse_name(raw: &str) -> Result<String, Invalid> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(invalid("must not be empty"));
    }
    let chars = trimmed.chars().count();
    if chars > NAME_MAX_CHARS {
        return Err(invalid(format!(
            "must be at most {NAME_MAX_CHARS} characters, got {chars}"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

/// The widest name the schema stores.
pub const NAME_MAX_CHARS: usize = 255;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Trims and validates a raw value.
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                parse_name(raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// The customer's display name, as given.
    CustomerName
);
name_type!(
    /// A product's name; it is also the stock key and the Kafka key of `order-placed`.
    ProductName
);

/// How many units an order asks for: 1 to 10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Quantity(i32);

impl Quantity {
    pub const MIN: i64 = 1;
    pub const MAX: i64 = 10_000;

    pub fn new(value: i64) -> Result<Self, Invalid> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            Ok(Self(value as i32))
        } else {
            Err(invalid(format!(
                "must be between {} and {}, got {value}",
                Self::MIN,
                Self::MAX
            )))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// A stock level: 0 to 1,000,000 units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct StockLevel(i32);

impl StockLevel {
    pub const MAX: i64 = 1_000_000;

    pub fn new(value: i64) -> Result<Self, Invalid> {
        if (0..=Self::MAX).contains(&value) {
            Ok(Self(value as i32))
        } else {
            Err(invalid(format!(
                "must be between 0 and {}, got {value}",
                Self::MAX
            )))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// A syntactically valid mail address of at most 254 characters (RFC 5321's path limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(invalid(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        // `email_address` follows RFC 5322 closely; we also insist on a dotted domain so that
        // obvious typos such as `jane@example` are refused before a mail bounces.
        let parsed = email_address::EmailAddress::parse_with_options(
            trimmed,
            email_address::Options::default().without_display_text(),
        )
        .map_err(|_| invalid("must be a valid email address"))?;
        if !parsed.domain().contains('.') {
            return Err(invalid("must be a valid email address"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an order is in its life: placed by the API, then decided once by inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Placed,
    Confirmed,
    Rejected,
}

impl OrderStatus {
    /// The value stored in `orders.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "PLACED",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "PLACED" => Ok(Self::Placed),
            "CONFIRMED" => Ok(Self::Confirmed),
            "REJECTED" => Ok(Self::Rejected),
            _ => Err(invalid("must be one of PLACED, CONFIRMED, REJECTED")),
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why inventory refused an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectionReason {
    OutOfStock,
    UnknownProduct,
}

impl RejectionReason {
    /// The value stored in `orders.rejection_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "OUT_OF_STOCK",
            Self::UnknownProduct => "UNKNOWN_PRODUCT",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "OUT_OF_STOCK" => Ok(Self::OutOfStock),
            "UNKNOWN_PRODUCT" => Ok(Self::UnknownProduct),
            _ => Err(invalid("must be one of OUT_OF_STOCK, UNKNOWN_PRODUCT")),
        }
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated order request; only the API builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_name: CustomerName,
    pub customer_email: Option<EmailAddress>,
    pub product_name: ProductName,
    pub quantity: Quantity,
}

/// Orders and events are identified by UUIDv7, so ids sort by creation time.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(CustomerName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(CustomerName::parse("   ").is_err());
        assert!(ProductName::parse(&"x".repeat(255)).is_ok());
        assert!(ProductName::parse(&"x".repeat(256)).is_err());
        // Characters, not bytes, are counted.
        assert!(ProductName::parse(&"é".repeat(255)).is_ok());
        assert!(ProductName::parse("tab\tinside").is_err());
    }

    #[test]
    fn names_keep_sql_metacharacters_and_unicode() {
        let raw = "Robert'); DROP TABLE orders;-- 🚀 Ünïcode";
        assert_eq!(CustomerName::parse(raw).unwrap().as_str(), raw);
    }

    #[test]
    fn quantity_accepts_one_to_ten_thousand() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-1).is_err());
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert_eq!(Quantity::new(10_000).unwrap().get(), 10_000);
        assert!(Quantity::new(10_001).is_err());
    }

    #[test]
    fn stock_level_accepts_zero_to_a_million() {
        assert!(StockLevel::new(-1).is_err());
        assert_eq!(StockLevel::new(0).unwrap().get(), 0);
        assert!(StockLevel::new(1_000_000).is_ok());
        assert!(StockLevel::new(1_000_001).is_err());
    }

    #[test]
    fn email_addresses_are_checked() {
        assert!(EmailAddress::parse("jane.doe@example.com").is_ok());
        assert!(EmailAddress::parse("not-an-email").is_err());
        assert!(EmailAddress::parse("jane@example").is_err());
        assert!(EmailAddress::parse("Jane <jane@example.com>").is_err());
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
    }

    #[test]
    fn statuses_round_trip_through_their_column_values() {
        for status in [
            OrderStatus::Placed,
            OrderStatus::Confirmed,
            OrderStatus::Rejected,
        ] {
            assert_eq!(OrderStatus::parse(status.as_str()).unwrap(), status);
        }
        for reason in [RejectionReason::OutOfStock, RejectionReason::UnknownProduct] {
            assert_eq!(RejectionReason::parse(reason.as_str()).unwrap(), reason);
        }
    }
}
