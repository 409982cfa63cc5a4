-- Demo stock for local runs (applied by scripts/run, never by migrations).
-- Re-running resets these products to the levels below.
INSERT INTO stock (product_name, quantity) VALUES
    ('Laptop', 50),
    ('Monitor', 30),
    ('Keyboard', 100),
    ('Mouse', 100),
    ('Headphones', 5)
ON CONFLICT (product_name) DO UPDATE SET quantity = EXCLUDED.quantity, updated_at = now();
