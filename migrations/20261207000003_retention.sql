-- Retention (docs/data.md, "Retention"): the relay's schedule prunes dedup records,
-- replayed dead letters and ended abuse-limit windows in bounded batches. BRIN indexes find
-- the old rows of these append-ordered tables for almost no cost per insert.
CREATE INDEX processed_events_processed_at_brin ON processed_events USING brin (processed_at);
CREATE INDEX notifications_created_at_brin ON notifications USING brin (created_at);
CREATE INDEX request_counts_window_start_brin ON request_counts USING brin (window_start);
