-- Prices on stock, and the amount of an order as it was when its stock was reserved
-- (docs/data.md, docs/payments.md). The original columns keep their names and types.

-- A product's price in the smallest unit of its currency, as Stripe counts amounts (cents
-- for usd, yen for jpy). Both are NULL for a product without a price; the API stores the
-- currency `usd` when a price is set without one.
ALTER TABLE stock
    ADD COLUMN unit_amount bigint     NULL CHECK (unit_amount BETWEEN 0 AND 100000000),
    ADD COLUMN currency    varchar(3) NULL CHECK (currency ~ '^[a-z]{3}$'),
    ADD CONSTRAINT stock_price_has_a_currency CHECK ((unit_amount IS NULL) = (currency IS NULL));

-- quantity × unit_amount and the currency, copied by inventory in the transaction that
-- reserves the stock; NULL for an order not reserved yet or whose product had no price.
-- Later price changes never touch an order's amount.
ALTER TABLE orders
    ADD COLUMN amount   bigint     NULL CHECK (amount >= 0),
    ADD COLUMN currency varchar(3) NULL CHECK (currency ~ '^[a-z]{3}$'),
    ADD CONSTRAINT order_amount_has_a_currency CHECK ((amount IS NULL) = (currency IS NULL));
