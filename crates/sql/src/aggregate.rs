//! Planning a multi-shard SELECT with aggregates, GROUP BY, HAVING or
//! DISTINCT as two queries: a *partial* query every shard runs, and a
//! *final* query that one shard runs over the shards' partial rows.
//!
//! The partial query keeps the statement's FROM and WHERE and computes, per
//! group, the pieces each aggregate can be rebuilt from: `count(x)` and
//! `sum(x)` for `avg(x)`, exact numeric sums of `x` and `x*x` for
//! `stddev(x)`, and so on. Aggregates that cannot be split (`string_agg`,
//! `array_agg`, `percentile_cont`, ...) make the partial query return the
//! raw rows instead; DISTINCT aggregates add their arguments to the partial
//! GROUP BY (duplicates do not matter to them).
//!
//! The final query is the statement's own SELECT list, HAVING, ORDER BY,
//! DISTINCT and LIMIT, with every group expression replaced by a partial
//! column and every aggregate by its recombination, over a `WITH sg_partial`
//! of the partial rows. Running it on a real shard means PostgreSQL itself
//! evaluates expressions, collations, NULL ordering and numeric scales: the
//! answer is the one a single PostgreSQL gives. The executor fills in the
//! partial rows and the partial column types (see [`AggSpec::final_sql`]).

use crate::analyze::ident_name;
use sqlparser::ast::{
    self, Distinct, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments, GroupByExpr, Ident, OrderByKind, Query, Select, SelectItem, SetExpr, Value,
    VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// The name of the relation holding the partial rows in the final query.
pub const PARTIAL: &str = "sg_partial";

/// A planned two-step aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggSpec {
    /// The client's statement (parameters inlined): what an embedded shard
    /// describes to name and type the final query's columns.
    pub original: String,
    /// What every shard runs (parameters inlined).
    pub partial_sql: String,
    /// The same for embedded SQLite shards: every column is returned as
    /// an SQL literal (`quote()`), so SQLite's value types survive.
    pub partial_lite: String,
    /// The final query after `WITH sg_partial(...)`, PostgreSQL dialect,
    /// with type tokens (see [`AggSpec::final_sql`]).
    pub final_pg: String,
    /// The same for an embedded SQLite shard.
    pub final_lite: String,
    /// Number of partial columns.
    pub columns: usize,
    /// Partial columns whose type must not be `real` (float4 sums lose the
    /// precision PostgreSQL's own float8 accumulation keeps).
    pub no_float4: Vec<usize>,
    /// The partial query returns raw rows (an aggregate that cannot be
    /// split), not one row per group.
    pub raw: bool,
    /// GROUP BY names taken for output columns, which the partial query
    /// checks are no FROM columns (see [`guard_alias_groups`]): a shard's
    /// "ambiguous" error naming one of them means PostgreSQL would have
    /// grouped by that column.
    pub alias_groups: Vec<String>,
}

/// The column name of partial column `i` (0-based).
pub fn column_name(i: usize) -> String {
    format!("sg_c{}", i + 1)
}

const PTYPE: &str = "sg_ptype_";
const FTYPE: &str = "sg_ftype_";

impl AggSpec {
    /// The final query text: `WITH sg_partial(cols) AS (<rows>) <final>`,
    /// with each type token replaced by `type_of(column, float_or_numeric)`.
    /// `rows` is a query producing the partial rows (typed).
    pub fn final_sql(
        &self,
        embedded: bool,
        rows: &str,
        type_of: impl Fn(usize, bool) -> String,
    ) -> String {
        let cols: Vec<String> = (0..self.columns).map(column_name).collect();
        let body = if embedded {
            &self.final_lite
        } else {
            &self.final_pg
        };
        let mut out = format!("WITH {PARTIAL}({}) AS ({rows}) ", cols.join(", "));
        let mut rest = body.as_str();
        loop {
            let p = rest.find(PTYPE);
            let f = rest.find(FTYPE);
            let (at, float) = match (p, f) {
                (None, None) => break,
                (Some(p), None) => (p, false),
                (None, Some(f)) => (f, true),
                (Some(p), Some(f)) => (p.min(f), f < p),
            };
            out.push_str(&rest[..at]);
            let tail = &rest[at + PTYPE.len()..];
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            let n: usize = tail[..digits].parse().unwrap_or(1);
            out.push_str(&type_of(n.saturating_sub(1), float));
            rest = &tail[digits..];
        }
        out.push_str(rest);
        out
    }

    /// This plan with each placeholder of `consts` (a quoted literal that
    /// stood for a subquery while the statement was planned) replaced by
    /// its SQL: constant subqueries over reference tables, which every
    /// shard (the final query's too) computes alike.
    pub fn with_consts(mut self, consts: &[(String, String)]) -> AggSpec {
        for (placeholder, sql) in consts {
            for text in [
                &mut self.original,
                &mut self.partial_sql,
                &mut self.partial_lite,
                &mut self.final_pg,
                &mut self.final_lite,
            ] {
                *text = text.replace(placeholder.as_str(), sql);
            }
        }
        self
    }

    /// This aggregation inside `outer`, a query that reads its result in
    /// place of the marker subquery (`crate::analyze::nested`): the final
    /// query becomes `outer` with the marker replaced by this final query.
    pub fn nest(&self, outer: &Query) -> AggSpec {
        let marker = crate::analyze::nested::MARKER;
        let text = outer.to_string();
        let with = outer.with.is_some();
        let wrap = |fin: &str| {
            let t = text.replace(marker, fin);
            match t.strip_prefix("WITH ") {
                // After the final query's own `WITH sg_partial(...) AS (...)`.
                Some(rest) if with => format!(", {rest}"),
                _ => t,
            }
        };
        AggSpec {
            original: text.replace(marker, &self.original),
            final_pg: wrap(&self.final_pg),
            final_lite: wrap(&self.final_lite),
            ..self.clone()
        }
    }
}

fn parse_expr(s: &str) -> Expr {
    crate::parse::parse_expr(s).unwrap_or_else(|e| panic!("generated expression {s:?} parses: {e}"))
}

fn col(i: usize) -> Expr {
    Expr::Identifier(Ident::new(column_name(i)))
}

fn fname(f: &ast::Function) -> String {
    f.name
        .0
        .last()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => ident_name(i),
            ast::ObjectNamePart::Function(f) => f.name.value.to_lowercase(),
        })
        .unwrap_or_default()
}

/// Is this call an aggregate (and not a window function)?
fn is_agg_call(e: &Expr) -> Option<&ast::Function> {
    match e {
        Expr::Function(f) if f.over.is_none() && crate::analyze::is_aggregate(&fname(f)) => Some(f),
        Expr::Function(f)
            if f.over.is_none() && (f.filter.is_some() || !f.within_group.is_empty()) =>
        {
            Some(f)
        }
        _ => None,
    }
}

/// Aggregates that can be rebuilt from per-shard partial results.
fn splittable(name: &str) -> bool {
    matches!(
        name,
        "count"
            | "sum"
            | "min"
            | "max"
            | "avg"
            | "bool_and"
            | "bool_or"
            | "every"
            | "bit_and"
            | "bit_or"
            | "bit_xor"
            | "stddev"
            | "stddev_samp"
            | "stddev_pop"
            | "variance"
            | "var_samp"
            | "var_pop"
    )
}

/// A partial column: the expression a shard computes, and whether it is a
/// partial GROUP BY key.
#[derive(Debug, Clone, PartialEq)]
struct PCol {
    expr: Expr,
    key: bool,
}

struct Builder {
    raw: bool,
    /// Raw rows for window functions, with no grouping: every expression
    /// without a window function is computed by the shards (where its
    /// functions see the shard's own data), not by the final query.
    rows: bool,
    cols: Vec<PCol>,
    /// Indices of columns the final query groups by.
    final_group: Vec<usize>,
    /// Group expressions (resolved); `group_cols[i]` is their column.
    group: Vec<Expr>,
    group_cols: Vec<usize>,
    /// Replacements: (PostgreSQL, SQLite) expression per placeholder.
    repl: Vec<(Expr, Expr)>,
    no_float4: Vec<usize>,
    err: Option<String>,
    /// The single relation's qualifier (see [`canon`]).
    qual: Option<String>,
}

const PLACEHOLDER: &str = "sg_placeholder_";

impl Builder {
    fn add(&mut self, expr: Expr, key: bool) -> usize {
        let expr = canon(&expr, self.qual.as_deref());
        let c = PCol { expr, key };
        if let Some(i) = self.cols.iter().position(|x| *x == c) {
            return i;
        }
        self.cols.push(c);
        self.cols.len() - 1
    }

    /// A partial aggregate `name(args) FILTER (...)` as a column.
    fn partial(&mut self, f: &ast::Function, name: &str, arg: Option<Expr>) -> usize {
        let args = match arg {
            None => vec![FunctionArg::Unnamed(FunctionArgExpr::Wildcard)],
            Some(a) => vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(a))],
        };
        let call = ast::Function {
            name: ast::ObjectName::from(vec![Ident::new(name)]),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(ast::FunctionArgumentList {
                duplicate_treatment: None,
                args,
                clauses: Vec::new(),
            }),
            within_group: Vec::new(),
            filter: f.filter.clone(),
            null_treatment: None,
            over: None,
        };
        self.add(Expr::Function(call), false)
    }

    /// A raw column holding a row-level expression (a partial GROUP BY key
    /// unless the partial query returns raw rows).
    fn raw_col(&mut self, e: &Expr) -> Expr {
        // A row `(a, b)` travels as its fields and is rebuilt in the final
        // query: an anonymous record does not read back from text.
        if let Expr::Tuple(items) = e {
            return Expr::Tuple(items.iter().map(|i| self.raw_col(i)).collect());
        }
        // `ROW(a, b)` likewise.
        if let Expr::Function(f) = e
            && f.name.to_string().eq_ignore_ascii_case("row")
            && f.filter.is_none()
            && f.over.is_none()
            && f.within_group.is_empty()
            && let FunctionArguments::List(l) = &f.args
            && l.duplicate_treatment.is_none()
            && l.clauses.is_empty()
            && l.args
                .iter()
                .all(|a| matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Expr(_))))
        {
            let mut row = f.clone();
            if let FunctionArguments::List(l) = &mut row.args {
                for a in &mut l.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                        *x = self.raw_col(x);
                    }
                }
            }
            return Expr::Function(row);
        }
        let key = !self.raw;
        col(self.add(e.clone(), key))
    }

    /// The replacement of one expression, if it is a group expression, an
    /// aggregate or a column reference.
    fn replace(&mut self, e: &Expr) -> Option<(Expr, Expr)> {
        // (Expressions without columns stay: a window frame's offsets
        // must be constants in the final query.)
        if self.rows && !has_window(e) && has_column(e) {
            let c = col(self.add(e.clone(), false));
            return Some((c.clone(), c));
        }
        let ec = canon(e, self.qual.as_deref());
        if let Some(i) = self.group.iter().position(|g| *g == ec) {
            let c = col(self.group_cols[i]);
            return Some((c.clone(), c));
        }
        if let Some(f) = is_agg_call(e) {
            return match self.aggregate(f) {
                Ok(r) => Some(r),
                Err(why) => {
                    self.err.get_or_insert(why);
                    None
                }
            };
        }
        if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            // A column the statement's GROUP BY determines (PostgreSQL
            // allows other columns of a table grouped by its primary key;
            // the shard checks that): one more final group column.
            let i = self.add(e.clone(), false);
            if !self.final_group.contains(&i) {
                self.final_group.push(i);
            }
            let c = col(i);
            return Some((c.clone(), c));
        }
        None
    }

    /// Rebuild an aggregate from partial columns.
    fn aggregate(&mut self, f: &ast::Function) -> Result<(Expr, Expr), String> {
        let name = fname(f);
        if !matches!(f.parameters, FunctionArguments::None) {
            return Err(format!("aggregate {name}() with parameters"));
        }
        let list = match &f.args {
            FunctionArguments::List(l) => Some(l),
            FunctionArguments::None => None,
            FunctionArguments::Subquery(_) => return Err(format!("{name}() over a subquery")),
        };
        let distinct =
            list.is_some_and(|l| l.duplicate_treatment == Some(DuplicateTreatment::Distinct));
        let mut args: Vec<Option<&Expr>> = Vec::new();
        for a in list.map(|l| l.args.as_slice()).unwrap_or_default() {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(Some(e)),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => args.push(None),
                _ => return Err(format!("{name}() with named or qualified * arguments")),
            }
        }
        let mut inner_order: Vec<&ast::OrderByExpr> = Vec::new();
        for c in list.map(|l| l.clauses.as_slice()).unwrap_or_default() {
            match c {
                FunctionArgumentClause::OrderBy(v) => inner_order.extend(v.iter()),
                _ => return Err(format!("{name}() with a {c} clause")),
            }
        }
        if f.null_treatment.is_some() {
            return Err(format!("{name}() with IGNORE/RESPECT NULLS"));
        }
        let whole = !self.raw && !distinct && f.within_group.is_empty() && splittable(&name);
        if !whole {
            // Rebuild the same call over raw columns.
            let mut call = f.clone();
            let ordered_set = !call.within_group.is_empty();
            if let FunctionArguments::List(l) = &mut call.args {
                for a in &mut l.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a {
                        if matches!(e, Expr::Value(_)) {
                            // A constant (a separator, a fraction) stays.
                        } else if ordered_set {
                            // Direct arguments are per group, not per row.
                            match self.group.iter().position(|g| g == e) {
                                Some(i) => *e = col(self.group_cols[i]),
                                None => {
                                    return Err(format!(
                                        "{name}() with a direct argument that is not a constant"
                                    ));
                                }
                            }
                        } else {
                            *e = self.raw_col(e);
                        }
                    }
                }
                for c in &mut l.clauses {
                    if let FunctionArgumentClause::OrderBy(v) = c {
                        for o in v {
                            o.expr = self.raw_col(&o.expr);
                        }
                    }
                }
            }
            for o in &mut call.within_group {
                o.expr = self.raw_col(&o.expr);
            }
            if let Some(fl) = &mut call.filter {
                **fl = self.raw_col(fl);
            }
            let e = Expr::Function(call);
            return Ok((e.clone(), e));
        }
        let arg = match args.as_slice() {
            [a] => *a,
            _ => return Err(format!("{name}() with {} arguments", args.len())),
        };
        if arg.is_none() && name != "count" {
            return Err(format!("{name}(*)"));
        }
        let c = |i: usize| column_name(i);
        Ok(match name.as_str() {
            "count" => {
                let p = self.partial(f, "count", arg.cloned());
                (
                    parse_expr(&format!("CAST(coalesce(sum({}), 0) AS bigint)", c(p))),
                    parse_expr(&format!("coalesce(sum({}), 0)", c(p))),
                )
            }
            "sum" => {
                let p = self.partial(f, "sum", arg.cloned());
                (
                    parse_expr(&format!("CAST(sum({}) AS {PTYPE}{})", c(p), p + 1)),
                    parse_expr(&format!("sum({})", c(p))),
                )
            }
            "min" | "max" | "bool_and" | "bool_or" | "bit_and" | "bit_or" | "bit_xor" | "every" => {
                let p = self.partial(f, &name, arg.cloned());
                let fin = if name == "every" { "bool_and" } else { &name };
                let e = parse_expr(&format!("{fin}({})", c(p)));
                (e.clone(), e)
            }
            "avg" => {
                let s = self.partial(f, "sum", arg.cloned());
                let n = self.partial(f, "count", arg.cloned());
                self.no_float4.push(s);
                (
                    // + 0: PostgreSQL's float avg adds to a 0 sum, so the
                    // average of -0 is 0, not the -0 a bare sum keeps.
                    parse_expr(&format!(
                        "(sum({}) + 0) / CAST(sum({}) AS numeric)",
                        c(s),
                        c(n)
                    )),
                    parse_expr(&format!("sum({}) * 1.0 / sum({})", c(s), c(n))),
                )
            }
            _ => {
                // stddev / variance: exact numeric sums of x and x*x, and
                // PostgreSQL's own formula (numeric_stddev_internal).
                let x = arg.cloned().expect("checked above");
                let num = |e: &Expr| format!("CAST(({e}) AS numeric)");
                let n = self.partial(f, "count", Some(x.clone()));
                let s = self.partial(f, "sum", Some(parse_expr(&num(&x))));
                let ss = self.partial(
                    f,
                    "sum",
                    Some(parse_expr(&format!("{} * {}", num(&x), num(&x)))),
                );
                let probe = self.partial(f, "min", Some(x));
                let sample = !name.ends_with("_pop");
                let (n, s, ss) = (c(n), c(s), c(ss));
                let numer = format!("(sum({n}) * sum({ss}) - sum({s}) * sum({s}))");
                let denom = if sample {
                    format!("(sum({n}) * (sum({n}) - 1))")
                } else {
                    format!("(sum({n}) * sum({n}))")
                };
                let min_n = if sample { 1 } else { 0 };
                let var = format!("{numer} / {denom}");
                // sqrt() of the variance given 20 more digits, rounded
                // once to the variance's scale as PostgreSQL's sqrt_var does.
                let value = if name.starts_with("stddev") {
                    // (NaN and infinite sums have no scale: NaN.)
                    format!(
                        "round(sqrt(round({var}, coalesce(scale({var}), 0) + 20)), coalesce(scale({var}), 0))"
                    )
                } else {
                    var
                };
                let e = parse_expr(&format!(
                    "CAST(CASE WHEN coalesce(sum({n}), 0) <= {min_n} THEN NULL WHEN {numer} <= 0 THEN 0 ELSE {value} END AS {FTYPE}{})",
                    probe + 1
                ));
                (e.clone(), e)
            }
        })
    }
}

struct Rewriter<'b> {
    b: &'b mut Builder,
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Some(r) = self.b.replace(e) {
            self.b.repl.push(r);
            *e = Expr::Identifier(Ident::new(format!("{PLACEHOLDER}{}", self.b.repl.len())));
        }
        if self.b.err.is_some() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

struct Fill<'b> {
    repl: &'b [(Expr, Expr)],
    lite: bool,
}

impl VisitorMut for Fill<'_> {
    type Break = ();
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Expr::Identifier(i) = e
            && let Some(n) = i.value.strip_prefix(PLACEHOLDER)
            && let Ok(n) = n.parse::<usize>()
            && let Some((pg, lite)) = self.repl.get(n.wrapping_sub(1))
        {
            let r = if self.lite { lite } else { pg };
            // Parenthesized unless atomic: it replaces one operand.
            *e = match r {
                Expr::Identifier(_) | Expr::Function(_) | Expr::Cast { .. } => r.clone(),
                _ => Expr::Nested(Box::new(r.clone())),
            };
        }
        ControlFlow::Continue(())
    }
}

/// The output column name PostgreSQL gives an unaliased select item.
pub fn output_name(e: &Expr) -> String {
    let q = "?column?".to_string();
    match e {
        Expr::Identifier(i) => ident_name(i),
        Expr::CompoundIdentifier(v) => v.last().map(ident_name).unwrap_or(q),
        Expr::Function(f) => fname(f),
        Expr::Nested(e) | Expr::Collate { expr: e, .. } => output_name(e),
        Expr::Cast {
            expr, data_type, ..
        } => {
            let inner = output_name(expr);
            if inner != q {
                inner
            } else {
                type_output_name(data_type).unwrap_or(q)
            }
        }
        Expr::Case { .. } => "case".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Substring { shorthand, .. } => if *shorthand { "substr" } else { "substring" }.into(),
        // A subscript keeps its base's name; a field access is the field's.
        Expr::CompoundFieldAccess { root, access_chain } => match access_chain.last() {
            Some(ast::AccessExpr::Dot(Expr::Identifier(i))) => ident_name(i),
            Some(ast::AccessExpr::Subscript(_)) => output_name(root),
            _ => q,
        },
        Expr::IsNormalized { .. } => "is_normalized".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Overlay { .. } => "overlay".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::Trim { trim_where, .. } => match trim_where {
            Some(ast::TrimWhereField::Leading) => "ltrim".into(),
            Some(ast::TrimWhereField::Trailing) => "rtrim".into(),
            _ => "btrim".into(),
        },
        Expr::Array(_) => "array".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Interval(_) => "interval".into(),
        Expr::TypedString(t) => type_output_name(&t.data_type).unwrap_or(q),
        Expr::AtTimeZone { .. } => "timezone".into(),
        _ => q,
    }
}

fn type_output_name(t: &ast::DataType) -> Option<String> {
    use ast::DataType as D;
    Some(
        match t {
            D::Int(_) | D::Integer(_) | D::Int4(_) => "int4",
            D::BigInt(_) | D::Int8(_) => "int8",
            D::SmallInt(_) | D::Int2(_) => "int2",
            D::Text => "text",
            D::Numeric(_) | D::Decimal(_) | D::Dec(_) => "numeric",
            D::Real | D::Float4 => "float4",
            D::DoublePrecision | D::Float8 | D::Double(_) => "float8",
            D::Bool | D::Boolean => "bool",
            D::Varchar(_) | D::CharacterVarying(_) => "varchar",
            D::Char(_) | D::Character(_) => "bpchar",
            D::Date => "date",
            D::Timestamp(_, ast::TimezoneInfo::Tz | ast::TimezoneInfo::WithTimeZone) => {
                "timestamptz"
            }
            D::Timestamp(_, _) => "timestamp",
            D::Uuid => "uuid",
            D::Bytea => "bytea",
            D::JSON => "json",
            D::JSONB => "jsonb",
            D::Interval { .. } => "interval",
            // An array type is named by its element type.
            D::Array(
                ast::ArrayElemTypeDef::SquareBracket(t, _) | ast::ArrayElemTypeDef::AngleBracket(t),
            ) => return type_output_name(t),
            _ => return None,
        }
        .to_string(),
    )
}

fn number(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn item_expr(i: &SelectItem) -> Option<&Expr> {
    match i {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    }
}

fn item_name(i: &SelectItem) -> Option<String> {
    match i {
        SelectItem::UnnamedExpr(e) => Some(output_name(e)),
        SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
        _ => None,
    }
}

/// Does the top-level SELECT need an aggregation step across shards?
pub fn needs_aggregation(q: &Query) -> bool {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return false;
    };
    if s.distinct.is_some() && s.distinct != Some(Distinct::All) {
        return true;
    }
    if s.having.is_some() {
        return true;
    }
    if !matches!(&s.group_by, GroupByExpr::Expressions(v, m) if v.is_empty() && m.is_empty()) {
        return true;
    }
    let mut found = false;
    let mut probe = |e: &Expr| {
        // Aggregates of subqueries belong to the subqueries: only those at
        // depth 0 count.
        struct F<'a>(&'a mut bool, usize);
        impl ast::Visitor for F<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
                if self.1 == 0 && is_agg_call(e).is_some() {
                    *self.0 = true;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            }
            fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
                self.1 += 1;
                ControlFlow::Continue(())
            }
            fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
                self.1 -= 1;
                ControlFlow::Continue(())
            }
        }
        let _ = ast::Visit::visit(e, &mut F(&mut found, 0));
    };
    for i in &s.projection {
        if let Some(e) = item_expr(i) {
            probe(e);
        }
    }
    if let Some(ob) = &q.order_by
        && let OrderByKind::Expressions(list) = &ob.kind
    {
        for o in list {
            probe(&o.expr);
        }
    }
    found
}

/// The reason [`group_exprs`] gives for a GROUP BY position past the end
/// of the select list (which PostgreSQL itself rejects).
pub const OUT_OF_RANGE: &str = "GROUP BY position out of range";

/// The statement's GROUP BY expressions, with positions and output aliases
/// resolved to the select list's expressions.
pub fn group_exprs(s: &Select) -> Result<Vec<Expr>, String> {
    let GroupByExpr::Expressions(list, modifiers) = &s.group_by else {
        return Err("GROUP BY ALL".into());
    };
    if !modifiers.is_empty() {
        return Err("GROUP BY ... WITH ROLLUP/CUBE".into());
    }
    let mut out = Vec::new();
    for g in list {
        // GROUPING SETS, ROLLUP and CUBE: the partial query groups by every
        // expression in them; the final query regroups by the sets.
        let leaves: Vec<&Expr> = match g {
            Expr::Rollup(sets) | Expr::Cube(sets) | Expr::GroupingSets(sets) => {
                sets.iter().flatten().collect()
            }
            // The empty grouping set: no expression (see `empty_set`).
            Expr::Tuple(t) if t.is_empty() => Vec::new(),
            g => vec![g],
        };
        for g in leaves {
            if matches!(g, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)) {
                return Err("nested GROUPING SETS, ROLLUP or CUBE".into());
            }
            let e = group_expr(s, g)?;
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// Does the SELECT's GROUP BY list the empty grouping set `()` (one
/// group of all rows, even of none, as without GROUP BY but with an
/// aggregate)? Both queries keep it where they have no other keys.
fn empty_set(s: &Select) -> bool {
    matches!(&s.group_by, GroupByExpr::Expressions(list, _)
        if list.iter().any(|g| matches!(g, Expr::Tuple(t) if t.is_empty())))
}

/// `keys`, or `()` for none where the statement groups by `()`.
fn or_empty_set(keys: Vec<Expr>, empty: bool) -> Vec<Expr> {
    if keys.is_empty() && empty {
        vec![Expr::Tuple(Vec::new())]
    } else {
        keys
    }
}

/// Does the SELECT group by GROUPING SETS, ROLLUP or CUBE?
pub fn has_grouping_sets(s: &Select) -> bool {
    matches!(&s.group_by, GroupByExpr::Expressions(list, _)
        if list.iter().any(|g| matches!(g, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_))))
}

/// One GROUP BY item as the expression it stands for (a position or an
/// output name of the select list, or itself).
fn group_expr(s: &Select, g: &Expr) -> Result<Expr, String> {
    Ok(if let Some(n) = number(g) {
        let item = n.checked_sub(1).and_then(|i| s.projection.get(i));
        if item.is_none() && !crate::merge::has_wildcard(&s.projection) {
            return Err(OUT_OF_RANGE.into());
        }
        item.and_then(item_expr)
            .ok_or("GROUP BY a position of *")?
            .clone()
    } else if let Expr::Identifier(id) = g {
        // PostgreSQL takes a GROUP BY name for a FROM column first, an
        // output name only when no column has it. A column is known to
        // exist when the alias's own expression names it (`lower(name) AS
        // name ... GROUP BY name` groups by the column `name`).
        let name = ident_name(id);
        s.projection
            .iter()
            .find_map(|i| match i {
                SelectItem::ExprWithAlias { expr, alias }
                    if ident_name(alias) == name && !names_column(expr, &name) =>
                {
                    Some(expr.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| g.clone())
    } else {
        g.clone()
    })
}

/// The bare GROUP BY names that [`group_expr`] takes for an output
/// column's expression (an alias whose expression does not name it).
/// PostgreSQL groups by a FROM column of that name when there is one, which
/// only the shard's catalog knows: see [`guard_alias_groups`].
pub fn alias_groups(s: &Select) -> Vec<String> {
    let GroupByExpr::Expressions(list, _) = &s.group_by else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    let leaves = list.iter().flat_map(|g| match g {
        Expr::Rollup(sets) | Expr::Cube(sets) | Expr::GroupingSets(sets) => {
            sets.iter().flatten().collect::<Vec<_>>()
        }
        g => vec![g],
    });
    for g in leaves {
        let Expr::Identifier(id) = g else { continue };
        let name = ident_name(id);
        let aliased = s.projection.iter().any(|i| {
            matches!(i, SelectItem::ExprWithAlias { expr, alias }
                if ident_name(alias) == name && !names_column(expr, &name))
        });
        if aliased && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The name of the one-row relation [`guard_alias_groups`] adds.
pub const PROBE: &str = "sg_probe";

/// Make a query that groups by the output columns `names` (see
/// [`alias_groups`]) fail on a shard where a FROM column has one of those
/// names, instead of grouping by something else than PostgreSQL would: a
/// one-row relation `sg_probe` with columns of those names joins the FROM
/// list, and the WHERE clause reads each name bare. Where no FROM column
/// has the name it reads `sg_probe`'s NULL (no row is lost); where one has
/// it the shard answers `column reference "..." is ambiguous`. The query's
/// own GROUP BY must then not use the names bare (the partial query groups
/// by expressions).
pub fn guard_alias_groups(s: &mut Select, names: &[String]) {
    if names.is_empty() || s.from.is_empty() {
        return;
    }
    let cols: Vec<String> = names
        .iter()
        .map(|n| format!("NULL AS {}", Ident::with_quote('"', n)))
        .collect();
    let probe = format!("(SELECT {}) AS {PROBE}", cols.join(", "));
    let from = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!("SELECT 1 FROM {probe}"))
        .and_then(|mut p| p.parse_query());
    let Ok(q) = from else { return };
    let SetExpr::Select(ps) = *q.body else { return };
    s.from.extend(ps.from);
    let check = names
        .iter()
        .map(|n| format!("{} IS NULL", Ident::with_quote('"', n)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let check = parse_expr(&check);
    s.selection = Some(match s.selection.take() {
        Some(w) => Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(w))),
            op: ast::BinaryOperator::And,
            right: Box::new(check),
        },
        None => check,
    });
}

/// A single-relation SELECT with the relation's qualifier taken off its
/// columns (`items.id` is `id` when `items` is all there is), so that one
/// column written two ways is one column of the partial query (and
/// `DISTINCT ON (id) ... ORDER BY items.id` still matches in the final
/// query). Subqueries keep theirs (a name there may mean their own
/// column), and so does a whole GROUP BY, ORDER BY or DISTINCT ON item
/// that would become an output name (which those clauses may read as the
/// select item instead). `None` when there is nothing to take off; else
/// the query and the qualifier.
fn unqualify(q: &Query) -> Option<(Query, String)> {
    struct Unq {
        qual: String,
        depth: usize,
    }
    impl VisitorMut for Unq {
        type Break = ();
        fn pre_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.depth == 0
                && let Expr::CompoundIdentifier(p) = e
                && let [q, c] = p.as_slice()
                && ident_name(q) == self.qual
            {
                *e = Expr::Identifier(c.clone());
            }
            ControlFlow::Continue(())
        }
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    let [from] = s.from.as_slice() else {
        return None;
    };
    if !from.joins.is_empty() {
        return None;
    }
    // (A subquery in FROM is a single relation too: TypeORM's `SELECT
    // DISTINCT d.cid AS x FROM (...) d ORDER BY cid`.)
    let qual = match &from.relation {
        ast::TableFactor::Table { alias: Some(a), .. }
        | ast::TableFactor::Derived {
            alias: Some(a),
            lateral: false,
            ..
        } => ident_name(&a.name),
        ast::TableFactor::Table {
            name, alias: None, ..
        } => ident_name(name.0.last()?.as_ident()?),
        _ => return None,
    };
    // Output names that stand for something other than the column of
    // that name.
    let is_column = |e: &Expr, c: &str| match e {
        Expr::Identifier(i) => ident_name(i) == c,
        Expr::CompoundIdentifier(p) => {
            matches!(p.as_slice(), [q, i] if ident_name(q) == qual && ident_name(i) == c)
        }
        _ => false,
    };
    let names: Vec<String> = s
        .projection
        .iter()
        .filter_map(|i| {
            let n = item_name(i)?;
            (!item_expr(i).is_some_and(|e| is_column(e, &n))).then_some(n)
        })
        .collect();
    let mut v = Unq {
        qual: qual.clone(),
        depth: 0,
    };
    let mut out = q.clone();
    let SetExpr::Select(s) = out.body.as_mut() else {
        return None;
    };
    // A whole item that is a qualified column whose name is such an
    // output name stays as written.
    let keep = |e: &Expr| {
        matches!(e, Expr::CompoundIdentifier(p)
            if p.last().is_some_and(|c| names.contains(&ident_name(c))))
    };
    for i in &mut s.projection {
        let _ = i.visit(&mut v);
    }
    if let Some(w) = &mut s.selection {
        let _ = w.visit(&mut v);
    }
    if let Some(h) = &mut s.having {
        let _ = h.visit(&mut v);
    }
    if let GroupByExpr::Expressions(list, _) = &mut s.group_by {
        for g in list.iter_mut() {
            match g {
                Expr::Rollup(sets) | Expr::Cube(sets) | Expr::GroupingSets(sets) => {
                    for e in sets.iter_mut().flatten().filter(|e| !keep(e)) {
                        let _ = e.visit(&mut v);
                    }
                }
                g if !keep(g) => {
                    let _ = g.visit(&mut v);
                }
                _ => {}
            }
        }
    }
    if let Some(Distinct::On(list)) = &mut s.distinct {
        for e in list.iter_mut().filter(|e| !keep(e)) {
            let _ = e.visit(&mut v);
        }
    }
    if let Some(ob) = &mut out.order_by
        && let OrderByKind::Expressions(list) = &mut ob.kind
    {
        for o in list.iter_mut().filter(|o| !keep(&o.expr)) {
            let _ = o.expr.visit(&mut v);
        }
    }
    Some((out, qual))
}

/// A whole item that [`unqualify`] kept qualified (`c.x`), as the column
/// it is (`x`): where expressions are matched up (the partial query's
/// columns, the groups), it is the same column as a bare `x` elsewhere.
fn canon(e: &Expr, qual: Option<&str>) -> Expr {
    match (e, qual) {
        (Expr::CompoundIdentifier(p), Some(q)) if matches!(p.as_slice(), [a, _] if ident_name(a) == q) => {
            Expr::Identifier(p[1].clone())
        }
        _ => e.clone(),
    }
}

/// One DISTINCT ON item as the expression it stands for. PostgreSQL reads
/// DISTINCT ON as it reads ORDER BY: a number is the select item at that
/// position, a bare name that is an output name is that item's expression
/// (before any column of that name), anything else is itself.
fn distinct_on_expr(s: &Select, e: &Expr) -> Result<Expr, String> {
    if let Some(n) = number(e) {
        return n
            .checked_sub(1)
            .and_then(|i| s.projection.get(i))
            .and_then(item_expr)
            .cloned()
            .ok_or_else(|| "DISTINCT ON a position that is not a select item".into());
    }
    if let Expr::Identifier(id) = e {
        let name = ident_name(id);
        let found: Vec<&Expr> = s
            .projection
            .iter()
            .filter(|i| item_name(i).as_deref() == Some(name.as_str()))
            .filter_map(item_expr)
            .collect();
        if let Some(first) = found.first() {
            if found.iter().any(|x| x != first) {
                return Err(format!(
                    "DISTINCT ON \"{name}\", a name of two select items"
                ));
            }
            return Ok((*first).clone());
        }
    }
    Ok(e.clone())
}

/// Does `e` refer to a column called `name` (bare or qualified)?
pub(crate) fn names_column(e: &Expr, name: &str) -> bool {
    crate::find::any_expr(e, |x| match x {
        Expr::Identifier(i) => ident_name(i) == name,
        Expr::CompoundIdentifier(p) => p.last().is_some_and(|i| ident_name(i) == name),
        _ => false,
    })
}

fn has_subquery(e: &Expr) -> Option<String> {
    crate::find::any_query(e, |_| true)
        .then(|| "a subquery in the select list, HAVING or ORDER BY".into())
}

/// Does `e` name a column?
fn has_column(e: &Expr) -> bool {
    crate::find::any_expr(e, |e| {
        matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
    })
}

/// Does `e` call a window function?
pub fn has_window(e: &Expr) -> bool {
    crate::find::any_expr(e, |e| matches!(e, Expr::Function(f) if f.over.is_some()))
}

/// Plan the two-step aggregation of a multi-shard SELECT (parameters must
/// already be inlined), or say why it cannot be done.
pub fn plan_aggregate(q: &Query) -> Result<AggSpec, String> {
    let unqualified = unqualify(q);
    let qual = unqualified.as_ref().map(|(_, q)| q.as_str());
    let q = unqualified.as_ref().map_or(q, |(q, _)| q);
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Err("a set operation".into());
    };
    // (FETCH FIRST n ROWS ONLY is a LIMIT by now; WITH TIES stays for
    // the final query, which sorts the merged groups.)
    if q.fetch.as_ref().is_some_and(|f| f.percent || !f.with_ties) {
        return Err("FETCH FIRST ... PERCENT".into());
    }
    if !q.locks.is_empty() {
        return Err("FOR UPDATE/SHARE".into());
    }
    if s.top.is_some()
        || s.into.is_some()
        || !s.named_window.is_empty()
        || s.qualify.is_some()
        || !s.lateral_views.is_empty()
        || !s.cluster_by.is_empty()
        || !s.distribute_by.is_empty()
        || !s.sort_by.is_empty()
        || s.prewhere.is_some()
        || !s.connect_by.is_empty()
    {
        return Err("this SELECT form".into());
    }
    let mut finals: Vec<&Expr> = Vec::new();
    for i in &s.projection {
        match item_expr(i) {
            Some(e) => finals.push(e),
            None => return Err("* in the select list of an aggregate or DISTINCT".into()),
        }
    }
    if let Some(h) = &s.having {
        finals.push(h);
    }
    let order: Vec<ast::OrderByExpr> = match &q.order_by {
        None => Vec::new(),
        Some(ob) => match &ob.kind {
            OrderByKind::Expressions(l) => l.clone(),
            OrderByKind::All(_) => return Err("ORDER BY ALL".into()),
        },
    };
    for o in &order {
        if o.with_fill.is_some() {
            return Err("ORDER BY ... WITH FILL".into());
        }
        finals.push(&o.expr);
    }
    let distinct_on: Vec<Expr> = match &s.distinct {
        Some(Distinct::On(v)) => v
            .iter()
            .map(|e| distinct_on_expr(s, e))
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    for e in &finals {
        if let Some(why) = has_subquery(e) {
            return Err(why);
        }
    }
    // Window functions run in the final query, after its GROUP BY (over
    // the merged groups) or, without one, over the shards' raw rows.
    let windowed = finals.iter().any(|e| has_window(e));
    let mut group: Vec<Expr> = group_exprs(s)?.iter().map(|g| canon(g, qual)).collect();
    let names: Vec<String> = s.projection.iter().filter_map(item_name).collect();
    // Output names ORDER BY may use as they are. A name that only plain
    // columns of that name carry is the column instead (the same value):
    // matched as an expression, it finds the first select item equal to
    // it, as PostgreSQL does (`DISTINCT ON (o.id) o.id AS k, o.id ...
    // ORDER BY o.id` must not sort by the third item).
    let column_itself = |i: &Ident| {
        let n = ident_name(i);
        s.projection
            .iter()
            .filter(|it| item_name(it).as_deref() == Some(&n))
            .all(|it| matches!(item_expr(it), Some(Expr::Identifier(c)) if ident_name(c) == n))
    };
    let is_output_ref = |e: &Expr| match e {
        Expr::Identifier(i) => names.contains(&ident_name(i)) && !column_itself(i),
        _ => number(e).is_some(),
    };
    let mut any_agg = false;
    let mut raw = false;
    for e in &finals {
        struct F<'a> {
            any: &'a mut bool,
            raw: &'a mut bool,
        }
        impl ast::Visitor for F<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
                if let Some(f) = is_agg_call(e) {
                    *self.any = true;
                    let distinct = matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment == Some(DuplicateTreatment::Distinct));
                    if !distinct && (!splittable(&fname(f)) || !f.within_group.is_empty()) {
                        *self.raw = true;
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = ast::Visit::visit(
            *e,
            &mut F {
                any: &mut any_agg,
                raw: &mut raw,
            },
        );
    }
    let empty = empty_set(s);
    let grouped = any_agg || !group.is_empty() || s.having.is_some() || empty;
    if !grouped && windowed {
        raw = true;
    } else if !grouped {
        // Plain DISTINCT (ON): the partial query groups by everything the
        // final DISTINCT and ORDER BY look at.
        for e in s
            .projection
            .iter()
            .filter_map(item_expr)
            .chain(&distinct_on)
        {
            let e = canon(e, qual);
            if !group.contains(&e) {
                group.push(e);
            }
        }
        for o in &order {
            let e = canon(&o.expr, qual);
            if !is_output_ref(&o.expr) && !group.contains(&e) {
                group.push(e);
            }
        }
    }
    let mut b = Builder {
        raw,
        rows: raw && !grouped && windowed,
        cols: Vec::new(),
        final_group: Vec::new(),
        group: group.clone(),
        group_cols: Vec::new(),
        repl: Vec::new(),
        no_float4: Vec::new(),
        err: None,
        qual: qual.map(str::to_string),
    };
    for g in &group {
        let i = b.add(g.clone(), !raw);
        b.group_cols.push(i);
        b.final_group.push(i);
    }
    // The final SELECT.
    let mut fin = s.as_ref().clone();
    fin.from = vec![ast::TableWithJoins {
        relation: ast::TableFactor::Table {
            name: ast::ObjectName::from(vec![Ident::new(PARTIAL)]),
            alias: None,
            args: None,
            with_hints: Vec::new(),
            version: None,
            with_ordinality: false,
            partitions: Vec::new(),
            json_path: None,
            sample: None,
            index_hints: Vec::new(),
        },
        joins: Vec::new(),
    }];
    fin.selection = None;
    let mut projection = Vec::new();
    for item in &s.projection {
        let (mut e, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e.clone(), Ident::with_quote('"', output_name(e))),
            SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), alias.clone()),
            _ => unreachable!("checked above"),
        };
        let _ = e.visit(&mut Rewriter { b: &mut b });
        projection.push(SelectItem::ExprWithAlias { expr: e, alias });
    }
    fin.projection = projection;
    if let Some(h) = &mut fin.having {
        let _ = h.visit(&mut Rewriter { b: &mut b });
    }
    if let Some(Distinct::On(v)) = &mut fin.distinct {
        *v = distinct_on.clone();
        for e in v {
            let _ = e.visit(&mut Rewriter { b: &mut b });
        }
    }
    let mut fin_order = order.clone();
    for o in &mut fin_order {
        if !is_output_ref(&o.expr) {
            let _ = o.expr.visit(&mut Rewriter { b: &mut b });
        }
    }
    if let Some(why) = b.err.take() {
        return Err(why);
    }
    fin.group_by = GroupByExpr::Expressions(
        if !grouped {
            Vec::new()
        } else if has_grouping_sets(s) {
            // The statement's own sets, over the partial columns.
            let GroupByExpr::Expressions(list, _) = &s.group_by else {
                unreachable!("checked by group_exprs")
            };
            let column = |g: &Expr| -> Result<Expr, String> {
                let e = canon(&group_expr(s, g)?, qual);
                let i = group.iter().position(|x| *x == e).ok_or("a grouping set")?;
                Ok(col(b.final_group[i]))
            };
            let sets = |v: &Vec<Vec<Expr>>| -> Result<Vec<Vec<Expr>>, String> {
                v.iter()
                    .map(|set| set.iter().map(column).collect())
                    .collect()
            };
            list.iter()
                .map(|g| {
                    Ok(match g {
                        Expr::Rollup(v) => Expr::Rollup(sets(v)?),
                        Expr::Cube(v) => Expr::Cube(sets(v)?),
                        Expr::GroupingSets(v) => Expr::GroupingSets(sets(v)?),
                        g => column(g)?,
                    })
                })
                .collect::<Result<Vec<Expr>, String>>()?
        } else {
            or_empty_set(b.final_group.iter().map(|i| col(*i)).collect(), empty)
        },
        Vec::new(),
    );
    let mut final_q = q.clone();
    final_q.with = None;
    *final_q.body = SetExpr::Select(Box::new(fin));
    if let Some(ob) = &mut final_q.order_by {
        ob.kind = OrderByKind::Expressions(fin_order);
    }
    let render = |lite: bool| {
        let mut f = final_q.clone();
        let _ = f.visit(&mut Fill {
            repl: &b.repl,
            lite,
        });
        f.to_string()
    };
    let final_pg = render(false);
    let final_lite = render(true);
    // The partial query.
    let mut part = s.as_ref().clone();
    part.distinct = None;
    part.having = None;
    part.projection = b
        .cols
        .iter()
        .enumerate()
        .map(|(i, c)| SelectItem::ExprWithAlias {
            expr: c.expr.clone(),
            alias: Ident::new(column_name(i)),
        })
        .collect();
    // Constants are no keys (PostgreSQL rejects `GROUP BY true`, and takes
    // `GROUP BY 1` as a position).
    let keys: Vec<Expr> = if raw {
        Vec::new()
    } else {
        b.cols
            .iter()
            .filter(|c| c.key && !matches!(c.expr, Expr::Value(_)))
            .map(|c| c.expr.clone())
            .collect()
    };
    if keys.is_empty() && !raw && !group.is_empty() && grouped {
        // GROUP BY only constants: the partial query aggregates without
        // groups, and would answer an empty shard with a row where a
        // grouped query has none.
        part.having = Some(parse_expr("count(*) > 0"));
    }
    part.group_by = GroupByExpr::Expressions(or_empty_set(keys, empty && !raw), Vec::new());
    if part.projection.is_empty() {
        // SELECT count(*) ... where nothing is needed: still one column.
        part.projection.push(SelectItem::ExprWithAlias {
            expr: Expr::Value(Value::Number("1".into(), false).into()),
            alias: Ident::new(column_name(0)),
        });
    }
    let guarded = alias_groups(s);
    guard_alias_groups(&mut part, &guarded);
    let columns = part.projection.len();
    let mut partial_q = q.clone();
    partial_q.order_by = None;
    partial_q.limit_clause = None;
    partial_q.fetch = None;
    let mut lite = part.clone();
    for item in &mut lite.projection {
        if let SelectItem::ExprWithAlias { expr, .. } = item {
            *expr = parse_expr(&format!("quote({expr})"));
        }
    }
    *partial_q.body = SetExpr::Select(Box::new(lite));
    let partial_lite = partial_q.to_string();
    *partial_q.body = SetExpr::Select(Box::new(part));
    Ok(AggSpec {
        partial_sql: partial_q.to_string(),
        partial_lite,
        original: q.to_string(),
        final_pg,
        final_lite,
        columns,
        no_float4: b.no_float4,
        raw,
        alias_groups: guarded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sql: &str) -> Result<AggSpec, String> {
        let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        let ast::Statement::Query(q) = &stmts[0] else {
            panic!("not a query")
        };
        plan_aggregate(q)
    }

    #[test]
    fn count_and_avg_split() {
        let a = plan("SELECT status, count(*), avg(amount) FROM orders GROUP BY status").unwrap();
        assert_eq!(
            a.partial_sql,
            "SELECT status AS sg_c1, count(*) AS sg_c2, sum(amount) AS sg_c3, count(amount) AS sg_c4 FROM orders GROUP BY status"
        );
        assert_eq!(
            a.final_pg,
            "SELECT sg_c1 AS \"status\", CAST(coalesce(sum(sg_c2), 0) AS BIGINT) AS \"count\", ((sum(sg_c3) + 0) / CAST(sum(sg_c4) AS NUMERIC)) AS \"avg\" FROM sg_partial GROUP BY sg_c1"
        );
        assert!(!a.raw);
        assert_eq!(a.no_float4, vec![2]);
    }

    #[test]
    fn string_agg_goes_raw() {
        let a = plan("SELECT string_agg(name, ',' ORDER BY name), count(*) FROM t").unwrap();
        assert!(a.raw);
        assert_eq!(a.partial_sql, "SELECT name AS sg_c1 FROM t");
    }

    #[test]
    fn distinct_aggregate_adds_keys() {
        let a = plan("SELECT g, count(DISTINCT x), sum(y) FROM t GROUP BY g").unwrap();
        assert_eq!(
            a.partial_sql,
            "SELECT g AS sg_c1, x AS sg_c2, sum(y) AS sg_c3 FROM t GROUP BY g, x"
        );
        assert!(
            a.final_pg.contains("count(DISTINCT sg_c2)"),
            "{}",
            a.final_pg
        );
    }

    #[test]
    fn distinct_row_travels_as_fields() {
        let a = plan("SELECT count(DISTINCT (x, y)) FROM t").unwrap();
        assert_eq!(
            a.partial_sql,
            "SELECT x AS sg_c1, y AS sg_c2 FROM t GROUP BY x, y"
        );
        assert!(
            a.final_pg.contains("count(DISTINCT (sg_c1, sg_c2))"),
            "{}",
            a.final_pg
        );
        let a = plan("SELECT count(DISTINCT ROW(x, y + 1)) FROM t").unwrap();
        assert_eq!(
            a.partial_sql,
            "SELECT x AS sg_c1, y + 1 AS sg_c2 FROM t GROUP BY x, y + 1"
        );
        assert!(
            a.final_pg.contains("count(DISTINCT ROW(sg_c1, sg_c2))"),
            "{}",
            a.final_pg
        );
    }

    #[test]
    fn type_tokens_are_filled() {
        let a = plan("SELECT sum(x) FROM t").unwrap();
        let s = a.final_sql(false, "VALUES (1)", |i, f| format!("T{i}{f}"));
        assert_eq!(
            s,
            "WITH sg_partial(sg_c1) AS (VALUES (1)) SELECT CAST(sum(sg_c1) AS T0false) AS \"sum\" FROM sg_partial"
        );
    }

    #[test]
    fn refusals() {
        assert!(plan("SELECT * FROM t GROUP BY id").is_err());
        // A window over the groups runs in the final query.
        let w = plan("SELECT count(*) OVER () FROM t GROUP BY id").unwrap();
        assert!(w.final_pg.contains("count(*) OVER ()"), "{}", w.final_pg);
        assert!(!w.partial_sql.contains("OVER"), "{}", w.partial_sql);
        assert!(plan("SELECT g, count(*) FROM t GROUP BY ROLLUP (g)").is_ok());
        assert!(plan("SELECT g FROM t GROUP BY g HAVING count(*) > (SELECT 1)").is_err());
    }

    #[test]
    fn output_names() {
        let e = |s: &str| parse_expr(s);
        assert_eq!(output_name(&e("count(*)")), "count");
        assert_eq!(output_name(&e("o.Amount")), "amount");
        assert_eq!(output_name(&e("sum(x)::int")), "sum");
        assert_eq!(output_name(&e("1 + count(*)")), "?column?");
        assert_eq!(output_name(&e("CASE WHEN true THEN 1 END")), "case");
        assert_eq!(output_name(&e("'1'::int")), "int4");
        assert_eq!(output_name(&e("'{1}'::int[]")), "int4");
        assert_eq!(output_name(&e("substr(name, 1, 2)")), "substr");
        assert_eq!(output_name(&e("substring(name from 1 for 2)")), "substring");
        assert_eq!(
            output_name(&e("(array_agg(id ORDER BY id))[1]")),
            "array_agg"
        );
        assert_eq!(output_name(&e("max(name) IS NORMALIZED")), "is_normalized");
    }
}
