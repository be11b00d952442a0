//! The PostgreSQL backend, for deployments that keep state in a server.

use crate::engine::SqlStore;
use crate::error::StoreError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Postgres;
use std::str::FromStr;

/// The store on a PostgreSQL database.
pub type PgStore = SqlStore<Postgres>;

/// The PostgreSQL flavour of the schema, compiled into the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations_pg");

/// Connections in the pool: one writer at a time plus concurrent readers.
const POOL_SIZE: u32 = 4;

/// A description of the server for error messages, without the password.
fn describe(opts: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("")
    )
}

/// Write transactions use the default isolation: the audit log's `seq` primary
/// key already serialises writers (a second writer blocks on the same `seq`,
/// then fails and retries with the new head).
const BEGIN: &str = "BEGIN";

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user@host:port/db`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url).map_err(|source| StoreError::Open {
            // The URL may hold a password; say only that it did not parse.
            location: "the given PostgreSQL URL".to_string(),
            source,
        })?;
        Self::connect_with(opts).await
    }

    /// Connects with explicit options (e.g. a `search_path` that selects a
    /// schema) and applies pending migrations.
    pub async fn connect_with(opts: PgConnectOptions) -> Result<Self, StoreError> {
        let location = describe(&opts);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                location: location.clone(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { location, source })?;
        Self::from_pool(pool, BEGIN).await
    }
}
