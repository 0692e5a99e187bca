//! Comparing sort keys the way PostgreSQL orders them.
//!
//! Merge plans fetch sort keys as hidden columns in binary format, or read
//! them from the result's own columns in the format the client asked for;
//! this compares two such values of one type ([`compare`] binary,
//! [`compare_text`] text, for the types whose text form orders exactly).
//! Text compares bytewise, which is PostgreSQL's order only under the C
//! collation: the caller must not merge text keys here otherwise.

use std::cmp::Ordering;

/// Can values of this type OID be compared here?
pub fn supported(oid: u32) -> bool {
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
            | 700
            | 701
            | 1042
            | 1043
            | 1082
            | 1083
            | 1114
            | 1184
            | 1700
            | 2950
            | 790
            | 1186
            | 1266
    )
}

/// Can values of this type OID be compared in text format? Only types
/// whose text form does not depend on settings (DateStyle, TimeZone,
/// extra_float_digits, bytea_output) and gives back the exact value.
pub fn text_supported(oid: u32) -> bool {
    matches!(
        oid,
        16 | 19 | 20 | 21 | 23 | 25 | 26 | 1042 | 1043 | 1700 | 2950
    )
}

/// Compare two non-NULL values of type `oid` in text format, in ascending
/// order (`oid` is one of [`text_supported`]).
pub fn compare_text(oid: u32, a: &[u8], b: &[u8]) -> Ordering {
    match oid {
        o if is_int(o) => int_text(a).cmp(&int_text(b)),
        1700 => numeric_text_cmp(a, b),
        // bool ('f' < 't'), name, text, varchar, uuid (lower-case hex):
        // as the binary form; bpchar ignores trailing spaces.
        _ => compare(oid, a, b),
    }
}

/// Is this an integer type (int2, int4, int8, oid)?
pub fn is_int(oid: u32) -> bool {
    matches!(oid, 20 | 21 | 23 | 26)
}

/// An integer in PostgreSQL's text form (`-123`); 0 if it is not one.
pub fn int_text(b: &[u8]) -> i128 {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, b),
    };
    let mut v: i128 = 0;
    for d in digits {
        if !d.is_ascii_digit() {
            return 0;
        }
        v = v.saturating_mul(10).saturating_add(i128::from(d - b'0'));
    }
    if neg { -v } else { v }
}

/// Orders numerics in PostgreSQL's text form (`-12.340`, `NaN`,
/// `Infinity`, `-Infinity`): -Infinity < negatives < zero < positives <
/// Infinity < NaN.
fn numeric_text_cmp(a: &[u8], b: &[u8]) -> Ordering {
    // (rank, negative, integer digits, fraction digits) with leading
    // zeros of the integer part and trailing zeros of the fraction gone.
    fn parts(v: &[u8]) -> (u8, bool, &[u8], &[u8]) {
        match v {
            b"NaN" => return (4, false, &[], &[]),
            b"Infinity" => return (3, false, &[], &[]),
            b"-Infinity" => return (0, false, &[], &[]),
            _ => {}
        }
        let (neg, v) = match v.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, v),
        };
        let (mut int, mut frac) = match v.iter().position(|c| *c == b'.') {
            Some(p) => (&v[..p], &v[p + 1..]),
            None => (v, &v[..0]),
        };
        while let Some((b'0', rest)) = int.split_first() {
            int = rest;
        }
        while let Some((b'0', rest)) = frac.split_last() {
            frac = rest;
        }
        let zero = int.is_empty() && frac.is_empty();
        match (zero, neg) {
            (true, _) => (2, false, int, frac),
            (false, true) => (1, true, int, frac),
            (false, false) => (2, false, int, frac),
        }
    }
    let (ra, na, ia, fa) = parts(a);
    let (rb, _, ib, fb) = parts(b);
    if ra != rb || ra != 1 && ra != 2 {
        return ra.cmp(&rb);
    }
    // Same sign: compare magnitudes (zero has no digits).
    let m = ia.len().cmp(&ib.len()).then(ia.cmp(ib)).then(fa.cmp(fb));
    if na { m.reverse() } else { m }
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[8 - n..].copy_from_slice(&b[..n]);
    // Sign-extend shorter values.
    let v = i64::from_be_bytes(a);
    if n < 8 && n > 0 && b[0] & 0x80 != 0 {
        v - (1i64 << (8 * n))
    } else {
        v
    }
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// A numeric in binary form, as an orderable value.
#[derive(PartialEq, Eq)]
enum Num<'a> {
    NegInf,
    Finite {
        neg: bool,
        weight: i16,
        digits: &'a [u8],
    },
    PosInf,
    NaN,
}

fn numeric(b: &[u8]) -> Num<'_> {
    if b.len() < 8 {
        return Num::NaN;
    }
    let n = i16::from_be_bytes([b[0], b[1]]).max(0) as usize;
    let weight = i16::from_be_bytes([b[2], b[3]]);
    let sign = u16::from_be_bytes([b[4], b[5]]);
    match sign {
        0xC000 => Num::NaN,
        0xD000 => Num::PosInf,
        0xF000 => Num::NegInf,
        _ => {
            let digits = &b[8..(8 + 2 * n).min(b.len())];
            Num::Finite {
                neg: sign == 0x4000,
                weight,
                digits,
            }
        }
    }
}

fn magnitude(wa: i16, da: &[u8], wb: i16, db: &[u8]) -> Ordering {
    // Trailing zero groups do not change the value; leading ones are not
    // sent by PostgreSQL.
    fn trim(d: &[u8]) -> &[u8] {
        let mut d = d;
        while d.len() >= 2 && d[d.len() - 2..] == [0, 0] {
            d = &d[..d.len() - 2];
        }
        d
    }
    let (da, db) = (trim(da), trim(db));
    match (da.is_empty(), db.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    wa.cmp(&wb).then_with(|| da.cmp(db))
}

fn numeric_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let rank = |n: &Num<'_>| match n {
        Num::NegInf => 0,
        Num::Finite {
            neg: true, digits, ..
        } if !digits.iter().all(|x| *x == 0) => 1,
        Num::Finite { .. } => 2,
        Num::PosInf => 3,
        Num::NaN => 4,
    };
    let (x, y) = (numeric(a), numeric(b));
    let r = rank(&x).cmp(&rank(&y));
    if r != Ordering::Equal {
        // Zero may be "negative" with no digits: rank 2 for both signs.
        return r;
    }
    match (x, y) {
        (
            Num::Finite {
                neg,
                weight: wa,
                digits: da,
            },
            Num::Finite {
                weight: wb,
                digits: db,
                ..
            },
        ) => {
            let m = magnitude(wa, da, wb, db);
            if neg && !da.iter().all(|d| *d == 0) {
                m.reverse()
            } else {
                m
            }
        }
        _ => Ordering::Equal,
    }
}

/// An interval's length in microseconds, as interval_cmp_value reckons it.
fn interval_span(x: &[u8]) -> i128 {
    let time = be_i64(x.get(..8).unwrap_or_default());
    let int = |r: std::ops::Range<usize>| {
        x.get(r)
            .map_or(0, |v| i32::from_be_bytes(v.try_into().unwrap_or([0; 4])))
    };
    let (days, months) = (int(8..12), int(12..16));
    i128::from(time) + (i128::from(days) + i128::from(months) * 30) * 86_400_000_000
}

/// Compare two non-NULL binary values of type `oid` in ascending order.
pub fn compare(oid: u32, a: &[u8], b: &[u8]) -> Ordering {
    match oid {
        16 | 18 | 20 | 21 | 23 | 790 | 1082 | 1083 | 1114 | 1184 => be_i64(a).cmp(&be_i64(b)),
        // interval: as PostgreSQL's interval_cmp, a month being 30 days
        // and a day 24 hours.
        1186 => interval_span(a).cmp(&interval_span(b)),
        // timetz: the UTC time, then the zone (timetz_cmp).
        1266 => {
            let parts = |x: &[u8]| -> (i128, i32) {
                let time = be_i64(x.get(..8).unwrap_or_default());
                let zone = x
                    .get(8..12)
                    .map_or(0, |z| i32::from_be_bytes(z.try_into().unwrap_or([0; 4])));
                (i128::from(time) + i128::from(zone) * 1_000_000, zone)
            };
            parts(a).cmp(&parts(b))
        }
        26 => u32::from_be_bytes(a.try_into().unwrap_or([0; 4]))
            .cmp(&u32::from_be_bytes(b.try_into().unwrap_or([0; 4]))),
        700 => float_cmp(
            f32::from_be_bytes(a.try_into().unwrap_or([0; 4])) as f64,
            f32::from_be_bytes(b.try_into().unwrap_or([0; 4])) as f64,
        ),
        701 => float_cmp(
            f64::from_be_bytes(a.try_into().unwrap_or([0; 8])),
            f64::from_be_bytes(b.try_into().unwrap_or([0; 8])),
        ),
        1700 => numeric_cmp(a, b),
        1042 => {
            let t = |x: &[u8]| {
                let mut x = x;
                while x.last() == Some(&b' ') {
                    x = &x[..x.len() - 1];
                }
                x.to_vec()
            };
            t(a).cmp(&t(b))
        }
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Vec<u8> {
        shardgate_backend::sqlite::types::numeric_to_binary(s).unwrap()
    }

    /// Finite numerics in ascending order.
    const FINITE: [&str; 12] = [
        "-1000.5",
        "-2",
        "-0.001",
        "0",
        "0.0001",
        "0.5",
        "1",
        "2",
        "10",
        "9999.9999",
        "10000",
        "123456789.1",
    ];

    #[test]
    fn intervals_timetz_and_money_order_like_postgres() {
        let iv = |us: i64, days: i32, months: i32| {
            let mut b = us.to_be_bytes().to_vec();
            b.extend_from_slice(&days.to_be_bytes());
            b.extend_from_slice(&months.to_be_bytes());
            b
        };
        let day = 86_400_000_000i64;
        // 1 mon = 30 days = 720 hours; -1 day < 23 hours < 1 day.
        assert_eq!(compare(1186, &iv(0, 0, 1), &iv(0, 30, 0)), Ordering::Equal);
        assert_eq!(
            compare(1186, &iv(720 * 3_600_000_000, 0, 0), &iv(0, 0, 1)),
            Ordering::Equal
        );
        assert_eq!(
            compare(1186, &iv(0, -1, 0), &iv(23 * 3_600_000_000, 0, 0)),
            Ordering::Less
        );
        assert_eq!(
            compare(1186, &iv(day + 1, 0, 0), &iv(0, 1, 0)),
            Ordering::Greater
        );
        assert_eq!(
            compare(1186, &iv(0, 0, -1), &iv(-day, 0, 0)),
            Ordering::Less
        );
        let tz = |us: i64, west: i32| {
            let mut b = us.to_be_bytes().to_vec();
            b.extend_from_slice(&west.to_be_bytes());
            b
        };
        // 10:00+02 (08:00 UTC) < 09:00+00; same instant: the zone decides.
        assert_eq!(
            compare(1266, &tz(36_000_000_000, -7200), &tz(32_400_000_000, 0)),
            Ordering::Less
        );
        assert_eq!(
            compare(1266, &tz(36_000_000_000, -3600), &tz(32_400_000_000, 0)),
            Ordering::Less
        );
        assert_eq!(
            compare(1266, &tz(32_400_000_000, 0), &tz(36_000_000_000, -3600)),
            Ordering::Greater
        );
        assert_eq!(
            compare(790, &(-5i64).to_be_bytes(), &3i64.to_be_bytes()),
            Ordering::Less
        );
    }

    #[test]
    fn numerics_order_like_postgres() {
        let mut vals = FINITE.to_vec();
        vals.insert(7, "1.00");
        let sorted = vals.clone();
        vals.reverse();
        let mut enc: Vec<(String, Vec<u8>)> =
            vals.iter().map(|v| (v.to_string(), num(v))).collect();
        enc.sort_by(|a, b| numeric_cmp(&a.1, &b.1));
        let got: Vec<&str> = enc.iter().map(|(s, _)| s.as_str()).collect();
        // 1 and 1.00 are equal; the sort is stable on the reversed input.
        let mut want = sorted.clone();
        want.swap(6, 7);
        assert_eq!(got, want);
        assert_eq!(numeric_cmp(&num("1"), &num("1.00")), Ordering::Equal);
    }

    #[test]
    fn text_forms_order_like_postgres() {
        let mut vals = vec!["-Infinity"];
        vals.extend(FINITE);
        vals.extend(["Infinity", "NaN"]);
        let sorted = vals.clone();
        vals.reverse();
        vals.sort_by(|a, b| compare_text(1700, a.as_bytes(), b.as_bytes()));
        assert_eq!(vals, sorted);
        for (a, b) in [("1", "1.00"), ("0", "-0.000"), ("007.50", "7.5")] {
            assert_eq!(
                compare_text(1700, a.as_bytes(), b.as_bytes()),
                Ordering::Equal,
                "{a} = {b}"
            );
        }
        // Each numeric compares in text as it does in binary.
        for a in &sorted[1..sorted.len() - 2] {
            for b in &sorted[1..sorted.len() - 2] {
                assert_eq!(
                    compare_text(1700, a.as_bytes(), b.as_bytes()),
                    numeric_cmp(&num(a), &num(b)),
                    "{a} vs {b}"
                );
            }
        }
        assert_eq!(compare_text(23, b"-5", b"3"), Ordering::Less);
        assert_eq!(compare_text(23, b"10", b"9"), Ordering::Greater);
        assert_eq!(
            compare_text(20, b"-9223372036854775808", b"9223372036854775807"),
            Ordering::Less
        );
        assert_eq!(compare_text(26, b"4294967295", b"12"), Ordering::Greater);
        assert_eq!(compare_text(16, b"f", b"t"), Ordering::Less);
        assert_eq!(compare_text(1042, b"ab  ", b"ab"), Ordering::Equal);
        assert!(!text_supported(701) && !text_supported(1114) && !text_supported(17));
    }

    #[test]
    fn integers_floats_and_text() {
        assert_eq!(
            compare(20, &(-5i64).to_be_bytes(), &3i64.to_be_bytes()),
            Ordering::Less
        );
        assert_eq!(
            compare(23, &(-5i32).to_be_bytes(), &3i32.to_be_bytes()),
            Ordering::Less
        );
        assert_eq!(
            compare(21, &(-1i16).to_be_bytes(), &(-2i16).to_be_bytes()),
            Ordering::Greater
        );
        assert_eq!(
            compare(701, &f64::NAN.to_be_bytes(), &f64::INFINITY.to_be_bytes()),
            Ordering::Greater
        );
        assert_eq!(
            compare(701, &(-0.0f64).to_be_bytes(), &0.0f64.to_be_bytes()),
            Ordering::Equal
        );
        assert_eq!(compare(25, b"B", b"a"), Ordering::Less);
        assert_eq!(compare(1042, b"ab  ", b"ab"), Ordering::Equal);
    }
}
