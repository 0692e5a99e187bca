//! A small PostgreSQL catalog over an embedded shard, for the queries
//! drivers and ORMs make on their own (type lookups at connect, "does this
//! table exist" before CREATE): `pg_type`, `pg_namespace`, `pg_class`,
//! `pg_attribute`, `information_schema.tables` and `.columns` as temporary
//! views over SQLite's schema, and the catalog functions they call.
//! Statements name them with or without `pg_catalog.` (the translation
//! takes the qualifier off; `information_schema.x` becomes
//! `information_schema_x`).

use super::types;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;

/// Base types: (oid, name, array type oid, length).
const TYPES: &[(u32, &str, u32, i16)] = &[
    (16, "bool", 1000, 1),
    (17, "bytea", 1001, -1),
    (18, "char", 1002, 1),
    (19, "name", 1003, 64),
    (20, "int8", 1016, 8),
    (21, "int2", 1005, 2),
    (23, "int4", 1007, 4),
    (25, "text", 1009, -1),
    (26, "oid", 1028, 4),
    (114, "json", 199, -1),
    (700, "float4", 1021, 4),
    (701, "float8", 1022, 8),
    (1042, "bpchar", 1014, -1),
    (1043, "varchar", 1015, -1),
    (1082, "date", 1182, 4),
    (1083, "time", 1183, 8),
    (1114, "timestamp", 1115, 8),
    (1184, "timestamptz", 1185, 8),
    (1186, "interval", 1187, 16),
    (1700, "numeric", 1231, -1),
    (2950, "uuid", 2951, 16),
    (3802, "jsonb", 3807, -1),
];

/// The oid of a type name (`integer`, `int4`, `pg_catalog.text`), if known.
fn type_oid(name: &str) -> Option<u32> {
    let n = name.trim().to_ascii_lowercase();
    let n = n
        .strip_prefix("pg_catalog.")
        .unwrap_or(&n)
        .trim_matches('"');
    if let Some((o, ..)) = TYPES.iter().find(|(_, t, ..)| *t == n) {
        return Some(*o);
    }
    match types::oid_for_decl(n) {
        (types::oid::TEXT, _) if n != "text" => None,
        (o, _) => Some(o),
    }
}

/// Create the views and functions on a connection.
///
/// # Errors
/// SQLite refusing one.
pub fn install(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    db.create_scalar_function("pg_decl_oid", 1, det, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Text(t) => types::oid_for_decl(&String::from_utf8_lossy(t)).0,
            _ => types::oid::TEXT,
        })
    })?;
    // A relation name as written (`public."T"`, `t`): its bare name.
    db.create_scalar_function("pg_relname", 1, det, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Text(t) => {
                let t = String::from_utf8_lossy(t);
                let last = t.rsplit('.').next().unwrap_or_default();
                Some(
                    match last.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
                        Some(quoted) => quoted.replace("\"\"", "\""),
                        None => last.to_ascii_lowercase(),
                    },
                )
            }
            _ => None,
        })
    })?;
    db.create_scalar_function("to_regtype", 1, det, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Text(t) => type_oid(&String::from_utf8_lossy(t)),
            _ => None,
        })
    })?;
    db.create_scalar_function("format_type", 2, det, |ctx| {
        let o = ctx.get::<Option<i64>>(0)?;
        Ok(
            o.and_then(|o| TYPES.iter().find(|(t, ..)| i64::from(*t) == o))
                .map(|(_, n, ..)| n.to_string()),
        )
    })?;
    for (name, n) in [
        ("pg_table_is_visible", 1),
        ("pg_type_is_visible", 1),
        ("has_table_privilege", 2),
        ("has_schema_privilege", 2),
        ("has_database_privilege", 2),
    ] {
        db.create_scalar_function(name, n, det, |_| Ok(1))?;
    }
    db.create_scalar_function("pg_get_userbyid", 1, det, |_| Ok("shardgate".to_string()))?;
    db.create_scalar_function("pg_encoding_to_char", 1, det, |_| Ok("UTF8".to_string()))?;
    for (name, n) in [
        ("obj_description", 2),
        ("col_description", 2),
        ("pg_get_indexdef", 1),
        ("pg_get_constraintdef", 1),
    ] {
        db.create_scalar_function(name, n, det, |_| Ok(None::<String>))?;
    }
    db.create_scalar_function("pg_get_expr", 2, det, |ctx| ctx.get::<Option<String>>(0))?;
    let types: Vec<String> = TYPES
        .iter()
        .map(|(o, n, a, l)| format!("({o}, '{n}', 11, {a}, ',', 'b', 0, {l}, 0, 0, 0, -1, 10)"))
        .chain(TYPES.iter().map(|(o, n, a, _)| {
            format!("({a}, '_{n}', 11, 0, ',', 'b', {o}, -1, 0, 0, 0, -1, 10)")
        }))
        .collect();
    db.execute_batch(&format!(
        "CREATE TEMP VIEW IF NOT EXISTS pg_type (oid, typname, typnamespace, typarray, typdelim, typtype, typelem, typlen, typbasetype, typrelid, typnotnull, typtypmod, typowner) AS VALUES {};
         CREATE TEMP VIEW IF NOT EXISTS pg_namespace (oid, nspname, nspowner) AS VALUES (11, 'pg_catalog', 10), (2200, 'public', 10), (13000, 'information_schema', 10);
         CREATE TEMP VIEW IF NOT EXISTS pg_class (oid, relname, relnamespace, relkind, relowner, relam, relpersistence, relispartition, reltuples, relhasindex, reltype) AS
           SELECT 16384 + rowid, name, 2200, CASE type WHEN 'table' THEN 'r' WHEN 'view' THEN 'v' ELSE 'i' END, 10, 0, 'p', 0, -1, 0, 0
           FROM sqlite_master WHERE type IN ('table', 'view', 'index') AND name NOT LIKE 'sqlite_%';
         CREATE TEMP VIEW IF NOT EXISTS pg_attribute (attrelid, attname, atttypid, attnum, attnotnull, attisdropped, atttypmod, attlen, atthasdef, attidentity, attgenerated, attcollation) AS
           SELECT 16384 + m.rowid, p.name, pg_decl_oid(p.type), p.cid + 1, p.\"notnull\" OR p.pk > 0, 0, -1, -1, p.dflt_value IS NOT NULL, '', '', 0
           FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%';
         CREATE TEMP VIEW IF NOT EXISTS information_schema_tables (table_catalog, table_schema, table_name, table_type) AS
           SELECT 'shardgate', 'public', name, CASE type WHEN 'view' THEN 'VIEW' ELSE 'BASE TABLE' END
           FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%';
         CREATE TEMP VIEW IF NOT EXISTS information_schema_columns (table_catalog, table_schema, table_name, column_name, ordinal_position, data_type, is_nullable, column_default) AS
           SELECT 'shardgate', 'public', m.name, p.name, p.cid + 1, lower(p.type), CASE WHEN p.\"notnull\" OR p.pk > 0 THEN 'NO' ELSE 'YES' END, p.dflt_value
           FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%';",
        types.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_views_describe_the_schema() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        install(&db).unwrap();
        db.execute_batch("CREATE TABLE t (id bigint PRIMARY KEY, name text)")
            .unwrap();
        let n: i64 = db
            .query_row(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 't' AND c.relkind = 'r' AND n.nspname = 'public'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        let ty: i64 = db
            .query_row(
                "SELECT a.atttypid FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname = 't' AND a.attname = 'id'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ty, 20);
        let none: Option<i64> = db
            .query_row(
                "SELECT oid FROM pg_type WHERE oid = to_regtype('hstore')",
                [],
                |r| r.get(0),
            )
            .unwrap_or(None);
        assert_eq!(none, None);
        let arr: i64 = db
            .query_row(
                "SELECT typarray FROM pg_type WHERE typname = 'int4'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(arr, 1007);
    }
}
