//! Checks our PostgreSQL-compatible hash functions against a real PostgreSQL.
//!
//! One throw-away server is started (via `shardgate-testkit`) and a single
//! `psql` call computes a few thousand hash values: `hashint8extended`,
//! `hashint4extended`, `hashint2extended`, `hashtextextended`,
//! `uuid_hash_extended`, `timestamp_hash_extended` and the date hash (the
//! `date_ops` hash opclass uses `hashint4extended` on the day number, which is
//! checked against `pg_amproc` in the same query), for seed 0 and a few other
//! seeds. Each value is compared with what `shardgate_core::hash` /
//! `KeyValue::pg_hash` compute; the test fails listing the first mismatches.
//!
//! Text input forms are checked too: `KeyValue::parse(ty, s).pg_hash()` must
//! equal PostgreSQL's hash of `s::type`.

use shardgate_core::hash;
use shardgate_core::{KeyType, KeyValue};
use shardgate_testkit::PgServer;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A fixed-seed 64-bit LCG (Knuth's MMIX constants) with an output mix, so
/// the vectors are the same on every run without a `rand` dependency.
struct Lcg(u64);

impl Lcg {
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let x = self.0;
        (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (x >> 29)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64 + 1) as i64
    }
}

/// Seeds used for the `*extended` functions (seed 0 is what routing uses).
const SEEDS: [u64; 6] = [
    0,
    1,
    0x0000_0001_0000_0000,
    0xffff_ffff,
    0xdead_beef_cafe_babe,
    u64::MAX,
];

/// One expected row: what was hashed (for messages), the hash, and an
/// optional extra column (e.g. PostgreSQL's internal value of the input).
struct Case {
    input: String,
    /// `None`: we reject the input, so there is nothing to compare.
    hash: Option<u64>,
    extra: Option<String>,
}

/// A set of rows computed over one input CTE `t(v, i)`.
struct Group {
    label: String,
    cte: String,
    hash_sql: String,
    extra_sql: Option<String>,
    cases: Vec<Case>,
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn seed_sql(seed: u64) -> String {
    // The seed argument is a bigint.
    (seed as i64).to_string()
}

fn int_vectors(rng: &mut Lcg) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let mut i8s: Vec<i64> = vec![
        0,
        1,
        -1,
        2,
        -2,
        42,
        -42,
        255,
        256,
        65_535,
        65_536,
        i16::MIN as i64,
        i16::MAX as i64,
        i32::MIN as i64,
        i32::MAX as i64,
        i32::MIN as i64 - 1,
        i32::MAX as i64 + 1,
        u32::MAX as i64,
        1 << 32,
        -(1 << 32),
        (1 << 32) + 1,
        -(1 << 32) - 1,
        i64::MIN,
        i64::MAX,
        i64::MIN + 1,
        i64::MAX - 1,
        0x0123_4567_89ab_cdef,
        -0x0123_4567_89ab_cdef,
    ];
    for k in 1..63 {
        i8s.extend([1i64 << k, -(1i64 << k), (1i64 << k) - 1, -(1i64 << k) + 1]);
    }
    for _ in 0..120 {
        i8s.push(rng.next_u64() as i64);
    }
    for _ in 0..60 {
        i8s.push(rng.next_u64() as u32 as i32 as i64);
    }
    for _ in 0..40 {
        i8s.push(rng.range_i64(-1000, 1000));
    }
    let i4s: Vec<i64> = i8s
        .iter()
        .copied()
        .filter(|v| i32::try_from(*v).is_ok())
        .chain((0..60).map(|_| rng.next_u64() as u32 as i32 as i64))
        .collect();
    let i2s: Vec<i64> = i8s
        .iter()
        .copied()
        .filter(|v| i16::try_from(*v).is_ok())
        .chain((0..40).map(|_| rng.next_u64() as u16 as i16 as i64))
        .collect();
    (i8s, i4s, i2s)
}

fn text_vectors(rng: &mut Lcg) -> Vec<String> {
    let mut v: Vec<String> = vec![
        String::new(),
        "a".into(),
        "abc".into(),
        "hello world".into(),
        "héllo".into(),
        "日本語".into(),
        "🦀 crab".into(),
        "Ünïcödé strings with mixed widths ☃ ∑ 𝄞".into(),
        "it's".into(),
        "tab\there".into(),
        "line\nbreak".into(),
        "trailing spaces   ".into(),
        "\u{7f}\u{80}\u{ff}\u{100}".into(),
    ];
    // Every byte length 1..=30 (all tail lengths of the 12-byte loop, with 0,
    // 1 and 2 full blocks), once printable ASCII and once with multi-byte
    // characters (bytes >= 0x80 in every tail position).
    for len in 1..=30usize {
        let s: String = (0..len)
            .map(|_| (b' ' + rng.below(95) as u8) as char)
            .collect();
        v.push(s);
        let pool = ['é', '日', '🦀', 'ß', 'Ω', '\u{7ff}', '\u{ffff}', 'z'];
        let mut s = String::new();
        while s.len() < len {
            let c = pool[rng.below(pool.len() as u64) as usize];
            if s.len() + c.len_utf8() <= len {
                s.push(c);
            } else {
                s.push('x');
            }
        }
        assert_eq!(s.len(), len);
        v.push(s);
    }
    for len in [31usize, 35, 36, 37, 47, 48, 49, 100, 255, 1000] {
        v.push(
            (0..len)
                .map(|_| (b'0' + rng.below(75) as u8) as char)
                .collect(),
        );
    }
    v
}

fn uuid_vectors(rng: &mut Lcg) -> Vec<[u8; 16]> {
    let mut v = vec![
        [0u8; 16],
        [0xff; 16],
        [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ],
    ];
    for _ in 0..40 {
        let mut u = [0u8; 16];
        u[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        u[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        v.push(u);
    }
    v
}

fn micros(s: &str) -> i64 {
    match KeyValue::parse(KeyType::Timestamp, s).expect(s) {
        KeyValue::Timestamp(m) => m,
        other => panic!("{other:?}"),
    }
}

fn days(s: &str) -> i32 {
    match KeyValue::parse(KeyType::Date, s).expect(s) {
        KeyValue::Date(d) => d,
        other => panic!("{other:?}"),
    }
}

fn timestamp_vectors(rng: &mut Lcg) -> Vec<i64> {
    const DAY: i64 = 86_400_000_000;
    let lo = micros("0001-01-01 00:00:00");
    let hi = micros("9999-12-31 23:59:59.999999");
    let mut v = vec![
        0,
        1,
        -1,
        DAY - 1,
        DAY,
        -DAY,
        lo,
        hi,
        micros("1970-01-01"),
        micros("1999-12-31 23:59:59.999999"),
        micros("2024-02-29 12:34:56.789012"),
        micros("2038-01-19 03:14:08"),
    ];
    for _ in 0..80 {
        v.push(rng.range_i64(lo, hi));
    }
    for _ in 0..20 {
        // Whole seconds / whole days, closer to 2000.
        v.push(rng.range_i64(-20_000, 20_000) * DAY + rng.range_i64(0, 86_399) * 1_000_000);
    }
    v
}

fn date_vectors(rng: &mut Lcg) -> Vec<i32> {
    let lo = days("0001-01-01");
    let hi = days("9999-12-31");
    let mut v = vec![
        0,
        1,
        -1,
        lo,
        hi,
        days("1970-01-01"),
        days("2024-02-29"),
        days("1900-03-01"),
        days("2100-12-31"),
    ];
    for _ in 0..80 {
        v.push(rng.range_i64(lo as i64, hi as i64) as i32);
    }
    v
}

/// Text input forms PostgreSQL accepts, with the SQL type to cast them to.
fn parse_forms() -> Vec<(KeyType, &'static str, &'static str)> {
    use KeyType::*;
    let mut v = Vec::new();
    for s in [
        "0",
        "42",
        "-42",
        " 42",
        "42 ",
        "  -7  ",
        "+7",
        "007",
        "-9223372036854775808",
        "9223372036854775807",
        "2147483648",
    ] {
        v.push((Int, "bigint", s));
    }
    for s in ["0", "1", "-1", "-2147483648", "2147483647", " 12 "] {
        v.push((Int, "integer", s));
    }
    for s in ["0", "-32768", "32767", "+5"] {
        v.push((Int, "smallint", s));
    }
    for s in ["", "abc", "héllo", "  spaced  ", "it's", "tab\there", "🦀"] {
        v.push((Text, "text", s));
        v.push((Text, "varchar", s));
    }
    for s in [
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        "{a0eebc999c0b4ef8bb6d6bb9bd380a11}",
        "00000000-0000-0000-0000-000000000000",
    ] {
        v.push((Uuid, "uuid", s));
    }
    for s in [
        "2000-01-01",
        "2000-01-01 00:00:00",
        "2024-02-29T12:34:56",
        "2024-02-29 12:34:56.5",
        "2024-02-29 12:34:56.123456",
        "2024-02-29 12:34",
        "1999-12-31 23:59:59.999999",
        "1970-01-01 00:00:00",
        "2000-01-01 24:00:00",
        "1998-12-31 23:59:60",
        " 2024-06-01 08:00:00 ",
        "2024-6-1 8:05:03",
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59.999999",
        "1900-02-28 01:02:03.000004",
    ] {
        v.push((Timestamp, "timestamp", s));
    }
    for s in [
        "2024-02-29",
        "2000-01-01",
        "1999-12-31",
        "0001-01-01",
        " 2024-03-01 ",
        "9999-12-31",
        "1900-02-28",
        "2024-6-1",
        "10000-01-01",
    ] {
        v.push((Date, "date", s));
    }
    v
}

/// Odd input forms PostgreSQL accepts (a sign inside the time is read as a
/// time zone, which `timestamp` ignores; extra fraction digits are rounded).
/// We may reject them, but must never read a different value.
fn lenient_forms() -> Vec<(KeyType, &'static str, &'static str)> {
    use KeyType::*;
    let mut v = Vec::new();
    for s in [
        "2000-01-01 -01:00",
        "2000-01-01 +1:00",
        "2000-01-01 12:00:-5",
        "2000-01-01 12:+5:00",
        "2000-01-01 12:00:00.",
        "2024-02-29 12:34:56+02",
        "2024-02-29 12:34:56-05:30",
        "2024-02-29 12:34:56.1234567",
        "2000-01-01  12:00",
        "2000-01-01 allballs",
        "epoch",
    ] {
        v.push((Timestamp, "timestamp", s));
    }
    for s in ["20240229", "Feb 29 2024", "epoch"] {
        v.push((Date, "date", s));
    }
    v
}

fn pg_hash_fn(sql_type: &str) -> &'static str {
    match sql_type {
        "bigint" => "hashint8extended",
        "integer" => "hashint4extended",
        "smallint" => "hashint2extended",
        "text" | "varchar" => "hashtextextended",
        "uuid" => "uuid_hash_extended",
        "timestamp" => "timestamp_hash_extended",
        other => panic!("no hash fn for {other}"),
    }
}

/// Builds the CTEs and groups. Returns `(ctes, groups)`.
fn build() -> (Vec<(String, String)>, Vec<Group>) {
    let mut rng = Lcg(0x5eed_1234_abcd_0001);
    let (i8s, i4s, i2s) = int_vectors(&mut rng);
    let texts = text_vectors(&mut rng);
    let uuids = uuid_vectors(&mut rng);
    let tss = timestamp_vectors(&mut rng);
    let dates = date_vectors(&mut rng);
    let forms = parse_forms();

    let int_array = |vals: &[i64], ty: &str| {
        let items: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
        format!("'{{{}}}'::{ty}[]", items.join(","))
    };
    let text_array = |items: Vec<String>, ty: &str| format!("ARRAY[{}]::{ty}[]", items.join(","));

    let mut ctes: Vec<(String, String)> = vec![
        ("i8".to_string(), int_array(&i8s, "bigint")),
        ("i4".to_string(), int_array(&i4s, "integer")),
        ("i2".to_string(), int_array(&i2s, "smallint")),
        (
            "tx".to_string(),
            text_array(
                texts.iter().map(|s| sql_str(&hex(s.as_bytes()))).collect(),
                "text",
            ),
        ),
        (
            "uu".to_string(),
            text_array(
                uuids
                    .iter()
                    .map(|u| sql_str(&KeyValue::Uuid(*u).to_string()))
                    .collect(),
                "uuid",
            ),
        ),
        (
            "ts".to_string(),
            text_array(
                tss.iter()
                    .map(|m| sql_str(&KeyValue::Timestamp(*m).to_string()))
                    .collect(),
                "timestamp",
            ),
        ),
        (
            "dt".to_string(),
            text_array(
                dates
                    .iter()
                    .map(|d| sql_str(&KeyValue::Date(*d).to_string()))
                    .collect(),
                "date",
            ),
        ),
    ];

    let mut groups = Vec::new();
    for seed in SEEDS {
        let s = seed_sql(seed);
        groups.push(Group {
            label: format!("hashint8extended(v, {s})"),
            cte: "i8".to_string(),
            hash_sql: format!("hashint8extended(v, {s})"),
            extra_sql: None,
            cases: i8s
                .iter()
                .map(|v| Case {
                    input: v.to_string(),
                    hash: Some(if seed == 0 {
                        KeyValue::Int(*v).pg_hash()
                    } else {
                        hash::hashint8extended(*v, seed)
                    }),
                    extra: None,
                })
                .collect(),
        });
        groups.push(Group {
            label: format!("hashint4extended(v, {s})"),
            cte: "i4".to_string(),
            hash_sql: format!("hashint4extended(v, {s})"),
            extra_sql: None,
            cases: i4s
                .iter()
                .map(|v| Case {
                    input: v.to_string(),
                    hash: Some(if seed == 0 {
                        KeyValue::Int(*v).pg_hash()
                    } else {
                        hash::hash_uint32_extended(*v as i32 as u32, seed)
                    }),
                    extra: None,
                })
                .collect(),
        });
        groups.push(Group {
            label: format!("hashint2extended(v, {s})"),
            cte: "i2".to_string(),
            hash_sql: format!("hashint2extended(v, {s})"),
            extra_sql: None,
            cases: i2s
                .iter()
                .map(|v| Case {
                    input: v.to_string(),
                    hash: Some(if seed == 0 {
                        KeyValue::Int(*v).pg_hash()
                    } else {
                        hash::hashint8extended(*v, seed)
                    }),
                    extra: None,
                })
                .collect(),
        });
        groups.push(Group {
            label: format!("hashtextextended(v, {s})"),
            cte: "tx".to_string(),
            hash_sql: format!("hashtextextended(convert_from(decode(v, 'hex'), 'UTF8'), {s})"),
            // Also check PostgreSQL saw the same number of bytes.
            extra_sql: Some("octet_length(decode(v, 'hex'))".into()),
            cases: texts
                .iter()
                .map(|t| Case {
                    input: format!("{t:?}"),
                    hash: Some(if seed == 0 {
                        KeyValue::Text(t.clone()).pg_hash()
                    } else {
                        hash::hashtextextended(t, seed)
                    }),
                    extra: Some(t.len().to_string()),
                })
                .collect(),
        });
        groups.push(Group {
            label: format!("uuid_hash_extended(v, {s})"),
            cte: "uu".to_string(),
            hash_sql: format!("uuid_hash_extended(v, {s})"),
            extra_sql: None,
            cases: uuids
                .iter()
                .map(|u| Case {
                    input: KeyValue::Uuid(*u).to_string(),
                    hash: Some(if seed == 0 {
                        KeyValue::Uuid(*u).pg_hash()
                    } else {
                        hash::uuid_hash_extended(u, seed)
                    }),
                    extra: None,
                })
                .collect(),
        });
        groups.push(Group {
            label: format!("timestamp_hash_extended(v, {s})"),
            cte: "ts".to_string(),
            hash_sql: format!("timestamp_hash_extended(v, {s})"),
            // PostgreSQL's internal value: microseconds since 2000-01-01.
            extra_sql: Some(
                "((extract(epoch from v) - extract(epoch from timestamp '2000-01-01')) * 1000000)::bigint".into(),
            ),
            cases: tss
                .iter()
                .map(|m| Case {
                    input: format!("{} ({m} us)", KeyValue::Timestamp(*m)),
                    hash: Some(if seed == 0 { KeyValue::Timestamp(*m).pg_hash() } else { hash::hashint8extended(*m, seed) }),
                    extra: Some(m.to_string()),
                })
                .collect(),
        });
        groups.push(Group {
            label: format!("date hash: hashint4extended(v - date '2000-01-01', {s})"),
            cte: "dt".to_string(),
            hash_sql: format!("hashint4extended(v - date '2000-01-01', {s})"),
            // PostgreSQL's internal value: days since 2000-01-01.
            extra_sql: Some("v - date '2000-01-01'".into()),
            cases: dates
                .iter()
                .map(|d| Case {
                    input: format!("{} ({d} days)", KeyValue::Date(*d)),
                    hash: Some(if seed == 0 {
                        KeyValue::Date(*d).pg_hash()
                    } else {
                        hash::hash_uint32_extended(*d as u32, seed)
                    }),
                    extra: Some(d.to_string()),
                })
                .collect(),
        });
    }

    // Text input forms: one CTE of strings per SQL type, cast inside the hash.
    // `strict` forms must parse; `lenient` ones may be rejected by us, but if
    // we accept them we must read the same value as PostgreSQL.
    let mut by_type: BTreeMap<&'static str, Vec<(KeyType, &'static str)>> = BTreeMap::new();
    for (ty, sql_type, s) in forms.iter().chain(lenient_forms().iter()) {
        by_type.entry(sql_type).or_default().push((*ty, s));
    }
    for (sql_type, items) in by_type {
        let cte = format!("pf_{sql_type}");
        ctes.push((
            cte.clone(),
            text_array(items.iter().map(|(_, s)| sql_str(s)).collect(), "text"),
        ));
        let hash_sql = if sql_type == "date" {
            "hashint4extended(v::date - date '2000-01-01', 0)".to_string()
        } else {
            format!("{}(v::{sql_type}, 0)", pg_hash_fn(sql_type))
        };
        groups.push(Group {
            label: format!("parse as {sql_type}"),
            cte,
            hash_sql,
            extra_sql: None,
            cases: items
                .iter()
                .map(|(ty, s)| Case {
                    input: format!("{ty} {s:?}"),
                    // A strict form that fails to parse is reported below.
                    hash: KeyValue::parse(*ty, s).ok().map(|v| v.pg_hash()),
                    extra: None,
                })
                .collect(),
        });
    }
    (ctes, groups)
}

/// Expected `(type, support function 2)` of the hash opclasses we rely on.
const AMPROC: [(&str, &str); 7] = [
    ("bigint", "hashint8extended"),
    ("date", "hashint4extended"),
    ("integer", "hashint4extended"),
    ("smallint", "hashint2extended"),
    ("text", "hashtextextended"),
    ("timestamp without time zone", "timestamp_hash_extended"),
    ("uuid", "uuid_hash_extended"),
];

#[test]
fn hashes_match_postgresql() {
    let (ctes, groups) = build();

    let mut sql = String::from("WITH ");
    for (k, (name, array)) in ctes.iter().enumerate() {
        if k > 0 {
            sql.push_str(",\n");
        }
        let _ = write!(
            sql,
            "{name}(v, i) AS (SELECT * FROM unnest({array}) WITH ORDINALITY)"
        );
    }
    sql.push('\n');
    for (g, group) in groups.iter().enumerate() {
        let extra = group.extra_sql.as_deref().unwrap_or("NULL");
        let _ = writeln!(
            sql,
            "SELECT {g}, i, ({})::text, ({extra})::text FROM {} UNION ALL",
            group.hash_sql, group.cte
        );
    }
    // The hash opclasses' extended hash functions (support function 2): shows
    // that e.g. date really hashes with hashint4extended on its day number.
    sql.push_str(
        "SELECT -1, 0, format_type(p.amproclefttype, NULL), p.amproc::regproc::text \
         FROM pg_amproc p JOIN pg_opfamily f ON f.oid = p.amprocfamily \
         JOIN pg_am a ON a.oid = f.opfmethod \
         WHERE a.amname = 'hash' AND p.amprocnum = 2 \
         AND p.amproclefttype = p.amprocrighttype \
         AND format_type(p.amproclefttype, NULL) IN \
         ('bigint','integer','smallint','text','uuid','timestamp without time zone','date')\n\
         ORDER BY 1, 2, 3",
    );
    // psql gets the SQL as one argument (Linux caps one argument at 128 KiB).
    assert!(
        sql.len() < 120_000,
        "SQL too long for one psql argument: {} bytes",
        sql.len()
    );

    let server = PgServer::start().expect("starting PostgreSQL (set PG_BIN if it is not found)");
    let version = server.psql("SHOW server_version").expect("server version");
    let out = server.psql(&sql).expect("running the vector query");

    let mut mismatches: Vec<String> = Vec::new();
    let mut seen: Vec<Vec<bool>> = groups.iter().map(|g| vec![false; g.cases.len()]).collect();
    let mut amproc: Vec<(String, String)> = Vec::new();
    let mut rows = 0usize;
    for line in out.lines() {
        let cols: Vec<&str> = line.splitn(4, '|').collect();
        assert_eq!(cols.len(), 4, "unexpected psql line {line:?}");
        let g: i64 = cols[0].parse().expect("group");
        if g < 0 {
            amproc.push((cols[2].to_string(), cols[3].to_string()));
            continue;
        }
        rows += 1;
        let group = &groups[g as usize];
        let i: usize = cols[1].parse::<usize>().expect("ordinal") - 1;
        let case = &group.cases[i];
        seen[g as usize][i] = true;
        let pg = cols[2].parse::<i64>().expect("hash value");
        if let Some(ours) = case.hash
            && pg != ours as i64
        {
            mismatches.push(format!(
                "{}: input {}: postgres {pg} (0x{:016x}), ours {} (0x{ours:016x})",
                group.label, case.input, pg as u64, ours as i64
            ));
        }
        if let Some(want) = &case.extra
            && cols[3] != want
        {
            mismatches.push(format!(
                "{}: input {}: postgres' internal value {} != ours {want}",
                group.label, case.input, cols[3]
            ));
        }
    }
    for (g, s) in seen.iter().enumerate() {
        for (i, ok) in s.iter().enumerate() {
            if !ok {
                mismatches.push(format!(
                    "{}: no row from postgres for input {}",
                    groups[g].label, groups[g].cases[i].input
                ));
            }
        }
    }
    // Forms PostgreSQL accepts but we fail to parse.
    for (ty, _, s) in parse_forms() {
        if let Err(e) = KeyValue::parse(ty, s) {
            mismatches.push(format!(
                "KeyValue::parse({ty}, {s:?}) failed but PostgreSQL accepts it: {e}"
            ));
        }
    }
    let want_amproc: Vec<(String, String)> = AMPROC
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    // text appears twice (text_ops and text_pattern_ops): same function.
    amproc.sort();
    amproc.dedup();
    if amproc != want_amproc {
        mismatches.push(format!(
            "hash opclass support functions: postgres {amproc:?}, expected {want_amproc:?}"
        ));
    }

    let expected_rows: usize = groups.iter().map(|g| g.cases.len()).sum();
    eprintln!(
        "PostgreSQL {version}: compared {rows} hash values ({expected_rows} expected) in {} groups; {} mismatches",
        groups.len(),
        mismatches.len()
    );
    if !mismatches.is_empty() {
        let shown: Vec<&String> = mismatches.iter().take(25).collect();
        panic!(
            "{} hash vector(s) differ from PostgreSQL {version}; first ones:\n{}",
            mismatches.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!(rows, expected_rows);
}
