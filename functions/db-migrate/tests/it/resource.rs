use std::time::Duration;

use db_migrate::handle;
use db_migrate::handler::{HandleError, PHYSICAL_RESOURCE_ID, response_client};
use serde_json::json;
use shared::events::topics;
use sqlx::PgPool;
use testkit::tansu::Tansu;

use crate::helpers::*;

const TABLES: [&str; 6] = [
    "dead_letters",
    "notifications",
    "orders",
    "outbox",
    "processed_events",
    "stock",
];

/// Every topic's `retention.ms` is seven days; `why` says what the test expects of it.
async fn assert_every_topic_keeps_seven_days(broker: &Tansu, why: &str) {
    for topic in topics::ALL {
        assert_eq!(
            testkit::kafka::topic_config(&broker.bootstrap(), topic, "retention.ms")
                .await
                .as_deref(),
            Some("604800000"),
            "{topic} {why}"
        );
    }
}

/// The one answer `cfn` received is FAILED, with a reason that mentions `words`.
fn assert_failed_mentioning(cfn: &ResponseUrl, words: &str) -> serde_json::Value {
    let answer = cfn.answer();
    assert_eq!(answer["Status"], "FAILED");
    assert!(
        answer["Reason"].as_str().unwrap().contains(words),
        "{answer}"
    );
    answer
}

fn assert_has_tables(tables: &[String]) {
    for table in TABLES {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing: {tables:?}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn create_applies_the_migrations_creates_the_topics_and_answers_success(pool: PgPool) {
    testkit::init_tracing();
    assert!(
        table_names(&pool).await.is_empty(),
        "the database starts empty"
    );
    let broker = Tansu::start_without_topics().await;
    let cfn = ResponseUrl::start().await;

    let deps = deps(pool.clone(), &broker.bootstrap());
    let event = request("Create", &cfn.url());
    let sent = handle(Ok(&deps), &response_client(), event.clone(), &invocation())
        .await
        .unwrap();

    let answer = cfn.answer();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], PHYSICAL_RESOURCE_ID);
    assert_eq!(answer["RequestId"], event["RequestId"]);
    assert_eq!(answer["StackId"], event["StackId"]);
    assert_eq!(answer["LogicalResourceId"], "DatabaseMigration");
    assert_eq!(
        answer["Data"]["TopicsCreated"],
        "order-placed,order-confirmed,order-rejected,order-reserved,order-paid,order-payment-failed,order-cancelled"
    );
    assert_eq!(serde_json::to_value(&sent).unwrap(), answer);
    // The URL is signed without a content type; sending one could break the signature.
    assert_eq!(cfn.received()[0].content_type.as_deref(), Some(""));

    assert_has_tables(&table_names(&pool).await);
    for topic in topics::ALL {
        assert_eq!(
            testkit::kafka::partition_count(&broker.bootstrap(), topic).await,
            3
        );
    }
    assert_every_topic_keeps_seven_days(&broker, "keeps its events seven days").await;
}

#[sqlx::test(migrations = false)]
async fn update_runs_again_without_changing_anything_and_keeps_the_physical_id(pool: PgPool) {
    let broker = Tansu::start_without_topics().await;
    let deps = deps(pool.clone(), &broker.bootstrap());
    let first = ResponseUrl::start().await;
    answer_request(Ok(&deps), "Create", &first).await;
    sqlx::query!("INSERT INTO stock (product_name, quantity) VALUES ('kept', 7)")
        .execute(&pool)
        .await
        .unwrap();

    // The next deploy changed the retention. MSK would alter the existing topics; tansu
    // answers AlterConfigs as unsupported, so they keep the retention they were created with
    // and the deploy still succeeds.
    let mut deps = deps;
    deps.topics.retention = Duration::from_secs(3 * 24 * 60 * 60);
    let second = ResponseUrl::start().await;
    answer_request(Ok(&deps), "Update", &second).await;

    let answer = second.answer();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], PHYSICAL_RESOURCE_ID);
    assert_eq!(answer["Data"]["TopicsCreated"], "");
    assert_eq!(
        answer["Data"]["TopicsExisting"],
        "order-placed,order-confirmed,order-rejected,order-reserved,order-paid,order-payment-failed,order-cancelled"
    );
    let kept: i32 = sqlx::query_scalar!("SELECT quantity FROM stock WHERE product_name = 'kept'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 7);
    assert_every_topic_keeps_seven_days(&broker, "keeps the retention it was created with").await;
}

#[sqlx::test(migrations = false)]
async fn delete_answers_success_and_leaves_schema_and_data_alone(pool: PgPool) {
    let broker = Tansu::start_without_topics().await;
    let deps = deps(pool.clone(), &broker.bootstrap());
    let create = ResponseUrl::start().await;
    answer_request(Ok(&deps), "Create", &create).await;

    let delete = ResponseUrl::start().await;
    answer_request(Ok(&deps), "Delete", &delete).await;

    let answer = delete.answer();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], PHYSICAL_RESOURCE_ID);
    assert_has_tables(&table_names(&pool).await);
    assert_eq!(
        testkit::kafka::partition_count(&broker.bootstrap(), topics::ORDER_PLACED).await,
        3
    );
}

#[tokio::test]
async fn delete_succeeds_even_when_the_function_could_not_start() {
    // A stack whose function is misconfigured must still be deletable.
    let cfn = ResponseUrl::start().await;
    let startup = anyhow::anyhow!("configuration error: DB_HOST: is required");
    answer_request(Err(&startup), "Delete", &cfn).await;
    assert_eq!(cfn.answer()["Status"], "SUCCESS");
}

#[tokio::test]
async fn a_start_up_failure_answers_failed_with_its_reason() {
    let cfn = ResponseUrl::start().await;
    let startup = anyhow::anyhow!("configuration error: DB_HOST: is required");
    answer_request(Err(&startup), "Create", &cfn).await;
    let answer = assert_failed_mentioning(&cfn, "DB_HOST");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(reason.contains("CloudWatch log stream"), "{reason}");
    assert_eq!(answer["PhysicalResourceId"], PHYSICAL_RESOURCE_ID);
}

#[tokio::test]
async fn an_unreachable_database_answers_failed_with_a_reason() {
    let port = testkit::free_port(); // nothing listens there
    let pool = lazy_pool_at(port, Duration::from_secs(3));
    let cfn = ResponseUrl::start().await;
    let deps = deps(pool, &testkit::kafka::bootstrap());
    answer_request(Ok(&deps), "Create", &cfn).await;
    assert_failed_mentioning(&cfn, "migrations");
}

#[tokio::test]
async fn a_hung_database_answers_failed_before_the_function_times_out() {
    // The database accepts connections and never answers; the function has 22 s left, so
    // the work gets about 2 s before the answer margin and must give up and answer.
    let port = testkit::proxy::black_hole().await;
    let pool = lazy_pool_at(port, Duration::from_secs(600));
    let cfn = ResponseUrl::start().await;
    let deps = deps(pool, &testkit::kafka::bootstrap());
    answer_request_within(
        Ok(&deps),
        "Update",
        &cfn,
        &invocation_with(Duration::from_secs(22)),
    )
    .await;
    assert_failed_mentioning(&cfn, "did not finish");
}

#[tokio::test]
async fn a_malformed_request_still_gets_a_failed_answer() {
    let cfn = ResponseUrl::start().await;
    let mut event = request("Create", &cfn.url());
    event["RequestType"] = json!("Replace");
    let startup = anyhow::anyhow!("not needed");
    handle(Err(&startup), &response_client(), event, &invocation())
        .await
        .unwrap();
    assert_failed_mentioning(&cfn, "malformed");
}

#[tokio::test]
async fn an_event_without_a_response_url_is_refused() {
    let startup = anyhow::anyhow!("not needed");
    let err = handle(
        Err(&startup),
        &response_client(),
        json!({"hello": 1}),
        &invocation(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HandleError::NotARequest));
}

#[tokio::test]
async fn a_refused_answer_is_retried_until_it_is_accepted() {
    let cfn = ResponseUrl::refusing_first(2).await;
    let startup = anyhow::anyhow!("not needed");
    answer_request(Err(&startup), "Delete", &cfn).await;
    assert_eq!(cfn.answer()["Status"], "SUCCESS");
}

/// The samples under `events/` (for `cargo lambda invoke`) are requests it answers.
fn sample(name: &str, response_url: &str) -> serde_json::Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["ResponseURL"] = json!(response_url);
    event
}

#[sqlx::test(migrations = false)]
async fn the_sample_create_and_delete_events_are_answered(pool: PgPool) {
    let broker = Tansu::start_without_topics().await;
    let deps = deps(pool.clone(), &broker.bootstrap());
    for (name, status) in [
        ("db-migrate-create.json", "SUCCESS"),
        ("db-migrate-delete.json", "SUCCESS"),
    ] {
        let cfn = ResponseUrl::start().await;
        handle(
            Ok(&deps),
            &response_client(),
            sample(name, &cfn.url()),
            &invocation(),
        )
        .await
        .unwrap();
        assert_eq!(cfn.answer()["Status"], status, "{name}");
    }
    assert_has_tables(&table_names(&pool).await);
}
