//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT`: what the router needs of
//! the statement to split a COPY's rows by shard key, copy them to every
//! copy of a reference table, or gather them from the shards; and how the
//! planner routes it ([`CopyRoute`]). Splitting the data itself is the
//! executor's (`shardgate_exec::copy`).

use crate::error::SqlError;
use crate::plan::{ShardSql, Template};
use shardgate_core::{ShardId, TableKind, TableRule, Topology};
use sqlparser::ast::{CopyOption, CopySource, CopyTarget, Ident, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use std::fmt;
use std::sync::Arc;

/// The data format of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// PostgreSQL's text format (tab-separated, backslash escapes).
    Text,
    /// CSV.
    Csv,
    /// PostgreSQL's binary format.
    Binary,
}

/// How the COPY's data is written (what splitting rows needs to know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// The format.
    pub format: CopyFormat,
    /// The column delimiter.
    pub delimiter: u8,
    /// The CSV quote character.
    pub quote: u8,
    /// The CSV escape character.
    pub escape: u8,
    /// The string that stands for NULL.
    pub null: String,
    /// The first line is a header.
    pub header: bool,
}

/// A COPY to or from the client.
#[derive(Debug, Clone)]
pub struct CopySpec {
    /// `FROM STDIN` (the client sends rows) rather than `TO STDOUT`.
    pub from_client: bool,
    /// The table, as its rule names it (none for `COPY (query) TO`).
    pub table: Option<String>,
    /// The column list, if the statement has one.
    pub columns: Vec<String>,
    /// The data format.
    pub options: CopyOptions,
    /// The statement as a shard gets it.
    pub sql: String,
    /// The statement without its header option (for the shards after the
    /// first of a `TO`, and every shard of a split `FROM`, whose header
    /// line the router skips itself).
    pub sql_no_header: String,
    /// `COPY (query) TO`: how the query alone is routed.
    pub query: Option<Box<Template>>,
    /// The table's rule (none: unsharded, or a query).
    pub rule: Option<Arc<TableRule>>,
    /// The router can write the rows itself (text or CSV, no FORCE_QUOTE
    /// or ENCODING): a `COPY (query) TO` whose query needs a cross-shard
    /// merge writes the merged rows so.
    pub router_writes: bool,
}

/// Two COPYs are the same statement when their text is (the rest is read
/// from it, under one topology).
impl PartialEq for CopySpec {
    fn eq(&self, other: &Self) -> bool {
        self.sql == other.sql && self.rule == other.rule
    }
}

/// Where a COPY's rows go or come from.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyRoute {
    /// One shard (an unsharded table, or a query one shard answers).
    One(ShardId),
    /// `FROM`: every row to each of these shards (a reference table).
    Copies(Vec<ShardId>),
    /// `FROM`: each row to the shard its key names.
    ByKey {
        /// The table's rule.
        rule: Arc<TableRule>,
        /// Every shard of the table.
        shards: Vec<ShardId>,
    },
    /// `TO`: every shard's rows, one shard after the other.
    Gather(Vec<ShardId>),
    /// `COPY (query) TO` of a query that needs a cross-shard merge: the
    /// query runs as a SELECT and the router writes its rows as COPY data
    /// (see [`crate::copy_rows::encode_row`]).
    Merged(Box<crate::plan::Plan>),
}

impl CopyRoute {
    /// The shards the COPY uses.
    pub fn shards(&self) -> Vec<ShardId> {
        match self {
            CopyRoute::One(s) => vec![*s],
            CopyRoute::Copies(v) | CopyRoute::Gather(v) | CopyRoute::ByKey { shards: v, .. } => {
                v.clone()
            }
            CopyRoute::Merged(plan) => match plan.as_ref() {
                crate::plan::Plan::Read(node) => node.shards().to_vec(),
                crate::plan::Plan::Route { shards, .. } => shards.clone(),
                _ => Vec::new(),
            },
        }
    }
}

fn unsupported(what: impl Into<String>) -> SqlError {
    SqlError::Unsupported(what.into())
}

/// One-byte option characters, as PostgreSQL requires them (SQLSTATE
/// 0A000, as PostgreSQL's own refusal).
fn one_byte(s: &str, what: &str) -> Result<u8, SqlError> {
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => Err(unsupported(format!(
            "COPY {what} must be a single one-byte character"
        ))),
    }
}

/// One COPY option as the `WITH (...)` list writes it. The statement's own
/// list and PostgreSQL's pre-9.0 options (`CSV HEADER`, `DELIMITER AS
/// ','`, `FORCE QUOTE *`, see [`read_legacy`]) are both read into these:
/// rows are split by the same options, and the shards get the same list,
/// whichever way the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CopyOpt {
    /// `FORMAT text | csv | binary` (pre-9.0: `CSV`, `BINARY`).
    Format(CopyFormat),
    /// `FREEZE`.
    Freeze(bool),
    /// `DELIMITER 'c'` (one byte: checked when the options are read).
    Delimiter(String),
    /// `NULL 'string'`.
    Null(String),
    /// `HEADER`.
    Header(bool),
    /// `QUOTE 'c'`.
    Quote(String),
    /// `ESCAPE 'c'`.
    Escape(String),
    /// `FORCE_QUOTE (columns)`, or `FORCE_QUOTE *` (`None`).
    ForceQuote(Option<Vec<Ident>>),
    /// `FORCE_NOT_NULL (columns)`.
    ForceNotNull(Vec<Ident>),
    /// `FORCE_NULL (columns)`.
    ForceNull(Vec<Ident>),
    /// `ENCODING 'name'`.
    Encoding(String),
}

impl CopyOpt {
    /// The option's name in the `WITH (...)` list (one of each is allowed).
    fn name(&self) -> &'static str {
        match self {
            CopyOpt::Format(_) => "format",
            CopyOpt::Freeze(_) => "freeze",
            CopyOpt::Delimiter(_) => "delimiter",
            CopyOpt::Null(_) => "null",
            CopyOpt::Header(_) => "header",
            CopyOpt::Quote(_) => "quote",
            CopyOpt::Escape(_) => "escape",
            CopyOpt::ForceQuote(_) => "force_quote",
            CopyOpt::ForceNotNull(_) => "force_not_null",
            CopyOpt::ForceNull(_) => "force_null",
            CopyOpt::Encoding(_) => "encoding",
        }
    }

    /// An option of the statement's `WITH (...)` list, as sqlparser read it.
    fn from_list(o: &CopyOption) -> Result<CopyOpt, SqlError> {
        Ok(match o {
            CopyOption::Format(f) => {
                // PostgreSQL compares the name as written: unquoted, it is
                // folded to lower case; quoted, it is taken as it is.
                let name = crate::analyze::ident_name(f);
                CopyOpt::Format(match name.as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    _ => {
                        return Err(SqlError::InvalidParameter(format!(
                            "COPY format \"{name}\" not recognized"
                        )));
                    }
                })
            }
            CopyOption::Freeze(b) => CopyOpt::Freeze(*b),
            CopyOption::Delimiter(c) => CopyOpt::Delimiter(c.to_string()),
            CopyOption::Null(s) => CopyOpt::Null(s.clone()),
            CopyOption::Header(b) => CopyOpt::Header(*b),
            CopyOption::Quote(c) => CopyOpt::Quote(c.to_string()),
            CopyOption::Escape(c) => CopyOpt::Escape(c.to_string()),
            CopyOption::ForceQuote(c) => CopyOpt::ForceQuote(Some(c.clone())),
            CopyOption::ForceNotNull(c) => CopyOpt::ForceNotNull(c.clone()),
            CopyOption::ForceNull(c) => CopyOpt::ForceNull(c.clone()),
            CopyOption::Encoding(s) => CopyOpt::Encoding(s.clone()),
        })
    }
}

/// `s` as a string constant that PostgreSQL reads alike whatever
/// `standard_conforming_strings` says: `E'...'` when it holds a backslash
/// or a control character (written as an escape: `E'\t'`).
fn string_constant(s: &str) -> String {
    if !s.chars().any(|c| c == '\\' || c.is_ascii_control()) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut out = String::with_capacity(s.len() + 4);
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The option as an item of PostgreSQL's `WITH (...)` list.
impl fmt::Display for CopyOpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = |c: &[Ident]| {
            c.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            CopyOpt::Format(CopyFormat::Text) => f.write_str("FORMAT text"),
            CopyOpt::Format(CopyFormat::Csv) => f.write_str("FORMAT csv"),
            CopyOpt::Format(CopyFormat::Binary) => f.write_str("FORMAT binary"),
            CopyOpt::Freeze(true) => f.write_str("FREEZE"),
            CopyOpt::Freeze(false) => f.write_str("FREEZE false"),
            CopyOpt::Delimiter(s) => write!(f, "DELIMITER {}", string_constant(s)),
            CopyOpt::Null(s) => write!(f, "NULL {}", string_constant(s)),
            CopyOpt::Header(true) => f.write_str("HEADER"),
            CopyOpt::Header(false) => f.write_str("HEADER false"),
            CopyOpt::Quote(s) => write!(f, "QUOTE {}", string_constant(s)),
            CopyOpt::Escape(s) => write!(f, "ESCAPE {}", string_constant(s)),
            CopyOpt::ForceQuote(None) => f.write_str("FORCE_QUOTE *"),
            CopyOpt::ForceQuote(Some(c)) => write!(f, "FORCE_QUOTE ({})", columns(c)),
            CopyOpt::ForceNotNull(c) => write!(f, "FORCE_NOT_NULL ({})", columns(c)),
            CopyOpt::ForceNull(c) => write!(f, "FORCE_NULL ({})", columns(c)),
            CopyOpt::Encoding(s) => write!(f, "ENCODING {}", string_constant(s)),
        }
    }
}

/// What splitting rows needs of a COPY's options, with PostgreSQL's checks
/// (`ProcessCopyOptions`) in its order up to the last one the router relies
/// on: a statement PostgreSQL refuses gets the same error. The shards check
/// the rest when the COPY starts, before any row goes to them.
fn read_options(opts: &[CopyOpt]) -> Result<CopyOptions, SqlError> {
    let mut seen: Vec<&str> = Vec::with_capacity(opts.len());
    let (mut format, mut header) = (CopyFormat::Text, false);
    let (mut delimiter, mut null, mut quote, mut escape) = (None, None, None, None);
    for opt in opts {
        if seen.contains(&opt.name()) {
            return Err(SqlError::Syntax("conflicting or redundant options".into()));
        }
        seen.push(opt.name());
        match opt {
            CopyOpt::Format(f) => format = *f,
            CopyOpt::Header(h) => header = *h,
            CopyOpt::Delimiter(s) => delimiter = Some(s.as_str()),
            CopyOpt::Null(s) => null = Some(s.as_str()),
            CopyOpt::Quote(s) => quote = Some(s.as_str()),
            CopyOpt::Escape(s) => escape = Some(s.as_str()),
            CopyOpt::Freeze(_)
            | CopyOpt::ForceQuote(_)
            | CopyOpt::ForceNotNull(_)
            | CopyOpt::ForceNull(_)
            | CopyOpt::Encoding(_) => {}
        }
    }
    let mut o = CopyOptions {
        format,
        delimiter: b'\t',
        quote: b'"',
        escape: b'"',
        null: "\\N".into(),
        header,
    };
    if format == CopyFormat::Binary {
        // No row of a binary COPY is split (see `CopySpec::route`); what
        // the format does not take, the shard refuses.
        return Ok(o);
    }
    let csv = format == CopyFormat::Csv;
    o.delimiter = match delimiter {
        Some(d) => one_byte(d, "delimiter")?,
        None if csv => b',',
        None => b'\t',
    };
    if matches!(o.delimiter, b'\r' | b'\n') {
        return Err(SqlError::InvalidParameter(
            "COPY delimiter cannot be newline or carriage return".into(),
        ));
    }
    o.null = match null {
        Some(n) if n.contains(['\r', '\n']) => {
            return Err(SqlError::InvalidParameter(
                "COPY null representation cannot use newline or carriage return".into(),
            ));
        }
        Some(n) => n.to_string(),
        None if csv => String::new(),
        None => "\\N".into(),
    };
    if csv {
        if let Some(q) = quote {
            o.quote = one_byte(q, "quote")?;
        }
        if o.delimiter == o.quote {
            return Err(unsupported("COPY delimiter and quote must be different"));
        }
        o.escape = match escape {
            Some(e) => one_byte(e, "escape")?,
            None => o.quote,
        };
    }
    Ok(o)
}

/// A COPY statement written with PostgreSQL's pre-9.0 options: the
/// statement without them, as sqlparser reads it, and what they say.
pub(crate) struct LegacyCopy {
    /// The statement without its pre-9.0 options.
    pub(crate) stmt: Statement,
    /// The options, in PostgreSQL's order: `COPY BINARY`, `DELIMITERS`,
    /// then the list.
    pub(crate) options: Vec<CopyOpt>,
}

/// A statement's tokens, read one after the other, whitespace and comments
/// skipped.
struct Tokens<'a> {
    all: &'a [TokenWithSpan],
    /// The index of the first token not read yet.
    at: usize,
}

impl<'a> Tokens<'a> {
    /// The index of the next token that is not whitespace (or the end).
    fn next_index(&self) -> usize {
        let mut i = self.at;
        while self
            .all
            .get(i)
            .is_some_and(|t| matches!(t.token, Token::Whitespace(_)))
        {
            i += 1;
        }
        i
    }

    /// The next token that is not whitespace.
    fn peek(&self) -> Option<&'a Token> {
        self.all.get(self.next_index()).map(|t| &t.token)
    }

    /// Reads the next token that is not whitespace.
    fn next(&mut self) -> Option<&'a Token> {
        let i = self.next_index();
        let t = self.all.get(i)?;
        self.at = i + 1;
        Some(&t.token)
    }

    /// Whether the keyword `k` comes next.
    fn peek_keyword(&self, k: &str) -> bool {
        self.peek().is_some_and(|t| is_keyword(t, k))
    }

    /// Reads the keyword `k` if it comes next.
    fn keyword(&mut self, k: &str) -> bool {
        let here = self.peek_keyword(k);
        if here {
            self.next();
        }
        here
    }

    /// Reads a parenthesized group; `None` unless one comes next, whole.
    fn group(&mut self) -> Option<()> {
        if self.peek() != Some(&Token::LParen) {
            return None;
        }
        let mut depth = 0usize;
        while let Some(t) = self.next() {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// Reads a string constant (`Sconst` in PostgreSQL's grammar: '...',
    /// E'...', U&'...', $$...$$) if one comes next.
    fn string(&mut self) -> Option<String> {
        let s = match self.peek()? {
            Token::SingleQuotedString(s)
            | Token::EscapedStringLiteral(s)
            | Token::UnicodeStringLiteral(s) => s.clone(),
            Token::DollarQuotedString(d) => d.value.clone(),
            _ => return None,
        };
        self.next();
        Some(s)
    }

    /// A string constant, `AS` before it if `as_` (PostgreSQL's `opt_as`).
    fn string_after(&mut self, as_: bool) -> Result<String, SqlError> {
        if as_ {
            self.keyword("as");
        }
        self.string().ok_or_else(|| self.error())
    }

    /// A list of column names (`columnList`).
    fn columns(&mut self) -> Result<Vec<Ident>, SqlError> {
        let mut cols = Vec::new();
        loop {
            let Some(Token::Word(w)) = self.peek() else {
                return Err(self.error());
            };
            let mut col = Ident::new(w.value.clone());
            col.quote_style = w.quote_style;
            cols.push(col);
            self.next();
            if self.peek() != Some(&Token::Comma) {
                return Ok(cols);
            }
            self.next();
        }
    }

    /// PostgreSQL's syntax error at the next token.
    fn error(&self) -> SqlError {
        SqlError::Syntax(match self.peek() {
            Some(t) => format!("at or near \"{t}\""),
            None => "at end of input".into(),
        })
    }

    /// One item of PostgreSQL's pre-9.0 option list (`copy_opt_item`), if
    /// one comes next.
    fn legacy_item(&mut self) -> Result<Option<CopyOpt>, SqlError> {
        let Some(Token::Word(w)) = self.peek() else {
            return Ok(None);
        };
        let word = w.value.to_ascii_lowercase();
        if w.quote_style.is_some()
            || !matches!(
                word.as_str(),
                "binary"
                    | "freeze"
                    | "delimiter"
                    | "null"
                    | "csv"
                    | "header"
                    | "quote"
                    | "escape"
                    | "force"
                    | "encoding"
            )
        {
            return Ok(None);
        }
        self.next();
        Ok(Some(match word.as_str() {
            "binary" => CopyOpt::Format(CopyFormat::Binary),
            "freeze" => CopyOpt::Freeze(true),
            "delimiter" => CopyOpt::Delimiter(self.string_after(true)?),
            "null" => CopyOpt::Null(self.string_after(true)?),
            "csv" => CopyOpt::Format(CopyFormat::Csv),
            "header" => CopyOpt::Header(true),
            "quote" => CopyOpt::Quote(self.string_after(true)?),
            "escape" => CopyOpt::Escape(self.string_after(true)?),
            "encoding" => CopyOpt::Encoding(self.string_after(false)?),
            _ => self.force()?,
        }))
    }

    /// What follows `FORCE`: `QUOTE columns | *`, `NOT NULL columns`,
    /// `NULL columns`.
    fn force(&mut self) -> Result<CopyOpt, SqlError> {
        if self.keyword("quote") {
            if self.peek() == Some(&Token::Mul) {
                self.next();
                return Ok(CopyOpt::ForceQuote(None));
            }
            return Ok(CopyOpt::ForceQuote(Some(self.columns()?)));
        }
        if self.keyword("not") {
            if !self.keyword("null") {
                return Err(self.error());
            }
            return Ok(CopyOpt::ForceNotNull(self.columns()?));
        }
        if self.keyword("null") {
            return Ok(CopyOpt::ForceNull(self.columns()?));
        }
        Err(self.error())
    }
}

/// Whether `t` is the keyword `k` (unquoted, in any case).
fn is_keyword(t: &Token, k: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k))
}

/// A COPY statement with options in PostgreSQL's pre-9.0 forms, which
/// PostgreSQL 15 still takes and sqlparser does not read as PostgreSQL
/// does (it knows Redshift's): `COPY t FROM STDIN WITH CSV HEADER`,
/// `... DELIMITER AS ',' NULL AS ''` (psycopg2's `copy_from`), `CSV QUOTE
/// AS '"' FORCE QUOTE *`, `WITH` left out, and the 7.x `COPY BINARY t` and
/// `[USING] DELIMITERS ','`. The options are read here, by PostgreSQL's
/// grammar (`copy_opt_list`); the rest of the statement by sqlparser.
///
/// `None` when `sql` is no COPY, when its options are only a `WITH (...)`
/// list or none (sqlparser reads those), and when what comes before the
/// options is not what this reader expects (sqlparser says what is wrong).
pub(crate) fn read_legacy(sql: &str) -> Option<Result<LegacyCopy, SqlError>> {
    let body = crate::cursor::skip_leading_comments(sql);
    if !body.get(..4)?.eq_ignore_ascii_case("copy") {
        return None;
    }
    let dialect = PostgreSqlDialect {};
    let all = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .ok()?;
    let mut t = Tokens { all: &all, at: 0 };
    if !t.keyword("copy") {
        return None;
    }
    let mut options = Vec::new();
    // Token ranges the statement is read without.
    let mut cut = Vec::new();
    if t.peek_keyword("binary") {
        let i = t.next_index();
        t.next();
        cut.push(i..i + 1);
        options.push(CopyOpt::Format(CopyFormat::Binary));
    }
    let query = t.peek() == Some(&Token::LParen);
    if query {
        if !options.is_empty() {
            return None;
        }
        t.group()?;
    } else {
        let Some(Token::Word(_)) = t.next() else {
            return None;
        };
        while t.peek() == Some(&Token::Period) {
            t.next();
            let Some(Token::Word(_)) = t.next() else {
                return None;
            };
        }
        if t.peek() == Some(&Token::LParen) {
            t.group()?;
        }
    }
    if !t.keyword("from") && !t.keyword("to") {
        return None;
    }
    t.keyword("program");
    if !t.keyword("stdin") && !t.keyword("stdout") && t.string().is_none() {
        return None;
    }
    let start = t.at;
    if !query && (t.keyword("using") || t.peek_keyword("delimiters")) {
        if !t.keyword("delimiters") {
            return Some(Err(t.error()));
        }
        match t.string() {
            Some(d) => options.push(CopyOpt::Delimiter(d)),
            None => return Some(Err(t.error())),
        }
    }
    let delimiters_end = t.at;
    t.keyword("with");
    if t.peek() == Some(&Token::LParen) {
        // A `WITH (...)` list: sqlparser's to read.
        cut.push(start..delimiters_end);
        t.group()?;
    } else {
        loop {
            match t.legacy_item() {
                Ok(Some(o)) => options.push(o),
                Ok(None) => break,
                Err(e) => return Some(Err(e)),
            }
        }
        cut.push(start..t.at);
    }
    // After the options: the end, or `WHERE` (of a table's COPY FROM,
    // sqlparser's to read); inline data after a semicolon is refused later.
    match t.peek() {
        None | Some(Token::SemiColon) => {}
        Some(w) if !query && is_keyword(w, "where") => {}
        Some(_) => return Some(Err(t.error())),
    }
    if options.is_empty() {
        return None;
    }
    let rest: Vec<TokenWithSpan> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| !cut.iter().any(|r| r.contains(i)))
        .map(|(_, tok)| tok.clone())
        .collect();
    let stmts = match Parser::new(&dialect)
        .with_tokens_with_locations(rest)
        .parse_statements()
    {
        Ok(s) => s,
        Err(e) => {
            return Some(Err(SqlError::Syntax(format!(
                "shardgate could not parse this COPY statement: {e}"
            ))));
        }
    };
    let Ok([mut stmt]) = <[Statement; 1]>::try_from(stmts) else {
        return Some(Err(SqlError::Syntax(
            "expected exactly one statement".into(),
        )));
    };
    if crate::parse::balance(&mut stmt).is_err() {
        return Some(Err(SqlError::TooComplex(
            "statement is too deeply nested for shardgate's parser".into(),
        )));
    }
    Some(Ok(LegacyCopy { stmt, options }))
}

/// A COPY statement with its boolean options written `on`/`off` (`WITH
/// (FREEZE on, HEADER off)`, which PostgreSQL takes and the parser does
/// not) as `true`/`false`; `None` for any other statement or when there is
/// nothing to change.
pub fn with_true_false(sql: &str) -> Option<String> {
    let body = crate::cursor::skip_leading_comments(sql);
    if !body.get(..4)?.eq_ignore_ascii_case("copy") {
        return None;
    }
    let mut out = String::with_capacity(sql.len());
    let mut word = String::new();
    let mut in_str = false;
    let mut changed = false;
    let mut flush = |word: &mut String, out: &mut String| {
        match word.to_ascii_lowercase().as_str() {
            "on" => {
                out.push_str("true");
                changed = true;
            }
            "off" => {
                out.push_str("false");
                changed = true;
            }
            _ => out.push_str(word),
        }
        word.clear();
    };
    for c in sql.chars() {
        if in_str {
            out.push(c);
            in_str = c != '\'';
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        out.push(c);
        in_str = c == '\'';
    }
    flush(&mut word, &mut out);
    changed.then_some(out)
}

/// Analyze a COPY statement whose options are a `WITH (...)` list or none
/// (the pre-9.0 forms are read from the text first: `read_legacy`).
///
/// # Errors
/// Forms the router does not take: files and programs on the server,
/// options it cannot honour while splitting rows.
pub fn analyze(stmt: &Statement, topo: &Topology) -> Result<Template, SqlError> {
    analyze_with(stmt, &[], topo)
}

/// [`analyze`], with `legacy` (the pre-9.0 options [`read_legacy`] read)
/// before the statement's own `WITH (...)` list.
pub(crate) fn analyze_with(
    stmt: &Statement,
    legacy: &[CopyOpt],
    topo: &Topology,
) -> Result<Template, SqlError> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        values,
    } = stmt
    else {
        return Err(SqlError::Invalid("not a COPY".into()));
    };
    match (to, target) {
        (false, CopyTarget::Stdin) | (true, CopyTarget::Stdout) => {}
        _ => {
            return Err(unsupported(
                "COPY to or from a file or program on the server is not supported through shardgate; use COPY ... FROM STDIN / TO STDOUT (psql's \\copy)",
            ));
        }
    }
    if !legacy_options.is_empty() || !values.is_empty() {
        return Err(unsupported(
            "COPY with pre-9.0 options or inline data is not supported through shardgate; use WITH (...) options",
        ));
    }
    let mut opts = legacy.to_vec();
    for opt in options {
        opts.push(CopyOpt::from_list(opt)?);
    }
    let o = read_options(&opts)?;
    let sql = shard_sql(stmt, &opts, true);
    let sql_no_header = shard_sql(stmt, &opts, false);
    let (table, columns, query) = match source {
        CopySource::Table {
            table_name,
            columns,
        } => {
            let name = crate::analyze::object_parts(table_name)
                .pop()
                .unwrap_or_default();
            let cols = columns.iter().map(crate::analyze::ident_name).collect();
            (Some(name), cols, None)
        }
        CopySource::Query(q) => {
            if !to {
                return Err(SqlError::Invalid("COPY FROM needs a table".into()));
            }
            let inner = crate::analyze::analyze_statement(
                &Statement::Query(q.clone()),
                &q.to_string(),
                topo,
            )?;
            (None, Vec::new(), Some(Box::new(inner)))
        }
    };
    // Ids the router draws for rows that leave their column out: COPY
    // rows bypass that, so such a column must come with the data.
    if let Some(t) = &table
        && !*to
        && !columns.is_empty()
        && let Some(missing) = topo.id_columns(t).iter().find(|c| !columns.contains(*c))
    {
        return Err(unsupported(format!(
            "COPY into \"{t}\" must include column \"{missing}\" (shardgate draws its shardgate.next_id() default for INSERTs only)"
        )));
    }
    let rule = table.as_ref().and_then(|t| topo.rule(t)).cloned();
    let router_writes = o.format != CopyFormat::Binary
        && !opts
            .iter()
            .any(|o| matches!(o, CopyOpt::ForceQuote(_) | CopyOpt::Encoding(_)));
    Ok(Template::Copy(Box::new(CopySpec {
        from_client: !to,
        router_writes,
        rule,
        table,
        columns,
        options: o,
        sql,
        sql_no_header,
        query,
    })))
}

/// The COPY as a shard gets it: its options as a parenthesized list (`WITH`
/// is optional before it), HEADER left out unless `header`.
fn shard_sql(stmt: &Statement, opts: &[CopyOpt], header: bool) -> String {
    let mut bare = stmt.clone();
    if let Statement::Copy {
        options,
        legacy_options,
        ..
    } = &mut bare
    {
        options.clear();
        legacy_options.clear();
    }
    let list: Vec<String> = opts
        .iter()
        .filter(|o| header || !matches!(o, CopyOpt::Header(_)))
        .map(ToString::to_string)
        .collect();
    if list.is_empty() {
        bare.to_string()
    } else {
        format!("{bare} ({})", list.join(", "))
    }
}

/// Read a COPY statement on its own (no sharding rules: a shard reading
/// the COPY it was sent).
///
/// # Errors
/// As [`analyze`]; a statement that is not a COPY.
pub fn parse(sql: &str) -> Result<CopySpec, SqlError> {
    match crate::analyze::analyze(sql, &Topology::default()) {
        Template::Copy(c) => Ok(*c),
        Template::Refuse(e) => Err(e),
        _ => Err(SqlError::Invalid(format!("not a COPY: {sql}"))),
    }
}

impl CopySpec {
    /// Where this COPY goes under `topo`.
    ///
    /// # Errors
    /// A `COPY (query) TO` whose query needs a cross-shard merge, in a
    /// format the router does not write.
    pub fn route(
        &self,
        all: &[ShardId],
        default: ShardId,
        query_plan: Option<&crate::plan::Plan>,
    ) -> Result<CopyRoute, SqlError> {
        let route = if let Some(plan) = query_plan {
            match plan {
                crate::plan::Plan::Route {
                    shards,
                    sql: ShardSql::Original,
                    kind: crate::plan::StmtKind::Read,
                } if shards.len() == 1 => CopyRoute::One(shards[0]),
                crate::plan::Plan::Route {
                    shards,
                    sql: ShardSql::Original,
                    kind: crate::plan::StmtKind::Read,
                } => CopyRoute::Gather(shards.clone()),
                crate::plan::Plan::Read(_)
                | crate::plan::Plan::Route {
                    kind: crate::plan::StmtKind::Read,
                    ..
                } if self.router_writes => CopyRoute::Merged(Box::new(plan.clone())),
                _ => {
                    return Err(unsupported(
                        "COPY (query) TO STDOUT of a query that needs a cross-shard merge (ORDER BY, LIMIT, aggregates, DISTINCT, key lists) is supported in text and CSV format without FORCE_QUOTE or ENCODING; run the query as a SELECT",
                    ));
                }
            }
        } else {
            let rule = self.rule.as_ref();
            match rule.map(|r| &r.kind) {
                None => CopyRoute::One(default),
                Some(TableKind::Reference) if self.from_client => CopyRoute::Copies(all.to_vec()),
                Some(TableKind::Reference) => {
                    CopyRoute::One(all.first().copied().unwrap_or(default))
                }
                Some(TableKind::Sharded { .. }) if self.from_client => CopyRoute::ByKey {
                    rule: rule.cloned().expect("matched a rule"),
                    shards: all.to_vec(),
                },
                Some(TableKind::Sharded { .. }) => CopyRoute::Gather(all.to_vec()),
            }
        };
        Ok(route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn spec(sql: &str) -> Result<CopySpec, SqlError> {
        let s = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        match analyze(&s, &Topology::default())? {
            Template::Copy(c) => Ok(*c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_are_read() {
        let s = spec("COPY t (a, \"B\") FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';')")
            .unwrap();
        assert!(s.from_client);
        assert_eq!(s.table.as_deref(), Some("t"));
        assert_eq!(s.columns, vec!["a".to_string(), "B".to_string()]);
        assert_eq!(s.options.format, CopyFormat::Csv);
        assert_eq!(s.options.delimiter, b';');
        assert_eq!(s.options.null, "");
        assert!(s.options.header);
        assert!(!s.sql_no_header.to_ascii_uppercase().contains("HEADER"));
        let t = spec("COPY t TO STDOUT").unwrap();
        assert!(!t.from_client);
        assert_eq!(t.options.null, "\\N");
        assert_eq!(t.options.delimiter, b'\t');
    }

    #[test]
    fn on_and_off_become_true_and_false() {
        assert_eq!(
            with_true_false("copy t from stdin with (freeze on, delimiter 'on')").as_deref(),
            Some("copy t from stdin with (freeze true, delimiter 'on')")
        );
        assert_eq!(with_true_false("COPY t FROM STDIN"), None);
        assert_eq!(with_true_false("SELECT on"), None);
        let s = with_true_false("copy pgbench_accounts from stdin with (freeze on)").unwrap();
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, &s)
            .unwrap()
            .remove(0);
        assert!(analyze(&stmt, &Topology::default()).is_ok());
    }

    #[test]
    fn id_columns_must_come_with_the_data() {
        let mut topo = Topology::default();
        topo.id_defaults.insert("t".into(), vec!["id".into()]);
        let parse = |sql: &str| {
            Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0)
        };
        assert!(analyze(&parse("COPY t (name) FROM STDIN"), &topo).is_err());
        assert!(analyze(&parse("COPY t (id, name) FROM STDIN"), &topo).is_ok());
        assert!(analyze(&parse("COPY t FROM STDIN"), &topo).is_ok());
        assert!(analyze(&parse("COPY t (name) TO STDOUT"), &topo).is_ok());
    }

    /// The COPY `sql` as a session reads it (pre-9.0 options included).
    fn read(sql: &str, topo: &Topology) -> Result<CopySpec, SqlError> {
        match crate::analyze::analyze(sql, topo) {
            Template::Copy(c) => Ok(*c),
            Template::Refuse(e) => Err(e),
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn text(sql: &str) -> Result<CopySpec, SqlError> {
        read(sql, &Topology::default())
    }

    #[test]
    fn legacy_options_read_as_their_with_list() {
        let pairs = [
            (
                "COPY t FROM STDIN WITH CSV",
                "COPY t FROM STDIN WITH (FORMAT csv)",
            ),
            (
                "COPY t FROM STDIN WITH CSV HEADER",
                "COPY t FROM STDIN WITH (FORMAT csv, HEADER)",
            ),
            (
                "copy t from stdin csv header",
                "COPY t FROM STDIN (FORMAT csv, HEADER true)",
            ),
            (
                "COPY t FROM STDIN CSV HEADER;",
                "COPY t FROM STDIN WITH (FORMAT csv, HEADER);",
            ),
            (
                "/* psql */ COPY t -- the table\n FROM STDIN\n WITH CSV HEADER",
                "COPY t FROM STDIN WITH (FORMAT csv, HEADER)",
            ),
            // psycopg2's copy_from and copy_to.
            (
                "COPY t (a,b) FROM stdin WITH DELIMITER AS E'\\t' NULL AS '\\N'",
                "COPY t (a, b) FROM STDIN WITH (DELIMITER E'\\t', NULL '\\N')",
            ),
            (
                "COPY t (a,b) FROM stdin WITH DELIMITER AS '\t' NULL AS '\\N'",
                "COPY t (a, b) FROM STDIN WITH (DELIMITER '\t', NULL '\\N')",
            ),
            (
                "COPY t TO stdout WITH DELIMITER AS '|' NULL AS 'nil'",
                "COPY t TO STDOUT WITH (DELIMITER '|', NULL 'nil')",
            ),
            (
                "COPY (SELECT a FROM t WHERE a > 1) TO STDOUT WITH CSV HEADER",
                "COPY (SELECT a FROM t WHERE a > 1) TO STDOUT WITH (FORMAT csv, HEADER)",
            ),
            (
                "COPY t TO STDOUT CSV QUOTE AS '''' ESCAPE AS '\\' FORCE QUOTE a, \"B\"",
                "COPY t TO STDOUT WITH (FORMAT csv, QUOTE '''', ESCAPE '\\', FORCE_QUOTE (a, \"B\"))",
            ),
            (
                "COPY t FROM STDIN NULL 'x' CSV FORCE NOT NULL a FORCE NULL b, c DELIMITER ';'",
                "COPY t FROM STDIN WITH (NULL 'x', FORMAT csv, FORCE_NOT_NULL (a), FORCE_NULL (b, c), DELIMITER ';')",
            ),
            ("COPY t TO STDOUT HEADER", "COPY t TO STDOUT WITH (HEADER)"),
            (
                "COPY t FROM STDIN BINARY",
                "COPY t FROM STDIN WITH (FORMAT binary)",
            ),
            (
                "COPY BINARY t FROM STDIN",
                "COPY t FROM STDIN WITH (FORMAT binary)",
            ),
            (
                "COPY t FROM STDIN FREEZE ENCODING 'UTF8'",
                "COPY t FROM STDIN WITH (FREEZE true, ENCODING 'UTF8')",
            ),
            (
                "COPY t FROM STDIN DELIMITERS '|'",
                "COPY t FROM STDIN WITH (DELIMITER '|')",
            ),
            (
                "COPY t FROM STDIN USING DELIMITERS '|' WITH NULL AS ''",
                "COPY t FROM STDIN WITH (DELIMITER '|', NULL '')",
            ),
            (
                "COPY t FROM STDIN USING DELIMITERS '|' WITH (NULL '')",
                "COPY t FROM STDIN WITH (DELIMITER '|', NULL '')",
            ),
            (
                "COPY t FROM STDIN DELIMITER $$;$$ CSV",
                "COPY t FROM STDIN WITH (DELIMITER ';', FORMAT csv)",
            ),
            (
                "COPY public.\"T\" (x) FROM STDIN CSV",
                "COPY public.\"T\" (x) FROM STDIN WITH (FORMAT csv)",
            ),
        ];
        for (legacy, modern) in pairs {
            let l = text(legacy).unwrap_or_else(|e| panic!("{legacy}: {e}"));
            let m = text(modern).unwrap_or_else(|e| panic!("{modern}: {e}"));
            assert_eq!(l.options, m.options, "{legacy}");
            assert_eq!(l.sql, m.sql, "{legacy}");
            assert_eq!(l.sql_no_header, m.sql_no_header, "{legacy}");
            assert_eq!(
                (l.from_client, &l.table, &l.columns),
                (m.from_client, &m.table, &m.columns),
                "{legacy}"
            );
            assert_eq!(l.query.is_some(), m.query.is_some(), "{legacy}");
        }
    }

    #[test]
    fn legacy_options_split_rows() {
        let s = text("COPY t (a,b) FROM stdin WITH DELIMITER AS E'\\t' NULL AS '\\N'").unwrap();
        assert_eq!(s.columns, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(
            s.options,
            CopyOptions {
                format: CopyFormat::Text,
                delimiter: b'\t',
                quote: b'"',
                escape: b'"',
                null: "\\N".into(),
                header: false,
            }
        );
        assert_eq!(
            s.sql,
            "COPY t (a, b) FROM STDIN (DELIMITER E'\\t', NULL E'\\\\N')"
        );
        let s = text("COPY t FROM STDIN WITH CSV HEADER").unwrap();
        assert_eq!(
            s.options,
            CopyOptions {
                format: CopyFormat::Csv,
                delimiter: b',',
                quote: b'"',
                escape: b'"',
                null: String::new(),
                header: true,
            }
        );
        assert_eq!(s.sql, "COPY t FROM STDIN (FORMAT csv, HEADER)");
        assert_eq!(s.sql_no_header, "COPY t FROM STDIN (FORMAT csv)");
        let s =
            text("COPY t FROM STDIN CSV DELIMITER '|' QUOTE '''' ESCAPE '\\' NULL 'N/A'").unwrap();
        assert_eq!(
            (s.options.delimiter, s.options.quote, s.options.escape),
            (b'|', b'\'', b'\\')
        );
        assert_eq!(s.options.null, "N/A");
        // FORCE QUOTE * (which no column list says): CSV as any.
        let s = text("COPY t TO STDOUT CSV HEADER FORCE QUOTE *").unwrap();
        assert_eq!(s.options.format, CopyFormat::Csv);
        assert_eq!(
            s.sql,
            "COPY t TO STDOUT (FORMAT csv, HEADER, FORCE_QUOTE *)"
        );
        assert_eq!(
            s.sql_no_header,
            "COPY t TO STDOUT (FORMAT csv, FORCE_QUOTE *)"
        );
    }

    #[test]
    fn legacy_errors_are_postgres_errors() {
        let err = |sql: &str| text(sql).map(|s| s.sql).unwrap_err();
        // Gone since PostgreSQL 12: its syntax error.
        for sql in [
            "COPY t TO STDOUT WITH OIDS",
            "COPY t FROM STDIN OIDS",
            "COPY t FROM STDIN CSV OIDS",
        ] {
            let e = err(sql);
            assert_eq!(e.sqlstate(), "42601", "{sql}");
            assert!(e.to_string().contains("\"OIDS\""), "{sql}: {e}");
        }
        for sql in [
            "COPY t FROM STDIN GZIP",
            "COPY t FROM STDIN CSV IGNOREHEADER 1",
            "COPY t FROM STDIN WITH (FORMAT csv) CSV",
            "COPY t FROM STDIN CSV FORCE",
            "COPY t FROM STDIN CSV FORCE NOT a",
            "COPY t FROM STDIN DELIMITER",
            "COPY t FROM STDIN DELIMITER ','  NULL",
            "COPY t FROM STDIN USING NULL ''",
            "COPY (SELECT 1) TO STDOUT DELIMITERS ','",
        ] {
            assert_eq!(err(sql).sqlstate(), "42601", "{sql}");
        }
        let e = err("COPY t FROM STDIN CSV CSV");
        assert_eq!(e.sqlstate(), "42601");
        assert!(
            e.to_string().contains("conflicting or redundant options"),
            "{e}"
        );
        assert_eq!(
            err("COPY BINARY t FROM STDIN WITH (FORMAT csv)").sqlstate(),
            "42601"
        );
        for (sql, what) in [
            ("COPY t FROM STDIN DELIMITER 'ab'", "delimiter"),
            ("COPY t FROM STDIN DELIMITER ''", "delimiter"),
            ("COPY t FROM STDIN DELIMITER 'é'", "delimiter"),
            ("COPY t FROM STDIN CSV QUOTE 'ab'", "quote"),
            ("COPY t FROM STDIN CSV ESCAPE ''", "escape"),
        ] {
            let e = err(sql);
            assert_eq!(e.sqlstate(), "0A000", "{sql}");
            assert_eq!(
                e.to_string(),
                format!("COPY {what} must be a single one-byte character"),
                "{sql}"
            );
        }
        assert_eq!(
            err("COPY t FROM STDIN CSV DELIMITER '\"'").sqlstate(),
            "0A000"
        );
        assert_eq!(
            err("COPY t FROM STDIN DELIMITER E'\\n'").sqlstate(),
            "22023"
        );
        assert_eq!(err("COPY t FROM STDIN NULL E'a\\r'").sqlstate(), "22023");
        // What the router does not read, the shards refuse, as PostgreSQL.
        assert!(text("COPY t FROM STDIN QUOTE 'ab'").is_ok());
        // The refusals of any COPY, with their messages.
        let e = err("COPY t FROM '/tmp/x' CSV HEADER");
        assert_eq!(e.sqlstate(), "0A000");
        assert!(e.to_string().contains("file or program"), "{e}");
        let e = err("COPY t FROM STDIN CSV;\n1,2\n\\.");
        assert!(e.to_string().contains("inline data"), "{e}");
        assert_eq!(
            err("COPY t FROM STDIN WITH (FORMAT \"CSV\")").sqlstate(),
            "22023"
        );
    }

    #[test]
    fn binary_into_a_sharded_table_is_split_and_gathered() {
        let shards: Vec<ShardId> = (0..2).map(ShardId).collect();
        let mut topo = Topology::default();
        topo.rules.insert(
            "t".into(),
            Arc::new(TableRule {
                table: "t".into(),
                kind: TableKind::Sharded {
                    columns: vec!["id".into()],
                    key_types: vec![Some(shardgate_core::KeyType::Int)],
                    strategy: shardgate_core::Strategy::hash(&shards).unwrap(),
                    overrides: Vec::new(),
                    all_columns: vec!["id".into()],
                },
            }),
        );
        for sql in [
            "COPY BINARY t FROM STDIN",
            "COPY t FROM STDIN BINARY",
            "COPY t FROM STDIN WITH (FORMAT binary)",
        ] {
            let s = read(sql, &topo).unwrap();
            assert_eq!(s.options.format, CopyFormat::Binary);
            assert!(
                matches!(
                    s.route(&shards, ShardId(0), None),
                    Ok(CopyRoute::ByKey { .. })
                ),
                "{sql}"
            );
        }
        let s = read("COPY t TO STDOUT WITH BINARY", &topo).unwrap();
        assert_eq!(
            s.route(&shards, ShardId(0), None),
            Ok(CopyRoute::Gather(shards.clone()))
        );
        let s = read("COPY t FROM STDIN CSV HEADER", &topo).unwrap();
        assert!(matches!(
            s.route(&shards, ShardId(0), None),
            Ok(CopyRoute::ByKey { .. })
        ));
    }

    #[test]
    fn server_files_are_refused() {
        assert!(spec("COPY t FROM '/etc/passwd'").is_err());
        assert!(spec("COPY t TO '/tmp/x'").is_err());
    }
}
