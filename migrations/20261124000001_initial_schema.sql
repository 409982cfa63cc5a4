-- The whole schema (docs/data.md). The original system's columns keep their names and types;
-- everything else was added for idempotency, the outbox and exactly-once consumers.

CREATE TABLE orders (
    id                  uuid         PRIMARY KEY,
    customer_name       varchar(255) NOT NULL,
    product_name        varchar(255) NOT NULL,
    quantity            integer      NOT NULL CHECK (quantity > 0),
    status              varchar(255) NOT NULL CHECK (status IN ('PLACED', 'CONFIRMED', 'REJECTED')),
    customer_email      varchar(254) NULL,
    rejection_reason    varchar(64)  NULL CHECK (rejection_reason IN ('OUT_OF_STOCK', 'UNKNOWN_PRODUCT')),
    idempotency_key     varchar(255) NULL UNIQUE,
    -- SHA-256 of the canonical request, so a reused Idempotency-Key with another body is detected.
    request_fingerprint bytea        NULL,
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT rejection_reason_only_when_rejected
        CHECK ((status = 'REJECTED') = (rejection_reason IS NOT NULL))
);

-- Keyset pagination: newest first, ties broken by id (UUIDv7 is time ordered too).
CREATE INDEX orders_created_at_id_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_customer_email_idx ON orders (customer_email, created_at DESC, id DESC)
    WHERE customer_email IS NOT NULL;
CREATE INDEX orders_status_idx ON orders (status, created_at DESC, id DESC);

CREATE TABLE stock (
    product_name varchar(255) PRIMARY KEY,
    -- Stock can never go negative, even if a bug tries.
    quantity     integer      NOT NULL CHECK (quantity >= 0),
    updated_at   timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    topic        text        NOT NULL,
    key          text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz NULL
);

-- The relay only ever scans rows that still wait for the broker.
CREATE INDEX outbox_unpublished_idx ON outbox (created_at, id) WHERE published_at IS NULL;

CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE notifications (
    order_id   uuid        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('ORDER_RECEIVED', 'ORDER_REJECTED')),
    recipient  varchar(254) NULL,
    status     text        NOT NULL CHECK (status IN ('SENDING', 'SENT', 'FAILED', 'SKIPPED')),
    attempts   integer     NOT NULL DEFAULT 0,
    last_error text        NULL,
    sent_at    timestamptz NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, kind)
);

CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    consumer    text        NOT NULL,
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    key         bytea       NULL,
    value       bytea       NULL,
    error       text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- A redelivered poison record is stored once.
    UNIQUE (consumer, topic, "partition", "offset")
);
