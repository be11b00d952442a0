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

    /// The database refused a write made under a single-writer lease: the
    /// lease row no longer carries this writer's fencing token (another
    /// process took the account over) or it expired. Nothing was written;
    /// the writer must stop and re-acquire the lease before writing again.
    #[error("write for account {account_id} fenced off (token {token}): {why}")]
    Fenced {
        /// The account whose lease was checked.
        account_id: String,
        /// The fencing token the writer presented.
        token: i64,
        /// What the database holds instead.
        why: String,
    },

    /// This process no longer holds the account's lease by its own count: its
    /// local deadline (monotonic clock, minus a safety margin) passed without
    /// a renewal, or the database refused a renewal or a write. Checked before
    /// every broker submit, so a paused or partitioned worker stops sending
    /// before another can take over.
    #[error("lease for account {account_id} (token {token}) is no longer held: {why}")]
    LeaseLost {
        /// The account.
        account_id: String,
        /// The token of the lost lease.
        token: i64,
        /// Why it counts as lost.
        why: String,
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
    /// True when this process must stop writing for the account: the
    /// database refused a write or renewal under its lease
    /// ([`StoreError::Fenced`]), or the lease is no longer held locally
    /// ([`StoreError::LeaseLost`]).
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. } | StoreError::LeaseLost { .. })
    }

    /// Wraps a driver error with what the store was doing.
    /// Allocates only on failure: it sits on every statement of the hot append path.
    pub(crate) fn db(context: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Db {
            context: context.to_string(),
            source,
        }
    }
}
