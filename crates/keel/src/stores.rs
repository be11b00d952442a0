//! Which store an account's state lives in: the embedded SQLite file
//! (default) or, with `store.url`, the account's own schema on a PostgreSQL
//! server. Also the store addresses `keel export` takes.

use crate::config::KeelConfig;
use crate::error::{input, CliError};
use anyhow::Context;
use keel_store::{
    AuditKey, AuditRow, Checkpoint, LeaseStore, LogReport, PgStore, SqliteStore, Store, StoreError,
    VerifiedState,
};
use std::path::PathBuf;
use std::sync::Arc;

/// An opened store, with its backend still known (for import and dumps).
#[derive(Clone)]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite(Arc<SqliteStore>),
    /// One schema on a PostgreSQL server.
    Pg(Arc<PgStore>),
}

/// Renders a PostgreSQL URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

impl Backend {
    /// As the object-safe store the worker and server take.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(s) => s.clone(),
            Backend::Pg(s) => s.clone(),
        }
    }

    /// As a store that grants leases and fenced appends.
    /// The notification outbox (keel-notify delivers it).
    pub fn outbox(&self) -> Arc<dyn keel_store::Outbox> {
        match self {
            Backend::Sqlite(s) => s.clone(),
            Backend::Pg(s) => s.clone(),
        }
    }

    pub fn lease_store(&self) -> Arc<dyn LeaseStore> {
        match self {
            Backend::Sqlite(s) => s.clone(),
            Backend::Pg(s) => s.clone(),
        }
    }

    /// Appends audit rows verbatim (see `SqlStore::import_audit`).
    pub async fn import_audit(&self, rows: &[AuditRow]) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.import_audit(rows).await,
            Backend::Pg(s) => s.import_audit(rows).await,
        }
    }

    /// Every projection table rendered as text (equal dumps: equal state).
    pub async fn dump_projections(&self) -> Result<Vec<(String, Vec<Vec<Option<String>>>)>, StoreError> {
        match self {
            Backend::Sqlite(s) => s.dump_projections().await,
            Backend::Pg(s) => s.dump_projections().await,
        }
    }

    /// The newest applied schema migration.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.schema_version().await,
            Backend::Pg(s) => s.schema_version().await,
        }
    }

    /// Verifies chain, projections and the anchor, proving the projections
    /// from a verified state when one is given and fits (see
    /// `SqlStore::verify_log_from`).
    pub async fn verify_log_from(
        &self,
        cp: Option<&Checkpoint>,
        state: Option<&VerifiedState>,
    ) -> Result<(LogReport, Option<VerifiedState>), StoreError> {
        match self {
            Backend::Sqlite(s) => s.verify_log_from(cp, state).await,
            Backend::Pg(s) => s.verify_log_from(cp, state).await,
        }
    }

    /// Rewrites an unkeyed chain as keyed (see `SqlStore::rekey`).
    pub async fn rekey(&self) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.rekey().await,
            Backend::Pg(s) => s.rekey().await,
        }
    }

    /// The audit key the store chains with, if any.
    pub fn audit_key(&self) -> Option<&AuditKey> {
        match self {
            Backend::Sqlite(s) => s.audit_key(),
            Backend::Pg(s) => s.audit_key(),
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            Backend::Sqlite(s) => s.close().await,
            Backend::Pg(s) => s.close().await,
        }
    }
}

/// Where an account's state lives, for messages (no password).
pub fn describe(cfg: &KeelConfig) -> String {
    match &cfg.store.url {
        Some(url) => format!("{} schema {}", redact(url), cfg.pg_schema()),
        None => cfg.store_path().display().to_string(),
    }
}

/// True when the account's store may not exist yet and reading it would be
/// pointless (SQLite only: a server schema is created on first open).
pub fn missing(cfg: &KeelConfig) -> bool {
    cfg.store.url.is_none() && !cfg.store_path().exists()
}

/// Opens (creating and migrating as needed) the account's store.
pub async fn open(cfg: &KeelConfig) -> Result<Backend, CliError> {
    let key = cfg.audit.key(&cfg.data_dir)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    match &cfg.store.url {
        Some(url) => open_pg(url, &cfg.pg_schema(), key).await,
        None => {
            let path = cfg.store_path();
            // A store that checkpoints say existed is never silently recreated
            // empty: that would erase the history the checkpoints anchor.
            let witness = cfg.audit.witness(&cfg.data_dir);
            if !path.exists() && witness.has_checkpoints(&cfg.account_id) {
                return Err(CliError::Runtime(anyhow::anyhow!(
                    "{}: the store is missing, but {} holds checkpoints of its audit log; \
                     refusing to create an empty one (restore the file, or move the witness \
                     file away to start a new history on purpose)",
                    path.display(),
                    witness.path(&cfg.account_id).display()
                )));
            }
            let s = SqliteStore::open(&path)
                .await
                .with_context(|| format!("opening store {}", path.display()))?;
            Ok(Backend::Sqlite(Arc::new(s.with_audit_key(key))))
        }
    }
}

async fn open_pg(url: &str, schema: &str, key: Option<AuditKey>) -> Result<Backend, CliError> {
    let s = PgStore::connect_schema(url, schema)
        .await
        .with_context(|| format!("opening store {} schema {schema}", redact(url)))?;
    Ok(Backend::Pg(Arc::new(s.with_audit_key(key))))
}

/// A `keel export` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `sqlite:PATH`.
    Sqlite(PathBuf),
    /// `jsonl:PATH`: one audit row per line, exactly as stored.
    Jsonl(PathBuf),
    /// `postgres://…`: the account's schema on that server.
    Postgres(String),
}

impl Address {
    /// Parses `flag`'s value.
    pub fn parse(flag: &str, s: &str) -> Result<Address, CliError> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Address::Postgres(s.to_string()));
        }
        let bad = || {
            input(format!(
                "--{flag} = {:?}: expected sqlite:PATH, jsonl:PATH or a postgres:// URL",
                redact(s)
            ))
        };
        let (kind, path) = s.split_once(':').ok_or_else(bad)?;
        if path.is_empty() {
            return Err(bad());
        }
        match kind {
            "sqlite" => Ok(Address::Sqlite(PathBuf::from(path))),
            "jsonl" => Ok(Address::Jsonl(PathBuf::from(path))),
            _ => Err(bad()),
        }
    }

    /// For messages (no password).
    pub fn describe(&self, cfg: &KeelConfig) -> String {
        match self {
            Address::Sqlite(p) => format!("sqlite:{}", p.display()),
            Address::Jsonl(p) => format!("jsonl:{}", p.display()),
            Address::Postgres(u) => format!("{} schema {}", redact(u), cfg.pg_schema()),
        }
    }

    /// Opens a SQL address (creating it); `None` for JSONL.
    pub async fn open(&self, cfg: &KeelConfig) -> Result<Option<Backend>, CliError> {
        match self {
            Address::Sqlite(p) => {
                let key = cfg.audit.key(&cfg.data_dir)?;
                let s = SqliteStore::open(p)
                    .await
                    .with_context(|| format!("opening store {}", p.display()))?;
                Ok(Some(Backend::Sqlite(Arc::new(s.with_audit_key(key)))))
            }
            Address::Postgres(u) => Ok(Some(
                open_pg(u, &cfg.pg_schema(), cfg.audit.key(&cfg.data_dir)?).await?,
            )),
            Address::Jsonl(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("postgres://keel:s3cret@db:5432/keel"),
            "postgres://keel@db:5432/keel"
        );
        assert_eq!(redact("postgres://keel@db/keel"), "postgres://keel@db/keel");
        assert_eq!(redact("postgres://db/keel"), "postgres://db/keel");
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Address::parse("to", "sqlite:/tmp/a.db").unwrap(),
            Address::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            Address::parse("to", "jsonl:out.jsonl").unwrap(),
            Address::Jsonl("out.jsonl".into())
        );
        assert!(matches!(
            Address::parse("to", "postgres://u@h/db").unwrap(),
            Address::Postgres(_)
        ));
        assert!(Address::parse("to", "csv:x").is_err());
        assert!(Address::parse("to", "sqlite:").is_err());
        assert!(Address::parse("to", "x").is_err());
    }
}
