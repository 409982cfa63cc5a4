-- Paying for an order and cancelling one (docs/payments.md, docs/data.md). The original
-- columns keep their names and types; only the sets of values they admit grow.

-- RESERVED: stock held, payment pending. CANCELLED: cancelled through the API.
ALTER TABLE orders
    DROP CONSTRAINT orders_status_check,
    ADD CONSTRAINT orders_status_check
        CHECK (status IN ('PLACED', 'RESERVED', 'CONFIRMED', 'REJECTED', 'CANCELLED')),
    DROP CONSTRAINT orders_rejection_reason_check,
    ADD CONSTRAINT orders_rejection_reason_check
        CHECK (rejection_reason IN ('OUT_OF_STOCK', 'UNKNOWN_PRODUCT', 'PAYMENT_DECLINED', 'NO_PRICE')),
    -- The Stripe PaymentMethod the customer pays with; NULL for an order paid on invoice,
    -- which is confirmed as soon as its stock is reserved.
    ADD COLUMN payment_method varchar(255) NULL CHECK (payment_method ~ '^pm_[A-Za-z0-9_]{1,252}$');

-- One row per paid order, claimed by the payment function before it calls Stripe, so that
-- an order is charged at most once even where Stripe's Idempotency-Key is not honoured.
--
-- PENDING    claimed; `attempts` > 0 means a charge may have reached Stripe
-- SUCCEEDED  charged (`payment_intent_id`)
-- DECLINED   refused by Stripe (`decline_code`)
-- VOIDED     the order was cancelled before any charge was attempted
-- REFUNDING  the order was cancelled after the charge; the refund is owed
-- REFUNDED   refunded (`refund_id`)
CREATE TABLE payments (
    order_id          uuid         PRIMARY KEY REFERENCES orders (id),
    amount            bigint       NOT NULL CHECK (amount >= 0),
    currency          varchar(3)   NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    payment_method    varchar(255) NOT NULL,
    status            text         NOT NULL
        CHECK (status IN ('PENDING', 'SUCCEEDED', 'DECLINED', 'VOIDED', 'REFUNDING', 'REFUNDED')),
    attempts          integer      NOT NULL DEFAULT 0,
    payment_intent_id text         NULL,
    decline_code      text         NULL,
    refund_id         text         NULL,
    last_error        text         NULL,
    created_at        timestamptz  NOT NULL DEFAULT now(),
    updated_at        timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT payment_declined_has_a_code CHECK ((status = 'DECLINED') = (decline_code IS NOT NULL)),
    CONSTRAINT payment_charged_has_an_intent
        CHECK (status NOT IN ('SUCCEEDED', 'REFUNDING', 'REFUNDED') OR payment_intent_id IS NOT NULL)
);

-- The mails for a paid order's confirmation and for a cancellation.
ALTER TABLE notifications
    DROP CONSTRAINT notifications_kind_check,
    ADD CONSTRAINT notifications_kind_check
        CHECK (kind IN ('ORDER_RECEIVED', 'ORDER_REJECTED', 'ORDER_CONFIRMED', 'ORDER_CANCELLED'));
