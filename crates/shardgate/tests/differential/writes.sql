-- Writes of the differential suite (tests/differential.rs), same format as
-- queries.sql. Each statement runs (autocommit) on a fresh copy of w_orders
-- (300 rows over customers 1..60, ids 1..300, sharded by customer_id), once
-- through the simple protocol and once through the extended protocol with
-- binary results; command tags, RETURNING rows (as multisets) and then the
-- whole table are compared.

UPDATE w_orders SET qty = qty + 1 WHERE status = 'new';
UPDATE w_orders SET note = 'x' WHERE amount > 500 RETURNING customer_id, id, note;
UPDATE w_orders SET amount = amount * 2 WHERE customer_id = 3 RETURNING *;
UPDATE w_orders SET status = upper(status) WHERE customer_id IN (1, 2, 3, 4, 5) RETURNING id, status;
UPDATE w_orders SET qty = NULL WHERE qty < 0;
UPDATE w_orders SET weight = weight / 3 WHERE id % 7 = 0 RETURNING id, weight;
UPDATE w_orders SET note = NULL, status = '' WHERE note IS NOT NULL AND customer_id = ANY('{7,8,9,10}');
UPDATE w_orders SET qty = 0 WHERE false;
UPDATE w_orders SET qty = qty * -1 RETURNING customer_id, qty;
-- @must
UPDATE w_orders SET customer_id = customer_id + 1 WHERE id = 5;
-- @must
UPDATE w_orders SET customer_id = 61 - customer_id, qty = qty + 1 WHERE id % 10 = 1;
-- @must
UPDATE w_orders SET customer_id = customer_id WHERE id < 20;
-- @must
UPDATE w_orders SET customer_id = 7 WHERE customer_id IN (3, 4, 5) AND qty > 20;
UPDATE w_orders SET customer_id = 59 - customer_id, note = 'moved' WHERE id % 25 = 0 RETURNING id, customer_id, note;
UPDATE w_orders SET customer_id = 1 WHERE id = 999;
UPDATE w_orders SET customer_id = NULL WHERE id = 7;
UPDATE w_orders SET amount = amount / 0 WHERE qty = 5;
UPDATE w_orders SET note = 'big' WHERE amount > (SELECT avg(amount) FROM w_orders);
DELETE FROM w_orders WHERE qty > 40;
DELETE FROM w_orders WHERE note IS NULL RETURNING id, customer_id;
DELETE FROM w_orders WHERE customer_id = 7 RETURNING *;
DELETE FROM w_orders WHERE customer_id IN (1, 2) AND qty < 10;
DELETE FROM w_orders WHERE false;
DELETE FROM w_orders WHERE status = 'cancelled' OR amount < 0 RETURNING id, amount * 2 AS doubled;
DELETE FROM w_orders WHERE customer_id IN (SELECT customer_id FROM w_orders WHERE qty = 1);
INSERT INTO w_orders (customer_id, id, status, qty, amount) VALUES (1001, 9001, 'new', 1, 1.00), (1002, 9002, 'paid', 2, 2.50), (1003, 9003, NULL, NULL, NULL), (1004, 9004, 'ß', -4, -4.44), (1005, 9005, '', 5, 5.55) RETURNING *;
INSERT INTO w_orders VALUES (2001, 9101, 'new', 3, 10.10, 0.1, 'n1'), (2002, 9102, 'new', 4, 20.20, 0.2, NULL) RETURNING id, amount * 2 AS dbl, weight + 1 AS w;
INSERT INTO w_orders (customer_id, id, qty) VALUES (3001, 9201, 1), (3002, 9202, 2), (3003, 9203, 3), (3004, 9204, 4), (3005, 9205, 5), (3006, 9206, 6), (3007, 9207, 7), (3008, 9208, 8);
INSERT INTO w_orders (customer_id, id, status) VALUES (1, 1, 'dup'), (4001, 9301, 'fresh'), (2, 2, 'dup') ON CONFLICT DO NOTHING;
INSERT INTO w_orders (customer_id, id, status) VALUES (1, 1, 'dup'), (4002, 9302, 'fresh'), (3, 3, 'dup') ON CONFLICT (customer_id, id) DO NOTHING RETURNING id, status;
INSERT INTO w_orders (customer_id, id, qty, note) VALUES (1, 1, 77, 'a'), (4003, 9303, 78, 'b'), (5, 5, 79, 'c') ON CONFLICT (customer_id, id) DO UPDATE SET qty = EXCLUDED.qty, note = 'upd' RETURNING *;
INSERT INTO w_orders (customer_id, id, amount) VALUES (6, 6, 1.25), (7, 7, 2.50), (4004, 9304, 3.75) ON CONFLICT (customer_id, id) DO UPDATE SET amount = w_orders.amount + EXCLUDED.amount WHERE w_orders.qty > 5;
INSERT INTO w_orders (customer_id, id, status) VALUES (4005, 9305, 'ok'), (8, 8, 'dup'), (4006, 9306, 'ok');
INSERT INTO w_orders (customer_id, id) VALUES (NULL, 9401);
INSERT INTO w_orders (customer_id, id, status) SELECT customer_id + 5000, id + 5000, 'copy' FROM w_orders WHERE qty = 2;
INSERT INTO w_orders (customer_id, id, status) VALUES (4007, 9307, 'one') RETURNING customer_id, id, status;
INSERT INTO w_orders (customer_id, id, status, amount) SELECT customer_id + 7000, id + 7000, upper(status), amount * 2 FROM w_orders WHERE qty > 40 ORDER BY id LIMIT 20 RETURNING customer_id, id, status, amount;
INSERT INTO w_orders SELECT customer_id + 8000, id, status, qty, amount, weight, note FROM w_orders WHERE customer_id < 4;
INSERT INTO w_orders (customer_id, id) SELECT customer_id, id FROM w_orders WHERE qty > 1000 RETURNING id;
INSERT INTO w_orders (customer_id, id, status) SELECT customer_id, id, 'again' FROM w_orders WHERE id < 30 ON CONFLICT (customer_id, id) DO UPDATE SET status = EXCLUDED.status;
INSERT INTO w_orders (customer_id, id, qty, amount, note) SELECT customer_id + 9000, id, NULL, '1.5', 'n' FROM w_orders WHERE qty < 3;
INSERT INTO w_orders (customer_id, id, qty, amount) SELECT 1, 2, NULL, NULL WHERE false RETURNING id, amount;
-- INSERT ... SELECT over several shards failing on one (a duplicate key):
-- in the extended protocol the shards' open batches end before the
-- ROLLBACK (this hung).
INSERT INTO w_orders (customer_id, id, status, qty, amount, weight, note) SELECT customer_id, id, 'again', qty, amount, weight, note FROM w_orders WHERE customer_id IN (1, 2, 3, 40);
INSERT INTO w_orders (customer_id, id, status) SELECT customer_id, id + 1000, 'copy' FROM w_orders WHERE customer_id IN (1, 2, 3, 40) RETURNING customer_id, id, status;
-- Key values as PostgreSQL assigns them: a numeric rounds, an exponent
-- literal is a number, past bigint is 22003; SET of the key twice, or
-- qualified, fails as on PostgreSQL.
UPDATE w_orders SET customer_id = customer_id + 0.6 WHERE id = 5 RETURNING customer_id, id;
UPDATE w_orders SET customer_id = 29.5 WHERE id IN (7, 8);
INSERT INTO w_orders (customer_id, id) VALUES (7::int, 9000), (1e1, 9001), (2.5E+1, 9002) RETURNING customer_id;
INSERT INTO w_orders (customer_id, id) VALUES (9223372036854775808, 1);
UPDATE w_orders SET customer_id = 5, customer_id = 6 WHERE id = 1;
UPDATE w_orders SET w_orders.customer_id = 5 WHERE id = 1;
-- UPDATE ... FROM / DELETE ... USING a table joined off the shard key: it runs first
-- @must
UPDATE w_orders w SET note = c.name FROM customers c WHERE c.id = w.id;
-- @must
UPDATE w_orders w SET qty = o.qty FROM orders o WHERE o.id = w.id AND o.qty > 30;
-- @must
DELETE FROM w_orders w USING orders o WHERE o.id = w.id AND o.qty > 33 AND w.qty = 22;
-- @must
UPDATE w_orders w SET amount = c.credit FROM customers c WHERE c.id = w.qty;
-- @must
UPDATE w_orders w SET note = c.name FROM customers c WHERE c.id = w.id AND w.qty > 10 RETURNING w.customer_id, w.id, w.note, c.region;
-- @must
DELETE FROM w_orders w USING orders o WHERE o.id = w.id AND o.qty > 40 RETURNING w.id, o.status;
-- Subqueries of an UPDATE or DELETE that refer to the target's rows off the
-- shard key: their table runs first.
-- @must
DELETE FROM w_orders w WHERE EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = w.id AND i.qty = 3);
-- @must
UPDATE w_orders w SET note = 'has items' WHERE EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = w.id LIMIT 1);
-- @must
UPDATE w_orders w SET amount = (SELECT sum(i.price) FROM order_items i WHERE i.order_id = w.id) WHERE w.customer_id < 20;
-- @must
DELETE FROM w_orders w WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = w.id AND o.qty > 10) RETURNING w.customer_id, w.id;
-- @must
UPDATE w_orders SET qty = qty + 1 WHERE qty = ANY (SELECT line FROM order_items WHERE product_id = 3) RETURNING customer_id, id, qty;
-- @must
DELETE FROM w_orders w WHERE w.id IN (SELECT o.id FROM orders o JOIN order_items i ON i.order_id = o.id WHERE i.line = 2 AND o.qty > 20);
-- Data-modifying WITH whose every part is placed on one shard by its key:
-- the statement runs whole there (one snapshot, as in PostgreSQL).
-- @must
WITH u AS (UPDATE w_orders SET qty = 0 WHERE customer_id = 10 RETURNING id, qty) SELECT count(*), sum(qty) FROM u;
-- @must
WITH d AS (DELETE FROM w_orders WHERE customer_id = 12 AND qty > 10 RETURNING *) INSERT INTO w_orders (customer_id, id, status, qty) SELECT customer_id, id + 1000, 'archived', qty FROM d RETURNING customer_id, id, status;
-- @must
WITH i AS (INSERT INTO w_orders (customer_id, id, status) VALUES (20, 5001, 'new'), (20, 5002, NULL) RETURNING *) SELECT id, status FROM i;
-- @must
WITH u AS (UPDATE w_orders SET note = 'seen' WHERE customer_id = 14 RETURNING id) SELECT o.id, o.note FROM w_orders o WHERE o.customer_id = 14 AND o.id IN (SELECT id FROM u);
-- @must
WITH a AS (UPDATE w_orders SET qty = 1 WHERE customer_id = 15 RETURNING id), b AS (DELETE FROM w_orders WHERE customer_id = 15 AND status = 'new' RETURNING id) SELECT (SELECT count(*) FROM a) AS updated, (SELECT count(*) FROM b) AS deleted;
WITH u AS (UPDATE w_orders SET qty = 0 WHERE customer_id = 16 RETURNING id) SELECT count(*) FROM w_orders;
-- A write placed by its key whose subquery over a co-located table is not.
-- @must
UPDATE w_orders SET qty = (SELECT count(*) FROM order_items WHERE line = 2) WHERE customer_id = 3 RETURNING id, qty;
-- @must
DELETE FROM w_orders WHERE customer_id = 4 AND qty IN (SELECT qty FROM order_items WHERE product_id = 2);
