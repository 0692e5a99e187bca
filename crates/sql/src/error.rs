//! Errors of SQL analysis and planning, each with the SQLSTATE a client sees.

use thiserror::Error;

/// Why a statement cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SqlError {
    /// The SQL does not parse.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// shardgate's parser cannot read a statement that names a table with
    /// a rule, so it cannot route it. The session asks a PostgreSQL shard
    /// whether the statement is valid SQL: if not, the client gets
    /// PostgreSQL's own error; if it is, a refusal (0A000).
    #[error("{0}")]
    Unparsed(String),
    /// shardgate cannot run this correctly yet.
    #[error("{0}")]
    Unsupported(String),
    /// A value is invalid for its type (for example a shard key literal).
    #[error("{0}")]
    InvalidValue(String),
    /// A statement names something wrongly.
    #[error("{0}")]
    Invalid(String),
    /// An option's value is one PostgreSQL does not take (a COPY format
    /// it does not know, a newline as the COPY delimiter).
    #[error("{0}")]
    InvalidParameter(String),
    /// A shard key is NULL or missing.
    #[error("{0}")]
    NotNull(String),
    /// A value's type does not fit where it goes.
    #[error("{0}")]
    DatatypeMismatch(String),
    /// Something is not in the state the statement needs.
    #[error("{0}")]
    ObjectState(String),
    /// A protocol violation by the client.
    #[error("{0}")]
    Protocol(String),
    /// Too complex for the parser.
    #[error("{0}")]
    TooComplex(String),
    /// An error with its own SQLSTATE (as PostgreSQL reports it).
    #[error("{1}")]
    State(&'static str, String),
    /// A bug in shardgate's analysis (it panicked): the statement is
    /// refused, the session goes on.
    #[error("{0}")]
    Internal(String),
}

impl SqlError {
    /// The SQLSTATE for the client.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            SqlError::Syntax(_) | SqlError::Unparsed(_) => "42601",
            SqlError::Unsupported(_) => "0A000",
            SqlError::InvalidValue(_) => "22P02",
            SqlError::Invalid(_) => "42P01",
            SqlError::InvalidParameter(_) => "22023",
            SqlError::NotNull(_) => "23502",
            SqlError::DatatypeMismatch(_) => "42804",
            SqlError::Protocol(_) => "08P01",
            SqlError::ObjectState(_) => "55000",
            SqlError::TooComplex(_) => "54001",
            SqlError::Internal(_) => "XX000",
            SqlError::State(code, _) => code,
        }
    }
}
