WITH counted AS (
             INSERT INTO request_counts (counter, subject, window_start, hits)
             SELECT c.counter, c.subject, to_timestamp($16::bigint), 1
             FROM UNNEST($13::text[], $14::bytea[]) WITH ORDINALITY AS c(counter, subject, n)
             ORDER BY c.n
             ON CONFLICT (counter, subject, window_start)
             DO UPDATE SET hits = request_counts.hits + 1
             RETURNING counter, hits
         ), refused AS (
             SELECT counted.counter
             FROM counted JOIN UNNEST($13::text[], $15::int[]) AS l(counter, max_hits)
                  ON l.counter = counted.counter
             WHERE counted.hits > l.max_hits
             LIMIT 1
         ), placed AS (
             INSERT INTO orders (id, customer_name, customer_email, product_name, quantity, status,
                                 idempotency_key, request_fingerprint, payment_method,
                                 customer_sub, order_token_hash)
             SELECT $1::uuid, $2::varchar, $3::varchar, $4::varchar, $5::int, 'PLACED',
                    $6::varchar, $7::bytea, $11::varchar, $17::varchar, $18::bytea
             WHERE NOT EXISTS (SELECT 1 FROM refused)
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING id, customer_name, customer_email, product_name, quantity, status,
                       created_at, updated_at
         ), queued AS (
             INSERT INTO outbox (topic, key, payload, traceparent)
             SELECT $8, $9, $10, $12 FROM placed
             RETURNING id
         )
         SELECT (SELECT counter FROM refused) AS refused,
                placed.id AS "id?", placed.customer_name AS "customer_name?: CustomerName",
                placed.customer_email AS "customer_email?: EmailAddress",
                placed.product_name AS "product_name?: ProductName",
                placed.quantity AS "quantity?: Quantity", placed.status AS "status?: OrderStatus",
                placed.created_at AS "created_at?",
                placed.updated_at AS "updated_at?", queued.id AS "outbox_id?"
         FROM (SELECT 1) AS one
              LEFT JOIN placed ON true
              LEFT JOIN queued ON true