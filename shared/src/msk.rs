//! The Lambda MSK event, both ways: decoding a delivered batch into events and poison
//! records (the consumer functions), and, with the `trigger-emulation` feature, building one
//! exactly as Lambda does ([`emulation`]).

use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sqlx::PgConnection;

use crate::events::OrderEvent;
use crate::trace::{TRACEPARENT, TraceContext};

#[cfg(feature = "trigger-emulation")]
pub mod emulation;
#[cfg(feature = "trigger-emulation")]
pub use emulation::{BrokerRecord, kafka_event};

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
