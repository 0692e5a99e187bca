-- Read queries of the differential suite (tests/differential.rs).
--
-- Format: statements end with `;` at the end of a line. Comment lines right
-- before a statement may carry tags (words starting with @):
--   @ordered  the query gives a total order: rows are compared in order
--             (else as multisets). An ORDER BY with ties between rows that
--             differ is NOT a total order.
--   @must     shardgate must answer it (a 0A000 refusal fails the test), so
--             support cannot silently regress. Add it to queries as soon as
--             shardgate supports them.
-- Other comment lines are ignored.
--
-- Tables: customers (sharded by id), orders and order_items (sharded by
-- customer_id; co-located with customers), products (reference table).

-- ---------------------------------------------------------------- point lookups
-- @must
SELECT * FROM customers WHERE id = 1;
-- @must
SELECT * FROM customers WHERE id = 42;
-- @must
SELECT * FROM customers WHERE id = 100000;
-- @must
SELECT * FROM customers WHERE 13 = id;
-- @must
SELECT id, name, email, credit * 2 AS double_credit, upper(name) FROM customers WHERE id = 9;
-- @must
SELECT * FROM orders WHERE customer_id = 1;
-- @must
SELECT id, status, amount FROM orders WHERE customer_id = 7;
-- @must @ordered
SELECT * FROM orders WHERE customer_id = 2 ORDER BY id;
-- @must
SELECT * FROM order_items WHERE customer_id = 3 AND order_id > 0;
-- @must
SELECT name, email FROM customers WHERE id = 17 AND active;
-- @must
SELECT * FROM orders WHERE customer_id = -1;
-- @must
SELECT * FROM orders WHERE customer_id = 5 AND amount IS NULL;
-- @must
SELECT id, weight, discount FROM orders WHERE customer_id = 11 AND weight > 0;
-- @must
SELECT * FROM customers WHERE id = 200;
-- @must
SELECT id, last_seen, signup FROM customers WHERE id = 33;
-- @must
SELECT o.id, o.note FROM orders o WHERE o.customer_id = 12 AND o.note IS NOT NULL;
-- @must
SELECT * FROM order_items WHERE customer_id = 1 AND qty > 8;
-- @must
SELECT customer_id, id FROM orders WHERE customer_id = 3 AND (status = 'new' OR status IS NULL);

-- ------------------------------------------------- IN lists, ANY, OR of keys
-- @must
SELECT * FROM customers WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8);
-- @must
SELECT * FROM orders WHERE customer_id IN (1, 50, 99);
-- @must
SELECT * FROM orders WHERE customer_id = ANY('{1,2,3,150}');
-- @must
SELECT * FROM orders WHERE customer_id = ANY('{4,5,6}'::bigint[]);
-- @must
SELECT * FROM orders WHERE customer_id = ANY(ARRAY[7, 8, 9]);
-- @must
SELECT * FROM customers WHERE id = 1 OR id = 2 OR id = 3;
-- @must
SELECT * FROM orders WHERE (customer_id = 4 OR customer_id = 8) AND amount > 100;
-- @must
SELECT * FROM orders WHERE customer_id IN (10, 20) AND status IN ('new', 'paid');
-- @must
SELECT * FROM customers WHERE id IN (1, 1, 2);
-- @must
SELECT * FROM customers WHERE id IN (99999, 88888);
-- @must
SELECT id, name FROM customers WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20);
-- @must
SELECT * FROM order_items WHERE customer_id IN (2, 3) AND line = 1;
-- @must
SELECT id FROM customers WHERE id = 5 OR id = 500;
-- @must
SELECT * FROM orders WHERE customer_id IN (1, 2) AND id < 100;
-- @must @ordered
SELECT id, amount FROM orders WHERE customer_id IN (4, 5, 6, 7) ORDER BY id;
-- @must @ordered
SELECT id, amount FROM orders WHERE customer_id = ANY('{1,2,3}') ORDER BY amount DESC NULLS LAST, id LIMIT 12;
-- @must @ordered
SELECT * FROM customers WHERE id IN (3, 1, 2) ORDER BY id DESC;
-- @must
SELECT customer_id, count(*) FROM orders WHERE customer_id = 1 OR customer_id = 1 GROUP BY customer_id;

-- ------------------------------------------------ scatter, rows concatenated
-- @must
SELECT * FROM customers;
-- @must
SELECT * FROM orders;
-- @must
SELECT * FROM order_items;
-- @must
SELECT * FROM orders WHERE amount > 5000;
-- @must
SELECT id, name FROM customers WHERE name LIKE 'A%';
-- @must
SELECT id, name FROM customers WHERE name ILIKE '%e%';
-- @must
SELECT * FROM order_items WHERE qty > 8;
-- @must
SELECT id, status FROM orders WHERE status IS NULL;
-- @must
SELECT id FROM customers WHERE id NOT IN (1, 2, 3);
-- @must
SELECT id, score FROM customers WHERE score BETWEEN 100 AND 200000;
-- @must
SELECT id, region FROM customers WHERE region = '';
-- @must
SELECT id, name, length(name) FROM customers WHERE name > 'Z';
-- @must
SELECT id, ordered_on FROM orders WHERE ordered_on >= '2023-06-01' AND ordered_on < '2023-07-01';
-- @must
SELECT id, created_at FROM orders WHERE created_at < '2019-03-01 00:00:00';
-- @must
SELECT id, amount, qty, amount * qty AS total FROM orders WHERE qty < 0;
-- @must
SELECT customer_id, order_id, line, price FROM order_items WHERE price < 1;
-- @must
SELECT id, active, tier FROM customers WHERE active IS NULL OR tier IS NULL;
-- @must
SELECT id, discount FROM orders WHERE discount = 0.125;
-- @must
SELECT id, weight FROM orders WHERE weight < -49.5;
-- @must
SELECT 'x' AS lit, id FROM customers WHERE id > 190;

-- ------------------------------------------------- ORDER BY, LIMIT, OFFSET
-- @must @ordered
SELECT * FROM orders ORDER BY id LIMIT 20;
-- @must @ordered
SELECT * FROM orders ORDER BY id DESC LIMIT 20 OFFSET 10;
-- @must @ordered
SELECT id, amount FROM orders ORDER BY amount DESC NULLS LAST, id LIMIT 50;
-- @must @ordered
SELECT id, amount FROM orders ORDER BY amount NULLS FIRST, id LIMIT 50;
-- @must @ordered
SELECT id, amount FROM orders ORDER BY amount ASC NULLS LAST, id DESC LIMIT 30 OFFSET 100;
-- @must @ordered
-- @pg-only
SELECT id FROM orders ORDER BY weight, id LIMIT 40;
-- @must @ordered
SELECT id, qty * amount AS total FROM orders ORDER BY total DESC NULLS LAST, id LIMIT 25;
-- @must @ordered
SELECT id, qty FROM orders ORDER BY qty * 2 + 1, id LIMIT 25;
-- @must @ordered
-- @pg-only
SELECT name, id FROM customers ORDER BY 1, 2;
-- @must @ordered
SELECT name, id FROM customers ORDER BY name DESC NULLS FIRST, id;
-- @must @ordered
-- @pg-only
SELECT * FROM customers ORDER BY signup, id;
-- @must @ordered
-- @pg-only
SELECT * FROM customers ORDER BY last_seen DESC, id LIMIT 10;
-- @must @ordered
-- @pg-only
SELECT * FROM customers ORDER BY active, tier, id;
-- @must @ordered
SELECT id, score FROM customers ORDER BY score DESC, id OFFSET 150;
-- @must @ordered
-- @pg-only
SELECT * FROM orders WHERE customer_id IN (1, 2, 3) ORDER BY created_at, id LIMIT 10;
-- @must @ordered
-- @pg-only
SELECT id, note FROM orders ORDER BY note, id LIMIT 100;
-- @must @ordered
SELECT id FROM orders ORDER BY id LIMIT 0;
-- @must @ordered
SELECT id, status FROM orders ORDER BY status DESC NULLS LAST, id LIMIT 15 OFFSET 5;
-- @must @ordered
SELECT * FROM order_items ORDER BY price DESC, order_id, line LIMIT 10;
-- @ordered
SELECT id, lower(name) AS ln FROM customers ORDER BY ln, id;
-- @must @ordered
-- @pg-only
SELECT id, discount FROM orders ORDER BY discount, id LIMIT 60;
-- @must @ordered
SELECT id, priority FROM orders ORDER BY priority DESC NULLS FIRST, id DESC LIMIT 40;
-- @must @ordered
-- @pg-only
SELECT id FROM orders ORDER BY ordered_on DESC, id LIMIT 5 OFFSET 2000;
-- @must @ordered
-- @pg-only
SELECT id, credit FROM customers ORDER BY credit, id LIMIT 10 OFFSET 10;
-- @must @ordered
SELECT id, amount FROM orders ORDER BY -amount, id LIMIT 10;
-- @must @ordered
SELECT id, name FROM customers ORDER BY length(name), name, id;
-- @must @ordered
SELECT * FROM products ORDER BY id;
-- @must @ordered
SELECT * FROM products ORDER BY price DESC, id LIMIT 5;
-- @must @ordered
SELECT id, email FROM customers ORDER BY email NULLS FIRST, id LIMIT 30;
-- @must @ordered
-- @pg-only
SELECT id, paid, amount FROM orders ORDER BY paid NULLS FIRST, amount DESC, id LIMIT 70;
-- @must @ordered
SELECT id, weight FROM orders ORDER BY weight DESC NULLS LAST, id OFFSET 2400;
-- @must @ordered
SELECT customer_id, id FROM orders ORDER BY customer_id DESC, id LIMIT 33;
-- @must @ordered
SELECT customer_id AS c, id AS o FROM orders ORDER BY c, o DESC LIMIT 10 OFFSET 390;
-- @must @ordered
SELECT id, created_at FROM orders ORDER BY created_at DESC NULLS FIRST, id LIMIT 25;
-- @must @ordered
SELECT id, region, tier FROM customers ORDER BY region NULLS FIRST, tier DESC NULLS LAST, id;
-- @must @ordered
SELECT id, amount + 1 FROM orders ORDER BY 2, 1 LIMIT 20;
-- @must @ordered
SELECT order_id, line, qty * price AS total FROM order_items ORDER BY total DESC, order_id, line LIMIT 15;
-- @must @ordered
SELECT id FROM customers ORDER BY id OFFSET 195;
-- @must @ordered
SELECT id FROM customers ORDER BY id LIMIT 5 OFFSET 1000;
-- @must @ordered
SELECT id, qty FROM orders WHERE qty > 45 ORDER BY qty, id;
-- @must @ordered
SELECT id, name FROM customers WHERE active ORDER BY name NULLS FIRST, id LIMIT 20;
-- @must @ordered
SELECT id, score FROM customers ORDER BY score NULLS FIRST, id LIMIT 20;
-- @ordered
SELECT upper(status) AS s, id FROM orders ORDER BY s, id LIMIT 40;
-- @must @ordered
SELECT id, discount FROM orders ORDER BY discount DESC NULLS LAST, id LIMIT 20 OFFSET 20;
-- @must @ordered
SELECT * FROM orders WHERE customer_id = 1 ORDER BY amount, id LIMIT 5;
-- @must @ordered
-- @pg-only
SELECT id, qty FROM orders ORDER BY qty DESC, id LIMIT 1;
-- ORDER BY with ties: not a total order, compared as a multiset.
-- @must
SELECT id, status FROM orders ORDER BY status;
-- @must
SELECT id, region FROM customers ORDER BY region DESC;
SELECT id FROM orders ORDER BY id FETCH FIRST 3 ROWS ONLY;

-- Lean merges: sort keys read from the result's own columns (a column of
-- *, an alias, a position, an expression that is a select item), in the
-- client's format when it orders exactly, else from hidden columns.
-- @must @ordered
-- @pg-only
SELECT * FROM customers ORDER BY score DESC NULLS LAST, id LIMIT 15;
-- @must @ordered
-- @pg-only
SELECT * FROM customers ORDER BY credit DESC NULLS LAST, id LIMIT 20;
-- @must @ordered
-- @pg-only
SELECT * FROM orders ORDER BY created_at DESC NULLS LAST, id LIMIT 12;
-- @must @ordered
-- @pg-only
SELECT id, amount * 2 AS d FROM orders ORDER BY amount * 2 DESC NULLS LAST, 1 LIMIT 30;
-- @must @ordered
-- @pg-only
SELECT id, * FROM customers ORDER BY 1 DESC LIMIT 7;
-- @must @ordered
-- @pg-only
SELECT * FROM orders ORDER BY lower(status) NULLS FIRST, id LIMIT 30;
-- @must @ordered
-- @pg-only
SELECT *, -id AS neg FROM customers ORDER BY neg LIMIT 5;
-- @must @ordered
-- @pg-only
SELECT c.id, c.name AS id2 FROM customers c ORDER BY c.id DESC LIMIT 5;
-- @must @ordered
-- @pg-only
SELECT * FROM orders ORDER BY paid DESC, priority, id LIMIT 25;
-- @must @ordered
-- @pg-only
SELECT * FROM customers ORDER BY email DESC NULLS LAST, id LIMIT 9;
-- @must @ordered
-- @pg-only
SELECT * FROM orders ORDER BY weight NULLS FIRST, id LIMIT 11;
-- @ordered
-- @pg-only
SELECT *, -id AS neg FROM orders ORDER BY 2 LIMIT 4;
-- ---------------------------------------------- aggregates without GROUP BY
-- @must
SELECT count(*) FROM orders;
-- @must
SELECT count(*) FROM customers;
-- @must
SELECT count(*) FROM order_items;
-- @must
SELECT count(amount) FROM orders;
-- @must
SELECT count(note), count(qty), count(*) FROM orders;
-- @must
SELECT count(1) FROM customers;
-- @must
SELECT sum(qty) FROM orders;
-- @must
SELECT sum(amount) FROM orders;
-- @must
SELECT sum(discount) FROM orders;
-- @must
SELECT sum(weight) FROM orders;
-- @must
SELECT sum(priority) FROM orders;
-- @must
SELECT sum(id) FROM orders;
-- @must
SELECT sum(tier) FROM customers;
-- @must
SELECT sum(credit), sum(score) FROM customers;
-- @must
SELECT min(qty), max(qty) FROM orders;
-- @must
SELECT min(amount), max(amount), min(discount), max(discount) FROM orders;
-- @must
SELECT min(weight), max(weight) FROM orders;
-- @must
SELECT min(name), max(name) FROM customers;
-- @must
SELECT min(signup), max(signup), min(last_seen), max(last_seen) FROM customers;
-- @must
SELECT min(note), max(status) FROM orders;
-- @must
SELECT min(priority), max(priority), min(id), max(id) FROM orders;
-- @must
SELECT min(email), max(email) FROM customers;
-- @must
SELECT min(weight), max(weight) FROM products;
-- @must
SELECT avg(qty) FROM orders;
-- @must
SELECT avg(amount) FROM orders;
-- @must
SELECT avg(discount) FROM orders;
-- @must
SELECT avg(weight) FROM orders;
-- @must
SELECT avg(priority) FROM orders;
-- @must
SELECT avg(id) FROM orders;
-- @must
SELECT avg(score), avg(credit), avg(tier) FROM customers;
-- @must
SELECT avg(price) FROM order_items;
-- @must
SELECT count(DISTINCT status) FROM orders;
-- @must
SELECT count(DISTINCT customer_id) FROM orders;
-- @must
SELECT count(DISTINCT qty), count(DISTINCT amount) FROM orders;
-- @must
SELECT count(DISTINCT region), count(DISTINCT lower(region)) FROM customers;
-- @must
SELECT sum(DISTINCT qty) FROM orders;
-- @must
SELECT sum(DISTINCT amount), avg(DISTINCT qty) FROM orders;
-- @must
SELECT count(DISTINCT weight), sum(DISTINCT weight) FROM orders;
-- @must
SELECT stddev(qty), variance(qty) FROM orders;
-- @must
SELECT stddev_samp(amount), stddev_pop(amount) FROM orders;
-- @must
SELECT var_pop(weight), var_samp(weight) FROM orders;
-- @must
SELECT stddev(weight) FROM orders;
-- @must
SELECT variance(discount) FROM orders;
-- @must
SELECT stddev_pop(priority), var_samp(priority) FROM orders;
-- @must
SELECT stddev(score), variance(credit) FROM customers;
-- @must
SELECT stddev(id), var_pop(id) FROM orders;
-- @must
SELECT bool_and(paid), bool_or(paid), every(paid) FROM orders;
-- @must
SELECT bool_and(active), bool_or(active) FROM customers;
-- @must
SELECT bool_and(qty > -10), bool_or(qty > 49) FROM orders;
-- @must
SELECT string_agg(status, ',' ORDER BY status) FROM orders WHERE qty = 7;
-- @must
SELECT string_agg(name, ',' ORDER BY name) FROM customers;
-- @must
SELECT string_agg(DISTINCT status, ',' ORDER BY status) FROM orders;
-- @must
SELECT string_agg(note, '' ORDER BY note DESC) FROM orders WHERE qty = 11;
-- @must
SELECT array_agg(id ORDER BY id) FROM customers;
-- @must
SELECT array_agg(amount ORDER BY amount) FROM orders WHERE qty = 3;
-- @must
SELECT array_agg(DISTINCT region ORDER BY region) FROM customers;
-- @must
SELECT array_agg(weight ORDER BY weight DESC) FROM orders WHERE priority = 1 AND qty = 5;
-- @must
SELECT sum(qty * amount) FROM orders;
-- @must
SELECT avg(amount * 2) FROM orders;
-- @must
SELECT sum(i.qty * i.price) FROM order_items i;
-- @must
SELECT sum(weight * 2), avg(weight + 1) FROM orders;
-- @must
SELECT count(*) FILTER (WHERE paid) FROM orders;
-- @must
SELECT count(*) FILTER (WHERE status = 'new'), sum(amount) FILTER (WHERE qty > 10) FROM orders;
-- @must
SELECT avg(weight) FILTER (WHERE priority = 1) FROM orders;
-- @must
SELECT max(amount) - min(amount) FROM orders;
-- @must
SELECT sum(amount) / count(*) FROM orders;
-- @must
SELECT round(avg(amount), 2) FROM orders;
-- @must
SELECT sum(amount) / nullif(count(amount), 0), round(avg(qty), 4) FROM orders;
-- @must
SELECT count(*) FROM orders WHERE amount IS NULL;
-- @must
SELECT count(*) FROM orders WHERE false;
-- @must
SELECT sum(qty), avg(qty), min(qty), count(qty) FROM orders WHERE qty > 1000;
-- @must
SELECT count(*), count(DISTINCT status) FROM orders WHERE customer_id IN (1, 2, 3);
-- @must
SELECT count(*) AS n, sum(qty) total FROM orders;
-- @must
SELECT 1 + count(*) FROM orders;
-- @must
SELECT count(*) > 100 AS many FROM orders;
-- @must
SELECT max(length(name)) FROM customers;
-- @must
SELECT min(lower(name)), max(upper(name)) FROM customers;
-- @must
SELECT count(*) FROM orders WHERE status = '';
-- @must
SELECT sum(amount), count(*) FROM orders WHERE ordered_on >= '2022-01-01';
-- @must
SELECT count(*), min(created_at), max(created_at) FROM orders WHERE paid;
-- @must
SELECT bit_and(qty), bit_or(qty) FROM orders;
-- @must
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM orders;
-- @must
SELECT mode() WITHIN GROUP (ORDER BY status) FROM orders;
-- @must
SELECT json_agg(id ORDER BY id) FROM customers WHERE id < 10;
SELECT count(*) FROM (SELECT * FROM orders) s;
-- @must
SELECT max(amount), min(amount) FROM orders WHERE customer_id NOT IN (1, 2);
-- @must
SELECT count(*), sum(price), max(price) FROM products;
-- @must
SELECT coalesce(sum(qty), 0) FROM orders WHERE qty > 1000;
-- @must
SELECT sum(amount)::text FROM orders;
-- @must
SELECT avg(qty)::numeric(10,3) FROM orders;
-- @must
SELECT count(*) * 2, sum(qty) + max(qty) FROM orders;

-- ----------------------------------------------------------------- GROUP BY
-- @must
SELECT status, count(*) FROM orders GROUP BY status;
-- @must
SELECT status, count(*), sum(amount), avg(qty) FROM orders GROUP BY status;
-- @must
SELECT paid, count(*) FROM orders GROUP BY paid;
-- @must
SELECT priority, min(amount), max(amount) FROM orders GROUP BY priority;
-- @must
SELECT region, count(*) FROM customers GROUP BY region;
-- @must
SELECT lower(region), count(*) FROM customers GROUP BY lower(region);
-- @must
SELECT lower(region) AS r, count(*) FROM customers GROUP BY r;
-- @must
SELECT region, tier, count(*) FROM customers GROUP BY region, tier;
-- @must
SELECT region, tier, count(*) FROM customers GROUP BY 1, 2;
-- @must
SELECT date_trunc('month', created_at) AS m, count(*), sum(amount) FROM orders GROUP BY 1;
-- @must
SELECT date_trunc('year', ordered_on) y, count(*) FROM orders GROUP BY y;
-- @must
SELECT extract(year FROM ordered_on) AS y, sum(qty) FROM orders GROUP BY 1;
-- @must
SELECT CASE WHEN amount < 0 THEN 'neg' WHEN amount < 1000 THEN 'small' ELSE 'big' END AS bucket, count(*) FROM orders GROUP BY bucket;
-- @must
SELECT amount > 100 AS big, count(*), sum(qty) FROM orders GROUP BY big;
-- @must
SELECT customer_id % 3 AS c3, count(*) FROM orders GROUP BY c3 HAVING count(*) > 1;
-- @must
SELECT customer_id AS cid, count(*) FROM orders GROUP BY cid;
-- An output name that is also a column of the FROM list: PostgreSQL groups
-- by the column (refused by shardgate, never grouped by the output).
SELECT 1 AS status, count(*) FROM orders GROUP BY status;
SELECT count(*) AS qty FROM orders GROUP BY qty;
SELECT 'x' AS region, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY region;
-- @must
SELECT customer_id, count(*) FROM orders GROUP BY customer_id;
-- @must
SELECT customer_id, sum(amount), max(created_at) FROM orders GROUP BY customer_id;
-- @must
SELECT customer_id, count(*) FROM order_items GROUP BY customer_id HAVING count(*) > 30;
-- @must
SELECT status, count(*) FROM orders GROUP BY status HAVING sum(amount) > 100000;
-- @must
SELECT status FROM orders GROUP BY status HAVING count(*) > 400;
-- @must
SELECT status, count(*) FROM orders GROUP BY status HAVING avg(qty) > 20;
-- @must
SELECT status, count(*) FROM orders GROUP BY status HAVING max(weight) > 40 AND min(qty) < 0;
-- @ordered
-- @must
SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id ORDER BY n DESC, customer_id LIMIT 5;
-- @ordered
-- @must
SELECT customer_id, sum(amount) FROM orders GROUP BY customer_id ORDER BY sum(amount) DESC NULLS LAST, customer_id LIMIT 10;
-- @ordered
-- @must
SELECT status, count(*) FROM orders GROUP BY status ORDER BY count(*) DESC, status;
-- @ordered
-- @must
SELECT status, count(*) FROM orders GROUP BY status ORDER BY status;
-- @ordered
-- @must
SELECT status, count(*) FROM orders GROUP BY status ORDER BY 1 DESC NULLS LAST;
-- @ordered
-- @must
SELECT priority, sum(qty) s FROM orders GROUP BY priority ORDER BY s, priority;
-- @ordered
-- @must
SELECT region, avg(score) FROM customers GROUP BY region ORDER BY region NULLS FIRST LIMIT 3;
-- @ordered
-- @must
SELECT customer_id, max(amount) FROM orders GROUP BY customer_id ORDER BY customer_id OFFSET 150;
-- @ordered
-- @must
SELECT customer_id FROM orders GROUP BY customer_id ORDER BY avg(weight) DESC NULLS LAST, customer_id LIMIT 7;
-- @must
SELECT status, sum(amount) / count(*) AS per FROM orders GROUP BY status;
-- @must
SELECT status, round(avg(amount), 2) FROM orders GROUP BY status;
-- @must
SELECT status, stddev(amount), variance(qty) FROM orders GROUP BY status;
-- @must
SELECT status, stddev_pop(weight), var_samp(weight) FROM orders GROUP BY status;
-- @must
SELECT status, bool_and(paid), bool_or(paid) FROM orders GROUP BY status;
-- @must
SELECT status, string_agg(DISTINCT note, '|' ORDER BY note) FROM orders GROUP BY status;
-- @must
SELECT priority, array_agg(DISTINCT status ORDER BY status) FROM orders GROUP BY priority;
-- @must
SELECT status, count(DISTINCT customer_id) FROM orders GROUP BY status;
-- @must
SELECT status, count(*) FILTER (WHERE paid), count(*) FILTER (WHERE NOT paid) FROM orders GROUP BY status;
-- @must
SELECT note, count(*) FROM orders GROUP BY note;
-- @must
SELECT qty % 5, count(*) FROM orders GROUP BY qty % 5;
-- @must
SELECT weight > 50, count(*) FROM orders GROUP BY 1;
-- @must
SELECT discount, count(*), sum(qty) FROM orders GROUP BY discount;
-- @must
SELECT paid, priority, count(*), sum(weight) FROM orders GROUP BY paid, priority;
-- @must
SELECT ordered_on, count(*) FROM orders GROUP BY ordered_on;
-- @must
SELECT amount, count(*) FROM orders GROUP BY amount HAVING count(*) > 1;
-- @must
SELECT product_id, sum(qty), avg(price) FROM order_items GROUP BY product_id;
-- @must
SELECT order_id, count(*) FROM order_items GROUP BY order_id HAVING count(*) > 3;
-- @must
SELECT customer_id, order_id, sum(qty * price) FROM order_items GROUP BY customer_id, order_id;
-- @must
SELECT tier, avg(credit), min(signup) FROM customers GROUP BY tier;
-- @must
SELECT active, count(*), avg(score) FROM customers GROUP BY active;
-- @must
SELECT name, count(*) FROM customers GROUP BY name;
-- @must
SELECT length(name) AS len, count(*) FROM customers GROUP BY len;
-- @must
SELECT signup IS NULL, count(*) FROM customers GROUP BY signup IS NULL;
-- @must
SELECT extract(month FROM created_at) AS m, extract(year FROM created_at) AS y, count(*) FROM orders GROUP BY y, m;
-- @must
SELECT status, max(amount) - min(amount) AS spread FROM orders GROUP BY status;
-- @must
SELECT status, sum(qty * amount) FROM orders GROUP BY status;
-- @must
SELECT count(*) FROM orders GROUP BY status;
-- @must
SELECT status, count(*) + 1 FROM orders WHERE qty > 10 GROUP BY status;
-- @must
SELECT status, count(*) FROM orders WHERE customer_id IN (1, 2, 3) GROUP BY status;
-- @must
SELECT customer_id, count(*) FROM orders WHERE customer_id IN (1, 2, 3) GROUP BY customer_id;
-- @must
SELECT customer_id, status, count(*) FROM orders GROUP BY customer_id, status HAVING count(*) > 20;
-- @must
SELECT priority, count(*) FROM orders GROUP BY priority HAVING priority > 2;
-- @must
SELECT status, count(*) FROM orders GROUP BY ROLLUP (status);
-- @must
SELECT status, paid, count(*) FROM orders GROUP BY GROUPING SETS ((status), (paid));
-- @must
SELECT true AS t, count(*) FROM orders GROUP BY 1;
-- @must
SELECT status, percentile_disc(0.5) WITHIN GROUP (ORDER BY qty) FROM orders GROUP BY status;

-- GROUP BY a name that is an alias and a column: PostgreSQL groups by the column
-- @ordered
-- @pg-only
-- @must
SELECT tier AS id, count(*) FROM customers GROUP BY id ORDER BY id LIMIT 5;
-- @pg-only
-- @must
SELECT upper(name) AS id, count(*), max(credit) FROM customers GROUP BY id HAVING count(*) = 1;
-- @must
SELECT lower(name) AS name, count(*) FROM customers GROUP BY name;
-- @must
SELECT upper(status) AS status, sum(qty) FROM orders GROUP BY status HAVING count(*) > 1;
-- Found by a differential fuzzer: a LIMIT, OFFSET or DISTINCT ON inside an
-- IN subquery holds over all shards' rows (not each shard's); GROUP BY ();
-- a LIMIT near bigint's end; stddev of NaN and infinities.
-- @must
SELECT count(*) FROM customers c WHERE c.id IN (SELECT customer_id FROM orders ORDER BY id LIMIT 5);
-- @must
SELECT c.id FROM customers c WHERE c.id IN (SELECT customer_id FROM orders ORDER BY id LIMIT 1);
-- @must
SELECT count(*) FROM customers c WHERE c.id IN (SELECT customer_id FROM orders ORDER BY id OFFSET 2000);
-- @must
-- @pg-only
SELECT count(*) FROM customers c WHERE c.id IN (SELECT DISTINCT ON (status) customer_id FROM orders ORDER BY status, id);
-- @must
SELECT count(*) FROM customers c WHERE c.id NOT IN (SELECT customer_id FROM orders ORDER BY id DESC LIMIT 7);
-- @must
SELECT count(*) FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id ORDER BY o.id LIMIT 1);
SELECT count(*) FROM orders GROUP BY ();
SELECT 1 AS one FROM orders GROUP BY ();
SELECT max(amount), count(*) FROM orders WHERE qty < -100 GROUP BY ();
SELECT status, count(*) FROM orders GROUP BY (), status;
SELECT count(*) FROM orders GROUP BY () HAVING count(*) > 100000;
-- @must @ordered
SELECT id FROM customers ORDER BY id LIMIT 9223372036854775807 OFFSET 1;
-- @pg-only
SELECT stddev(CASE WHEN id = 1 THEN 'NaN'::float8 ELSE 1 END), stddev_pop(CASE WHEN id = 1 THEN 'NaN'::numeric ELSE id END) FROM customers;
-- @pg-only
SELECT stddev(CASE WHEN id = 1 THEN 'Infinity'::float8 ELSE 1 END) FROM customers;
-- @must
-- @pg-only
SELECT avg('-0'::float8 + id * 0)::text, avg(CASE WHEN id % 2 = 0 THEN '-0'::float8 END)::text FROM customers;
-- ORDER BY the name an unaliased item gets (not the table's column); the
-- names unaliased items get in two-step aggregations.
-- @must @ordered
SELECT qty::text, id FROM orders WHERE qty < 5 ORDER BY qty, id;
-- @must @ordered
-- @pg-only
SELECT last_seen::date, email, id FROM customers WHERE id IN (10, 133, 7) ORDER BY last_seen DESC, 3;
-- @must @ordered
SELECT lower(name), id FROM customers ORDER BY lower, id LIMIT 5;
-- @must
SELECT DISTINCT substr(name, 1, 2) FROM customers;
-- @must
-- @pg-only
SELECT count(*), '{1}'::int[] FROM customers;
-- @must
-- @pg-only
SELECT (array_agg(id ORDER BY id))[1] FROM customers;
-- @ordered
-- @pg-only
SELECT *, qty::text FROM orders ORDER BY qty, id LIMIT 3;
-- ------------------------------------------------------- DISTINCT, DISTINCT ON
-- @must
SELECT DISTINCT status FROM orders;
-- @must
SELECT DISTINCT region, tier FROM customers;
-- @must
SELECT DISTINCT lower(name) FROM customers;
-- @must
SELECT DISTINCT customer_id FROM orders;
-- @must
SELECT DISTINCT paid FROM orders;
-- @must
SELECT DISTINCT date_trunc('year', created_at) FROM orders;
-- @must
SELECT DISTINCT qty % 3 AS m FROM orders;
-- @must
SELECT DISTINCT discount FROM orders;
-- @must
SELECT DISTINCT weight FROM orders WHERE weight > 45;
-- @must
SELECT DISTINCT product_id FROM order_items;
-- @must
SELECT DISTINCT note, paid FROM orders;
-- @ordered
-- @must
SELECT DISTINCT status FROM orders ORDER BY status;
-- @ordered
-- @must
SELECT DISTINCT status FROM orders ORDER BY status DESC NULLS LAST LIMIT 3;
-- @ordered
-- @must
SELECT DISTINCT qty FROM orders ORDER BY qty LIMIT 10;
-- @ordered
-- @must
SELECT DISTINCT priority FROM orders ORDER BY 1 NULLS FIRST;
-- @ordered
-- @must
SELECT DISTINCT region, tier FROM customers ORDER BY region, tier;
-- @ordered
-- @must
SELECT DISTINCT ON (status) status, id, amount FROM orders ORDER BY status, id;
-- @ordered
-- @must
SELECT DISTINCT ON (customer_id) customer_id, id, amount FROM orders ORDER BY customer_id, amount DESC NULLS LAST, id;
-- @ordered
-- @must
SELECT DISTINCT ON (region) region, id, name FROM customers ORDER BY region, credit DESC NULLS LAST, id;
-- @ordered
-- @must
SELECT DISTINCT ON (priority) priority, created_at, id FROM orders ORDER BY priority NULLS FIRST, created_at DESC NULLS LAST, id;
-- @ordered
-- @must
SELECT DISTINCT ON (paid) paid, weight, id FROM orders ORDER BY paid, weight, id;
-- @ordered
-- @must
SELECT DISTINCT ON (customer_id) customer_id, id FROM orders ORDER BY customer_id DESC, id LIMIT 10;
-- @ordered
-- @must
SELECT DISTINCT ON (order_id) order_id, line, qty FROM order_items ORDER BY order_id, qty DESC, line LIMIT 50;
-- DISTINCT ON by position, by alias, and spelled otherwise than its ORDER
-- BY (PostgreSQL reads DISTINCT ON as ORDER BY: position, output name,
-- then expression).
-- @must
SELECT count(*) FROM (SELECT DISTINCT ON (1) status, id FROM orders) d;
-- @ordered
-- @must
SELECT DISTINCT ON (1) status, id FROM orders ORDER BY 1, 2;
-- @ordered
-- @must
SELECT DISTINCT ON (s) status AS s, id FROM orders ORDER BY s, id;
-- @ordered
-- @must
SELECT DISTINCT ON (status) status, id FROM orders ORDER BY orders.status, id;
-- @ordered
-- @must
SELECT DISTINCT ON (o.status) status, id FROM orders o ORDER BY status, o.id;
-- @ordered
-- @must
SELECT DISTINCT ON (qty) -qty AS qty, id FROM orders ORDER BY qty, id;
-- @ordered
-- @must
SELECT orders.qty, count(*) FROM orders GROUP BY orders.qty ORDER BY orders.qty NULLS FIRST;
-- @ordered
-- @must
SELECT -qty AS qty, count(*) FROM orders GROUP BY orders.qty ORDER BY 1 NULLS FIRST;
-- @must
SELECT count(*) FROM (SELECT DISTINCT status FROM orders) d;
-- @must
SELECT DISTINCT status FROM orders WHERE customer_id = 1;
-- @must
SELECT DISTINCT ON (status) status, id FROM orders WHERE customer_id = 2 ORDER BY status, id;
-- @must
SELECT DISTINCT c.region FROM customers c JOIN orders o ON o.customer_id = c.id;

-- ------------------------------------------------------ co-located joins
-- @must
SELECT c.id, c.name, o.id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 5;
-- @must
SELECT c.id, o.id FROM customers c JOIN orders o ON o.customer_id = c.id;
-- @must
SELECT c.id, o.id, o.status FROM customers c JOIN orders o ON c.id = o.customer_id WHERE c.region = 'EU';
-- @must
SELECT o.id, i.line, i.qty FROM orders o JOIN order_items i ON i.customer_id = o.customer_id AND i.order_id = o.id WHERE o.customer_id IN (3, 4);
-- @must
SELECT c.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.id IS NULL;
-- @must
SELECT c.name, o.id, i.line FROM customers c JOIN orders o ON o.customer_id = c.id JOIN order_items i ON i.customer_id = o.customer_id AND i.order_id = o.id WHERE i.qty = 10;
-- @must @ordered
SELECT c.id, o.id FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.id LIMIT 10;
-- @must @ordered
SELECT c.name, o.amount, o.id FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.amount DESC NULLS LAST, o.id LIMIT 10;
-- @must
SELECT c.id, o.id FROM customers c, orders o WHERE o.customer_id = c.id AND o.qty > 48;
-- @must
SELECT c.name, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name;
-- @must
SELECT c.id, count(o.id), sum(o.amount) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id;
-- @must
SELECT c.region, sum(i.qty * i.price) FROM customers c JOIN order_items i ON i.customer_id = c.id GROUP BY c.region;
-- @must
SELECT o.status, count(*) FROM orders o JOIN order_items i ON i.customer_id = o.customer_id AND i.order_id = o.id GROUP BY o.status;
-- @must
SELECT count(*) FROM customers c JOIN orders o ON o.customer_id = c.id;
-- @must
SELECT c.tier, avg(o.weight), count(DISTINCT c.id) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.tier;
-- @must
SELECT c.active, sum(o.qty) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.paid GROUP BY c.active HAVING sum(o.qty) > 10;
-- @ordered
-- @must
SELECT c.id, c.name, count(*) AS n FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name ORDER BY n DESC, c.id LIMIT 5;
-- @must
SELECT c.id, sum(o.amount) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id IN (1, 2, 3) GROUP BY c.id;
-- @must
SELECT c.id, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 1 GROUP BY c.id;

-- ---------------------------------------------------- the reference table
-- @must
SELECT i.order_id, i.line, p.name FROM order_items i JOIN products p ON p.id = i.product_id WHERE i.customer_id = 9;
-- @must
SELECT i.customer_id, i.order_id, i.line, p.name FROM order_items i JOIN products p ON p.id = i.product_id;
-- @must
SELECT * FROM products WHERE category = 'Tools';
-- @must
SELECT p.name, i.qty FROM products p JOIN order_items i ON i.product_id = p.id WHERE i.customer_id IN (1, 2) AND p.discontinued;
-- @must
SELECT i.order_id, p.category FROM order_items i LEFT JOIN products p ON p.id = i.product_id WHERE p.id IS NULL;
-- @must @ordered
SELECT i.order_id, i.line, p.price FROM order_items i JOIN products p ON p.id = i.product_id ORDER BY p.price DESC, i.order_id, i.line LIMIT 20;
-- @must
SELECT count(*) FROM products;
-- @must
SELECT category, count(*) FROM products GROUP BY category;
-- @must
SELECT DISTINCT category FROM products;
-- @must
SELECT id, name, rank() OVER (ORDER BY price DESC, id) FROM products;
-- @must
SELECT * FROM products WHERE id IN (SELECT id FROM products WHERE weight > 2);
-- @must
SELECT p.category, sum(i.qty) FROM order_items i JOIN products p ON p.id = i.product_id GROUP BY p.category;
-- @ordered
-- @must
SELECT p.name, count(*) FROM products p JOIN order_items i ON i.product_id = p.id GROUP BY p.id, p.name ORDER BY count(*) DESC, p.id LIMIT 5;
-- @must
SELECT sum(i.qty * p.price) FROM order_items i JOIN products p ON p.id = i.product_id;
-- @must
SELECT c.region, p.category, count(*) FROM customers c JOIN order_items i ON i.customer_id = c.id JOIN products p ON p.id = i.product_id GROUP BY c.region, p.category;

-- ------------------------------------------------ subqueries, CTEs, set operations
-- @must
SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.amount > 9000);
SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE qty = 50);
-- @must
SELECT id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id);
-- @must
SELECT s.status, s.n FROM (SELECT status, count(*) n FROM orders GROUP BY status) s WHERE s.n > 10;
-- @must
SELECT * FROM (SELECT customer_id, sum(amount) s FROM orders GROUP BY customer_id) t WHERE s > 10000;
-- @must
SELECT * FROM (SELECT id, amount FROM orders WHERE qty > 45) t;
SELECT * FROM customers WHERE id = 3 AND EXISTS (SELECT 1 FROM orders WHERE customer_id = 3);
-- @must
SELECT (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c WHERE c.id = 4;
-- @must
SELECT id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n FROM customers c;
SELECT * FROM orders WHERE customer_id = 6 AND amount > (SELECT avg(amount) FROM orders WHERE customer_id = 6);
SELECT * FROM orders WHERE amount > (SELECT avg(amount) FROM orders);
-- @must
SELECT * FROM orders WHERE customer_id = 2 AND id IN (SELECT order_id FROM order_items WHERE customer_id = 2 AND qty > 8);
-- @must
WITH big AS (SELECT * FROM orders WHERE amount > 9000) SELECT id, amount FROM big;
-- @must
WITH t AS (SELECT customer_id, count(*) n FROM orders GROUP BY customer_id) SELECT max(n) FROM t;
-- @must
WITH t AS (SELECT * FROM orders WHERE customer_id = 8) SELECT count(*) FROM t;
-- @must
SELECT id FROM customers WHERE id < 10 UNION ALL SELECT id FROM customers WHERE id < 5;
SELECT id FROM orders WHERE customer_id = 1 UNION SELECT id FROM orders WHERE customer_id = 1;
-- @must
SELECT * FROM customers c WHERE c.id IN (1, 2) AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id);
-- @must
SELECT * FROM (SELECT DISTINCT customer_id FROM orders) t WHERE customer_id < 10;
-- LATERAL subqueries tied to the outer row's shard key
-- @must @ordered
SELECT c.id, x.n, x.s FROM customers c CROSS JOIN LATERAL (SELECT count(*) AS n, sum(o.qty) AS s FROM orders o WHERE o.customer_id = c.id) x ORDER BY x.n DESC, c.id LIMIT 15;
-- @must
SELECT c.id, x.id, x.amount FROM customers c LEFT JOIN LATERAL (SELECT o.id, o.amount FROM orders o WHERE o.customer_id = c.id ORDER BY o.amount DESC NULLS LAST, o.id LIMIT 2) x ON true WHERE c.id IN (1, 2, 3, 5, 8, 13, 21);
-- @must
SELECT x.n, count(*) FROM customers c, LATERAL (SELECT count(*) AS n FROM orders o WHERE o.customer_id = c.id AND o.status = 'shipped') x GROUP BY x.n;
-- @must
SELECT o.id, o.customer_id, y.lines FROM orders o, LATERAL (SELECT count(*) AS lines, max(i.qty) AS top FROM order_items i WHERE i.customer_id = o.customer_id AND i.order_id = o.id) y WHERE y.top > 5;
-- @must
SELECT c.region, sum(x.total) FROM customers c JOIN LATERAL (SELECT sum(o.amount) AS total FROM orders o WHERE o.customer_id = c.id) x ON true GROUP BY c.region;
-- BETWEEN SYMMETRIC (expanded as PostgreSQL does)
-- @must
SELECT customer_id, id FROM orders WHERE qty BETWEEN SYMMETRIC 30 AND 10 AND amount NOT BETWEEN SYMMETRIC 500 AND 100;
-- @must
SELECT status, count(*), sum(qty) FROM orders WHERE qty NOT BETWEEN SYMMETRIC 40 AND 5 GROUP BY status;
-- @must @ordered
SELECT id, qty BETWEEN SYMMETRIC 20 AND 10 AS inside FROM orders WHERE customer_id BETWEEN SYMMETRIC 9 AND 3 ORDER BY customer_id, id;
-- joins off the shard key: one table runs first through the router
-- @must
SELECT count(*) FROM orders o JOIN order_items i ON i.order_id = o.id;
-- @must
SELECT o.status, sum(i.qty), count(DISTINCT i.product_id) FROM orders o JOIN order_items i ON i.order_id = o.id WHERE i.qty > 3 GROUP BY o.status;
-- @must @ordered
SELECT c.id, o.id FROM customers c JOIN orders o ON o.priority = c.tier WHERE c.id < 5 ORDER BY c.id, o.id;
-- @must
SELECT o.id FROM orders o JOIN customers c ON c.tier = o.priority WHERE o.customer_id = 1;
-- @must
SELECT c.id, o.id FROM customers c JOIN orders o ON o.customer_id = c.id + 1 WHERE c.id = 1;
-- @must
SELECT c1.id, c2.id FROM customers c1, customers c2 WHERE c1.id = 1 AND c2.id = 2;
-- @must
SELECT c.id, o.id FROM customers c JOIN orders o USING (id) WHERE c.id = 1;
-- @must
SELECT p.id, count(i.qty) FROM products p LEFT JOIN order_items i ON i.product_id = p.id GROUP BY p.id;
-- @must
SELECT p.id, count(*) FROM products p LEFT JOIN order_items i ON i.product_id = p.id GROUP BY p.id;
-- @must
SELECT p.id FROM products p LEFT JOIN order_items i ON i.product_id = p.id WHERE i.qty IS NULL GROUP BY p.id;
-- @must
SELECT p.name, i.qty FROM order_items i RIGHT JOIN products p ON p.id = i.product_id;
-- @must @ordered
SELECT o.id, o2.id FROM orders o JOIN orders o2 ON o.id = o2.id + 1 WHERE o.qty = 3 ORDER BY o.id, o2.id;
-- @must
SELECT c.region, count(*) FROM orders o JOIN customers c ON c.id = o.qty GROUP BY c.region;
-- @must
SELECT * FROM orders o JOIN order_items i USING (customer_id) WHERE i.line = 1 AND o.qty = 7;
-- @must
SELECT count(*) FROM orders NATURAL JOIN order_items;
-- @must
SELECT count(DISTINCT (o.status, o.qty)), count(DISTINCT (o.paid, o.priority)) FROM orders o;
-- @must
SELECT o.status, count(DISTINCT ROW(o.qty, o.paid)) FROM orders o GROUP BY o.status;
-- @must @ordered
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 9 FROM g WHERE x < 60) SELECT g.x, o.id FROM g LEFT JOIN orders o ON o.customer_id = g.x ORDER BY g.x, o.id;
-- uncorrelated subqueries inside correlated ones run first
-- @must @ordered
SELECT c.id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.qty IN (SELECT c2.tier FROM customers c2 WHERE c2.id = 4)) ORDER BY c.id;
-- @must @ordered
SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id AND o.qty IN (SELECT i.qty FROM order_items i WHERE i.customer_id = 2 AND i.line = 1)) AS n FROM customers c ORDER BY c.id;
-- @must @ordered
SELECT c.id, x.n FROM customers c CROSS JOIN LATERAL (SELECT count(*) AS n FROM orders o WHERE o.customer_id = c.id AND o.amount > (SELECT avg(o2.amount) FROM orders o2)) x ORDER BY c.id;
-- correlated subqueries off the shard key: the subquery's table runs first
-- @must
SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id AND i.qty > 8);
-- @must
SELECT p.id, p.name FROM products p WHERE EXISTS (SELECT 1 FROM order_items i WHERE i.product_id = p.id);
-- @must
SELECT p.id, (SELECT count(*) FROM order_items i WHERE i.product_id = p.id) AS n FROM products p;
-- @must
SELECT c.id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.qty = c.tier);
-- @must
SELECT c.id, x.n FROM customers c, LATERAL (SELECT count(*) AS n FROM orders o WHERE o.id = c.id) x;
-- @must
SELECT p.id, x.n FROM products p, LATERAL (SELECT count(*) AS n FROM order_items i WHERE i.product_id = p.id) x;
-- subqueries run first inside subqueries run first
-- @must
SELECT count(*) FROM (SELECT o.paid, o.ordered_on FROM orders o EXCEPT ALL SELECT o.paid, o.ordered_on FROM orders o WHERE o.paid) u;
-- @must
SELECT t.status, count(*), sum(t.qty) FROM (SELECT o.status, i.qty FROM orders o JOIN order_items i ON i.order_id = o.id WHERE i.line = 1) t GROUP BY t.status;
-- @must
WITH j AS (SELECT c.region, o.qty FROM customers c JOIN orders o ON o.priority = c.tier) SELECT region, count(*), max(qty) FROM j GROUP BY region;
-- @must
SELECT x0, count(*) AS n FROM (SELECT c.signup FROM customers c EXCEPT ALL SELECT o.ordered_on FROM orders o WHERE o.qty > 10) u(x0) GROUP BY x0;
-- subqueries in FROM and WITH whose rows are partitioned across shards
-- @must
SELECT status, count(*), sum(amount) FROM (SELECT * FROM orders WHERE qty > 10) s GROUP BY status;
-- @must @ordered
SELECT x.c, x.id FROM (SELECT customer_id AS c, id FROM orders WHERE amount IS NULL) x ORDER BY x.c, x.id LIMIT 5;
-- @must
SELECT count(*), sum(q) FROM (SELECT o.id, i.qty AS q FROM orders o JOIN order_items i ON i.customer_id = o.customer_id AND i.order_id = o.id WHERE o.paid) j;
-- @must
SELECT count(*) FROM (SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM order_items i WHERE i.customer_id = o.customer_id AND i.qty > 9)) z;
-- @must
SELECT avg(n), max(n), min(n) FROM (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id HAVING count(*) > 2) g;
-- @must
SELECT count(DISTINCT status) FROM (SELECT status FROM orders WHERE customer_id IN (1, 2, 3, 4, 5)) s;
-- @must @ordered
WITH recent AS (SELECT customer_id, id, created_at FROM orders WHERE created_at IS NOT NULL) SELECT customer_id, id FROM recent ORDER BY created_at DESC, customer_id, id LIMIT 4;
-- @must
SELECT * FROM (SELECT c.id, c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n FROM customers c) t WHERE n > 3;
SELECT count(*) FROM (SELECT * FROM orders ORDER BY id LIMIT 5) s;
-- @must
SELECT count(*) FROM (SELECT * FROM orders UNION ALL SELECT * FROM orders) u;
-- @must
SELECT id, amount FROM orders WHERE qty > 45 UNION ALL SELECT order_id, price FROM order_items WHERE qty = 1 UNION ALL SELECT id, credit FROM customers WHERE tier = 2;
-- @must
SELECT status, count(*) FROM (SELECT status FROM orders WHERE paid UNION ALL SELECT status FROM orders WHERE NOT paid) u GROUP BY status;
SELECT id FROM customers WHERE id < 5 UNION ALL SELECT id FROM products WHERE id < 3;
SELECT * FROM (SELECT * FROM orders WHERE qty > 48) o JOIN products p ON p.id = o.qty;
WITH a AS (SELECT * FROM orders), b AS (SELECT * FROM a WHERE qty > 5) SELECT count(*) FROM b;
-- @must
SELECT 1 AS one, 'two' AS two;
-- @must
SELECT 1 + 1 AS sum, now() IS NOT NULL AS has_time;

-- --------------------------------------------------------- window functions
SELECT id, row_number() OVER (ORDER BY id) FROM orders;
SELECT id, rank() OVER (PARTITION BY customer_id ORDER BY amount) FROM orders;
SELECT customer_id, id, sum(amount) OVER (PARTITION BY customer_id) FROM orders;
SELECT id, lag(amount) OVER (ORDER BY id) FROM orders WHERE customer_id IN (1, 2);
SELECT id, count(*) OVER () FROM customers;
-- @ordered
-- @must
SELECT customer_id, id, sum(amount) OVER (PARTITION BY customer_id ORDER BY id) FROM orders WHERE customer_id = 1 ORDER BY id;
-- @ordered
-- @must
SELECT id, row_number() OVER (ORDER BY amount DESC NULLS LAST, id) FROM orders WHERE customer_id = 2 ORDER BY id;
-- @must
SELECT id, dense_rank() OVER (ORDER BY status) FROM orders WHERE customer_id = 3;

-- --------------------------------------------- cross-shard joins not on the key
SELECT o.id, o2.id FROM orders o JOIN orders o2 ON o.id = o2.id + 1 WHERE o.qty = 3;
SELECT c.id, o.id FROM customers c JOIN orders o ON o.priority = c.tier WHERE c.id < 5;
SELECT o.id FROM orders o JOIN customers c ON c.tier = o.priority WHERE o.customer_id = 1;
SELECT count(*) FROM orders o JOIN order_items i ON i.order_id = o.id;
SELECT c.id, o.id FROM customers c JOIN orders o ON o.customer_id = c.id + 1 WHERE c.id = 1;
SELECT c1.id, c2.id FROM customers c1, customers c2 WHERE c1.id = 1 AND c2.id = 2;
SELECT c.id, o.id FROM customers c JOIN orders o USING (id) WHERE c.id = 1;

-- ------------------------------------------------ queries filtered to one shard
-- @must
SELECT count(*) FROM orders WHERE customer_id = 1;
-- @must
SELECT sum(amount), avg(weight), max(created_at) FROM orders WHERE customer_id = 1;
-- @must
SELECT status, count(*) FROM orders WHERE customer_id = 2 GROUP BY status;
-- @must
SELECT DISTINCT status FROM orders WHERE customer_id = 3;
-- @must
SELECT stddev(amount), string_agg(status, ',' ORDER BY id) FROM orders WHERE customer_id = 4;
-- @must @ordered
SELECT id, amount FROM orders WHERE customer_id = 1 ORDER BY amount DESC NULLS LAST, id LIMIT 10 OFFSET 3;
-- @must
SELECT customer_id, count(*), sum(qty) FROM order_items WHERE customer_id = 1 GROUP BY customer_id;
-- @must
SELECT count(DISTINCT product_id), array_agg(DISTINCT product_id ORDER BY product_id) FROM order_items WHERE customer_id = 2;
-- @must
SELECT c.name, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 3 GROUP BY c.name;
-- @must
SELECT o.status, sum(i.qty) FROM orders o JOIN order_items i ON i.customer_id = o.customer_id AND i.order_id = o.id WHERE o.customer_id = 1 GROUP BY o.status;
-- @must
SELECT id, rank() OVER (ORDER BY amount DESC NULLS LAST, id) FROM orders WHERE customer_id = 3;
-- @must
SELECT date_trunc('month', created_at), count(*) FROM orders WHERE customer_id = 1 GROUP BY 1 HAVING count(*) > 3;
-- @must
SELECT bool_and(paid), bool_or(paid), every(qty > 0) FROM orders WHERE customer_id = 5;
SELECT * FROM (SELECT status, count(*) AS n FROM orders WHERE customer_id = 1 GROUP BY status) t WHERE n > 10;
-- @must
SELECT count(*) FILTER (WHERE paid), percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM orders WHERE customer_id = 1;
-- @must
SELECT DISTINCT ON (status) status, id FROM orders WHERE customer_id = 1 ORDER BY status, amount NULLS LAST, id;
SELECT id FROM orders WHERE customer_id = 1 UNION SELECT order_id FROM order_items WHERE customer_id = 1;
WITH t AS (SELECT * FROM orders WHERE customer_id = 2) SELECT status, count(*) FROM t GROUP BY status;
-- @must
SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c WHERE c.id = 2;
-- @must
SELECT min(name), max(email) FROM customers WHERE id = 10;

-- -------------------------------------------- errors (same SQLSTATE expected)
-- @must
SELECT no_such_column FROM orders;
-- @must
SELECT * FROM no_such_table;
-- @must
SELECT 1 / (qty - qty) FROM orders WHERE customer_id = 1;
-- @must
SELECT 1 / (qty - qty) FROM orders;
-- @must
SELECT sum(status) FROM orders;
-- @pg-only
-- @must
SELECT status, count(*) FROM orders GROUP BY priority;
-- @must
SELECT id FROM orders WHERE customer_id = 'abc';
-- @must
SELECT id FROM orders ORDER BY 9;
-- @must
SELECT id FROM orders WHERE customer_id = 1 ORDER BY 9;

-- Groups keyed by the nullable side of an outer join span shards (NULL).
-- @must
SELECT o.customer_id, count(*) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY o.customer_id;
-- @must
SELECT DISTINCT o.customer_id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id;
-- GROUP BY constants only: no rows in, no groups out.
-- @must
SELECT 1 AS one, count(*) FROM orders WHERE qty > 100000 GROUP BY 1;
-- @must
SELECT true AS t, sum(qty) FROM orders GROUP BY 1;
-- ---------------------------------------------------------------- set operations across shards
-- @must
SELECT id FROM customers WHERE id < 10 UNION SELECT customer_id FROM orders WHERE qty = 50;
-- @must
SELECT customer_id FROM orders INTERSECT SELECT id FROM customers;
-- @must
SELECT id FROM customers EXCEPT SELECT customer_id FROM orders;
-- @must @ordered
SELECT id FROM orders WHERE qty > 48 UNION ALL SELECT id FROM orders WHERE qty < 2 ORDER BY 1 LIMIT 5;
-- @must
SELECT status FROM orders UNION SELECT status FROM orders WHERE paid;
-- @must
SELECT status, priority FROM orders WHERE qty = 7 UNION ALL SELECT region, tier FROM customers UNION SELECT region, tier FROM customers WHERE active;
SELECT region, tier FROM customers UNION SELECT region, tier FROM customers WHERE active UNION ALL SELECT status, priority FROM orders WHERE qty = 7;
-- @must @ordered
SELECT customer_id, amount AS a FROM orders WHERE qty > 45 UNION ALL SELECT customer_id, price FROM order_items WHERE qty = 1 ORDER BY a DESC NULLS LAST, customer_id LIMIT 12;
-- @must @ordered
SELECT name, upper(name) FROM customers WHERE tier = 1 UNION SELECT name, upper(name) FROM customers WHERE tier = 2 ORDER BY 2 DESC NULLS FIRST, 1 LIMIT 7 OFFSET 3;
-- @must
SELECT region FROM customers INTERSECT SELECT region FROM customers WHERE NOT active;
-- @must
SELECT tier, region FROM customers EXCEPT SELECT priority, status FROM orders;
-- @must
SELECT signup FROM customers WHERE signup IS NOT NULL EXCEPT SELECT ordered_on FROM orders ORDER BY 1 DESC LIMIT 4;
-- @must
SELECT credit * 2 FROM customers WHERE id < 30 UNION SELECT amount FROM orders WHERE customer_id < 5;
-- @must @ordered
SELECT id, name FROM customers ORDER BY id OFFSET 5 ROWS FETCH FIRST 4 ROWS ONLY;
-- @must @ordered
SELECT id FROM orders ORDER BY id, customer_id FETCH NEXT ROW ONLY;
SELECT a FROM (SELECT id AS a FROM orders) s UNION SELECT id FROM customers LIMIT ALL;
SELECT id FROM customers EXCEPT ALL SELECT customer_id FROM orders;
SELECT id FROM customers INTERSECT SELECT customer_id FROM orders INTERSECT SELECT customer_id FROM order_items;
SELECT id FROM orders ORDER BY qty FETCH FIRST 3 ROWS WITH TIES;
SELECT id, qty FROM orders ORDER BY qty DESC NULLS FIRST FETCH FIRST 5 ROWS WITH TIES;
SELECT status, amount FROM orders ORDER BY status, amount FETCH FIRST 1 ROW WITH TIES;
SELECT qty FROM orders ORDER BY qty FETCH FIRST 0 ROWS WITH TIES;
SELECT name FROM customers ORDER BY name FETCH FIRST 4 ROWS WITH TIES;
SELECT status, count(*) FROM orders GROUP BY status ORDER BY count(*) DESC FETCH FIRST 1 ROW WITH TIES;
SELECT DISTINCT priority FROM orders ORDER BY priority FETCH FIRST 2 ROWS WITH TIES;
SELECT customer_id, id FROM orders WHERE customer_id IN (1, 2, 3, 50) ORDER BY customer_id DESC FETCH FIRST 2 ROWS WITH TIES;
SELECT * FROM customers WHERE id < 5 UNION SELECT * FROM customers WHERE id > 99990;
-- ---------------------------------------------------------------- windows partitioned by the shard key
-- @must
SELECT customer_id, id, sum(amount) OVER (PARTITION BY customer_id) FROM orders;
-- @must @ordered
SELECT customer_id, id, row_number() OVER (PARTITION BY customer_id ORDER BY amount DESC NULLS LAST, id) AS rn FROM orders ORDER BY customer_id, rn LIMIT 30;
-- @must
SELECT c.id, o.id, rank() OVER (PARTITION BY c.id ORDER BY o.amount) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.tier = 1;
-- @must
SELECT customer_id, count(*), sum(count(*)) OVER (PARTITION BY customer_id) FROM orders GROUP BY customer_id;
-- @must @ordered
SELECT customer_id, id, lag(id) OVER w, first_value(amount) OVER w FROM orders WHERE customer_id IN (3, 4, 5, 6) WINDOW w AS (PARTITION BY customer_id ORDER BY id) ORDER BY customer_id, id;
-- @must
SELECT customer_id, order_id, line, sum(qty) OVER (PARTITION BY customer_id, order_id ORDER BY line) FROM order_items WHERE qty > 3;
SELECT c.id, count(o.id) OVER (PARTITION BY o.customer_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id;
-- ---------------------------------------------------------------- queries over a cross-shard aggregate
-- @must @ordered
WITH t AS (SELECT status, sum(amount) AS total, count(*) AS n FROM orders GROUP BY status) SELECT status, total, n, rank() OVER (ORDER BY n DESC, status) FROM t ORDER BY n DESC, status;
-- @must
WITH t AS (SELECT qty, count(*) AS n FROM orders GROUP BY qty) SELECT qty FROM t WHERE n = (SELECT max(n) FROM t);
-- @must
SELECT avg(c), max(c), count(*) FROM (SELECT region, count(DISTINCT tier) AS c FROM customers GROUP BY region) r;
-- @must @ordered
SELECT d.p, d.total FROM (SELECT priority AS p, sum(qty) AS total FROM orders WHERE paid GROUP BY priority HAVING count(*) > 3) d ORDER BY d.total DESC NULLS LAST, d.p LIMIT 3;
-- @must
SELECT count(*), sum(x) FROM (SELECT DISTINCT customer_id % 7 AS x FROM order_items) s;
-- @must
SELECT * FROM generate_series(1, 3) g JOIN (SELECT priority, count(*) AS n FROM orders GROUP BY priority) p ON p.priority = g;
SELECT * FROM (SELECT qty, count(*) n FROM orders GROUP BY qty) s WHERE n > (SELECT count(*) FROM customers WHERE tier = 1);
-- ---------------------------------------------------------------- grouping sets across shards
-- @must
SELECT region, tier, count(*), sum(credit), grouping(region, tier) FROM customers GROUP BY CUBE (region, tier);
-- @must @ordered
SELECT status, priority, avg(qty), count(DISTINCT customer_id) FROM orders GROUP BY ROLLUP (status, priority) ORDER BY status NULLS FIRST, priority NULLS FIRST;
-- @must
SELECT customer_id % 3 AS m, paid, string_agg(id::text, ',' ORDER BY id) FROM orders WHERE customer_id < 9 GROUP BY GROUPING SETS ((m), (paid), ()) HAVING count(*) > 1;
-- @must
SELECT customer_id, count(*) FROM orders GROUP BY ROLLUP (customer_id);
-- @must
SELECT qty::text, 'x'::varchar FROM orders WHERE qty > 48 UNION SELECT region, 'y' FROM customers WHERE tier = 1;
-- @must
SELECT customer_id, count(*) FROM orders GROUP BY customer_id UNION SELECT id, tier FROM customers WHERE tier = 1;
WITH orders AS (SELECT 'a'::text AS status), t AS (SELECT status, count(*) FROM orders GROUP BY status) SELECT * FROM t;
WITH c AS (SELECT * FROM customers WHERE tier = 2), t AS (SELECT region, count(*) AS n FROM c GROUP BY region) SELECT * FROM t;
-- ---------------------------------------------------------------- built-in set-returning functions next to sharded tables
-- @must
SELECT o.id, g FROM orders o JOIN generate_series(1, 5) g ON o.qty = g;
-- @must
SELECT g, count(*), sum(o.amount) FROM orders o JOIN generate_series(1, 5) g ON o.qty = g GROUP BY g;
-- @must
SELECT o.id, e FROM orders o, jsonb_array_elements_text('["a","b"]') e WHERE o.customer_id = 3;
-- @must
SELECT c.id, g FROM customers c LEFT JOIN generate_series(1, 2) g ON g = c.tier WHERE c.id < 20;
SELECT g, count(o.id) FROM generate_series(1, 3) g LEFT JOIN orders o ON o.qty = g GROUP BY g;
-- ---------------------------------------------------------------- window functions across shards (computed by one shard over raw rows)
-- @must
SELECT id, row_number() OVER (ORDER BY id) FROM orders WHERE qty > 40;
-- @must @ordered
SELECT id, amount, rank() OVER (ORDER BY amount DESC NULLS LAST) AS r FROM orders WHERE qty < 5 ORDER BY r, id;
-- @must
SELECT id, lag(amount) OVER (ORDER BY id), lead(amount, 2, -1) OVER (ORDER BY id) FROM orders WHERE customer_id IN (1, 2, 3);
-- @must
SELECT id, count(*) OVER (), sum(credit) OVER (PARTITION BY region ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM customers WHERE tier < 3;
-- @must
SELECT status, count(*) AS n, rank() OVER (ORDER BY count(*) DESC, status) FROM orders GROUP BY status;
-- @must @ordered
SELECT customer_id, sum(amount) AS total, dense_rank() OVER (ORDER BY sum(amount) DESC NULLS LAST, customer_id) AS d FROM orders GROUP BY customer_id ORDER BY d LIMIT 10;
-- @must
SELECT DISTINCT status, count(*) OVER (PARTITION BY status) FROM orders;
-- @must
SELECT region, ntile(3) OVER (ORDER BY credit NULLS FIRST, id), first_value(name) OVER (PARTITION BY region ORDER BY id) FROM customers WHERE id < 60;
-- @must @ordered
SELECT id, percent_rank() OVER (ORDER BY qty, id) AS p FROM orders WHERE customer_id < 20 ORDER BY p DESC, id LIMIT 7;
-- @must
SELECT c.id, count(o.id) OVER (PARTITION BY o.customer_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE c.id < 30;
-- @must
SELECT o.id, sum(i.qty) OVER (ORDER BY o.id, i.line) FROM orders o JOIN order_items i ON i.customer_id = o.customer_id AND i.order_id = o.id WHERE o.qty > 45;

-- Subqueries in FROM and CTEs that only filter a sharded table join
-- co-located like the table itself.
SELECT count(*), sum(o.qty) FROM (SELECT * FROM customers WHERE region IS NOT NULL) c JOIN orders o ON o.customer_id = c.id;
-- @ordered
SELECT c.id, count(o.id) FROM (SELECT id, tier FROM customers WHERE id < 40) c LEFT JOIN (SELECT * FROM orders WHERE qty > 20) o ON o.customer_id = c.id GROUP BY c.id ORDER BY c.id;
-- @ordered
WITH c AS (SELECT * FROM customers WHERE tier = 2), o AS (SELECT * FROM orders WHERE paid) SELECT c.id, o.id FROM c JOIN o ON o.customer_id = c.id ORDER BY o.id LIMIT 20;
WITH c AS (SELECT * FROM customers WHERE active) SELECT count(*) FROM c a JOIN c b ON a.id = b.id;
-- @ordered
SELECT i.order_id, i.line, p.name FROM (SELECT * FROM order_items WHERE qty > 8) i JOIN products p ON p.id = i.product_id ORDER BY 1, 2;
SELECT count(*) FROM (SELECT customer_id FROM orders WHERE qty > 5) o RIGHT JOIN customers c ON o.customer_id = c.id;
SELECT count(*) FROM (SELECT id AS cid FROM customers) c JOIN orders o ON o.customer_id = c.cid;
SELECT count(*) FROM products p LEFT JOIN (SELECT * FROM orders WHERE qty > 3) o ON o.qty = p.id;

-- Sort keys of interval, time with time zone and money type: intervals
-- order by their length (a month is 30 days: '1 mon' ties '30 days').
-- @must @ordered
SELECT customer_id, id, created_at - timestamp '2024-01-01' AS age FROM orders ORDER BY age DESC NULLS LAST, customer_id, id LIMIT 15;
-- @must @ordered
SELECT customer_id, id FROM orders ORDER BY (qty % 3) * interval '1 mon' + (qty % 5) * interval '30 days' - (qty % 7) * interval '1 day', customer_id DESC, id LIMIT 25;
-- @must @ordered
SELECT id, (qty % 4) * interval '1 mon' + (priority % 3) * interval '30 days' AS span, customer_id FROM orders WHERE customer_id < 30 ORDER BY span, customer_id, id;
-- @must @ordered
SELECT customer_id, id, amount::money AS m FROM orders ORDER BY m NULLS FIRST, customer_id, id LIMIT 20;
-- @must @ordered
SELECT customer_id, id FROM orders ORDER BY (time with time zone '12:00:00+00' + (qty % 24) * interval '1 hour') AT TIME ZONE 'America/New_York', customer_id, id LIMIT 20;

-- A reference table LEFT JOINed to sharded tables (each shard adds
-- NULL-extended rows for products it has no items of): answered when
-- the grouping is by reference columns and every aggregate skips NULLs of
-- the sharded side, or when WHERE makes the join an inner one.
-- @must @ordered
SELECT p.id, p.name, COUNT(i.order_id) AS n FROM products p LEFT OUTER JOIN order_items i ON (p.id = i.product_id) GROUP BY p.id, p.name ORDER BY n DESC, p.id;
-- @must
SELECT p.category, sum(i.qty), max(i.price), min(i.qty), avg(i.qty), count(DISTINCT i.customer_id) FROM products p LEFT JOIN order_items i ON i.product_id = p.id GROUP BY p.category;
-- @must
SELECT count(i.qty), sum(i.qty * p.price), max(i.customer_id) FROM products p LEFT JOIN order_items i ON i.product_id = p.id;
-- @must
SELECT DISTINCT p.category FROM products p LEFT JOIN order_items i ON i.product_id = p.id AND i.qty > 8;
-- @must @ordered
SELECT p.id, string_agg(i.qty::text, ',' ORDER BY i.qty::text) FROM products p LEFT JOIN order_items i ON i.product_id = p.id AND i.customer_id < 20 GROUP BY p.id ORDER BY p.id;
-- @must @ordered
SELECT p.id, count(i.qty) FROM products p LEFT JOIN order_items i ON i.product_id = p.id WHERE p.price > 10 GROUP BY p.id HAVING count(i.qty) > 3 ORDER BY p.id;
-- @must
SELECT p.name, i.qty FROM products p LEFT JOIN order_items i ON i.product_id = p.id WHERE i.qty > 5;
-- @must
SELECT p.id, count(o.id), sum(o.amount), bool_or(o.paid) FROM products p LEFT JOIN order_items i ON i.product_id = p.id LEFT JOIN orders o ON o.customer_id = i.customer_id AND o.id = i.order_id GROUP BY p.id;
-- @must @ordered
SELECT p.category, round(stddev(i.qty), 6), count(i.price) IS NOT NULL FROM products p LEFT JOIN order_items i ON i.product_id = p.id GROUP BY p.category ORDER BY p.category NULLS FIRST LIMIT 3;
SELECT p.id, count(*) FROM products p LEFT JOIN order_items i ON i.product_id = p.id GROUP BY p.id;
SELECT p.id FROM products p LEFT JOIN order_items i ON i.product_id = p.id WHERE i.qty IS NULL GROUP BY p.id;
SELECT p.id, i.qty FROM products p LEFT JOIN order_items i ON i.product_id = p.id;

-- A subquery in FROM that needs the router (an ORM's eager load of a
-- page), joined to a table on its shard key: the subquery runs first, its
-- rows go to the shards that own their keys.
-- @must @ordered
SELECT anon_1.customers_id, anon_1.customers_name, o.id, o.amount FROM (SELECT customers.id AS customers_id, customers.name AS customers_name FROM customers ORDER BY customers.id LIMIT 10) AS anon_1 LEFT OUTER JOIN orders AS o ON anon_1.customers_id = o.customer_id ORDER BY anon_1.customers_id, o.id;
-- @must
SELECT "C".*, "o"."id" AS "o.id", "o"."status" AS "o.status" FROM (SELECT "C"."id", "C"."name", "C"."credit" FROM "customers" AS "C" ORDER BY "C"."id" DESC LIMIT 7) AS "C" LEFT OUTER JOIN "orders" AS "o" ON "C"."id" = "o"."customer_id";
-- @must
SELECT c.id, count(o.id), sum(o.amount), max(o.created_at) FROM (SELECT id FROM customers ORDER BY score DESC NULLS LAST, id LIMIT 15) c JOIN orders o ON o.customer_id = c.id GROUP BY c.id;
-- @must
SELECT c.id, c.name, i.line, i.qty FROM (SELECT id, name FROM customers WHERE active ORDER BY id DESC LIMIT 5 OFFSET 3) c LEFT JOIN order_items i ON i.customer_id = c.id;
-- @must @ordered
SELECT t.customer_id, t.n, c.name FROM (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id ORDER BY n DESC, customer_id LIMIT 5) t JOIN customers c ON c.id = t.customer_id ORDER BY t.n DESC, t.customer_id;
-- @must @ordered
SELECT c.name, c.id, o.id AS order_id FROM (SELECT id, name, email, signup, last_seen FROM customers ORDER BY name NULLS FIRST, id LIMIT 8) c LEFT JOIN orders o ON o.customer_id = c.id ORDER BY c.name NULLS FIRST, c.id, o.id LIMIT 30;
-- @must
SELECT count(*), count(o.id) FROM (SELECT id FROM customers ORDER BY id LIMIT 0) c LEFT JOIN orders o ON o.customer_id = c.id;
-- @must @ordered
SELECT c.id, o.id FROM (SELECT DISTINCT customer_id AS id FROM order_items WHERE qty > 5 ORDER BY 1 LIMIT 6) c JOIN orders o ON o.customer_id = c.id WHERE o.qty > 2 ORDER BY 1, 2;
-- ... and joined to no other sharded table: all its rows on one shard,
-- where the statement runs.
-- @must
SELECT s.status, count(*), sum(s.amount) FROM (SELECT status, amount FROM orders ORDER BY amount DESC NULLS LAST, customer_id, id LIMIT 50) s GROUP BY s.status;
-- @must
SELECT s.id, p.name FROM (SELECT id, qty FROM orders ORDER BY id, customer_id LIMIT 10) s JOIN products p ON p.id = s.qty;
-- @must
SELECT max(x.n), min(x.customer_id) FROM (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id ORDER BY 2 DESC, 1 LIMIT 3) x;
-- @must @ordered
SELECT g, s.id FROM generate_series(1, 3) g LEFT JOIN (SELECT id FROM customers ORDER BY id LIMIT 2) s ON s.id = g ORDER BY g;
-- The first CTE over sharded tables of a statement refused with it runs
-- first the same way: placed by the key it is joined on, or on every
-- shard as a reference table's rows.
-- @must @ordered
WITH a AS (SELECT customer_id, count(*) AS n, sum(qty) AS m FROM orders GROUP BY customer_id), b AS (SELECT a.customer_id FROM a WHERE a.m IS NOT NULL AND a.n > 6) SELECT c.id, c.region FROM customers c WHERE c.id IN (SELECT b.customer_id FROM b) ORDER BY c.id;
-- @must @ordered
WITH t AS (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id ORDER BY n DESC, customer_id LIMIT 5) SELECT c.name, t.n FROM t JOIN customers c ON c.id = t.customer_id ORDER BY t.n DESC, c.id;
-- @must
WITH top AS MATERIALIZED (SELECT id FROM customers ORDER BY score DESC NULLS LAST, id LIMIT 10) SELECT o.customer_id, count(*) FROM orders o JOIN top ON top.id = o.customer_id GROUP BY o.customer_id;
-- @must
WITH s AS (SELECT status, count(*) AS n FROM orders GROUP BY status) SELECT s.status, s.n, p.name FROM s JOIN products p ON p.id = s.n % 10;
-- @must
WITH v (lo) AS (VALUES (3)), big (k, total) AS (SELECT customer_id, sum(qty) FROM order_items WHERE qty > (SELECT lo FROM v) GROUP BY customer_id) SELECT big.k, big.total, c.tier FROM big LEFT JOIN customers c ON c.id = big.k WHERE big.total > 20;
-- @must
SELECT o.customer_id, o.id, t.q FROM (SELECT DISTINCT qty AS q FROM order_items WHERE qty > 8) t JOIN orders o ON o.qty = t.q;
-- The same with the reference table on the right of a RIGHT JOIN.
-- @must
SELECT p.category, count(i.qty), sum(i.price), count(DISTINCT i.order_id) FROM order_items i RIGHT JOIN products p ON p.id = i.product_id GROUP BY p.category;
-- @must
SELECT p.name, i.qty FROM order_items i RIGHT OUTER JOIN products p ON p.id = i.product_id WHERE i.customer_id IN (1, 2, 3, 40);
SELECT p.name, i.qty FROM order_items i RIGHT JOIN products p ON p.id = i.product_id;
-- Set operations the merge does not do: their branches over sharded
-- tables run first, the set operation on one shard.
-- @must @ordered
SELECT customer_id FROM orders WHERE qty > 40 INTERSECT ALL SELECT customer_id FROM order_items WHERE qty > 8 ORDER BY 1;
-- @must @ordered
SELECT status, qty FROM orders EXCEPT ALL SELECT status, qty FROM orders WHERE paid ORDER BY 1 NULLS FIRST, 2 NULLS FIRST LIMIT 20;
-- @must
SELECT id FROM customers WHERE tier = 1 UNION SELECT customer_id FROM orders WHERE qty = 3 EXCEPT SELECT id FROM products;
-- @must
SELECT * FROM customers WHERE id < 5 UNION SELECT * FROM customers WHERE id > 99990;
-- @must @ordered
(SELECT id, name FROM customers ORDER BY id DESC LIMIT 3) UNION ALL (SELECT id, name FROM products ORDER BY id LIMIT 2) ORDER BY 1, 2;
-- TypeORM's paging with relations: DISTINCT over a FROM subquery, ordered
-- by the column's bare name.
-- @must @ordered
SELECT DISTINCT d.cid AS x FROM (SELECT customer_id AS cid FROM orders) d ORDER BY cid LIMIT 3;
-- @must @ordered
SELECT DISTINCT "distinctAlias"."C_id" AS "ids_C_id" FROM (SELECT "C"."id" AS "C_id", "o"."id" AS "o_id" FROM "customers" "C" LEFT JOIN "orders" "o" ON "o"."customer_id" = "C"."id") "distinctAlias" ORDER BY "C_id" ASC LIMIT 5 OFFSET 2;
-- Subqueries over reference tables only run whole on each shard, whatever
-- they aggregate, sort or limit, correlated or not.
-- @must
SELECT i.customer_id, i.order_id, i.line, (SELECT count(*) FROM products p WHERE p.id <= i.product_id AND p.category = 'tools') FROM order_items i;
-- @must @ordered
SELECT o.customer_id, o.id, (SELECT max(p.price) FROM products p WHERE p.id <= o.qty) AS m FROM orders o ORDER BY m DESC NULLS LAST, o.customer_id, o.id LIMIT 12;
-- @must
SELECT o.customer_id, count(*) FROM orders o GROUP BY 1 HAVING count(*) > (SELECT count(*) / 4 FROM products);
-- @must
SELECT i.customer_id, i.order_id FROM order_items i JOIN (SELECT category, min(id) AS mid FROM products GROUP BY category) pc ON pc.mid = i.product_id;
-- @must
SELECT i.customer_id, i.order_id, i.line, x.name FROM order_items i, LATERAL (SELECT name FROM products p WHERE p.id > i.product_id ORDER BY price DESC NULLS LAST, id LIMIT 1) x;
-- @must
SELECT count(*) FROM order_items i WHERE i.product_id IN (SELECT id FROM products WHERE discontinued UNION SELECT 0);
-- @must
SELECT DISTINCT (SELECT category FROM products p WHERE p.id = i.product_id) FROM order_items i;
-- @must
SELECT count(DISTINCT (SELECT category FROM products p WHERE p.id = i.product_id)), sum((SELECT price FROM products p WHERE p.id = i.product_id)) FROM order_items i;
-- @must
SELECT c.region, (SELECT string_agg(name, ',' ORDER BY name) FROM products WHERE price > 50) FROM customers c GROUP BY c.region;
-- @must
SELECT o.customer_id, o.id, (SELECT count(*) FROM order_items i WHERE i.order_id = o.id) FROM orders o WHERE o.qty > 30;
-- Two tables run first: a three-way join off the key, a FULL JOIN off the
-- key, joins with the reference table in between.
-- @must
SELECT a.customer_id, a.id, b.id, c.id FROM orders a JOIN orders b ON b.qty = a.qty JOIN orders c ON c.priority = b.priority WHERE a.customer_id < 4 AND b.customer_id < 6 AND c.customer_id < 5;
-- @must
SELECT count(*), count(o.id), count(i.line) FROM orders o FULL JOIN order_items i ON i.qty = o.qty AND i.customer_id < 20 WHERE o.customer_id IS NULL OR o.customer_id < 30;
-- @must
SELECT o.status, count(*) FROM orders o JOIN order_items i ON i.order_id = o.id JOIN customers c ON c.tier = i.line GROUP BY o.status;
-- A LEFT JOIN of a co-located table after a reference table's inner join.
-- @must
SELECT i.customer_id, i.order_id, i.line, p.name, c.region FROM order_items i JOIN products p ON p.id = i.product_id LEFT JOIN customers c ON c.id = i.customer_id AND c.tier = 2;
-- @must
SELECT p.category, count(c.id) FROM products p JOIN order_items i ON i.product_id = p.id LEFT JOIN customers c ON c.id = i.customer_id AND c.active GROUP BY p.category;
-- = ANY / <> ALL of a subquery off the key, row IN.
-- @must
SELECT customer_id, id FROM orders WHERE qty = ANY (SELECT line FROM order_items WHERE product_id = 3);
-- @must
SELECT customer_id, id FROM orders WHERE qty <> ALL (SELECT qty FROM order_items WHERE price > 100);
-- @must
SELECT customer_id, id FROM orders WHERE qty > ALL (SELECT line * 10 FROM order_items WHERE customer_id < 50);
-- @must
SELECT o.customer_id, o.id FROM orders o WHERE (o.id, o.qty) IN (SELECT i.order_id, i.qty FROM order_items i WHERE i.line = 1);
-- An aggregate of outer columns inside a subquery belongs to the outer
-- query (one row): never each shard's.
SELECT (SELECT max(o.amount)) FROM orders o;
-- @must
SELECT (SELECT count(*) FROM products p WHERE p.price < max(o.amount)) FROM orders o;
-- @must
SELECT EXISTS (SELECT 1 FROM products p WHERE p.price > max(o.amount)) FROM orders o;
-- @must
SELECT (SELECT sum(o.qty) + p.price FROM products p WHERE p.id = 3) FROM orders o;
-- @must
SELECT customer_id, id FROM orders WHERE (id, qty) = ANY (SELECT order_id, qty FROM order_items WHERE line = 1);
-- @must
SELECT customer_id, id FROM orders WHERE (id, qty) <> ALL (SELECT order_id, qty FROM order_items WHERE line = 1);
-- A query placed by its key with a subquery over a co-located table that
-- is not: the outer WHERE's key is not the subquery's (the subquery reads
-- every shard, run first).
-- @must
SELECT id FROM orders WHERE customer_id = 3 AND qty IN (SELECT qty FROM order_items WHERE product_id = 4);
-- @must
SELECT id, (SELECT count(*) FROM order_items) AS n FROM orders WHERE customer_id = 3;
-- @must
SELECT id FROM orders WHERE customer_id = 3 AND qty IN (SELECT qty FROM order_items WHERE customer_id = 5);
-- @must
SELECT id FROM orders WHERE customer_id = 3 AND EXISTS (SELECT 1 FROM order_items WHERE qty > 40);
-- @must
SELECT id FROM orders WHERE customer_id = 3 AND qty IN (SELECT qty FROM order_items WHERE customer_id = 3 AND line = 1);
-- @must
SELECT id FROM orders o WHERE customer_id = 3 AND NOT EXISTS (SELECT 1 FROM order_items i WHERE i.customer_id = o.customer_id AND i.order_id = o.id);
-- Uncorrelated subqueries over reference tables in a two-step
-- aggregation's select list, HAVING and ORDER BY: constants of the final
-- query.
-- @must
SELECT status, count(*) FROM orders GROUP BY status HAVING count(*) >= (SELECT count(*) FROM products) / 10;
-- @must
SELECT status, (SELECT max(price) FROM products) AS mp, (SELECT min(p.weight) FROM products p WHERE p.discontinued), count(*) FROM orders GROUP BY status;
-- @must
SELECT o.status, EXISTS (SELECT 1 FROM products p WHERE p.price > 100), sum(o.qty) FROM orders o GROUP BY o.status ORDER BY (SELECT count(*) FROM products), 1 NULLS FIRST;
-- (SQLite names an unaliased scalar subquery's column "?column?", PostgreSQL
-- as the subquery's column: "count".)
-- @must
-- @pg-only
SELECT count(*), (SELECT count(*) FROM products p WHERE p.category = 'Tools') FROM orders WHERE qty > 3;
-- @must
SELECT count(*), (SELECT count(*) FROM products p WHERE p.category = 'Tools') AS tools FROM orders WHERE qty > 3;
