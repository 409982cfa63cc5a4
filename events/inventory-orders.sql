-- The PLACED orders that the inventory-*.json sample events refer to, for
-- `cargo lambda invoke inventory --data-file events/inventory-....json` against a local database
-- seeded with seed/stock.sql. Re-running resets them to PLACED and forgets that inventory
-- processed their events, so the samples can be invoked again (stock is reset by the seed).
INSERT INTO orders (id, customer_name, customer_email, product_name, quantity, status) VALUES
    ('019ab5c0-0001-7000-8000-000000000001', 'Ada Lovelace', 'ada@example.com', 'Laptop', 1, 'PLACED'),
    ('019ab5c0-0011-7000-8000-000000000011', 'Grace Hopper', 'grace@example.com', 'Laptop', 2, 'PLACED'),
    ('019ab5c0-0012-7000-8000-000000000012', 'Alan Turing', NULL, 'Headphones', 4, 'PLACED'),
    ('019ab5c0-0013-7000-8000-000000000013', 'Edsger Dijkstra', 'edsger@example.com', 'Headphones', 3, 'PLACED'),
    ('019ab5c0-0014-7000-8000-000000000014', 'Barbara Liskov', 'barbara@example.com', 'Monitor', 1, 'PLACED'),
    ('019ab5c0-0015-7000-8000-000000000015', 'Ken Thompson', 'ken@example.com', 'Tablet', 1, 'PLACED'),
    ('019ab5c0-0016-7000-8000-000000000016', 'Margaret Hamilton', NULL, 'Keyboard', 3, 'PLACED'),
    ('019ab5c0-0021-7000-8000-000000000021', 'Linus Torvalds', 'linus@example.com', 'Mouse', 1, 'PLACED'),
    ('019ab5c0-0022-7000-8000-000000000022', 'Dennis Ritchie', NULL, 'Keyboard', 2, 'PLACED')
ON CONFLICT (id) DO UPDATE SET status = 'PLACED', rejection_reason = NULL, updated_at = now();

DELETE FROM processed_events WHERE consumer = 'inventory' AND event_id IN (
    '019ab5c0-0001-7000-9000-0000e0000001',
    '019ab5c0-0011-7000-9000-0000e0000011',
    '019ab5c0-0012-7000-9000-0000e0000012',
    '019ab5c0-0013-7000-9000-0000e0000013',
    '019ab5c0-0014-7000-9000-0000e0000014',
    '019ab5c0-0015-7000-9000-0000e0000015',
    '019ab5c0-0016-7000-9000-0000e0000016',
    '019ab5c0-0021-7000-9000-0000e0000021',
    '019ab5c0-0022-7000-9000-0000e0000022'
);

DELETE FROM dead_letters WHERE consumer = 'inventory' AND topic = 'order-placed'
    AND ("partition", "offset") IN ((2, 201), (2, 202), (2, 203), (2, 204), (2, 205));
