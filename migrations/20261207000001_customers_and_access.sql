-- Customers and access (docs/access.md): who owns an order, how a guest proves it is theirs,
-- and the counters behind the abuse limits.

-- customer_sub: the signed-in customer's account (the identity provider's `sub`); NULL for
-- a guest order.
-- order_token_hash: SHA-256 of a guest order's token; the token itself is never stored.
-- An order with neither (placed before accounts existed) is readable by operators only.
ALTER TABLE orders
    ADD COLUMN customer_sub varchar(255) NULL,
    ADD COLUMN order_token_hash bytea NULL CHECK (octet_length(order_token_hash) = 32);

-- A customer's own orders, newest first.
CREATE INDEX orders_customer_sub_idx ON orders (customer_sub, created_at DESC, id DESC)
    WHERE customer_sub IS NOT NULL;

-- One row per abuse limit, counted subject and fixed window. The subject is a SHA-256 of
-- what is counted (a client address, an email address), never the value itself. Rows of
-- windows that have ended are only history; nothing reads them.
CREATE TABLE request_counts (
    counter      text        NOT NULL,
    subject      bytea       NOT NULL CHECK (octet_length(subject) = 32),
    window_start timestamptz NOT NULL,
    hits         integer     NOT NULL CHECK (hits > 0),
    PRIMARY KEY (counter, subject, window_start)
);
