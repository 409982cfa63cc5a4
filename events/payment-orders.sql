-- The RESERVED orders that events/payment-order-reserved.json refers to, for
-- `cargo lambda invoke payment --data-file events/payment-order-reserved.json` against a local
-- database and localstripe. The first pays with a card that succeeds, the second with one
-- that is declined. Re-running resets them and forgets their payments, so the sample can be
-- invoked again (it then charges the first order again: a new order as far as Stripe knows).
DELETE FROM payments WHERE order_id IN (
    '019ab5c0-0031-7000-8000-000000000031',
    '019ab5c0-0032-7000-8000-000000000032'
);
INSERT INTO orders (id, customer_name, customer_email, product_name, quantity, status,
                    payment_method, amount, currency) VALUES
    ('019ab5c0-0031-7000-8000-000000000031', 'Ada Lovelace', 'ada@example.com', 'Laptop', 1,
     'RESERVED', 'pm_card_visa', 129900, 'usd'),
    ('019ab5c0-0032-7000-8000-000000000032', 'Grace Hopper', 'grace@example.com', 'Monitor', 2,
     'RESERVED', 'pm_card_chargeCustomerFail', 59800, 'usd')
ON CONFLICT (id) DO UPDATE SET status = 'RESERVED', rejection_reason = NULL, updated_at = now();
