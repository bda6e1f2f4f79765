//! The store's error type.

use retail_core::TopicPartition;

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PostgreSQL failed; `retryable` says whether it is the connection or the server being
    /// unavailable (retry) rather than a statement the server refused (do not).
    #[error("postgres: {message}")]
    Postgres {
        /// What failed, with the server's message.
        message: String,
        /// Whether retrying later may succeed.
        retryable: bool,
    },
    /// SQLite failed.
    #[error("sqlite {path}: {message}")]
    Sqlite {
        /// Database file.
        path: String,
        /// What failed.
        message: String,
        /// Whether retrying later may succeed (busy, locked, I/O).
        retryable: bool,
    },
    /// The store refused the batch for its data: a value out of range or not representable, a
    /// constraint (PostgreSQL SQLSTATE classes 22, 23 and 54; SQLite constraint, too big,
    /// mismatch), or a sum that overflows. Retrying the same batch fails the same way, so the
    /// landing finds the records at fault with [`crate::isolate`] and dead-letters them with
    /// this message (ADR 0008).
    #[error("{message}")]
    Refused {
        /// The store's message, naming the backend, statement and value.
        message: String,
    },
    /// The stored next offset of a partition is not where the batch starts: another writer
    /// moved it. Nothing was written; reload offsets and seek.
    #[error("offset conflict on {tp}: store has next offset {stored}, batch starts at {batch_first}")]
    OffsetConflict {
        /// Partition.
        tp: TopicPartition,
        /// Offset in the store.
        stored: i64,
        /// Offset the batch starts at.
        batch_first: i64,
    },
    /// A schema migration failed.
    #[error("migration {version} failed: {message}")]
    Migration {
        /// Migration number.
        version: u32,
        /// What failed.
        message: String,
    },
    /// Bad URL or configuration.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// Whether retrying the same call later may succeed.
    pub const fn is_retryable(&self) -> bool {
        match self {
            Self::Postgres { retryable, .. } | Self::Sqlite { retryable, .. } => *retryable,
            Self::Refused { .. } | Self::OffsetConflict { .. } | Self::Migration { .. } | Self::Config(_) => {
                false
            }
        }
    }

    /// Whether the store refused the batch for its data (see [`Error::Refused`]).
    pub const fn is_refused(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }

    /// What clients are told (`/health`, the dashboard, API bodies): the kind of failure
    /// without the store's own message, which can carry hosts, file paths, table names and
    /// values. The caller logs the full error beside it.
    pub const fn public_message(&self) -> &'static str {
        match self {
            Self::Postgres { retryable: true, .. } | Self::Sqlite { retryable: true, .. } => {
                "the store is unavailable; retrying (the server log has the detail)"
            }
            Self::Postgres { .. } | Self::Sqlite { .. } => "the store failed (the server log has the detail)",
            Self::Refused { .. } => "the store refused the data (the server log has the detail)",
            Self::OffsetConflict { .. } => {
                "another writer moved this consumer group's offsets in the store (the server log has the \
                 detail)"
            }
            Self::Migration { .. } => {
                "a schema migration of the store failed (the server log has the detail)"
            }
            Self::Config(_) => "the store's configuration is invalid (the server log has the detail)",
        }
    }
}
