//! The processing stage's error type.

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a processor stopped. Data errors never get here (they become dead letters); these are
/// infrastructure failures that retrying did not or cannot fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log failed in a way retrying will not fix.
    #[error("log: {0}")]
    Log(#[from] retail_log::Error),
    /// The store failed in a way retrying will not fix.
    #[error("store: {0}")]
    Store(#[from] retail_sink::Error),
    /// The stored offset of a partition lies below what the log still holds: records between
    /// them were deleted by retention before they landed. Refusing to skip them silently.
    #[error(
        "{tp}: the store's next offset {stored} is below the log's first offset {low}; \
         records {stored}..{low} were deleted by log retention before landing"
    )]
    OffsetsLost {
        /// Partition.
        tp: retail_core::TopicPartition,
        /// Offset in the store.
        stored: i64,
        /// First offset the log still has.
        low: i64,
    },
}

impl Error {
    /// What `/health` and the dashboard show: a store failure as its kind only
    /// ([`retail_sink::Error::public_message`]), the rest in full. The caller logs the error.
    pub fn public_message(&self) -> String {
        match self {
            Self::Store(e) => e.public_message().to_owned(),
            other => other.to_string(),
        }
    }
}
