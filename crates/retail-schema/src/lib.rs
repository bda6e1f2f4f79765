//! Schema registry core (issue 16): Avro schemas by id, subjects and their versions, the
//! compatibility rules that guard a subject's evolution, the Confluent wire format, and the
//! Confluent Schema Registry REST API, so that Confluent's own clients (the Python
//! `confluent-kafka` `SchemaRegistryClient` and `AvroSerializer`) talk to this process unchanged.
//!
//! Producers register a schema under a subject (`orders-value`) and frame each Avro message with
//! the schema's global id; the landing reads the id back from the frame and decodes with the
//! schema it names. A new version is accepted only if the subject's compatibility mode allows
//! it, so old and new messages stay readable together.
//!
//! # Layout
//! Data moves from a request down to the store, then back up into memory:
//! - [`rest`]: the Confluent REST API (an axum `Router`, mounted at the root or nested at a
//!   prefix); turns requests into [`service`] calls and [`Error`]s into Confluent's JSON errors.
//! - [`service`]: [`SchemaRegistry`], the state behind a lock plus the store: every mutation is
//!   planned, saved, then applied; also the cheap synchronous `schema(id)` read for the landing.
//! - [`registry`]: [`State`], the registry's state, pure and synchronous: ids, subjects,
//!   versions, config; plans changes and applies them.
//! - [`compat`]: the compatibility modes and the check of a candidate against earlier versions.
//! - [`store`]: [`RegistryStore`], where the state is kept durably (rows and changes), and the
//!   in-memory [`MemoryStore`] for tests.
//! - [`wire`]: the Confluent wire format (magic byte, schema id, Avro body).
//! - [`avro`]: an Avro body -> the JSON object the landing's one decoder reads.
//! - [`builtin`]: the built-in event types' schemas, registered at start.
//!
//! # Wiring
//! `SchemaRegistry::open(store, &[("orders-value", ORDER_SCHEMA)])` loads the store's rows and
//! registers the built-in subjects; `rest::router(registry.clone())` is the REST API (nest it
//! at a prefix if wanted); the landing keeps the `Arc<SchemaRegistry>` and decodes with
//! `wire::split` then `registry.schema(id)`, which never waits. Production needs a
//! [`RegistryStore`] over the database; [`MemoryStore`] is for tests.

pub mod avro;
pub mod builtin;
pub mod compat;
pub mod registry;
pub mod rest;
pub mod service;
pub mod store;
pub mod wire;

pub use compat::{Compatibility, Incompatible};
pub use registry::{Deleted, Registered, State, Verdict, VersionRef};
pub use service::SchemaRegistry;
pub use store::{
    Change, ConfigRow, DeleteRow, MemoryStore, RegistryStore, Rows, SchemaRow, StoreError, VersionRow,
};
pub use wire::WireError;

/// The only schema type this registry accepts; Confluent's name for it.
pub const AVRO: &str = "AVRO";

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a registry operation failed. Each variant is one of Confluent's error codes, so the REST
/// layer answers exactly as Confluent's registry would and its clients raise the same errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("subject `{subject}` not found")]
    SubjectNotFound { subject: String },
    #[error("version {version} of subject `{subject}` not found")]
    VersionNotFound { subject: String, version: u32 },
    #[error("schema {what} not found")]
    SchemaNotFound { what: String },
    #[error("subject `{subject}` was soft-deleted; delete it with permanent=true to remove it for good")]
    SubjectSoftDeleted { subject: String },
    #[error("subject `{subject}` must be soft-deleted before it is deleted with permanent=true")]
    SubjectNotSoftDeleted { subject: String },
    #[error("version {version} of subject `{subject}` was soft-deleted; delete it with permanent=true to remove it for good")]
    VersionSoftDeleted { subject: String, version: u32 },
    #[error("version {version} of subject `{subject}` must be soft-deleted before it is deleted with permanent=true")]
    VersionNotSoftDeleted { subject: String, version: u32 },
    #[error("subject `{subject}` has no subject-level compatibility configured")]
    SubjectConfigNotFound { subject: String },
    #[error("schema being registered is incompatible with an earlier schema for subject `{subject}`: {incompatible}")]
    Incompatible {
        subject: String,
        incompatible: Incompatible,
    },
    #[error("invalid schema: {message}")]
    InvalidSchema { message: String },
    #[error("invalid version `{version}`: a version is `latest`, -1 or a number from 1 to 2147483647")]
    InvalidVersion { version: String },
    #[error("invalid compatibility level `{level}`: one of BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE")]
    InvalidCompatibility { level: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// Confluent's `error_code` for this error; its first three digits are the HTTP status.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound { .. } => 40401,
            Self::VersionNotFound { .. } => 40402,
            Self::SchemaNotFound { .. } => 40403,
            Self::SubjectSoftDeleted { .. } => 40404,
            Self::SubjectNotSoftDeleted { .. } => 40405,
            Self::VersionSoftDeleted { .. } => 40406,
            Self::VersionNotSoftDeleted { .. } => 40407,
            Self::SubjectConfigNotFound { .. } => 40408,
            Self::Incompatible { .. } => 409,
            Self::InvalidSchema { .. } => 42201,
            Self::InvalidVersion { .. } => 42202,
            Self::InvalidCompatibility { .. } => 42203,
            Self::Store(_) => 50001,
        }
    }

    /// Whether the same request may succeed later: only a store failure is passing.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Store(e) if e.retryable)
    }
}
