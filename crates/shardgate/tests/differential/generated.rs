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

#[path = "generated_shapes.rs"]
mod shapes;

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

/// `orders` a second time (self-joins).
const ORDERS2: Table = Table {
    name: "orders",
    alias: "o2",
    key: Some("customer_id"),
    unique: &["id"],
    cols: ORDERS.cols,
};

/// Text values the data holds (and some it does not).
const TEXTS: &[&str] = &[
    "new", "paid", "shipped", "Returned", "", "EU", "eu", "us", "Asia", "gift", "Gift", "ß",
    "Alice", "alice", "Émile", "Tools", "toys", "日本", "nothing",
];

/// One FROM clause: the tables and their aliases, and the SQL.
struct From {
    /// The alias of a single table's FROM when it is not the table's usual
    /// one (a subquery over the table the outer query reads).
    alias: Option<&'static str>,
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
    /// How deep in uncorrelated subqueries the generator is (they nest once).
    sub: u32,
}

/// The FROM of one table.
fn one(t: &'static Table) -> From {
    From {
        alias: None,
        tables: vec![t],
        sql: format!("{} {}", t.name, t.alias),
        unique: t
            .unique
            .iter()
            .map(|c| format!("{}.{c}", t.alias))
            .collect(),
        key: t.key.map(|k| format!("{}.{k}", t.alias)),
    }
}

/// The FROM of one table under another alias.
fn one_as(t: &'static Table, alias: &'static str) -> From {
    From {
        alias: Some(alias),
        tables: vec![t],
        sql: format!("{} {alias}", t.name),
        unique: t.unique.iter().map(|c| format!("{alias}.{c}")).collect(),
        key: t.key.map(|k| format!("{alias}.{k}")),
    }
}

/// Kinds a value of kind `k` compares with.
fn comparable(k: Kind) -> &'static [Kind] {
    match k {
        Int => &[Int, Num],
        Num => &[Num, Int],
        Float => &[Float, Int],
        Text => &[Text],
        Bool => &[Bool],
        Date | Ts => &[Date, Ts],
    }
}

impl Gen {
    fn chance(&mut self, pct: u64) -> bool {
        self.r.below(100) < pct
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.r.below(xs.len() as u64) as usize].clone()
    }

    fn from(&mut self) -> From {
        let joined = |sql: &str, tables: Vec<&'static Table>, unique: &[&str], key: &str| From {
            alias: None,
            tables,
            sql: sql.into(),
            unique: unique.iter().map(|u| u.to_string()).collect(),
            key: Some(key.into()),
        };
        match self.r.below(26) {
            14 => joined(
                "orders o JOIN order_items i ON i.customer_id = o.customer_id AND i.order_id = o.id JOIN customers c ON c.id = o.customer_id",
                vec![&ORDERS, &ITEMS, &CUSTOMERS],
                &["i.order_id", "i.line"],
                "o.customer_id",
            ),
            15 => joined(
                "products p LEFT JOIN order_items i ON i.product_id = p.id",
                vec![&PRODUCTS, &ITEMS],
                &["p.id", "i.order_id", "i.line"],
                "i.customer_id",
            ),
            16 => joined(
                "order_items i RIGHT JOIN products p ON p.id = i.product_id",
                vec![&ITEMS, &PRODUCTS],
                &["p.id", "i.order_id", "i.line"],
                "i.customer_id",
            ),
            17 => joined(
                "customers c FULL JOIN orders o ON o.customer_id = c.id",
                vec![&CUSTOMERS, &ORDERS],
                &["c.id", "o.id"],
                "c.id",
            ),
            18 => joined(
                "orders o JOIN orders o2 ON o2.customer_id = o.customer_id AND o2.id = o.id + 1",
                vec![&ORDERS, &ORDERS2],
                &["o.id"],
                "o.customer_id",
            ),
            19 => joined(
                "customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.qty > 40",
                vec![&CUSTOMERS, &ORDERS],
                &["c.id", "o.id"],
                "c.id",
            ),
            20 => joined(
                "orders o JOIN customers c ON c.id = o.customer_id JOIN products p ON p.id = o.priority",
                vec![&ORDERS, &CUSTOMERS, &PRODUCTS],
                &["o.id"],
                "o.customer_id",
            ),
            21 => joined(
                "(SELECT * FROM orders WHERE qty > 10) o",
                vec![&ORDERS],
                &["o.id"],
                "o.customer_id",
            ),
            22 => joined(
                "(SELECT * FROM customers WHERE tier IS NOT NULL) c JOIN orders o ON o.customer_id = c.id",
                vec![&CUSTOMERS, &ORDERS],
                &["o.id"],
                "c.id",
            ),
            23 => joined(
                "customers c RIGHT JOIN orders o ON o.customer_id = c.id",
                vec![&CUSTOMERS, &ORDERS],
                &["o.id"],
                "o.customer_id",
            ),
            24 => joined(
                "orders o LEFT JOIN customers c ON c.id = o.customer_id AND c.tier = 2",
                vec![&ORDERS, &CUSTOMERS],
                &["o.id"],
                "o.customer_id",
            ),
            // Not co-located: the router must refuse it (or be right).
            25 => joined(
                "orders o JOIN customers c ON c.id = o.qty",
                vec![&ORDERS, &CUSTOMERS],
                &["o.id"],
                "o.customer_id",
            ),
            0..=3 => one(&ORDERS),
            4..=5 => one(&CUSTOMERS),
            6 => one(&ITEMS),
            7 => one(&PRODUCTS),
            8 | 9 => From {
 alias: None,
                tables: vec![&ORDERS, &CUSTOMERS],
                sql: "orders o JOIN customers c ON c.id = o.customer_id".into(),
                unique: vec!["o.id".into()],
                key: Some("o.customer_id".into()),
            },
            10 => From {
 alias: None,
                tables: vec![&ITEMS, &ORDERS],
                sql: "order_items i JOIN orders o ON o.customer_id = i.customer_id AND o.id = i.order_id"
                    .into(),
                unique: vec!["i.order_id".into(), "i.line".into()],
                key: Some("i.customer_id".into()),
            },
            11 => From {
 alias: None,
                tables: vec![&ITEMS, &PRODUCTS],
                sql: "order_items i JOIN products p ON p.id = i.product_id".into(),
                unique: vec!["i.order_id".into(), "i.line".into()],
                key: Some("i.customer_id".into()),
            },
            12 => From {
 alias: None,
                tables: vec![&CUSTOMERS, &ORDERS],
                sql: "customers c LEFT JOIN orders o ON o.customer_id = c.id".into(),
                unique: vec!["c.id".into(), "o.id".into()],
                key: Some("c.id".into()),
            },
            _ => From {
 alias: None,
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
                    sql: format!("{}.{c}", f.alias.unwrap_or(t.alias)),
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
        if self.chance(25) {
            return self.predicate_more(f);
        }
        let key = f.key.clone();
        // Nesting stops at depth 2 (arms 9 and up nest).
        let arms = match depth {
            0 => 12,
            1 => 10,
            _ => 9,
        };
        match self.r.below(arms) {
            0 | 1 if key.is_some() => {
                let mut k = key.unwrap();
                // The key's bare name, where one table is all there is
                // (it names that table's column, not a subquery's).
                if self.sub == 0 && f.tables.len() == 1 && f.alias.is_none() && self.chance(30) {
                    k = f.tables[0].key.unwrap_or_default().to_string();
                }
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

    /// More predicates: spellings of shard-key values, regular
    /// expressions, IS DISTINCT FROM, BETWEEN SYMMETRIC, row comparisons,
    /// ANY/ALL over arrays, date and interval arithmetic.
    fn predicate_more(&mut self, f: &From) -> String {
        let key = f.key.clone();
        match self.r.below(12) {
            0..=2 if key.is_some() => {
                let k = key.unwrap();
                let v = self.key_value();
                let w = self.key_value();
                match self.r.below(20) {
                    0 => format!("{k} = '{v}'"),
                    1 => format!("{v} = {k}"),
                    2 => format!("{k} = {v}.0"),
                    3 => format!("{k} = {v}.5"),
                    4 => format!("{k} = ' {v} '"),
                    5 => format!("{k} = '+0{v}'"),
                    6 => format!("{k} = {v}::smallint"),
                    7 => format!("{k} = CAST({v} AS int)"),
                    8 => format!("{k} = {} + 3", v as i64 - 3),
                    9 => format!("{k} IN ({v}, NULL)"),
                    10 => format!("{k} IN ('{v}', '{w}')"),
                    11 => format!("{k} = ANY(ARRAY[{v}, {w}])"),
                    12 => format!("{k} <> ALL(ARRAY[{v}, {w}, 1])"),
                    13 => format!("{k} IS NOT DISTINCT FROM {v}"),
                    14 => format!("{k} BETWEEN SYMMETRIC {} AND {v}", v + 9),
                    15 => format!("{k} = {v}e0"),
                    16 => format!("({k} = {v}) IS TRUE"),
                    17 => format!("{k} = {v} AND {k} = {w}"),
                    18 => format!("{k} = -{v}"),
                    _ => format!("{k} = NULL"),
                }
            }
            3 if f.unique.len() == 1 && key.is_some() => {
                let k = key.unwrap();
                let op = self.pick(&["<", "<=", ">", ">=", "=", "<>"]);
                format!(
                    "({k}, {}) {op} ({}, {})",
                    f.unique[0],
                    self.key_value(),
                    self.r.below(2600)
                )
            }
            4 | 5 => match self.col(f, &[Text]) {
                Some(c) => {
                    let s = c.sql;
                    match self.r.below(9) {
                        0 => format!("{s} ~ '^[a-mA-M]'"),
                        1 => format!("{s} ~* 'gift|ali'"),
                        2 => format!("{s} !~ '[0-9]'"),
                        3 => format!("{s} SIMILAR TO '%(e|i)%'"),
                        4 => format!("{s} IS DISTINCT FROM {}", self.value(Text)),
                        5 => format!("{s} NOT LIKE '%{}%'", self.pick(&["a", "e", "_"])),
                        6 => format!("{s} COLLATE \"C\" < {}", self.value(Text)),
                        7 => format!(
                            "{s} <> ALL(ARRAY[{}, {}])",
                            self.value(Text),
                            self.value(Text)
                        ),
                        _ => format!("length({s}) BETWEEN 1 AND {}", self.r.below(12)),
                    }
                }
                None => "true".into(),
            },
            6 | 7 => match self.col(f, &[Int, Num, Float]) {
                Some(c) => {
                    let s = c.sql;
                    let a = self.value(c.kind);
                    let b = self.value(c.kind);
                    match self.r.below(6) {
                        0 => format!("{s} BETWEEN SYMMETRIC {a} AND {b}"),
                        1 => format!("{s} NOT BETWEEN {a} AND {b}"),
                        2 => format!("{s} IS DISTINCT FROM {a}"),
                        3 => format!("{s} = ANY(ARRAY[{a}, {b}])"),
                        4 => format!("{s} > ALL(ARRAY[{a}, {b}])"),
                        _ => format!("coalesce({s}, 0) {} {a}", self.pick(&["<", ">="])),
                    }
                }
                None => "true".into(),
            },
            8 | 9 => match self.col(f, &[Date, Ts]) {
                Some(c) => {
                    let s = c.sql;
                    match self.r.below(6) {
                        0 => format!(
                            "{s} + interval '{} days' > TIMESTAMP '2022-01-01'",
                            self.r.below(400)
                        ),
                        1 => format!("extract(year FROM {s}) = {}", 2019 + self.r.below(6)),
                        2 => format!("extract(dow FROM {s}) IN (0, 6)"),
                        3 => format!("{s} BETWEEN {} AND {}", self.value(Date), self.value(Ts)),
                        4 => format!("date_trunc('month', {s}) = DATE '2021-05-01'"),
                        _ => format!("to_char({s}, 'MM') = '0{}'", 1 + self.r.below(9)),
                    }
                }
                None => "true".into(),
            },
            10 => {
                let c = self.any_col(f);
                let d = self.any_col(f);
                if comparable(c.kind).contains(&d.kind) {
                    format!("{} IS DISTINCT FROM {}", c.sql, d.sql)
                } else {
                    format!("{} IS NULL = ({} IS NULL)", c.sql, d.sql)
                }
            }
            _ => {
                let c = self.any_col(f);
                format!("{} IS NOT NULL", c.sql)
            }
        }
    }

    /// An uncorrelated subquery over one table of the schema that selects a
    /// column of one of `kinds`: (FROM, column, WHERE).
    fn inner(&mut self, kinds: &[Kind]) -> (From, ColRef, String) {
        self.sub += 1;
        let out = loop {
            let t = self.pick(&[&ORDERS, &ORDERS, &CUSTOMERS, &ITEMS, &PRODUCTS]);
            // Under its usual alias, or another one (then the subquery's
            // tables are not the outer query's, and may be co-located).
            let f = if self.chance(50) {
                one_as(t, self.pick(&["s1", "s2"]))
            } else {
                one(t)
            };
            if let Some(c) = self.col(&f, kinds) {
                let w = self.where_clause(&f);
                break (f, c, w);
            }
        };
        self.sub -= 1;
        out
    }

    /// A predicate with an uncorrelated subquery: IN, NOT IN (with NULLs),
    /// a scalar aggregate, a single row, EXISTS, an array.
    fn sub_predicate(&mut self, f: &From) -> String {
        let c = self.any_col(f);
        let kinds = comparable(c.kind);
        match self.r.below(8) {
            0..=2 => {
                let (g, ic, w) = self.inner(kinds);
                let lim = if self.chance(20) {
                    format!(
                        " ORDER BY {} DESC NULLS LAST, {} LIMIT {}",
                        ic.sql,
                        g.unique.join(", "),
                        self.pick(&[1, 5, 20])
                    )
                } else if self.chance(10) {
                    format!(" GROUP BY {} HAVING count(*) > 1", ic.sql)
                } else {
                    String::new()
                };
                let not = if self.chance(35) { "NOT " } else { "" };
                format!(
                    "{} {not}IN (SELECT {} FROM {}{w}{lim})",
                    c.sql, ic.sql, g.sql
                )
            }
            3 | 4 => {
                let (g, ic, w) = self.inner(kinds);
                let agg = match ic.kind {
                    Int | Num => self.pick(&["max", "min", "sum", "avg"]),
                    Bool => self.pick(&["bool_and", "bool_or"]),
                    _ => self.pick(&["max", "min"]),
                };
                let op = self.pick(&["=", "<", ">", "<=", ">=", "<>", "IS DISTINCT FROM"]);
                format!(
                    "{} {op} (SELECT {agg}({}) FROM {}{w})",
                    c.sql, ic.sql, g.sql
                )
            }
            5 => {
                let (g, ic, w) = self.inner(kinds);
                let op = self.pick(&["=", "<", ">=", "<>"]);
                format!(
                    "{} {op} (SELECT {} FROM {}{w} ORDER BY {}{} LIMIT 1{})",
                    c.sql,
                    ic.sql,
                    g.sql,
                    g.unique.join(", "),
                    self.direction(),
                    self.pick(&["", " OFFSET 1", " OFFSET 3"])
                )
            }
            6 => {
                let (g, _, w) = self.inner(&[Int]);
                let not = if self.chance(40) { "NOT " } else { "" };
                format!("{not}EXISTS (SELECT 1 FROM {}{w})", g.sql)
            }
            _ => match self.col(f, &[Int]) {
                Some(c) => {
                    let (g, ic, w) = self.inner(&[Int]);
                    format!(
                        "{} = ANY((SELECT array_agg({} ORDER BY {}) FROM {}{w})::bigint[])",
                        c.sql, ic.sql, ic.sql, g.sql
                    )
                }
                None => format!("{} IS NOT NULL", c.sql),
            },
        }
    }

    fn where_clause(&mut self, f: &From) -> String {
        let n = self.pick(&[0, 0, 1, 1, 1, 2, 3]);
        let mut ps: Vec<String> = (0..n).map(|_| self.predicate(f, 0)).collect();
        if self.sub == 0 && self.chance(12) {
            ps.push(self.sub_predicate(f));
        }
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
        if self.chance(45) {
            return self.expr_more(&c);
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

    /// More scalar expressions: date and interval arithmetic, extract,
    /// to_char, rounding, division, NULLIF, casts, string functions.
    fn expr_more(&mut self, c: &ColRef) -> ColRef {
        let s = &c.sql;
        let (sql, kind) = match c.kind {
            Int => match self.r.below(9) {
                0 => (format!("{s} / 3"), Int),
                1 => (format!("{s}::numeric / 7"), Num),
                2 => (format!("nullif({s}, 0)"), Int),
                3 => (format!("100 / nullif({s}, 0)"), Int),
                4 => (format!("{s}::text"), Text),
                5 => (format!("greatest({s}, 10)"), Int),
                6 => (format!("{s} & 3"), Int),
                7 => (
                    format!("CASE WHEN {s} IS NULL THEN 0 WHEN {s} < 5 THEN 1 ELSE 2 END"),
                    Int,
                ),
                _ => (format!("{s}::float8 / 4"), Float),
            },
            Num => match self.r.below(8) {
                0 => (format!("round({s}, 1)"), Num),
                1 => (format!("trunc({s})"), Num),
                2 => (format!("{s}::int"), Int),
                3 => (format!("{s} * 1.5"), Num),
                4 => (format!("ceil({s})"), Num),
                5 => (format!("sign({s})"), Num),
                6 => (format!("mod({s}, 7)"), Num),
                _ => (format!("{s} / 3"), Num),
            },
            Float => match self.r.below(4) {
                0 => (format!("round({s}::numeric, 2)"), Num),
                1 => (format!("{s}::int"), Int),
                2 => (format!("trunc({s})"), Float),
                _ => (format!("{s} * 2"), Float),
            },
            Text => match self.r.below(12) {
                0 => (format!("substr({s}, 2, 3)"), Text),
                1 => (format!("split_part({s}, '@', 2)"), Text),
                2 => (format!("{s} || '!'"), Text),
                3 => (format!("concat({s}, '-', 1)"), Text),
                4 => (format!("replace({s}, 'a', 'A')"), Text),
                5 => (format!("initcap({s})"), Text),
                6 => (format!("reverse({s})"), Text),
                7 => (format!("btrim({s})"), Text),
                8 => (format!("left({s}, 2)"), Text),
                9 => (format!("position('e' IN {s})"), Int),
                10 => (format!("{s} COLLATE \"C\""), Text),
                _ => (format!("octet_length({s})"), Int),
            },
            Bool => match self.r.below(3) {
                0 => (format!("NOT {s}"), Bool),
                1 => (format!("{s} IS TRUE"), Bool),
                _ => (
                    format!("CASE WHEN {s} THEN 'y' WHEN NOT {s} THEN 'n' END"),
                    Text,
                ),
            },
            Date => match self.r.below(6) {
                0 => (format!("{s} + 7"), Date),
                1 => (format!("{s} - DATE '2020-01-01'"), Int),
                2 => (format!("extract(dow FROM {s})"), Num),
                3 => (format!("to_char({s}, 'YYYY-MM')"), Text),
                4 => (format!("date_part('month', {s})"), Float),
                _ => (format!("{s} + interval '1 month'"), Ts),
            },
            Ts => match self.r.below(6) {
                0 => (format!("date_trunc('day', {s})"), Ts),
                1 => (format!("{s} + interval '36 hours'"), Ts),
                2 => (format!("extract(hour FROM {s})"), Num),
                3 => (format!("to_char({s}, 'YYYY-MM-DD HH24')"), Text),
                4 => (
                    format!("extract(epoch FROM {s} - TIMESTAMP '2019-01-01')"),
                    Num,
                ),
                _ => (format!("{s}::date - 1"), Date),
            },
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
            if self.chance(30)
                && let Some(out) = self.aggregate_more(f, &c)
            {
                return out;
            }
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

    /// More aggregates: of CASE, count(DISTINCT (a, b)), ordered-set
    /// aggregates, json_agg/jsonb_agg with ORDER BY, min/max in the "C"
    /// collation, bit_and/bit_or, sum(DISTINCT), expressions over
    /// aggregates. None: nothing fits the column.
    fn aggregate_more(&mut self, f: &From, c: &ColRef) -> Option<(String, bool)> {
        let s = &c.sql;
        let numeric = matches!(c.kind, Int | Num | Float);
        let exact = c.kind != Float;
        Some(match self.r.below(16) {
            0 if numeric => {
                let p = self.predicate(f, 1);
                (format!("sum(CASE WHEN {p} THEN {s} ELSE 0 END)"), exact)
            }
            1 => {
                let p = self.predicate(f, 1);
                (format!("count(CASE WHEN {p} THEN 1 END)"), true)
            }
            2 => {
                let d = self.any_col(f);
                (format!("count(DISTINCT ({s}, {}))", d.sql), true)
            }
            3 if c.kind != Bool => (
                format!(
                    "percentile_disc({}) WITHIN GROUP (ORDER BY {s}{})",
                    self.pick(&["0.5", "0.1", "0.9", "0"]),
                    self.pick(&["", " DESC"])
                ),
                true,
            ),
            4 if numeric => (
                format!(
                    "percentile_cont({}) WITHIN GROUP (ORDER BY {s})",
                    self.pick(&["0.5", "0.25", "1"])
                ),
                // A float.
                false,
            ),
            5 if c.kind != Float => (format!("mode() WITHIN GROUP (ORDER BY {s})"), true),
            6 if c.kind != Float => (
                format!(
                    "{}({s} ORDER BY {s}{})",
                    self.pick(&["json_agg", "jsonb_agg"]),
                    self.pick(&["", " DESC", " NULLS FIRST"])
                ),
                false,
            ),
            7 if c.kind == Text => (
                format!("{}({s} COLLATE \"C\")", self.pick(&["min", "max"])),
                true,
            ),
            8 if c.kind == Int => (format!("{}({s})", self.pick(&["bit_and", "bit_or"])), true),
            9 if c.kind == Int || c.kind == Num => (
                format!("{}(DISTINCT {s})", self.pick(&["sum", "avg", "count"])),
                true,
            ),
            10 if c.kind == Int || c.kind == Num => (format!("sum({s})::numeric / count(*)"), true),
            11 if c.kind != Bool => (
                format!("(max({s}) {} min({s}))", self.pick(&["=", "<>"])),
                true,
            ),
            12 if c.kind == Int || c.kind == Num => {
                (format!("coalesce(sum({s}), 0) - count({s})"), true)
            }
            13 if c.kind == Text => (
                format!("string_agg(DISTINCT {s}, ', ' ORDER BY {s} DESC)"),
                true,
            ),
            14 if c.kind == Int || c.kind == Num => (format!("avg({s})::numeric(12,2)"), true),
            15 => (format!("count(*) - count({s})"), true),
            _ => return None,
        })
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
            // Limits that keep every row.
            return if self.chance(6) {
                self.pick(&[
                    " LIMIT ALL",
                    " LIMIT NULL",
                    " OFFSET 0",
                    " LIMIT ALL OFFSET 0",
                ])
                .to_string()
            } else {
                String::new()
            };
        }
        let n = self.pick(&[1, 3, 5, 10, 50]);
        match self.r.below(6) {
            4 => format!(
                " OFFSET {} ROWS FETCH NEXT {n} ROWS ONLY",
                self.pick(&[1, 4])
            ),
            5 => self
                .pick(&[
                    " LIMIT 0",
                    " FETCH FIRST ROW ONLY",
                    " LIMIT 2 + 1",
                    " LIMIT NULL OFFSET 5",
                ])
                .to_string(),
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
        // An uncorrelated scalar subquery as a column.
        let list = if !star && self.chance(10) {
            let k = self.pick(&[Int, Num, Text, Date, Ts, Float, Bool]);
            let (g, ic, w) = self.inner(&[k]);
            // A single row (a column with its typmod) or an aggregate.
            let sq = if self.chance(50) {
                format!(
                    "(SELECT {} FROM {}{w} ORDER BY {} LIMIT 1)",
                    ic.sql,
                    g.sql,
                    g.unique.join(", ")
                )
            } else {
                let agg = self.pick(&["max", "min", "count"]);
                let agg = if k == Bool && agg != "count" {
                    "bool_or"
                } else {
                    agg
                };
                format!("(SELECT {agg}({}) FROM {}{w})", ic.sql, g.sql)
            };
            format!("{list}, {sq} AS sq")
        } else {
            list
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
                    if e.kind == Text && self.chance(25) {
                        order.push(format!("({}) COLLATE \"C\"{d}", e.sql));
                    } else {
                        order.push(format!("{}{d}", e.sql));
                    }
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
        let lim = if !total && !distinct && !order.is_empty() && self.chance(15) {
            // Ties make the rows a multiset that does not depend on the plan.
            format!(" FETCH FIRST {} ROWS WITH TIES", self.pick(&[1, 2, 5, 20]))
        } else {
            self.limit(total)
        };
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
        // GROUPING SETS, ROLLUP, CUBE: grouping() tells rolled-up NULLs
        // from NULL values and makes the groups a total order.
        let sets = !groups.is_empty() && self.chance(20);
        if sets {
            list.push(format!("grouping({}) AS gr", groups.join(", ")));
        }
        if !groups.is_empty() && self.chance(10) {
            list.push(
                self.pick(&[
                    "rank() OVER (ORDER BY count(*) DESC) AS rk",
                    "sum(count(*)) OVER () AS tot",
                    "count(*) * 100 / sum(count(*)) OVER () AS pct",
                    "dense_rank() OVER (ORDER BY count(*)) AS rk",
                ])
                .to_string(),
            );
        }
        let gb = if groups.is_empty() {
            String::new()
        } else if sets {
            let all = groups.join(", ");
            match self.r.below(6) {
                0 => format!(" GROUP BY ROLLUP ({all})"),
                1 => format!(" GROUP BY CUBE ({all})"),
                2 => format!(" GROUP BY GROUPING SETS (({all}), ())"),
                3 => format!(" GROUP BY GROUPING SETS (({}), ({all}))", groups[0]),
                4 if groups.len() == 2 => {
                    format!(" GROUP BY {}, ROLLUP ({})", groups[0], groups[1])
                }
                _ => format!(" GROUP BY GROUPING SETS ({all})"),
            }
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
        let having = if self.sub == 0 && self.chance(5) {
            let (g, _, w) = self.inner(&[Int]);
            format!(
                " HAVING count(*) >= (SELECT count(*) FROM {}{w}) / {}",
                g.sql,
                self.pick(&[10, 100, 1000])
            )
        } else if self.chance(if groups.is_empty() { 12 } else { 30 }) {
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
            if self.chance(20) {
                // An aggregate that is not in the select list.
                let (a, exact) = self.aggregate(&f);
                if exact {
                    let d = self.direction();
                    order.push(format!("{a}{d}"));
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
            if sets {
                order.push("gr".into());
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
                        alias: None,
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
                    alias: None,
                    tables: vec![&ORDERS],
                    sql: String::new(),
                    unique: vec![],
                    key: None,
                });
                let w = self.where_clause(&From {
                    alias: None,
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
    let mut g = Gen {
        r: Rng(seed),
        sub: 0,
    };
    (0..count)
        .map(|_| match g.r.below(20) {
            0..=6 => g.plain(),
            7..=12 => g.grouped(),
            13 => g.other(),
            14 | 15 => g.derived(),
            16 | 17 => g.setop(),
            18 => g.window(),
            19 if g.chance(50) => g.tricky(),
            _ => g.no_from(),
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
