//! The decision of one batch, free of I/O: given what the transaction locked, say what
//! happens to every record. Records arrive sorted by topic, partition and offset, so each
//! product's orders (one key, one partition) are decided in the order they were placed.

use std::collections::{BTreeMap, HashMap, HashSet};

use shared::domain::RejectionReason;
use shared::msk::DecodedRecord;
use uuid::Uuid;

/// An order still `PLACED`, as locked in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlacedOrder {
    pub id: Uuid,
    pub customer_name: String,
    pub customer_email: Option<String>,
    pub product_name: String,
    pub quantity: i32,
}

/// What happens to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Confirmed,
    Rejected(RejectionReason),
    /// Already applied, by an earlier delivery or earlier in this batch: no effect.
    Duplicate,
    /// The order does not exist or is no longer `PLACED`: recorded as processed, no effect.
    NotPlaced,
}

/// The decisions of a batch and the stock they take.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// One outcome per record, in the order of the records.
    pub outcomes: Vec<Outcome>,
    /// Units taken per product, for the products that lose stock.
    pub taken: BTreeMap<String, i32>,
}

/// Decides greedily in record order: an order is confirmed when the stock left is at least
/// its quantity, otherwise rejected `OUT_OF_STOCK`; no stock row means `UNKNOWN_PRODUCT`.
///
/// `claimed` holds the event ids this transaction claimed in `processed_events`; any other
/// record, and any repeat of an event id within the batch, is a duplicate.
pub(crate) fn plan(
    records: &[DecodedRecord],
    claimed: &HashSet<Uuid>,
    placed: &HashMap<Uuid, PlacedOrder>,
    stock: &HashMap<String, i32>,
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
            let order_id = record.event.data.order_id;
            match placed.get(&order_id) {
                Some(order) if decided.insert(order_id) => {
                    decide_one(order, stock, &mut plan.taken)
                }
                _ => Outcome::NotPlaced,
            }
        };
        plan.outcomes.push(outcome);
    }
    plan
}

fn decide_one(
    order: &PlacedOrder,
    stock: &HashMap<String, i32>,
    taken: &mut BTreeMap<String, i32>,
) -> Outcome {
    let Some(&level) = stock.get(&order.product_name) else {
        return Outcome::Rejected(RejectionReason::UnknownProduct);
    };
    let already = taken.get(&order.product_name).copied().unwrap_or(0);
    if level - already >= order.quantity {
        *taken.entry(order.product_name.clone()).or_insert(0) += order.quantity;
        Outcome::Confirmed
    } else {
        Outcome::Rejected(RejectionReason::OutOfStock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::new_id;
    use shared::events::{OrderEvent, OrderEventData};
    use shared::msk::Position;

    fn record(order: &PlacedOrder, offset: i64) -> DecodedRecord {
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
            }),
            trace: shared::trace::TraceContext::new_root(),
        }
    }

    fn order(product: &str, quantity: i32) -> PlacedOrder {
        PlacedOrder {
            id: new_id(),
            customer_name: "Ada".to_owned(),
            customer_email: None,
            product_name: product.to_owned(),
            quantity,
        }
    }

    fn everything(records: &[DecodedRecord]) -> HashSet<Uuid> {
        records.iter().map(|r| r.event.id).collect()
    }

    fn placed(orders: &[&PlacedOrder]) -> HashMap<Uuid, PlacedOrder> {
        orders.iter().map(|o| (o.id, (*o).clone())).collect()
    }

    #[test]
    fn a_large_order_that_does_not_fit_leaves_stock_for_a_later_small_one() {
        let (big, small) = (order("Lamp", 5), order("Lamp", 2));
        let records = [record(&big, 1), record(&small, 2)];
        let stock = HashMap::from([("Lamp".to_owned(), 3)]);
        let plan = plan(
            &records,
            &everything(&records),
            &placed(&[&big, &small]),
            &stock,
        );
        assert_eq!(
            plan.outcomes,
            [
                Outcome::Rejected(RejectionReason::OutOfStock),
                Outcome::Confirmed
            ]
        );
        assert_eq!(plan.taken, BTreeMap::from([("Lamp".to_owned(), 2)]));
    }

    #[test]
    fn stock_is_consumed_in_record_order_until_it_runs_out() {
        let orders: Vec<_> = (0..4).map(|_| order("Lamp", 1)).collect();
        let records: Vec<_> = orders.iter().zip(0..).map(|(o, i)| record(o, i)).collect();
        let stock = HashMap::from([("Lamp".to_owned(), 3)]);
        let plan = plan(
            &records,
            &everything(&records),
            &placed(&orders.iter().collect::<Vec<_>>()),
            &stock,
        );
        assert_eq!(
            plan.outcomes,
            [
                Outcome::Confirmed,
                Outcome::Confirmed,
                Outcome::Confirmed,
                Outcome::Rejected(RejectionReason::OutOfStock)
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
            [Outcome::Rejected(RejectionReason::UnknownProduct)]
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
        let stock = HashMap::from([("Lamp".to_owned(), 10)]);
        let plan = plan(&records, &claimed, &placed(&[&lamp]), &stock);
        assert_eq!(
            plan.outcomes,
            [Outcome::Confirmed, Outcome::Duplicate, Outcome::Duplicate]
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
        let stock = HashMap::from([("Lamp".to_owned(), 10)]);
        let plan = plan(&records, &everything(&records), &placed(&[&lamp]), &stock);
        assert_eq!(
            plan.outcomes,
            [Outcome::Confirmed, Outcome::NotPlaced, Outcome::NotPlaced]
        );
        assert_eq!(plan.taken["Lamp"], 1);
    }
}
