//! Splitting the rows of a `COPY ... FROM STDIN` stream (text or CSV) by
//! shard key: rows are found across CopyData boundaries, the key fields of
//! each are decoded as PostgreSQL reads them, and the row's bytes go on
//! unchanged to the shard its key names. Memory holds one partial row.

use crate::copy::{CopyFormat, CopyOptions};

/// Why a row could not be placed, as PostgreSQL would word it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The SQLSTATE.
    pub code: &'static str,
    /// The message.
    pub message: String,
}

/// Finds the rows of a COPY stream and their key fields.
pub struct Splitter {
    format: CopyFormat,
    delimiter: u8,
    quote: u8,
    escape: u8,
    null: Vec<u8>,
    /// Positions of the key fields in a row.
    keys: Vec<usize>,
    /// Hand on every field, not just `keys` (a reader of whole rows).
    all: bool,
    /// Rows still to skip (a header).
    skip: usize,
    /// The partial row carried over, and how far it was scanned.
    buf: Vec<u8>,
    scanned: usize,
    in_quotes: bool,
    escaped: bool,
    /// The end-of-data marker (`\.`) was seen: the rest is ignored.
    ended: bool,
    /// Rows seen (for error messages: PostgreSQL counts lines).
    line: u64,
}

/// A row's key fields (`None`: NULL).
pub type Keys = Vec<Option<String>>;

impl Splitter {
    /// A splitter for rows in `options`, with the key in fields `keys`
    /// (0-based).
    pub fn new(options: &CopyOptions, keys: Vec<usize>) -> Splitter {
        Splitter {
            format: options.format,
            delimiter: options.delimiter,
            quote: options.quote,
            escape: options.escape,
            null: options.null.as_bytes().to_vec(),
            keys,
            all: false,
            skip: usize::from(options.header),
            buf: Vec::new(),
            scanned: 0,
            in_quotes: false,
            escaped: false,
            ended: false,
            line: 0,
        }
    }

    /// A reader that hands on all the fields of each row (for a shard
    /// that stores the rows itself).
    pub fn all_fields(options: &CopyOptions) -> Splitter {
        let mut s = Splitter::new(options, Vec::new());
        s.all = true;
        s
    }

    /// Take `data` (one CopyData's worth); `each` gets every complete row
    /// (with its line end) and its key fields.
    ///
    /// # Errors
    /// A row whose key fields are missing, or `each`'s own error.
    pub fn push<E>(
        &mut self,
        data: &[u8],
        mut each: impl FnMut(&[u8], Keys) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<RowError>,
    {
        if self.ended {
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        let mut start = 0;
        let mut i = self.scanned;
        while i < self.buf.len() {
            let b = self.buf[i];
            i += 1;
            if self.escaped {
                self.escaped = false;
                continue;
            }
            let end = match self.format {
                CopyFormat::Csv if self.in_quotes => {
                    if b == self.escape && self.escape != self.quote {
                        self.escaped = true;
                    } else if b == self.quote {
                        self.in_quotes = false;
                    }
                    false
                }
                CopyFormat::Csv => {
                    if b == self.quote {
                        self.in_quotes = true;
                    }
                    b == b'\n'
                }
                _ => {
                    if b == b'\\' {
                        self.escaped = true;
                    }
                    b == b'\n'
                }
            };
            if end {
                let row = start..i;
                start = i;
                if self.take_row(row, &mut each)? {
                    self.buf.clear();
                    self.scanned = 0;
                    return Ok(());
                }
            }
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        Ok(())
    }

    /// The stream ended: a last row without a line end, if any.
    ///
    /// # Errors
    /// As [`Splitter::push`].
    pub fn finish<E>(&mut self, mut each: impl FnMut(&[u8], Keys) -> Result<(), E>) -> Result<(), E>
    where
        E: From<RowError>,
    {
        if self.ended || self.buf.is_empty() {
            return Ok(());
        }
        let n = self.buf.len();
        self.take_row(0..n, &mut each)?;
        self.buf.clear();
        self.scanned = 0;
        Ok(())
    }

    /// One whole row: skipped, the end marker (`true`), or handed on.
    fn take_row<E>(
        &mut self,
        row: std::ops::Range<usize>,
        each: &mut impl FnMut(&[u8], Keys) -> Result<(), E>,
    ) -> Result<bool, E>
    where
        E: From<RowError>,
    {
        self.line += 1;
        let bytes = &self.buf[row];
        let content = strip_eol(bytes);
        if content == b"\\." {
            self.ended = true;
            return Ok(true);
        }
        if self.skip > 0 {
            self.skip -= 1;
            return Ok(false);
        }
        let fields = match self.format {
            CopyFormat::Csv => self.csv_fields(content),
            _ => self.text_fields(content),
        };
        if self.all {
            each(bytes, fields)?;
            return Ok(false);
        }
        let mut keys = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            match fields.get(*k) {
                Some(v) => keys.push(v.clone()),
                None => {
                    return Err(RowError {
                        code: "22P04",
                        message: format!(
                            "missing data for a shard key column (line {} of the COPY data)",
                            self.line
                        ),
                    }
                    .into());
                }
            }
        }
        each(bytes, keys)?;
        Ok(false)
    }

    /// The fields of a text-format row, decoded (only as far as a key
    /// needs: every field is returned).
    fn text_fields(&self, row: &[u8]) -> Keys {
        let mut out = Vec::new();
        let mut field: Vec<u8> = Vec::new();
        let mut raw_start = 0;
        let mut i = 0;
        let push = |field: &mut Vec<u8>, raw: &[u8], out: &mut Keys| {
            if raw == self.null.as_slice() {
                out.push(None);
            } else {
                out.push(Some(String::from_utf8_lossy(field).into_owned()));
            }
            field.clear();
        };
        while i < row.len() {
            let b = row[i];
            if b == self.delimiter {
                push(&mut field, &row[raw_start..i], &mut out);
                i += 1;
                raw_start = i;
                continue;
            }
            if b != b'\\' || i + 1 >= row.len() {
                field.push(b);
                i += 1;
                continue;
            }
            let c = row[i + 1];
            i += 2;
            match c {
                b'b' => field.push(8),
                b'f' => field.push(12),
                b'n' => field.push(b'\n'),
                b'r' => field.push(b'\r'),
                b't' => field.push(b'\t'),
                b'v' => field.push(11),
                b'0'..=b'7' => {
                    let mut v = u32::from(c - b'0');
                    for _ in 0..2 {
                        match row.get(i) {
                            Some(d @ b'0'..=b'7') => {
                                v = v * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    field.push((v & 0xff) as u8);
                }
                b'x' if row.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                    let mut v = 0u32;
                    for _ in 0..2 {
                        match row.get(i) {
                            Some(d) if d.is_ascii_hexdigit() => {
                                v = v * 16 + (*d as char).to_digit(16).unwrap_or(0);
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    field.push(v as u8);
                }
                other => field.push(other),
            }
        }
        push(&mut field, &row[raw_start..], &mut out);
        out
    }

    /// The fields of a CSV row: quoted fields unquoted; an unquoted field
    /// equal to the NULL string is NULL.
    fn csv_fields(&self, row: &[u8]) -> Keys {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let mut field = Vec::new();
            let mut quoted = false;
            let mut in_q = false;
            while i < row.len() {
                let b = row[i];
                if in_q {
                    if b == self.escape
                        && i + 1 < row.len()
                        && (row[i + 1] == self.quote
                            || (self.escape != self.quote && row[i + 1] == self.escape))
                    {
                        field.push(row[i + 1]);
                        i += 2;
                        continue;
                    }
                    if b == self.quote {
                        in_q = false;
                    } else {
                        field.push(b);
                    }
                    i += 1;
                    continue;
                }
                if b == self.delimiter {
                    break;
                }
                if b == self.quote {
                    in_q = true;
                    quoted = true;
                } else {
                    field.push(b);
                }
                i += 1;
            }
            if !quoted && field == self.null {
                out.push(None);
            } else {
                out.push(Some(String::from_utf8_lossy(&field).into_owned()));
            }
            if i >= row.len() {
                return out;
            }
            i += 1; // the delimiter
        }
    }
}

/// A row without its line end (`\n` or `\r\n`).
fn strip_eol(row: &[u8]) -> &[u8] {
    let row = row.strip_suffix(b"\n").unwrap_or(row);
    row.strip_suffix(b"\r").unwrap_or(row)
}

/// One row of `COPY ... TO` data, as PostgreSQL's COPY writes it (its
/// CopyAttributeOutText / CopyAttributeOutCSV): each field's text (`None`
/// is NULL) escaped for `opts`' format, joined by the delimiter, ended by
/// a newline. A header line is a row of the column names.
pub fn encode_row(opts: &CopyOptions, fields: &[Option<&[u8]>], out: &mut Vec<u8>) {
    let single = fields.len() == 1;
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(opts.delimiter);
        }
        let Some(v) = f else {
            out.extend_from_slice(opts.null.as_bytes());
            continue;
        };
        if opts.format == CopyFormat::Csv {
            // Quoted when it holds a delimiter, quote or line break, is
            // the NULL string, or is `\.` alone on its line.
            let quote = *v == opts.null.as_bytes()
                || (single && *v == b"\\.")
                || v.iter().any(|c| {
                    *c == opts.delimiter || *c == opts.quote || *c == b'\n' || *c == b'\r'
                });
            if quote {
                out.push(opts.quote);
                for c in v.iter() {
                    if *c == opts.quote || *c == opts.escape {
                        out.push(opts.escape);
                    }
                    out.push(*c);
                }
                out.push(opts.quote);
            } else {
                out.extend_from_slice(v);
            }
        } else {
            for c in v.iter() {
                let escaped = match *c {
                    8 => Some(b'b'),
                    12 => Some(b'f'),
                    b'\n' => Some(b'n'),
                    b'\r' => Some(b'r'),
                    b'\t' => Some(b't'),
                    11 => Some(b'v'),
                    b'\\' => Some(b'\\'),
                    c if c == opts.delimiter => Some(c),
                    _ => None,
                };
                match escaped {
                    Some(e) => out.extend_from_slice(&[b'\\', e]),
                    None => out.push(*c),
                }
            }
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(o: &CopyOptions, fields: &[Option<&str>]) -> String {
        let f: Vec<Option<&[u8]>> = fields.iter().map(|f| f.map(str::as_bytes)).collect();
        let mut out = Vec::new();
        encode_row(o, &f, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_are_written_as_postgresql_writes_them() {
        let t = opts(CopyFormat::Text, false);
        assert_eq!(row(&t, &[Some("a"), None, Some("")]), "a\t\\N\t\n");
        assert_eq!(
            row(
                &t,
                &[Some("tab\there"), Some("line\nbreak\\x"), Some("\u{7}")]
            ),
            "tab\\there\tline\\nbreak\\\\x\t\u{7}\n"
        );
        let c = opts(CopyFormat::Csv, false);
        assert_eq!(row(&c, &[Some("a"), None, Some("")]), "a,,\"\"\n");
        assert_eq!(
            row(
                &c,
                &[Some("x,y"), Some("say \"hi\""), Some("l\nb"), Some("plain")]
            ),
            "\"x,y\",\"say \"\"hi\"\"\",\"l\nb\",plain\n"
        );
        assert_eq!(row(&c, &[Some("\\.")]), "\"\\.\"\n");
        // Another escape character: it escapes quotes and itself.
        let e = CopyOptions {
            escape: b'\\',
            ..opts(CopyFormat::Csv, false)
        };
        assert_eq!(row(&e, &[Some("a\"b\\c,")]), "\"a\\\"b\\\\c,\"\n");
    }

    fn opts(format: CopyFormat, header: bool) -> CopyOptions {
        let csv = format == CopyFormat::Csv;
        CopyOptions {
            format,
            delimiter: if csv { b',' } else { b'\t' },
            quote: b'"',
            escape: b'"',
            null: if csv { String::new() } else { "\\N".into() },
            header,
        }
    }

    /// Rows and keys of `data` pushed in chunks of `n` bytes.
    fn split(o: &CopyOptions, keys: Vec<usize>, data: &[u8], n: usize) -> Vec<(String, Keys)> {
        let mut s = Splitter::new(o, keys);
        let mut out = Vec::new();
        let mut each = |r: &[u8], k: Keys| -> Result<(), RowError> {
            out.push((String::from_utf8_lossy(r).into_owned(), k));
            Ok(())
        };
        for c in data.chunks(n) {
            s.push(c, &mut each).unwrap();
        }
        s.finish(&mut each).unwrap();
        out
    }

    #[test]
    fn text_rows_split_whatever_the_chunks() {
        let data = b"1\ta\\tb\n2\t\\N\n\\x41\\101\tx\\\ny\n7\tlast";
        for n in [1, 2, 3, 7, 100] {
            let got = split(&opts(CopyFormat::Text, false), vec![0, 1], data, n);
            let keys: Vec<Keys> = got.iter().map(|(_, k)| k.clone()).collect();
            assert_eq!(
                keys,
                vec![
                    vec![Some("1".into()), Some("a\tb".into())],
                    vec![Some("2".into()), None],
                    vec![Some("AA".into()), Some("x\ny".into())],
                    vec![Some("7".into()), Some("last".into())],
                ],
                "chunks of {n}"
            );
            let rows: String = got.iter().map(|(r, _)| r.as_str()).collect();
            assert_eq!(rows.as_bytes(), data, "rows go on unchanged");
        }
    }

    #[test]
    fn csv_quotes_newlines_nulls_and_headers() {
        let data = b"id,name\r\n1,\"a,\"\"b\"\"\nc\"\r\n\"2\",\r\n,\"\"\r\n";
        for n in [1, 4, 100] {
            let got = split(&opts(CopyFormat::Csv, true), vec![0, 1], data, n);
            let keys: Vec<Keys> = got.iter().map(|(_, k)| k.clone()).collect();
            assert_eq!(
                keys,
                vec![
                    vec![Some("1".into()), Some("a,\"b\"\nc".into())],
                    vec![Some("2".into()), None],
                    vec![None, Some(String::new())],
                ],
                "chunks of {n}"
            );
        }
    }

    #[test]
    fn the_end_marker_ends_the_data() {
        let got = split(&opts(CopyFormat::Text, false), vec![0], b"1\n\\.\n2\n", 3);
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn a_missing_key_field_is_an_error() {
        let mut s = Splitter::new(&opts(CopyFormat::Text, false), vec![2]);
        let e = s
            .push(b"1\t2\n", |_, _| -> Result<(), RowError> { Ok(()) })
            .unwrap_err();
        assert_eq!(e.code, "22P04");
    }
}
