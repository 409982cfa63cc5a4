//! The order's rules as pure functions over the domain types: what a change may do, decided
//! here and carried out by the stores, which only persist (docs/payments.md, "Cancelling").

use crate::domain::{OrderStatus, PaymentStatus};

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
