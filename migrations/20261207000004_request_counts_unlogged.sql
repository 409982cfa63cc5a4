-- The abuse-limit counters are short-lived bookkeeping: after a crash PostgreSQL empties an
-- unlogged table, which only lets a client start its window afresh. In exchange the
-- counting writes no WAL, which was most of what the limits cost each order (docs/access.md).
ALTER TABLE request_counts SET UNLOGGED;
