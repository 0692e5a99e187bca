//! Generated writes for the differential suite: random UPDATE, DELETE and
//! INSERT statements on `w_orders` (see `w_orders_rows`), each run on a
//! fresh copy of the table through shardgate and on one PostgreSQL; tags,
//! RETURNING rows and the whole table afterwards must match.
//!
//! Shapes: UPDATE/DELETE filtered on the shard key (=, IN, = ANY, ranges,
//! ORs, NULL, odd literal forms), on other columns or not at all; SETs of
//! several columns (expressions, CASE, NULL, DEFAULT) and of the shard key
//! (rows move between shards); UPDATE ... FROM / DELETE ... USING joined on
//! the key and not; subqueries (uncorrelated over sharded tables, correlated
//! on the key, EXISTS, IN, over `w_orders` itself); RETURNING lists; INSERT
//! VALUES (new keys and duplicates), ON CONFLICT DO NOTHING / DO UPDATE
//! (with WHERE, EXCLUDED, key changes), INSERT ... SELECT, missing NOT NULL
//! columns; statements that fail part-way (division by zero, overflow, bad
//! casts, unique violations of key moves), which must change nothing; CTEs,
//! data-modifying CTEs, MERGE and TRUNCATE (shardgate may refuse them).
//!
//! Each statement has one outcome on PostgreSQL whatever the plan: at most
//! one kind of error can happen, no transient unique conflicts, UPDATE ...
//! FROM only takes values from a join that matches one row, LIMIT only
//! after a total order.
//!
//! The seed and the count are fixed for CI; `SHARDGATE_GEN_SEED` and
//! `SHARDGATE_GEN_WRITES` explore others.

use super::{Query, Rng, lit};

/// The customer of `w_orders` row `id` (ids 1..300 exist).
fn cust(id: u64) -> u64 {
    (id - 1) % 60 + 1
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

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.r.below(hi - lo + 1)
    }

    /// A customer id: mostly one with rows, some without.
    fn key(&mut self) -> u64 {
        if self.chance(85) {
            self.range(1, 60)
        } else {
            self.range(61, 90)
        }
    }

    /// A customer id as SQL, sometimes in another spelling of the same value.
    fn key_lit(&mut self) -> String {
        let k = self.key();
        match self.r.below(14) {
            0 => format!("'{k}'"),
            1 => format!("{k}.0"),
            2 => format!("{k}::bigint"),
            3 => format!("({} + {})", k / 2, k - k / 2),
            // (Found: shardgate failed with 22P02 on `5e0` in an INSERT.)
            4 => format!("{k}e0"),
            _ => k.to_string(),
        }
    }

    /// An existing row id.
    fn id(&mut self) -> u64 {
        self.range(1, 300)
    }

    fn status(&mut self) -> String {
        self.pick(&[
            "'new'",
            "'paid'",
            "'cancelled'",
            "'x'",
            "''",
            "'Ünï'",
            "NULL",
        ])
        .to_string()
    }

    fn qty(&mut self) -> String {
        if self.chance(10) {
            "NULL".into()
        } else {
            (self.r.below(56) as i64 - 5).to_string()
        }
    }

    fn amount(&mut self) -> String {
        match self.r.below(10) {
            0 => "NULL".into(),
            1 => "0".into(),
            2 => format!("{}.5", self.r.below(100)),
            _ => format!(
                "{}{}.{:02}",
                if self.chance(20) { "-" } else { "" },
                self.r.below(2000),
                self.r.below(100)
            ),
        }
    }

    fn weight(&mut self) -> String {
        if self.chance(10) {
            "NULL".into()
        } else {
            format!("{}", self.r.below(400) as f64 / 8.0)
        }
    }

    fn note(&mut self) -> String {
        if self.chance(15) {
            "NULL".into()
        } else {
            lit(self.pick(&["n1", "gift", "", "it's", "日本", "ß", "n300", "x y"]))
        }
    }

    /// A predicate on the shard key column `k`.
    fn key_pred(&mut self, k: &str) -> String {
        match self.r.below(13) {
            0..=2 => format!("{k} = {}", self.key_lit()),
            3 | 4 => {
                let vs: Vec<String> = (0..self.range(1, 6)).map(|_| self.key_lit()).collect();
                format!("{k} IN ({})", vs.join(", "))
            }
            5 => {
                let vs: Vec<String> = (0..self.range(1, 5))
                    .map(|_| self.key().to_string())
                    .collect();
                if self.chance(50) {
                    format!("{k} = ANY('{{{}}}')", vs.join(","))
                } else {
                    format!("{k} = ANY(ARRAY[{}])", vs.join(", "))
                }
            }
            6 => {
                let a = self.key();
                let b = a + self.r.below(8);
                if self.chance(50) {
                    format!("{k} BETWEEN {a} AND {b}")
                } else {
                    format!("{k} {} {a}", self.pick(&["<", "<=", ">", ">="]))
                }
            }
            7 => {
                let (a, b, c) = (self.key(), self.key(), self.key());
                format!("({k} = {a} OR {k} = {b} OR {k} = {c})")
            }
            8 => self
                .pick(&[
                    "{} IS NULL",
                    "{} = NULL",
                    "{} IN (NULL)",
                    "{} IS NOT NULL",
                    "{} NOT IN (1, 2, NULL)",
                ])
                .replace("{}", k),
            9 => {
                let i = self.id();
                let c = if self.chance(80) { cust(i) } else { self.key() };
                let id = k.replace("customer_id", "id");
                format!("{k} = {c} AND {id} = {i}")
            }
            10 => {
                let rows: Vec<String> = (0..self.range(1, 4))
                    .map(|_| {
                        let i = self.id();
                        format!("({}, {i})", cust(i))
                    })
                    .collect();
                let id = k.replace("customer_id", "id");
                format!("({k}, {id}) IN ({})", rows.join(", "))
            }
            11 => format!("{k} NOT IN ({}, {})", self.key(), self.key()),
            _ => format!("{k} = {} AND {}", self.key_lit(), self.other_pred("")),
        }
    }

    /// A predicate on a column other than the key (`q`: qualifier + dot).
    fn other_pred(&mut self, q: &str) -> String {
        let p = match self.r.below(12) {
            0 => format!("{q}qty > {}", self.r.below(46)),
            1 => format!("{q}qty = {}", self.r.below(46) as i64 - 3),
            2 => format!("{q}status = {}", self.status()),
            3 => format!("{q}status IS NULL"),
            4 => format!(
                "{q}amount {} {}",
                self.pick(&["<", ">="]),
                self.r.below(1800)
            ),
            5 => format!("{q}note LIKE 'n{}%'", self.r.below(30)),
            6 => format!("{q}id % {} = {}", self.range(2, 11), self.r.below(2)),
            7 => {
                let a = self.id();
                format!("{q}id BETWEEN {a} AND {}", a + self.r.below(40))
            }
            8 => format!("{q}weight > {}", self.r.below(40)),
            9 => format!("{q}note IS NULL"),
            10 => format!("{q}status IN ('new', {})", self.status()),
            _ => format!("NOT ({q}qty < {} OR {q}note IS NULL)", self.r.below(40)),
        };
        if self.chance(15) {
            format!("({p} OR {q}id = {})", self.id())
        } else {
            p
        }
    }

    /// A subquery predicate; `t` is the target's name or alias.
    fn sub_pred(&mut self, t: &str) -> String {
        match self.r.below(12) {
            0 => format!(
                "{t}.customer_id IN (SELECT id FROM customers WHERE tier = {})",
                self.r.below(4)
            ),
            1 => format!(
                "{t}.customer_id IN (SELECT customer_id FROM orders WHERE qty > {})",
                40 + self.r.below(10)
            ),
            2 => format!(
                "{t}.id IN (SELECT id FROM orders WHERE customer_id = {})",
                self.key()
            ),
            3 => format!(
                "{}EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = {t}.customer_id AND o.status = {})",
                if self.chance(40) { "NOT " } else { "" },
                self.status()
            ),
            4 => format!(
                "{t}.qty > (SELECT avg(qty) FROM orders WHERE customer_id = {})",
                self.key()
            ),
            5 => format!("{t}.amount > (SELECT max(price) * 2 FROM products)"),
            6 => format!(
                "{t}.customer_id = (SELECT min(id) FROM customers WHERE region = {})",
                self.pick(&["'EU'", "'us'", "'Asia'"])
            ),
            7 => format!(
                "{t}.qty = (SELECT max(qty) FROM w_orders{})",
                self.pick(&["", " WHERE customer_id < 30", " WHERE status = 'new'"])
            ),
            8 => format!(
                "{t}.id IN (SELECT id FROM w_orders WHERE qty > {})",
                self.r.below(46)
            ),
            9 => format!(
                "{t}.qty < (SELECT count(*) FROM orders o WHERE o.customer_id = {t}.customer_id)"
            ),
            10 => format!(
                "{t}.customer_id IN (SELECT customer_id FROM w_orders WHERE id = {})",
                self.id()
            ),
            _ => format!(
                "EXISTS (SELECT 1 FROM customers c WHERE c.id = {t}.customer_id AND c.tier > {})",
                self.r.below(3)
            ),
        }
    }

    /// A WHERE clause (with its leading space) over the target `t`.
    fn where_clause(&mut self, t: &str, qualify: bool) -> String {
        let q = if qualify {
            format!("{t}.")
        } else {
            String::new()
        };
        let k = format!("{q}customer_id");
        let p = match self.r.below(20) {
            0..=7 => self.key_pred(&k),
            8..=11 => self.other_pred(&q),
            12 | 13 => format!("{} AND {}", self.key_pred(&k), self.other_pred(&q)),
            14 => format!("{} OR {}", self.key_pred(&k), self.other_pred(&q)),
            15 | 16 => self.sub_pred(t),
            17 => format!("{} AND {}", self.key_pred(&k), self.sub_pred(t)),
            18 => self.pick(&["true", "false", "NULL::bool"]).to_string(),
            _ => return String::new(),
        };
        format!(" WHERE {p}")
    }

    /// One SET item on a non-key column (never an error).
    fn set_item(&mut self, col: &str, t: &str) -> String {
        let e = match (col, self.r.below(8)) {
            (_, 0) => "NULL".into(),
            (_, 1) => "DEFAULT".into(),
            ("qty", 2) => format!("qty + {}", self.r.below(10)),
            ("qty", 3) => format!(
                "CASE WHEN qty > {} THEN 0 WHEN qty IS NULL THEN -1 ELSE qty END",
                self.r.below(40)
            ),
            ("qty", 4) => "length(note)".into(),
            ("qty", 5) => format!("id % {}", self.range(2, 9)),
            ("qty", 6) => {
                format!("(SELECT count(*) FROM orders o WHERE o.customer_id = {t}.customer_id)")
            }
            // Values of another type than the column's, converted by
            // the assignment (also when the key moves the row; found: a
            // key move wrote `qty * 1.5` back as '7.5', 22P02).
            ("qty", 7) if self.chance(50) => "qty * 1.5".into(),
            ("qty", _) => self.qty(),
            ("status", 2) => "upper(status)".into(),
            ("status", 3) => "coalesce(status, 'none') || '!'".into(),
            ("status", 4) => "CASE status WHEN 'new' THEN 'paid' ELSE status END".into(),
            ("status", 5) => "note".into(),
            ("status", 6) => {
                format!("(SELECT region FROM customers c WHERE c.id = {t}.customer_id)")
            }
            ("status", _) => self.status(),
            ("amount", 2) => "amount * 2".into(),
            ("amount", 3) => "amount / 3".into(),
            ("amount", 4) => "round(amount + qty, 1)".into(),
            ("amount", 5) => "-amount".into(),
            ("amount", 6) => "(SELECT max(price) FROM products)".into(),
            ("amount", 7) if self.chance(50) => "weight / 3".into(),
            ("amount", _) => self.amount(),
            ("weight", 2) => "weight * 2".into(),
            ("weight", 3) => "qty::float8 / 4".into(),
            ("weight", 4) => "weight + 0.5".into(),
            ("weight", 5) => "amount / 7".into(),
            ("weight", _) => self.weight(),
            ("note", 2) => "note || '-u'".into(),
            ("note", 3) => "status".into(),
            ("note", 4) => "id::text".into(),
            ("note", 5) => "customer_id || '/' || id".into(),
            ("note", 6) => {
                format!("(SELECT name FROM customers c WHERE c.id = {t}.customer_id)")
            }
            ("note", 7) if self.chance(50) => "qty * 2".into(),
            ("note", _) => self.note(),
            // id: new values above 1000 only (never a transient conflict).
            _ => self.pick(&["id + 1000", "id + 5000", "-id"]).into(),
        };
        format!("{col} = {e}")
    }

    /// A SET of the shard key (a move, no conflicts: ids stay unique).
    fn key_set(&mut self) -> String {
        let e = match self.r.below(14) {
            0 => format!("customer_id + {}", self.pick(&[1, 7, 60, -1, 100])),
            1 => self.key().to_string(),
            2 => "61 - customer_id".into(),
            3 => "id".into(),
            4 => "customer_id".into(),
            5 => "NULL".into(),
            6 => format!(
                "CASE WHEN qty > {} THEN customer_id + 100 ELSE customer_id END",
                self.r.below(40)
            ),
            7 => "customer_id * 2".into(),
            8 => format!("id % {} + 1", self.range(3, 17)),
            9 => format!("'{}'", self.key()),
            // (Found: a move to a numeric key failed with 22P02 where
            // PostgreSQL rounds it to bigint.)
            10 if self.chance(50) => format!("customer_id + 0.{}", self.range(1, 9)),
            10 => "customer_id + 0".into(),
            11 => "DEFAULT".into(),
            12 => format!(
                "(SELECT min(id) FROM customers WHERE tier = {})",
                self.r.below(3)
            ),
            _ if self.chance(50) => format!("{}.{}", self.key(), self.r.below(10)),
            _ => format!("{}::bigint", self.key()),
        };
        format!("customer_id = {e}")
    }

    /// A RETURNING clause (with its leading space), or none.
    fn returning(&mut self, t: &str) -> String {
        if self.chance(45) {
            return String::new();
        }
        let items = match self.r.below(10) {
            0 => "*".to_string(),
            1 => format!("{t}.*"),
            2 => "customer_id, id".into(),
            3 => "id, qty * 2 AS q2, upper(status) AS s".into(),
            4 => "customer_id AS new_key, id, amount + 1 AS a1, weight".into(),
            5 => "id, note, customer_id % 4 AS m".into(),
            6 => format!("{t}.id, {t}.qty AS old_qty, {t}.qty AS \"new\""),
            7 => "1 AS one".into(),
            8 => {
                format!("id, (SELECT name FROM customers c WHERE c.id = {t}.customer_id) AS cname")
            }
            _ => "id, status IS NULL AS sn, amount::text AS at".into(),
        };
        format!(" RETURNING {items}")
    }

    /// The target: `w_orders` or an alias.
    fn target(&mut self) -> (String, String) {
        if self.chance(25) {
            (
                format!("w_orders {}", self.pick(&["w", "AS w"])),
                "w".into(),
            )
        } else {
            ("w_orders".into(), "w_orders".into())
        }
    }

    fn sets(&mut self, t: &str, n: u64) -> Vec<String> {
        let mut cols = vec!["qty", "status", "amount", "weight", "note", "id"];
        let mut out = Vec::new();
        for _ in 0..n {
            let c = cols.remove(self.r.below(cols.len() as u64) as usize);
            out.push(self.set_item(c, t));
        }
        out
    }

    fn update(&mut self) -> String {
        let (tgt, t) = self.target();
        let n = self.range(1, 3);
        let mut sets = self.sets(&t, n);
        if self.chance(30) {
            let k = self.key_set();
            let at = self.r.below(sets.len() as u64 + 1) as usize;
            sets.insert(at, k);
        }
        let qualify = t == "w" && self.chance(50);
        let w = self.where_clause(&t, qualify);
        let ret = self.returning(&t);
        format!("UPDATE {tgt} SET {}{w}{ret}", sets.join(", "))
    }

    fn delete(&mut self) -> String {
        let (tgt, t) = self.target();
        let qualify = t == "w" && self.chance(50);
        let w = self.where_clause(&t, qualify);
        let ret = self.returning(&t);
        format!("DELETE FROM {tgt}{w}{ret}")
    }

    /// UPDATE ... FROM / DELETE ... USING: joins on the key and not; values
    /// are only taken from joins that match at most one row.
    fn joined(&mut self) -> String {
        let extra = if self.chance(50) {
            format!(" AND {}", self.key_pred("w.customer_id"))
        } else if self.chance(50) {
            format!(" AND {}", self.other_pred("w."))
        } else {
            String::new()
        };
        // (FROM, join condition, SET from the join or None).
        let (from, on, set): (&str, String, Option<&str>) = match self.r.below(9) {
            0 => (
                "customers c",
                "c.id = w.customer_id".into(),
                Some("qty = c.tier, note = c.region"),
            ),
            1 => (
                "orders o",
                "o.customer_id = w.customer_id AND o.id = w.id".into(),
                Some("amount = o.amount, status = o.status"),
            ),
            2 => (
                "orders o",
                format!(
                    "o.customer_id = w.customer_id AND o.qty > {}",
                    40 + self.r.below(10)
                ),
                None,
            ),
            3 => (
                "products p",
                "p.id = w.qty".into(),
                Some("note = p.name, weight = p.weight"),
            ),
            4 => (
                "customers c",
                "c.id = w.id".into(),
                Some("note = c.name, amount = c.credit"),
            ),
            5 => (
                "orders o",
                format!("o.id = w.id AND o.qty > {}", self.r.below(46)),
                Some("qty = o.qty + 1000"),
            ),
            6 => (
                "(SELECT customer_id, count(*) AS n, sum(amount) AS s FROM orders GROUP BY customer_id) s",
                "s.customer_id = w.customer_id".into(),
                Some("qty = s.n, amount = s.s / 100"),
            ),
            7 => (
                "customers c",
                format!("c.id = w.qty AND c.tier = {}", self.r.below(3)),
                None,
            ),
            _ => (
                "order_items i",
                "i.customer_id = w.customer_id AND i.order_id = w.id".into(),
                None,
            ),
        };
        let ret = if self.chance(40) {
            self.pick(&[
                " RETURNING w.id, w.qty",
                " RETURNING w.*",
                " RETURNING *",
                " RETURNING w.customer_id, w.note",
            ])
        } else {
            ""
        };
        if self.chance(40) {
            format!("DELETE FROM w_orders w USING {from} WHERE {on}{extra}{ret}")
        } else {
            let mut set = match set {
                Some(s) if self.chance(75) => s.to_string(),
                _ => format!("note = 'joined', qty = w.qty + {}", self.r.below(5)),
            };
            if self.chance(15) {
                set = format!("customer_id = w.customer_id + 1, {set}");
            }
            format!("UPDATE w_orders w SET {set} FROM {from} WHERE {on}{extra}{ret}")
        }
    }

    /// One VALUES row: a new key, or an existing row's key (a duplicate).
    fn row(&mut self, cols: &[&str], dup: bool) -> String {
        let i = if dup {
            self.id()
        } else {
            1000 + self.r.below(9000)
        };
        let vals: Vec<String> = cols
            .iter()
            .map(|c| match *c {
                "customer_id" if dup => cust(i).to_string(),
                "customer_id" => self.key_lit(),
                "id" => i.to_string(),
                "status" => self.status(),
                "qty" => match self.r.below(12) {
                    0 => "'7'".into(),
                    1 => "2.5".into(),
                    2 => "DEFAULT".into(),
                    _ => self.qty(),
                },
                "amount" => self.amount(),
                "weight" => self.weight(),
                _ => self.note(),
            })
            .collect();
        format!("({})", vals.join(", "))
    }

    fn columns(&mut self) -> (String, Vec<&'static str>) {
        let all = [
            "customer_id",
            "id",
            "status",
            "qty",
            "amount",
            "weight",
            "note",
        ];
        if self.chance(25) {
            return (String::new(), all.to_vec());
        }
        let mut cols: Vec<&str> = all[2..]
            .iter()
            .copied()
            .filter(|_| self.chance(50))
            .collect();
        cols.insert(0, "id");
        let k = self.r.below(cols.len() as u64 + 1) as usize;
        cols.insert(k, "customer_id");
        (format!(" ({})", cols.join(", ")), cols)
    }

    /// INSERT ... VALUES, with or without ON CONFLICT.
    fn insert(&mut self, conflict: bool) -> String {
        let (list, cols) = self.columns();
        let n = self.pick(&[1, 1, 2, 3, 5, 8]);
        let dups = conflict || self.chance(20);
        let mut rows: Vec<String> = (0..n)
            .map(|_| {
                let d = dups && self.chance(40);
                self.row(&cols, d)
            })
            .collect();
        if conflict && self.chance(15) {
            // The same new key twice in one statement.
            let r = rows[0].clone();
            rows.push(r);
        }
        let (tgt, t) = if self.chance(20) {
            ("w_orders AS w", "w")
        } else {
            ("w_orders", "w_orders")
        };
        let oc = if conflict {
            self.on_conflict(t)
        } else {
            String::new()
        };
        let ret = self.returning(t);
        format!(
            "INSERT INTO {tgt}{list} VALUES {}{oc}{ret}",
            rows.join(", ")
        )
    }

    fn on_conflict(&mut self, t: &str) -> String {
        let target = self.pick(&[
            " (customer_id, id)",
            " (id, customer_id)",
            " ON CONSTRAINT w_orders_pkey",
            "",
        ]);
        if self.chance(35) {
            return format!(" ON CONFLICT{target} DO NOTHING");
        }
        let target = if target.is_empty() {
            " (customer_id, id)"
        } else {
            target
        };
        let mut sets = Vec::new();
        for c in ["qty", "status", "amount", "note", "weight"] {
            if self.chance(45) {
                let e = match self.r.below(5) {
                    0 => format!("EXCLUDED.{c}"),
                    1 if c == "qty" || c == "amount" => {
                        format!("{t}.{c} + coalesce(EXCLUDED.{c}, 0)")
                    }
                    2 => "DEFAULT".into(),
                    3 if c == "note" || c == "status" => format!("{t}.{c} || 'u'"),
                    _ => format!("coalesce(EXCLUDED.{c}, {t}.{c})"),
                };
                sets.push(format!("{c} = {e}"));
            }
        }
        match self.r.below(12) {
            0 => sets.push("customer_id = EXCLUDED.customer_id + 1".into()),
            1 => sets.push("id = EXCLUDED.id + 5000".into()),
            _ => {}
        }
        if sets.is_empty() {
            sets.push("note = 'upserted'".into());
        }
        let w = if self.chance(35) {
            format!(" WHERE {}", self.other_pred(&format!("{t}.")))
        } else if self.chance(15) {
            " WHERE EXCLUDED.qty IS NOT NULL".into()
        } else {
            String::new()
        };
        format!(" ON CONFLICT{target} DO UPDATE SET {}{w}", sets.join(", "))
    }

    fn insert_select(&mut self) -> String {
        let src = match self.r.below(8) {
            0 => format!(
                "SELECT customer_id + {}, id + 1000, status, qty, amount, weight, note FROM w_orders{}",
                self.pick(&[0, 1, 13, 100]),
                self.where_clause("w_orders", false)
            ),
            1 => format!(
                "SELECT customer_id, id, 'again', qty, amount, weight, note FROM w_orders WHERE {}",
                self.key_pred("customer_id")
            ),
            2 => format!(
                "SELECT customer_id, id + 10000, status, qty, amount, weight, note FROM orders WHERE {}",
                self.key_pred("customer_id")
            ),
            3 => format!(
                "SELECT id, id + 20000, region, tier, credit, score, name FROM customers WHERE tier = {}",
                self.r.below(4)
            ),
            4 => "SELECT id, id + 30000, category, id, price, weight, name FROM products".into(),
            5 => format!(
                "SELECT customer_id, max(id) + 40000, 'agg', count(*), sum(amount), NULL, NULL FROM orders WHERE customer_id < {} GROUP BY customer_id",
                self.range(2, 80)
            ),
            6 => format!(
                "SELECT customer_id * 2, id + 2000, status, qty, amount, weight, note FROM w_orders ORDER BY id{} LIMIT {}",
                self.pick(&["", " DESC"]),
                self.range(1, 40)
            ),
            _ => format!(
                "SELECT o.customer_id, o.id + 50000, c.region, o.qty, o.amount, o.weight, o.note FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.tier = {}",
                self.r.below(3)
            ),
        };
        // (Found: duplicates on two shards hung the extended protocol.)
        let dups = src.contains("'again'") && self.chance(50);
        let oc = if dups || self.chance(40) {
            self.on_conflict("w_orders")
        } else {
            String::new()
        };
        let ret = self.returning("w_orders");
        format!(
            "INSERT INTO w_orders (customer_id, id, status, qty, amount, weight, note) {src}{oc}{ret}"
        )
    }

    /// Statements that fail (the same way on both) and must change nothing.
    fn failing(&mut self) -> String {
        let w = self.where_clause("w_orders", false);
        let ret = self.returning("w_orders");
        match self.r.below(12) {
            0 => format!("UPDATE w_orders SET qty = 100 / (qty - {}){w}{ret}", self.r.below(46) as i64 - 3),
            1 => format!("UPDATE w_orders SET note = 'e', amount = amount * 1000000000{w}{ret}"),
            2 => format!("UPDATE w_orders SET qty = qty * 100000000{w}{ret}"),
            3 => format!("UPDATE w_orders SET qty = note::int{w}{ret}"),
            4 => format!(
                "UPDATE w_orders SET {}, qty = 10 / (id % {}){w}{ret}",
                self.key_set_safe(),
                self.range(2, 30)
            ),
            5 => format!("UPDATE w_orders SET id = NULL{w}{ret}"),
            // Onto rows that exist and are not updated: 23505.
            6 => {
                let m = self.range(2, 12);
                format!(
                    "UPDATE w_orders SET customer_id = customer_id + 1, id = id + 1 WHERE id % {m} = {}{ret}",
                    self.r.below(m - 1)
                )
            }
            7 => {
                let (i, j) = (self.id(), self.id());
                format!(
                    "UPDATE w_orders SET customer_id = {}, id = {j} WHERE id = {i}{ret}",
                    cust(j)
                )
            }
            8 => format!("DELETE FROM w_orders{w} RETURNING id, 1 / (qty - {})", self.r.below(46) as i64 - 3),
            9 => {
                let rows: Vec<String> = (0..self.range(2, 6))
                    .map(|k| format!("({}, {}, 'e')", self.key(), 1000 + k))
                    .collect();
                let bad = self.pick(&[
                    "(NULL, 9999, 'e')",
                    "(5, NULL, 'e')",
                    "(5, 1 / 0, 'e')",
                    "(7, 7, 'dup')",
                    "('x', 9999, 'e')",
                ]);
                let at = self.r.below(rows.len() as u64 + 1) as usize;
                let mut rows = rows;
                rows.insert(at, bad.into());
                format!("INSERT INTO w_orders (customer_id, id, status) VALUES {}{ret}", rows.join(", "))
            }
            10 if self.chance(50) => self
                .pick(&[
                    // (Found: hung the extended protocol: two shards, one fails.)
                    "INSERT INTO w_orders (customer_id, id) SELECT customer_id, id FROM w_orders WHERE id < 10",
                    // (Found: 22P02 instead of 22003.)
                    "INSERT INTO w_orders (customer_id, id) VALUES (9223372036854775808, 9005)",
                ])
                .into(),
            10 => self
                .pick(&[
                    "INSERT INTO w_orders DEFAULT VALUES",
                    "INSERT INTO w_orders (id, status) VALUES (9001, 'no key')",
                    "INSERT INTO w_orders (customer_id, status) VALUES (5, 'no id')",
                    "INSERT INTO w_orders (customer_id, id) VALUES (DEFAULT, 9002)",
                    "INSERT INTO w_orders (customer_id, id) VALUES (5, 9003), (5, 9003)",
                    "INSERT INTO w_orders (customer_id, id) VALUES (5, 9004), (5, 9004) ON CONFLICT (customer_id, id) DO UPDATE SET qty = 1",
                    "INSERT INTO w_orders (customer_id, id) VALUES (5, 5) ON CONFLICT (id) DO NOTHING",
                    "INSERT INTO w_orders (customer_id, id) SELECT customer_id, id FROM w_orders WHERE id = 10",
                    "INSERT INTO w_orders (customer_id, id) VALUES (9223372036854775807, 9005), (-9223372036854775808, 9006)",
                ])
                .into(),
            // An error in a SET of the key only on some rows.
            _ => format!(
                "UPDATE w_orders SET customer_id = customer_id + 100 / (qty - {}){w}{ret}",
                self.r.below(46) as i64 - 3
            ),
        }
    }

    /// A key SET that cannot fail.
    fn key_set_safe(&mut self) -> String {
        self.pick(&[
            "customer_id = customer_id + 1",
            "customer_id = 61 - customer_id",
            "customer_id = id",
        ])
        .into()
    }

    /// CTEs, data-modifying CTEs, MERGE, TRUNCATE, swaps.
    fn special(&mut self) -> String {
        let k = self.key();
        match self.r.below(10) {
            0 => format!(
                "WITH s AS (SELECT id FROM customers WHERE tier = {}) UPDATE w_orders SET qty = 0 WHERE customer_id IN (SELECT id FROM s){}",
                self.r.below(4),
                self.returning("w_orders")
            ),
            1 => format!(
                "WITH d AS (DELETE FROM w_orders WHERE customer_id = {k} RETURNING *) SELECT count(*), sum(qty) FROM d"
            ),
            2 => format!(
                "WITH d AS (DELETE FROM w_orders WHERE {} RETURNING customer_id, id, status) INSERT INTO w_orders (customer_id, id, status) SELECT customer_id + 1, id, status FROM d",
                self.key_pred("customer_id")
            ),
            3 => format!(
                "WITH u AS (UPDATE w_orders SET qty = 0 WHERE customer_id = {k} RETURNING id) DELETE FROM w_orders WHERE customer_id = {} RETURNING id",
                self.key()
            ),
            4 => format!(
                "WITH i AS (INSERT INTO w_orders (customer_id, id) VALUES ({k}, 9100) RETURNING *) SELECT customer_id, id FROM i"
            ),
            5 => {
                let i = self.id();
                format!(
                    "MERGE INTO w_orders w USING (VALUES ({}, {i}, 5), ({k}, 9200, 6)) AS v(c, i, q) ON w.customer_id = v.c AND w.id = v.i WHEN MATCHED THEN UPDATE SET qty = v.q WHEN NOT MATCHED THEN INSERT (customer_id, id, qty) VALUES (v.c, v.i, v.q)",
                    cust(i)
                )
            }
            6 => "TRUNCATE w_orders".into(),
            // A swap of two rows' keys: PostgreSQL checks the unique
            // index row by row (23505 whatever the order). (Found:
            // shardgate deleted both, then inserted both, and succeeded.)
            7 if self.chance(30) => {
                let (i, j) = (self.id(), self.id());
                let (ci, cj) = (cust(i), cust(j));
                format!(
                    "UPDATE w_orders SET customer_id = CASE id WHEN {i} THEN {cj} ELSE {ci} END, id = CASE id WHEN {i} THEN {j} ELSE {i} END WHERE id IN ({i}, {j})"
                )
            }
            // (Found: shardgate moved the rows where PostgreSQL fails with
            // 42601, 42703.)
            7 if self.chance(50) => self
                .pick(&[
                    "UPDATE w_orders SET customer_id = 5, customer_id = 6 WHERE id = 1",
                    "UPDATE w_orders SET w_orders.customer_id = 5 WHERE id = 1",
                    "UPDATE w_orders w SET w.customer_id = 5 WHERE id = 1",
                ])
                .into(),
            7 => self
                .pick(&[
                    "UPDATE w_orders SET qty = 5, qty = 6 WHERE id = 1",
                    "UPDATE w_orders SET w_orders.qty = 5 WHERE id = 1",
                    "UPDATE public.w_orders SET customer_id = customer_id + 1 WHERE id < 5",
                    "DELETE FROM \"w_orders\" WHERE CUSTOMER_ID = 3",
                    "INSERT INTO W_Orders (ID, CUSTOMER_ID) VALUES (9000, 1), (9001, 2)",
                    "UPDATE w_orders SET Customer_Id = id + 7 WHERE id % 9 = 2",
                ])
                .into(),
            8 => format!(
                "UPDATE w_orders SET (qty, note) = (qty + 1, 'tuple') WHERE {}",
                self.key_pred("customer_id")
            ),
            _ => format!(
                "UPDATE w_orders SET (customer_id, note) = (SELECT {k}, 'moved') WHERE {}",
                self.key_pred("customer_id")
            ),
        }
    }
}

/// `count` generated writes from `seed` (the environment's
/// `SHARDGATE_GEN_SEED` / `SHARDGATE_GEN_WRITES` override both).
pub fn writes(seed: u64, count: usize) -> Vec<Query> {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("SHARDGATE_GEN_SEED").unwrap_or(seed);
    let count = env("SHARDGATE_GEN_WRITES").map_or(count, |n| n as usize);
    let mut g = Gen { r: Rng(seed) };
    (0..count)
        .map(|_| {
            let sql = match g.r.below(20) {
                0..=5 => g.update(),
                6..=8 => g.delete(),
                9 | 10 => g.joined(),
                11 | 12 => g.insert(false),
                13 | 14 => g.insert(true),
                15 => g.insert_select(),
                16 | 17 => g.failing(),
                _ => g.special(),
            };
            Query {
                sql,
                ordered: false,
                must: false,
                pg_only: true,
            }
        })
        .collect()
}
