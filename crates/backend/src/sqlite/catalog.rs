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

/// A declared type's modifier as PostgreSQL stores it (`varchar(20)` is
/// 24, `numeric(10,2)` is (10 << 16 | 2) + 4), or -1.
fn decl_typmod(decl: &str) -> i64 {
    let d = decl.to_ascii_lowercase();
    let Some((base, rest)) = d.split_once('(') else {
        return -1;
    };
    let args: Vec<i64> = rest
        .trim_end_matches(')')
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    match (base.trim(), args.as_slice()) {
        ("numeric" | "decimal", [p]) => (p << 16) + 4,
        ("numeric" | "decimal", [p, s]) => ((p << 16) | s) + 4,
        (_, [n]) => n + 4,
        _ => -1,
    }
}

/// `format_type`: a type's SQL name with its modifier.
fn format_type(name: &str, typmod: i64) -> String {
    let sql = match name {
        "int8" => "bigint",
        "int4" => "integer",
        "int2" => "smallint",
        "float8" => "double precision",
        "float4" => "real",
        "bool" => "boolean",
        "varchar" => "character varying",
        "bpchar" => "character",
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "time" => "time without time zone",
        n => n,
    };
    match (name, typmod) {
        (_, m) if m < 4 => sql.to_string(),
        ("numeric", m) => format!("numeric({},{})", (m - 4) >> 16, (m - 4) & 0xffff),
        ("varchar" | "bpchar", m) => format!("{sql}({})", m - 4),
        _ => sql.to_string(),
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
    // No session lock is ever held here (asyncpg's pool calls it).
    db.create_scalar_function("pg_advisory_unlock_all", 0, det, |_| Ok(None::<String>))?;
    // `::uuid`: the canonical text (any of the forms PostgreSQL reads).
    db.create_scalar_function("pg_uuid", 1, det, |ctx| match ctx.get_raw(0) {
        ValueRef::Null => Ok(None),
        v => {
            let text = match v {
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Integer(i) => i.to_string(),
                ValueRef::Real(r) => r.to_string(),
                _ => String::new(),
            };
            shardgate_core::KeyValue::parse(shardgate_core::KeyType::Uuid, &text)
                .map(|u| Some(u.to_string()))
                .map_err(|_| {
                    rusqlite::Error::UserFunctionError(
                        format!("invalid input syntax for type uuid: \"{text}\"").into(),
                    )
                })
        }
    })?;
    // A divisor that is zero fails, as on PostgreSQL (see translate).
    db.create_scalar_function("pg_divisor", 1, det, |ctx| {
        let zero = match ctx.get_raw(0) {
            ValueRef::Integer(0) => true,
            ValueRef::Real(r) => r == 0.0,
            ValueRef::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .is_some_and(|v| v == 0.0),
            _ => false,
        };
        if zero {
            return Err(rusqlite::Error::UserFunctionError(
                "division by zero".into(),
            ));
        }
        ctx.get::<rusqlite::types::Value>(0)
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
        let typmod = ctx.get::<Option<i64>>(1)?.unwrap_or(-1);
        Ok(
            o.and_then(|o| TYPES.iter().find(|(t, ..)| i64::from(*t) == o))
                .map(|(_, n, ..)| format_type(n, typmod)),
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
    for name in ["obj_description", "col_description", "shobj_description"] {
        db.create_scalar_function(name, -1, det, |_| Ok(None::<String>))?;
    }
    db.create_scalar_function("pg_decl_typmod", 1, det, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Text(t) => decl_typmod(&String::from_utf8_lossy(t)),
            _ => -1,
        })
    })?;
    db.create_scalar_function("pg_get_expr", -1, det, |ctx| ctx.get::<Option<String>>(0))?;
    db.create_scalar_function("array_to_string", -1, det, |ctx| {
        ctx.get::<Option<String>>(0)
    })?;
    db.create_scalar_function("pg_regex", 3, det, |ctx| {
        let (Some(text), Some(pattern)) =
            (ctx.get::<Option<String>>(0)?, ctx.get::<Option<String>>(1)?)
        else {
            return Ok(None);
        };
        let icase = ctx.get::<i64>(2)? != 0;
        let re = regex::RegexBuilder::new(&pattern)
            .case_insensitive(icase)
            .build()
            .map_err(|e| {
                rusqlite::Error::UserFunctionError(
                    format!("invalid regular expression: {e}").into(),
                )
            })?;
        Ok(Some(re.is_match(&text)))
    })?;
    let types: Vec<String> = TYPES
        .iter()
        .map(|(o, n, a, l)| {
            let coll = if matches!(*n, "text" | "varchar" | "bpchar" | "name") {
                100
            } else {
                0
            };
            format!("({o}, '{n}', 11, {a}, ',', 'b', 0, {l}, 0, 0, 0, -1, 10, {coll})")
        })
        .chain(TYPES.iter().map(|(o, n, a, _)| {
            format!("({a}, '_{n}', 11, 0, ',', 'b', {o}, -1, 0, 0, 0, -1, 10, 0)")
        }))
        .collect();
    db.execute_batch(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS pg_type (oid INTEGER, typname TEXT, typnamespace INTEGER, typarray INTEGER, typdelim TEXT, typtype TEXT, typelem INTEGER, typlen INTEGER, typbasetype INTEGER, typrelid INTEGER, typnotnull boolean, typtypmod INTEGER, typowner INTEGER, typcollation INTEGER);
         DELETE FROM pg_type;
         INSERT INTO pg_type VALUES {};
         CREATE TEMP TABLE IF NOT EXISTS pg_namespace (oid INTEGER, nspname TEXT, nspowner INTEGER);
         DELETE FROM pg_namespace;
         INSERT INTO pg_namespace VALUES (11, 'pg_catalog', 10), (2200, 'public', 10), (13000, 'information_schema', 10);
         CREATE TEMP TABLE IF NOT EXISTS pg_am (oid INTEGER, amname TEXT, amtype TEXT);
         DELETE FROM pg_am;
         INSERT INTO pg_am VALUES (2, 'heap', 't'), (403, 'btree', 'i');
         CREATE TEMP TABLE IF NOT EXISTS pg_database (oid INTEGER, datname TEXT, datdba INTEGER, encoding INTEGER, datcollate TEXT, datctype TEXT, daticulocale TEXT, datlocprovider TEXT, datacl TEXT, datallowconn boolean, datistemplate boolean);
         DELETE FROM pg_database;
         INSERT INTO pg_database VALUES (16383, 'shardgate', 10, 6, 'C', 'C', NULL, 'c', NULL, 1, 0);
         CREATE TEMP TABLE IF NOT EXISTS pg_collation (oid INTEGER, collname TEXT, collnamespace INTEGER);
         CREATE TEMP TABLE IF NOT EXISTS pg_settings (name TEXT, setting TEXT);
         DELETE FROM pg_settings;
         INSERT INTO pg_settings VALUES {};
         CREATE TEMP TABLE IF NOT EXISTS pg_class (oid INTEGER, relname TEXT, relnamespace INTEGER, relkind TEXT, relowner INTEGER, relam INTEGER, relpersistence TEXT, relispartition boolean, reltuples REAL, relhasindex boolean, reltype INTEGER, relchecks INTEGER, relhasrules boolean, relhastriggers boolean, relrowsecurity boolean, relforcerowsecurity boolean, reltablespace INTEGER, reloftype INTEGER, relreplident TEXT, reltoastrelid INTEGER, relpartbound TEXT, relnatts INTEGER);
         CREATE TEMP TABLE IF NOT EXISTS pg_attribute (attrelid INTEGER, attname TEXT, atttypid INTEGER, attnum INTEGER, attnotnull boolean, attisdropped boolean, atttypmod INTEGER, attlen INTEGER, atthasdef boolean, attidentity TEXT, attgenerated TEXT, attcollation INTEGER);
         CREATE TEMP TABLE IF NOT EXISTS pg_attrdef (oid INTEGER, adrelid INTEGER, adnum INTEGER, adbin TEXT);
         CREATE TEMP TABLE IF NOT EXISTS pg_index (indexrelid INTEGER, indrelid INTEGER, indisprimary boolean, indisunique boolean, indisclustered boolean, indisvalid boolean, indisreplident boolean, indnatts INTEGER);
         CREATE TEMP TABLE IF NOT EXISTS pg_constraint (oid INTEGER, conname TEXT, connamespace INTEGER, conrelid INTEGER, conindid INTEGER, contype TEXT, condeferrable boolean, condeferred boolean);
         CREATE TEMP TABLE IF NOT EXISTS sg_reldef (oid INTEGER, def TEXT);
         CREATE TEMP VIEW IF NOT EXISTS information_schema_tables (table_catalog, table_schema, table_name, table_type) AS
           SELECT 'shardgate', 'public', name, CASE type WHEN 'view' THEN 'VIEW' ELSE 'BASE TABLE' END
           FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%';
         CREATE TEMP VIEW IF NOT EXISTS information_schema_columns (table_catalog, table_schema, table_name, column_name, ordinal_position, data_type, is_nullable, column_default) AS
           SELECT 'shardgate', 'public', m.name, p.name, p.cid + 1, lower(p.type), CASE WHEN p.\"notnull\" OR p.pk > 0 THEN 'NO' ELSE 'YES' END, p.dflt_value
           FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%';",
        types.join(", "),
        super::settings::defaults()
            .iter()
            .map(|(n, v)| format!("('{}', '{}')", n.to_ascii_lowercase(), v.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    refresh(db)
}

/// Catalogs that are always empty on an embedded shard (no policies,
/// triggers, rules, publications, inheritance, extended statistics...): a
/// query reading one answers no rows.
pub const EMPTY: &[&str] = &[
    "pg_policy",
    "pg_policies",
    "pg_statistic_ext",
    "pg_publication",
    "pg_publication_rel",
    "pg_publication_namespace",
    "pg_inherits",
    "pg_trigger",
    "pg_rewrite",
    "pg_partitioned_table",
    "pg_foreign_table",
    "pg_sequence",
    "pg_description",
    "pg_extension",
    "pg_event_trigger",
    "pg_subscription",
];

/// Catalogs [`refresh`] fills from SQLite's schema.
pub const LIVE: &[&str] = &[
    "pg_class",
    "pg_attribute",
    "pg_attrdef",
    "pg_index",
    "pg_constraint",
    "sg_reldef",
];

/// Fill the catalogs that follow the schema (before a statement that reads
/// them). Tables get oid 16384 + their schema row; indexes (SQLite's own
/// for PRIMARY KEY and UNIQUE named as PostgreSQL names them) 10000000 +
/// 100 x their table's row + their position.
///
/// # Errors
/// SQLite errors.
pub fn refresh(db: &rusqlite::Connection) -> rusqlite::Result<()> {
    db.execute_batch(
        r#"DELETE FROM pg_class; DELETE FROM pg_attribute; DELETE FROM pg_attrdef;
         DELETE FROM pg_index; DELETE FROM pg_constraint; DELETE FROM sg_reldef;
         CREATE TEMP TABLE IF NOT EXISTS sg_indexes AS SELECT 0 AS oid, 0 AS tab, '' AS tname, '' AS name, 0 AS uniq, '' AS origin, '' AS cols WHERE 0;
         DELETE FROM sg_indexes;
         INSERT INTO sg_indexes
           SELECT 10000000 + 100 * m.rowid + il.seq, 16384 + m.rowid, m.name,
                  CASE WHEN il.origin = 'pk' THEN m.name || '_pkey'
                       WHEN il.name LIKE 'sqlite_autoindex_%' THEN m.name || '_' || (SELECT group_concat(ii.name, '_') FROM pragma_index_info(il.name) ii) || '_key'
                       ELSE il.name END,
                  il."unique", il.origin,
                  (SELECT group_concat(ii.name, ', ') FROM (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno) ii)
           FROM sqlite_master m, pragma_index_list(m.name) il
           WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%';
         INSERT INTO pg_class
           SELECT 16384 + m.rowid, m.name, 2200, CASE m.type WHEN 'view' THEN 'v' ELSE 'r' END, 10, CASE m.type WHEN 'view' THEN 0 ELSE 2 END,
                  'p', 0, -1, EXISTS (SELECT 1 FROM pragma_index_list(m.name)), 0, 0, 0, 0, 0, 0, 0, 0, 'd', 0, NULL,
                  (SELECT count(*) FROM pragma_table_info(m.name))
           FROM sqlite_master m WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%';
         INSERT INTO pg_class
           SELECT oid, name, 2200, 'i', 10, 403, 'p', 0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'd', 0, NULL, 0 FROM sg_indexes;
         INSERT INTO pg_attribute
           SELECT 16384 + m.rowid, p.name, pg_decl_oid(p.type), p.cid + 1, p."notnull" OR p.pk > 0, 0, pg_decl_typmod(p.type), -1,
                  p.dflt_value IS NOT NULL, '', '', 0
           FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%';
         INSERT INTO pg_attrdef
           SELECT 16384 + m.rowid, 16384 + m.rowid, p.cid + 1, p.dflt_value
           FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND p.dflt_value IS NOT NULL;
         INSERT INTO pg_index SELECT oid, tab, origin = 'pk', uniq, 0, 1, 0, 0 FROM sg_indexes;
         INSERT INTO pg_constraint
           SELECT oid + 5000000, name, 2200, tab, oid, CASE origin WHEN 'pk' THEN 'p' ELSE 'u' END, 0, 0
           FROM sg_indexes WHERE origin IN ('pk', 'u');
         INSERT INTO sg_reldef
           SELECT oid, 'CREATE ' || CASE WHEN uniq THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || name || ' ON public.' || tname || ' USING btree (' || cols || ')' FROM sg_indexes;
         INSERT INTO sg_reldef
           SELECT oid + 5000000, CASE origin WHEN 'pk' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END || ' (' || cols || ')' FROM sg_indexes WHERE origin IN ('pk', 'u');"#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_views_describe_the_schema() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        install(&db).unwrap();
        db.execute_batch("CREATE TABLE t (id bigint PRIMARY KEY, name varchar(20))")
            .unwrap();
        refresh(&db).unwrap();
        let def: String = db
            .query_row(
                "SELECT d.def FROM pg_index i JOIN sg_reldef d ON d.oid = i.indexrelid",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            def,
            "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)"
        );
        let ty: String = db
            .query_row(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attname = 'name'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ty, "character varying(20)");
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
