-- The W3C traceparent of the request or record that wrote the row (docs/observability.md,
-- "Tracing"); the publisher sends it as the Kafka header `traceparent`. Nullable: rows written
-- before it existed are published without the header.
ALTER TABLE outbox ADD COLUMN traceparent text;
