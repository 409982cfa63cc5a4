//! Decoding MSK deliveries: events in offset order, their traces, and poison records.

use shared::domain::{CustomerName, NewOrder, ProductName, Quantity, new_id};
use shared::events::{CLOUDEVENTS_CONTENT_TYPE, OrderEvent, OrderEventData};
use shared::msk::decode_batch;
use shared::trace::{TRACEPARENT, TraceContext};
use testkit::msk::{kafka_event, record};

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
        [record(&second, 0, 8), record(&first, 0, 7)],
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
        let mut record = record(&attributed, 0, offset);
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
            record(&untraced, 0, 1),
            record(&attributed, 0, 2),
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
    let mut event = kafka_event("arn", "b", [record(&placed(), 2, 40)]);
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
    let mut event = kafka_event("arn", "b", [record(&placed(), 0, 7)]);
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
