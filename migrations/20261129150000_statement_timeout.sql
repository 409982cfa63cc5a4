-- Every session on this database bounds each statement to 10 s (docs/failure-rules.md). It is
-- the database's default rather than a connection option because RDS Proxy refuses
-- connections that send start-up options, and a SET per session would pin the proxy's
-- connection (docs/scale.md).
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET statement_timeout = %L', current_database(), '10s');
END
$$;
