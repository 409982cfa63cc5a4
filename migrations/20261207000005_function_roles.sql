-- One database role per function, each granted only what its SQL uses (docs/data.md,
-- "Who may do what"). db-migrate alone logs in as the owner of the tables; the functions log
-- in as these roles, which own nothing, so none of them can ALTER, DROP or create a table.
--
-- The roles can log in but have no password here: in AWS, db-migrate sets each one's password
-- from the role's own secret on every run (and a role without a password cannot log in with
-- one); locally, PostgreSQL trusts loopback.
--
-- Roles belong to the whole server, not to one database, so a role may already exist (another
-- database of the same server, such as a test's, created it). Creating it is therefore
-- allowed to lose the race against a concurrent migration.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['order_api', 'inventory', 'notification', 'payment', 'outbox_relay']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$$;

-- Nobody but the owner creates objects in the schema (PostgreSQL 15 and later default to
-- this already; older servers granted CREATE to everyone).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO order_api, inventory, notification, payment, outbox_relay;

-- order-api: places, reads and cancels orders, keeps stock, replays dead letters, erases
-- customers (which rewrites names and addresses wherever they are), counts requests.
GRANT SELECT, INSERT, UPDATE ON orders, stock, request_counts TO order_api;
GRANT SELECT, UPDATE (status, updated_at) ON payments TO order_api;
GRANT SELECT (order_id, kind, recipient, last_error), UPDATE (recipient, last_error, updated_at)
    ON notifications TO order_api;
GRANT SELECT, UPDATE ON dead_letters TO order_api;
GRANT SELECT, INSERT, DELETE, UPDATE (payload) ON outbox TO order_api;

-- inventory: reserves stock for open orders and decides their status. It reads what an order
-- event carries, never the guest's token hash or the idempotency bookkeeping.
GRANT SELECT (id, customer_name, customer_email, product_name, quantity, status,
              payment_method, amount, currency),
      UPDATE (status, rejection_reason, amount, currency, updated_at)
    ON orders TO inventory;
GRANT SELECT, UPDATE (quantity, updated_at) ON stock TO inventory;
GRANT SELECT, INSERT ON processed_events TO inventory;

-- payment: charges reserved orders, voids and refunds cancelled ones. It may lock an order
-- (`FOR UPDATE` needs UPDATE on one column, so `updated_at`) but not change it.
GRANT SELECT (id, customer_name, customer_email, product_name, quantity, status,
              payment_method, amount, currency),
      UPDATE (updated_at)
    ON orders TO payment;
GRANT SELECT, INSERT, UPDATE ON payments TO payment;

-- notification: records and sends mails; it reads no order, stock or payment.
GRANT SELECT, INSERT, UPDATE ON notifications TO notification;

-- Every consumer sets poison records aside (`ON CONFLICT` reads the columns of its key), and
-- those that publish write the outbox and forget what they published.
GRANT INSERT, SELECT (consumer, topic, "partition", "offset") ON dead_letters
    TO inventory, notification, payment;
GRANT USAGE ON SEQUENCE dead_letters_id_seq TO inventory, notification, payment;
GRANT SELECT, INSERT, DELETE ON outbox TO inventory, payment;
GRANT USAGE ON SEQUENCE outbox_id_seq TO order_api, inventory, payment;

-- outbox-relay: sends and deletes what was left in the outbox (`FOR UPDATE SKIP LOCKED` needs
-- UPDATE on one column, so `created_at`), and prunes what outlived its retention.
GRANT SELECT, DELETE, UPDATE (created_at) ON outbox TO outbox_relay;
GRANT SELECT (consumer, event_id, processed_at), DELETE ON processed_events TO outbox_relay;
GRANT SELECT (order_id, kind, created_at), DELETE ON notifications TO outbox_relay;
GRANT SELECT (id, replayed_at), DELETE ON dead_letters TO outbox_relay;
GRANT SELECT, DELETE ON request_counts TO outbox_relay;
