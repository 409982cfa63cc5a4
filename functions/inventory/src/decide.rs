//! The decision of one batch, free of I/O: given what the transaction locked, say what
//! happens to every record. Records arrive sorted by topic, partition and offset, so each
//! product's orders (one key, one partition) are decided in the order they were placed.
//!
//! An `order.placed` event decides a `PLACED` order; `order.paid` and `order.payment-failed`
//! settle a `RESERVED` one (confirm it, or reject it and give its stock back). [`plan`] says
//! what happens to the stock, [`decisions`] what happens to each order and which event
//! tells it; the handler only locks, persists and publishes.

use std::collections::{BTreeMap, HashMap, HashSet};

use shared::domain::{
    CustomerName, EmailAddress, Money, OrderStatus, Price, ProductName, Quantity, RejectionReason,
};
use shared::events::{EventType, OrderEvent, OrderEventData, PaymentData};
use shared::lifecycle::{self, Step, Transition};
use shared::msk::DecodedRecord;
use uuid::Uuid;

/// An order still open (`PLACED` or `RESERVED`), as locked in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenOrder {
    pub id: Uuid,
    pub customer_name: CustomerName,
    pub customer_email: Option<EmailAddress>,
    pub product_name: ProductName,
    pub quantity: Quantity,
    pub status: OrderStatus,
    /// Whether the order is paid by card (it carries a Stripe PaymentMethod).
    pub paid_by_card: bool,
    /// Set once the stock was reserved, for a product with a price.
    pub amount: Option<Money>,
}

/// A locked stock row: its level and the product's price, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StockRow {
    pub level: i32,
    pub price: Option<Price>,
}

/// What happens to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The order takes a step of its lifecycle.
    Decided(Step),
    /// Already applied, by an earlier delivery or earlier in this batch: no effect.
    Duplicate,
    /// The order does not exist or is not in the status the event acts on (cancelled in
    /// between, say): recorded as processed, no effect.
    NotPlaced,
}

/// The decisions of a batch and the stock they move.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// One outcome per record, in the order of the records.
    pub outcomes: Vec<Outcome>,
    /// Units taken per product (negative: given back), for the products whose stock changes.
    pub taken: BTreeMap<String, i32>,
}

/// Decides greedily in record order, each `order.placed` by the stock rule
/// ([`lifecycle::reserve`]) against the stock that the records before it left.
///
/// `claimed` holds the event ids this transaction claimed in `processed_events`; any other
/// record, and any repeat of an event id within the batch, is a duplicate.
pub(crate) fn plan(
    records: &[DecodedRecord],
    claimed: &HashSet<Uuid>,
    open: &HashMap<Uuid, OpenOrder>,
    stock: &HashMap<String, StockRow>,
) -> Plan {
    let mut unused_claims = claimed.clone();
    let mut decided: HashSet<Uuid> = HashSet::new();
    let mut plan = Plan {
        outcomes: Vec::with_capacity(records.len()),
        taken: BTreeMap::new(),
    };
    for record in records {
        let outcome = if !unused_claims.remove(&record.event.id) {
            Outcome::Duplicate
        } else {
            let order = open.get(&record.event.data.order_id);
            let step = order.and_then(|order| {
                step_for(record.event.event_type, order, stock, &plan.taken)
                    .filter(|step| order.status == step.acts_on() && decided.insert(order.id))
            });
            match (order, step) {
                (Some(order), Some(step)) => {
                    let taken = step.stock_taken(order.quantity);
                    if taken != 0 {
                        *plan
                            .taken
                            .entry(order.product_name.to_string())
                            .or_insert(0) += taken;
                    }
                    Outcome::Decided(step)
                }
                _ => Outcome::NotPlaced,
            }
        };
        plan.outcomes.push(outcome);
    }
    plan
}

/// The step a record's event asks of its order: the stock rule for `order.placed`, against
/// the stock not yet `taken` in this batch; the payment's outcome for the others.
fn step_for(
    kind: EventType,
    order: &OpenOrder,
    stock: &HashMap<String, StockRow>,
    taken: &BTreeMap<String, i32>,
) -> Option<Step> {
    match kind {
        EventType::OrderPlaced => {
            let product = order.product_name.as_str();
            let already = taken.get(product).copied().unwrap_or(0);
            let left = stock
                .get(product)
                .map(|row| (row.level - already, row.price));
            Some(lifecycle::reserve(left, order.quantity, order.paid_by_card))
        }
        EventType::OrderPaid => Some(Step::Pay),
        EventType::OrderPaymentFailed => Some(Step::FailPayment),
        _ => None,
    }
}

/// One order's new state, as `store::record_decisions` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub order_id: Uuid,
    /// The status the order must still have: a decision about an order that changed since
    /// it was locked is a broken invariant.
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub reason: Option<RejectionReason>,
    /// What the order costs from now on.
    pub amount: Option<Money>,
}

/// The order updates and their events, in record order, built from the stored orders, each
/// event in the trace of the record that decided it.
pub(crate) fn decisions(
    records: &[DecodedRecord],
    plan: &Plan,
    open: &HashMap<Uuid, OpenOrder>,
    stock: &HashMap<String, StockRow>,
) -> (Vec<Decision>, Vec<OrderEvent>) {
    records
        .iter()
        .zip(&plan.outcomes)
        .filter_map(|(record, outcome)| {
            let order = open.get(&record.event.data.order_id)?;
            let price = stock
                .get(order.product_name.as_str())
                .and_then(|row| row.price);
            // What a reserved or confirmed order costs: the price as locked now.
            let priced = price.map(|price| price.total(order.quantity));
            let Outcome::Decided(step) = *outcome else {
                return None;
            };
            let transition = lifecycle::apply(order.status, step, priced, order.amount)?;
            let event = decided_event(record, order, step, &transition);
            let decision = Decision {
                order_id: order.id,
                from: order.status,
                to: transition.to,
                reason: transition.reason,
                amount: transition.amount,
            };
            Some((decision, event))
        })
        .unzip()
}

/// The event that tells `order`'s decision, in the trace of the `record` that caused it.
/// Only an order paid by card tells its payment (with the decline code of a failed one).
fn decided_event(
    record: &DecodedRecord,
    order: &OpenOrder,
    step: Step,
    transition: &Transition,
) -> OrderEvent {
    let payment = transition
        .amount
        .filter(|_| order.paid_by_card)
        .map(|money| PaymentData {
            money,
            decline_code: record
                .event
                .data
                .payment
                .as_ref()
                .and_then(|p| p.decline_code.clone())
                .filter(|_| step == Step::FailPayment),
        });
    let data = OrderEventData {
        order_id: order.id,
        customer_name: order.customer_name.clone(),
        customer_email: order.customer_email.clone(),
        product_name: order.product_name.clone(),
        quantity: order.quantity,
        reason: None,
        payment,
    };
    match transition.reason {
        Some(reason) => OrderEvent::rejected(data, reason),
        None => OrderEvent::of_kind(transition.event_type, data),
    }
    .in_trace(record.trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::new_id;
    use shared::events::{OrderEvent, OrderEventData};
    use shared::msk::Position;

    fn record(order: &OpenOrder, offset: i64) -> DecodedRecord {
        DecodedRecord {
            position: Position {
                topic: "order-placed".to_owned(),
                partition: 0,
                offset,
            },
            event: OrderEvent::placed(OrderEventData {
                order_id: order.id,
                customer_name: order.customer_name.clone(),
                customer_email: None,
                product_name: order.product_name.clone(),
                quantity: order.quantity,
                reason: None,
                payment: None,
            }),
            trace: shared::trace::TraceContext::new_root(),
        }
    }

    fn order(product: &str, quantity: i32) -> OpenOrder {
        OpenOrder {
            id: new_id(),
            customer_name: CustomerName::parse("Ada").unwrap(),
            customer_email: None,
            product_name: ProductName::parse(product).unwrap(),
            quantity: Quantity::new(quantity.into()).unwrap(),
            status: OrderStatus::Placed,
            paid_by_card: false,
            amount: None,
        }
    }

    fn levels(levels: &[(&str, i32)]) -> HashMap<String, StockRow> {
        levels
            .iter()
            .map(|(name, level)| {
                let row = StockRow {
                    level: *level,
                    price: None,
                };
                ((*name).to_owned(), row)
            })
            .collect()
    }

    fn everything(records: &[DecodedRecord]) -> HashSet<Uuid> {
        records.iter().map(|r| r.event.id).collect()
    }

    fn placed(orders: &[&OpenOrder]) -> HashMap<Uuid, OpenOrder> {
        orders.iter().map(|o| (o.id, (*o).clone())).collect()
    }

    #[test]
    fn a_large_order_that_does_not_fit_leaves_stock_for_a_later_small_one() {
        let (big, small) = (order("Lamp", 5), order("Lamp", 2));
        let records = [record(&big, 1), record(&small, 2)];
        let stock = levels(&[("Lamp", 3)]);
        let plan = plan(
            &records,
            &everything(&records),
            &placed(&[&big, &small]),
            &stock,
        );
        assert_eq!(
            plan.outcomes,
            [
                Outcome::Decided(Step::Reject(RejectionReason::OutOfStock)),
                Outcome::Decided(Step::Confirm)
            ]
        );
        assert_eq!(plan.taken, BTreeMap::from([("Lamp".to_owned(), 2)]));
    }

    #[test]
    fn stock_is_consumed_in_record_order_until_it_runs_out() {
        let orders: Vec<_> = (0..4).map(|_| order("Lamp", 1)).collect();
        let records: Vec<_> = orders.iter().zip(0..).map(|(o, i)| record(o, i)).collect();
        let stock = levels(&[("Lamp", 3)]);
        let plan = plan(
            &records,
            &everything(&records),
            &placed(&orders.iter().collect::<Vec<_>>()),
            &stock,
        );
        assert_eq!(
            plan.outcomes,
            [
                Outcome::Decided(Step::Confirm),
                Outcome::Decided(Step::Confirm),
                Outcome::Decided(Step::Confirm),
                Outcome::Decided(Step::Reject(RejectionReason::OutOfStock))
            ]
        );
        assert_eq!(plan.taken["Lamp"], 3);
    }

    #[test]
    fn a_product_without_a_stock_row_is_unknown() {
        let lamp = order("Lamp", 1);
        let records = [record(&lamp, 0)];
        let plan = plan(
            &records,
            &everything(&records),
            &placed(&[&lamp]),
            &HashMap::new(),
        );
        assert_eq!(
            plan.outcomes,
            [Outcome::Decided(Step::Reject(
                RejectionReason::UnknownProduct
            ))]
        );
        assert!(plan.taken.is_empty());
    }

    #[test]
    fn unclaimed_and_repeated_events_are_duplicates() {
        let lamp = order("Lamp", 1);
        let first = record(&lamp, 0);
        let mut repeat = first.clone();
        repeat.position.offset = 1;
        let already_processed = record(&order("Lamp", 1), 2);
        let records = [first.clone(), repeat, already_processed];
        let claimed = HashSet::from([first.event.id]);
        let stock = levels(&[("Lamp", 10)]);
        let plan = plan(&records, &claimed, &placed(&[&lamp]), &stock);
        assert_eq!(
            plan.outcomes,
            [
                Outcome::Decided(Step::Confirm),
                Outcome::Duplicate,
                Outcome::Duplicate
            ]
        );
        assert_eq!(plan.taken["Lamp"], 1);
    }

    #[test]
    fn orders_that_are_missing_or_already_decided_are_left_alone() {
        let lamp = order("Lamp", 1);
        let missing = order("Lamp", 1);
        // A second, distinct event about the same order.
        let mut again = record(&lamp, 1);
        again.event = OrderEvent::placed(again.event.data.clone());
        let records = [record(&lamp, 0), again, record(&missing, 2)];
        let stock = levels(&[("Lamp", 10)]);
        let plan = plan(&records, &everything(&records), &placed(&[&lamp]), &stock);
        assert_eq!(
            plan.outcomes,
            [
                Outcome::Decided(Step::Confirm),
                Outcome::NotPlaced,
                Outcome::NotPlaced
            ]
        );
        assert_eq!(plan.taken["Lamp"], 1);
    }

    #[test]
    fn an_order_paid_by_card_is_reserved_only_for_a_product_with_a_price() {
        let mut priced = order("Lamp", 1);
        priced.paid_by_card = true;
        let mut unpriced = order("Bulb", 1);
        unpriced.paid_by_card = true;
        let records = [record(&priced, 0), record(&unpriced, 1)];
        let mut stock = levels(&[("Lamp", 5), ("Bulb", 5)]);
        stock.get_mut("Lamp").unwrap().price = Some(Price {
            unit_amount: shared::domain::UnitAmount::new(1999).unwrap(),
            currency: shared::domain::Currency::DEFAULT,
        });
        let plan = plan(
            &records,
            &everything(&records),
            &placed(&[&priced, &unpriced]),
            &stock,
        );
        assert_eq!(
            plan.outcomes,
            [
                Outcome::Decided(Step::Reserve),
                Outcome::Decided(Step::Reject(RejectionReason::NoPrice))
            ]
        );
        assert_eq!(plan.taken, BTreeMap::from([("Lamp".to_owned(), 1)]));
    }

    #[test]
    fn a_failed_payment_gives_the_stock_back_once_and_a_paid_order_keeps_it() {
        let mut failed = order("Lamp", 2);
        failed.status = OrderStatus::Reserved;
        let mut paid = order("Lamp", 1);
        paid.status = OrderStatus::Reserved;
        let still_placed = order("Lamp", 1);
        let as_kind = |order: &OpenOrder, kind: EventType, offset: i64| {
            let mut record = record(order, offset);
            record.event = OrderEvent::of_kind(kind, record.event.data.clone());
            record
        };
        let records = [
            as_kind(&failed, EventType::OrderPaymentFailed, 0),
            // A second, distinct event about the same failure.
            as_kind(&failed, EventType::OrderPaymentFailed, 1),
            as_kind(&paid, EventType::OrderPaid, 2),
            // Not reserved: a payment event cannot settle it.
            as_kind(&still_placed, EventType::OrderPaid, 3),
        ];
        let plan = plan(
            &records,
            &everything(&records),
            &placed(&[&failed, &paid, &still_placed]),
            &levels(&[("Lamp", 0)]),
        );
        assert_eq!(
            plan.outcomes,
            [
                Outcome::Decided(Step::FailPayment),
                Outcome::NotPlaced,
                Outcome::Decided(Step::Pay),
                Outcome::NotPlaced
            ]
        );
        assert_eq!(plan.taken, BTreeMap::from([("Lamp".to_owned(), -2)]));
    }
}
