//! One PostgreSQL schema per account.
//!
//! The store's tables describe one account (one audit chain, one cash row,
//! one kill switch). On SQLite each account has its own file; on a shared
//! PostgreSQL database each account has its own schema, so every table, every
//! row and the audit chain are per account, migrations run per account, and an
//! account can be exported, backed up or dropped on its own.

use crate::engine::SqlStore;
use crate::error::StoreError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Postgres};
use std::str::FromStr;

/// Longest PostgreSQL identifier, in bytes.
const MAX_IDENT: usize = 63;

/// Checks a schema name: 1–63 bytes of ASCII letters, digits, `_` and `-`
/// (quoted in SQL, so case and `-` are kept).
pub fn check_schema_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_IDENT {
        return Err(format!("schema name {name:?} must be 1 to {MAX_IDENT} bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "schema name {name:?} may hold only ASCII letters, digits, '_' and '-'"
        ));
    }
    Ok(())
}

impl SqlStore<Postgres> {
    /// Connects to `url` with every table in schema `schema` (created if
    /// missing), applying pending migrations there.
    pub async fn connect_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        let location = format!("the given PostgreSQL URL, schema {schema}");
        check_schema_name(schema).map_err(|why| StoreError::Refused {
            event_id: String::new(),
            why,
        })?;
        let opts = PgConnectOptions::from_str(url).map_err(|source| StoreError::Open {
            location: location.clone(),
            source,
        })?;
        let quoted = format!("\"{schema}\"");
        {
            let mut c = opts.clone().connect().await.map_err(|source| StoreError::Open {
                location: location.clone(),
                source,
            })?;
            let created = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
                .execute(&mut c)
                .await;
            if let Err(source) = created {
                // Two processes creating it at once: one of them loses the
                // race on the catalog's unique index; the schema exists.
                let exists: Result<Option<i32>, _> =
                    sqlx::query_scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1")
                        .bind(schema)
                        .fetch_optional(&mut c)
                        .await;
                if !matches!(exists, Ok(Some(_))) {
                    return Err(StoreError::Db {
                        context: format!("creating schema {schema}"),
                        source,
                    });
                }
            }
            let _ = c.close().await;
        }
        Self::connect_with(opts.options([("search_path", quoted.as_str())])).await
    }
}

impl<DB> SqlStore<DB>
where
    DB: sqlx::Database,
    DB::Connection: crate::conn::Conn,
{
    /// The newest schema migration applied to this store (0 if none).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let mut c = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::db("acquiring a connection"))?;
        let row = crate::conn::fetch_one(
            &mut *c,
            "_sqlx_migrations",
            "reading the schema version",
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations",
            &[],
        )
        .await?;
        row.map_or(Ok(0), |r| r.int(0, "version"))
    }
}
