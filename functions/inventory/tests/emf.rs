//! The metrics of one inventory invocation as CloudWatch extracts them from the function's
//! log: Embedded Metric Format lines, valid by the specification, carrying what the batch
//! report says. Its own test binary, because it installs the process-wide EMF recorder.

use std::collections::BTreeMap;
use std::time::Duration;

use shared::config::{KafkaSettings, Secrets};
use shared::kafka::KafkaPublisher;
use sqlx::PgPool;
use testkit::emf::EmfMetric;
use testkit::msk::{BrokerRecord, kafka_event};

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn one_invocation_writes_valid_emf_lines_carrying_the_batch_reports_counts(pool: PgPool) {
    testkit::init_tracing();
    let collector = shared::metrics::emf::install_in("OrderSystemTest".to_owned()).unwrap();
    sqlx::query!("INSERT INTO stock (product_name, quantity) VALUES ('Mouse', 2)")
        .execute(&pool)
        .await
        .unwrap();
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(testkit::orders::insert_placed(&pool, "Mouse", 1, None).await);
    }
    events.push(testkit::orders::insert_placed(&pool, "Perpetuum Mobile", 1, None).await);
    let mut records: Vec<BrokerRecord> = events
        .iter()
        .zip(0..)
        .map(|(event, offset)| testkit::msk::record(event, 0, offset))
        .collect();
    let mut poison = testkit::msk::record(&events[0], 0, 4);
    poison.value = Some(b"not an event".to_vec());
    records.push(poison);
    let mut settings = KafkaSettings::plaintext(testkit::kafka::bootstrap());
    settings.delivery_timeout = Duration::from_secs(20);
    let publisher = KafkaPublisher::new(&settings, &Secrets::new())
        .await
        .unwrap();
    let inventory = inventory::consumer(pool.clone(), publisher);

    let report = inventory
        .handle(kafka_event(
            "arn:aws:kafka:local:0:cluster/emf/test",
            "b",
            records,
        ))
        .await
        .unwrap();
    let mut log = Vec::new();
    collector.flush(&mut log).unwrap();

    let log = String::from_utf8(log).unwrap();
    let mut metrics: BTreeMap<(String, BTreeMap<String, String>), EmfMetric> = BTreeMap::new();
    for line in log.lines() {
        for metric in testkit::emf::parse(line).unwrap_or_else(|err| panic!("{err}: {line}")) {
            assert_eq!(metric.namespace, "OrderSystemTest");
            let key = (metric.name.clone(), metric.dimensions.clone());
            assert!(
                metrics.insert(key, metric).is_none(),
                "one value per series: {log}"
            );
        }
    }
    let value = |name: &str, dimensions: &[(&str, &str)]| -> Vec<f64> {
        let dimensions = dimensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        metrics
            .get(&(name.to_owned(), dimensions))
            .unwrap_or_else(|| panic!("no {name} in {log}"))
            .values
            .clone()
    };
    assert_eq!((report.records, report.dead_lettered), (5, 1));
    assert_eq!((report.confirmed, report.rejected), (2, 2));
    assert_eq!(value("orders_confirmed_total", &[]), [2.0]);
    assert_eq!(
        value("orders_rejected_total", &[("reason", "OUT_OF_STOCK")]),
        [1.0]
    );
    assert_eq!(
        value("orders_rejected_total", &[("reason", "UNKNOWN_PRODUCT")]),
        [1.0]
    );
    assert_eq!(
        value("dead_letters_total", &[("consumer", "inventory")]),
        [1.0]
    );
    assert_eq!(value("batch_records", &[("consumer", "inventory")]), [5.0]);
    let seconds = value(
        "batch_seconds",
        &[("consumer", "inventory"), ("outcome", "ok")],
    );
    assert!(seconds.len() == 1 && seconds[0] > 0.0, "{seconds:?}");
    let unit = |name: &str| {
        metrics
            .values()
            .find(|metric| metric.name == name)
            .and_then(|metric| metric.unit.clone())
    };
    assert_eq!(unit("batch_seconds").as_deref(), Some("Seconds"));
    assert_eq!(unit("orders_confirmed_total").as_deref(), Some("Count"));

    // A flush sends each count once: the next invocation's lines start from zero.
    let mut again = Vec::new();
    collector.flush(&mut again).unwrap();
    assert!(
        !String::from_utf8(again)
            .unwrap()
            .contains("orders_confirmed_total"),
        "counters are deltas per flush"
    );
}
