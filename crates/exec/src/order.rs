//! Comparing sort keys the way PostgreSQL orders them.
//!
//! Merge plans fetch every sort key as a hidden column in binary format;
//! this compares two such values of one type. Text compares bytewise, which
//! is PostgreSQL's order only under the C collation: the caller must not
//! merge text keys here otherwise.

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
    )
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

/// Compare two non-NULL binary values of type `oid` in ascending order.
pub fn compare(oid: u32, a: &[u8], b: &[u8]) -> Ordering {
    match oid {
        16 | 18 | 20 | 21 | 23 | 1082 | 1083 | 1114 | 1184 => be_i64(a).cmp(&be_i64(b)),
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

    #[test]
    fn numerics_order_like_postgres() {
        let mut vals = vec![
            "-1000.5",
            "-2",
            "-0.001",
            "0",
            "0.0001",
            "0.5",
            "1",
            "1.00",
            "2",
            "10",
            "9999.9999",
            "10000",
            "123456789.1",
        ];
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
