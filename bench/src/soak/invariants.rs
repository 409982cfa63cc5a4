//! What must hold at the end of a soak, whatever faults came and went. Each check prints its
//! counts; the soak fails when any does not hold.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

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
    /// Accepted orders by their sequence number in the run.
    pub accepted: &'a BTreeMap<usize, Uuid>,
    /// Each product's level before the first order.
    pub initial_stock: &'a BTreeMap<String, i64>,
    /// The values of the poison records the soak produced.
    pub poison: &'a HashSet<Vec<u8>>,
    /// How many consumers read the topic the poison went to (each dead-letters it once).
    pub poison_readers: usize,
    /// The relay's grace period: no unpublished outbox row may be older than this.
    pub relay_window: Duration,
}

/// Runs every check against the database and the mails in the sink.
pub async fn check(run: &Run<'_>, pool: &PgPool, mails: &[Value]) -> anyhow::Result<Vec<Check>> {
    let statuses = statuses(pool, run.accepted).await?;
    Ok(vec![
        decided_exactly_once(pool, run, &statuses).await?,
        stock_conserved(pool, run).await?,
        one_mail_per_order_and_kind(run, &statuses, mails),
        outbox_drained(pool, run).await?,
        dead_letters_only_for_poison(pool, run).await?,
    ])
}

/// `status` of every accepted order, by id.
async fn statuses(
    pool: &PgPool,
    accepted: &BTreeMap<usize, Uuid>,
) -> anyhow::Result<HashMap<Uuid, String>> {
    let ids: Vec<Uuid> = accepted.values().copied().collect();
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, status FROM orders WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(pool)
            .await
            .context("could not read the orders")?;
    Ok(rows.into_iter().collect())
}

async fn decided_exactly_once(
    pool: &PgPool,
    run: &Run<'_>,
    statuses: &HashMap<Uuid, String>,
) -> anyhow::Result<Check> {
    let missing = run.accepted.len() - statuses.len();
    let undecided = statuses.values().filter(|s| *s == "PLACED").count();
    let ids: Vec<String> = run.accepted.values().map(Uuid::to_string).collect();
    let decisions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT payload->>'subject', count(*) FROM outbox
         WHERE payload->>'type' IN ('order.confirmed', 'order.rejected')
           AND payload->>'subject' = ANY($1)
         GROUP BY 1",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .context("could not count the decisions")?;
    let once = decisions.iter().filter(|(_, n)| *n == 1).count();
    let twice = decisions.iter().filter(|(_, n)| *n > 1).count();
    Ok(Check::new(
        "every accepted order decided exactly once",
        missing == 0 && undecided == 0 && once == run.accepted.len() && twice == 0,
        format!(
            "{} accepted, {once} decided once, {twice} decided more than once, {undecided} still PLACED, {missing} missing",
            run.accepted.len()
        ),
    ))
}

async fn stock_conserved(pool: &PgPool, run: &Run<'_>) -> anyhow::Result<Check> {
    let mut held = true;
    let mut details = Vec::new();
    for (product, initial) in run.initial_stock {
        let (confirmed, level): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT coalesce(sum(quantity), 0)::bigint FROM orders
                     WHERE product_name = $1 AND status = 'CONFIRMED'),
                    (SELECT quantity::bigint FROM stock WHERE product_name = $1)",
        )
        .bind(product)
        .fetch_one(pool)
        .await
        .context("could not read the stock")?;
        held &= initial - confirmed == level;
        details.push(format!("{product} {initial} - {confirmed} = {level}"));
    }
    Ok(Check::new(
        "initial stock minus confirmed quantities equals final stock",
        held,
        details.join(", "),
    ))
}

/// Which mail a subject line is, as the notification function writes them.
fn mail_kind(subject: &str) -> Option<&'static str> {
    if subject.starts_with("We received your order") {
        Some("received")
    } else if subject.starts_with("We could not fulfil your order") {
        Some("rejected")
    } else {
        None
    }
}

/// Receivers drop copies by `Message-ID` (a crash between sending and recording a mail sends
/// it again, with the same id), so mails are counted by distinct id; copies are reported.
fn one_mail_per_order_and_kind(
    run: &Run<'_>,
    statuses: &HashMap<Uuid, String>,
    mails: &[Value],
) -> Check {
    let mut ids: HashMap<(usize, &'static str), HashSet<String>> = HashMap::new();
    let mut copies = 0;
    for mail in mails {
        let Some(kind) = mail["subject"].as_str().and_then(mail_kind) else {
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
    let mut expected = 0;
    for (seq, id) in run.accepted {
        let rejected = statuses.get(id).is_some_and(|s| s == "REJECTED");
        for (kind, wanted) in [("received", 1), ("rejected", usize::from(rejected))] {
            expected += wanted;
            let got = ids.get(&(*seq, kind)).map_or(0, HashSet::len);
            if got != wanted {
                wrong += 1;
            }
        }
    }
    let unexpected = ids
        .keys()
        .filter(|(seq, _)| !run.accepted.contains_key(seq))
        .count();
    Check::new(
        "exactly one mail per order and kind",
        wrong == 0 && unexpected == 0,
        format!(
            "{expected} expected, {} distinct mails, {wrong} orders with a wrong count, {unexpected} for orders not accepted, {copies} resent copies (same Message-ID)",
            ids.values().map(HashSet::len).sum::<usize>()
        ),
    )
}

async fn outbox_drained(pool: &PgPool, run: &Run<'_>) -> anyhow::Result<Check> {
    let (stale, pending): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE created_at < now() - make_interval(secs => $1)),
                count(*)
         FROM outbox WHERE published_at IS NULL",
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
