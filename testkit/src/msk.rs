//! Fake MSK deliveries: records carrying our events as the publisher writes them, and the
//! batch Lambda's MSK trigger would deliver for them. The event builder itself is `shared`'s
//! ([`kafka_event`], behind its `trigger-emulation` feature, which the local runtime's trigger
//! emulators use too); what only tests need lives here, out of every Lambda.

use aws_lambda_events::event::kafka::KafkaEvent;
use shared::events::{CLOUDEVENTS_CONTENT_TYPE, CONTENT_TYPE_HEADER, OrderEvent};
use shared::trace::TRACEPARENT;

pub use shared::msk::{BrokerRecord, kafka_event};

/// The event source of the batches [`batch`] builds.
pub const ARN: &str = "arn:aws:kafka:us-east-1:123456789012:cluster/orders-local/test";

/// A record carrying `event` as our publisher writes it, at `partition` and `offset`, with
/// the `traceparent` header when the event has a trace.
pub fn record(event: &OrderEvent, partition: i32, offset: i64) -> BrokerRecord {
    let mut headers = vec![(
        CONTENT_TYPE_HEADER.to_owned(),
        CLOUDEVENTS_CONTENT_TYPE.as_bytes().to_vec(),
    )];
    if let Some(trace) = event.traceparent {
        headers.push((TRACEPARENT.to_owned(), trace.to_string().into_bytes()));
    }
    BrokerRecord {
        topic: event.topic().to_owned(),
        partition,
        offset,
        timestamp: event.time,
        timestamp_type: "CREATE_TIME".to_owned(),
        key: Some(event.key().into_bytes()),
        value: Some(serde_json::to_vec(event).expect("events always serialise")),
        headers,
    }
}

/// The batch Lambda would deliver for `records`, from [`ARN`] on the local broker.
pub fn batch(records: impl IntoIterator<Item = BrokerRecord>) -> KafkaEvent {
    kafka_event(ARN, "127.0.0.1:9092", records)
}

/// The batch carrying `events` on one `partition`, at consecutive offsets from `first_offset`.
pub fn batch_of(events: &[OrderEvent], partition: i32, first_offset: i64) -> KafkaEvent {
    batch(
        events
            .iter()
            .zip(first_offset..)
            .map(|(event, offset)| record(event, partition, offset)),
    )
}
