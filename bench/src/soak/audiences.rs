//! The soak's other callers, beside the guests whose orders the invariants follow: more
//! guests, who place an order and read it with its token; signed-in customers (Cognito ID
//! tokens from the emulator, checked by the runtime's gateway), who place orders, list them,
//! read them and cancel some; and the operator, who reads orders, cancels guests' orders,
//! sets a product's stock and lists dead letters. All of it goes on through the faults.
//!
//! Their orders are paid on invoice and name no address of the run's tag (guests
//! `soakguest-<n>@bench.example`, customers their account's `soakcustomer-...@example.com`),
//! so that the invariants' per-order checks (one decision, one mail of each kind, one charge)
//! see exactly the orders they always saw; the check that stock is conserved covers every
//! order of a product, so these orders, cancelled ones too (a cancel gives held stock back),
//! count there. They never order the scarce product, and the operator's stock writes go to a
//! product nobody orders ([`OPERATOR_PRODUCT`]).
//!
//! Every answer is checked against what the route promises: the owner's reads find the order,
//! nobody else's do (404), a list holds only the caller's orders, a cancel is 200, a stock
//! write reads back. An answer that is a fault's (no answer at all, or 5xx) counts as failed,
//! any other unexpected one as wrong; the soak fails on one wrong answer.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::pipeline::api::{Answer, Api};

/// The product the operator sets the stock of, which nobody orders.
pub const OPERATOR_PRODUCT: &str = "Soak Gift Card";
/// The products the side orders spread over (every product but the scarce one).
pub const SIDE_PRODUCTS: [&str; 4] = ["Laptop", "Monitor", "Keyboard", "Mouse"];
/// The address the side guests connect from.
pub const GUEST_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// The address of the first customer; the next ones count up from it.
pub const FIRST_CUSTOMER_SOURCE: u8 = 10;

/// A signed-in customer: the address the account mails, and its ID token.
#[derive(Debug, Clone)]
pub struct Customer {
    pub email: String,
    pub bearer: String,
}

/// How one kind of request fared.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub ok: usize,
    /// No answer or 5xx: a fault's.
    pub failed: usize,
    /// An answer other than the route promises.
    pub wrong: usize,
}

/// How every kind of request fared, and the first wrong answer.
#[derive(Debug, Default)]
pub struct Tally {
    pub by_request: BTreeMap<&'static str, Counts>,
    pub first_wrong: Option<String>,
}

impl Tally {
    pub fn wrong(&self) -> usize {
        self.by_request.values().map(|counts| counts.wrong).sum()
    }

    pub fn total(&self) -> Counts {
        self.by_request
            .values()
            .fold(Counts::default(), |sum, counts| Counts {
                ok: sum.ok + counts.ok,
                failed: sum.failed + counts.failed,
                wrong: sum.wrong + counts.wrong,
            })
    }

    /// Records one request: `Ok(answer)` is checked with `right`, which says what was wrong
    /// with it, if anything. Returns the answer when it was right.
    fn record(
        &mut self,
        request: &'static str,
        outcome: anyhow::Result<Answer>,
        right: impl FnOnce(&Answer) -> Result<(), String>,
    ) -> Option<Answer> {
        let counts = self.by_request.entry(request).or_default();
        match outcome {
            Err(_) => {
                counts.failed += 1;
                None
            }
            Ok(answer) if answer.status.is_server_error() => {
                counts.failed += 1;
                None
            }
            Ok(answer) => match right(&answer) {
                Ok(()) => {
                    counts.ok += 1;
                    Some(answer)
                }
                Err(why) => {
                    counts.wrong += 1;
                    self.first_wrong.get_or_insert_with(|| {
                        format!("{request}: {why} ({} {})", answer.status, answer.body)
                    });
                    None
                }
            },
        }
    }

    /// As [`Self::record`] for a call of [`Api`] that fails unless it got the status it
    /// wants (its error says "answered <status>"; without a status it got no answer).
    fn record_result<T>(&mut self, request: &'static str, outcome: anyhow::Result<T>) -> Option<T> {
        let counts = self.by_request.entry(request).or_default();
        match outcome {
            Ok(value) => {
                counts.ok += 1;
                Some(value)
            }
            Err(err) => {
                let text = format!("{err:#}");
                let status = text
                    .split("answered ")
                    .nth(1)
                    .and_then(|rest| rest.get(..3))
                    .and_then(|code| code.parse::<u16>().ok());
                match status {
                    Some(code) if code < 500 => {
                        counts.wrong += 1;
                        self.first_wrong
                            .get_or_insert_with(|| format!("{request}: {text}"));
                    }
                    _ => counts.failed += 1,
                }
                None
            }
        }
    }

    /// Turns the last request of `request`, counted as right, into a wrong one.
    fn right_after_all_wrong(&mut self, request: &'static str, why: String) {
        let counts = self.by_request.entry(request).or_default();
        counts.ok = counts.ok.saturating_sub(1);
        counts.wrong += 1;
        self.first_wrong
            .get_or_insert_with(|| format!("{request}: {why}"));
    }
}

/// What the side traffic needs: one client per source address.
pub struct SideTraffic {
    guest: Api,
    operator: Api,
    customers: Vec<(Customer, Api)>,
}

/// A customer's order, as far as the customer knows it.
struct Known {
    id: Uuid,
    cancelled: bool,
}

fn status_is(expected: StatusCode) -> impl FnOnce(&Answer) -> Result<(), String> {
    move |answer| {
        if answer.status == expected {
            Ok(())
        } else {
            Err(format!("expected {expected}"))
        }
    }
}

fn order_is(expected: Uuid) -> impl FnOnce(&Answer) -> Result<(), String> {
    move |answer| {
        if answer.status != StatusCode::OK {
            return Err(format!("expected 200 with order {expected}"));
        }
        if answer.body["orderId"].as_str() != Some(expected.to_string().as_str()) {
            return Err(format!("expected order {expected}"));
        }
        Ok(())
    }
}

/// The `orderId`s of a page of orders.
fn page_ids(answer: &Answer) -> Vec<Uuid> {
    answer.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["orderId"].as_str()?.parse().ok())
        .collect()
}

fn page_emails(answer: &Answer) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["customerEmail"].as_str().map(str::to_ascii_lowercase))
        .collect()
}

impl SideTraffic {
    /// Clients of the API at `base`: the operator from 127.0.0.1 (where the main guests
    /// are), the side guests from [`GUEST_SOURCE`], each customer from an address of its own.
    pub fn new(base: &str, customers: Vec<Customer>) -> Self {
        let customers = customers
            .into_iter()
            .enumerate()
            .map(|(n, customer)| {
                let source = IpAddr::V4(Ipv4Addr::new(
                    127,
                    0,
                    0,
                    FIRST_CUSTOMER_SOURCE.saturating_add(n as u8),
                ));
                (customer, Api::from_source(base.to_owned(), Some(source)))
            })
            .collect();
        Self {
            guest: Api::from_source(base.to_owned(), Some(GUEST_SOURCE)),
            operator: Api::new(base.to_owned()),
            customers,
        }
    }

    /// Steps at `rate` a second until `until`, each one guest's, customer's or operator's
    /// turn (one step after the other, so a fault that stalls a request stalls the steps).
    pub async fn run(self, until: Instant, rate: f64) -> Tally {
        let mut tally = Tally::default();
        let mut known: Vec<Vec<Known>> = self.customers.iter().map(|_| Vec::new()).collect();
        let gap = Duration::from_secs_f64(1.0 / rate.max(0.01));
        let mut next = Instant::now();
        let mut step = 0_usize;
        while Instant::now() < until {
            tokio::time::sleep_until(next).await;
            next += gap;
            let round = step / 6;
            match step % 6 {
                0 => self.guest_step(&mut tally, round).await,
                1 => self.customer_places(&mut tally, &mut known, round).await,
                2 => self.customer_lists(&mut tally, &known, round).await,
                3 => self.customer_reads(&mut tally, &known, round).await,
                4 => self.customer_cancels(&mut tally, &mut known, round).await,
                _ => self.operator_step(&mut tally, round).await,
            }
            step += 1;
        }
        tally
    }

    fn body(n: usize, email: Option<String>) -> Value {
        let mut body = json!({
            "customerName": format!("Soak side customer {n}"),
            "productName": SIDE_PRODUCTS[n % SIDE_PRODUCTS.len()],
            "quantity": 1 + n % 3,
        });
        if let Some(email) = email {
            body["customerEmail"] = email.into();
        }
        body
    }

    /// A guest places an order and reads it with its token; without it, or with another
    /// order's, the order is not found. Every other one the operator cancels and reads back.
    async fn guest_step(&self, tally: &mut Tally, n: usize) {
        let body = Self::body(n, Some(format!("soakguest-{n}@bench.example")));
        let placed = self.guest.place_as_guest(&body).await;
        let Some(placed) = tally.record_result("guest POST /api/orders", placed) else {
            return;
        };
        let Some(token) = placed.token.as_deref() else {
            tally.right_after_all_wrong(
                "guest POST /api/orders",
                format!("201 without an orderToken for {}", placed.id),
            );
            return;
        };
        let read = self.guest.guest_order(placed.id, Some(token)).await;
        tally.record(
            "guest GET /api/orders/{id} with its token",
            read,
            order_is(placed.id),
        );
        let read = self.guest.guest_order(placed.id, None).await;
        tally.record(
            "guest GET /api/orders/{id} without a token",
            read,
            status_is(StatusCode::NOT_FOUND),
        );
        if n.is_multiple_of(2) {
            let cancel = self.operator.admin_cancel(placed.id).await;
            if tally
                .record(
                    "operator POST /api/admin/orders/{id}/cancel",
                    cancel,
                    status_is(StatusCode::OK),
                )
                .is_some()
            {
                let read = self.operator.admin_order(placed.id).await;
                tally.record("operator GET /api/admin/orders/{id}", read, |answer| {
                    order_is(placed.id)(answer)?;
                    (answer.body["status"] == "CANCELLED")
                        .then_some(())
                        .ok_or_else(|| "expected CANCELLED".to_owned())
                });
            }
        }
    }

    fn customer(&self, round: usize) -> Option<(usize, &Customer, &Api)> {
        let n = round % self.customers.len().max(1);
        self.customers
            .get(n)
            .map(|(customer, api)| (n, customer, api))
    }

    async fn customer_places(&self, tally: &mut Tally, known: &mut [Vec<Known>], round: usize) {
        let Some((n, customer, api)) = self.customer(round) else {
            return;
        };
        // Every other order names the account's own address, which is allowed.
        let email = round.is_multiple_of(2).then(|| customer.email.clone());
        let placed = api
            .place_as_customer(&customer.bearer, &Self::body(round, email))
            .await;
        if let Some(placed) = tally.record_result("customer POST /api/me/orders", placed) {
            known[n].push(Known {
                id: placed.id,
                cancelled: false,
            });
        }
    }

    /// A customer's list holds only orders with the account's address, none another
    /// customer placed.
    async fn customer_lists(&self, tally: &mut Tally, known: &[Vec<Known>], round: usize) {
        let Some((n, customer, api)) = self.customer(round) else {
            return;
        };
        let query = if round.is_multiple_of(3) {
            "limit=50&status=CANCELLED"
        } else {
            "limit=50"
        };
        let list = api.my_orders(&customer.bearer, query).await;
        let own = customer.email.to_ascii_lowercase();
        tally.record("customer GET /api/me/orders", list, |answer| {
            if answer.status != StatusCode::OK {
                return Err("expected 200".to_owned());
            }
            if let Some(other) = page_emails(answer).iter().find(|email| **email != own) {
                return Err(format!("an order of {other} in {own}'s list"));
            }
            let ids = page_ids(answer);
            for (m, theirs) in known.iter().enumerate() {
                if m != n && theirs.iter().any(|order| ids.contains(&order.id)) {
                    return Err(format!("another customer's order in {own}'s list"));
                }
            }
            Ok(())
        });
    }

    /// A customer reads its latest order; another customer's is not found.
    async fn customer_reads(&self, tally: &mut Tally, known: &[Vec<Known>], round: usize) {
        let Some((n, customer, api)) = self.customer(round) else {
            return;
        };
        if let Some(latest) = known[n].last() {
            let read = api.my_order(&customer.bearer, latest.id).await;
            tally.record(
                "customer GET /api/me/orders/{id}",
                read,
                order_is(latest.id),
            );
        }
        let other = known
            .iter()
            .enumerate()
            .filter(|(m, _)| *m != n)
            .find_map(|(_, theirs)| theirs.last());
        if let Some(other) = other {
            let read = api.my_order(&customer.bearer, other.id).await;
            tally.record(
                "customer GET /api/me/orders/{id} of another",
                read,
                status_is(StatusCode::NOT_FOUND),
            );
            let cancel = api.cancel_mine(&customer.bearer, other.id).await;
            tally.record(
                "customer POST /api/me/orders/{id}/cancel of another",
                cancel,
                status_is(StatusCode::NOT_FOUND),
            );
        }
    }

    /// A customer cancels its oldest order not cancelled yet, in one of two rounds.
    async fn customer_cancels(&self, tally: &mut Tally, known: &mut [Vec<Known>], round: usize) {
        let Some((n, customer, api)) = self.customer(round) else {
            return;
        };
        if (round / self.customers.len().max(1)) % 2 == 1 {
            return;
        }
        let Some(order) = known[n].iter_mut().find(|order| !order.cancelled) else {
            return;
        };
        // Tried once: a cancel whose answer a fault lost may have been made.
        order.cancelled = true;
        let cancel = api.cancel_mine(&customer.bearer, order.id).await;
        tally.record(
            "customer POST /api/me/orders/{id}/cancel",
            cancel,
            status_is(StatusCode::OK),
        );
    }

    /// The operator sets the stock of [`OPERATOR_PRODUCT`] and reads it back (as anyone
    /// may), lists a customer's orders and the newest orders, reads the newest one, and
    /// lists dead letters.
    async fn operator_step(&self, tally: &mut Tally, round: usize) {
        let operator = &self.operator;
        let level = u32::try_from(round % 1000).unwrap_or(0) + 1;
        let set = operator.set_stock(OPERATOR_PRODUCT, level).await;
        if tally
            .record_result("operator PUT /api/admin/stock/{productName}", set)
            .is_some()
        {
            let read = operator.stock(OPERATOR_PRODUCT).await;
            tally.record("GET /api/stock/{productName}", read, |answer| {
                (answer.status == StatusCode::OK
                    && answer.body["quantity"].as_u64() == Some(u64::from(level)))
                .then_some(())
                .ok_or_else(|| format!("expected 200 with quantity {level}"))
            });
        }
        if let Some((_, customer, _)) = self.customer(round) {
            let own = customer.email.to_ascii_lowercase();
            let query = format!(
                "customerEmail={}&limit=20",
                customer.email.replace('@', "%40")
            );
            let list = operator.admin_orders(&query).await;
            tally.record(
                "operator GET /api/admin/orders?customerEmail",
                list,
                |answer| {
                    if answer.status != StatusCode::OK {
                        return Err("expected 200".to_owned());
                    }
                    match page_emails(answer).iter().find(|email| **email != own) {
                        Some(other) => Err(format!("an order of {other} in {own}'s")),
                        None => Ok(()),
                    }
                },
            );
        }
        let newest = operator.admin_orders("limit=10").await;
        if let Some(newest) = tally.record(
            "operator GET /api/admin/orders",
            newest,
            status_is(StatusCode::OK),
        ) && let Some(id) = page_ids(&newest).first().copied()
        {
            let read = operator.admin_order(id).await;
            tally.record("operator GET /api/admin/orders/{id}", read, order_is(id));
        }
        let letters = operator.dead_letters("limit=10").await;
        tally.record(
            "operator GET /api/admin/dead-letters",
            letters,
            status_is(StatusCode::OK),
        );
    }
}
