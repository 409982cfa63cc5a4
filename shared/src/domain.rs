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

/// `sqlx::Decode` through the type's own parser, so that a row read back is a domain value
/// (`SELECT customer_name AS "customer_name: CustomerName"`), and a corrupt one an error.
macro_rules! decode_with {
    ($type:ty, $raw:ty, $parse:expr) => {
        impl sqlx::Type<sqlx::Postgres> for $type {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <$raw as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <$raw as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $type {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let raw = <$raw as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok($parse(raw)?)
            }
        }
    };
}

/// `Deserialize` through the type's own parser, so that a value decoded from an event is
/// checked exactly as one parsed from a request: past the edge, nobody checks it again.
macro_rules! deserialize_with {
    ($type:ty, $raw:ty, $parse:expr) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <$raw>::deserialize(deserializer)?;
                $parse(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A trimmed, non-empty name of at most 255 characters (the width of the original columns),
/// without control characters. [`NAME_PATTERN`] states the same rule as a regular expression.
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

/// The names [`CustomerName::parse`] and [`ProductName::parse`] accept, as a JSON Schema
/// `pattern` for the OpenAPI document: white space that trimming removes (Unicode
/// `White_Space`, as [`str::trim`]), then 1 to 255 characters without control characters
/// (Unicode `Cc`) that neither start nor end with white space, then white space again.
/// Escapes are `\uXXXX` only, which ECMA-262, Python's `re` and Rust's `regex` read alike.
pub const NAME_PATTERN: &str = concat!(
    r"^[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*",
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"(?:[^\u0000-\u001f\u007f-\u009f]{0,253}",
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?",
    r"[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
);

/// The OpenAPI schema of a name: a string matching [`NAME_PATTERN`].
fn name_schema(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(NAME_PATTERN))
        .into()
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $schema_description:literal) => {
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

        /// So that a test can compare a name with a literal.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                name_schema($schema_description)
            }
        }

        impl utoipa::ToSchema for $name {}

        deserialize_with!($name, String, |raw: String| Self::parse(&raw));
        decode_with!($name, String, |raw: String| Self::parse(&raw));
    };
}

name_type!(
    /// The customer's display name, as given.
    CustomerName,
    "The customer's name: 1–255 characters once surrounding white space is trimmed (as it is \
     before the name is stored), no control characters."
);
name_type!(
    /// A product's name; it is also the stock key and the Kafka key of `order-placed`.
    ProductName,
    "A product's name: 1–255 characters once surrounding white space is trimmed (as it is \
     before the name is stored), no control characters."
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

deserialize_with!(Quantity, i64, Quantity::new);
decode_with!(Quantity, i32, |raw: i32| Quantity::new(raw.into()));

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

/// A product's price per unit in the smallest unit of its currency (cents for `usd`), as
/// Stripe counts amounts: 0 to 100,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct UnitAmount(i64);

impl UnitAmount {
    pub const MAX: i64 = 100_000_000;

    pub fn new(value: i64) -> Result<Self, Invalid> {
        if (0..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(invalid(format!(
                "must be between 0 and {}, got {value}",
                Self::MAX
            )))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// The ISO 4217 codes of the currencies in circulation, lower case, as Stripe writes them.
/// Fund codes (`usn`, `clf`, ...), precious metals and the testing codes are not currencies
/// a customer pays in, so they are left out.
pub const CURRENCIES: [&str; 158] = [
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "btn", "bwp", "byn", "bzd", "cad",
    "cdf", "chf", "clp", "cny", "cop", "crc", "cup", "cve", "czk", "djf", "dkk", "dop", "dzd",
    "egp", "ern", "etb", "eur", "fjd", "fkp", "gbp", "gel", "ghs", "gip", "gmd", "gnf", "gtq",
    "gyd", "hkd", "hnl", "htg", "huf", "idr", "ils", "inr", "iqd", "irr", "isk", "jmd", "jod",
    "jpy", "kes", "kgs", "khr", "kmf", "kpw", "krw", "kwd", "kyd", "kzt", "lak", "lbp", "lkr",
    "lrd", "lsl", "lyd", "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop", "mru", "mur", "mvr",
    "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr", "nzd", "omr", "pab", "pen",
    "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub", "rwf", "sar", "sbd", "scr",
    "sdg", "sek", "sgd", "shp", "sle", "sll", "sos", "srd", "ssp", "stn", "svc", "syp", "szl",
    "thb", "tjs", "tmt", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu",
    "uzs", "ved", "ves", "vnd", "vuv", "wst", "xaf", "xcd", "xcg", "xof", "xpf", "yer", "zar",
    "zmw", "zwg",
];

/// An ISO 4217 currency code in lower case, one of [`CURRENCIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Currency(&'static str);

impl Currency {
    /// Prices set without a currency are in US dollars.
    pub const DEFAULT: Self = Self("usd");

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        CURRENCIES
            .iter()
            .find(|code| **code == raw)
            .map(|code| Self(code))
            .ok_or_else(|| {
                invalid(format!(
                    "must be an ISO 4217 currency code in lower case, such as usd or eur; got {raw:?}"
                ))
            })
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// How many digits its smallest unit lies below the unit people count in: Stripe counts
    /// some currencies in whole units and some in thousandths, the rest in hundredths.
    pub fn decimals(self) -> u32 {
        const ZERO_DECIMAL: [&str; 16] = [
            "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
            "vuv", "xaf", "xof", "xpf",
        ];
        const THREE_DECIMAL: [&str; 5] = ["bhd", "jod", "kwd", "omr", "tnd"];
        if ZERO_DECIMAL.contains(&self.0) {
            0
        } else if THREE_DECIMAL.contains(&self.0) {
            3
        } else {
            2
        }
    }
}

deserialize_with!(Currency, String, |raw: String| Currency::parse(&raw));
decode_with!(Currency, String, |raw: String| Currency::parse(&raw));

impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An ISO 4217 currency code in lower case, as Stripe writes it.",
            ))
            .enum_values(Some(CURRENCIES))
            .into()
    }
}

impl utoipa::ToSchema for Currency {}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A product's price: an amount per unit in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Price {
    pub unit_amount: UnitAmount,
    pub currency: Currency,
}

impl Price {
    /// What `quantity` units cost. It cannot overflow: at most 100,000,000 × 10,000.
    pub fn total(self, quantity: Quantity) -> Money {
        Money {
            amount: self.unit_amount.get() * i64::from(quantity.get()),
            currency: self.currency,
        }
    }
}

/// An amount of money: a count, never negative, of the smallest unit of its currency (cents
/// for `usd`), as Stripe counts amounts. What an order costs, is charged or is refunded.
/// In JSON it is `{"amount": 5997, "currency": "usd"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "StoredMoney")]
pub struct Money {
    amount: i64,
    currency: Currency,
}

/// Money as it is stored and sent: an integer and a currency code, not yet checked.
#[derive(Deserialize)]
struct StoredMoney {
    amount: i64,
    currency: String,
}

impl TryFrom<StoredMoney> for Money {
    type Error = Invalid;

    fn try_from(raw: StoredMoney) -> Result<Self, Invalid> {
        Self::new(raw.amount, Currency::parse(&raw.currency)?)
    }
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Result<Self, Invalid> {
        if amount < 0 {
            return Err(invalid(format!(
                "an amount must not be negative, got {amount}"
            )));
        }
        Ok(Self { amount, currency })
    }

    /// In the smallest unit of [`Self::currency`].
    pub fn amount(self) -> i64 {
        self.amount
    }

    pub fn currency(self) -> Currency {
        self.currency
    }
}

/// PostgreSQL's anonymous record, the type of `(amount, currency)` in a query.
const RECORD_OID: sqlx::postgres::types::Oid = sqlx::postgres::types::Oid(2249);

/// An order's or a payment's two columns read as one value: `(amount, currency) AS
/// "money: Money"` (`NULL` for an order without an amount: `CASE WHEN amount IS NULL THEN
/// NULL ELSE (amount, currency) END AS "money?: Money"`).
impl sqlx::Type<sqlx::Postgres> for Money {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(RECORD_OID)
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        ty.oid() == Some(RECORD_OID)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Money {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let (amount, currency) = amount_and_currency(value)?;
        Ok(Self::new(amount, currency)?)
    }
}

/// A product's two price columns read as one value, as [`Money`]'s:
/// `(unit_amount, currency) AS "price: Price"`.
impl sqlx::Type<sqlx::Postgres> for Price {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        Money::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        Money::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Price {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let (unit_amount, currency) = amount_and_currency(value)?;
        Ok(Self {
            unit_amount: UnitAmount::new(unit_amount)?,
            currency,
        })
    }
}

/// The `(bigint, text)` record of an amount and its currency.
fn amount_and_currency(
    value: sqlx::postgres::PgValueRef<'_>,
) -> Result<(i64, Currency), sqlx::error::BoxDynError> {
    let mut record = sqlx::postgres::types::PgRecordDecoder::new(value)?;
    let amount = record.try_decode::<i64>()?;
    let currency = record.try_decode::<String>()?;
    Ok((amount, Currency::parse(&currency)?))
}

/// As people read it: `5997` `usd` is `59.97 USD`, `1200` `jpy` is `1200 JPY`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.currency.as_str().to_uppercase();
        match self.currency.decimals() {
            0 => write!(f, "{} {code}", self.amount),
            decimals => {
                let scale = 10_i64.pow(decimals);
                let (units, fraction) = (self.amount / scale, self.amount % scale);
                write!(
                    f,
                    "{units}.{fraction:0width$} {code}",
                    width = decimals as usize
                )
            }
        }
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

deserialize_with!(EmailAddress, String, |raw: String| Self::parse(&raw));
decode_with!(EmailAddress, String, |raw: String| Self::parse(&raw));

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an order is in its life: placed by the API, then decided by inventory; an order
/// paid by card is `RESERVED` while the payment function charges it. `CANCELLED` comes only
/// from the cancel route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Placed,
    Reserved,
    Confirmed,
    Rejected,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [Self; 5] = [
        Self::Placed,
        Self::Reserved,
        Self::Confirmed,
        Self::Rejected,
        Self::Cancelled,
    ];

    /// The value stored in `orders.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "PLACED",
            Self::Reserved => "RESERVED",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or_else(|| {
                invalid("must be one of PLACED, RESERVED, CONFIRMED, REJECTED, CANCELLED")
            })
    }

    /// A final status: nothing changes the order any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Rejected | Self::Cancelled)
    }
}

decode_with!(OrderStatus, String, |raw: String| OrderStatus::parse(&raw));

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an order was refused: by inventory (stock, product, price) or by the card's issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectionReason {
    OutOfStock,
    UnknownProduct,
    /// Stripe refused the charge, or the card asked for customer action (3-D Secure).
    PaymentDeclined,
    /// The order carries a payment method but its product has no price.
    NoPrice,
}

impl RejectionReason {
    pub const ALL: [Self; 4] = [
        Self::OutOfStock,
        Self::UnknownProduct,
        Self::PaymentDeclined,
        Self::NoPrice,
    ];

    /// The value stored in `orders.rejection_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "OUT_OF_STOCK",
            Self::UnknownProduct => "UNKNOWN_PRODUCT",
            Self::PaymentDeclined => "PAYMENT_DECLINED",
            Self::NoPrice => "NO_PRICE",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == raw)
            .ok_or_else(|| {
                invalid("must be one of OUT_OF_STOCK, UNKNOWN_PRODUCT, PAYMENT_DECLINED, NO_PRICE")
            })
    }
}

decode_with!(RejectionReason, String, |raw: String| {
    RejectionReason::parse(&raw)
});

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an order's card payment is (`payments.status`, docs/payments.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Claimed by the payment function; a charge may be in flight.
    Pending,
    Succeeded,
    Declined,
    /// The order was cancelled before any charge was attempted.
    Voided,
    /// The order was cancelled after the charge; the refund is on its way.
    Refunding,
    Refunded,
}

decode_with!(PaymentStatus, String, |raw: String| PaymentStatus::parse(
    &raw
));

impl PaymentStatus {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Succeeded,
        Self::Declined,
        Self::Voided,
        Self::Refunding,
        Self::Refunded,
    ];

    /// The value stored in `payments.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Succeeded => "SUCCEEDED",
            Self::Declined => "DECLINED",
            Self::Voided => "VOIDED",
            Self::Refunding => "REFUNDING",
            Self::Refunded => "REFUNDED",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or_else(|| invalid(format!("is not a payment status: {raw:?}")))
    }
}

/// A Stripe PaymentMethod id as Stripe.js creates it: `pm_` and 1 to 252 letters, digits or
/// underscores (test ids such as `pm_card_visa` have underscores).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PaymentMethodId(String);

impl PaymentMethodId {
    /// [`Self::parse`]'s rule as a JSON Schema `pattern`.
    pub const PATTERN: &str = "^pm_[A-Za-z0-9_]{1,252}$";

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let body = raw
            .strip_prefix("pm_")
            .ok_or_else(|| invalid("must be a Stripe PaymentMethod id, which starts with pm_"))?;
        let valid = (1..=252).contains(&body.len())
            && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid(
                "must be pm_ followed by 1 to 252 letters, digits or underscores",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated order request; only the API builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_name: CustomerName,
    pub customer_email: Option<EmailAddress>,
    pub product_name: ProductName,
    pub quantity: Quantity,
    /// Pay by card with this Stripe PaymentMethod; without it the order is paid on invoice.
    pub payment_method: Option<PaymentMethodId>,
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

    /// Every character as a whole name, inside one, and at each end, plus the length limits:
    /// the documented pattern and the parser agree on each.
    #[test]
    fn the_name_pattern_accepts_exactly_the_names_the_parser_accepts() {
        let pattern = regex::Regex::new(NAME_PATTERN).expect("the pattern compiles");
        let agree = |raw: &str| {
            assert_eq!(
                pattern.is_match(raw),
                ProductName::parse(raw).is_ok(),
                "{raw:?}: pattern and parser disagree"
            );
        };
        // Every character up to U+3100 (all white space and control characters lie below),
        // then a sample of the rest.
        let chars = (0..=0x3100u32)
            .chain((0x3101..=0x10FFFF).step_by(251))
            .filter_map(char::from_u32);
        for c in chars {
            for raw in [
                format!("{c}"),
                format!("a{c}b"),
                format!("{c}ab"),
                format!("ab{c}"),
                format!(" {c} "),
            ] {
                agree(&raw);
            }
        }
        for raw in [
            String::new(),
            "x".repeat(255),
            "x".repeat(256),
            format!("x{}x", " ".repeat(253)),
            format!("x{}x", " ".repeat(254)),
            format!("{}{}\n\t", " ".repeat(300), "é".repeat(255)),
            "🚀".repeat(255),
            "🚀".repeat(256),
            "\u{85}Laptop\u{85}".to_owned(),
            "Lap\u{85}top".to_owned(),
            "Laptop\r\n".to_owned(),
            "\u{feff}Laptop".to_owned(),
        ] {
            agree(&raw);
        }
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
    fn unit_amounts_run_from_zero_to_a_hundred_million() {
        assert!(UnitAmount::new(-1).is_err());
        assert_eq!(UnitAmount::new(0).unwrap().get(), 0);
        assert_eq!(UnitAmount::new(100_000_000).unwrap().get(), 100_000_000);
        assert!(UnitAmount::new(100_000_001).is_err());
    }

    #[test]
    fn currencies_are_lower_case_iso_4217_codes() {
        assert_eq!(Currency::parse("usd").unwrap(), Currency::DEFAULT);
        assert_eq!(Currency::parse("jpy").unwrap().as_str(), "jpy");
        for raw in ["USD", "us", "usdd", "xxx", "xau", "", " usd", "abc"] {
            assert!(Currency::parse(raw).is_err(), "{raw:?}");
        }
        let mut sorted = CURRENCIES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, CURRENCIES, "sorted and without repeats");
        assert!(
            CURRENCIES
                .iter()
                .all(|code| code.len() == 3 && code.bytes().all(|b| b.is_ascii_lowercase()))
        );
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
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()).unwrap(), status);
        }
        for reason in RejectionReason::ALL {
            assert_eq!(RejectionReason::parse(reason.as_str()).unwrap(), reason);
        }
        assert!(OrderStatus::parse("confirmed").is_err());
    }

    #[test]
    fn money_is_never_negative_and_reads_in_its_currency_s_units() {
        let usd = Currency::parse("usd").unwrap();
        assert!(Money::new(-1, usd).is_err());
        assert_eq!(Money::new(5997, usd).unwrap().to_string(), "59.97 USD");
        assert_eq!(
            Money::new(5, Currency::parse("eur").unwrap())
                .unwrap()
                .to_string(),
            "0.05 EUR"
        );
        assert_eq!(
            Money::new(1200, Currency::parse("jpy").unwrap())
                .unwrap()
                .to_string(),
            "1200 JPY"
        );
        assert_eq!(
            Money::new(1234, Currency::parse("kwd").unwrap())
                .unwrap()
                .to_string(),
            "1.234 KWD"
        );
        let price = Price {
            unit_amount: UnitAmount::new(UnitAmount::MAX).unwrap(),
            currency: usd,
        };
        let most = price.total(Quantity::new(Quantity::MAX).unwrap());
        assert_eq!(most.amount(), UnitAmount::MAX * Quantity::MAX);
    }

    #[test]
    fn domain_types_decode_through_their_parsers() {
        let email: EmailAddress = serde_json::from_str("\" ada@example.com \"").unwrap();
        assert_eq!(email.as_str(), "ada@example.com");
        assert!(serde_json::from_str::<EmailAddress>("\"ada@example\"").is_err());
        assert!(serde_json::from_str::<Quantity>("10001").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("3").unwrap().get(), 3);
        assert!(serde_json::from_str::<ProductName>("\"\"").is_err());
        assert!(serde_json::from_str::<Currency>("\"xxx\"").is_err());
    }

    #[test]
    fn payment_method_ids_are_stripe_shaped() {
        assert!(PaymentMethodId::parse("pm_card_visa").is_ok());
        assert!(PaymentMethodId::parse("pm_1PXyZ2abcDEF").is_ok());
        let pattern = regex::Regex::new(PaymentMethodId::PATTERN).unwrap();
        for raw in [
            "pm_",
            "card_visa",
            "pm_card-visa",
            "pm_ card",
            "PM_card",
            "pm_é",
            &format!("pm_{}", "x".repeat(253)),
        ] {
            assert!(PaymentMethodId::parse(raw).is_err(), "{raw:?}");
            assert!(!pattern.is_match(raw), "{raw:?}");
        }
        assert!(pattern.is_match(&format!("pm_{}", "x".repeat(252))));
    }
}
