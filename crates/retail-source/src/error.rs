//! The sources' error type.

/// Result with the sources' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid; the message names the key. Retrying will not help.
    #[error("invalid source configuration: {0}")]
    Config(String),
    /// The log refused or failed an operation.
    #[error(transparent)]
    Log(#[from] retail_log::Error),
    /// A file or directory operation failed; the message names the path.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether retrying the same call later may succeed (a log I/O hiccup, a file still being
    /// written), as opposed to errors that repeat until something is changed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Config(_) => false,
            Self::Log(e) => e.is_retryable(),
            Self::Io { .. } => true,
        }
    }

    /// Whether only a restart of the process clears it (the embedded log's writer stopped).
    pub const fn needs_restart(&self) -> bool {
        matches!(self, Self::Log(e) if e.needs_restart())
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
