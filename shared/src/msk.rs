//! The Lambda MSK event, both ways: decoding a delivered batch into events and poison
//! records (the consumer functions), and building one exactly as Lambda does (the local
//! trigger emulator and tests).

use std::collections::HashMap;

use aws_lambda_events::encodings::MillisecondTimestamp;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::events::{CLOUDEVENTS_CONTENT_TYPE, CONTENT_TYPE_HEADER, OrderEvent};
use crate::trace::{TRACEPARENT, TraceContext};

/// Where a record sits in its topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A record that decoded into an order event.
#[derive(Debug, Clone)]
pub struct DecodedRecord {
    pub position: Position,
    pub event: OrderEvent,
    /// The span of handling this record in its order's trace: a child of the `traceparent`
    /// header, else of the event's `traceparent` attribute (a replayed dead letter has no
    /// headers), else the root of a new trace. Events the record causes carry it on.
    pub trace: TraceContext,
}

/// A record that cannot be processed; it goes to `dead_letters` and the batch goes on.
#[derive(Debug, Clone)]
pub struct PoisonRecord {
    pub position: Position,
    /// As [`DecodedRecord::trace`], from the header only.
    pub trace: TraceContext,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub error: String,
}

/// A batch split into good records, in offset order per partition, and poison records.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    pub records: Vec<DecodedRecord>,
    pub poison: Vec<PoisonRecord>,
}

/// Decodes every record of a Lambda MSK event. Never fails: a record that cannot be decoded
/// becomes a [`PoisonRecord`] carrying the reason.
pub fn decode_batch(event: &KafkaEvent) -> DecodedBatch {
    let mut batch = DecodedBatch::default();
    for (group_key, records) in &event.records {
        for record in records {
            match decode_record(group_key, record) {
                Ok(decoded) => batch.records.push(decoded),
                Err(poison) => batch.poison.push(*poison),
            }
        }
    }
    batch.records.sort_by(|a, b| a.position.cmp(&b.position));
    batch.poison.sort_by(|a, b| a.position.cmp(&b.position));
    batch
}

fn decode_record(
    group_key: &str,
    record: &KafkaRecord,
) -> Result<DecodedRecord, Box<PoisonRecord>> {
    // Lambda names each group `topic-partition`; the record's own topic wins when present.
    let topic = record.topic.clone().unwrap_or_else(|| {
        group_key
            .rsplit_once('-')
            .map_or(group_key, |(topic, _)| topic)
            .to_owned()
    });
    let position = Position {
        topic,
        partition: i32::try_from(record.partition).unwrap_or(i32::MAX),
        offset: record.offset,
    };
    let raw_key = record.key.as_deref().map(decode_or_raw);
    let raw_value = record.value.as_deref().map(decode_or_raw);
    let header_parent = TraceContext::parse_incoming(traceparent_header(record).as_deref());
    let poison = |error: String| {
        Box::new(PoisonRecord {
            position: position.clone(),
            trace: TraceContext::continuing(header_parent),
            key: raw_key.clone().map(|(bytes, _)| bytes),
            value: raw_value.clone().map(|(bytes, _)| bytes),
            // Decoding errors quote the values they refused, an address among them; the
            // reason is logged and stored, so it names none (docs/failure-rules.md).
            error: crate::redact::redact_emails(&error).into_owned(),
        })
    };
    let value = match &raw_value {
        None => return Err(poison("record has no value".to_owned())),
        Some((_, false)) => return Err(poison("value is not valid base64".to_owned())),
        Some((bytes, true)) => bytes,
    };
    let event =
        OrderEvent::decode(&position.topic, value).map_err(|err| poison(err.to_string()))?;
    let trace = TraceContext::continuing(header_parent.or(event.traceparent));
    Ok(DecodedRecord {
        position,
        event,
        trace,
    })
}

/// The record's `traceparent` header, as bytes (Lambda delivers header values as signed
/// bytes).
fn traceparent_header(record: &KafkaRecord) -> Option<Vec<u8>> {
    record.headers.iter().find_map(|header| {
        header
            .get(TRACEPARENT)
            .map(|value| value.iter().map(|&byte| byte as u8).collect())
    })
}

/// Base64-decodes a field; if it is not base64, keeps the raw text so the dead letter holds
/// exactly what arrived. The flag says whether decoding worked.
fn decode_or_raw(field: &str) -> (Vec<u8>, bool) {
    match BASE64.decode(field) {
        Ok(bytes) => (bytes, true),
        Err(_) => (field.as_bytes().to_vec(), false),
    }
}

/// Stores poison records in one statement. A redelivered record is stored once.
pub async fn store_dead_letters(
    conn: &mut PgConnection,
    consumer: &str,
    poison: &[PoisonRecord],
) -> sqlx::Result<u64> {
    if poison.is_empty() {
        return Ok(0);
    }
    let topics: Vec<String> = poison.iter().map(|p| p.position.topic.clone()).collect();
    let partitions: Vec<i32> = poison.iter().map(|p| p.position.partition).collect();
    let offsets: Vec<i64> = poison.iter().map(|p| p.position.offset).collect();
    let keys: Vec<Option<Vec<u8>>> = poison.iter().map(|p| p.key.clone()).collect();
    let values: Vec<Option<Vec<u8>>> = poison.iter().map(|p| p.value.clone()).collect();
    let errors: Vec<String> = poison.iter().map(|p| p.error.clone()).collect();
    let result = sqlx::query!(
        r#"INSERT INTO dead_letters (consumer, topic, "partition", "offset", key, value, error)
           SELECT $1, * FROM UNNEST($2::text[], $3::int[], $4::bigint[], $5::bytea[], $6::bytea[], $7::text[])
           ON CONFLICT (consumer, topic, "partition", "offset") DO NOTHING"#,
        consumer,
        &topics as &[String],
        &partitions,
        &offsets,
        &keys as &[Option<Vec<u8>>],
        &values as &[Option<Vec<u8>>],
        &errors as &[String],
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// A record as read from Kafka, before Lambda's encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: DateTime<Utc>,
    /// `CREATE_TIME` or `LOG_APPEND_TIME`, as Lambda spells them.
    pub timestamp_type: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl BrokerRecord {
    /// Copies a consumed message, with its timestamp as Lambda reports it.
    pub fn from_message(message: &impl rdkafka::message::Message) -> Self {
        use rdkafka::Timestamp;
        use rdkafka::message::Headers;
        let (millis, timestamp_type) = match message.timestamp() {
            Timestamp::CreateTime(ms) => (ms, "CREATE_TIME"),
            Timestamp::LogAppendTime(ms) => (ms, "LOG_APPEND_TIME"),
            Timestamp::NotAvailable => (Utc::now().timestamp_millis(), "CREATE_TIME"),
        };
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: DateTime::from_timestamp_millis(millis).unwrap_or_else(Utc::now),
            timestamp_type: timestamp_type.to_owned(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// A record carrying `event` as our publisher writes it (tests and fixtures), with the
    /// `traceparent` header when the event has a trace.
    pub fn from_event(event: &OrderEvent, partition: i32, offset: i64) -> Self {
        let mut headers = vec![(
            CONTENT_TYPE_HEADER.to_owned(),
            CLOUDEVENTS_CONTENT_TYPE.as_bytes().to_vec(),
        )];
        if let Some(trace) = event.traceparent {
            headers.push((TRACEPARENT.to_owned(), trace.to_string().into_bytes()));
        }
        Self {
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
}

/// Builds the event Lambda's MSK trigger delivers: records grouped under `topic-partition`,
/// base64 keys and values, headers as signed bytes.
pub fn kafka_event(
    event_source_arn: &str,
    bootstrap_servers: &str,
    records: impl IntoIterator<Item = BrokerRecord>,
) -> KafkaEvent {
    let mut groups: HashMap<String, Vec<KafkaRecord>> = HashMap::new();
    for record in records {
        let mut lambda_record = KafkaRecord::default();
        lambda_record.topic = Some(record.topic.clone());
        lambda_record.partition = i64::from(record.partition);
        lambda_record.offset = record.offset;
        lambda_record.timestamp = MillisecondTimestamp(record.timestamp);
        lambda_record.timestamp_type = Some(record.timestamp_type);
        lambda_record.key = record.key.map(|key| BASE64.encode(key));
        lambda_record.value = record.value.map(|value| BASE64.encode(value));
        lambda_record.headers = record
            .headers
            .into_iter()
            .map(|(name, value)| {
                HashMap::from([(name, value.into_iter().map(|byte| byte as i8).collect())])
            })
            .collect();
        groups
            .entry(format!("{}-{}", record.topic, record.partition))
            .or_default()
            .push(lambda_record);
    }
    let mut event = KafkaEvent::default();
    event.event_source = Some("aws:kafka".to_owned());
    event.event_source_arn = Some(event_source_arn.to_owned());
    event.bootstrap_servers = Some(bootstrap_servers.to_owned());
    event.records = groups;
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CustomerName, NewOrder, ProductName, Quantity, new_id};
    use crate::events::OrderEventData;

    fn placed() -> OrderEvent {
        let order = NewOrder {
            customer_name: CustomerName::parse("Ada").unwrap(),
            customer_email: None,
            product_name: ProductName::parse("Laptop").unwrap(),
            quantity: Quantity::new(1).unwrap(),
            payment_method: None,
        };
        OrderEvent::placed(OrderEventData::from_new_order(new_id(), &order))
    }

    #[test]
    fn built_events_decode_back_in_offset_order() {
        let (first, second) = (placed(), placed());
        let event = kafka_event(
            "arn:aws:kafka:local",
            "127.0.0.1:9092",
            [
                BrokerRecord::from_event(&second, 0, 8),
                BrokerRecord::from_event(&first, 0, 7),
            ],
        );
        let group = &event.records["order-placed-0"];
        assert_eq!(
            group[0].headers[0]["content-type"].len(),
            CLOUDEVENTS_CONTENT_TYPE.len()
        );
        let batch = decode_batch(&event);
        assert!(batch.poison.is_empty());
        let ids: Vec<_> = batch.records.iter().map(|r| r.event.id).collect();
        assert_eq!(ids, [first.id, second.id]);
    }

    #[test]
    fn each_record_continues_the_trace_of_its_header_else_of_its_attribute() {
        let (by_header, by_attribute) = (TraceContext::new_root(), TraceContext::new_root());
        let untraced = placed();
        let attributed = placed().in_trace(by_attribute);
        let with_header = |value: &[u8], offset| {
            let mut record = BrokerRecord::from_event(&attributed, 0, offset);
            assert_eq!(record.headers[1].0, TRACEPARENT);
            record.headers[1].1 = value.to_vec();
            record
        };
        let headed = with_header(by_header.to_string().as_bytes(), 3);
        let malformed = with_header(b"00-garbage", 4);
        let event = kafka_event(
            "arn",
            "b",
            [
                BrokerRecord::from_event(&untraced, 0, 1),
                BrokerRecord::from_event(&attributed, 0, 2),
                headed,
                malformed,
            ],
        );

        let batch = decode_batch(&event);
        let traces: Vec<_> = batch.records.iter().map(|record| record.trace).collect();
        assert_ne!(traces[0].trace_id(), by_header.trace_id());
        assert_ne!(traces[0].trace_id(), by_attribute.trace_id());
        assert_eq!(traces[1].trace_id(), by_attribute.trace_id());
        assert_ne!(
            traces[1].span_id(),
            by_attribute.span_id(),
            "a span of its own"
        );
        assert_eq!(
            traces[2].trace_id(),
            by_header.trace_id(),
            "the header wins"
        );
        assert_eq!(traces[3].trace_id(), by_attribute.trace_id());
    }

    #[test]
    fn undecodable_records_become_poison_with_their_raw_bytes() {
        let mut event = kafka_event("arn", "b", [BrokerRecord::from_event(&placed(), 2, 40)]);
        let group = event.records.get_mut("order-placed-2").unwrap();
        let mut not_base64 = group[0].clone();
        not_base64.offset = 41;
        not_base64.value = Some("%%% not base64 %%%".to_owned());
        let mut no_value = group[0].clone();
        no_value.offset = 42;
        no_value.value = None;
        group.push(not_base64);
        group.push(no_value);

        let batch = decode_batch(&event);
        assert_eq!(batch.records.len(), 1);
        assert_eq!(batch.poison.len(), 2);
        assert_eq!(batch.poison[0].position.offset, 41);
        assert_eq!(batch.poison[0].error, "value is not valid base64");
        assert_eq!(
            batch.poison[0].value.as_deref(),
            Some(&b"%%% not base64 %%%"[..])
        );
        assert_eq!(batch.poison[1].error, "record has no value");
        assert_eq!(batch.poison[1].key.as_deref(), Some(&b"Laptop"[..]));
    }

    #[test]
    fn a_poison_reason_names_no_address() {
        use base64::Engine;
        let mut event = kafka_event("arn", "b", [BrokerRecord::from_event(&placed(), 0, 7)]);
        let record = &mut event.records.get_mut("order-placed-0").unwrap()[0];
        // `quantity` as a string: serde quotes the value it refused.
        let value = br#"{"specversion":"1.0","id":"01900000-0000-7000-8000-000000000000","source":"x","type":"order.placed","subject":"s","time":"2026-12-07T00:00:00Z","datacontenttype":"application/json","data":{"orderId":"01900000-0000-7000-8000-000000000001","customerName":"Ada","customerEmail":null,"productName":"Laptop","quantity":"ada.lovelace@example.com"}}"#;
        record.value = Some(base64::engine::general_purpose::STANDARD.encode(value));
        let batch = decode_batch(&event);
        assert_eq!(batch.poison.len(), 1);
        let reason = &batch.poison[0].error;
        assert!(reason.contains("invalid type"), "{reason}");
        assert!(!reason.contains("ada.lovelace@"), "{reason}");
    }
}
