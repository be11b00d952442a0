//! A deliberately tiny database seam.
//!
//! The store persists only INTEGER and TEXT, and its SQL is written once in the
//! dialect SQLite and PostgreSQL share (`$N` placeholders, `ON CONFLICT`,
//! `LIMIT`). So the whole store — appends, projections, queries — is written
//! against [`Conn`], and a backend only has to say how to bind a [`Val`] and
//! read one back. Adding a database is implementing `Conn` for its connection
//! type plus an `open` function with its migrations.

use crate::codec;
use crate::error::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::Symbol;
use rust_decimal::Decimal;

/// A bound parameter or a column value. Nulls carry their type so that
/// PostgreSQL, which types every parameter, can accept them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Val {
    /// An INTEGER (SQLite) / BIGINT (PostgreSQL) value or typed null.
    Int(Option<i64>),
    /// A TEXT value or typed null.
    Text(Option<String>),
}

impl Val {
    /// A non-null text parameter.
    pub(crate) fn t(s: impl Into<String>) -> Val {
        Val::Text(Some(s.into()))
    }

    /// A nullable text parameter.
    pub(crate) fn ot(s: Option<impl Into<String>>) -> Val {
        Val::Text(s.map(Into::into))
    }

    /// A non-null integer parameter.
    pub(crate) fn i(n: i64) -> Val {
        Val::Int(Some(n))
    }

    /// Renders the value for diagnostics and projection dumps (`NULL` for nulls).
    pub(crate) fn render(&self) -> Option<String> {
        match self {
            Val::Int(v) => v.map(|n| n.to_string()),
            Val::Text(v) => v.clone(),
        }
    }
}

/// What a backend connection must do for the store.
///
/// Implemented for `SqliteConnection` and `PgConnection`; transactions and
/// pooled connections deref to those, so the same code runs inside a write
/// transaction and on a read connection.
#[async_trait]
pub trait Conn: Send {
    /// Runs a statement and returns the number of rows it changed.
    async fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64, sqlx::Error>;
    /// Runs a query and returns every row, each as its column values in order.
    async fn fetch(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Vec<Val>>, sqlx::Error>;
}

/// Rewrites `$1, $2, …, $n` to anonymous `?` when they appear exactly in that
/// order, each once (true of every multi-row statement the store builds);
/// anything else is returned unchanged.
///
/// Why: SQLite finds a named parameter's name by scanning the list of all
/// names, and sqlx asks for every parameter's name, so binding n `$N`
/// parameters costs O(n²). A 400-parameter multi-row upsert spent most of its
/// time there. sqlx binds anonymous `?` positionally, in the same order.
pub(crate) fn positional(sql: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut next = 1usize;
    let mut in_literal = false;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\'' {
            in_literal = !in_literal;
        } else if b == b'$' && !in_literal {
            let digits = bytes[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
            if digits == 0 {
                return Cow::Borrowed(sql);
            }
            let n: usize = match sql[i + 1..i + 1 + digits].parse() {
                Ok(n) => n,
                Err(_) => return Cow::Borrowed(sql),
            };
            if n != next {
                return Cow::Borrowed(sql);
            }
            next += 1;
            out.push_str(&sql[copied..i]);
            out.push('?');
            i += 1 + digits;
            copied = i;
            continue;
        }
        i += 1;
    }
    if next == 1 {
        return Cow::Borrowed(sql);
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// Implements [`Conn`] for one sqlx backend. The bodies are identical apart
/// from the types and the SQL rewrite, and a macro keeps them that way.
macro_rules! impl_conn {
    ($conn:ty, $db:ty, $rewrite:expr, [$($int_type:literal),*]) => {
        #[async_trait]
        impl Conn for $conn {
            async fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64, sqlx::Error> {
                let sql = $rewrite(sql);
                let mut q = sqlx::query::<$db>(&sql);
                for a in args {
                    q = match a {
                        Val::Int(v) => q.bind(*v),
                        Val::Text(v) => q.bind(v.as_deref()),
                    };
                }
                Ok(q.execute(&mut *self).await?.rows_affected())
            }

            async fn fetch(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Vec<Val>>, sqlx::Error> {
                use sqlx::{Row as _, TypeInfo as _, ValueRef as _};
                let sql = $rewrite(sql);
                let mut q = sqlx::query::<$db>(&sql);
                for a in args {
                    q = match a {
                        Val::Int(v) => q.bind(*v),
                        Val::Text(v) => q.bind(v.as_deref()),
                    };
                }
                let rows = q.fetch_all(&mut *self).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    let mut vals = Vec::with_capacity(row.len());
                    for i in 0..row.len() {
                        // Decide by the value's own type: SQLite types values,
                        // not columns, so an aggregate's type is only known here.
                        let is_int = {
                            let raw = row.try_get_raw(i)?;
                            if raw.is_null() {
                                None
                            } else {
                                Some(matches!(raw.type_info().name(), $($int_type)|*))
                            }
                        };
                        vals.push(match is_int {
                            None => Val::Text(None),
                            Some(true) => Val::Int(Some(row.try_get::<i64, _>(i)?)),
                            Some(false) => Val::Text(Some(row.try_get::<String, _>(i)?)),
                        });
                    }
                    out.push(vals);
                }
                Ok(out)
            }
        }
    };
}

impl_conn!(sqlx::SqliteConnection, sqlx::Sqlite, positional, ["INTEGER"]);
// PostgreSQL binds `$N` natively and cheaply.
impl_conn!(
    sqlx::PgConnection,
    sqlx::Postgres,
    std::borrow::Cow::Borrowed,
    ["INT8"]
);

/// One fetched row with the table it came from, so that a value that does not
/// parse is reported with table, column and key instead of a bare message.
pub(crate) struct Rd {
    table: &'static str,
    vals: Vec<Val>,
}

impl Rd {
    /// Wraps a fetched row.
    pub(crate) fn new(table: &'static str, vals: Vec<Val>) -> Self {
        Self { table, vals }
    }

    /// Builds the error for a bad value in `column`. The first column is the
    /// row's key in every query the store runs.
    fn corrupt(&self, column: &'static str, detail: String) -> StoreError {
        StoreError::Corrupt {
            table: self.table,
            column,
            key: self
                .vals
                .first()
                .and_then(Val::render)
                .unwrap_or_else(|| "?".to_string()),
            detail,
        }
    }

    /// A nullable text column.
    pub(crate) fn opt_text(&self, i: usize, column: &'static str) -> Result<Option<String>, StoreError> {
        match self.vals.get(i) {
            Some(Val::Text(v)) => Ok(v.clone()),
            Some(Val::Int(None)) => Ok(None),
            Some(Val::Int(Some(n))) => Err(self.corrupt(column, format!("expected text, found integer {n}"))),
            None => Err(self.corrupt(column, format!("query returned no column {i}"))),
        }
    }

    /// A non-null text column.
    pub(crate) fn text(&self, i: usize, column: &'static str) -> Result<String, StoreError> {
        self.opt_text(i, column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL".to_string()))
    }

    /// A nullable integer column.
    pub(crate) fn opt_int(&self, i: usize, column: &'static str) -> Result<Option<i64>, StoreError> {
        match self.vals.get(i) {
            Some(Val::Int(v)) => Ok(*v),
            Some(Val::Text(None)) => Ok(None),
            Some(Val::Text(Some(s))) => {
                Err(self.corrupt(column, format!("expected integer, found text {s:?}")))
            }
            None => Err(self.corrupt(column, format!("query returned no column {i}"))),
        }
    }

    /// A non-null integer column.
    pub(crate) fn int(&self, i: usize, column: &'static str) -> Result<i64, StoreError> {
        self.opt_int(i, column)?
            .ok_or_else(|| self.corrupt(column, "unexpected NULL".to_string()))
    }

    /// A non-null non-negative integer column (sequence numbers, counts).
    pub(crate) fn uint(&self, i: usize, column: &'static str) -> Result<u64, StoreError> {
        let n = self.int(i, column)?;
        u64::try_from(n).map_err(|_| self.corrupt(column, format!("{n} is negative")))
    }

    /// A non-null integer column that must fit a `u32` (attempt numbers).
    pub(crate) fn u32(&self, i: usize, column: &'static str) -> Result<u32, StoreError> {
        let n = self.int(i, column)?;
        u32::try_from(n).map_err(|_| self.corrupt(column, format!("{n} is not a u32")))
    }

    /// Parses a non-null text column with `f`.
    pub(crate) fn parse<T>(
        &self,
        i: usize,
        column: &'static str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, StoreError> {
        let s = self.text(i, column)?;
        f(&s).map_err(|d| self.corrupt(column, d))
    }

    /// Parses a nullable text column with `f`.
    pub(crate) fn parse_opt<T>(
        &self,
        i: usize,
        column: &'static str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, StoreError> {
        match self.opt_text(i, column)? {
            None => Ok(None),
            Some(s) => f(&s).map(Some).map_err(|d| self.corrupt(column, d)),
        }
    }

    /// A non-null decimal column.
    pub(crate) fn dec(&self, i: usize, column: &'static str) -> Result<Decimal, StoreError> {
        self.parse(i, column, codec::parse_dec)
    }

    /// A nullable decimal column.
    pub(crate) fn opt_dec(&self, i: usize, column: &'static str) -> Result<Option<Decimal>, StoreError> {
        self.parse_opt(i, column, codec::parse_dec)
    }

    /// A non-null time column.
    pub(crate) fn time(&self, i: usize, column: &'static str) -> Result<DateTime<Utc>, StoreError> {
        self.parse(i, column, codec::parse_time)
    }

    /// A nullable time column.
    pub(crate) fn opt_time(
        &self,
        i: usize,
        column: &'static str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.parse_opt(i, column, codec::parse_time)
    }

    /// A non-null date column.
    pub(crate) fn date(&self, i: usize, column: &'static str) -> Result<NaiveDate, StoreError> {
        self.parse(i, column, codec::parse_date)
    }

    /// A non-null symbol column.
    pub(crate) fn symbol(&self, i: usize, column: &'static str) -> Result<Symbol, StoreError> {
        self.parse(i, column, |s| Symbol::new(s).map_err(|e| e.to_string()))
    }

    /// A non-null JSON column.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        i: usize,
        column: &'static str,
    ) -> Result<T, StoreError> {
        self.parse(i, column, |s| {
            serde_json::from_str(s).map_err(|e| format!("bad JSON: {e}"))
        })
    }
}

/// Runs `sql` and wraps each row for `table`, attaching `context` to errors.
pub(crate) async fn fetch<C: Conn + ?Sized>(
    c: &mut C,
    table: &'static str,
    context: &str,
    sql: &str,
    args: &[Val],
) -> Result<Vec<Rd>, StoreError> {
    let rows = c.fetch(sql, args).await.map_err(StoreError::db(context))?;
    Ok(rows.into_iter().map(|v| Rd::new(table, v)).collect())
}

/// Like [`fetch`] for queries that return at most one row.
pub(crate) async fn fetch_one<C: Conn + ?Sized>(
    c: &mut C,
    table: &'static str,
    context: &str,
    sql: &str,
    args: &[Val],
) -> Result<Option<Rd>, StoreError> {
    Ok(fetch(c, table, context, sql, args).await?.into_iter().next())
}

/// Runs a statement, attaching `context` to errors.
pub(crate) async fn exec<C: Conn + ?Sized>(
    c: &mut C,
    context: &str,
    sql: &str,
    args: &[Val],
) -> Result<u64, StoreError> {
    c.exec(sql, args).await.map_err(StoreError::db(context))
}

#[cfg(test)]
mod tests {
    use super::positional;

    #[test]
    fn rewrites_only_strictly_sequential_placeholders() {
        assert_eq!(positional("VALUES ($1, $2), ($3, $4)"), "VALUES (?, ?), (?, ?)");
        assert_eq!(
            positional("a = $1 AND b = '$2' AND c = $2"),
            "a = ? AND b = '$2' AND c = ?"
        );
        // Reused or out-of-order numbers must keep their names.
        assert_eq!(positional("($1, $2, $2)"), "($1, $2, $2)");
        assert_eq!(positional("($2, $1)"), "($2, $1)");
        assert_eq!(positional("SELECT 1"), "SELECT 1");
        assert_eq!(positional("$10"), "$10");
    }
}
