//! Generated reads for the differential suite: random SELECTs over the
//! suite's schema (filters on the shard key and on other columns, IN lists,
//! ORs, co-located and reference joins, aggregates with and without GROUP
//! BY, HAVING, DISTINCT and DISTINCT ON, ORDER BY with directions and NULLS
//! placement, LIMIT/OFFSET, window functions, correlated subqueries), so
//! that shapes nobody wrote down by hand are checked against one PostgreSQL
//! too. A statement is tagged ordered only where its ORDER BY is a total
//! order, and LIMIT/OFFSET come only with a total order.
//!
//! The seed and the count are fixed for CI; `SHARDGATE_GEN_SEED` and
//! `SHARDGATE_GEN_COUNT` explore others.

use super::{Query, Rng, lit};

/// A column's kind of values, which decides what may be done with it.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Int,
    Num,
    Float,
    Text,
    Bool,
    Date,
    Ts,
}

/// A table of the suite's schema.
struct Table {
    name: &'static str,
    alias: &'static str,
    /// The shard key (None: a reference table).
    key: Option<&'static str>,
    /// Columns that together are unique.
    unique: &'static [&'static str],
    cols: &'static [(&'static str, Kind)],
}

use Kind::*;

const CUSTOMERS: Table = Table {
    name: "customers",
    alias: "c",
    key: Some("id"),
    unique: &["id"],
    cols: &[
        ("id", Int),
        ("name", Text),
        ("email", Text),
        ("region", Text),
        ("tier", Int),
        ("credit", Num),
        ("score", Float),
        ("active", Bool),
        ("signup", Date),
        ("last_seen", Ts),
    ],
};

const ORDERS: Table = Table {
    name: "orders",
    alias: "o",
    key: Some("customer_id"),
    unique: &["id"],
    cols: &[
        ("customer_id", Int),
        ("id", Int),
        ("status", Text),
        ("qty", Int),
        ("amount", Num),
        ("discount", Num),
        ("weight", Float),
        ("priority", Int),
        ("paid", Bool),
        ("note", Text),
        ("ordered_on", Date),
        ("created_at", Ts),
    ],
};

const ITEMS: Table = Table {
    name: "order_items",
    alias: "i",
    key: Some("customer_id"),
    unique: &["order_id", "line"],
    cols: &[
        ("customer_id", Int),
        ("order_id", Int),
        ("line", Int),
        ("product_id", Int),
        ("qty", Int),
        ("price", Num),
    ],
};

const PRODUCTS: Table = Table {
    name: "products",
    alias: "p",
    key: None,
    unique: &["id"],
    cols: &[
        ("id", Int),
        ("name", Text),
        ("category", Text),
        ("price", Num),
        ("weight", Float),
        ("discontinued", Bool),
    ],
};

/// Text values the data holds (and some it does not).
const TEXTS: &[&str] = &[
    "new", "paid", "shipped", "Returned", "", "EU", "eu", "us", "Asia", "gift", "Gift", "ß",
    "Alice", "alice", "Émile", "Tools", "toys", "日本", "nothing",
];

/// One FROM clause: the tables and their aliases, and the SQL.
struct From {
    tables: Vec<&'static Table>,
    sql: String,
    /// Columns that are unique per row of the FROM (qualified).
    unique: Vec<String>,
    /// The shard-key column of the first sharded table (qualified).
    key: Option<String>,
}

/// A column reference with its kind.
#[derive(Clone)]
struct ColRef {
    sql: String,
    kind: Kind,
}

struct Gen {
    r: Rng,
}

impl Gen {
    fn chance(&mut self, pct: u64) -> bool {
        self.r.below(100) < pct
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.r.below(xs.len() as u64) as usize].clone()
    }

    fn from(&mut self) -> From {
        let one = |t: &'static Table| From {
            tables: vec![t],
            sql: format!("{} {}", t.name, t.alias),
            unique: t
                .unique
                .iter()
                .map(|c| format!("{}.{c}", t.alias))
                .collect(),
            key: t.key.map(|k| format!("{}.{k}", t.alias)),
        };
        match self.r.below(14) {
            0..=3 => one(&ORDERS),
            4..=5 => one(&CUSTOMERS),
            6 => one(&ITEMS),
            7 => one(&PRODUCTS),
            8 | 9 => From {
                tables: vec![&ORDERS, &CUSTOMERS],
                sql: "orders o JOIN customers c ON c.id = o.customer_id".into(),
                unique: vec!["o.id".into()],
                key: Some("o.customer_id".into()),
            },
            10 => From {
                tables: vec![&ITEMS, &ORDERS],
                sql: "order_items i JOIN orders o ON o.customer_id = i.customer_id AND o.id = i.order_id"
                    .into(),
                unique: vec!["i.order_id".into(), "i.line".into()],
                key: Some("i.customer_id".into()),
            },
            11 => From {
                tables: vec![&ITEMS, &PRODUCTS],
                sql: "order_items i JOIN products p ON p.id = i.product_id".into(),
                unique: vec!["i.order_id".into(), "i.line".into()],
                key: Some("i.customer_id".into()),
            },
            12 => From {
                tables: vec![&CUSTOMERS, &ORDERS],
                sql: "customers c LEFT JOIN orders o ON o.customer_id = c.id".into(),
                unique: vec!["c.id".into(), "o.id".into()],
                key: Some("c.id".into()),
            },
            _ => From {
                tables: vec![&ORDERS, &PRODUCTS],
                sql: "orders o LEFT JOIN products p ON p.id = o.qty".into(),
                unique: vec!["o.id".into()],
                key: Some("o.customer_id".into()),
            },
        }
    }

    fn cols(&self, f: &From) -> Vec<ColRef> {
        f.tables
            .iter()
            .flat_map(|t| {
                t.cols.iter().map(|(c, k)| ColRef {
                    sql: format!("{}.{c}", t.alias),
                    kind: *k,
                })
            })
            .collect()
    }

    fn col(&mut self, f: &From, kinds: &[Kind]) -> Option<ColRef> {
        let cs: Vec<ColRef> = self
            .cols(f)
            .into_iter()
            .filter(|c| kinds.contains(&c.kind))
            .collect();
        if cs.is_empty() {
            None
        } else {
            Some(self.pick(&cs))
        }
    }

    fn any_col(&mut self, f: &From) -> ColRef {
        let cs = self.cols(f);
        self.pick(&cs)
    }

    fn value(&mut self, k: Kind) -> String {
        match k {
            Int => (self.r.below(60) as i64 - 5).to_string(),
            Num => format!(
                "{}.{:02}",
                self.r.below(20_000) as i64 - 1_000,
                self.r.below(100)
            ),
            Float => format!("{}.5", self.r.below(200) as i64 - 100),
            Text => lit(self.pick(TEXTS)),
            Bool => self.pick(&["true", "false"]).to_string(),
            Date => format!(
                "DATE '20{}-0{}-1{}'",
                19 + self.r.below(6),
                1 + self.r.below(9),
                self.r.below(9)
            ),
            Ts => format!(
                "TIMESTAMP '20{}-0{}-1{} 1{}:00:00'",
                19 + self.r.below(6),
                1 + self.r.below(9),
                self.r.below(9),
                self.r.below(9)
            ),
        }
    }

    fn key_value(&mut self) -> u64 {
        match self.r.below(5) {
            0 => 1 + self.r.below(3),
            _ => 1 + self.r.below(210),
        }
    }

    /// A predicate over the FROM's columns.
    fn predicate(&mut self, f: &From, depth: u32) -> String {
        let key = f.key.clone();
        // Nesting stops at depth 2 (arms 9 and up nest).
        let arms = match depth {
            0 => 12,
            1 => 10,
            _ => 9,
        };
        match self.r.below(arms) {
            0 | 1 if key.is_some() => {
                let k = key.unwrap();
                let v = self.key_value();
                format!("{k} = {v}")
            }
            2 if key.is_some() => {
                let k = key.unwrap();
                let n = 1 + self.r.below(6);
                let vs: Vec<String> = (0..n).map(|_| self.key_value().to_string()).collect();
                if self.chance(30) {
                    format!("{k} = ANY('{{{}}}'::bigint[])", vs.join(","))
                } else if self.chance(15) {
                    format!("{k} NOT IN ({})", vs.join(", "))
                } else {
                    format!("{k} IN ({})", vs.join(", "))
                }
            }
            3 if key.is_some() => {
                let k = key.unwrap();
                let a = self.key_value();
                let b = a + self.r.below(40);
                if self.chance(50) {
                    format!("{k} BETWEEN {a} AND {b}")
                } else {
                    format!("{k} {} {a}", self.pick(&["<", "<=", ">", ">="]))
                }
            }
            4 => {
                let c = self.any_col(f);
                let not = if self.chance(50) { " NOT" } else { "" };
                format!("{} IS{not} NULL", c.sql)
            }
            5 | 6 => {
                let c = self
                    .col(f, &[Int, Num, Float, Date, Ts])
                    .unwrap_or_else(|| self.any_col(f));
                let v = self.value(c.kind);
                let op = self.pick(&["<", "<=", ">", ">=", "=", "<>"]);
                format!("{} {op} {v}", c.sql)
            }
            7 => match self.col(f, &[Text]) {
                Some(c) => match self.r.below(4) {
                    0 => format!(
                        "{} LIKE '{}%'",
                        c.sql,
                        self.pick(&["a", "A", "g", "n", "É", "日"])
                    ),
                    1 => format!("{} ILIKE '%{}%'", c.sql, self.pick(&["e", "i", "ß", "1"])),
                    2 => {
                        let a = self.value(Text);
                        let b = self.value(Text);
                        format!("{} IN ({a}, {b})", c.sql)
                    }
                    _ => format!(
                        "{} {} {}",
                        c.sql,
                        self.pick(&["=", "<", ">="]),
                        self.value(Text)
                    ),
                },
                None => "true".into(),
            },
            8 => match self.col(f, &[Bool]) {
                Some(c) => self
                    .pick(&[
                        "{}",
                        "NOT {}",
                        "{} IS TRUE",
                        "{} IS NOT FALSE",
                        "{} IS UNKNOWN",
                    ])
                    .replace("{}", &c.sql),
                None => "true".into(),
            },
            9 => {
                let a = self.predicate(f, depth + 1);
                if self.chance(30) {
                    format!("NOT ({a})")
                } else {
                    let b = self.predicate(f, depth + 1);
                    format!("({a} OR {b})")
                }
            }
            10 if key.is_some() => {
                let k = key.unwrap();
                let a = self.key_value();
                let b = self.key_value();
                format!("({k} = {a} OR {k} = {b})")
            }
            _ if depth >= 2 => {
                let c = self.any_col(f);
                format!("{} IS NOT NULL", c.sql)
            }
            _ => {
                let a = self.predicate(f, depth + 1);
                let b = self.predicate(f, depth + 1);
                format!("({a} AND {b})")
            }
        }
    }

    fn where_clause(&mut self, f: &From) -> String {
        let n = self.pick(&[0, 0, 1, 1, 1, 2, 3]);
        let ps: Vec<String> = (0..n).map(|_| self.predicate(f, 0)).collect();
        if ps.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", ps.join(" AND "))
        }
    }

    /// A scalar expression over one column (for select lists and GROUP BY).
    fn expr(&mut self, f: &From) -> ColRef {
        let c = self.any_col(f);
        if self.chance(65) {
            return c;
        }
        let s = &c.sql;
        let (sql, kind) = match c.kind {
            Int => match self.r.below(4) {
                0 => (format!("{s} % 3"), Int),
                1 => (format!("{s} * 2 - 7"), Int),
                2 => (format!("coalesce({s}, -1)"), Int),
                _ => (
                    format!("CASE WHEN {s} > 10 THEN 'big' ELSE 'small' END"),
                    Text,
                ),
            },
            Num => match self.r.below(3) {
                0 => (format!("round({s})"), Num),
                1 => (format!("{s} / 4"), Num),
                _ => (format!("abs({s})"), Num),
            },
            Float => match self.r.below(2) {
                0 => (format!("floor({s})"), Float),
                _ => (format!("{s} > 0"), Bool),
            },
            Text => match self.r.below(4) {
                0 => (format!("lower({s})"), Text),
                1 => (format!("length({s})"), Int),
                2 => (format!("coalesce({s}, '?')"), Text),
                _ => (format!("upper({s})"), Text),
            },
            Bool => (format!("coalesce({s}, false)"), Bool),
            Date => match self.r.below(2) {
                0 => (format!("extract(year FROM {s})"), Num),
                _ => (format!("date_trunc('month', {s})"), Ts),
            },
            Ts => (format!("{s}::date"), Date),
        };
        ColRef { sql, kind }
    }

    /// An aggregate call and whether ordering by it is exact (no float).
    fn aggregate(&mut self, f: &From) -> (String, bool) {
        loop {
            let c = self.any_col(f);
            let s = c.sql.clone();
            let numeric = matches!(c.kind, Int | Num | Float);
            let exact = c.kind != Float;
            let filter = if self.chance(10) {
                format!(" FILTER (WHERE {})", self.predicate(f, 1))
            } else {
                String::new()
            };
            let out = match self.r.below(15) {
                0 | 1 => ("count(*)".to_string(), true),
                2 => (format!("count({s})"), true),
                3 => (format!("count(DISTINCT {s})"), true),
                4 | 5 if numeric => (format!("sum({s})"), exact),
                6 if numeric => (format!("avg({s})"), false),
                7 if c.kind != Bool => (format!("min({s})"), true),
                8 if c.kind != Bool => (format!("max({s})"), true),
                9 if numeric => (
                    format!(
                        "{}({s})",
                        self.pick(&["stddev", "variance", "stddev_pop", "var_samp"])
                    ),
                    false,
                ),
                10 if c.kind == Bool => (
                    format!("{}({s})", self.pick(&["bool_and", "bool_or", "every"])),
                    true,
                ),
                11 if c.kind == Text => {
                    if self.chance(50) {
                        (format!("string_agg({s}, ',' ORDER BY {s})"), true)
                    } else {
                        (format!("string_agg(DISTINCT {s}, '|' ORDER BY {s})"), true)
                    }
                }
                12 if matches!(c.kind, Int | Text | Date) => (
                    format!(
                        "array_agg({s} ORDER BY {s} {})",
                        self.pick(&["", "DESC", "NULLS FIRST", "DESC NULLS LAST"])
                    ),
                    true,
                ),
                13 if numeric => (format!("sum({s} * 2)"), exact),
                14 if numeric && c.kind != Float => (format!("count(DISTINCT {s} % 5)"), true),
                _ => continue,
            };
            return (format!("{}{filter}", out.0), out.1);
        }
    }

    fn direction(&mut self) -> &'static str {
        self.pick(&[
            "",
            "",
            " DESC",
            " ASC",
            " NULLS FIRST",
            " DESC NULLS LAST",
            " DESC NULLS FIRST",
        ])
    }

    fn limit(&mut self, total: bool) -> String {
        if !total || !self.chance(45) {
            return String::new();
        }
        let n = self.pick(&[1, 3, 5, 10, 50]);
        match self.r.below(4) {
            0 => format!(" LIMIT {n} OFFSET {}", self.pick(&[0, 2, 7, 30])),
            1 => format!(" OFFSET {}", self.pick(&[3, 100])),
            2 => format!(" FETCH FIRST {n} ROWS ONLY"),
            _ => format!(" LIMIT {n}"),
        }
    }

    /// A plain (not aggregating) SELECT.
    fn plain(&mut self) -> Query {
        let f = self.from();
        let w = self.where_clause(&f);
        let distinct = self.chance(15);
        let star = !distinct && self.chance(10);
        let n = 1 + self.r.below(4);
        let items: Vec<ColRef> = (0..n).map(|_| self.expr(&f)).collect();
        let list = if star {
            "*".to_string()
        } else {
            items
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    if e.sql.contains('(') || e.sql.contains(' ') {
                        format!("{} AS e{i}", e.sql)
                    } else {
                        e.sql.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut order = Vec::new();
        let mut total = false;
        if self.chance(70) {
            if distinct {
                // Every output column: a total order over distinct rows.
                let all = self.chance(70);
                for (i, e) in items.iter().enumerate() {
                    if all || i == 0 {
                        let d = self.direction();
                        let by = if self.chance(30) {
                            (i + 1).to_string()
                        } else {
                            e.sql.clone()
                        };
                        order.push(format!("{by}{d}"));
                    }
                }
                total = all;
            } else {
                for _ in 0..1 + self.r.below(2) {
                    let e = self.expr(&f);
                    let d = self.direction();
                    order.push(format!("{}{d}", e.sql));
                }
                if self.chance(75) {
                    for u in &f.unique {
                        let d = self.direction();
                        order.push(format!("{u}{d}"));
                    }
                    total = true;
                }
            }
        }
        let ob = if order.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", order.join(", "))
        };
        let lim = self.limit(total);
        let d = if distinct { "DISTINCT " } else { "" };
        query(
            format!("SELECT {d}{list} FROM {}{w}{ob}{lim}", f.sql),
            total,
        )
    }

    /// An aggregating SELECT, with or without GROUP BY.
    fn grouped(&mut self) -> Query {
        let f = self.from();
        let w = self.where_clause(&f);
        let ngroups = self.pick(&[0, 1, 1, 1, 2]);
        let mut groups = Vec::new();
        for _ in 0..ngroups {
            if let Some(k) = &f.key
                && self.chance(20)
            {
                groups.push(k.clone());
            } else {
                let e = self.expr(&f);
                if !groups.contains(&e.sql) {
                    groups.push(e.sql);
                }
            }
        }
        let naggs = 1 + self.r.below(3);
        let aggs: Vec<(String, bool)> = (0..naggs).map(|_| self.aggregate(&f)).collect();
        let mut list: Vec<String> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| format!("{g} AS g{i}"))
            .collect();
        list.extend(
            aggs.iter()
                .enumerate()
                .map(|(i, (a, _))| format!("{a} AS a{i}")),
        );
        let gb = if groups.is_empty() {
            String::new()
        } else if self.chance(25) {
            // By position or output name.
            let by: Vec<String> = (0..groups.len())
                .map(|i| {
                    if self.chance(50) {
                        (i + 1).to_string()
                    } else {
                        format!("g{i}")
                    }
                })
                .collect();
            format!(" GROUP BY {}", by.join(", "))
        } else {
            format!(" GROUP BY {}", groups.join(", "))
        };
        let having = if !groups.is_empty() && self.chance(30) {
            let (a, _) = self.aggregate(&f);
            let cmp = if a.starts_with("count") {
                format!("{a} > {}", self.r.below(5))
            } else if a.starts_with("sum") || a.starts_with("min") || a.starts_with("max") {
                format!("{a} IS NOT NULL")
            } else {
                format!("{a} IS NULL OR count(*) > 1")
            };
            format!(" HAVING {cmp}")
        } else {
            String::new()
        };
        let mut order = Vec::new();
        let mut total = groups.is_empty();
        if !groups.is_empty() && self.chance(70) {
            // Aggregates first (exact ones), then every group: total.
            if self.chance(40) {
                let exact: Vec<usize> = (0..aggs.len()).filter(|&i| aggs[i].1).collect();
                if !exact.is_empty() {
                    let i = self.pick(&exact);
                    let d = self.direction();
                    order.push(format!("a{i}{d}"));
                }
            }
            for (i, g) in groups.iter().enumerate() {
                let d = self.direction();
                let by = match self.r.below(3) {
                    0 => (i + 1).to_string(),
                    1 => format!("g{i}"),
                    _ => g.clone(),
                };
                order.push(format!("{by}{d}"));
            }
            total = true;
        }
        let ob = if order.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", order.join(", "))
        };
        let lim = self.limit(total && !groups.is_empty());
        query(
            format!(
                "SELECT {} FROM {}{w}{gb}{having}{ob}{lim}",
                list.join(", "),
                f.sql
            ),
            total,
        )
    }

    /// DISTINCT ON, windows and correlated subqueries.
    fn other(&mut self) -> Query {
        match self.r.below(4) {
            0 => {
                let f = self.from();
                let w = self.where_clause(&f);
                let on = self.expr(&f);
                let e = self.expr(&f);
                let d1 = self.direction();
                let d2 = self.direction();
                let u = f.unique.join(", ");
                query(
                    format!(
                        "SELECT DISTINCT ON ({on}) {on} AS k, {e} AS v, {u} FROM {}{w} ORDER BY {on}{d1}, {e}{d2}, {u}",
                        f.sql,
                        on = on.sql,
                        e = e.sql
                    ),
                    true,
                )
            }
            1 => {
                let f = self.from();
                let w = self.where_clause(&f);
                let k = f.key.clone().unwrap_or_else(|| "p.category".into());
                let u = f.unique.join(", ");
                let e = self
                    .col(&f, &[Int, Num, Date])
                    .map(|c| c.sql)
                    .unwrap_or(u.clone());
                let func = self.pick(&["row_number()", "rank()", "count(*)", "sum(1)"]);
                query(
                    format!(
                        "SELECT {u}, {func} OVER (PARTITION BY {k} ORDER BY {e}, {u}) AS w FROM {}{w}",
                        f.sql
                    ),
                    false,
                )
            }
            2 => {
                let not = if self.chance(40) { "NOT " } else { "" };
                let p = self.predicate(
                    &From {
                        tables: vec![&ORDERS],
                        sql: String::new(),
                        unique: vec![],
                        key: None,
                    },
                    1,
                );
                let c = self.value(Int);
                query(
                    format!(
                        "SELECT c.id, c.region FROM customers c WHERE c.tier <> {c} AND {not}EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND {p}) ORDER BY c.id"
                    ),
                    true,
                )
            }
            _ => {
                let (a, _) = self.aggregate(&From {
                    tables: vec![&ORDERS],
                    sql: String::new(),
                    unique: vec![],
                    key: None,
                });
                let w = self.where_clause(&From {
                    tables: vec![&CUSTOMERS],
                    sql: String::new(),
                    unique: vec![],
                    key: Some("c.id".into()),
                });
                query(
                    format!(
                        "SELECT c.id, (SELECT {a} FROM orders o WHERE o.customer_id = c.id) AS x FROM customers c{w} ORDER BY c.id"
                    ),
                    true,
                )
            }
        }
    }
}

fn query(sql: String, ordered: bool) -> Query {
    Query {
        sql,
        ordered,
        must: false,
        // NULLs sort first on SQLite: compared on PostgreSQL only.
        pg_only: true,
    }
}

/// `count` generated reads from `seed` (the environment's
/// `SHARDGATE_GEN_SEED` / `SHARDGATE_GEN_COUNT` override both).
pub fn queries(seed: u64, count: usize) -> Vec<Query> {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("SHARDGATE_GEN_SEED").unwrap_or(seed);
    let count = env("SHARDGATE_GEN_COUNT").map_or(count, |n| n as usize);
    let mut g = Gen { r: Rng(seed) };
    (0..count)
        .map(|_| match g.r.below(10) {
            0..=3 => g.plain(),
            4..=8 => g.grouped(),
            _ => g.other(),
        })
        .collect()
}

/// Statements of a size ORMs produce and hand-written tests do not: OR
/// chains of thousands of keys, long AND chains, IN lists of thousands,
/// deep parentheses. The parser builds long chains one level per operand;
/// shardgate must answer them (and not overflow its stack).
pub fn long_statements() -> Vec<Query> {
    let ors = |n: u64, f: &dyn Fn(u64) -> String, op: &str| {
        (1..=n).map(f).collect::<Vec<_>>().join(&format!(" {op} "))
    };
    let mut deep = "o.qty IS NOT NULL".to_string();
    for i in 0..60 {
        deep = if i % 2 == 0 {
            format!("({deep} AND o.id > {})", i - 100)
        } else {
            format!("(o.qty = {i} OR {deep})")
        };
    }
    let mut sum = "qty".to_string();
    for i in 0..80 {
        sum = format!("({sum} + {i})");
    }
    let both = |sql: String, ordered: bool| Query {
        sql,
        ordered,
        must: true,
        pg_only: false,
    };
    vec![
        both(
            format!(
                "SELECT count(*), sum(qty) FROM orders WHERE {}",
                ors(3000, &|i| format!("customer_id = {i}"), "OR")
            ),
            true,
        ),
        both(
            format!(
                "SELECT id, tier FROM customers WHERE {} ORDER BY id",
                ors(2000, &|i| format!("(id = {i} AND tier = {})", i % 4), "OR")
            ),
            true,
        ),
        both(
            format!(
                "SELECT count(*) FROM orders WHERE {}",
                ors(2500, &|i| format!("id <> {}", i * 3), "AND")
            ),
            true,
        ),
        both(
            format!(
                "SELECT customer_id, id FROM orders WHERE customer_id IN ({}) AND qty > 45 ORDER BY id",
                ors(10_000, &|i| (i * 7 % 230).to_string(), ",").replace(" , ", ", ")
            ),
            true,
        ),
        both(
            format!(
                "SELECT count(*) FILTER (WHERE {}) AS f, count(*) FROM orders",
                ors(1500, &|i| format!("qty = {} OR id = {i}", i % 60), "OR")
            ),
            true,
        ),
        both(
            format!("SELECT o.id FROM orders o WHERE {deep} ORDER BY o.id"),
            true,
        ),
        both(
            format!("SELECT sum({sum}) FROM orders WHERE customer_id < 50"),
            true,
        ),
    ]
}
