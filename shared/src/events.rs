//! The Kafka contract (docs/events.md): topics, the CloudEvents 1.0 envelope and the order payloads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{
    CustomerName, EmailAddress, Money, NewOrder, ProductName, Quantity, RejectionReason, new_id,
};
use crate::trace::TraceContext;

/// Topic names; `order-placed` is keyed by product name, the others by order id.
pub mod topics {
    pub const ORDER_PLACED: &str = "order-placed";
    pub const ORDER_CONFIRMED: &str = "order-confirmed";
    pub const ORDER_REJECTED: &str = "order-rejected";
    pub const ORDER_RESERVED: &str = "order-reserved";
    pub const ORDER_PAID: &str = "order-paid";
    pub const ORDER_PAYMENT_FAILED: &str = "order-payment-failed";
    pub const ORDER_CANCELLED: &str = "order-cancelled";
    /// Every topic the system publishes to, for the migrator that creates them.
    pub const ALL: [&str; 7] = [
        ORDER_PLACED,
        ORDER_CONFIRMED,
        ORDER_REJECTED,
        ORDER_RESERVED,
        ORDER_PAID,
        ORDER_PAYMENT_FAILED,
        ORDER_CANCELLED,
    ];
}

/// The Kafka `content-type` header carried by every record.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

/// The kinds of event, each bound to one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "order.placed")]
    OrderPlaced,
    #[serde(rename = "order.confirmed")]
    OrderConfirmed,
    #[serde(rename = "order.rejected")]
    OrderRejected,
    /// Stock held for an order that is paid by card; the payment function charges it.
    #[serde(rename = "order.reserved")]
    OrderReserved,
    #[serde(rename = "order.paid")]
    OrderPaid,
    #[serde(rename = "order.payment-failed")]
    OrderPaymentFailed,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
}

impl EventType {
    const ALL: [Self; 7] = [
        Self::OrderPlaced,
        Self::OrderConfirmed,
        Self::OrderRejected,
        Self::OrderReserved,
        Self::OrderPaid,
        Self::OrderPaymentFailed,
        Self::OrderCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderPlaced => "order.placed",
            Self::OrderConfirmed => "order.confirmed",
            Self::OrderRejected => "order.rejected",
            Self::OrderReserved => "order.reserved",
            Self::OrderPaid => "order.paid",
            Self::OrderPaymentFailed => "order.payment-failed",
            Self::OrderCancelled => "order.cancelled",
        }
    }

    pub fn topic(self) -> &'static str {
        match self {
            Self::OrderPlaced => topics::ORDER_PLACED,
            Self::OrderConfirmed => topics::ORDER_CONFIRMED,
            Self::OrderRejected => topics::ORDER_REJECTED,
            Self::OrderReserved => topics::ORDER_RESERVED,
            Self::OrderPaid => topics::ORDER_PAID,
            Self::OrderPaymentFailed => topics::ORDER_PAYMENT_FAILED,
            Self::OrderCancelled => topics::ORDER_CANCELLED,
        }
    }

    /// The `source` attribute: which function emits this kind.
    pub fn source(self) -> &'static str {
        match self {
            Self::OrderPlaced | Self::OrderCancelled => "order-api",
            Self::OrderConfirmed | Self::OrderRejected | Self::OrderReserved => "inventory",
            Self::OrderPaid | Self::OrderPaymentFailed => "payment",
        }
    }

    fn from_type_attribute(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

/// `data` of every order event. `reason` is present only on `order.rejected`; `payment` only
/// for an order paid by card, once it has an amount. Each field is its domain type, so
/// decoding an event checks it once, at the Kafka edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEventData {
    pub order_id: Uuid,
    pub customer_name: CustomerName,
    #[serde(default)]
    pub customer_email: Option<EmailAddress>,
    pub product_name: ProductName,
    pub quantity: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectionReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentData>,
}

/// What an event says about an order's card payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentData {
    /// `amount` (in the smallest unit of the currency, as Stripe counts it) and `currency`.
    #[serde(flatten)]
    pub money: Money,
    /// Why Stripe refused the charge; only on `order.payment-failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
}

impl OrderEventData {
    pub fn from_new_order(order_id: Uuid, order: &NewOrder) -> Self {
        Self {
            order_id,
            customer_name: order.customer_name.clone(),
            customer_email: order.customer_email.clone(),
            product_name: order.product_name.clone(),
            quantity: order.quantity,
            reason: None,
            payment: None,
        }
    }
}

/// A CloudEvents 1.0 structured-mode envelope around order data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub specversion: String,
    pub id: Uuid,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub time: DateTime<Utc>,
    pub subject: String,
    pub datacontenttype: String,
    /// The CloudEvents distributed-tracing extension: the order's trace, with the span that
    /// emitted this event as the parent. Absent on events written before tracing existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<TraceContext>,
    pub data: OrderEventData,
}

impl OrderEvent {
    /// A new event with a fresh UUIDv7 id, stamped now.
    pub fn new(event_type: EventType, data: OrderEventData) -> Self {
        Self {
            specversion: "1.0".to_owned(),
            id: new_id(),
            source: event_type.source().to_owned(),
            event_type,
            time: Utc::now(),
            subject: data.order_id.to_string(),
            datacontenttype: "application/json".to_owned(),
            traceparent: None,
            data,
        }
    }

    /// The event as emitted within `trace` (the span of the request or record causing it).
    pub fn in_trace(self, trace: TraceContext) -> Self {
        Self {
            traceparent: Some(trace),
            ..self
        }
    }

    pub fn placed(data: OrderEventData) -> Self {
        Self::new(
            EventType::OrderPlaced,
            OrderEventData {
                reason: None,
                ..data
            },
        )
    }

    pub fn confirmed(data: OrderEventData) -> Self {
        Self::new(
            EventType::OrderConfirmed,
            OrderEventData {
                reason: None,
                ..data
            },
        )
    }

    pub fn rejected(data: OrderEventData, reason: RejectionReason) -> Self {
        Self::new(
            EventType::OrderRejected,
            OrderEventData {
                reason: Some(reason),
                ..data
            },
        )
    }

    /// Any kind that carries no rejection reason.
    pub fn of_kind(event_type: EventType, data: OrderEventData) -> Self {
        Self::new(
            event_type,
            OrderEventData {
                reason: None,
                ..data
            },
        )
    }

    pub fn topic(&self) -> &'static str {
        self.event_type.topic()
    }

    /// The partition key docs/events.md fixes: product name for placed orders, else the order id.
    pub fn key(&self) -> String {
        match self.event_type {
            EventType::OrderPlaced => self.data.product_name.to_string(),
            _ => self.data.order_id.to_string(),
        }
    }

    /// Decodes a record value read from `topic`, enforcing the poison-record rules of §4:
    /// valid JSON, a type that belongs to that topic, and every required field.
    pub fn decode(topic: &str, value: &[u8]) -> Result<Self, DecodeError> {
        let envelope: RawEnvelope =
            serde_json::from_slice(value).map_err(|err| DecodeError::NotJson(err.to_string()))?;
        if envelope.specversion.as_deref() != Some("1.0") {
            return Err(DecodeError::Envelope(format!(
                "specversion must be \"1.0\", got {:?}",
                envelope.specversion
            )));
        }
        let raw_type = envelope
            .event_type
            .ok_or_else(|| DecodeError::Envelope("missing attribute `type`".to_owned()))?;
        let event_type = EventType::from_type_attribute(&raw_type)
            .filter(|kind| kind.topic() == topic)
            .ok_or_else(|| DecodeError::UnexpectedType {
                event_type: raw_type.clone(),
                topic: topic.to_owned(),
            })?;
        let id = envelope
            .id
            .ok_or_else(|| DecodeError::Envelope("missing attribute `id`".to_owned()))?;
        let id = Uuid::parse_str(&id)
            .map_err(|_| DecodeError::Envelope(format!("attribute `id` is not a UUID: {id:?}")))?;
        let data = envelope
            .data
            .ok_or_else(|| DecodeError::Envelope("missing attribute `data`".to_owned()))?;
        // The path names the field a domain type refused (`customerEmail: must be ...`);
        // the refusal itself never repeats the value, which may be personal data.
        let data: OrderEventData = serde_path_to_error::deserialize(data)
            .map_err(|err| DecodeError::Data(format!("{}: {}", err.path(), err.inner())))?;
        if event_type == EventType::OrderRejected && data.reason.is_none() {
            return Err(DecodeError::Data("missing field `reason`".to_owned()));
        }
        let needs_payment = matches!(
            event_type,
            EventType::OrderReserved | EventType::OrderPaid | EventType::OrderPaymentFailed
        );
        if needs_payment && data.payment.is_none() {
            return Err(DecodeError::Data("missing field `payment`".to_owned()));
        }
        if event_type == EventType::OrderPaymentFailed
            && data
                .payment
                .as_ref()
                .is_some_and(|p| p.decline_code.is_none())
        {
            return Err(DecodeError::Data(
                "missing field `payment.declineCode`".to_owned(),
            ));
        }
        Ok(Self {
            specversion: "1.0".to_owned(),
            id,
            source: envelope.source.unwrap_or_default(),
            event_type,
            time: envelope.time.unwrap_or_else(Utc::now),
            subject: envelope
                .subject
                .unwrap_or_else(|| data.order_id.to_string()),
            datacontenttype: envelope
                .datacontenttype
                .unwrap_or_else(|| "application/json".to_owned()),
            // A malformed context is not poison: the consumer starts a new trace instead.
            traceparent: envelope
                .traceparent
                .as_ref()
                .and_then(serde_json::Value::as_str)
                .and_then(|raw| raw.parse().ok()),
            data,
        })
    }
}

/// The envelope as read, every attribute optional, so that a missing one gets a precise error.
#[derive(Deserialize)]
struct RawEnvelope {
    specversion: Option<String>,
    id: Option<String>,
    source: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    time: Option<DateTime<Utc>>,
    subject: Option<String>,
    datacontenttype: Option<String>,
    /// Any JSON, so that a context of the wrong type is ignored instead of making poison.
    traceparent: Option<serde_json::Value>,
    data: Option<serde_json::Value>,
}

/// Why a record is poison; the text goes into `dead_letters.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("value is not valid JSON: {0}")]
    NotJson(String),
    #[error("invalid CloudEvents envelope: {0}")]
    Envelope(String),
    #[error("event type {event_type:?} is not expected on topic {topic:?}")]
    UnexpectedType { event_type: String, topic: String },
    #[error("invalid event data: {0}")]
    Data(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CustomerName, ProductName, Quantity};

    fn sample_data() -> OrderEventData {
        let order = NewOrder {
            customer_name: CustomerName::parse("Ada").unwrap(),
            customer_email: None,
            product_name: ProductName::parse("Laptop").unwrap(),
            quantity: Quantity::new(2).unwrap(),
            payment_method: None,
        };
        OrderEventData::from_new_order(new_id(), &order)
    }

    #[test]
    fn placed_event_serialises_to_the_cloudevents_contract() {
        let event = OrderEvent::placed(sample_data());
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "order.placed");
        assert_eq!(json["source"], "order-api");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["subject"], json["data"]["orderId"]);
        assert_eq!(json["data"]["customerEmail"], serde_json::Value::Null);
        assert!(json["data"].get("reason").is_none());
        assert_eq!(event.key(), "Laptop");
        assert_eq!(event.topic(), "order-placed");
    }

    #[test]
    fn events_round_trip_through_decode() {
        let event = OrderEvent::rejected(sample_data(), RejectionReason::OutOfStock);
        let bytes = serde_json::to_vec(&event).unwrap();
        assert_eq!(OrderEvent::decode("order-rejected", &bytes).unwrap(), event);
        assert_eq!(event.key(), event.data.order_id.to_string());
    }

    #[test]
    fn the_trace_context_is_the_cloudevents_traceparent_attribute() {
        let untraced = serde_json::to_value(OrderEvent::placed(sample_data())).unwrap();
        assert!(untraced.get("traceparent").is_none());
        let trace = TraceContext::new_root();
        let event = OrderEvent::placed(sample_data()).in_trace(trace);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["traceparent"], trace.to_string());
        let bytes = serde_json::to_vec(&event).unwrap();
        assert_eq!(OrderEvent::decode("order-placed", &bytes).unwrap(), event);

        let mut malformed = json;
        malformed["traceparent"] = "00-not-a-trace".into();
        let decoded =
            OrderEvent::decode("order-placed", &serde_json::to_vec(&malformed).unwrap()).unwrap();
        assert_eq!(decoded.traceparent, None);
        malformed["traceparent"] = 42.into();
        let decoded =
            OrderEvent::decode("order-placed", &serde_json::to_vec(&malformed).unwrap()).unwrap();
        assert_eq!(decoded.traceparent, None);
    }

    #[test]
    fn unknown_data_fields_are_ignored() {
        let mut json = serde_json::to_value(OrderEvent::placed(sample_data())).unwrap();
        json["data"]["loyaltyTier"] = "gold".into();
        json["extension"] = "x".into();
        let bytes = serde_json::to_vec(&json).unwrap();
        assert!(OrderEvent::decode("order-placed", &bytes).is_ok());
    }

    #[test]
    fn data_is_decoded_into_its_domain_types_and_refused_by_field() {
        let good = serde_json::to_value(OrderEvent::placed(sample_data())).unwrap();
        let refusal = |field: &str, value: serde_json::Value| {
            let mut json = good.clone();
            json["data"][field] = value;
            OrderEvent::decode("order-placed", &serde_json::to_vec(&json).unwrap())
                .unwrap_err()
                .to_string()
        };
        let err = refusal("customerEmail", "ada@secret-host".into());
        assert!(
            err.contains("customerEmail: must be a valid email address"),
            "{err}"
        );
        assert!(
            !err.contains("secret-host"),
            "the refusal repeats the address: {err}"
        );
        assert!(refusal("quantity", 0.into()).contains("quantity: must be between 1"));
        assert!(refusal("productName", "  ".into()).contains("productName: must not be empty"));
        assert!(refusal("customerName", "a\u{7}b".into()).contains("customerName"));

        let mut padded = good;
        padded["data"]["customerEmail"] = "  ada@example.com ".into();
        let decoded =
            OrderEvent::decode("order-placed", &serde_json::to_vec(&padded).unwrap()).unwrap();
        assert_eq!(
            decoded.data.customer_email.unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn payment_money_is_amount_and_currency_side_by_side() {
        let mut data = sample_data();
        data.payment = Some(PaymentData {
            money: Money::new(5997, crate::domain::Currency::parse("eur").unwrap()).unwrap(),
            decline_code: None,
        });
        let event = OrderEvent::new(EventType::OrderReserved, data);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json["data"]["payment"],
            serde_json::json!({"amount": 5997, "currency": "eur"})
        );
        let bytes = serde_json::to_vec(&event).unwrap();
        assert_eq!(OrderEvent::decode("order-reserved", &bytes).unwrap(), event);

        let mut negative = json.clone();
        negative["data"]["payment"]["amount"] = (-1).into();
        let err = OrderEvent::decode("order-reserved", &serde_json::to_vec(&negative).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("must not be negative"), "{err}");
        let mut unknown = json;
        unknown["data"]["payment"]["currency"] = "EUR".into();
        assert!(
            OrderEvent::decode("order-reserved", &serde_json::to_vec(&unknown).unwrap()).is_err()
        );
    }

    #[test]
    fn poison_values_are_refused_with_a_reason() {
        let good = serde_json::to_value(OrderEvent::placed(sample_data())).unwrap();
        assert!(matches!(
            OrderEvent::decode("order-placed", b"{not json"),
            Err(DecodeError::NotJson(_))
        ));
        assert!(matches!(
            OrderEvent::decode("order-rejected", &serde_json::to_vec(&good).unwrap()),
            Err(DecodeError::UnexpectedType { .. })
        ));
        let mut unknown = good.clone();
        unknown["type"] = "order.shipped".into();
        assert!(matches!(
            OrderEvent::decode("order-placed", &serde_json::to_vec(&unknown).unwrap()),
            Err(DecodeError::UnexpectedType { .. })
        ));
        let mut missing = good.clone();
        missing["data"].as_object_mut().unwrap().remove("orderId");
        let err =
            OrderEvent::decode("order-placed", &serde_json::to_vec(&missing).unwrap()).unwrap_err();
        assert!(err.to_string().contains("orderId"), "{err}");
        let mut rejected_without_reason = good;
        rejected_without_reason["type"] = "order.rejected".into();
        assert!(matches!(
            OrderEvent::decode(
                "order-rejected",
                &serde_json::to_vec(&rejected_without_reason).unwrap()
            ),
            Err(DecodeError::Data(_))
        ));
    }
}
