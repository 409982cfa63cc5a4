//! Records as read from Kafka, and the event Lambda's MSK trigger builds from them: what
//! emulates the trigger. `local-runtime`'s trigger emulators, `operator`'s on-failure redrive
//! and testkit use it; the functions only decode events, so they build `shared` without the
//! `trigger-emulation` feature and none of this ships in a Lambda. (A feature rather than a
//! crate of its own: `local-runtime`, `operator` and testkit need it, and the records it builds are
//! the ones [`super::decode_batch`] reads, so the two stay side by side.)

use std::collections::HashMap;

use aws_lambda_events::encodings::MillisecondTimestamp;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};

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
