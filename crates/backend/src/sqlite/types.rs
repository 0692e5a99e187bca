//! Type mapping between SQLite values and PostgreSQL wire values for the
//! embedded shard: declared column types to type OIDs, values to text and
//! binary formats, and parameters back to SQLite values.

use rusqlite::types::{Value, ValueRef};
use shardgate_core::{KeyType, KeyValue};

/// PostgreSQL type OIDs used by the embedded shard.
pub mod oid {
    /// bool
    pub const BOOL: u32 = 16;
    /// bytea
    pub const BYTEA: u32 = 17;
    /// int8
    pub const INT8: u32 = 20;
    /// int2
    pub const INT2: u32 = 21;
    /// int4
    pub const INT4: u32 = 23;
    /// text
    pub const TEXT: u32 = 25;
    /// float4
    pub const FLOAT4: u32 = 700;
    /// float8
    pub const FLOAT8: u32 = 701;
    /// varchar
    pub const VARCHAR: u32 = 1043;
    /// date
    pub const DATE: u32 = 1082;
    /// timestamp
    pub const TIMESTAMP: u32 = 1114;
    /// numeric
    pub const NUMERIC: u32 = 1700;
    /// uuid
    pub const UUID: u32 = 2950;
    /// unknown
    pub const UNKNOWN: u32 = 705;
    /// timestamptz
    pub const TIMESTAMPTZ: u32 = 1184;
    /// json
    pub const JSON: u32 = 114;
    /// jsonb
    pub const JSONB: u32 = 3802;
}

/// The OID and size for a declared SQLite column type.
pub fn oid_for_decl(decl: &str) -> (u32, i16) {
    let d = decl.to_ascii_lowercase();
    let base = d.split('(').next().unwrap_or("").trim();
    match base {
        "bigint" | "int8" | "bigserial" | "serial8" => (oid::INT8, 8),
        "integer" | "int" | "int4" | "serial" | "serial4" => (oid::INT4, 4),
        "smallint" | "int2" | "smallserial" => (oid::INT2, 2),
        "numeric" | "decimal" => (oid::NUMERIC, -1),
        "real" | "float4" => (oid::FLOAT4, 4),
        "double precision" | "float8" | "float" | "double" => (oid::FLOAT8, 8),
        "bool" | "boolean" => (oid::BOOL, 1),
        "varchar" | "character varying" => (oid::VARCHAR, -1),
        "uuid" => (oid::UUID, 16),
        "date" => (oid::DATE, 4),
        "timestamp" | "timestamp without time zone" => (oid::TIMESTAMP, 8),
        "timestamptz" | "timestamp with time zone" => (oid::TIMESTAMPTZ, 8),
        "json" => (oid::JSON, -1),
        "jsonb" => (oid::JSONB, -1),
        "bytea" | "blob" => (oid::BYTEA, -1),
        _ => (oid::TEXT, -1),
    }
}

/// The wire size of a type (-1: variable).
pub fn size_of(ty: u32) -> i16 {
    match ty {
        oid::BOOL => 1,
        oid::INT2 => 2,
        oid::INT4 | oid::FLOAT4 | oid::DATE => 4,
        oid::INT8 | oid::FLOAT8 | oid::TIMESTAMP | oid::TIMESTAMPTZ => 8,
        oid::UUID => 16,
        _ => -1,
    }
}

/// PostgreSQL's text form of a value of a column typed `oid`.
pub fn to_text(v: ValueRef<'_>, ty: u32) -> Option<Vec<u8>> {
    Some(match v {
        ValueRef::Text(t) if ty == oid::TIMESTAMPTZ => {
            match timestamptz_micros(&String::from_utf8_lossy(t)) {
                Ok(us) => format!("{}+00", KeyValue::Timestamp(us)).into_bytes(),
                Err(_) => t.to_vec(),
            }
        }
        ValueRef::Null => return None,
        ValueRef::Integer(i) if ty == oid::BOOL => {
            if i != 0 {
                b"t".to_vec()
            } else {
                b"f".to_vec()
            }
        }
        ValueRef::Integer(i) => i.to_string().into_bytes(),
        ValueRef::Real(f) => float_text(f).into_bytes(),
        ValueRef::Text(t) => t.to_vec(),
        ValueRef::Blob(b) => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for x in b {
                s.push_str(&format!("{x:02x}"));
            }
            s.into_bytes()
        }
    })
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        format!("{f}")
    }
}

/// PostgreSQL's binary form of a value of a column typed `oid`.
///
/// # Errors
/// A message when the stored value does not fit the declared type.
pub fn to_binary(v: ValueRef<'_>, ty: u32) -> Result<Option<Vec<u8>>, String> {
    if let ValueRef::Null = v {
        return Ok(None);
    }
    let text = || to_text(v, ty).unwrap_or_default();
    let as_i64 = || -> Result<i64, String> {
        match v {
            ValueRef::Integer(i) => Ok(i),
            ValueRef::Real(f) if f.fract() == 0.0 => Ok(f as i64),
            _ => String::from_utf8_lossy(&text())
                .trim()
                .parse()
                .map_err(|_| "not an integer".to_string()),
        }
    };
    let as_f64 = || -> Result<f64, String> {
        match v {
            ValueRef::Integer(i) => Ok(i as f64),
            ValueRef::Real(f) => Ok(f),
            _ => String::from_utf8_lossy(&text())
                .trim()
                .parse()
                .map_err(|_| "not a number".to_string()),
        }
    };
    let key = |kt: KeyType| {
        KeyValue::parse(kt, &String::from_utf8_lossy(&text())).map_err(|e| e.to_string())
    };
    Ok(Some(match ty {
        oid::BOOL => vec![(as_i64()? != 0) as u8],
        oid::INT8 => as_i64()?.to_be_bytes().to_vec(),
        oid::INT4 => (as_i64()? as i32).to_be_bytes().to_vec(),
        oid::INT2 => (as_i64()? as i16).to_be_bytes().to_vec(),
        oid::FLOAT8 => as_f64()?.to_be_bytes().to_vec(),
        oid::FLOAT4 => (as_f64()? as f32).to_be_bytes().to_vec(),
        oid::BYTEA => match v {
            ValueRef::Blob(b) => b.to_vec(),
            _ => text(),
        },
        oid::UUID => match key(KeyType::Uuid)? {
            KeyValue::Uuid(u) => u.to_vec(),
            _ => unreachable!("uuid parse yields uuid"),
        },
        oid::DATE => match key(KeyType::Date)? {
            KeyValue::Date(d) => d.to_be_bytes().to_vec(),
            _ => unreachable!("date parse yields date"),
        },
        oid::TIMESTAMP => match key(KeyType::Timestamp)? {
            KeyValue::Timestamp(t) => t.to_be_bytes().to_vec(),
            _ => unreachable!("timestamp parse yields timestamp"),
        },
        oid::TIMESTAMPTZ => timestamptz_micros(&String::from_utf8_lossy(&text()))?
            .to_be_bytes()
            .to_vec(),
        oid::JSONB => {
            let mut b = vec![1u8];
            b.extend_from_slice(&text());
            b
        }
        oid::NUMERIC => numeric_to_binary(&String::from_utf8_lossy(&text()))?,
        _ => text(),
    }))
}

/// A timestamptz's text (`2024-01-01 10:00:00.5+02`, or no offset: UTC)
/// as microseconds since 2000-01-01 UTC.
///
/// # Errors
/// A message for text that is not a timestamp.
pub fn timestamptz_micros(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let bad = || format!("invalid input syntax for type timestamp with time zone: \"{s}\"");
    // The offset starts at the last sign after the date.
    let (base, offset) = match s.get(10..).and_then(|t| t.rfind(['+', '-'])) {
        Some(i) => (&s[..10 + i], &s[10 + i..]),
        None => (s.trim_end_matches(['Z', 'z']), ""),
    };
    let micros = match KeyValue::parse(KeyType::Timestamp, base.trim()).map_err(|_| bad())? {
        KeyValue::Timestamp(t) => t,
        _ => return Err(bad()),
    };
    if offset.is_empty() {
        return Ok(micros);
    }
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let parts: Vec<i64> = offset[1..]
        .split(':')
        .map(|p| p.parse::<i64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (h, m, sec) = match parts.as_slice() {
        [hm] if offset.len() > 3 => (hm / 100, hm % 100, 0),
        [h] => (*h, 0, 0),
        [h, m] => (*h, *m, 0),
        [h, m, s] => (*h, *m, *s),
        _ => return Err(bad()),
    };
    Ok(micros - sign * (h * 3600 + m * 60 + sec) * 1_000_000)
}

/// A PostgreSQL array's text (`{1,2,"a b",NULL}`) or a JSON array, as a
/// JSON array (what `json_each` reads).
///
/// # Errors
/// A message for text that is neither.
pub fn array_json(s: &str) -> Result<String, String> {
    array_json_of(s, false)
}

/// [`array_json`] of a numeric array (`'{"1","3"}'::bigint[]`, as
/// node-postgres writes arrays): quoted numbers are numbers.
///
/// # Errors
/// As [`array_json`].
pub fn num_array_json(s: &str) -> Result<String, String> {
    array_json_of(s, true)
}

fn array_json_of(s: &str, numeric: bool) -> Result<String, String> {
    let t = s.trim();
    if t.starts_with('[') {
        return Ok(t.to_string());
    }
    let bad = || format!("malformed array literal: \"{s}\"");
    let inner = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut items: Vec<String> = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => item.extend(chars.next()),
                    '"' => break,
                    c => item.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next();
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                if c == '{' {
                    return Err(
                        "multidimensional arrays are not supported on embedded (SQLite) shards"
                            .into(),
                    );
                }
                item.push(c);
                chars.next();
            }
            item = item.trim().to_string();
        }
        chars.next();
        items.push(if !quoted && item.eq_ignore_ascii_case("null") {
            "null".to_string()
        } else if (!quoted || numeric)
            && item.parse::<f64>().is_ok_and(f64::is_finite)
            && !item.starts_with(['+', '.'])
        {
            item
        } else {
            json_string(&item)
        });
    }
    Ok(format!("[{}]", items.join(",")))
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A binary one-dimensional array parameter as a JSON array.
fn binary_array_json(raw: &[u8]) -> Result<String, String> {
    let bad = || "malformed binary array parameter".to_string();
    let i32_at = |i: usize| -> Result<i32, String> {
        raw.get(i..i + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(bad)
    };
    let ndim = i32_at(0)?;
    let elem = i32_at(8)? as u32;
    if ndim == 0 {
        return Ok("[]".into());
    }
    if ndim != 1 {
        return Err("multidimensional arrays are not supported on embedded (SQLite) shards".into());
    }
    let n = i32_at(12)?.max(0) as usize;
    let mut at = 20;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        let len = i32_at(at)?;
        at += 4;
        if len < 0 {
            items.push("null".to_string());
            continue;
        }
        let b = raw.get(at..at + len as usize).ok_or_else(bad)?;
        at += len as usize;
        items.push(match param_value(Some(b), elem, true)? {
            Value::Null => "null".into(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) if f.is_finite() => f.to_string(),
            Value::Real(f) => json_string(&f.to_string()),
            Value::Text(t) => json_string(&t),
            Value::Blob(b) => json_string(&String::from_utf8_lossy(&b)),
        });
    }
    Ok(format!("[{}]", items.join(",")))
}

/// Encode a decimal string in PostgreSQL's binary numeric format.
pub fn numeric_to_binary(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    let bad = || format!("invalid numeric {s:?}");
    let (neg, digits) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if digits.eq_ignore_ascii_case("nan") {
        let mut out = Vec::new();
        for x in [0i16, 0, 0xC000u16 as i16, 0] {
            out.extend_from_slice(&x.to_be_bytes());
        }
        return Ok(out);
    }
    let (int, frac) = match digits.split_once('.') {
        Some((a, b)) => (a, b),
        None => (digits, ""),
    };
    if digits.contains(['e', 'E']) || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
        // Scientific notation: go through f64 and print plainly.
        let f: f64 = s.parse().map_err(|_| bad())?;
        return numeric_to_binary(&format!("{f:.6}"));
    }
    let int = int.trim_start_matches('0');
    let dscale = frac.len() as i16;
    // Pad so the integer part is a multiple of 4 digits from the point, and
    // the fraction too.
    let ipad = (4 - int.len() % 4) % 4;
    let fpad = (4 - frac.len() % 4) % 4;
    let all: String = "0".repeat(ipad) + int + frac + &"0".repeat(fpad);
    let mut groups: Vec<i16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| {
            std::str::from_utf8(c)
                .unwrap_or("0")
                .parse::<i16>()
                .unwrap_or(0)
        })
        .collect();
    let mut weight = ((ipad + int.len()) / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(
        &(if neg && !groups.is_empty() {
            0x4000u16
        } else {
            0
        })
        .to_be_bytes(),
    );
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

/// Turn a bound parameter into a SQLite value, given its type OID and
/// whether it came in binary format.
///
/// # Errors
/// A message (SQLSTATE 22P02 territory) for malformed input.
pub fn param_value(raw: Option<&[u8]>, ty: u32, binary: bool) -> Result<Value, String> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    if !binary {
        let s = std::str::from_utf8(raw).map_err(|_| "invalid UTF-8 in parameter".to_string())?;
        return Ok(match ty {
            oid::INT2 | oid::INT4 | oid::INT8 => Value::Integer(
                s.trim()
                    .parse()
                    .map_err(|_| format!("invalid input syntax for type integer: \"{s}\""))?,
            ),
            oid::FLOAT4 | oid::FLOAT8 => {
                Value::Real(s.trim().parse().map_err(|_| {
                    format!("invalid input syntax for type double precision: \"{s}\"")
                })?)
            }
            oid::BOOL => match s.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "yes" | "on" | "1" | "y" => Value::Integer(1),
                "f" | "false" | "no" | "off" | "0" | "n" => Value::Integer(0),
                _ => return Err(format!("invalid input syntax for type boolean: \"{s}\"")),
            },
            // Stored as its canonical text (psycopg sends a uuid's hex
            // digits without hyphens, which SQLite would read as a number).
            oid::UUID => Value::Text(
                KeyValue::parse(KeyType::Uuid, s)
                    .map_err(|_| format!("invalid input syntax for type uuid: \"{s}\""))?
                    .to_string(),
            ),
            _ => Value::Text(s.to_string()),
        });
    }
    let fixed = |n: usize| -> Result<&[u8], String> {
        if raw.len() == n {
            Ok(raw)
        } else {
            Err(format!(
                "binary parameter of type {ty} has {} bytes",
                raw.len()
            ))
        }
    };
    Ok(match ty {
        oid::INT2 => Value::Integer(i16::from_be_bytes(fixed(2)?.try_into().expect("2")) as i64),
        oid::INT4 => Value::Integer(i32::from_be_bytes(fixed(4)?.try_into().expect("4")) as i64),
        oid::INT8 => Value::Integer(i64::from_be_bytes(fixed(8)?.try_into().expect("8"))),
        oid::FLOAT4 => Value::Real(f32::from_be_bytes(fixed(4)?.try_into().expect("4")) as f64),
        oid::FLOAT8 => Value::Real(f64::from_be_bytes(fixed(8)?.try_into().expect("8"))),
        oid::BOOL => Value::Integer((fixed(1)?[0] != 0) as i64),
        oid::BYTEA => Value::Blob(raw.to_vec()),
        oid::NUMERIC => Value::Text(
            shardgate_sql::binary::to_text(oid::NUMERIC, raw)
                .ok_or_else(|| "malformed binary numeric parameter".to_string())?,
        ),
        oid::TIMESTAMPTZ => Value::Text(format!(
            "{}+00",
            KeyValue::Timestamp(i64::from_be_bytes(fixed(8)?.try_into().expect("8")))
        )),
        oid::JSONB => Value::Text(
            String::from_utf8(raw.get(1..).unwrap_or_default().to_vec())
                .map_err(|_| "invalid UTF-8 in parameter".to_string())?,
        ),
        // Arrays (int2[], int4[], int8[], text[], varchar[], float8[],
        // uuid[], numeric[]) for `= ANY($n)`.
        1005 | 1007 | 1016 | 1009 | 1015 | 1021 | 1022 | 2951 | 1231 | 1000 => {
            Value::Text(binary_array_json(raw)?)
        }
        oid::UUID | oid::DATE | oid::TIMESTAMP => {
            let kt = match ty {
                oid::UUID => KeyType::Uuid,
                oid::DATE => KeyType::Date,
                _ => KeyType::Timestamp,
            };
            Value::Text(
                KeyValue::from_binary(kt, ty, raw)
                    .map_err(|e| e.to_string())?
                    .to_string(),
            )
        }
        // Text, or bytes that are not text: node-postgres sends a Buffer
        // for a bytea column so, typed as the parameter was described.
        0 | 25 | 705 | 1043 => match String::from_utf8(raw.to_vec()) {
            Ok(s) => Value::Text(s),
            Err(e) => Value::Blob(e.into_bytes()),
        },
        // Other built-in types PostgreSQL sends in a binary layout of
        // their own (interval, time, timetz...): their text; user-defined
        // types (enums) send their text.
        t if shardgate_sql::binary::reads(t) => Value::Text(
            shardgate_sql::binary::to_text(t, raw)
                .ok_or_else(|| format!("malformed binary parameter of type {t}"))?,
        ),
        t if t != 0 && t < 16384 => {
            return Err(format!(
                "a binary parameter of type {t} is not supported by embedded shards; send it as text"
            ));
        }
        _ => Value::Text(
            String::from_utf8(raw.to_vec())
                .map_err(|_| "invalid UTF-8 in parameter".to_string())?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_round_trip() {
        for s in [
            "0",
            "1",
            "-1",
            "12.50",
            "10000",
            "123456789.000123",
            "0.0001",
            "-0.5",
        ] {
            let b = numeric_to_binary(s).unwrap();
            assert_eq!(
                shardgate_sql::binary::to_text(oid::NUMERIC, &b).unwrap(),
                s,
                "{s}"
            );
        }
    }
}
