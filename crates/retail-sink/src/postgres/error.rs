//! Turning a tokio-postgres error into the crate's [`Error`]: one place decides what is
//! retryable (the connection or the server being unavailable) and what is not (a statement the
//! server refused), and every message names the statement that failed and its SQLSTATE.

use tokio_postgres::error::SqlState;

use crate::Error;

/// Wraps `e` as [`Error::Postgres`], prefixed with `what` failed (statement and table).
pub(super) fn pg_error(what: &str, e: &tokio_postgres::Error) -> Error {
    let message = match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{what}: {} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                m.push_str("; detail: ");
                m.push_str(detail);
            }
            if let Some(table) = db.table() {
                m.push_str("; table: ");
                m.push_str(table);
            }
            m
        }
        None => {
            // The driver's Display stops at its own layer ("error connecting to server"); the
            // cause (connection refused, reset by peer) is in the source chain.
            let mut m = format!("{what}: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m.push_str(": ");
                m.push_str(&s.to_string());
                source = s.source();
            }
            m
        }
    };
    if is_data_error(e) {
        return Error::Refused {
            message: format!("postgres: {message}"),
        };
    }
    Error::Postgres {
        message,
        retryable: is_retryable(e),
    }
}

/// A URL tokio-postgres could not parse, as [`Error::Config`]: the URL with its credentials
/// masked, and the driver's reason with its cause (the driver's own message stops at "invalid
/// connection string"; the cause names the parameter).
pub(super) fn url_error(url: &str, e: &tokio_postgres::Error) -> Error {
    let mut m = format!("PostgreSQL URL {}: {e}", retail_core::redact::url(url));
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        m.push_str(": ");
        m.push_str(&s.to_string());
        source = s.source();
    }
    Error::Config(m)
}

/// Whether the server refused the statement for the values in it: data exceptions (class 22:
/// out of range, invalid text, untranslatable character), integrity constraints (class 23) and
/// program limits (class 54: a row or value too large). The same batch fails again.
fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| ["22", "23", "54"].iter().any(|class| c.code().starts_with(class)))
}

/// Whether retrying later may succeed: the connection is gone, the server is shutting down or
/// short of resources, or the transaction lost a serialization or deadlock race.
pub(super) fn is_retryable(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") // connection exception
                || c.starts_with("53") // insufficient resources: disk full, out of memory, too many connections
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::IO_ERROR
        }
        // No SQLSTATE: the client side failed. A closed connection or an I/O error is the
        // network; anything else (a value that cannot be encoded, a protocol surprise) is not.
        None => e.is_closed() || has_io_source(e),
    }
}

fn has_io_source(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Whether `e` is the server's `unique_violation`.
pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}
