//! The store's single error type.

use std::path::PathBuf;

/// Everything that can go wrong in the store. Each variant says what the
/// store was doing, so an operator reading a log line knows where to look.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error while {context}: {source}")]
    Db {
        /// What the store was doing (e.g. `appending event fill:F1`).
        context: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// The database file or server could not be opened.
    #[error("cannot open store at {location}: {source}")]
    Open {
        /// The file path or a password-free description of the server.
        location: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// The directory that should hold the database file could not be created.
    #[error("cannot create directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Running the embedded schema migrations failed.
    #[error("schema migration failed for {location}: {source}")]
    Migrate {
        /// The file path or server description.
        location: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// An event could not be serialised into the audit log.
    #[error("cannot serialise event {event_id}: {source}")]
    Encode {
        /// The event's idempotency key.
        event_id: String,
        /// The serialiser's error.
        #[source]
        source: serde_json::Error,
    },

    /// A stored value does not parse as what its column should hold. The
    /// database was edited outside keel or written by an incompatible version.
    #[error("corrupt value in {table}.{column} (row {key}): {detail}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// Primary key of the row.
        key: String,
        /// What was wrong.
        detail: String,
    },

    /// The event contradicts the store's state and was refused (nothing was written).
    #[error("event {event_id} refused: {why}")]
    Refused {
        /// The event's idempotency key.
        event_id: String,
        /// Why it cannot be applied.
        why: String,
    },
}

impl StoreError {
    /// Wraps a driver error with what the store was doing.
    /// Allocates only on failure: it sits on every statement of the hot append path.
    pub(crate) fn db(context: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Db {
            context: context.to_string(),
            source,
        }
    }
}
