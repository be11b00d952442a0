//! A read-only SQLite connection driven through the C API, for the
//! verifier's full scans of a store file.
//!
//! Why not sqlx: it copies every value of every row into an owned row on its
//! worker thread and hands rows over a channel. Scanning a million audit rows
//! that way spent most of its time in `malloc` and thread hand-offs (16 s of
//! a 20 s `verify_log`). Here a row's columns are borrowed from SQLite's own
//! buffers for the length of one callback, and the scan runs on the caller's
//! thread. The connection is opened read-only, so nothing done through this
//! module can change the store.

use libsqlite3_sys as ffi;
use std::ffi::{CStr, CString};
use std::os::raw::c_int;
use std::path::Path;
use std::ptr;

/// One column value of the current row, borrowed until the next row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col<'a> {
    /// SQL NULL.
    Null,
    /// An INTEGER.
    Int(i64),
    /// TEXT: raw bytes, not yet checked to be UTF-8.
    Text(&'a [u8]),
    /// A REAL, as its IEEE-754 bits (keel stores none: money is TEXT), kept apart from TEXT so a
    /// value of the wrong storage class never hashes like the right one.
    Real(u64),
    /// A BLOB (keel stores none), likewise.
    Blob(&'a [u8]),
}

/// A read-only connection. Opened with `SQLITE_OPEN_NOMUTEX`: it is used by
/// one thread at a time (it is moved, never shared), which is what `Send`
/// without `Sync` promises.
pub(crate) struct RawDb {
    db: *mut ffi::sqlite3,
}

// SAFETY: the handle is only ever used through `&self` methods of one owner;
// `RawDb` is not `Sync`, so two threads never use it at once.
unsafe impl Send for RawDb {}

impl Drop for RawDb {
    fn drop(&mut self) {
        // SAFETY: `db` came from a successful `sqlite3_open_v2`, every statement
        // was finalized by `Stmt`'s drop, and it is closed exactly once here.
        unsafe {
            // Cannot be busy: every statement borrows the connection, so
            // all were finalized before it can be dropped.
            ffi::sqlite3_close(self.db);
        }
    }
}

/// A prepared statement, finalized when dropped.
struct Stmt<'db> {
    stmt: *mut ffi::sqlite3_stmt,
    db: &'db RawDb,
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: `stmt` came from a successful prepare on `db`, which outlives it.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

impl RawDb {
    /// Opens the store file at `path` read-only (it must exist). Waits up to
    /// 10 s for a writer's lock, like the store's own connections.
    pub(crate) fn open_readonly(path: &Path) -> Result<Self, String> {
        use std::os::unix::ffi::OsStrExt;
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{}: the path contains a NUL byte", path.display()))?;
        let mut db = ptr::null_mut();
        // SAFETY: `c_path` is a valid NUL-terminated string and `db` a valid out pointer.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c_path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READONLY | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        // Even on failure SQLite usually returns a handle, which must be closed.
        let conn = RawDb { db };
        if rc != ffi::SQLITE_OK {
            let why = if db.is_null() {
                format!("sqlite error {rc}")
            } else {
                conn.errmsg()
            };
            return Err(format!("opening {} read-only: {why}", path.display()));
        }
        // SAFETY: `db` is an open handle.
        unsafe {
            ffi::sqlite3_busy_timeout(db, 10_000);
        }
        // Read the file through a memory map: a full scan then reads pages
        // where the kernel holds them instead of copying each into SQLite's
        // cache first (a fifth of a million-row scan went to that copy).
        conn.exec("PRAGMA mmap_size = 4294967296")?;
        Ok(conn)
    }

    /// The connection's last error message.
    fn errmsg(&self) -> String {
        // SAFETY: `db` is a valid handle; SQLite returns a NUL-terminated
        // string it owns, copied here before any other call.
        unsafe {
            let p = ffi::sqlite3_errmsg(self.db);
            if p.is_null() {
                "unknown sqlite error".to_string()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    fn prepare(&self, sql: &str) -> Result<Stmt<'_>, String> {
        let c_sql = CString::new(sql).map_err(|_| "SQL contains a NUL byte".to_string())?;
        let mut stmt = ptr::null_mut();
        // SAFETY: valid handle, NUL-terminated SQL, valid out pointer.
        let rc = unsafe { ffi::sqlite3_prepare_v2(self.db, c_sql.as_ptr(), -1, &mut stmt, ptr::null_mut()) };
        if rc != ffi::SQLITE_OK || stmt.is_null() {
            return Err(format!("preparing {sql:?}: {}", self.errmsg()));
        }
        Ok(Stmt { stmt, db: self })
    }

    /// Runs a statement that returns no rows (`BEGIN`, `COMMIT`).
    pub(crate) fn exec(&self, sql: &str) -> Result<(), String> {
        self.query(sql, &[], |_| true)
    }

    /// Runs `sql` with integer parameters `params` (`?1`, `?2`, …) and calls
    /// `row` with each result row's columns until it returns `false`.
    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[i64],
        mut row: impl FnMut(&[Col<'_>]) -> bool,
    ) -> Result<(), String> {
        let st = self.prepare(sql)?;
        for (i, p) in params.iter().enumerate() {
            let idx = c_int::try_from(i + 1).map_err(|_| "too many parameters".to_string())?;
            // SAFETY: `st.stmt` is a live prepared statement.
            let rc = unsafe { ffi::sqlite3_bind_int64(st.stmt, idx, *p) };
            if rc != ffi::SQLITE_OK {
                return Err(format!("binding parameter {idx} of {sql:?}: {}", self.errmsg()));
            }
        }
        // SAFETY: live statement.
        let ncols = unsafe { ffi::sqlite3_column_count(st.stmt) }.max(0);
        let mut cols: Vec<Col<'_>> = Vec::with_capacity(ncols as usize);
        loop {
            // SAFETY: live statement; stepping invalidates the previous row's
            // column pointers, and `cols` (which borrows them) is cleared below
            // before being refilled from the new row.
            let rc = unsafe { ffi::sqlite3_step(st.stmt) };
            if rc == ffi::SQLITE_DONE {
                return Ok(());
            }
            if rc != ffi::SQLITE_ROW {
                return Err(format!("reading {sql:?}: {}", st.db.errmsg()));
            }
            cols.clear();
            for i in 0..ncols {
                // SAFETY: `i` is a valid column index of the current row. For
                // text, `sqlite3_column_text` is called before
                // `sqlite3_column_bytes` (the documented order), and the bytes
                // stay valid until the next step, which happens only after
                // `row` returned and `cols` was cleared.
                let v = unsafe {
                    match ffi::sqlite3_column_type(st.stmt, i) {
                        ffi::SQLITE_NULL => Col::Null,
                        ffi::SQLITE_INTEGER => Col::Int(ffi::sqlite3_column_int64(st.stmt, i)),
                        ffi::SQLITE_FLOAT => Col::Real(ffi::sqlite3_column_double(st.stmt, i).to_bits()),
                        ty => {
                            let p = if ty == ffi::SQLITE_BLOB {
                                ffi::sqlite3_column_blob(st.stmt, i).cast::<u8>()
                            } else {
                                ffi::sqlite3_column_text(st.stmt, i)
                            };
                            let n = ffi::sqlite3_column_bytes(st.stmt, i).max(0) as usize;
                            // NULL for a non-empty value means SQLite ran out of memory.
                            if p.is_null() && n > 0 {
                                return Err(format!("reading {sql:?}: sqlite could not allocate a value"));
                            }
                            let bytes = if p.is_null() {
                                &[][..]
                            } else {
                                std::slice::from_raw_parts(p, n)
                            };
                            if ty == ffi::SQLITE_BLOB {
                                Col::Blob(bytes)
                            } else {
                                Col::Text(bytes)
                            }
                        }
                    }
                };
                cols.push(v);
            }
            // The slices must not outlive this iteration; the closure's
            // signature (a borrow for one call) guarantees that.
            let borrowed: &[Col<'_>] = &cols;
            if !row(borrowed) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_what_sqlx_wrote_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER, b TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1, 'x'), (NULL, 'ünï'), (3, NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let db = RawDb::open_readonly(&path).unwrap();
        let mut seen = Vec::new();
        db.query("SELECT a, b FROM t WHERE rowid >= ?1 ORDER BY rowid", &[1], |c| {
            seen.push(format!("{:?}", c));
            true
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                "[Int(1), Text([120])]",
                format!("[Null, Text({:?})]", "ünï".as_bytes()).as_str(),
                "[Int(3), Null]"
            ]
        );
        let mut kinds = Vec::new();
        db.query("SELECT 1.5, x'31', '1', 1", &[], |c| {
            kinds = c.iter().map(|v| format!("{v:?}")).collect();
            false
        })
        .unwrap();
        assert_eq!(
            kinds,
            [
                format!("Real({})", 1.5f64.to_bits()),
                "Blob([49])".into(),
                "Text([49])".into(),
                "Int(1)".into()
            ]
        );
        let e = db.exec("DELETE FROM t").unwrap_err();
        assert!(e.contains("readonly"), "{e}");
        assert!(RawDb::open_readonly(&dir.path().join("missing.db")).is_err());
        pool.close().await;
    }
}
