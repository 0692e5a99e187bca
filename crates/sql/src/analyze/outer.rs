//! Reference tables LEFT JOINed to sharded tables, across shards
//! (`products p LEFT JOIN order_items i ON i.product_id = p.id`): every
//! shard holds all of `p`, so each shard's answer has the matches of its
//! own rows of `i` and also a NULL-extended row for every `p` without a
//! match *on that shard*. The union over shards is PostgreSQL's rows plus
//! such extra rows, whose sharded columns are all NULL. A query may scatter
//! when the extra rows cannot change its answer:
//!
//! - its WHERE rejects a NULL sharded column (the join is then an inner
//!   one: no extra rows survive), or
//! - it groups (GROUP BY, DISTINCT, or aggregates without GROUP BY) by
//!   reference columns only, and every aggregate ignores the extra rows:
//!   one that skips NULL inputs (count(x), sum, min, max, avg, ...) over a
//!   strict expression of sharded columns (NULL when they are; `count(*)`
//!   and aggregates of reference columns would count the extra rows).
//!
//! Anything else keeps the refusal (or one shard): a plain row listing
//! would show the extra rows.

use super::*;

/// Aggregates that skip NULL inputs, so a NULL-extended row adds nothing.
const NULL_SKIPPING: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "bool_and",
    "bool_or",
    "every",
    "string_agg",
    "stddev",
    "stddev_samp",
    "stddev_pop",
    "variance",
    "var_samp",
    "var_pop",
];

/// Which side of the join the names of a query belong to.
struct Sides {
    /// Names qualifying reference-table columns (and those of table
    /// functions, the same on every shard).
    reference: Vec<String>,
    /// The aliases of table functions (`generate_series(1, 3) g`): also
    /// the name of their column.
    functions: Vec<String>,
    /// Names qualifying sharded-table columns, and each table's columns
    /// (empty: not known).
    sharded: Vec<(String, Vec<String>)>,
}

/// What an expression reads.
#[derive(Default)]
struct Reads {
    sharded: bool,
    /// A column whose side is not known, a subquery, or a window.
    unknown: bool,
}

impl Sides {
    /// The side a column reference is on: `Some(true)` sharded,
    /// `Some(false)` reference, `None` not known.
    fn column(&self, e: &Expr) -> Option<bool> {
        match e {
            Expr::CompoundIdentifier(p) if p.len() >= 2 => {
                let q = ident_name(&p[p.len() - 2]);
                if self.sharded.iter().any(|(s, _)| *s == q) {
                    Some(true)
                } else if self.reference.contains(&q) {
                    Some(false)
                } else {
                    None
                }
            }
            Expr::Identifier(i) => {
                let n = ident_name(i);
                if self.functions.contains(&n) {
                    return Some(false);
                }
                // Unqualified: a reference column only when every sharded
                // table's columns are known and none has the name.
                let known = self
                    .sharded
                    .iter()
                    .all(|(_, cols)| !cols.is_empty() && !cols.contains(&n));
                known.then_some(false)
            }
            _ => None,
        }
    }

    /// What `e` reads outside aggregate calls (whose arguments `agg`
    /// checks: `false` makes the whole expression unknown).
    fn reads(&self, e: &Expr, agg: &mut dyn FnMut(&ast::Function) -> bool) -> Reads {
        let mut r = Reads::default();
        let _ = visit_outside_aggregates(e, &mut |x| match x {
            Node::Column(c) => match self.column(c) {
                Some(true) => r.sharded = true,
                Some(false) => {}
                None => r.unknown = true,
            },
            Node::Aggregate(f) => {
                if !agg(f) {
                    r.unknown = true;
                }
            }
            Node::Opaque => r.unknown = true,
        });
        r
    }

    /// Whether `e` is NULL whenever the sharded columns are NULL (built
    /// of strict operators over at least one sharded column).
    fn strict_sharded(&self, e: &Expr) -> bool {
        fn walk(s: &Sides, e: &Expr, touches: &mut bool) -> bool {
            use ast::BinaryOperator as B;
            match e {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) => match s.column(e) {
                    Some(sharded) => {
                        *touches |= sharded;
                        true
                    }
                    None => false,
                },
                Expr::Value(_) => true,
                Expr::Nested(x) | Expr::Cast { expr: x, .. } => walk(s, x, touches),
                Expr::UnaryOp {
                    op: ast::UnaryOperator::Minus | ast::UnaryOperator::Plus,
                    expr,
                } => walk(s, expr, touches),
                Expr::BinaryOp { left, op, right } => {
                    matches!(
                        op,
                        B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo | B::StringConcat
                    ) && walk(s, left, touches)
                        && walk(s, right, touches)
                }
                _ => false,
            }
        }
        let mut touches = false;
        walk(self, e, &mut touches) && touches
    }

    /// Whether a WHERE conjunct is false or NULL when the sharded columns
    /// are NULL (a comparison, IN, BETWEEN, LIKE or IS NOT NULL of a
    /// strict expression of them, or a sharded boolean column).
    fn rejects_null(&self, c: &Expr) -> bool {
        use ast::BinaryOperator as B;
        match c {
            Expr::Nested(x) => self.rejects_null(x),
            Expr::BinaryOp {
                left,
                op: B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq,
                right,
            } => self.strict_sharded(left) || self.strict_sharded(right),
            Expr::IsNotNull(x)
            | Expr::IsTrue(x)
            | Expr::IsFalse(x)
            | Expr::InList { expr: x, .. }
            | Expr::Between { expr: x, .. }
            | Expr::Like { expr: x, .. }
            | Expr::ILike { expr: x, .. } => self.strict_sharded(x),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => self.column(c) == Some(true),
            _ => false,
        }
    }

    /// Whether an aggregate call adds nothing for a NULL-extended row.
    fn skips_extra_rows(&self, f: &ast::Function) -> bool {
        let name = object_parts(&f.name).pop().unwrap_or_default();
        if !NULL_SKIPPING.contains(&name.as_str()) || f.filter.is_some() || f.over.is_some() {
            return false;
        }
        let FunctionArguments::List(list) = &f.args else {
            return false;
        };
        let Some(first) = list.args.first() else {
            return false;
        };
        let (FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
        | FunctionArg::Named {
            arg: FunctionArgExpr::Expr(e),
            ..
        }) = first
        else {
            // count(*), t.*
            return false;
        };
        // string_agg's delimiter is read once per row, not tested for NULL.
        let rest_ok = list.args.iter().skip(1).all(|a| {
            matches!(
                a,
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(_)))
            )
        });
        self.strict_sharded(e) && (list.args.len() == 1 || (name == "string_agg" && rest_ok))
    }
}

/// What [`visit_outside_aggregates`] meets.
enum Node<'a> {
    Column(&'a Expr),
    Aggregate(&'a ast::Function),
    /// A subquery or a window function.
    Opaque,
}

/// Calls `f` on the columns, aggregate calls (not looking inside them) and
/// subqueries or windows of `e`.
fn visit_outside_aggregates<'a>(e: &'a Expr, f: &mut dyn FnMut(Node<'a>)) -> ControlFlow<()> {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => f(Node::Column(e)),
        Expr::Function(func) if func.over.is_some() => f(Node::Opaque),
        Expr::Function(func)
            if is_aggregate(&object_parts(&func.name).pop().unwrap_or_default()) =>
        {
            f(Node::Aggregate(func))
        }
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => f(Node::Opaque),
        _ => {
            // Every direct sub-expression, through the generic visitor
            // (which goes depth-first: the first level is taken here).
            let mut children: Vec<&'a Expr> = Vec::new();
            direct_children(e, &mut children);
            for c in children {
                visit_outside_aggregates(c, f)?;
            }
        }
    }
    ControlFlow::Continue(())
}

/// The direct sub-expressions of `e` (one level).
fn direct_children<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::Nested(x)
        | Expr::UnaryOp { expr: x, .. }
        | Expr::Cast { expr: x, .. }
        | Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::IsTrue(x)
        | Expr::IsFalse(x)
        | Expr::IsNotTrue(x)
        | Expr::IsNotFalse(x)
        | Expr::IsUnknown(x)
        | Expr::IsNotUnknown(x)
        | Expr::Collate { expr: x, .. } => out.push(x),
        Expr::BinaryOp { left, right, .. }
        | Expr::IsDistinctFrom(left, right)
        | Expr::IsNotDistinctFrom(left, right) => {
            out.push(left);
            out.push(right);
        }
        Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
            out.push(expr);
            out.push(pattern);
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            out.extend([expr.as_ref(), low.as_ref(), high.as_ref()]);
        }
        Expr::InList { expr, list, .. } => {
            out.push(expr);
            out.extend(list.iter());
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            out.extend(operand.as_deref());
            for w in conditions {
                out.push(&w.condition);
                out.push(&w.result);
            }
            out.extend(else_result.as_deref());
        }
        Expr::Function(f) => {
            if let FunctionArguments::List(l) = &f.args {
                for a in &l.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x))
                        | FunctionArg::Named {
                            arg: FunctionArgExpr::Expr(x),
                            ..
                        }
                        | FunctionArg::ExprNamed {
                            arg: FunctionArgExpr::Expr(x),
                            ..
                        } => out.push(x),
                        _ => {}
                    }
                }
            }
        }
        Expr::Tuple(v) => out.extend(v.iter()),
        _ => {}
    }
}

/// Whether `e` holds only forms [`direct_children`] knows (so that
/// [`Sides::reads`] sees every column in it).
fn known_forms(e: &Expr) -> bool {
    let mut ok = true;
    let _ = ast::visit_expressions(e, |x: &Expr| {
        let plain = matches!(
            x,
            Expr::Identifier(_)
                | Expr::CompoundIdentifier(_)
                | Expr::Value(_)
                | Expr::TypedString { .. }
                | Expr::Nested(_)
                | Expr::UnaryOp { .. }
                | Expr::Cast { .. }
                | Expr::IsNull(_)
                | Expr::IsNotNull(_)
                | Expr::IsTrue(_)
                | Expr::IsFalse(_)
                | Expr::IsNotTrue(_)
                | Expr::IsNotFalse(_)
                | Expr::IsUnknown(_)
                | Expr::IsNotUnknown(_)
                | Expr::Collate { .. }
                | Expr::BinaryOp { .. }
                | Expr::IsDistinctFrom(..)
                | Expr::IsNotDistinctFrom(..)
                | Expr::Like { .. }
                | Expr::ILike { .. }
                | Expr::Between { .. }
                | Expr::InList { .. }
                | Expr::Case { .. }
                | Expr::Function(_)
                | Expr::Tuple(_)
        );
        if !plain {
            ok = false;
            return ControlFlow::Break(());
        }
        if let Expr::Function(f) = x
            && !matches!(f.args, FunctionArguments::List(_) | FunctionArguments::None)
        {
            ok = false;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    ok
}

/// Whether a SELECT whose outer joins preserve reference tables gives
/// PostgreSQL's answer when it runs on every shard and is merged as usual
/// (see the module header). The shape taken: reference tables (inner or
/// cross joined among themselves), then LEFT JOINs of sharded tables,
/// each after the first tied by an ON equality to one before it.
pub(super) fn reference_left_join_scatters(q: &Query, topo: &Topology) -> bool {
    if q.with.is_some() {
        return false;
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return false;
    };
    let [twj] = s.from.as_slice() else {
        return false;
    };
    let Some(sides) = sides(twj, topo) else {
        return false;
    };
    let group_exprs = match &s.group_by {
        ast::GroupByExpr::Expressions(g, _) => g.as_slice(),
        ast::GroupByExpr::All(_) => return false,
    };
    let exprs_known = s
        .selection
        .iter()
        .chain(s.projection.iter().filter_map(|i| match i {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        }))
        .chain(group_exprs)
        .chain(s.having.iter())
        .chain(order_exprs(q))
        .all(known_forms);
    if !exprs_known || !s.named_window.is_empty() || s.qualify.is_some() {
        return false;
    }
    // WHERE: reference columns only, or a conjunct that turns the join
    // into an inner one.
    let mut where_sharded = false;
    if let Some(w) = &s.selection {
        let mut cs = Vec::new();
        conjuncts(w, &mut cs);
        if cs.iter().any(|c| sides.rejects_null(c)) {
            return true;
        }
        for c in cs {
            let r = sides.reads(c, &mut |_| false);
            where_sharded |= r.sharded || r.unknown;
        }
    }
    if where_sharded {
        return false;
    }
    // Grouped by reference columns, aggregates that skip the extra rows.
    let group_by = match &s.group_by {
        ast::GroupByExpr::Expressions(g, m) if m.is_empty() => g,
        _ => return false,
    };
    let mut aggregates = 0usize;
    let mut agg = |f: &ast::Function| {
        aggregates += 1;
        sides.skips_extra_rows(f)
    };
    let reference_only = |r: Reads| !r.sharded && !r.unknown;
    for g in group_by {
        if !reference_only(sides.reads(g, &mut |_| false)) {
            return false;
        }
    }
    for item in &s.projection {
        let ok = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                reference_only(sides.reads(e, &mut agg))
            }
            SelectItem::QualifiedWildcard(
                ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                _,
            ) => object_parts(n)
                .pop()
                .is_some_and(|q| sides.reference.contains(&q)),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    if let Some(h) = &s.having
        && !reference_only(sides.reads(h, &mut agg))
    {
        return false;
    }
    let aliases: Vec<String> = s
        .projection
        .iter()
        .filter_map(|i| match i {
            SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
            _ => None,
        })
        .collect();
    for o in order_exprs(q) {
        let alias = matches!(o, Expr::Identifier(i) if aliases.contains(&ident_name(i)));
        let position = matches!(o, Expr::Value(_));
        if !alias && !position && !reference_only(sides.reads(o, &mut agg)) {
            return false;
        }
    }
    let distinct = matches!(s.distinct, Some(ast::Distinct::Distinct));
    if matches!(s.distinct, Some(ast::Distinct::On(_))) {
        return false;
    }
    // Something must fold the extra rows away.
    !group_by.is_empty() || distinct || aggregates > 0
}

/// The ORDER BY expressions of `q`.
fn order_exprs(q: &Query) -> Vec<&Expr> {
    match q.order_by.as_ref().map(|o| &o.kind) {
        Some(ast::OrderByKind::Expressions(list)) => list.iter().map(|o| &o.expr).collect(),
        _ => Vec::new(),
    }
}

/// The sides of a FROM item of the taken shape (see
/// [`reference_left_join_scatters`]).
fn sides(twj: &TableWithJoins, topo: &Topology) -> Option<Sides> {
    use JoinOperator as J;
    // A table's class and qualifier; whether it is a table function.
    let table = |f: &TableFactor| match f {
        TableFactor::Table {
            name,
            args: None,
            with_hints,
            ..
        } if with_hints.is_empty() => Some((classify(name, topo), factor_qual(f)?, false)),
        // A table function of constants: the same rows on every shard.
        TableFactor::Table {
            name,
            args: Some(args),
            with_hints,
            ..
        } if with_hints.is_empty()
            && is_pure_table_function(name)
            && args.settings.is_none()
            && args.args.iter().all(constant_arg) =>
        {
            Some((Class::Reference, factor_qual(f)?, true))
        }
        _ => None,
    };
    let mut sides = Sides {
        reference: Vec::new(),
        functions: Vec::new(),
        sharded: Vec::new(),
    };
    // `s RIGHT JOIN r ON ...` is `r LEFT JOIN s ON ...`.
    let items: Vec<(Option<JoinOperator>, &TableFactor)> = match twj.joins.as_slice() {
        [j] if matches!(j.join_operator, J::Right(_) | J::RightOuter(_)) => {
            let (J::Right(c) | J::RightOuter(c)) = &j.join_operator else {
                return None;
            };
            vec![
                (None, &j.relation),
                (Some(J::LeftOuter(c.clone())), &twj.relation),
            ]
        }
        _ => std::iter::once((None, &twj.relation))
            .chain(
                twj.joins
                    .iter()
                    .map(|j| (Some(j.join_operator.clone()), &j.relation)),
            )
            .collect(),
    };
    for (op, factor) in items {
        let (class, qual, function) = table(factor)?;
        if sides.reference.contains(&qual) || sides.sharded.iter().any(|(s, _)| *s == qual) {
            return None;
        }
        if function {
            sides.functions.push(qual.clone());
        }
        let Some(op) = op else {
            // The first table: a reference one.
            if !matches!(class, Class::Reference) {
                return None;
            }
            sides.reference.push(qual);
            continue;
        };
        match (&op, class) {
            (J::Join(_) | J::Inner(_) | J::CrossJoin(_), Class::Reference)
                if sides.sharded.is_empty() =>
            {
                sides.reference.push(qual);
            }
            (J::Left(c) | J::LeftOuter(c), Class::Sharded(rule)) => {
                let JoinConstraint::On(on) = c else {
                    return None;
                };
                if !known_forms(on) || !on_known(on) {
                    return None;
                }
                // After the first, each is tied to an earlier one (so it is
                // NULL-extended wherever that one is).
                if !sides.sharded.is_empty() && !tied(on, &qual, &sides) {
                    return None;
                }
                let cols = match &rule.kind {
                    TableKind::Sharded { all_columns, .. } => all_columns.clone(),
                    TableKind::Reference => Vec::new(),
                };
                sides.sharded.push((qual, cols));
            }
            _ => return None,
        }
    }
    (!sides.sharded.is_empty()).then_some(sides)
}

/// Whether a table function's argument is a constant (no column, no
/// subquery).
fn constant_arg(a: &FunctionArg) -> bool {
    let e = match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
        | FunctionArg::Named {
            arg: FunctionArgExpr::Expr(e),
            ..
        } => e,
        _ => return false,
    };
    let mut constant = known_forms(e);
    let _ = ast::visit_expressions(e, |x: &Expr| {
        if matches!(x, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            constant = false;
        }
        ControlFlow::<()>::Continue(())
    });
    constant
}

/// Whether an ON clause holds no subquery or window (its columns may be
/// unqualified: the ON only decides matches).
fn on_known(on: &Expr) -> bool {
    let mut ok = true;
    let _ = visit_outside_aggregates(on, &mut |n| {
        if !matches!(n, Node::Column(_)) {
            ok = false;
        }
    });
    ok
}

/// Whether `on` has an equality between a column of `qual` and a column
/// of a sharded table joined before it.
fn tied(on: &Expr, qual: &str, sides: &Sides) -> bool {
    let earlier = |x: &str| x != qual && sides.sharded.iter().any(|(s, _)| s == x);
    column_equalities(on)
        .iter()
        .any(|((l, _), (r, _))| (l == qual && earlier(r)) || (r == qual && earlier(l)))
}
