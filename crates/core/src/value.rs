//! Shard-key values and their types, parsed from SQL literals or parameters.

use crate::error::CoreError;
use crate::hash;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The type of a shard-key column, as far as sharding cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// smallint, integer, bigint (and serial types).
    Int,
    /// text, varchar, char.
    Text,
    /// uuid.
    Uuid,
    /// timestamp without time zone (microseconds since 2000-01-01).
    Timestamp,
    /// date (days since 2000-01-01).
    Date,
}

impl KeyType {
    /// Map a SQL type name (`bigint`, `varchar(20)`, `uuid`, ...) to a key
    /// type, or `None` if it cannot be a shard key.
    pub fn from_sql_type(name: &str) -> Option<KeyType> {
        let lower = name.trim().to_ascii_lowercase();
        let base = lower.split(['(', '[']).next().unwrap_or("").trim();
        Some(match base {
            "smallint" | "integer" | "int" | "bigint" | "int2" | "int4" | "int8" | "serial"
            | "bigserial" | "smallserial" | "serial4" | "serial8" => KeyType::Int,
            // char(n) hashes without trailing spaces and citext without case:
            // not plain text, so not (yet) usable as shard keys.
            "text" | "varchar" | "character varying" | "name" => KeyType::Text,
            "uuid" => KeyType::Uuid,
            "timestamp" | "timestamp without time zone" => KeyType::Timestamp,
            "date" => KeyType::Date,
            _ => return None,
        })
    }

    /// The PostgreSQL type OIDs whose binary encoding this key type reads.
    pub fn name(&self) -> &'static str {
        match self {
            KeyType::Int => "int",
            KeyType::Text => "text",
            KeyType::Uuid => "uuid",
            KeyType::Timestamp => "timestamp",
            KeyType::Date => "date",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One shard-key value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyValue {
    /// An integer key.
    Int(i64),
    /// A text key.
    Text(String),
    /// A uuid key.
    Uuid([u8; 16]),
    /// A timestamp key, microseconds since 2000-01-01 00:00:00.
    Timestamp(i64),
    /// A date key, days since 2000-01-01.
    Date(i32),
}

impl KeyValue {
    /// Parse a value given as text (a SQL literal's contents or a text-format
    /// parameter) as a key of type `ty`.
    ///
    /// # Errors
    /// [`CoreError::BadValue`] when the text is not a valid value of `ty`.
    pub fn parse(ty: KeyType, s: &str) -> Result<KeyValue, CoreError> {
        let bad = || CoreError::BadValue {
            value: s.to_string(),
            ty: ty.to_string(),
        };
        match ty {
            KeyType::Int => match parse_int(s.trim()) {
                Ok(v) => Ok(KeyValue::Int(v)),
                Err(IntError::Range) => Err(CoreError::OutOfRange {
                    value: s.to_string(),
                }),
                Err(IntError::Bad) => Err(bad()),
            },
            KeyType::Text => Ok(KeyValue::Text(s.to_string())),
            KeyType::Uuid => parse_uuid(s).map(KeyValue::Uuid).ok_or_else(bad),
            KeyType::Timestamp => parse_timestamp(s).map(KeyValue::Timestamp).ok_or_else(bad),
            KeyType::Date => parse_date(s.trim()).map(KeyValue::Date).ok_or_else(bad),
        }
    }

    /// Decode a binary-format parameter whose PostgreSQL type OID is `oid`
    /// (0 when the client left it unspecified) as a key of type `ty`.
    ///
    /// # Errors
    /// [`CoreError::BadValue`] when the bytes do not fit the type.
    pub fn from_binary(ty: KeyType, oid: u32, b: &[u8]) -> Result<KeyValue, CoreError> {
        let bad = || CoreError::BadValue {
            value: format!("{b:?} (type oid {oid})"),
            ty: ty.to_string(),
        };
        // A binary value is read by its declared type: another type's bytes
        // (a float, a numeric) must not be taken for this key's type.
        let fits = match ty {
            KeyType::Int => matches!(oid, 0 | 20 | 21 | 23),
            KeyType::Text => matches!(oid, 0 | 25 | 1043 | 19 | 705),
            KeyType::Uuid => matches!(oid, 0 | 2950),
            KeyType::Timestamp => matches!(oid, 0 | 1114 | 1082),
            KeyType::Date => matches!(oid, 0 | 1082),
        };
        if !fits {
            return Err(bad());
        }
        match ty {
            KeyType::Int => match b.len() {
                2 => Ok(KeyValue::Int(i16::from_be_bytes([b[0], b[1]]) as i64)),
                4 => Ok(KeyValue::Int(
                    i32::from_be_bytes(b.try_into().map_err(|_| bad())?) as i64,
                )),
                8 => Ok(KeyValue::Int(i64::from_be_bytes(
                    b.try_into().map_err(|_| bad())?,
                ))),
                _ => Err(bad()),
            },
            KeyType::Text => std::str::from_utf8(b)
                .map(|s| KeyValue::Text(s.to_string()))
                .map_err(|_| bad()),
            KeyType::Uuid => b.try_into().map(KeyValue::Uuid).map_err(|_| bad()),
            KeyType::Timestamp if oid == 1082 || b.len() == 4 => {
                let d = i32::from_be_bytes(b.try_into().map_err(|_| bad())?);
                Ok(KeyValue::Timestamp(d as i64 * 86_400_000_000))
            }
            KeyType::Timestamp => Ok(KeyValue::Timestamp(i64::from_be_bytes(
                b.try_into().map_err(|_| bad())?,
            ))),
            KeyType::Date => Ok(KeyValue::Date(i32::from_be_bytes(
                b.try_into().map_err(|_| bad())?,
            ))),
        }
    }

    /// The PostgreSQL-compatible 64-bit hash of the value (seed 0), as
    /// `hashint8extended`, `hashtextextended`, `uuid_hash_extended`,
    /// `timestamp_hash_extended` and `hashint4extended` (dates) compute it.
    pub fn pg_hash(&self) -> u64 {
        match self {
            KeyValue::Int(v) | KeyValue::Timestamp(v) => hash::hashint8extended(*v, 0),
            KeyValue::Text(s) => hash::hashtextextended(s, 0),
            KeyValue::Uuid(u) => hash::uuid_hash_extended(u, 0),
            KeyValue::Date(d) => hash::hash_uint32_extended(*d as u32, 0),
        }
    }

    /// The value as a SQL literal, e.g. `42` or `'abc'`.
    pub fn to_sql_literal(&self) -> String {
        match self {
            KeyValue::Int(v) => v.to_string(),
            other => format!("'{}'", other.to_string().replace('\'', "''")),
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Int(v) => write!(f, "{v}"),
            KeyValue::Text(s) => f.write_str(s),
            KeyValue::Uuid(u) => {
                for (i, b) in u.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            KeyValue::Timestamp(us) => {
                let days = us.div_euclid(86_400_000_000);
                let rem = us.rem_euclid(86_400_000_000);
                let (y, m, d) = civil_from_days(days + DAYS_1970_TO_2000);
                let secs = rem / 1_000_000;
                let micros = rem % 1_000_000;
                write!(
                    f,
                    "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                )?;
                if micros != 0 {
                    write!(f, ".{micros:06}")?;
                }
                Ok(())
            }
            KeyValue::Date(days) => {
                let (y, m, d) = civil_from_days(*days as i64 + DAYS_1970_TO_2000);
                write!(f, "{y:04}-{m:02}-{d:02}")
            }
        }
    }
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
pub const DAYS_1970_TO_2000: i64 = 10_957;

/// Why a number is no integer key.
#[derive(Debug, PartialEq)]
enum IntError {
    /// Not a number.
    Bad,
    /// Past bigint.
    Range,
}

/// An integer, or a decimal (`7.6`, `1e1`, `2.5E+2`) rounded half away
/// from zero (as PostgreSQL casts numeric to bigint).
fn parse_int(s: &str) -> Result<i64, IntError> {
    if let Ok(v) = s.parse::<i64>() {
        return Ok(v);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(at) => {
            let e = &body[at + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(IntError::Bad);
            }
            // Far past bigint either way: out of range, or 0.
            let e: i64 = e.parse().unwrap_or(if e.starts_with('-') {
                i64::MIN / 2
            } else {
                i64::MAX / 2
            });
            (&body[..at], e)
        }
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return Err(IntError::Bad);
    }
    // The digits with the point moved by the exponent, leading zeros off.
    let all = format!("{int}{frac}");
    let digits = all.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    let lead = (all.len() - digits.len()) as i64;
    let point = (int.len() as i64).saturating_add(exp).saturating_sub(lead);
    if point > 19 {
        return Err(IntError::Range);
    }
    let (whole, first_frac): (i128, u8) = if point <= 0 {
        (
            0,
            if point == 0 {
                digits.as_bytes()[0]
            } else {
                b'0'
            },
        )
    } else {
        let p = point as usize;
        let whole: String = if p <= digits.len() {
            digits[..p].to_string()
        } else {
            format!("{digits}{}", "0".repeat(p - digits.len()))
        };
        (
            whole.parse().map_err(|_| IntError::Range)?,
            digits.as_bytes().get(p).copied().unwrap_or(b'0'),
        )
    };
    let mut v = whole;
    if first_frac >= b'5' {
        v += 1;
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).map_err(|_| IntError::Range)
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s
        .trim()
        .trim_matches(['{', '}'])
        .bytes()
        .filter(|c| *c != b'-')
        .collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for i in 0..16 {
        let hi = (hex[2 * i] as char).to_digit(16)?;
        let lo = (hex[2 * i + 1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian (year, month, day) of a day counted from
/// 1970-01-01 (astronomical years: 0 is 1 BC; Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// An unsigned decimal date/time field: ASCII digits only. `str::parse`
/// would also take a sign, but PostgreSQL reads a sign inside a timestamp as
/// the start of a time zone (`'2000-01-01 -01:00'` is midnight), so accepting
/// one would give a different value than the server stores.
fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_date(s: &str) -> Option<i32> {
    let mut it = s.splitn(3, '-');
    let y = digits(it.next()?)?;
    let m = digits(it.next()?)?;
    let d = digits(it.next()?)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    i32::try_from(days - DAYS_1970_TO_2000).ok()
}

fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], s[i + 1..].trim()),
        None => (s, ""),
    };
    let days = parse_date(date)? as i64;
    let mut micros = 0i64;
    if !time.is_empty() {
        let (hms, frac) = match time.split_once('.') {
            Some((a, b)) => (a, b),
            None => (time, ""),
        };
        let mut parts = hms.split(':');
        let h = digits(parts.next()?)?;
        let mi = digits(parts.next().unwrap_or("0"))?;
        let se = digits(parts.next().unwrap_or("0"))?;
        if parts.next().is_some() || h > 24 || mi > 59 || se > 60 {
            return None;
        }
        if !frac.bytes().all(|c| c.is_ascii_digit()) || frac.len() > 6 {
            return None;
        }
        let f: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<6}").parse().ok()?
        };
        micros = ((h * 60 + mi) * 60 + se) * 1_000_000 + f;
    }
    Some(days * 86_400_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_read_numeric_literals_as_postgresql_casts_them() {
        let int = |s: &str| KeyValue::parse(KeyType::Int, s);
        for (text, want) in [
            ("7", 7),
            ("-7", -7),
            ("7.6", 8),
            ("7.5", 8),
            ("7.49", 7),
            ("-2.5", -3),
            ("0.5", 1),
            (".4", 0),
            ("1e1", 10),
            ("2.5E+2", 250),
            ("15e-1", 2),
            ("149E-2", 1),
            ("1e-9", 0),
            ("0e5", 0),
            ("007.50", 8),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("9.223372036854775807e18", i64::MAX),
        ] {
            assert_eq!(int(text).ok(), Some(KeyValue::Int(want)), "{text}");
        }
        for text in ["9223372036854775808", "1e19", "-9.3e18", "1e300"] {
            assert!(
                matches!(int(text), Err(CoreError::OutOfRange { .. })),
                "{text}: {:?}",
                int(text)
            );
        }
        for text in ["", "abc", "1e", "1e+", "1.2.3", "e5", "--1", "1x"] {
            assert!(
                matches!(int(text), Err(CoreError::BadValue { .. })),
                "{text}: {:?}",
                int(text)
            );
        }
    }

    #[test]
    fn parse_and_print_round_trip() {
        for (ty, s) in [
            (KeyType::Int, "-42"),
            (KeyType::Text, "héllo"),
            (KeyType::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            (KeyType::Timestamp, "2026-11-22 20:22:43.000100"),
            (KeyType::Timestamp, "1999-12-31 23:59:59"),
            (KeyType::Date, "2024-02-29"),
        ] {
            assert_eq!(KeyValue::parse(ty, s).unwrap().to_string(), s);
        }
        assert!(KeyValue::parse(KeyType::Int, "x").is_err());
        assert!(KeyValue::parse(KeyType::Date, "2023-02-29").is_err());
        assert_eq!(
            KeyValue::parse(KeyType::Timestamp, "2000-01-01").unwrap(),
            KeyValue::Timestamp(0)
        );
    }

    #[test]
    fn signed_date_time_fields_are_refused() {
        // PostgreSQL reads these signs as a time zone (ignored by `timestamp`):
        // '2000-01-01 -01:00'::timestamp is midnight, not 1999-12-31 23:00.
        for s in [
            "2000-01-01 -01:00",
            "2000-01-01 +1:00",
            "2000-01-01 12:00:-5",
            "2000-01-01 12:+5:00",
        ] {
            assert!(KeyValue::parse(KeyType::Timestamp, s).is_err(), "{s}");
        }
        for s in ["+2024-01-01", "2024-+1-01", "2024-01-+1"] {
            assert!(KeyValue::parse(KeyType::Date, s).is_err(), "{s}");
        }
    }

    #[test]
    fn key_types_from_sql() {
        assert_eq!(KeyType::from_sql_type("BIGINT"), Some(KeyType::Int));
        assert_eq!(KeyType::from_sql_type("varchar(20)"), Some(KeyType::Text));
        assert_eq!(KeyType::from_sql_type("numeric"), None);
    }
}
