//! More generated shapes for the differential suite (see
//! `generated.rs`): subqueries in FROM and WITH, set operations, window
//! functions, statements without FROM, and subqueries in unusual places
//! (`tricky`).

use super::*;

impl Gen {
    /// A select list of `u0, u1, ...` (the FROM's unique columns) and
    /// `e0, e1, ...` (expressions), and the names of the unique ones.
    fn named_list(&mut self, f: &From, n: u64) -> (String, Vec<String>) {
        let mut items: Vec<String> = f
            .unique
            .iter()
            .enumerate()
            .map(|(i, u)| format!("{u} AS u{i}"))
            .collect();
        for i in 0..n {
            let e = self.expr(f);
            items.push(format!("{} AS e{i}", e.sql));
        }
        let us = (0..f.unique.len()).map(|i| format!("u{i}")).collect();
        (items.join(", "), us)
    }

    /// Subqueries in FROM and WITH queries.
    pub(super) fn derived(&mut self) -> Query {
        let with = self.chance(50);
        // `WITH s AS (inner) outer` or `outer` over `(inner) s`.
        let wrap = |inner: String, outer: &str| {
            if with {
                format!("WITH s AS ({inner}) {}", outer.replace("{s}", "s"))
            } else {
                outer.replace("{s}", &format!("({inner}) s"))
            }
        };
        match self.r.below(9) {
            0 => {
                // Grouping the rows of a subquery.
                let f = self.from();
                let w = self.where_clause(&f);
                let k = self.expr(&f);
                let v = self.col(&f, &[Int, Num]).map_or("1".to_string(), |c| c.sql);
                let d = self.direction();
                let inner = format!("SELECT {} AS k, {v} AS v FROM {}{w}", k.sql, f.sql);
                let lim = self.limit(true);
                query(
                    wrap(
                        inner,
                        &format!(
                            "SELECT s.k, count(*) AS n, sum(s.v) AS t, min(s.v) AS lo FROM {{s}} GROUP BY s.k ORDER BY s.k{d}{lim}"
                        ),
                    ),
                    true,
                )
            }
            1 => {
                // Aggregates over a cross-shard aggregate.
                let f = self.from();
                let w = self.where_clause(&f);
                let k = if let Some(key) = f.key.clone()
                    && self.chance(40)
                {
                    key
                } else {
                    self.expr(&f).sql
                };
                let v = self.col(&f, &[Int, Num]).map_or("1".to_string(), |c| c.sql);
                let inner = format!(
                    "SELECT {k} AS k, count(*) AS n, sum({v}) AS t FROM {}{w} GROUP BY {k}",
                    f.sql
                );
                if self.chance(50) {
                    query(
                        wrap(
                            inner,
                            "SELECT count(*), max(s.n), min(s.n), sum(s.n), count(DISTINCT s.t), avg(s.n) FROM {s}",
                        ),
                        true,
                    )
                } else {
                    let lim = self.limit(true);
                    query(
                        wrap(
                            inner,
                            &format!(
                                "SELECT s.n, count(*) AS m, sum(s.t) AS st FROM {{s}} GROUP BY s.n ORDER BY s.n{lim}"
                            ),
                        ),
                        true,
                    )
                }
            }
            2 => {
                // The top rows of a subquery, then more work on them.
                let f = self.from();
                let w = self.where_clause(&f);
                let (list, us) = self.named_list(&f, 1);
                let e = self.expr(&f);
                let d = self.direction();
                let n = self.pick(&[1, 4, 10, 40]);
                let inner = format!(
                    "SELECT {list} FROM {}{w} ORDER BY {}{d}, {} LIMIT {n}",
                    f.sql,
                    e.sql,
                    f.unique.join(", ")
                );
                if self.chance(50) {
                    query(
                        wrap(inner, "SELECT count(*), count(DISTINCT s.e0) FROM {s}"),
                        true,
                    )
                } else {
                    let ob: Vec<String> = us.iter().map(|u| format!("s.{u}")).collect();
                    query(
                        wrap(
                            inner,
                            &format!("SELECT s.* FROM {{s}} ORDER BY {}", ob.join(", ")),
                        ),
                        true,
                    )
                }
            }
            3 => {
                // A grouped WITH query joined back on the shard key.
                let w = self.where_clause(&one(&ORDERS));
                let cw = self.where_clause(&one(&CUSTOMERS));
                let join = self.pick(&["JOIN", "LEFT JOIN"]);
                let (a, _) = self.aggregate(&one(&ORDERS));
                query(
                    format!(
                        "WITH t AS (SELECT o.customer_id, count(*) AS n, {a} AS x FROM orders o{w} GROUP BY o.customer_id) SELECT c.id, c.name, t.n, t.x FROM customers c {join} t ON t.customer_id = c.id{cw} ORDER BY c.id"
                    ),
                    true,
                )
            }
            4 => {
                // Window functions in a subquery, filtered outside.
                let f = self.from();
                let w = self.where_clause(&f);
                let (list, us) = self.named_list(&f, 1);
                let part = match &f.key {
                    Some(k) if self.chance(60) => format!("PARTITION BY {k} "),
                    _ => String::new(),
                };
                let e = self.expr(&f);
                let d = self.direction();
                let func = self.pick(&["row_number()", "rank()", "dense_rank()"]);
                let ob: Vec<String> = us.iter().map(|u| format!("s.{u}")).collect();
                query(
                    wrap(
                        format!(
                            "SELECT {list}, {func} OVER ({part}ORDER BY {}{d}, {}) AS rn FROM {}{w}",
                            e.sql,
                            f.unique.join(", "),
                            f.sql
                        ),
                        &format!(
                            "SELECT s.* FROM {{s}} WHERE s.rn <= {} ORDER BY {}",
                            self.pick(&[1, 2, 5]),
                            ob.join(", ")
                        ),
                    ),
                    true,
                )
            }
            5 => {
                // Counting distinct rows of a subquery.
                let f = self.from();
                let w = self.where_clause(&f);
                let e = self.expr(&f);
                let e2 = self.expr(&f);
                query(
                    wrap(
                        format!(
                            "SELECT DISTINCT {} AS a, {} AS b FROM {}{w}",
                            e.sql, e2.sql, f.sql
                        ),
                        "SELECT count(*), count(s.a), count(DISTINCT s.b) FROM {s}",
                    ),
                    true,
                )
            }
            6 => {
                // Two WITH queries, the second over the first, used in IN.
                let (a, exact) = self.aggregate(&one(&ORDERS));
                let cmp = if exact && !a.contains("json") {
                    format!("a.m IS NOT NULL AND a.n > {}", self.r.below(15))
                } else {
                    "a.m IS NULL".into()
                };
                let cw = self.where_clause(&one(&CUSTOMERS));
                let cw = if cw.is_empty() {
                    " WHERE true".to_string()
                } else {
                    cw
                };
                query(
                    format!(
                        "WITH a AS (SELECT o.customer_id, count(*) AS n, {a} AS m FROM orders o GROUP BY o.customer_id), b AS (SELECT a.customer_id FROM a WHERE {cmp}) SELECT c.id, c.region FROM customers c{cw} AND c.id IN (SELECT b.customer_id FROM b) ORDER BY c.id"
                    ),
                    true,
                )
            }
            7 => {
                // One WITH query twice.
                let w = self.where_clause(&one(&ORDERS));
                query(
                    format!(
                        "WITH t AS (SELECT o.customer_id AS k, count(*) AS n FROM orders o{w} GROUP BY o.customer_id) SELECT a.k, b.k AS k2, a.n FROM t a JOIN t b ON b.n = a.n AND b.k > a.k WHERE a.k < {} ORDER BY 1, 2",
                        5 + self.r.below(40)
                    ),
                    true,
                )
            }
            _ => {
                // Rows from a function, VALUES or a recursive WITH joined to
                // a sharded table on its key.
                let (t, k) = self.pick(&[
                    (&CUSTOMERS, "c.id"),
                    (&ORDERS, "o.customer_id"),
                    (&ITEMS, "i.customer_id"),
                ]);
                let src = match self.r.below(4) {
                    0 => "generate_series(1, 30, 4) AS g(x)".to_string(),
                    1 => "(VALUES (1), (5), (7), (250), (NULL)) AS g(x)".to_string(),
                    2 => "unnest(ARRAY[2, 3, 3, 40]) AS g(x)".to_string(),
                    _ => String::new(),
                };
                let rec = src.is_empty();
                let src = if rec { "g".to_string() } else { src };
                let join = self.pick(&["JOIN", "LEFT JOIN", "RIGHT JOIN"]);
                let u: Vec<String> = t
                    .unique
                    .iter()
                    .map(|c| format!("{}.{c}", t.alias))
                    .collect();
                let body = if self.chance(50) {
                    format!(
                        "SELECT g.x, count({}) AS n FROM {src} {join} {} {} ON {k} = g.x GROUP BY g.x ORDER BY g.x",
                        u[0], t.name, t.alias
                    )
                } else {
                    format!(
                        "SELECT g.x, {} FROM {src} {join} {} {} ON {k} = g.x ORDER BY g.x, {}",
                        u.join(", "),
                        t.name,
                        t.alias,
                        u.join(", ")
                    )
                };
                let sql = if rec {
                    format!(
                        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 9 FROM g WHERE x < 60) {body}"
                    )
                } else {
                    body
                };
                query(sql, true)
            }
        }
    }

    /// One branch of a set operation: a SELECT of columns of `kinds`.
    fn branch(&mut self, kinds: &[Kind]) -> String {
        loop {
            let t = self.pick(&[&ORDERS, &ORDERS, &CUSTOMERS, &ITEMS, &PRODUCTS]);
            let f = one(t);
            let cols: Option<Vec<String>> = kinds
                .iter()
                // Numerics at one scale: equal values of different scales
                // print differently, and which one a set operation keeps
                // is up to the plan.
                .map(|k| {
                    self.col(&f, &[*k]).map(|c| {
                        if c.kind == Num {
                            format!("round({}, 2)", c.sql)
                        } else {
                            c.sql
                        }
                    })
                })
                .collect();
            let Some(cols) = cols else { continue };
            let w = self.where_clause(&f);
            let mut sql = format!("SELECT {} FROM {}{w}", cols.join(", "), f.sql);
            if self.chance(15) {
                // Its own total order and limit, in parentheses.
                sql = format!(
                    "({sql} ORDER BY {}{} LIMIT {})",
                    f.unique.join(", "),
                    self.direction(),
                    self.pick(&[1, 5, 30])
                );
            }
            return sql;
        }
    }

    /// UNION [ALL], INTERSECT [ALL], EXCEPT [ALL] of sharded SELECTs, with
    /// ORDER BY and LIMIT on the whole, or under an aggregate or IN.
    pub(super) fn setop(&mut self) -> Query {
        let n = 1 + self.r.below(2) as usize;
        let kinds: Vec<Kind> = (0..n)
            .map(|_| self.pick(&[Int, Int, Num, Text, Text, Date, Bool]))
            .collect();
        let ops = [
            "UNION",
            "UNION ALL",
            "UNION ALL",
            "INTERSECT",
            "EXCEPT",
            "INTERSECT ALL",
            "EXCEPT ALL",
        ];
        let a = self.branch(&kinds);
        let b = self.branch(&kinds);
        let op = self.pick(&ops);
        let mut sql = format!("{a} {op} {b}");
        if self.chance(30) {
            let c = self.branch(&kinds);
            let op2 = self.pick(&ops);
            sql = if self.chance(50) {
                format!("{sql} {op2} {c}")
            } else {
                format!("{a} {op} ({b} {op2} {c})")
            };
        }
        match self.r.below(6) {
            0 if kinds == [Int] => {
                let not = if self.chance(30) { "NOT " } else { "" };
                query(
                    format!(
                        "SELECT c.id, c.tier FROM customers c WHERE c.id {not}IN ({sql}) ORDER BY c.id"
                    ),
                    true,
                )
            }
            1 => {
                let cols: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
                query(
                    format!(
                        "SELECT {c}, count(*) AS n FROM ({sql}) u({c}) GROUP BY {c} ORDER BY {c}",
                        c = cols.join(", ")
                    ),
                    true,
                )
            }
            2 => query(format!("SELECT count(*) FROM ({sql}) u"), true),
            3 | 4 => {
                let ob: Vec<String> = (1..=n)
                    .map(|i| format!("{i}{}", self.direction()))
                    .collect();
                let lim = self.limit(true);
                query(format!("{sql} ORDER BY {}{lim}", ob.join(", ")), true)
            }
            _ => query(sql, false),
        }
    }

    /// Window functions: with and without PARTITION BY the shard key,
    /// ORDER BY inside, frames, named windows.
    pub(super) fn window(&mut self) -> Query {
        let f = self.from();
        let w = self.where_clause(&f);
        let u = f.unique.join(", ");
        let part = match self.r.below(10) {
            0..=4 => f.key.clone().map(|k| format!("PARTITION BY {k}")),
            5 | 6 => Some(format!("PARTITION BY {}", self.expr(&f).sql)),
            _ => None,
        }
        .unwrap_or_default();
        let sep = if part.is_empty() { "" } else { " " };
        let mut items = Vec::new();
        for i in 0..1 + self.r.below(2) {
            let c = self.any_col(&f);
            let num = self.col(&f, &[Int, Num]);
            let e = self.expr(&f);
            let d = self.direction();
            // Ties do not change these (their frame holds all peers).
            let peers = format!("ORDER BY {}{d}", e.sql);
            let total = format!("ORDER BY {}{d}, {u}", e.sql);
            let (func, over) = match self.r.below(14) {
                0 => ("rank()".to_string(), peers),
                1 => ("dense_rank()".to_string(), peers),
                2 => ("percent_rank()".to_string(), peers),
                3 => ("cume_dist()".to_string(), peers),
                4 => ("count(*)".to_string(), peers),
                5 if num.is_some() => (format!("sum({})", num.clone().unwrap().sql), peers),
                6 => ("row_number()".to_string(), total),
                7 => (format!("ntile({})", self.pick(&[2, 3, 7])), total),
                8 => (
                    format!(
                        "{}({}, {})",
                        self.pick(&["lag", "lead"]),
                        c.sql,
                        1 + self.r.below(3)
                    ),
                    total,
                ),
                9 => (
                    format!("{}({})", self.pick(&["first_value", "last_value"]), c.sql),
                    format!("{total} ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING"),
                ),
                10 if num.is_some() => (
                    format!("sum({})", num.clone().unwrap().sql),
                    format!(
                        "{total} ROWS BETWEEN {} PRECEDING AND CURRENT ROW",
                        self.r.below(4)
                    ),
                ),
                11 if num.is_some() => (
                    format!(
                        "{}({})",
                        self.pick(&["max", "min", "count"]),
                        num.clone().unwrap().sql
                    ),
                    format!("{peers} GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING"),
                ),
                12 if c.kind != Bool => (format!("max({})", c.sql), String::new()),
                _ => (format!("nth_value({}, 2)", c.sql), total),
            };
            let over = format!("{part}{}{over}", if over.is_empty() { "" } else { sep });
            items.push(format!("{func} OVER ({over}) AS w{i}"));
        }
        let named = self.chance(15);
        let list = if named {
            // The last one through a named window.
            let last = items.pop().unwrap();
            let (head, rest) = last.split_once(" OVER (").unwrap();
            let (spec, alias) = rest.rsplit_once(") AS ").unwrap();
            items.push(format!("{head} OVER win AS {alias}"));
            format!(
                "{} FROM {}{w} WINDOW win AS ({spec})",
                items.join(", "),
                f.sql
            )
        } else {
            format!("{} FROM {}{w}", items.join(", "), f.sql)
        };
        let ordered = self.chance(60);
        let tail = if ordered {
            format!(" ORDER BY {u}{}", self.limit(true))
        } else {
            String::new()
        };
        query(format!("SELECT {u}, {list}{tail}"), ordered)
    }

    /// Statements without FROM, VALUES lists, LATERAL.
    pub(super) fn no_from(&mut self) -> Query {
        match self.r.below(7) {
            0 => query(
                self.pick(&[
                    "SELECT 1 AS one, 'x' AS two, NULL::int AS three",
                    "SELECT 7 / 2 AS a, 7.0 / 2 AS b, round(2.5) AS c, 2 ^ 10 AS d",
                    "SELECT DATE '2024-02-28' + 1 AS d, interval '1 day' * 3 AS i, extract(year FROM DATE '2021-05-05') AS y",
                    "SELECT upper('ß') AS u, lower('ÉMILE') AS l, length('日本') AS n, 'a' < 'B' AS lt",
                ])
                .to_string(),
                true,
            ),
            1 => query(
                "VALUES (1, 'a'), (2, NULL), (3, 'c') ORDER BY 1 DESC".to_string(),
                true,
            ),
            2 => {
                let (g, ic, w) = self.inner(&[Int, Num, Text, Date]);
                let (h, _, w2) = self.inner(&[Int]);
                query(
                    format!(
                        "SELECT (SELECT max({}) FROM {}{w}) AS m, (SELECT count(*) FROM {}{w2}) AS n, EXISTS (SELECT 1 FROM {}{w}) AS e",
                        ic.sql, g.sql, h.sql, g.sql
                    ),
                    true,
                )
            }
            3 => {
                let w = self.where_clause(&one(&CUSTOMERS));
                let k = self.key_value();
                query(
                    format!(
                        "SELECT c.id, c.name FROM customers c WHERE c.id IN (VALUES (1), ({k}), (7)){} ORDER BY c.id",
                        w.replacen(" WHERE ", " AND ", 1)
                    ),
                    true,
                )
            }
            4 => {
                let w = self.where_clause(&one(&CUSTOMERS));
                let join = self.pick(&["CROSS JOIN LATERAL", "LEFT JOIN LATERAL"]);
                let on = if join.starts_with("LEFT") { " ON true" } else { "" };
                query(
                    format!(
                        "SELECT c.id, x.id AS top, x.amount FROM customers c {join} (SELECT o.id, o.amount FROM orders o WHERE o.customer_id = c.id ORDER BY o.amount DESC NULLS LAST, o.id LIMIT {}) x{on}{w} ORDER BY c.id, x.id",
                        1 + self.r.below(3)
                    ),
                    true,
                )
            }
            5 => {
                let w = self.where_clause(&one(&CUSTOMERS));
                query(
                    format!(
                        "SELECT c.id, x.n, x.s FROM customers c CROSS JOIN LATERAL (SELECT count(*) AS n, sum(o.qty) AS s FROM orders o WHERE o.customer_id = c.id) x{w} ORDER BY x.n DESC, c.id"
                    ),
                    true,
                )
            }
            _ => query(
                format!(
                    "SELECT x, x * 2 AS y FROM (VALUES ({}), (2), (NULL)) v(x) ORDER BY x NULLS FIRST",
                    self.r.below(9)
                ),
                true,
            ),
        }
    }
}

impl Gen {
    /// Subqueries where running them first or pushing them down is easy
    /// to get wrong: in ON clauses, inside subqueries in FROM and WITH,
    /// inside correlated subqueries, ANY/ALL (subquery), ARRAY(subquery),
    /// EXISTS over an aggregate, correlations off the shard key, subqueries
    /// in set operation branches, in CASE, in ORDER BY, of char(n) values.
    pub(super) fn tricky(&mut self) -> Query {
        let cw = self.where_clause(&one(&CUSTOMERS));
        let and = |w: &str| w.replacen(" WHERE ", " AND ", 1);
        // An uncorrelated subquery over a sharded table that has rows on one
        // shard only (customer 1, 2 or 3 has most rows).
        let k = 1 + self.r.below(3);
        let v = self.key_value();
        let skinny = match self.r.below(4) {
            0 => {
                format!("SELECT i.qty FROM order_items i WHERE i.customer_id = {k} AND i.line = 1")
            }
            1 => format!("SELECT o.qty FROM orders o WHERE o.customer_id = {k} AND o.qty > 40"),
            2 => format!(
                "SELECT o.priority FROM orders o WHERE o.customer_id IN ({k}, {v}) AND o.paid"
            ),
            _ => format!("SELECT c2.tier FROM customers c2 WHERE c2.id = {v}"),
        };
        // (Arms 9, 10 and 15 found EXISTS over an aggregate without GROUP
        // BY answered wrong, a subquery's error turned into a refusal and a
        // scalar subquery's typmod lost.)
        match self.r.below(22) {
            0 => query(
                format!(
                    "SELECT c.id, o.id AS oid FROM customers c {} orders o ON o.customer_id = c.id AND o.qty IN ({skinny}){cw} ORDER BY c.id, o.id",
                    self.pick(&["JOIN", "LEFT JOIN"])
                ),
                true,
            ),
            1 => query(
                format!(
                    "SELECT count(*), sum(s.qty) FROM (SELECT o.* FROM orders o WHERE o.qty IN ({skinny})) s"
                ),
                true,
            ),
            2 => query(
                format!(
                    "WITH t AS (SELECT o.customer_id, o.id, o.qty FROM orders o WHERE o.qty {} ({skinny})) SELECT t.customer_id, count(*) AS n FROM t GROUP BY t.customer_id ORDER BY t.customer_id",
                    self.pick(&["IN", "NOT IN", "= ANY", "> ALL"])
                ),
                true,
            ),
            3 => query(
                format!(
                    "SELECT c.id FROM customers c WHERE {}EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.qty IN ({skinny})){} ORDER BY c.id",
                    self.pick(&["", "NOT "]),
                    and(&cw)
                ),
                true,
            ),
            4 => query(
                format!(
                    "SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id AND o.qty IN ({skinny})) AS n FROM customers c{cw} ORDER BY c.id"
                ),
                true,
            ),
            5 => {
                // Correlated off the shard key (or not only on it).
                let corr = self.pick(&[
                    "o.qty = c.tier",
                    "o.customer_id = c.id OR o.qty > 50",
                    "o.customer_id <> c.id AND o.qty = 7",
                    "o.customer_id = c.id + 1",
                    "o.customer_id IN (c.id, c.tier)",
                    "o.priority = c.tier AND o.customer_id < 4",
                    "o.customer_id = c.tier",
                ]);
                let body = match self.r.below(4) {
                    0 => format!("EXISTS (SELECT 1 FROM orders o WHERE {corr})"),
                    1 => format!("NOT EXISTS (SELECT 1 FROM orders o WHERE {corr})"),
                    2 => format!("c.id IN (SELECT o.customer_id FROM orders o WHERE {corr})"),
                    _ => format!("(SELECT count(*) FROM orders o WHERE {corr}) > 2"),
                };
                query(
                    format!(
                        "SELECT c.id FROM customers c WHERE {body}{} ORDER BY c.id",
                        and(&cw)
                    ),
                    true,
                )
            }
            6 => {
                let (op, q) = self.pick(&[
                    ("c.id = ANY", "SELECT o.customer_id FROM orders o WHERE o.qty > 50"),
                    ("c.id = SOME", "SELECT i.customer_id FROM order_items i WHERE i.qty = 10 AND i.line = 4"),
                    ("c.id > ALL", "SELECT o.customer_id FROM orders o WHERE o.qty > 49"),
                    ("c.id <> ALL", "SELECT o.customer_id FROM orders o"),
                    ("c.tier = ANY", "SELECT o.priority FROM orders o WHERE o.customer_id = 2"),
                    ("c.tier < ALL", "SELECT o.priority FROM orders o WHERE o.customer_id = 3 AND o.priority IS NOT NULL"),
                    ("c.tier >= ANY", "SELECT o.qty FROM orders o WHERE o.customer_id = 1"),
                    ("c.id < ANY", "SELECT o.customer_id FROM orders o WHERE o.qty = 1"),
                ]);
                query(
                    format!(
                        "SELECT c.id, c.tier FROM customers c WHERE {op} ({q}){} ORDER BY c.id",
                        and(&cw)
                    ),
                    true,
                )
            }
            7 => {
                let (l, q) = self.pick(&[
                    (
                        "(o.customer_id, o.id)",
                        "SELECT i.customer_id, i.order_id FROM order_items i WHERE i.qty = 10",
                    ),
                    (
                        "(o.qty, o.priority)",
                        "SELECT i.qty, i.line FROM order_items i WHERE i.customer_id = 2",
                    ),
                    (
                        "(o.customer_id, o.qty)",
                        "SELECT i.customer_id, i.qty FROM order_items i WHERE i.line = 4",
                    ),
                    (
                        "(o.id, o.customer_id)",
                        "SELECT i.order_id, i.customer_id + 1 FROM order_items i WHERE i.qty = 10",
                    ),
                ]);
                let not = if self.chance(30) { "NOT " } else { "" };
                query(
                    format!(
                        "SELECT o.customer_id, o.id FROM orders o WHERE {l} {not}IN ({q}) AND o.customer_id < 40 ORDER BY o.id"
                    ),
                    true,
                )
            }
            8 => {
                let q = self.pick(&[
                    "SELECT c2.id FROM customers c2 WHERE c2.tier = 2 ORDER BY c2.id",
                    "SELECT o.id FROM orders o WHERE o.qty = 50 ORDER BY o.id",
                    "SELECT o.note FROM orders o WHERE o.qty > 48 AND o.note IS NOT NULL ORDER BY o.id DESC",
                ]);
                if self.chance(50) {
                    query(format!("SELECT ARRAY({q}) AS a"), true)
                } else {
                    query(
                        format!(
                            "SELECT c.id, ARRAY({q}) AS a FROM customers c WHERE c.id IN (1, 50, 99, 150) ORDER BY c.id"
                        ),
                        true,
                    )
                }
            }
            9 => {
                let agg = self.pick(&["max(o.id)", "count(*)", "sum(o.qty)", "min(o.note)"]);
                let w = self.pick(&["o.qty > 1000", "o.customer_id = 999", "false", "o.qty = 50"]);
                let not = if self.chance(30) { "NOT " } else { "" };
                query(
                    format!(
                        "SELECT c.id FROM customers c WHERE {not}EXISTS (SELECT {agg} FROM orders o WHERE {w}){} ORDER BY c.id",
                        and(&cw)
                    ),
                    true,
                )
            }
            10 => {
                // A scalar subquery of several rows where the outer query
                // has no rows to compare (PostgreSQL does not run it).
                let (t, col) = self.pick(&[
                    ("orders o", "o.customer_id = 999"),
                    ("customers c", "c.id = 999"),
                    ("orders o", "o.customer_id = 5 AND o.qty > 1000"),
                ]);
                let sq = self.pick(&[
                    "SELECT c2.tier FROM customers c2",
                    "SELECT o2.id FROM orders o2 WHERE o2.customer_id < 3",
                ]);
                query(
                    format!("SELECT count(*) FROM {t} WHERE {col} AND 1 = ({sq})"),
                    true,
                )
            }
            11 => {
                // A subquery in a set operation branch.
                let op = self.pick(&["UNION", "UNION ALL", "EXCEPT", "INTERSECT"]);
                query(
                    format!(
                        "SELECT c.id FROM customers c WHERE c.tier IN ({skinny}) {op} SELECT o.customer_id FROM orders o WHERE o.qty = 50 ORDER BY 1"
                    ),
                    true,
                )
            }
            12 => query(
                format!(
                    "SELECT c.id, CASE WHEN c.id > 1000 THEN (SELECT o.id FROM orders o) ELSE c.tier END AS x FROM customers c{cw} ORDER BY c.id"
                ),
                true,
            ),
            13 => query(
                format!(
                    "SELECT c.id, c.tier FROM customers c{cw} ORDER BY (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) DESC, c.id LIMIT 10"
                ),
                true,
            ),
            14 => {
                let cast = self.pick(&["char(6)", "character(3)", "varchar(2)", "bpchar", "char"]);
                query(
                    format!(
                        "SELECT o.id FROM orders o WHERE o.status IN (SELECT c2.region::{cast} FROM customers c2 WHERE c2.tier = 1) AND o.customer_id < 30 ORDER BY o.id"
                    ),
                    true,
                )
            }
            15 => {
                let cast = self.pick(&[
                    "char(6)",
                    "character(3)",
                    "varchar(2)",
                    "numeric(6,1)",
                    "char",
                ]);
                let col = if cast.starts_with('n') {
                    "o.amount"
                } else {
                    "o.status"
                };
                query(
                    format!(
                        "SELECT c.id, (SELECT {col}::{cast} FROM orders o WHERE o.customer_id = 1 ORDER BY o.id LIMIT 1) AS x FROM customers c WHERE c.id < 6 ORDER BY c.id"
                    ),
                    true,
                )
            }
            16 => query(
                "SELECT o.status, count(*) AS n, (SELECT max(c.id) FROM customers c WHERE c.tier = 2) AS m FROM orders o GROUP BY o.status ORDER BY o.status".to_string(),
                true,
            ),
            17 => query(
                format!(
                    "SELECT c.id FROM customers c WHERE c.name COLLATE \"C\" > (SELECT max(o.note COLLATE \"C\") FROM orders o WHERE o.customer_id = {k}){} ORDER BY c.id",
                    and(&cw)
                ),
                true,
            ),
            18 => query(
                format!(
                    "SELECT c.id, c.name FROM customers c WHERE c.name = (SELECT c2.name FROM customers c2 WHERE c2.id = {v}) OR c.id IN (SELECT o.customer_id FROM orders o WHERE o.qty > 51) ORDER BY c.id"
                ),
                true,
            ),
            19 => query(
                format!(
                    "SELECT count(*) FILTER (WHERE o.qty IN ({skinny})) AS f, count(*) AS n FROM orders o WHERE o.customer_id < 50"
                ),
                true,
            ),
            20 => query(
                format!(
                    "SELECT o.customer_id, o.id FROM orders o WHERE o.customer_id = {k} AND o.id IN (SELECT i.order_id FROM order_items i WHERE i.qty = 10 AND i.customer_id <> {k}) ORDER BY o.id"
                ),
                true,
            ),
            _ => query(
                format!("SELECT c.id FROM customers c WHERE c.id = {v} AND c.tier IN ({skinny})"),
                false,
            ),
        }
    }
}
