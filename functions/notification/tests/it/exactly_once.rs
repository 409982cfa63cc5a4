//! Redelivery: Lambda delivers a batch at least once; each mail goes out once per order and kind.

use shared::domain::RejectionReason;
use sqlx::PgPool;
use testkit::maildev::Maildev;

use crate::helpers::*;

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn the_same_batch_delivered_twice_sends_one_mail_per_order_and_kind(pool: PgPool) {
    let (ada, grace) = (unique_address("twice-ada"), unique_address("twice-grace"));
    let ada_placed = placed("Ada Lovelace", Some(&ada));
    let ada_rejected = rejected(&ada_placed, RejectionReason::OutOfStock);
    let grace_placed = placed("Grace Hopper", Some(&grace));
    let event = batch(&[&ada_placed, &ada_rejected, &grace_placed]);
    let notifier = shared_notifier(&pool, None).await;

    let first = notifier.handle(event.clone()).await.unwrap();
    let second = notifier.handle(event).await.unwrap();

    assert_eq!(first.sent, 3, "{first:?}");
    assert_eq!((second.sent, second.already_done), (0, 3), "{second:?}");
    let sink = Maildev::shared();
    let to_ada = sink.wait_for_messages(&ada, 2, MAIL_WAIT).await;
    let to_grace = sink.wait_for_messages(&grace, 1, MAIL_WAIT).await;
    assert_eq!(to_ada.len(), 2, "one per kind: {to_ada:#?}");
    assert_eq!(to_grace.len(), 1, "{to_grace:#?}");
    let mut subjects: Vec<_> = to_ada.iter().map(|m| m["subject"].to_string()).collect();
    subjects.sort();
    assert!(subjects[0].contains("We could not fulfil") && subjects[1].contains("We received"));
    for (event, kind) in [
        (&ada_placed, "ORDER_RECEIVED"),
        (&ada_rejected, "ORDER_REJECTED"),
        (&grace_placed, "ORDER_RECEIVED"),
    ] {
        let row = row(&pool, event.data.order_id, kind).await;
        assert_eq!((row.status.as_str(), row.attempts), ("SENT", 1));
    }
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn an_event_repeated_within_one_batch_is_mailed_once(pool: PgPool) {
    let email = unique_address("repeated");
    let event = placed("Ada Lovelace", Some(&email));
    let notifier = shared_notifier(&pool, None).await;

    // The outbox relay may publish an event its writer also published: same id, two offsets.
    let summary = notifier.handle(batch(&[&event, &event])).await.unwrap();

    assert_eq!((summary.sent, summary.ignored), (1, 1), "{summary:?}");
    let mails = Maildev::shared()
        .wait_for_messages(&email, 1, MAIL_WAIT)
        .await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
}
