//! The embedded SQLite backend (keel's default).

use crate::engine::SqlStore;
use crate::error::StoreError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Sqlite;
use std::path::Path;
use std::time::Duration;

/// The store on an embedded SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

/// Schema migrations compiled into the binary, so a fresh file needs nothing on disk.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a writer waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in a file-backed pool: one writer at a time plus readers
/// (dashboard, status) that WAL lets run alongside it.
const FILE_POOL_SIZE: u32 = 4;

/// Connection settings every SQLite store uses.
///
/// - WAL: readers never block the writer, and a commit is one append to the log.
/// - synchronous=FULL: a commit is on disk before `append` returns (invariant 8:
///   nothing lost on crash); NORMAL in WAL mode could lose the last commits on
///   power loss.
/// - busy_timeout: a second process (`keel kill` beside `keel run`) waits for
///   the lock instead of failing at once.
/// - foreign_keys: SQLite leaves them off by default.
fn options(opts: SqliteConnectOptions) -> SqliteConnectOptions {
    opts.journal_mode(SqliteJournalMode::Wal)
        // sqlx reads rows on a worker thread; a deeper row buffer lets it run
        // ahead on long scans (verify, rebuild) instead of handing rows over
        // one small batch at a time.
        .row_buffer_size(1024)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
}

/// Write transactions take the write lock at once, so the duplicate check and
/// the inserts of one append see the same database even if another process
/// (`keel kill` beside `keel run`) writes too.
const BEGIN: &str = "BEGIN IMMEDIATE";

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) the store file at `path`, creating its
    /// directory and applying pending migrations. Does not replay the log:
    /// it reads the chain head from the last row, so opening is fast at any size.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path.as_ref(), SqliteSynchronous::Full).await
    }

    /// Like [`SqlStore::open`] but with `synchronous=OFF`: a commit survives a
    /// crash of the process (the OS already has it) but not of the machine.
    /// Pooled connections are not pinged before each use either (a local file
    /// cannot drop a connection), halving the round trips of a read. Only for
    /// simulations and tests that kill and reopen a store thousands of times;
    /// never for real trading state (invariant 8 needs FULL).
    pub async fn open_unsynced(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path.as_ref(), SqliteSynchronous::Off).await
    }

    async fn open_with(path: &Path, synchronous: SqliteSynchronous) -> Result<Self, StoreError> {
        let fast = synchronous == SqliteSynchronous::Off;
        let location = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let opts = options(SqliteConnectOptions::new().filename(path).create_if_missing(true))
            .synchronous(synchronous);
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .test_before_acquire(!fast)
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
        let mut store = Self::from_pool(pool, BEGIN).await?;
        store.file = Some(path.to_path_buf());
        Ok(store)
    }

    /// A private in-memory store, for tests and dry runs. Gone when dropped.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let location = ":memory:".to_string();
        let opts = options(SqliteConnectOptions::new().in_memory(true));
        // Each SQLite connection to :memory: is its own database, so the pool
        // holds exactly one connection and never lets it expire.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
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
