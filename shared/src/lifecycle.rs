//! The order's rules as pure functions over the domain types: what a change may do, decided
//! here and carried out by the stores, which only persist (docs/payments.md, "Cancelling").

use crate::domain::{Money, OrderStatus, PaymentStatus, Price, Quantity, RejectionReason};
use crate::events::EventType;

/// A step that inventory takes on an open order, on `order.placed` or on the payment's
/// outcome. Placing is the API's insert; cancelling is [`cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Stock taken, no card payment: `PLACED` becomes `CONFIRMED` at once.
    Confirm,
    /// Stock taken for an order paid by card: `PLACED` becomes `RESERVED` until the payment
    /// function settles it.
    Reserve,
    /// `PLACED` becomes `REJECTED`, for `reason`.
    Reject(RejectionReason),
    /// The charge succeeded: `RESERVED` becomes `CONFIRMED`.
    Pay,
    /// The charge was declined: `RESERVED` becomes `REJECTED`/`PAYMENT_DECLINED`, and the
    /// stock goes back.
    FailPayment,
}

impl Step {
    /// The status the step acts on; an order in any other status is left alone.
    pub fn acts_on(self) -> OrderStatus {
        match self {
            Self::Confirm | Self::Reserve | Self::Reject(_) => OrderStatus::Placed,
            Self::Pay | Self::FailPayment => OrderStatus::Reserved,
        }
    }

    /// The units of stock the step takes (negative: gives back).
    pub fn stock_taken(self, quantity: Quantity) -> i32 {
        match self {
            Self::Confirm | Self::Reserve => quantity.get(),
            Self::FailPayment => -quantity.get(),
            Self::Reject(_) | Self::Pay => 0,
        }
    }
}

/// The stock rule for a `PLACED` order of `quantity`: reserved when `left` (the product's
/// stock not yet taken, `None` for a product not stocked) covers it, else `OUT_OF_STOCK`; an
/// unknown product is `UNKNOWN_PRODUCT`, and an order paid by card for a product without a
/// price is `NO_PRICE`.
pub fn reserve(left: Option<(i32, Option<Price>)>, quantity: Quantity, paid_by_card: bool) -> Step {
    let Some((left, price)) = left else {
        return Step::Reject(RejectionReason::UnknownProduct);
    };
    if paid_by_card && price.is_none() {
        Step::Reject(RejectionReason::NoPrice)
    } else if left < quantity.get() {
        Step::Reject(RejectionReason::OutOfStock)
    } else if paid_by_card {
        Step::Reserve
    } else {
        Step::Confirm
    }
}

/// What a step does to its order: the status, rejection reason and amount it sets, and the
/// kind of event that tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub to: OrderStatus,
    pub reason: Option<RejectionReason>,
    /// What the order costs from now on; `None` for a rejected order.
    pub amount: Option<Money>,
    pub event_type: EventType,
}

/// `step` on an order in `status`; `None` when the step does not act on that status (the
/// order was cancelled in between, say). `priced` is what the order costs at the price
/// locked now (for a reservation or a confirmation); `kept` is the amount it already
/// carries (for the payment's outcome).
pub fn apply(
    status: OrderStatus,
    step: Step,
    priced: Option<Money>,
    kept: Option<Money>,
) -> Option<Transition> {
    if status != step.acts_on() {
        return None;
    }
    let (to, reason, amount, event_type) = match step {
        Step::Confirm => (
            OrderStatus::Confirmed,
            None,
            priced,
            EventType::OrderConfirmed,
        ),
        Step::Reserve => (
            OrderStatus::Reserved,
            None,
            priced,
            EventType::OrderReserved,
        ),
        Step::Reject(reason) => (
            OrderStatus::Rejected,
            Some(reason),
            None,
            EventType::OrderRejected,
        ),
        Step::Pay => (
            OrderStatus::Confirmed,
            None,
            kept,
            EventType::OrderConfirmed,
        ),
        Step::FailPayment => (
            OrderStatus::Rejected,
            Some(RejectionReason::PaymentDeclined),
            kept,
            EventType::OrderRejected,
        ),
    };
    Some(Transition {
        to,
        reason,
        amount,
        event_type,
    })
}

/// An order's card payment as far as cancelling cares: its status and how many charges the
/// payment function has sent to Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentState {
    pub status: PaymentStatus,
    pub attempts: i32,
}

/// What cancelling an order does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancellation {
    /// The stock the order holds goes back: it holds stock from its reservation on, as
    /// `RESERVED` (paid or not yet) and `CONFIRMED`. A `PLACED` order holds none; inventory
    /// skips it once it is cancelled.
    pub gives_stock_back: bool,
    /// The payment's next status: a payment never attempted is voided, a charged one is
    /// refunded by the payment function; none when there is nothing to change.
    pub payment: Option<PaymentStatus>,
}

impl Cancellation {
    /// Whether the customer gets money back.
    pub fn refunds(&self) -> bool {
        self.payment == Some(PaymentStatus::Refunding)
    }
}

/// Why an order cannot be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CancelRefusal {
    /// `REJECTED` or `CANCELLED`: nothing is left to cancel.
    #[error("the order is already {0}")]
    Final(OrderStatus),
    /// The payment function has sent the charge to Stripe and not recorded its outcome yet;
    /// cancelling now could leave a charge without a refund, so the client retries shortly.
    #[error("the order's payment is in progress")]
    PaymentInProgress,
}

/// Cancelling an order in `status` with `payment` (none for an order paid on invoice, or not
/// yet claimed by the payment function).
pub fn cancel(
    status: OrderStatus,
    payment: Option<PaymentState>,
) -> Result<Cancellation, CancelRefusal> {
    if status.is_final() {
        return Err(CancelRefusal::Final(status));
    }
    let payment = match payment {
        Some(PaymentState {
            status: PaymentStatus::Pending,
            attempts: 0,
        }) => Some(PaymentStatus::Voided),
        Some(PaymentState {
            status: PaymentStatus::Pending,
            ..
        }) => return Err(CancelRefusal::PaymentInProgress),
        Some(PaymentState {
            status: PaymentStatus::Succeeded,
            ..
        }) => Some(PaymentStatus::Refunding),
        _ => None,
    };
    Ok(Cancellation {
        gives_stock_back: matches!(status, OrderStatus::Reserved | OrderStatus::Confirmed),
        payment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, UnitAmount};

    fn units(n: i64) -> Quantity {
        Quantity::new(n).unwrap()
    }

    fn usd(amount: i64) -> Money {
        Money::new(amount, Currency::DEFAULT).unwrap()
    }

    #[test]
    fn stock_is_reserved_when_it_covers_the_order_and_card_orders_need_a_price() {
        let price = Some(Price {
            unit_amount: UnitAmount::new(1999).unwrap(),
            currency: Currency::DEFAULT,
        });
        assert_eq!(reserve(Some((2, None)), units(2), false), Step::Confirm);
        assert_eq!(reserve(Some((2, price)), units(2), true), Step::Reserve);
        assert_eq!(
            reserve(Some((1, price)), units(2), true),
            Step::Reject(RejectionReason::OutOfStock)
        );
        assert_eq!(
            reserve(Some((5, None)), units(1), true),
            Step::Reject(RejectionReason::NoPrice)
        );
        assert_eq!(
            reserve(None, units(1), false),
            Step::Reject(RejectionReason::UnknownProduct)
        );
    }

    #[test]
    fn each_step_acts_on_one_status_and_moves_the_stock_it_holds() {
        let all = [
            Step::Confirm,
            Step::Reserve,
            Step::Reject(RejectionReason::OutOfStock),
            Step::Pay,
            Step::FailPayment,
        ];
        for step in all {
            for status in OrderStatus::ALL {
                assert_eq!(
                    apply(status, step, None, None).is_some(),
                    status == step.acts_on(),
                    "{step:?} on {status}"
                );
            }
        }
        let taken: Vec<i32> = all.iter().map(|step| step.stock_taken(units(3))).collect();
        assert_eq!(taken, [3, 3, 0, 0, -3]);
    }

    #[test]
    fn a_decision_sets_the_price_locked_now_and_the_payment_keeps_what_was_charged() {
        let (priced, kept) = (Some(usd(500)), Some(usd(400)));
        let reserved = apply(OrderStatus::Placed, Step::Reserve, priced, kept).unwrap();
        assert_eq!(
            (reserved.to, reserved.amount, reserved.event_type),
            (OrderStatus::Reserved, priced, EventType::OrderReserved)
        );
        let rejected = apply(
            OrderStatus::Placed,
            Step::Reject(RejectionReason::OutOfStock),
            priced,
            kept,
        )
        .unwrap();
        assert_eq!(
            (rejected.to, rejected.reason, rejected.amount),
            (
                OrderStatus::Rejected,
                Some(RejectionReason::OutOfStock),
                None
            )
        );
        let paid = apply(OrderStatus::Reserved, Step::Pay, priced, kept).unwrap();
        assert_eq!(
            (paid.to, paid.amount, paid.event_type),
            (OrderStatus::Confirmed, kept, EventType::OrderConfirmed)
        );
        let declined = apply(OrderStatus::Reserved, Step::FailPayment, priced, kept).unwrap();
        assert_eq!(
            (declined.to, declined.reason, declined.amount),
            (
                OrderStatus::Rejected,
                Some(RejectionReason::PaymentDeclined),
                kept
            )
        );
    }

    fn paid(status: PaymentStatus, attempts: i32) -> Option<PaymentState> {
        Some(PaymentState { status, attempts })
    }

    #[test]
    fn final_orders_cannot_be_cancelled() {
        for status in [OrderStatus::Rejected, OrderStatus::Cancelled] {
            assert_eq!(cancel(status, None), Err(CancelRefusal::Final(status)));
        }
    }

    #[test]
    fn stock_goes_back_only_from_orders_that_hold_it() {
        let gives = |status| cancel(status, None).unwrap().gives_stock_back;
        assert!(!gives(OrderStatus::Placed));
        assert!(gives(OrderStatus::Reserved));
        assert!(gives(OrderStatus::Confirmed));
    }

    #[test]
    fn a_payment_is_voided_before_its_charge_refunded_after_it_and_waited_for_during_it() {
        let reserved = OrderStatus::Reserved;
        let voided = cancel(reserved, paid(PaymentStatus::Pending, 0)).unwrap();
        assert_eq!(voided.payment, Some(PaymentStatus::Voided));
        assert!(!voided.refunds());
        assert_eq!(
            cancel(reserved, paid(PaymentStatus::Pending, 1)),
            Err(CancelRefusal::PaymentInProgress)
        );
        let refunded = cancel(OrderStatus::Confirmed, paid(PaymentStatus::Succeeded, 1)).unwrap();
        assert_eq!(refunded.payment, Some(PaymentStatus::Refunding));
        assert!(refunded.refunds());
        for settled in [
            PaymentStatus::Declined,
            PaymentStatus::Voided,
            PaymentStatus::Refunding,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(cancel(reserved, paid(settled, 1)).unwrap().payment, None);
        }
        assert_eq!(cancel(OrderStatus::Placed, None).unwrap().payment, None);
    }
}
