-- The outbox forgets what it published (docs/failure-rules.md, "Outbox"): a row is deleted
-- once the broker acknowledged its event, so every row in the table is still to be sent and
-- no event (with the customer's name and address) is kept after it went out. Kafka keeps
-- the event for the topic's retention.
--
-- Dropping published_at also drops the partial index of unpublished rows: every row is
-- unpublished now, and the relay reads them by primary key.
DELETE FROM outbox WHERE published_at IS NOT NULL;
ALTER TABLE outbox DROP COLUMN published_at;
