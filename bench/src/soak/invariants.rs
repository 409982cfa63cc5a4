//! What must hold at the end of a soak, whatever faults came and went. Each check prints its
//! counts; the soak fails when any does not hold.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use shared::events::topics;

use crate::pipeline::orders::order_seq;

/// One invariant and whether it held, with the figures behind the verdict.
pub struct Check {
    pub name: &'static str,
    pub held: bool,
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, held: bool, detail: String) -> Self {
        Self { name, held, detail }
    }
}

/// What the run did, as the checks need it.
pub struct Run<'a> {
    pub tag: &'a str,
    /// Accepted orders by their sequence number in the run, with those created although
    /// their POST got no answer.
    pub accepted: &'a BTreeMap<usize, Uuid>,
    /// Each product's level before the first order.
    pub initial_stock: &'a BTreeMap<String, i64>,
    /// The values of the poison records the soak produced.
    pub poison: &'a HashSet<Vec<u8>>,
    /// How many consumers read the topic the poison went to (each dead-letters it once).
    pub poison_readers: usize,
    /// The relay's grace period: no unpublished outbox row may be older than this.
    pub relay_window: Duration,
    /// The run's broker, where the decisions are read back (the outbox forgets a row once
    /// the broker acknowledged it).
    pub bootstrap: &'a str,
}

/// What the checks need to know of one accepted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub status: String,
    pub rejection_reason: Option<String>,
    /// The card it is paid with; `None` for an order paid on invoice.
    pub payment_method: Option<String>,
    /// What it costs, set when its stock was reserved (`None` without a price).
    pub amount: Option<i64>,
    /// The PaymentIntent its payment row records as the charge.
    pub payment_intent_id: Option<String>,
}

impl Order {
    fn paid_and_confirmed(&self) -> bool {
        self.status == "CONFIRMED" && self.payment_method.is_some()
    }

    fn declined(&self) -> bool {
        self.status == "REJECTED" && self.rejection_reason.as_deref() == Some("PAYMENT_DECLINED")
    }

    /// Not decided yet: no stock looked at, or stock held while the payment is pending.
    fn undecided(&self) -> bool {
        self.status == "PLACED" || self.status == "RESERVED"
    }
}

/// Runs every check against the database, the mails in the sink and the PaymentIntents at
/// the payment stand-in.
pub async fn check(
    run: &Run<'_>,
    pool: &PgPool,
    mails: &[Value],
    payment_intents: &[Value],
) -> anyhow::Result<Vec<Check>> {
    let orders = orders(pool, run.accepted).await?;
    Ok(vec![
        decided_exactly_once(run, &orders).await,
        stock_conserved(pool, run).await?,
        one_mail_per_order_and_kind(run, &orders, mails),
        one_charge_per_paid_order(run, &orders, payment_intents),
        outbox_drained(pool, run).await?,
        dead_letters_only_for_poison(pool, run).await?,
    ])
}

/// Every accepted order (that exists), by id.
async fn orders(
    pool: &PgPool,
    accepted: &BTreeMap<usize, Uuid>,
) -> anyhow::Result<HashMap<Uuid, Order>> {
    let ids: Vec<Uuid> = accepted.values().copied().collect();
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        Uuid,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
    )> = sqlx::query_as(
        "SELECT o.id, o.status, o.rejection_reason, o.payment_method, o.amount,
                    p.payment_intent_id
             FROM orders o LEFT JOIN payments p ON p.order_id = o.id
             WHERE o.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .context("could not read the orders")?;
    Ok(rows
        .into_iter()
        .map(
            |(id, status, rejection_reason, payment_method, amount, payment_intent_id)| {
                let order = Order {
                    status,
                    rejection_reason,
                    payment_method,
                    amount,
                    payment_intent_id,
                };
                (id, order)
            },
        )
        .collect())
}

async fn decided_exactly_once(run: &Run<'_>, orders: &HashMap<Uuid, Order>) -> Check {
    let missing = run.accepted.len() - orders.len();
    let placed = orders.values().filter(|o| o.status == "PLACED").count();
    let reserved = orders.values().filter(|o| o.status == "RESERVED").count();
    let undecided = orders.values().filter(|o| o.undecided()).count();
    // Decisions as the broker holds them: `order.confirmed` and `order.rejected` events by
    // subject, each counted once per event id (a redelivery of one event keeps its id; a
    // second decision would be an event of its own).
    let ids: HashSet<String> = run.accepted.values().map(Uuid::to_string).collect();
    let mut events: HashMap<String, HashSet<String>> = HashMap::new();
    for topic in [topics::ORDER_CONFIRMED, topics::ORDER_REJECTED] {
        let records = testkit::kafka::read_records(
            run.bootstrap,
            topic,
            |record| {
                record.json()["subject"]
                    .as_str()
                    .is_some_and(|subject| ids.contains(subject))
            },
            0,
            Duration::from_secs(30),
        )
        .await;
        for record in records {
            let event = record.json();
            if let (Some(subject), Some(id)) = (event["subject"].as_str(), event["id"].as_str()) {
                events
                    .entry(subject.to_owned())
                    .or_default()
                    .insert(id.to_owned());
            }
        }
    }
    let decisions: Vec<(String, i64)> = events
        .into_iter()
        .map(|(subject, ids)| (subject, ids.len() as i64))
        .collect();
    let once = decisions.iter().filter(|(_, n)| *n == 1).count();
    let twice = decisions.iter().filter(|(_, n)| *n > 1).count();
    Check::new(
        "every accepted order decided exactly once",
        missing == 0 && undecided == 0 && once == run.accepted.len() && twice == 0,
        format!(
            "{} accepted, {once} decided once, {twice} decided more than once, {placed} still PLACED, {reserved} still RESERVED, {missing} missing",
            run.accepted.len()
        ),
    )
}

/// A declined order's stock is given back, so only confirmed orders and (if any were left)
/// reserved ones hold stock; the declines are counted to show they were part of the run.
async fn stock_conserved(pool: &PgPool, run: &Run<'_>) -> anyhow::Result<Check> {
    let mut held = true;
    let mut details = Vec::new();
    for (product, initial) in run.initial_stock {
        let (confirmed, reserved, declined, level): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT coalesce(sum(quantity) FILTER (WHERE status = 'CONFIRMED'), 0)::bigint
                     FROM orders WHERE product_name = $1),
                    (SELECT coalesce(sum(quantity) FILTER (WHERE status = 'RESERVED'), 0)::bigint
                     FROM orders WHERE product_name = $1),
                    (SELECT count(*) FROM orders WHERE product_name = $1
                     AND status = 'REJECTED' AND rejection_reason = 'PAYMENT_DECLINED'),
                    (SELECT quantity::bigint FROM stock WHERE product_name = $1)",
        )
        .bind(product)
        .fetch_one(pool)
        .await
        .context("could not read the stock")?;
        held &= initial - confirmed - reserved == level;
        let reserved = if reserved == 0 {
            String::new()
        } else {
            format!(" - {reserved} reserved")
        };
        details.push(format!(
            "{product} {initial} - {confirmed}{reserved} = {level} ({declined} declined given back)"
        ));
    }
    Ok(Check::new(
        "initial stock minus confirmed quantities equals final stock (declines given back)",
        held,
        details.join(", "),
    ))
}

/// The kinds of mail, as [`mail_kind`] tells them apart.
const MAIL_KINDS: [&str; 5] = ["received", "rejected", "declined", "confirmed", "cancelled"];

/// Which mail a subject line and text body are, as the notification function writes them: a
/// rejection for a declined card is told apart by its reason.
fn mail_kind(subject: &str, text: &str) -> Option<&'static str> {
    if subject.starts_with("We received your order") {
        Some("received")
    } else if subject.starts_with("We could not fulfil your order") {
        if text.contains("your card was declined") {
            Some("declined")
        } else {
            Some("rejected")
        }
    } else if subject.starts_with("Your order") && subject.ends_with("is confirmed") {
        Some("confirmed")
    } else if subject.starts_with("Your order") && subject.ends_with("was cancelled") {
        Some("cancelled")
    } else {
        None
    }
}

/// How many mails of `kind` an order must have got: the received one always, a rejection
/// (other than for a declined card) or a decline when it was rejected so, a confirmation
/// only when it was paid by card, and no cancellation (the soak cancels nothing).
fn mails_wanted(order: Option<&Order>, kind: &str) -> usize {
    let wanted = match kind {
        "received" => true,
        "rejected" => order.is_some_and(|o| o.status == "REJECTED" && !o.declined()),
        "declined" => order.is_some_and(Order::declined),
        "confirmed" => order.is_some_and(Order::paid_and_confirmed),
        _ => false,
    };
    usize::from(wanted)
}

/// Receivers drop copies by `Message-ID` (a crash between sending and recording a mail sends
/// it again, with the same id), so mails are counted by distinct id; copies are reported.
fn one_mail_per_order_and_kind(
    run: &Run<'_>,
    orders: &HashMap<Uuid, Order>,
    mails: &[Value],
) -> Check {
    let mut ids: HashMap<(usize, &'static str), HashSet<String>> = HashMap::new();
    let mut copies = 0;
    for mail in mails {
        let text = mail["text"].as_str().unwrap_or_default();
        let Some(kind) = mail["subject"]
            .as_str()
            .and_then(|subject| mail_kind(subject, text))
        else {
            continue;
        };
        let message_id = mail["headers"]["message-id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for to in mail["to"].as_array().into_iter().flatten() {
            let address = to["address"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if let Some(seq) = order_seq(&address, run.tag)
                && !ids
                    .entry((seq, kind))
                    .or_default()
                    .insert(message_id.clone())
            {
                copies += 1;
            }
        }
    }
    let mut wrong = 0;
    let mut expected: BTreeMap<&str, usize> = BTreeMap::new();
    for (seq, id) in run.accepted {
        let mut right = true;
        for kind in MAIL_KINDS {
            let wanted = mails_wanted(orders.get(id), kind);
            *expected.entry(kind).or_default() += wanted;
            right &= ids.get(&(*seq, kind)).map_or(0, HashSet::len) == wanted;
        }
        wrong += usize::from(!right);
    }
    let unexpected = ids
        .keys()
        .filter(|(seq, _)| !run.accepted.contains_key(seq))
        .count();
    let expected_text = MAIL_KINDS
        .iter()
        .filter_map(|kind| {
            let n = expected.get(kind).copied().unwrap_or(0);
            (n > 0).then(|| format!("{n} {kind}"))
        })
        .collect::<Vec<_>>()
        .join(", ");
    Check::new(
        "exactly one mail per order and kind",
        wrong == 0 && unexpected == 0,
        format!(
            "{} expected ({expected_text}), {} distinct mails, {wrong} orders with a wrong count, {unexpected} for orders not accepted, {copies} resent copies (same Message-ID)",
            expected.values().sum::<usize>(),
            ids.values().map(HashSet::len).sum::<usize>()
        ),
    )
}

/// The PaymentIntents at the stand-in, against the orders: each order paid by card and
/// confirmed has exactly one succeeded PaymentIntent (carrying its id in `metadata`), of its
/// amount, and the one its payment row records; a declined order, one paid on invoice and one
/// rejected for its stock have none. A declined attempt leaves a PaymentIntent that did not
/// succeed, which is allowed (a retry may even leave two).
fn one_charge_per_paid_order(
    run: &Run<'_>,
    orders: &HashMap<Uuid, Order>,
    payment_intents: &[Value],
) -> Check {
    let mut succeeded: HashMap<Uuid, Vec<&Value>> = HashMap::new();
    let mut strays = 0;
    for intent in payment_intents {
        if intent["status"] != "succeeded" {
            continue;
        }
        match intent["metadata"]["order_id"]
            .as_str()
            .and_then(|id| id.parse::<Uuid>().ok())
        {
            Some(order) => succeeded.entry(order).or_default().push(intent),
            None => strays += 1,
        }
    }
    let accepted: HashSet<Uuid> = run.accepted.values().copied().collect();
    strays += succeeded
        .iter()
        .filter(|(order, _)| !accepted.contains(order))
        .map(|(_, intents)| intents.len())
        .sum::<usize>();
    let (mut paid, mut charged_once, mut uncharged, mut wrong) = (0, 0, 0, 0);
    for id in run.accepted.values() {
        let charges = succeeded.get(id).map_or(&[][..], Vec::as_slice);
        match orders.get(id) {
            Some(order) if order.paid_and_confirmed() => {
                paid += 1;
                let right = match charges {
                    [charge] => {
                        charge["id"].as_str() == order.payment_intent_id.as_deref()
                            && charge["amount"].as_i64() == order.amount
                    }
                    _ => false,
                };
                charged_once += usize::from(right);
                wrong += usize::from(!right);
            }
            _ if charges.is_empty() => uncharged += 1,
            _ => wrong += 1,
        }
    }
    let declined = orders.values().filter(|o| o.declined()).count();
    Check::new(
        "exactly one succeeded PaymentIntent per paid confirmed order, none for any other",
        wrong == 0 && strays == 0,
        format!(
            "{paid} paid and confirmed, {charged_once} of them charged once with their amount; {uncharged} others ({declined} declined) not charged; {wrong} orders charged wrongly; {strays} succeeded PaymentIntents for no accepted order; {} PaymentIntents in all",
            payment_intents.len()
        ),
    )
}

async fn outbox_drained(pool: &PgPool, run: &Run<'_>) -> anyhow::Result<Check> {
    let (stale, pending): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE created_at < now() - make_interval(secs => $1)),
                count(*)
         FROM outbox",
    )
    .bind(run.relay_window.as_secs_f64())
    .fetch_one(pool)
    .await
    .context("could not read the outbox")?;
    Ok(Check::new(
        "no outbox row older than the relay's window",
        stale == 0,
        format!(
            "{stale} unpublished rows older than {} s ({pending} unpublished in all)",
            run.relay_window.as_secs()
        ),
    ))
}

async fn dead_letters_only_for_poison(pool: &PgPool, run: &Run<'_>) -> anyhow::Result<Check> {
    let letters: Vec<(String, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT consumer, value FROM dead_letters")
            .fetch_all(pool)
            .await
            .context("could not read the dead letters")?;
    let genuine = letters
        .iter()
        .filter(|(_, value)| value.as_ref().is_some_and(|v| run.poison.contains(v)))
        .count();
    let expected = run.poison.len() * run.poison_readers;
    Ok(Check::new(
        "dead letters only for records that really are poison",
        genuine == letters.len() && letters.len() == expected,
        format!(
            "{} dead letters, {genuine} of them poison the soak produced; {} poison records x {} consumers = {expected} expected",
            letters.len(),
            run.poison.len(),
            run.poison_readers
        ),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TAG: &str = "t";

    /// A mail as maildev lists it, sent to the soak's customer `seq`.
    fn mail_to(seq: usize, subject: &str, text: &str, message_id: &str) -> Value {
        json!({
            "subject": subject,
            "text": text,
            "to": [{ "address": format!("{TAG}-{seq}@bench.example") }],
            "headers": { "message-id": message_id },
        })
    }

    /// Three accepted orders: 0 paid on invoice, 1 paid by card, 2 declined.
    struct Fixture {
        accepted: BTreeMap<usize, Uuid>,
        orders: HashMap<Uuid, Order>,
        stock: BTreeMap<String, i64>,
        poison: HashSet<Vec<u8>>,
    }

    impl Fixture {
        fn new() -> Self {
            let accepted: BTreeMap<usize, Uuid> = (0..3).map(|seq| (seq, Uuid::now_v7())).collect();
            let order =
                |status: &str, reason: Option<&str>, card: bool, intent: Option<&str>| Order {
                    status: status.to_owned(),
                    rejection_reason: reason.map(str::to_owned),
                    payment_method: card.then(|| "pm_card_visa".to_owned()),
                    amount: Some(2599),
                    payment_intent_id: intent.map(str::to_owned),
                };
            let orders = HashMap::from([
                (accepted[&0], order("CONFIRMED", None, false, None)),
                (
                    accepted[&1],
                    order("CONFIRMED", None, true, Some("pi_paid")),
                ),
                (
                    accepted[&2],
                    order("REJECTED", Some("PAYMENT_DECLINED"), true, None),
                ),
            ]);
            Self {
                accepted,
                orders,
                stock: BTreeMap::new(),
                poison: HashSet::new(),
            }
        }

        fn run(&self) -> Run<'_> {
            Run {
                tag: TAG,
                accepted: &self.accepted,
                initial_stock: &self.stock,
                poison: &self.poison,
                poison_readers: 2,
                relay_window: Duration::from_secs(5),
                bootstrap: "",
            }
        }

        fn mail(&self, seq: usize, subject: &str, text: &str, message_id: &str) -> Value {
            mail_to(
                seq,
                &format!("{subject} {}", self.accepted[&seq]),
                text,
                message_id,
            )
        }

        fn received(&self, seq: usize) -> Value {
            self.mail(
                seq,
                "We received your order",
                "Thank you.",
                &format!("<r{seq}@x>"),
            )
        }

        /// The mails the three orders must get.
        fn right_mails(&self) -> Vec<Value> {
            let confirmed = json!({
                "subject": format!("Your order {} is confirmed", self.accepted[&1]),
                "text": "We charged 25.99 USD.",
                "to": [{ "address": format!("{TAG}-1@bench.example") }],
                "headers": { "message-id": "<c1@x>" },
            });
            let declined = self.mail(
                2,
                "We could not fulfil your order",
                "because your card was declined.",
                "<d2@x>",
            );
            vec![
                self.received(0),
                self.received(1),
                self.received(2),
                confirmed,
                declined,
            ]
        }
    }

    fn intent(id: &str, order: Uuid, status: &str, amount: i64) -> Value {
        json!({ "id": id, "status": status, "amount": amount, "metadata": { "order_id": order.to_string() } })
    }

    #[test]
    fn a_rejection_mail_is_a_decline_when_its_reason_is_the_card() {
        assert_eq!(
            mail_kind(
                "We could not fulfil your order x",
                "because your card was declined."
            ),
            Some("declined")
        );
        assert_eq!(
            mail_kind(
                "We could not fulfil your order x",
                "because we do not have enough"
            ),
            Some("rejected")
        );
        assert_eq!(
            mail_kind("Your order x is confirmed", ""),
            Some("confirmed")
        );
        assert_eq!(
            mail_kind("Your order x was cancelled", ""),
            Some("cancelled")
        );
        assert_eq!(mail_kind("We received your order x", ""), Some("received"));
        assert_eq!(mail_kind("Hello", ""), None);
    }

    #[test]
    fn mails_hold_only_with_one_of_each_kind_an_order_calls_for() {
        let fixture = Fixture::new();
        let run = fixture.run();
        let right = fixture.right_mails();
        let check = one_mail_per_order_and_kind(&run, &fixture.orders, &right);
        assert!(check.held, "{}", check.detail);
        assert!(
            check
                .detail
                .starts_with("5 expected (3 received, 1 declined, 1 confirmed)"),
            "{}",
            check.detail
        );

        let mut resent = right.clone();
        resent.push(right[3].clone());
        let check = one_mail_per_order_and_kind(&run, &fixture.orders, &resent);
        assert!(
            check.held,
            "a copy with the same Message-ID is one mail: {}",
            check.detail
        );
        assert!(check.detail.contains("1 resent copies"), "{}", check.detail);

        let without_confirmation: Vec<Value> =
            right.iter().filter(|m| m != &&right[3]).cloned().collect();
        assert!(!one_mail_per_order_and_kind(&run, &fixture.orders, &without_confirmation).held);

        let mut twice = right.clone();
        twice.push(fixture.mail(
            2,
            "We could not fulfil your order",
            "your card was declined",
            "<d2-again@x>",
        ));
        assert!(!one_mail_per_order_and_kind(&run, &fixture.orders, &twice).held);

        let mut wrong_reason = right.clone();
        wrong_reason[4] = fixture.mail(
            2,
            "We could not fulfil your order",
            "out of stock",
            "<d2@x>",
        );
        assert!(!one_mail_per_order_and_kind(&run, &fixture.orders, &wrong_reason).held);

        let mut unpaid_confirmed = right.clone();
        unpaid_confirmed.push(mail_to(
            0,
            &format!("Your order {} is confirmed", fixture.accepted[&0]),
            "",
            "<c0@x>",
        ));
        assert!(!one_mail_per_order_and_kind(&run, &fixture.orders, &unpaid_confirmed).held);

        let mut unknown = right;
        unknown.push(mail_to(
            7,
            &format!("We received your order {}", Uuid::now_v7()),
            "",
            "<r7@x>",
        ));
        assert!(!one_mail_per_order_and_kind(&run, &fixture.orders, &unknown).held);
    }

    #[test]
    fn charges_hold_only_with_one_succeeded_intent_per_paid_order_and_none_for_others() {
        let fixture = Fixture::new();
        let run = fixture.run();
        let (paid, declined) = (fixture.accepted[&1], fixture.accepted[&2]);
        let right = vec![
            intent("pi_paid", paid, "succeeded", 2599),
            intent("pi_declined", declined, "requires_payment_method", 2599),
            intent(
                "pi_declined_again",
                declined,
                "requires_payment_method",
                2599,
            ),
        ];
        let check = one_charge_per_paid_order(&run, &fixture.orders, &right);
        assert!(check.held, "{}", check.detail);
        assert!(
            check
                .detail
                .starts_with("1 paid and confirmed, 1 of them charged once"),
            "{}",
            check.detail
        );

        let mut twice = right.clone();
        twice.push(intent("pi_paid_again", paid, "succeeded", 2599));
        assert!(!one_charge_per_paid_order(&run, &fixture.orders, &twice).held);

        assert!(
            !one_charge_per_paid_order(&run, &fixture.orders, &right[1..]).held,
            "never charged"
        );

        let mut other_intent = right.clone();
        other_intent[0] = intent("pi_other", paid, "succeeded", 2599);
        assert!(
            !one_charge_per_paid_order(&run, &fixture.orders, &other_intent).held,
            "not the recorded one"
        );

        let mut wrong_amount = right.clone();
        wrong_amount[0] = intent("pi_paid", paid, "succeeded", 2600);
        assert!(!one_charge_per_paid_order(&run, &fixture.orders, &wrong_amount).held);

        let mut declined_charged = right.clone();
        declined_charged[1] = intent("pi_declined", declined, "succeeded", 2599);
        assert!(!one_charge_per_paid_order(&run, &fixture.orders, &declined_charged).held);

        let mut invoice_charged = right.clone();
        invoice_charged.push(intent(
            "pi_invoice",
            fixture.accepted[&0],
            "succeeded",
            2599,
        ));
        assert!(!one_charge_per_paid_order(&run, &fixture.orders, &invoice_charged).held);

        let mut stray = right;
        stray.push(intent("pi_stray", Uuid::now_v7(), "succeeded", 2599));
        assert!(!one_charge_per_paid_order(&run, &fixture.orders, &stray).held);
    }
}
