//! What a notification says: which events become which mail, and the mail itself
//! (multipart text + HTML from askama templates, subject, `Message-ID`, `X-Order-Id`).

use askama::Template;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, Message};
use shared::domain::RejectionReason;
use shared::events::{EventType, OrderEvent, OrderEventData};
use shared::redact::{mask_email, redact_emails};
use uuid::Uuid;

/// The `notifications.kind` of a mail: at most one of each is sent per order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeKind {
    /// `order.placed`: "we received your order".
    OrderReceived,
    /// `order.rejected`: "we could not fulfil your order".
    OrderRejected,
    /// `order.confirmed` of an order paid by card: "your order is confirmed", with the
    /// amount charged. An order paid on invoice gets no such mail, as before.
    OrderConfirmed,
    /// `order.cancelled`: "your order was cancelled".
    OrderCancelled,
}

impl NoticeKind {
    /// The value stored in `notifications.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderReceived => "ORDER_RECEIVED",
            Self::OrderRejected => "ORDER_REJECTED",
            Self::OrderConfirmed => "ORDER_CONFIRMED",
            Self::OrderCancelled => "ORDER_CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::OrderReceived,
            Self::OrderRejected,
            Self::OrderConfirmed,
            Self::OrderCancelled,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == raw)
    }

    /// The mail an event type can call for (the trigger subscribes to these topics);
    /// [`Notice::from_event`] decides for each event.
    pub fn for_event(event_type: EventType) -> Option<Self> {
        match event_type {
            EventType::OrderPlaced => Some(Self::OrderReceived),
            EventType::OrderRejected => Some(Self::OrderRejected),
            EventType::OrderConfirmed => Some(Self::OrderConfirmed),
            EventType::OrderCancelled => Some(Self::OrderCancelled),
            EventType::OrderReserved | EventType::OrderPaid | EventType::OrderPaymentFailed => None,
        }
    }
}

/// One mail to send, taken from one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub event_id: Uuid,
    /// The order as the event tells it: with the amount charged (or to be refunded) in its
    /// payment, and the reason of a rejection.
    pub order: OrderEventData,
}

impl Notice {
    /// The notice an event calls for, if any: only a paid order's confirmation is mailed.
    pub fn from_event(event: &OrderEvent) -> Option<Self> {
        let kind = NoticeKind::for_event(event.event_type)?;
        if kind == NoticeKind::OrderConfirmed && event.data.payment.is_none() {
            return None;
        }
        Some(Self {
            kind,
            event_id: event.id,
            order: event.data.clone(),
        })
    }

    /// The subject line; it names the order.
    pub fn subject(&self) -> String {
        match self.kind {
            NoticeKind::OrderReceived => format!("We received your order {}", self.order.order_id),
            NoticeKind::OrderRejected => {
                format!("We could not fulfil your order {}", self.order.order_id)
            }
            NoticeKind::OrderConfirmed => {
                format!("Your order {} is confirmed", self.order.order_id)
            }
            NoticeKind::OrderCancelled => {
                format!("Your order {} was cancelled", self.order.order_id)
            }
        }
    }

    /// The stable `Message-ID`: the same event always yields the same id, so a receiver can
    /// drop the copy a retry sends after a crash between sending and bookkeeping.
    pub fn message_id(&self, domain: &str) -> String {
        format!("<{}@{}>", self.event_id, domain)
    }
}

/// Why an order was rejected, in the customer's language.
pub fn reason_text(reason: Option<RejectionReason>) -> &'static str {
    match reason {
        Some(RejectionReason::OutOfStock) => {
            "we do not have enough of this product in stock right now"
        }
        Some(RejectionReason::UnknownProduct) => "we do not sell a product by that name",
        Some(RejectionReason::PaymentDeclined) => "your card was declined",
        Some(RejectionReason::NoPrice) => "this product cannot be paid for by card yet",
        None => "of a problem on our side",
    }
}

/// The values every template shows. Customer-supplied strings are escaped by askama in the
/// `.html` templates and left as they are in the `.txt` ones.
struct MailView<'a> {
    subject: &'a str,
    customer_name: &'a str,
    order_id: &'a Uuid,
    product_name: &'a str,
    quantity: i32,
    reason: &'a str,
    /// Shown when present: the amount charged, or refunded, such as `59.97 USD`.
    amount: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "order_received.txt")]
struct ReceivedText<'a> {
    mail: &'a MailView<'a>,
}

#[derive(Template)]
#[template(path = "order_received.html")]
struct ReceivedHtml<'a> {
    mail: &'a MailView<'a>,
}

#[derive(Template)]
#[template(path = "order_rejected.txt")]
struct RejectedText<'a> {
    mail: &'a MailView<'a>,
}

#[derive(Template)]
#[template(path = "order_rejected.html")]
struct RejectedHtml<'a> {
    mail: &'a MailView<'a>,
}

#[derive(Template)]
#[template(path = "order_confirmed.txt")]
struct ConfirmedText<'a> {
    mail: &'a MailView<'a>,
}

#[derive(Template)]
#[template(path = "order_confirmed.html")]
struct ConfirmedHtml<'a> {
    mail: &'a MailView<'a>,
}

#[derive(Template)]
#[template(path = "order_cancelled.txt")]
struct CancelledText<'a> {
    mail: &'a MailView<'a>,
}

#[derive(Template)]
#[template(path = "order_cancelled.html")]
struct CancelledHtml<'a> {
    mail: &'a MailView<'a>,
}

/// The rendered bodies of one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders the text and HTML bodies of a notice.
pub fn render(notice: &Notice) -> Result<Rendered, askama::Error> {
    let subject = notice.subject();
    let order = &notice.order;
    let amount = order
        .payment
        .as_ref()
        .map(|payment| payment.money.to_string());
    let mail = &MailView {
        subject: &subject,
        customer_name: order.customer_name.as_str(),
        order_id: &order.order_id,
        product_name: order.product_name.as_str(),
        quantity: order.quantity.get(),
        reason: reason_text(order.reason),
        amount: amount.as_deref(),
    };
    let (text, html) = match notice.kind {
        NoticeKind::OrderReceived => (
            ReceivedText { mail }.render()?,
            ReceivedHtml { mail }.render()?,
        ),
        NoticeKind::OrderRejected => (
            RejectedText { mail }.render()?,
            RejectedHtml { mail }.render()?,
        ),
        NoticeKind::OrderConfirmed => (
            ConfirmedText { mail }.render()?,
            ConfirmedHtml { mail }.render()?,
        ),
        NoticeKind::OrderCancelled => (
            CancelledText { mail }.render()?,
            CancelledHtml { mail }.render()?,
        ),
    };
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

/// The `X-Order-Id` header, so that support can find every mail about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XOrderId(pub String);

impl Header for XOrderId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Order-Id")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// Why a mail could not be built; retrying cannot help. Its text is logged and stored in
/// `notifications.last_error`, so it names the recipient masked ([`mask_email`]) only.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("invalid recipient address {masked}: {reason}")]
    Recipient {
        /// The address as [`mask_email`] masks it, never the address itself.
        masked: String,
        reason: String,
    },
    #[error("could not render the mail: {0}")]
    Render(#[from] askama::Error),
    #[error("could not build the mail: {0}")]
    Build(#[from] lettre::error::Error),
}

/// Builds the complete mail for `notice`, addressed to `recipient`.
pub fn compose(
    notice: &Notice,
    from: &Mailbox,
    recipient: &str,
    message_id_domain: &str,
) -> Result<Message, ComposeError> {
    let to: Address = recipient
        .parse()
        .map_err(
            |err: lettre::address::AddressError| ComposeError::Recipient {
                masked: mask_email(recipient),
                reason: redact_emails(&err.to_string()).into_owned(),
            },
        )?;
    let rendered = render(notice)?;
    Ok(Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(rendered.subject)
        .message_id(Some(notice.message_id(message_id_domain)))
        .header(XOrderId(notice.order.order_id.to_string()))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::{CustomerName, EmailAddress, ProductName, Quantity, new_id};

    fn notice(kind: NoticeKind, name: &str) -> Notice {
        Notice {
            kind,
            event_id: new_id(),
            order: OrderEventData {
                order_id: new_id(),
                customer_name: CustomerName::parse(name).unwrap(),
                customer_email: Some(EmailAddress::parse("ada@example.com").unwrap()),
                product_name: ProductName::parse("Laptop <Pro> & Co").unwrap(),
                quantity: Quantity::new(3).unwrap(),
                reason: (kind == NoticeKind::OrderRejected).then_some(RejectionReason::OutOfStock),
                payment: None,
            },
        }
    }

    #[test]
    fn html_escapes_customer_supplied_text_and_text_keeps_it() {
        let notice = notice(NoticeKind::OrderReceived, "<script>alert(1)</script>");
        let rendered = render(&notice).unwrap();
        assert!(!rendered.html.contains("<script>"), "{}", rendered.html);
        assert!(
            rendered
                .html
                .contains("Hello &#60;script&#62;alert(1)&#60;/script&#62;,")
        );
        assert!(rendered.html.contains("Laptop &#60;Pro&#62; &#38; Co"));
        assert!(rendered.text.contains("Hello <script>alert(1)</script>,"));
        assert!(rendered.text.contains(&notice.order.order_id.to_string()));
        assert!(rendered.text.contains("Quantity: 3"));
    }

    #[test]
    fn rejections_give_the_reason_in_customer_language() {
        let mut notice = notice(NoticeKind::OrderRejected, "Ada");
        let rendered = render(&notice).unwrap();
        assert!(
            rendered
                .subject
                .starts_with("We could not fulfil your order")
        );
        assert!(
            rendered
                .text
                .contains("not have enough of this product in stock")
        );
        assert!(
            rendered
                .html
                .contains("not have enough of this product in stock")
        );
        notice.order.reason = Some(RejectionReason::UnknownProduct);
        let rendered = render(&notice).unwrap();
        assert!(
            rendered
                .text
                .contains("we do not sell a product by that name")
        );
        assert!(!rendered.text.contains("UNKNOWN_PRODUCT"));
    }

    #[test]
    fn composed_mail_carries_stable_ids_and_both_parts() {
        let notice = notice(NoticeKind::OrderReceived, "Ada");
        let from: Mailbox = "Orders <orders@shop.example>".parse().unwrap();
        let first = compose(&notice, &from, "ada@example.com", "shop.example").unwrap();
        let second = compose(&notice, &from, "ada@example.com", "shop.example").unwrap();
        let raw = String::from_utf8(first.formatted()).unwrap();
        let message_id = format!("Message-ID: <{}@shop.example>", notice.event_id);
        assert!(raw.contains(&message_id), "{raw}");
        assert!(
            String::from_utf8(second.formatted())
                .unwrap()
                .contains(&message_id)
        );
        assert!(raw.contains(&format!("X-Order-Id: {}", notice.order.order_id)));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains(&format!(
            "Subject: We received your order {}",
            notice.order.order_id
        )));
    }

    #[test]
    fn an_unusable_recipient_is_refused_before_sending() {
        let notice = notice(NoticeKind::OrderReceived, "Ada");
        let from: Mailbox = "orders@shop.example".parse().unwrap();
        let err = compose(&notice, &from, "not an address", "shop.example").unwrap_err();
        assert!(matches!(err, ComposeError::Recipient { .. }), "{err}");
    }

    #[test]
    fn an_unusable_recipient_is_named_masked() {
        let notice = notice(NoticeKind::OrderReceived, "Ada");
        let from: Mailbox = "orders@shop.example".parse().unwrap();
        let err = compose(&notice, &from, "ada.lovelace@exa mple.com", "shop.example")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a***@exa mple.com"), "{err}");
        assert!(!err.contains("ada.lovelace"), "{err}");
    }

    #[test]
    fn placed_rejected_confirmed_and_cancelled_events_call_for_mail() {
        assert_eq!(
            NoticeKind::for_event(EventType::OrderPlaced),
            Some(NoticeKind::OrderReceived)
        );
        assert_eq!(
            NoticeKind::for_event(EventType::OrderRejected),
            Some(NoticeKind::OrderRejected)
        );
        assert_eq!(
            NoticeKind::for_event(EventType::OrderCancelled),
            Some(NoticeKind::OrderCancelled)
        );
        assert_eq!(NoticeKind::for_event(EventType::OrderPaid), None);
        for kind in [
            NoticeKind::OrderReceived,
            NoticeKind::OrderRejected,
            NoticeKind::OrderConfirmed,
            NoticeKind::OrderCancelled,
        ] {
            assert_eq!(NoticeKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn only_the_confirmation_of_a_paid_order_is_mailed_and_it_shows_the_amount() {
        use shared::domain::{Currency, Money};
        use shared::events::PaymentData;
        let data = OrderEventData {
            order_id: new_id(),
            customer_name: CustomerName::parse("Ada").unwrap(),
            customer_email: Some(EmailAddress::parse("ada@example.com").unwrap()),
            product_name: ProductName::parse("Laptop").unwrap(),
            quantity: Quantity::new(3).unwrap(),
            reason: None,
            payment: None,
        };
        let invoiced = OrderEvent::confirmed(data.clone());
        assert_eq!(Notice::from_event(&invoiced), None);
        let paid = OrderEvent::confirmed(OrderEventData {
            payment: Some(PaymentData {
                money: Money::new(5997, Currency::DEFAULT).unwrap(),
                decline_code: None,
            }),
            ..data
        });
        let notice = Notice::from_event(&paid).expect("a paid order is mailed");
        let rendered = render(&notice).unwrap();
        assert!(
            rendered.subject.ends_with("is confirmed"),
            "{}",
            rendered.subject
        );
        assert!(rendered.text.contains("59.97 USD"), "{}", rendered.text);
        assert!(rendered.html.contains("59.97 USD"), "{}", rendered.html);
    }
}
