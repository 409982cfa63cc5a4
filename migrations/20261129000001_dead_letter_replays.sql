-- Dead letters can be replayed once (POST /api/dead-letters/{id}/replay): when it happened,
-- NULL until then. Setting it is the claim that makes concurrent replays publish once.
ALTER TABLE dead_letters ADD COLUMN replayed_at timestamptz NULL;

-- The dead letter list, newest first, with and without a consumer filter.
CREATE INDEX dead_letters_newest_idx ON dead_letters (received_at DESC, id DESC);
CREATE INDEX dead_letters_consumer_newest_idx ON dead_letters (consumer, received_at DESC, id DESC);
