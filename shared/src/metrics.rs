//! The system's business and pipeline metrics (docs/observability.md), recorded through the
//! `metrics` facade so that every function emits them the same way wherever it runs:
//!
//! - on Lambda, [`emf::install`] makes them CloudWatch Embedded Metric Format lines in the
//!   function's log, written by [`flush`] at the end of each invocation (no API calls);
//! - in the local runtime, a Prometheus recorder serves them on `127.0.0.1:9464/metrics`;
//! - with no recorder installed (tests, tools) recording them costs next to nothing.
//!
//! Every name lives in [`names`]; functions call the recording helpers below, never
//! `metrics::counter!` with a literal, so a name exists once and a dashboard, an alarm or a
//! recording rule can rely on it.

use std::time::Duration;

/// The metric names, as Prometheus and CloudWatch show them.
pub mod names {
    /// Orders accepted by the API (not replays of an Idempotency-Key).
    pub const ORDERS_PLACED: &str = "orders_placed_total";
    /// Orders the inventory confirmed.
    pub const ORDERS_CONFIRMED: &str = "orders_confirmed_total";
    /// Orders the inventory rejected, by `reason` (`OUT_OF_STOCK`, `UNKNOWN_PRODUCT`, ...).
    pub const ORDERS_REJECTED: &str = "orders_rejected_total";
    /// Orders cancelled.
    pub const ORDERS_CANCELLED: &str = "orders_cancelled_total";
    /// Payment attempts, by `outcome`.
    pub const PAYMENTS: &str = "payments_total";
    /// Mails, by `outcome`: `sent`, `failed` (permanent), `retryable`, `skipped`.
    pub const MAILS: &str = "mails_total";
    /// Poison records stored in `dead_letters`, by `consumer`.
    pub const DEAD_LETTERS: &str = "dead_letters_total";
    /// Records per consumer batch (histogram), by `consumer`.
    pub const BATCH_RECORDS: &str = "batch_records";
    /// Seconds one consumer batch took (histogram), by `consumer` and `outcome`.
    pub const BATCH_SECONDS: &str = "batch_seconds";
    /// Age of the oldest outbox row not yet published, in seconds (0 when none is pending).
    pub const OUTBOX_OLDEST_UNPUBLISHED_SECONDS: &str = "outbox_oldest_unpublished_seconds";
    /// Requests the API refused for who was asking, by `reason`: `unauthorized` (no valid
    /// token, 401), `not_found` (an order the caller may not see, 404), `rate_limited` (an
    /// abuse limit, 429).
    pub const REQUESTS_REFUSED: &str = "requests_refused_total";
    /// Rows the retention job removed, by `table`.
    pub const ROWS_PRUNED: &str = "rows_pruned_total";
}

/// Label names.
pub mod labels {
    pub const REASON: &str = "reason";
    pub const OUTCOME: &str = "outcome";
    pub const CONSUMER: &str = "consumer";
    pub const TABLE: &str = "table";
}

/// Histogram buckets of [`names::BATCH_RECORDS`] where a recorder needs them (Prometheus).
pub const BATCH_RECORDS_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
];

/// Histogram buckets of [`names::BATCH_SECONDS`] where a recorder needs them (Prometheus).
pub const BATCH_SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Units and help texts, for recorders that show them (Prometheus `# HELP`, EMF `Unit`).
pub fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(
        names::ORDERS_PLACED,
        Unit::Count,
        "Orders accepted by the API"
    );
    metrics::describe_counter!(
        names::ORDERS_CONFIRMED,
        Unit::Count,
        "Orders the inventory confirmed"
    );
    metrics::describe_counter!(
        names::ORDERS_REJECTED,
        Unit::Count,
        "Orders the inventory rejected, by reason"
    );
    metrics::describe_counter!(names::ORDERS_CANCELLED, Unit::Count, "Orders cancelled");
    metrics::describe_counter!(
        names::ROWS_PRUNED,
        Unit::Count,
        "Rows the retention job removed, by table"
    );
    metrics::describe_counter!(
        names::REQUESTS_REFUSED,
        Unit::Count,
        "Requests refused for who was asking, by reason"
    );
    metrics::describe_counter!(names::PAYMENTS, Unit::Count, "Payment attempts, by outcome");
    metrics::describe_counter!(names::MAILS, Unit::Count, "Mails, by outcome");
    metrics::describe_counter!(
        names::DEAD_LETTERS,
        Unit::Count,
        "Poison records stored in dead_letters, by consumer"
    );
    metrics::describe_histogram!(
        names::BATCH_RECORDS,
        Unit::Count,
        "Records per consumer batch"
    );
    metrics::describe_histogram!(
        names::BATCH_SECONDS,
        Unit::Seconds,
        "Duration of one consumer batch"
    );
    metrics::describe_gauge!(
        names::OUTBOX_OLDEST_UNPUBLISHED_SECONDS,
        Unit::Seconds,
        "Age of the oldest unpublished outbox row"
    );
}

/// One order accepted by the API.
pub fn order_placed() {
    metrics::counter!(names::ORDERS_PLACED).increment(1);
}

/// Orders the inventory confirmed in one batch.
pub fn orders_confirmed(count: u64) {
    if count > 0 {
        metrics::counter!(names::ORDERS_CONFIRMED).increment(count);
    }
}

/// Orders the inventory rejected for `reason` in one batch.
pub fn orders_rejected(reason: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!(names::ORDERS_REJECTED, labels::REASON => reason).increment(count);
    }
}

/// One request refused for `reason` (see [`names::REQUESTS_REFUSED`]).
pub fn request_refused(reason: &'static str) {
    metrics::counter!(names::REQUESTS_REFUSED, labels::REASON => reason).increment(1);
}

/// Rows of `table` the retention job removed in one run.
pub fn rows_pruned(table: &'static str, rows: u64) {
    metrics::counter!(names::ROWS_PRUNED, labels::TABLE => table).increment(rows);
}

/// One order cancelled.
pub fn order_cancelled() {
    metrics::counter!(names::ORDERS_CANCELLED).increment(1);
}

/// Payments of one batch that ended as `outcome` (`succeeded`, `declined`, `refunded`,
/// `retryable`, `failed`).
pub fn payments(outcome: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!(names::PAYMENTS, labels::OUTCOME => outcome).increment(count);
    }
}

/// Mails of one batch that ended as `outcome`.
pub fn mails(outcome: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!(names::MAILS, labels::OUTCOME => outcome).increment(count);
    }
}

/// Poison records a consumer stored in `dead_letters`.
pub fn dead_letters(consumer: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!(names::DEAD_LETTERS, labels::CONSUMER => consumer).increment(count);
    }
}

/// One consumer batch: how many records it held and how long it took; `outcome` is `ok` or
/// `failed`.
pub fn batch(consumer: &'static str, outcome: &'static str, records: usize, took: Duration) {
    metrics::histogram!(names::BATCH_RECORDS, labels::CONSUMER => consumer).record(records as f64);
    metrics::histogram!(
        names::BATCH_SECONDS,
        labels::CONSUMER => consumer,
        labels::OUTCOME => outcome
    )
    .record(took.as_secs_f64());
}

/// The age of the oldest unpublished outbox row, as the relay last saw it.
pub fn outbox_oldest_unpublished(age: Duration) {
    metrics::gauge!(names::OUTBOX_OLDEST_UNPUBLISHED_SECONDS).set(age.as_secs_f64());
}

/// Writes the metrics recorded since the last flush as EMF lines to stdout, when
/// [`emf::install`] was called; does nothing otherwise. Lambda entry points call it once per
/// invocation, after the work and before the answer.
pub fn flush() {
    if let Some(collector) = emf::COLLECTOR.get() {
        let stdout = std::io::stdout();
        if let Err(err) = collector.flush(stdout.lock()) {
            tracing::warn!(error = %err, "could not write the EMF metrics");
        }
    }
}

/// CloudWatch Embedded Metric Format, for the Lambda functions.
pub mod emf {
    use std::sync::OnceLock;

    use metrics_cloudwatch_embedded::Collector;

    pub(super) static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

    /// The variable naming the CloudWatch namespace (`template.yaml` sets one per stack);
    /// every emitting function's config lists it among the variables it reads.
    pub const NAMESPACE_VARIABLE: &str = "METRICS_NAMESPACE";

    /// The namespace when [`NAMESPACE_VARIABLE`] is not set.
    pub const DEFAULT_NAMESPACE: &str = "OrderSystem";

    /// Why the EMF recorder could not be installed.
    #[derive(Debug, thiserror::Error)]
    #[error("could not install the EMF metrics recorder: {0}")]
    pub struct InstallError(String);

    /// Installs the process-wide EMF recorder, in the namespace `METRICS_NAMESPACE` (else
    /// [`DEFAULT_NAMESPACE`]). Each metric's labels become its dimensions; there are no
    /// default dimensions, so one metric is one CloudWatch series per label set whatever
    /// function emits it.
    pub fn install() -> Result<&'static Collector, InstallError> {
        let namespace = std::env::var(NAMESPACE_VARIABLE)
            .ok()
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        install_in(namespace)
    }

    /// As [`install`], in `namespace`.
    pub fn install_in(namespace: String) -> Result<&'static Collector, InstallError> {
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(namespace)
            .init()
            .map_err(|err| InstallError(err.to_string()))?;
        super::describe();
        let _ = COLLECTOR.set(collector);
        Ok(collector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names that are counters; the test checks every name, these and the rest.
    const COUNTERS: [&str; 7] = [
        names::ORDERS_PLACED,
        names::ORDERS_CONFIRMED,
        names::ORDERS_REJECTED,
        names::ORDERS_CANCELLED,
        names::PAYMENTS,
        names::MAILS,
        names::DEAD_LETTERS,
    ];

    #[test]
    fn every_name_is_a_valid_prometheus_name_and_counters_end_in_total() {
        let valid = regex::Regex::new("^[a-zA-Z_][a-zA-Z0-9_]*$").unwrap();
        let others = [
            names::BATCH_RECORDS,
            names::BATCH_SECONDS,
            names::OUTBOX_OLDEST_UNPUBLISHED_SECONDS,
        ];
        for name in COUNTERS.into_iter().chain(others) {
            assert!(valid.is_match(name), "{name}");
        }
        for counter in COUNTERS {
            assert!(counter.ends_with("_total"), "{counter}");
        }
    }

    #[test]
    fn buckets_are_strictly_increasing() {
        for buckets in [BATCH_RECORDS_BUCKETS, BATCH_SECONDS_BUCKETS] {
            assert!(buckets.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }
}
