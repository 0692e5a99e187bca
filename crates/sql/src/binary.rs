//! Binary-format values of built-in types, written as PostgreSQL's text
//! input reads them.
//!
//! A statement that shardgate rewrites (a multi-row INSERT split by shard,
//! a cross-shard aggregate, a subquery run first) carries its bind
//! parameters as literals, so a parameter sent in binary (asyncpg always,
//! pgjdbc for numbers and dates, tokio-postgres) must become text first.
//! Each function here reads one type's binary send format (`*_send` in
//! PostgreSQL's sources) and returns text that the type's input function
//! reads back to the same value, whatever the session's DateStyle,
//! IntervalStyle or TimeZone (ISO dates, explicit `+00` offsets, interval
//! units spelled out).

/// Does [`to_text`] read type `oid`?
pub fn reads(oid: u32) -> bool {
    matches!(
        oid,
        16 | 17
            | 18
            | 19
            | 20
            | 21
            | 23
            | 25
            | 26
            | 114
            | 700
            | 701
            | 705
            | 1042
            | 1043
            | 1082
            | 1083
            | 1114
            | 1184
            | 1186
            | 1266
            | 1700
            | 2950
            | 3802
    )
}

/// The text of binary value `raw` of built-in type `oid`; `None` for a
/// type this does not read (see [`reads`]) or a malformed value.
pub fn to_text(oid: u32, raw: &[u8]) -> Option<String> {
    Some(match oid {
        16 => match raw {
            [0] => "f".into(),
            [_] => "t".into(),
            _ => return None,
        },
        21 => i16::from_be_bytes(raw.try_into().ok()?).to_string(),
        23 => i32::from_be_bytes(raw.try_into().ok()?).to_string(),
        20 => i64::from_be_bytes(raw.try_into().ok()?).to_string(),
        26 => u32::from_be_bytes(raw.try_into().ok()?).to_string(),
        700 => float_text(f32::from_be_bytes(raw.try_into().ok()?) as f64, true),
        701 => float_text(f64::from_be_bytes(raw.try_into().ok()?), false),
        // Text-like types send their text.
        18 | 19 | 25 | 114 | 705 | 1042 | 1043 => std::str::from_utf8(raw).ok()?.to_string(),
        // jsonb: a version byte (1), then the text.
        3802 => match raw.split_first() {
            Some((1, rest)) => std::str::from_utf8(rest).ok()?.to_string(),
            _ => return None,
        },
        17 => {
            let mut s = String::with_capacity(2 + raw.len() * 2);
            s.push_str("\\x");
            for b in raw {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
        1700 => numeric(raw)?,
        1082 => date(i32::from_be_bytes(raw.try_into().ok()?)),
        1083 => time_of_day(i64::from_be_bytes(raw.try_into().ok()?))?,
        1114 => timestamp(i64::from_be_bytes(raw.try_into().ok()?), false),
        1184 => timestamp(i64::from_be_bytes(raw.try_into().ok()?), true),
        1266 => {
            if raw.len() != 12 {
                return None;
            }
            let us = i64::from_be_bytes(raw[..8].try_into().ok()?);
            // Seconds west of Greenwich: the offset written is its opposite.
            let west = i32::from_be_bytes(raw[8..].try_into().ok()?);
            format!("{}{}", time_of_day(us)?, offset(-(west as i64)))
        }
        1186 => {
            if raw.len() != 16 {
                return None;
            }
            interval(
                i64::from_be_bytes(raw[..8].try_into().ok()?),
                i32::from_be_bytes(raw[8..12].try_into().ok()?),
                i32::from_be_bytes(raw[12..].try_into().ok()?),
            )
        }
        2950 => {
            if raw.len() != 16 {
                return None;
            }
            let h: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        }
        _ => return None,
    })
}

/// A float as its input reads it back exactly (Rust's shortest round-trip
/// form; `real` values are printed as f32 so that they do not grow digits).
fn float_text(v: f64, single: bool) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if single {
        (v as f32).to_string()
    } else {
        v.to_string()
    }
}

/// numeric's send format: ndigits, weight (of the first base-10000 digit),
/// sign, display scale, then the base-10000 digits.
fn numeric(raw: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> {
        Some(i16::from_be_bytes(
            raw.get(i * 2..i * 2 + 2)?.try_into().ok()?,
        ))
    };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = word(1)? as i32;
    let sign = word(2)? as u16;
    let dscale = usize::try_from(word(3)?).ok()?;
    if raw.len() != 8 + 2 * ndigits {
        return None;
    }
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        let d = word(4 + i)?;
        if !(0..10000).contains(&d) {
            return None;
        }
        digits.push(d as i32);
    }
    // The base-10000 digit at position `p` (0 is the first stored one).
    let at = |p: i32| -> i32 {
        if p < 0 {
            0
        } else {
            digits.get(p as usize).copied().unwrap_or(0)
        }
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for p in 0..=weight {
            if p == 0 {
                s.push_str(&at(p).to_string());
            } else {
                s.push_str(&format!("{:04}", at(p)));
            }
        }
    }
    if dscale > 0 {
        s.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut p = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", at(p)));
            p += 1;
        }
        frac.truncate(dscale);
        s.push_str(&frac);
    }
    Some(s)
}

const US_PER_DAY: i64 = 86_400_000_000;

/// `YYYY-MM-DD`, and whether it is BC (the year then counted from 1 BC).
fn ymd(days_since_2000: i64) -> (String, bool) {
    use shardgate_core::value::{DAYS_1970_TO_2000, civil_from_days};
    let (y, m, d) = civil_from_days(days_since_2000 + DAYS_1970_TO_2000);
    let (year, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    (format!("{year:04}-{m:02}-{d:02}"), bc)
}

fn date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => {
            let (s, bc) = ymd(days as i64);
            if bc { format!("{s} BC") } else { s }
        }
    }
}

/// `HH:MM:SS`, with `.ffffff` when there is a fraction (as shardgate's
/// embedded shards store times).
fn time_of_day(us: i64) -> Option<String> {
    if !(0..=US_PER_DAY).contains(&us) {
        return None;
    }
    let mut s = format!(
        "{:02}:{:02}:{:02}",
        us / 3_600_000_000,
        us / 60_000_000 % 60,
        us / 1_000_000 % 60
    );
    if us % 1_000_000 != 0 {
        s.push_str(&format!(".{:06}", us % 1_000_000));
    }
    Some(s)
}

/// An interval as PostgreSQL's `postgres` IntervalStyle writes it
/// (`1 year 2 mons 3 days 04:05:06.5`), except that when any part is
/// negative every part carries its sign, so that input under any
/// IntervalStyle reads each part on its own.
fn interval(us: i64, days: i32, months: i32) -> String {
    let neg = us < 0 || days < 0 || months < 0;
    let sign = |negative: bool| match (neg, negative) {
        (_, true) => "-",
        (true, false) => "+",
        (false, false) => "",
    };
    let unit = |v: i64, name: &str| {
        format!(
            "{}{} {name}{}",
            sign(v < 0),
            v.unsigned_abs(),
            if v == 1 { "" } else { "s" }
        )
    };
    let mut parts = Vec::new();
    let (years, mons) = (months / 12, months % 12);
    if years != 0 {
        parts.push(unit(years as i64, "year"));
    }
    if mons != 0 {
        parts.push(unit(mons as i64, "mon"));
    }
    if days != 0 {
        parts.push(unit(days as i64, "day"));
    }
    if us != 0 || parts.is_empty() {
        let a = us.unsigned_abs();
        let mut t = format!(
            "{}{:02}:{:02}:{:02}",
            sign(us < 0),
            a / 3_600_000_000,
            a / 60_000_000 % 60,
            a / 1_000_000 % 60
        );
        if !a.is_multiple_of(1_000_000) {
            let frac = format!("{:06}", a % 1_000_000);
            t.push('.');
            t.push_str(frac.trim_end_matches('0'));
        }
        parts.push(t);
    }
    parts.join(" ")
}

/// `+HH:MM:SS` for an offset east of Greenwich in seconds.
fn offset(east: i64) -> String {
    let sign = if east < 0 { '-' } else { '+' };
    let a = east.unsigned_abs();
    format!("{sign}{:02}:{:02}:{:02}", a / 3600, a / 60 % 60, a % 60)
}

/// A timestamp (microseconds since 2000-01-01 00:00, UTC for
/// timestamptz, which is written with an explicit `+00`).
fn timestamp(us: i64, tz: bool) -> String {
    match us {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let days = us.div_euclid(US_PER_DAY);
    let rest = us.rem_euclid(US_PER_DAY);
    let (d, bc) = ymd(days);
    let t = time_of_day(rest).expect("within a day");
    format!(
        "{d} {t}{}{}",
        if tz { "+00" } else { "" },
        if bc { " BC" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [ndigits, weight, sign as i16, dscale] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_read_as_postgresql_prints_them() {
        assert_eq!(to_text(1700, &num(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(to_text(1700, &num(0, 0, 0, 2, &[])).unwrap(), "0.00");
        // 12345.678 = [1][2345].[6780], weight 1, dscale 3.
        assert_eq!(
            to_text(1700, &num(3, 1, 0, 3, &[1, 2345, 6780])).unwrap(),
            "12345.678"
        );
        assert_eq!(
            to_text(1700, &num(1, 1, 0x4000, 0, &[5])).unwrap(),
            "-50000"
        );
        // 0.000012 = [0000][1200]: [1200] at weight -2, dscale 6.
        assert_eq!(
            to_text(1700, &num(1, -2, 0, 6, &[1200])).unwrap(),
            "0.000012"
        );
        assert_eq!(to_text(1700, &num(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert_eq!(
            to_text(1700, &num(0, 0, 0xF000, 0, &[])).unwrap(),
            "-Infinity"
        );
        assert!(to_text(1700, &num(2, 0, 0, 0, &[1])).is_none());
        assert!(to_text(1700, &num(1, 0, 0, 0, &[10000])).is_none());
    }

    #[test]
    fn dates_and_times_are_iso_with_explicit_offsets() {
        let d = |n: i32| to_text(1082, &n.to_be_bytes()).unwrap();
        assert_eq!(d(0), "2000-01-01");
        assert_eq!(d(-1), "1999-12-31");
        assert_eq!(d(60), "2000-03-01");
        assert_eq!(d(-730_119), "0001-01-01");
        assert_eq!(d(-730_120), "0001-12-31 BC");
        assert_eq!(d(i32::MAX), "infinity");
        let ts = |n: i64, oid| to_text(oid, &n.to_be_bytes()).unwrap();
        assert_eq!(ts(1_500_000, 1114), "2000-01-01 00:00:01.500000");
        assert_eq!(ts(-1, 1184), "1999-12-31 23:59:59.999999+00");
        assert_eq!(ts(0, 1184), "2000-01-01 00:00:00+00");
        assert_eq!(ts(i64::MIN, 1184), "-infinity");
        assert_eq!(ts(3_600_000_000 + 7, 1083), "01:00:00.000007");
        let mut tz = (3_600_000_000i64).to_be_bytes().to_vec();
        tz.extend_from_slice(&(-19_800i32).to_be_bytes());
        assert_eq!(to_text(1266, &tz).unwrap(), "01:00:00+05:30:00");
        let iv = |us: i64, days: i32, months: i32| {
            let mut b = us.to_be_bytes().to_vec();
            b.extend_from_slice(&days.to_be_bytes());
            b.extend_from_slice(&months.to_be_bytes());
            to_text(1186, &b).unwrap()
        };
        assert_eq!(
            iv(-90_000_000, 3, -14),
            "-1 years -2 mons +3 days -00:01:30"
        );
        assert_eq!(iv(7_500_000, 1, 13), "1 year 1 mon 1 day 00:00:07.5");
        assert_eq!(iv(0, 3, 0), "3 days");
        assert_eq!(iv(0, 0, 0), "00:00:00");
    }

    #[test]
    fn other_types() {
        let u: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            to_text(2950, &u).unwrap(),
            "00010203-0405-0607-0809-0a0b0c0d0e0f"
        );
        assert_eq!(to_text(17, &[0, 255]).unwrap(), "\\x00ff");
        assert_eq!(to_text(3802, b"\x01{\"a\": 1}").unwrap(), "{\"a\": 1}");
        assert_eq!(to_text(700, &0.1f32.to_be_bytes()).unwrap(), "0.1");
        assert_eq!(to_text(701, &f64::NAN.to_be_bytes()).unwrap(), "NaN");
        assert!(to_text(23, &[0, 1]).is_none());
        assert!(to_text(600, &[0; 16]).is_none());
    }
}
