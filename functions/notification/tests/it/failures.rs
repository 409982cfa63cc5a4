//! SMTP and database failures: what stays retryable, what fails for good, and what the
//! invocation reports to Lambda.

use std::time::{Duration, Instant};

use notification::NotificationError;
use shared::consumer::{BatchFailure, Invocation};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use testkit::maildev::Maildev;
use testkit::postgres::{address_of, direct_pool, pool_through};
use testkit::proxy::TcpProxy;

use crate::helpers::*;
use crate::smtp_server::{SmtpServer, recipients};

fn delivery_summary(err: &BatchFailure<NotificationError>) -> &notification::BatchSummary {
    match &err.0 {
        NotificationError::Delivery { summary, .. } => summary,
        other => panic!("expected a delivery failure, got {other:?}"),
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn while_smtp_is_down_the_invocation_fails_and_the_retry_delivers_each_mail_once(
    pool: PgPool,
) {
    let mut sink = Maildev::spawn().await;
    let notifier = notifier(&pool, smtp_on(sink.smtp_port()), None).await;
    let addresses: Vec<String> = (0..3)
        .map(|i| unique_address(&format!("outage{i}")))
        .collect();
    let events: Vec<_> = addresses
        .iter()
        .map(|address| placed("Ada Lovelace", Some(address)))
        .collect();
    let event = batch(&events.iter().collect::<Vec<_>>());
    sink.stop().await;

    let err = notifier.handle(event.clone()).await.unwrap_err();

    assert!(err.is_transient(), "{err:?}");
    assert_eq!(delivery_summary(&err).retryable, 3, "{err:?}");
    assert_eq!(count_with_status(&pool, "SENT").await, 0);
    for event in &events {
        let row = row(&pool, event.data.order_id, "ORDER_RECEIVED").await;
        assert_eq!((row.status.as_str(), row.attempts), ("SENDING", 1));
        assert!(
            row.last_error
                .is_some_and(|e| e.contains("SMTP unavailable"))
        );
        assert_eq!(row.sent_at, None);
    }

    // The sink comes back; Lambda retries the same batch.
    sink.start().await;
    let summary = notifier.handle(event).await.unwrap();

    assert_eq!(summary.sent, 3, "{summary:?}");
    for (address, event) in addresses.iter().zip(&events) {
        let mails = sink.wait_for_messages(address, 1, MAIL_WAIT).await;
        assert_eq!(mails.len(), 1, "{address}: {mails:#?}");
        let row = row(&pool, event.data.order_id, "ORDER_RECEIVED").await;
        assert_eq!((row.status.as_str(), row.attempts), ("SENT", 2));
        assert_eq!(row.last_error, None);
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_550_for_one_recipient_fails_that_row_with_the_reply_and_the_others_are_sent(
    pool: PgPool,
) {
    let (good, bad, also_good) = (
        unique_address("good"),
        unique_address("bad"),
        unique_address("good"),
    );
    let server = SmtpServer::start(&["--reject", &bad]).await;
    let notifier = notifier(&pool, server.settings(), None).await;
    let events = [
        placed("Ada", Some(&good)),
        placed("Bob", Some(&bad)),
        placed("Cy", Some(&also_good)),
    ];
    let event = batch(&events.iter().collect::<Vec<_>>());

    let summary = notifier.handle(event.clone()).await.unwrap();

    assert_eq!((summary.sent, summary.failed), (2, 1), "{summary:?}");
    let failed = row(&pool, events[1].data.order_id, "ORDER_RECEIVED").await;
    assert_eq!(failed.status, "FAILED");
    let reply = failed.last_error.unwrap();
    assert!(reply.starts_with("550 "), "{reply}");
    assert!(reply.contains("Recipient address rejected"), "{reply}");
    assert_eq!(failed.sent_at, None);
    for event in [&events[0], &events[2]] {
        assert_eq!(
            row(&pool, event.data.order_id, "ORDER_RECEIVED")
                .await
                .status,
            "SENT"
        );
    }
    let mut delivered = recipients(&server.wait_for_accepted(2).await);
    delivered.sort();
    let mut expected = vec![good.clone(), also_good.clone()];
    expected.sort();
    assert_eq!(delivered, expected);

    // FAILED is final: the redelivered batch does not try again.
    let again = notifier.handle(event).await.unwrap();
    assert_eq!(
        (again.sent, again.failed, again.already_done),
        (0, 0, 3),
        "{again:?}"
    );
    assert_eq!(
        row(&pool, events[1].data.order_id, "ORDER_RECEIVED")
            .await
            .attempts,
        1
    );
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_451_leaves_that_row_retryable_sends_the_rest_and_fails_the_invocation(pool: PgPool) {
    let (deferred, fine) = (unique_address("deferred"), unique_address("fine"));
    let server = SmtpServer::start(&["--defer", &deferred]).await;
    let notifier = notifier(&pool, server.settings(), None).await;
    let events = [placed("Ada", Some(&deferred)), placed("Bob", Some(&fine))];

    let err = notifier
        .handle(batch(&events.iter().collect::<Vec<_>>()))
        .await
        .unwrap_err();

    assert!(err.is_transient(), "{err:?}");
    let summary = delivery_summary(&err);
    assert_eq!((summary.sent, summary.retryable), (1, 1), "{summary:?}");
    assert!(err.to_string().contains("451"), "{err}");
    let row_deferred = row(&pool, events[0].data.order_id, "ORDER_RECEIVED").await;
    assert_eq!(row_deferred.status, "SENDING");
    assert!(row_deferred.last_error.unwrap().starts_with("451 "));
    assert_eq!(
        row(&pool, events[1].data.order_id, "ORDER_RECEIVED")
            .await
            .status,
        "SENT"
    );
    assert_eq!(recipients(&server.wait_for_accepted(1).await), vec![fine]);
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn mails_not_started_before_the_invocation_deadline_stay_retryable(pool: PgPool) {
    let email = unique_address("deadline");
    let event = placed("Ada", Some(&email));
    let notifier = shared_notifier(&pool, None).await;

    let err = notifier
        .handle_within(
            batch(&[&event]),
            Invocation {
                deadline: Some(Instant::now()),
            },
        )
        .await
        .unwrap_err();

    assert_eq!(delivery_summary(&err).retryable, 1, "{err:?}");
    let row = row(&pool, event.data.order_id, "ORDER_RECEIVED").await;
    assert_eq!(row.status, "SENDING");
    assert!(row.last_error.unwrap().contains("deadline"));
    assert!(Maildev::shared().messages_to(&email).await.is_empty());
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn with_the_database_down_nothing_is_sent_and_the_invocation_fails(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let proxy = TcpProxy::start(address_of(&connect)).await;
    let through_proxy = pool_through(&connect, proxy.port(), 2);
    let server = SmtpServer::start(&[]).await;
    let notifier = notifier(&through_proxy, server.settings(), None).await;
    let event = placed("Ada", Some(&unique_address("db-down")));
    proxy.cut().await;

    let err = notifier.handle(batch(&[&event])).await.unwrap_err();

    assert!(matches!(err.0, NotificationError::Database(_)), "{err:?}");
    assert!(err.is_transient(), "{err:?}");
    assert!(server.accepted().is_empty());
}

/// The documented at-least-once window: the mail left, then the bookkeeping failed. The
/// retry sends it again, with the same `Message-ID`, so the receiver can drop the copy.
#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_crash_between_sending_and_recording_resends_with_the_same_message_id(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let direct = direct_pool(&connect, 2).await;
    let proxy = TcpProxy::start(address_of(&connect)).await;
    let through_proxy = pool_through(&connect, proxy.port(), 2);
    let mut server = SmtpServer::start(&["--hold"]).await;
    let notifier = notifier(&through_proxy, server.settings(), None).await;
    let event = placed("Ada", Some(&unique_address("window")));
    let lambda_batch = batch(&[&event]);

    let first = tokio::spawn({
        let lambda_batch = lambda_batch.clone();
        async move { notifier.handle(lambda_batch).await }
    });
    // The server has the whole mail; the database goes away before the handler records it.
    assert_eq!(server.wait_for_accepted(1).await.len(), 1);
    proxy.cut().await;
    server.release_one().await;
    let err = first.await.unwrap().unwrap_err();

    assert!(matches!(err.0, NotificationError::Database(_)), "{err:?}");
    let row_after_crash = row(&direct, event.data.order_id, "ORDER_RECEIVED").await;
    assert_eq!(row_after_crash.status, "SENDING");

    proxy.restore();
    let retry = notifier_with_release(&through_proxy, &mut server, lambda_batch).await;
    assert_eq!(retry.sent, 1, "{retry:?}");
    let accepted = server.wait_for_accepted(2).await;
    assert_eq!(accepted.len(), 2, "{accepted:#?}");
    let expected_id = format!("<{}@shop.example>", event.id);
    assert!(
        accepted
            .iter()
            .all(|mail| mail["message_id"] == expected_id.as_str())
    );
    let row = row(&direct, event.data.order_id, "ORDER_RECEIVED").await;
    assert_eq!((row.status.as_str(), row.attempts), ("SENT", 2));
}

/// Runs a batch against a `--hold` server, releasing the one mail it holds.
async fn notifier_with_release(
    pool: &PgPool,
    server: &mut SmtpServer,
    lambda_batch: aws_lambda_events::event::kafka::KafkaEvent,
) -> shared::consumer::BatchReport<notification::BatchSummary> {
    let notifier = notifier(pool, server.settings(), None).await;
    let handle = tokio::spawn(async move { notifier.handle(lambda_batch).await });
    server.release_one().await;
    handle.await.unwrap().unwrap()
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_server_that_never_answers_times_out_and_leaves_the_mail_retryable(pool: PgPool) {
    // Accepts connections and never says a word, like a black-holed relay.
    let port = testkit::proxy::black_hole().await;
    let mut smtp = smtp_on(port);
    smtp.timeout = Duration::from_secs(1);
    let notifier = notifier(&pool, smtp, None).await;
    let event = placed("Ada", Some(&unique_address("silent")));

    let err = notifier.handle(batch(&[&event])).await.unwrap_err();

    assert!(err.is_transient(), "{err:?}");
    let row = row(&pool, event.data.order_id, "ORDER_RECEIVED").await;
    assert_eq!(row.status, "SENDING");
    assert!(row.last_error.unwrap().contains("timed out"));
}
