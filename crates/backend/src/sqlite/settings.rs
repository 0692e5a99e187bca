//! The embedded shard's run-time settings and the PostgreSQL functions it
//! adds to SQLite: `SET`/`RESET`/`SHOW` and `current_setting`/`set_config`
//! read and write one map per connection; `version()`, `now()`,
//! `current_schema()`, `pg_backend_pid()`, `gen_random_uuid()` and the like
//! answer as PostgreSQL would, so drivers' connection-time queries work.

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value, ValueRef};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A connection's settings (names in lower case).
pub type Settings = Arc<Mutex<HashMap<String, String>>>;

/// Settings every connection starts with (name in PostgreSQL's spelling).
const DEFAULTS: &[(&str, &str)] = &[
    ("server_version", "15.0"),
    ("server_version_num", "150000"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    // SQLite runs one writer at a time: every transaction is serializable.
    ("transaction_isolation", "serializable"),
    ("default_transaction_isolation", "serializable"),
    ("transaction_read_only", "off"),
    ("default_transaction_read_only", "off"),
    ("search_path", "\"$user\", public"),
    ("application_name", ""),
    ("max_identifier_length", "63"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("statement_timeout", "0"),
    ("lock_timeout", "0"),
    ("idle_in_transaction_session_timeout", "0"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("is_superuser", "on"),
    ("session_authorization", "shardgate"),
    ("max_connections", "100"),
    // Settings applications and ORMs set or read that change nothing here.
    ("work_mem", "4MB"),
    ("maintenance_work_mem", "64MB"),
    ("temp_buffers", "8MB"),
    ("effective_cache_size", "4GB"),
    ("random_page_cost", "4"),
    ("seq_page_cost", "1"),
    ("cpu_tuple_cost", "0.01"),
    ("enable_seqscan", "on"),
    ("enable_indexscan", "on"),
    ("enable_bitmapscan", "on"),
    ("enable_hashjoin", "on"),
    ("enable_mergejoin", "on"),
    ("enable_nestloop", "on"),
    ("enable_sort", "on"),
    ("max_parallel_workers_per_gather", "2"),
    ("jit", "on"),
    ("geqo", "on"),
    ("plan_cache_mode", "auto"),
    ("synchronous_commit", "on"),
    ("row_security", "on"),
    ("check_function_bodies", "on"),
    ("client_min_messages", "notice"),
    ("lc_messages", "C"),
    ("lc_monetary", "C"),
    ("lc_numeric", "C"),
    ("lc_time", "C"),
    ("default_text_search_config", "pg_catalog.english"),
    ("escape_string_warning", "on"),
    ("array_nulls", "on"),
    ("quote_all_identifiers", "off"),
    ("xmloption", "content"),
    ("session_replication_role", "origin"),
    ("idle_session_timeout", "0"),
    ("log_statement", "none"),
    ("log_min_duration_statement", "-1"),
    ("default_table_access_method", "heap"),
];

/// The settings every connection starts with: (name, value).
pub fn defaults() -> &'static [(&'static str, &'static str)] {
    DEFAULTS
}

/// The name `SHOW` puts over its column (PostgreSQL's spelling).
pub fn display_name(name: &str) -> String {
    DEFAULTS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |(n, _)| (*n).to_string())
}

/// A setting's value: the connection's own, else the default.
pub fn get(settings: &Settings, name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let m = settings.lock().ok()?;
    if let Some(v) = m.get(&local_key(&lower)).or_else(|| m.get(&lower)) {
        return Some(v.clone());
    }
    drop(m);
    DEFAULTS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(&lower))
        .map(|(_, v)| (*v).to_string())
}

/// Where a `SET LOCAL` value is kept (until the transaction ends).
fn local_key(name: &str) -> String {
    format!("\u{1}{name}")
}

/// Set (`None`: reset) a setting for the session, or for the transaction
/// (`local`).
fn set(settings: &Settings, name: &str, value: Option<String>, local: bool) {
    let name = match name.to_ascii_lowercase().as_str() {
        "time zone" => "timezone".to_string(),
        "names" => "client_encoding".to_string(),
        n => n.to_string(),
    };
    if local {
        let value = value.or_else(|| {
            DEFAULTS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| (*v).to_string())
        });
        if let Ok(mut m) = settings.lock() {
            match value {
                Some(v) => m.insert(local_key(&name), v),
                None => m.remove(&local_key(&name)),
            };
        }
        return;
    }
    if let Ok(mut m) = settings.lock() {
        m.remove(&local_key(&name));
        match value {
            Some(v) => m.insert(name, v),
            None => m.remove(&name),
        };
    }
}

/// The transaction ended: its `SET LOCAL` values go.
pub fn end_transaction(settings: &Settings) {
    if let Ok(mut m) = settings.lock()
        && m.keys().any(|k| k.starts_with('\u{1}'))
    {
        m.retain(|k, _| !k.starts_with('\u{1}'));
    }
}

/// Record a `SET`, `RESET` or `DISCARD` statement's effect.
pub fn apply(settings: &Settings, sql: &str) {
    let s = sql.trim().trim_end_matches(';').trim();
    let lower = s.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words.as_slice() {
        ["discard", ..] | ["reset", "all"] => {
            if let Ok(mut m) = settings.lock() {
                m.clear();
            }
        }
        ["reset", name, ..] => set(settings, name, None, false),
        ["set", rest @ ..] => {
            let local = rest.first() == Some(&"local");
            let rest = match rest.first() {
                Some(&"session") | Some(&"local") => &rest[1..],
                _ => rest,
            };
            let text = rest.join(" ");
            let (name, value) = if let Some(v) = text.strip_prefix("time zone ") {
                ("timezone".to_string(), v.to_string())
            } else if let Some((n, v)) = text.split_once('=').or_else(|| text.split_once(" to ")) {
                (n.trim().to_string(), v.trim().to_string())
            } else {
                return;
            };
            // The value as written in the original case (names are not).
            let at = s.len() - value.len();
            let raw = s.get(at..).unwrap_or(&value).trim();
            let value = raw
                .split(',')
                .map(|p| {
                    let p = p.trim();
                    p.strip_prefix('\'')
                        .and_then(|p| p.strip_suffix('\''))
                        .map_or_else(|| p.to_string(), |p| p.replace("''", "'"))
                })
                .collect::<Vec<_>>()
                .join(", ");
            if value.eq_ignore_ascii_case("default") {
                set(settings, &name, None, local);
            } else {
                set(settings, &name, Some(value), local);
            }
        }
        _ => {}
    }
}

/// Record `SELECT pg_catalog.set_config('name', 'value', false)` (the
/// session's replay of a startup parameter).
pub fn apply_set_config(settings: &Settings, sql: &str) {
    let args: Vec<String> = sql
        .split('\'')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect();
    if sql.contains(" FROM pg_catalog.pg_settings WHERE ") {
        // `set_config(name, 'value', false) ... WHERE name = 'x'`: only a
        // setting this shard has.
        if let [value, name, ..] = args.as_slice()
            && get(settings, name).is_some()
        {
            set(settings, name, Some(value.clone()), false);
        }
    } else if let [name, value, ..] = args.as_slice() {
        set(settings, name, Some(value.clone()), false);
    }
}

fn text_arg(ctx: &rusqlite::functions::Context<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    })
}

fn user_error(message: String) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(message.into())
}

/// The current time as PostgreSQL prints a timestamptz in UTC.
pub fn now_text() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let micros = d.as_micros() as i64 - 946_684_800_000_000;
    let ts = shardgate_core::KeyValue::Timestamp(micros).to_string();
    format!("{ts}+00")
}

/// Add the PostgreSQL functions to a connection.
///
/// # Errors
/// SQLite refusing a registration.
pub fn register(db: &rusqlite::Connection, settings: Settings, pid: i32) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let vol = FunctionFlags::SQLITE_UTF8;
    db.create_scalar_function("version", 0, det, |_| {
        Ok("PostgreSQL 15.0 (shardgate embedded SQLite shard)".to_string())
    })?;
    db.create_scalar_function("current_schema", 0, det, |_| Ok("public".to_string()))?;
    db.create_scalar_function("current_database", 0, det, |_| Ok("shardgate".to_string()))?;
    let s = settings.clone();
    db.create_scalar_function("pg_user", 0, vol, move |_| {
        Ok(get(&s, "session_authorization").unwrap_or_default())
    })?;
    db.create_scalar_function("pg_backend_pid", 0, det, move |_| Ok(pid))?;
    db.create_scalar_function("now", 0, vol, |_| Ok(now_text()))?;
    for f in [
        "transaction_timestamp",
        "statement_timestamp",
        "clock_timestamp",
    ] {
        db.create_scalar_function(f, 0, vol, |_| Ok(now_text()))?;
    }
    db.create_scalar_function("txid_current", 0, vol, |ctx| {
        let _ = ctx;
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as i64)
    })?;
    db.create_scalar_function("pg_random", 0, vol, |_| {
        let mut b = [0u8; 8];
        getrandom(&mut b);
        Ok((u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64)
    })?;
    db.create_scalar_function("gen_random_uuid", 0, vol, |_| {
        let mut b = [0u8; 16];
        getrandom(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(shardgate_core::KeyValue::Uuid(b).to_string())
    })?;
    let s = settings.clone();
    db.create_scalar_function("current_setting", -1, vol, move |ctx| {
        let name = text_arg(ctx, 0)?.unwrap_or_default();
        let missing_ok = ctx.len() > 1 && matches!(ctx.get_raw(1), ValueRef::Integer(1));
        match get(&s, &name) {
            Some(v) => Ok(Value::Text(v)),
            None if missing_ok => Ok(Value::Null),
            None => Err(user_error(format!(
                "unrecognized configuration parameter \"{name}\""
            ))),
        }
    })?;
    let s = settings;
    db.create_scalar_function("set_config", 3, vol, move |ctx| {
        let name = text_arg(ctx, 0)?.unwrap_or_default();
        let value = text_arg(ctx, 1)?;
        let local = matches!(ctx.get_raw(2), ValueRef::Integer(1));
        set(&s, &name, value.clone(), local);
        Ok(value)
    })?;
    db.create_scalar_function("date_trunc", 2, det, |ctx| {
        let (Some(field), Some(ts)) = (text_arg(ctx, 0)?, text_arg(ctx, 1)?) else {
            return Ok(None);
        };
        date_trunc(&field, &ts).map(Some).map_err(user_error)
    })?;
    for name in ["pg_extract", "date_part"] {
        db.create_scalar_function(name, 2, det, |ctx| {
            let (Some(field), Some(ts)) = (text_arg(ctx, 0)?, text_arg(ctx, 1)?) else {
                return Ok(None);
            };
            extract(&field, &ts).map(Some).map_err(user_error)
        })?;
    }
    db.create_scalar_function("pg_bool", 1, det, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(i64::from(i != 0)),
            ValueRef::Real(f) => Some(i64::from(f != 0.0)),
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                let t = String::from_utf8_lossy(t).trim().to_ascii_lowercase();
                match t.as_str() {
                    "t" | "true" | "yes" | "on" | "1" | "y" => Some(1),
                    "f" | "false" | "no" | "off" | "0" | "n" => Some(0),
                    _ => {
                        return Err(user_error(format!(
                            "invalid input syntax for type boolean: \"{t}\""
                        )));
                    }
                }
            }
        })
    })?;
    // `::bigint[]` (and other numeric arrays): quoted numbers are numbers.
    db.create_scalar_function("pg_num_array", 1, det, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Null => None,
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                let t = String::from_utf8_lossy(t);
                Some(super::types::num_array_json(&t).map_err(user_error)?)
            }
            ValueRef::Integer(i) => Some(format!("[{i}]")),
            ValueRef::Real(f) => Some(format!("[{f}]")),
        })
    })?;
    db.create_scalar_function("pg_array", 1, det, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Null => None,
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                let t = String::from_utf8_lossy(t);
                Some(super::types::array_json(&t).map_err(user_error)?)
            }
            other => Some(format!(
                "[{}]",
                match other {
                    ValueRef::Integer(i) => i.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    _ => String::new(),
                }
            )),
        })
    })?;
    Ok(())
}

/// `date_trunc(field, ts)` on a timestamp's text: the timestamp (with
/// `+00` if the input had a time zone or was a date, as PostgreSQL turns a
/// date into a timestamptz) truncated to `field`.
///
/// # Errors
/// An unknown field or text that is not a timestamp.
pub fn date_trunc(field: &str, ts: &str) -> Result<String, String> {
    use shardgate_core::{KeyType, KeyValue};
    let t = ts.trim();
    let zoned = t.len() == 10
        || t.get(10..)
            .is_some_and(|r| r.contains(['+', 'Z']) || r.rfind('-').is_some());
    let micros = super::types::timestamptz_micros(t)?;
    let day = 86_400_000_000i64;
    let days = micros.div_euclid(day);
    let text = |us: i64| KeyValue::Timestamp(us).to_string();
    let base = text(days * day);
    let (y, m): (i64, i64) = (
        base[..4].parse().map_err(|_| "bad year".to_string())?,
        base[5..7].parse().map_err(|_| "bad month".to_string())?,
    );
    let start_of = |y: i64, m: i64| -> Result<i64, String> {
        match KeyValue::parse(KeyType::Timestamp, &format!("{y:04}-{m:02}-01 00:00:00")) {
            Ok(KeyValue::Timestamp(us)) => Ok(us),
            _ => Err(format!("timestamp out of range: \"{ts}\"")),
        }
    };
    let unit = |u: i64| micros.div_euclid(u) * u;
    let out = match field.to_ascii_lowercase().as_str() {
        "microseconds" => micros,
        "milliseconds" => unit(1_000),
        "second" => unit(1_000_000),
        "minute" => unit(60_000_000),
        "hour" => unit(3_600_000_000),
        "day" => days * day,
        // 2000-01-01 was a Saturday; weeks start on Monday.
        "week" => (days - (days.rem_euclid(7) + 5) % 7) * day,
        "month" => start_of(y, m)?,
        "quarter" => start_of(y, (m - 1) / 3 * 3 + 1)?,
        "year" => start_of(y, 1)?,
        "decade" => start_of(y - y.rem_euclid(10), 1)?,
        "century" => start_of((y - 1).div_euclid(100) * 100 + 1, 1)?,
        "millennium" => start_of((y - 1).div_euclid(1000) * 1000 + 1, 1)?,
        other => {
            return Err(format!(
                "unit \"{other}\" not recognized for type timestamp"
            ));
        }
    };
    Ok(if zoned {
        format!("{}+00", text(out))
    } else {
        text(out)
    })
}

/// `EXTRACT(field FROM ts)` / `date_part` on a timestamp's text (UTC).
///
/// # Errors
/// An unknown field or text that is not a timestamp.
pub fn extract(field: &str, ts: &str) -> Result<Value, String> {
    let micros = super::types::timestamptz_micros(ts)?;
    let day = 86_400_000_000i64;
    let days = micros.div_euclid(day);
    let of_day = micros.rem_euclid(day);
    let text = shardgate_core::KeyValue::Timestamp(days * day).to_string();
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        text.get(r)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("invalid timestamp: \"{ts}\""))
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    // 2000-01-01 was a Saturday (6; Sunday is 0).
    let dow = (days.rem_euclid(7) + 6) % 7;
    let jan1 = date_trunc("year", &text)?;
    let doy = days - super::types::timestamptz_micros(&jan1)?.div_euclid(day) + 1;
    let int = |v: i64| Ok(Value::Integer(v));
    match field.to_ascii_lowercase().as_str() {
        "year" => int(y),
        "month" => int(m),
        "day" => int(d),
        "hour" => int(of_day / 3_600_000_000),
        "minute" => int(of_day / 60_000_000 % 60),
        "second" => Ok(Value::Real((of_day % 60_000_000) as f64 / 1e6)),
        "milliseconds" => Ok(Value::Real((of_day % 60_000_000) as f64 / 1e3)),
        "microseconds" => int(of_day % 60_000_000),
        "dow" => int(dow),
        "isodow" => int(if dow == 0 { 7 } else { dow }),
        "doy" => int(doy),
        "quarter" => int((m - 1) / 3 + 1),
        "decade" => int(y.div_euclid(10)),
        "century" => int(if y > 0 {
            (y + 99) / 100
        } else {
            -((99 - y) / 100)
        }),
        "epoch" => Ok(Value::Real((micros + 946_684_800_000_000) as f64 / 1e6)),
        other => Err(format!(
            "unit \"{other}\" not supported for type timestamp on embedded (SQLite) shards"
        )),
    }
}

/// Random bytes (from the OS; a clock-seeded fallback).
fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_err()
    {
        let mut x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
            | 1;
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_reset_and_show() {
        let s: Settings = Arc::default();
        assert_eq!(get(&s, "TimeZone").as_deref(), Some("UTC"));
        apply(&s, "SET TIME ZONE 'Europe/Paris'");
        assert_eq!(get(&s, "timezone").as_deref(), Some("Europe/Paris"));
        apply(&s, "SET search_path TO app, public");
        assert_eq!(get(&s, "search_path").as_deref(), Some("app, public"));
        apply(&s, "set application_name = 'It''s me'");
        assert_eq!(get(&s, "application_name").as_deref(), Some("It's me"));
        apply(&s, "SET LOCAL search_path TO tx");
        assert_eq!(get(&s, "search_path").as_deref(), Some("tx"));
        end_transaction(&s);
        assert_eq!(get(&s, "search_path").as_deref(), Some("app, public"));
        apply(&s, "RESET search_path");
        assert_eq!(get(&s, "search_path").as_deref(), Some("\"$user\", public"));
        apply(&s, "DISCARD ALL");
        assert_eq!(get(&s, "timezone").as_deref(), Some("UTC"));
        assert_eq!(get(&s, "nope"), None);
        apply_set_config(
            &s,
            "SELECT pg_catalog.set_config('application_name', 'psql', false)",
        );
        assert_eq!(get(&s, "application_name").as_deref(), Some("psql"));
        assert_eq!(display_name("timezone"), "TimeZone");
        for (field, ts, want) in [
            ("month", "2024-03-17 10:11:12.5", "2024-03-01 00:00:00"),
            ("week", "2024-03-17 10:11:12", "2024-03-11 00:00:00"),
            (
                "quarter",
                "2024-08-17 10:00:00+02",
                "2024-07-01 00:00:00+00",
            ),
            ("year", "2024-08-17", "2024-01-01 00:00:00+00"),
            ("hour", "1999-12-31 23:59:59", "1999-12-31 23:00:00"),
        ] {
            assert_eq!(date_trunc(field, ts).unwrap(), want, "{field} {ts}");
        }
        assert!(date_trunc("fortnight", "2024-01-01").is_err());
        for (field, ts, want) in [
            ("year", "2024-03-17 10:11:12", 2024),
            ("month", "2024-03-17 10:11:12", 3),
            ("dow", "2024-03-17 10:11:12", 0),
            ("isodow", "2024-03-17 10:11:12", 7),
            ("doy", "2024-03-01", 61),
            ("hour", "2024-03-17 10:11:12+02", 8),
            ("quarter", "2024-08-17", 3),
        ] {
            assert_eq!(
                extract(field, ts).unwrap(),
                Value::Integer(want),
                "{field} {ts}"
            );
        }
        assert_eq!(
            extract("second", "2024-03-17 10:11:12.5").unwrap(),
            Value::Real(12.5)
        );
    }
}
