//! Abuse limits on placing orders (docs/access.md, "Abuse limits"): per client address and
//! per email address, per fixed window (an hour by default), looser for signed-in customers
//! than for guests. The counters live in PostgreSQL ([`crate::store::place_order`] counts
//! and places in one statement), so they hold across every instance of the function.
//!
//! This module is the pure part: the settings, which counters a request counts against, and
//! how long a refused client waits. Nothing here does I/O.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use shared::config::{ConfigError, from_source, variables_of};
use shared::domain::EmailAddress;

/// The limits of one audience, per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudienceLimits {
    /// Orders without a card (paid on invoice), which hold stock without paying, per address.
    pub unpaid_orders_per_ip: u32,
    /// Orders that mail one email address.
    pub orders_per_email: u32,
    /// Orders paid by card, each one attempt at a card, per address.
    pub card_attempts_per_ip: u32,
}

/// Every abuse limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `false` (`ABUSE_LIMITS=off`) counts nothing: for benchmarks that measure what the
    /// counting costs. Never for a deployment.
    pub enforced: bool,
    pub window: Duration,
    /// The most units one guest order may ask for (a customer's may ask for the API's
    /// maximum, 10,000).
    pub guest_max_quantity: i64,
    pub guest: AudienceLimits,
    pub customer: AudienceLimits,
}

impl Default for Limits {
    /// The defaults of docs/access.md, the same locally and in `template.yaml`.
    fn default() -> Self {
        Self {
            enforced: true,
            window: Duration::from_secs(3600),
            guest_max_quantity: 10,
            guest: AudienceLimits {
                unpaid_orders_per_ip: 20,
                orders_per_email: 5,
                card_attempts_per_ip: 10,
            },
            customer: AudienceLimits {
                unpaid_orders_per_ip: 100,
                orders_per_email: 50,
                card_attempts_per_ip: 30,
            },
        }
    }
}

#[derive(Deserialize)]
struct RawLimits {
    abuse_limits: Option<String>,
    limit_window_secs: Option<u64>,
    limit_guest_max_quantity: Option<i64>,
    limit_guest_unpaid_orders_per_ip: Option<u32>,
    limit_guest_orders_per_email: Option<u32>,
    limit_guest_card_attempts_per_ip: Option<u32>,
    limit_customer_unpaid_orders_per_ip: Option<u32>,
    limit_customer_orders_per_email: Option<u32>,
    limit_customer_card_attempts_per_ip: Option<u32>,
}

impl Limits {
    /// Every variable [`Self::from_source`] reads.
    pub fn variables() -> Vec<String> {
        variables_of::<RawLimits>()
    }

    /// From the environment (`None`) or explicit variables; an absent one keeps its default.
    pub fn from_source(variables: Option<HashMap<String, String>>) -> Result<Self, ConfigError> {
        let raw: RawLimits = from_source(variables)?;
        let defaults = Self::default();
        let enforced = match raw.abuse_limits.as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(_) => return Err(ConfigError::new("ABUSE_LIMITS", "must be on or off")),
        };
        let window_secs = raw.limit_window_secs.unwrap_or(defaults.window.as_secs());
        if !(60..=86_400 * 7).contains(&window_secs) {
            return Err(ConfigError::new(
                "LIMIT_WINDOW_SECS",
                "must be between 60 and 604800",
            ));
        }
        let guest_max_quantity = raw
            .limit_guest_max_quantity
            .unwrap_or(defaults.guest_max_quantity);
        if !(1..=shared::domain::Quantity::MAX).contains(&guest_max_quantity) {
            return Err(ConfigError::new(
                "LIMIT_GUEST_MAX_QUANTITY",
                format!("must be between 1 and {}", shared::domain::Quantity::MAX),
            ));
        }
        let pick = |value: Option<u32>, default: u32| value.unwrap_or(default);
        Ok(Self {
            enforced,
            window: Duration::from_secs(window_secs),
            guest_max_quantity,
            guest: AudienceLimits {
                unpaid_orders_per_ip: pick(
                    raw.limit_guest_unpaid_orders_per_ip,
                    defaults.guest.unpaid_orders_per_ip,
                ),
                orders_per_email: pick(
                    raw.limit_guest_orders_per_email,
                    defaults.guest.orders_per_email,
                ),
                card_attempts_per_ip: pick(
                    raw.limit_guest_card_attempts_per_ip,
                    defaults.guest.card_attempts_per_ip,
                ),
            },
            customer: AudienceLimits {
                unpaid_orders_per_ip: pick(
                    raw.limit_customer_unpaid_orders_per_ip,
                    defaults.customer.unpaid_orders_per_ip,
                ),
                orders_per_email: pick(
                    raw.limit_customer_orders_per_email,
                    defaults.customer.orders_per_email,
                ),
                card_attempts_per_ip: pick(
                    raw.limit_customer_card_attempts_per_ip,
                    defaults.customer.card_attempts_per_ip,
                ),
            },
        })
    }

    /// No limit at all (benchmarks' baseline, and tests about something else).
    pub fn off() -> Self {
        Self {
            enforced: false,
            ..Self::default()
        }
    }

    /// The counters that an order counts against, each with its limit, in a fixed order
    /// (address before email) so that concurrent requests lock them in the same order.
    /// Empty when the limits are off.
    pub fn counters_for(&self, order: &OrderAttempt<'_>) -> Vec<Counter> {
        if !self.enforced {
            return Vec::new();
        }
        let (limits, names) = match order.audience {
            Audience::Guest => (&self.guest, &GUEST_COUNTERS),
            Audience::Customer => (&self.customer, &CUSTOMER_COUNTERS),
        };
        let ip = order.source_ip.to_string();
        let mut counters = vec![if order.by_card {
            Counter::new(names.card_attempts_per_ip, &ip, limits.card_attempts_per_ip)
        } else {
            Counter::new(names.unpaid_orders_per_ip, &ip, limits.unpaid_orders_per_ip)
        }];
        if let Some(email) = order.email {
            // One mailbox, however the address is capitalised.
            let mailbox = email.as_str().to_lowercase();
            counters.push(Counter::new(
                names.orders_per_email,
                &mailbox,
                limits.orders_per_email,
            ));
        }
        counters
    }

    /// The fixed window `now` falls in.
    pub fn window_at(&self, now: SystemTime) -> Window {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let length = self.window.as_secs().max(1);
        let start = secs - secs % length;
        Window {
            start_secs: start as i64,
            retry_after_secs: (start + length - secs).max(1),
        }
    }
}

/// Who places an order, for the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Guest,
    Customer,
}

/// What of an order the limits look at.
#[derive(Debug, Clone, Copy)]
pub struct OrderAttempt<'a> {
    pub audience: Audience,
    pub source_ip: IpAddr,
    /// The address the order mails, if any.
    pub email: Option<&'a EmailAddress>,
    /// Paid by card (an attempt at a card) rather than on invoice.
    pub by_card: bool,
}

/// The counter names of one audience, as stored in `request_counts.counter`.
struct CounterNames {
    unpaid_orders_per_ip: &'static str,
    orders_per_email: &'static str,
    card_attempts_per_ip: &'static str,
}

const GUEST_COUNTERS: CounterNames = CounterNames {
    unpaid_orders_per_ip: "guest_unpaid_orders_per_ip",
    orders_per_email: "guest_orders_per_email",
    card_attempts_per_ip: "guest_card_attempts_per_ip",
};

const CUSTOMER_COUNTERS: CounterNames = CounterNames {
    unpaid_orders_per_ip: "customer_unpaid_orders_per_ip",
    orders_per_email: "customer_orders_per_email",
    card_attempts_per_ip: "customer_card_attempts_per_ip",
};

/// One counter an order counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub name: &'static str,
    /// SHA-256 of the counter's name and what it counts: the table never holds an address.
    pub subject: [u8; 32],
    pub limit: i32,
}

impl Counter {
    fn new(name: &'static str, value: &str, limit: u32) -> Self {
        let mut digest = Sha256::new();
        digest.update(name.as_bytes());
        digest.update([0]);
        digest.update(value.as_bytes());
        Self {
            name,
            subject: digest.finalize().into(),
            limit: i32::try_from(limit).unwrap_or(i32::MAX),
        }
    }
}

/// A fixed counting window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Its start, in seconds since 1970.
    pub start_secs: i64,
    /// Seconds until it ends, at least 1: what a refused client is told to wait.
    pub retry_after_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::variable_map as vars;

    fn attempt(audience: Audience, by_card: bool, email: Option<&EmailAddress>) -> Vec<Counter> {
        Limits::default().counters_for(&OrderAttempt {
            audience,
            source_ip: "127.0.0.2".parse().unwrap(),
            email,
            by_card,
        })
    }

    #[test]
    fn an_unpaid_guest_order_counts_against_its_address_and_its_mailbox() {
        let email = EmailAddress::parse("Ada@Example.com").unwrap();
        let counters = attempt(Audience::Guest, false, Some(&email));
        let names: Vec<_> = counters.iter().map(|c| (c.name, c.limit)).collect();
        assert_eq!(
            names,
            [
                ("guest_unpaid_orders_per_ip", 20),
                ("guest_orders_per_email", 5)
            ]
        );
        // Capitalisation does not make a second mailbox.
        let lower = EmailAddress::parse("ada@example.com").unwrap();
        assert_eq!(
            counters[1].subject,
            attempt(Audience::Guest, false, Some(&lower))[1].subject
        );
    }

    #[test]
    fn a_card_order_counts_as_a_card_attempt_and_customers_have_looser_limits() {
        let counters = attempt(Audience::Customer, true, None);
        assert_eq!(counters.len(), 1);
        assert_eq!(counters[0].name, "customer_card_attempts_per_ip");
        assert_eq!(counters[0].limit, 30);
    }

    #[test]
    fn subjects_differ_by_counter_and_by_value() {
        let guest = attempt(Audience::Guest, false, None)[0].subject;
        let card = attempt(Audience::Guest, true, None)[0].subject;
        assert_ne!(guest, card);
        let other_ip = Limits::default().counters_for(&OrderAttempt {
            audience: Audience::Guest,
            source_ip: "127.0.0.3".parse().unwrap(),
            email: None,
            by_card: false,
        });
        assert_ne!(guest, other_ip[0].subject);
    }

    #[test]
    fn limits_that_are_off_count_nothing() {
        let counters = Limits::off().counters_for(&OrderAttempt {
            audience: Audience::Guest,
            source_ip: "127.0.0.2".parse().unwrap(),
            email: None,
            by_card: false,
        });
        assert!(counters.is_empty());
    }

    #[test]
    fn a_refused_client_waits_until_the_window_ends() {
        let limits = Limits::default();
        let at = |secs| limits.window_at(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(
            at(7200),
            Window {
                start_secs: 7200,
                retry_after_secs: 3600
            }
        );
        assert_eq!(
            at(7200 + 3599),
            Window {
                start_secs: 7200,
                retry_after_secs: 1
            }
        );
    }

    #[test]
    fn settings_default_and_are_read_and_checked() {
        assert_eq!(Limits::from_source(vars(&[])).unwrap(), Limits::default());
        let limits = Limits::from_source(vars(&[
            ("ABUSE_LIMITS", "off"),
            ("LIMIT_GUEST_ORDERS_PER_EMAIL", "2"),
            ("LIMIT_WINDOW_SECS", "60"),
        ]))
        .unwrap();
        assert!(!limits.enforced);
        assert_eq!(limits.guest.orders_per_email, 2);
        assert_eq!(limits.window, Duration::from_secs(60));
        let err = Limits::from_source(vars(&[("ABUSE_LIMITS", "maybe")]))
            .err()
            .unwrap();
        assert_eq!(err.variable, "ABUSE_LIMITS");
        let err = Limits::from_source(vars(&[("LIMIT_GUEST_MAX_QUANTITY", "0")]))
            .err()
            .unwrap();
        assert_eq!(err.variable, "LIMIT_GUEST_MAX_QUANTITY");
    }
}
