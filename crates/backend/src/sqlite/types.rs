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
        "bytea" | "blob" => (oid::BYTEA, -1),
        _ => (oid::TEXT, -1),
    }
}

/// PostgreSQL's text form of a value of a column typed `oid`.
pub fn to_text(v: ValueRef<'_>, ty: u32) -> Option<Vec<u8>> {
    Some(match v {
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
        oid::NUMERIC => numeric_to_binary(&String::from_utf8_lossy(&text()))?,
        _ => text(),
    }))
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

/// Decode PostgreSQL's binary numeric into a decimal string.
pub fn numeric_from_binary(b: &[u8]) -> Result<String, String> {
    let rd = |i: usize| -> Result<i16, String> {
        b.get(i..i + 2)
            .map(|x| i16::from_be_bytes([x[0], x[1]]))
            .ok_or_else(|| "short numeric".to_string())
    };
    let n = rd(0)?.max(0) as usize;
    let weight = rd(2)? as i32;
    let sign = rd(4)? as u16;
    let dscale = rd(6)?.max(0) as usize;
    if sign == 0xC000 {
        return Ok("NaN".into());
    }
    let digits: Vec<i16> = (0..n).map(|i| rd(8 + 2 * i)).collect::<Result<_, _>>()?;
    let mut int = String::new();
    for w in 0..=weight.max(-1) {
        let d = digits.get(w as usize).copied().unwrap_or(0);
        if int.is_empty() {
            int = d.to_string();
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut idx = weight + 1;
    while frac.len() < dscale {
        let d = if idx >= 0 {
            digits.get(idx as usize).copied().unwrap_or(0)
        } else {
            0
        };
        frac.push_str(&format!("{d:04}"));
        idx += 1;
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Ok(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
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
        oid::NUMERIC => Value::Text(numeric_from_binary(raw)?),
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
            assert_eq!(numeric_from_binary(&b).unwrap(), s, "{s}");
        }
    }
}
