//! rusqlite errors to the crate's [`Error`], naming the file and the statement that failed, and
//! whether waiting may help (another process holds the write lock, the disk is full, I/O).

use rusqlite::ErrorCode;

use crate::Error;

/// Wraps `e` as [`Error::Sqlite`]; `what` names the statement and table.
pub(super) fn sqlite_error(path: &str, what: &str, e: &rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = e {
        // A constraint, a value too big, a type mismatch: the data, not the moment (ADR 0008).
        if matches!(
            f.code,
            ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch
        ) {
            return Error::Refused {
                message: format!("sqlite {path}: {what}: {e} (SQLite code {})", f.extended_code),
            };
        }
    }
    let (message, retryable) = match e {
        rusqlite::Error::SqliteFailure(f, _) => (
            format!("{what}: {e} (SQLite code {})", f.extended_code),
            matches!(
                f.code,
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::DiskFull
                    | ErrorCode::OutOfMemory
            ),
        ),
        other => (format!("{what}: {other}"), false),
    };
    Error::Sqlite {
        path: path.to_owned(),
        message,
        retryable,
    }
}

/// An error that is not rusqlite's (worker thread gone, spawning failed).
pub(super) fn worker_error(path: &str, message: String) -> Error {
    Error::Sqlite {
        path: path.to_owned(),
        message,
        retryable: false,
    }
}
