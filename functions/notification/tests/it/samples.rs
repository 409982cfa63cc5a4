//! The sample events under `events/` (shaped exactly like Lambda's MSK event, and used by
//! `cargo lambda invoke`) drive the real handler into a private maildev, so their fixed
//! addresses cannot collide with other tests' mail.

use aws_lambda_events::event::kafka::KafkaEvent;
use sqlx::PgPool;
use testkit::maildev::Maildev;

use crate::helpers::*;

fn sample(name: &str) -> KafkaEvent {
    let text = match name {
        "order-placed" => include_str!("../../../../events/notification-order-placed.json"),
        "order-rejected" => include_str!("../../../../events/notification-order-rejected.json"),
        "mixed-batch" => include_str!("../../../../events/notification-mixed-batch.json"),
        other => panic!("no sample {other}"),
    };
    serde_json::from_str(text).expect("samples are Lambda MSK events")
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_sample_batches_send_the_mails_they_describe(pool: PgPool) {
    let sink = Maildev::spawn().await;
    let notifier = notifier(
        &pool,
        smtp_on(sink.smtp_port()),
        Some("orders-desk@example.com"),
    )
    .await;

    let placed = notifier.handle(sample("order-placed")).await.unwrap();
    let rejected = notifier.handle(sample("order-rejected")).await.unwrap();

    assert_eq!((placed.records, placed.sent), (2, 2), "{placed:?}");
    assert_eq!((rejected.records, rejected.sent), (2, 2), "{rejected:?}");
    let expectations = [
        (
            "ada@example.com",
            "We received your order 019ab5c0-0004-7000-8000-000000000001",
        ),
        (
            "orders-desk@example.com",
            "We received your order 019ab5c0-0004-7000-8000-000000000002",
        ),
        (
            "alan@example.com",
            "We could not fulfil your order 019ab5c0-0004-7000-8000-000000000003",
        ),
        (
            "edsger@example.com",
            "We could not fulfil your order 019ab5c0-0004-7000-8000-000000000004",
        ),
    ];
    for (address, subject) in expectations {
        let mails = sink.wait_for_messages(address, 1, MAIL_WAIT).await;
        assert_eq!(mails.len(), 1, "{address}: {mails:#?}");
        assert_eq!(mails[0]["subject"], subject);
    }
    let edsger = sink.messages_to("edsger@example.com").await;
    assert!(text(&edsger[0], "text").contains("we do not sell a product by that name"));
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn poison_records_are_dead_lettered_and_the_rest_of_the_batch_is_mailed(pool: PgPool) {
    let sink = Maildev::spawn().await;
    let notifier = notifier(&pool, smtp_on(sink.smtp_port()), None).await;

    let summary = notifier.handle(sample("mixed-batch")).await.unwrap();
    // A redelivery stores the dead letters once and sends nothing again.
    let again = notifier.handle(sample("mixed-batch")).await.unwrap();

    assert_eq!(
        (summary.records, summary.dead_lettered, summary.sent),
        (4, 2, 2),
        "{summary:?}"
    );
    assert_eq!((again.sent, again.already_done), (0, 2), "{again:?}");
    let dead: Vec<(String, String, i32, i64, String)> = sqlx::query!(
        r#"SELECT consumer, topic, "partition", "offset", error FROM dead_letters ORDER BY "offset""#,
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .map(|row| (row.consumer, row.topic, row.partition, row.offset, row.error))
    .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (consumer, topic, partition, _, _) in &dead {
        assert_eq!(
            (consumer.as_str(), topic.as_str(), *partition),
            ("notification", "order-placed", 2)
        );
    }
    assert_eq!((dead[0].3, dead[1].3), (8, 9));
    assert!(dead[0].4.contains("not valid JSON"), "{}", dead[0].4);
    assert!(dead[1].4.contains("order.rejected"), "{}", dead[1].4);
    for address in ["margaret@example.com", "katherine@example.com"] {
        let mails = sink.wait_for_messages(address, 1, MAIL_WAIT).await;
        assert_eq!(mails.len(), 1, "{address}: {mails:#?}");
    }
}
