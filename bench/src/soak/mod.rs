//! The mixed-fault soak (`src/bin/soak.rs`): steady orders through the whole local system
//! while faults from a seeded schedule come and go, then the invariants that must hold
//! whatever happened.
//!
//! - [`schedule`]: which fault starts when and for how long, drawn from a fixed seed.
//! - [`faults`]: injecting each kind of fault into the running system.
//! - [`invariants`]: what is checked at the end, each with its count.
//! - [`audiences`]: the other callers through the run (guests reading with their token,
//!   signed-in customers, the operator), and whether every answer was the promised one.

pub mod audiences;
pub mod faults;
pub mod invariants;
pub mod schedule;

use std::time::Duration;

use serde_json::Value;

use crate::pipeline::orders::{PRODUCTS, order_body};

/// The test card that is charged.
pub const PAYING_CARD: &str = "pm_card_visa";
/// The test card the stand-in declines.
pub const DECLINING_CARD: &str = "pm_card_chargeCustomerFail";

/// How the `seq`-th order pays: in each run of twenty orders per product, sixteen keep the
/// original body (paid on invoice), three pay with [`PAYING_CARD`] and one with
/// [`DECLINING_CARD`]. Counted per product, so that every product sees each way.
///
/// One in five, because localstripe slows down with every object it holds (listing a page of
/// PaymentIntents scans its whole store for each one's refunds), and the payment function's
/// look-up after a lost outcome pages through every PaymentIntent: with ~1,200 of them in a
/// ten-minute run a look-up's pages stay well inside the function's 10 s per request, which
/// real Stripe, listing newest first, meets anyway.
pub fn payment_method(seq: usize) -> Option<&'static str> {
    match (seq / PRODUCTS.len()) % 20 {
        0..=15 => None,
        16..=18 => Some(PAYING_CARD),
        _ => Some(DECLINING_CARD),
    }
}

/// The `seq`-th order's request body: the benchmark's body, with its `paymentMethod` if it
/// pays by card.
pub fn order(tag: &str, seq: usize) -> Value {
    let mut body = order_body(tag, seq);
    if let Some(card) = payment_method(seq) {
        body["paymentMethod"] = card.into();
    }
    body
}

/// The soak's knobs (the command reads them from `SOAK_*` variables).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long orders are offered.
    pub duration: Duration,
    /// Orders per second.
    pub rate: f64,
    /// The seed of the fault schedule (and of everything else drawn at random).
    pub seed: u64,
    /// The mean gap between the starts of two faults.
    pub mean_fault_gap: Duration,
    /// Every this many orders, a poison record is produced to `order-placed`.
    pub poison_every: usize,
    /// How long the system gets after the last order to decide and mail everything.
    pub drain: Duration,
    /// Signed-in customers beside the guests (Cognito users of a pool of the run's own).
    pub customers: usize,
    /// Steps a second of the guests', customers' and operator's other requests
    /// ([`audiences`]); `0`: none.
    pub side_rate: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_product_is_ordered_on_invoice_with_a_paying_card_and_with_a_declining_one() {
        for (n, product) in PRODUCTS.iter().enumerate() {
            let ways: Vec<Option<&str>> = (0..200)
                .map(|k| k * PRODUCTS.len() + n)
                .inspect(|seq| assert_eq!(order("t", *seq)["productName"], *product))
                .map(payment_method)
                .collect();
            let count = |way| ways.iter().filter(|w| **w == way).count();
            assert_eq!(count(None), 160);
            assert_eq!(count(Some(PAYING_CARD)), 30);
            assert_eq!(count(Some(DECLINING_CARD)), 10);
        }
        assert!(
            order("t", 0).get("paymentMethod").is_none(),
            "the original body"
        );
        assert_eq!(order("t", 5 * 16)["paymentMethod"], PAYING_CARD);
        assert_eq!(order("t", 5 * 19)["paymentMethod"], DECLINING_CARD);
    }
}
