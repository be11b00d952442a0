//! The paper venue's SQLite persistence.

use super::sim::{Changes, PaperOrder, State};
use super::PaperConfig;
use crate::{BrokerError, BrokerEvent, BrokerOrder};
use chrono::{DateTime, SecondsFormat, Utc};
use keel_domain::{Position, Symbol};
use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn db(e: sqlx::Error) -> BrokerError {
    BrokerError::Other(format!("paper broker storage: {e}"))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Other(format!("paper broker storage: bad {what}: {e}"))
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn dec(what: &str, s: &str) -> Result<Decimal, BrokerError> {
    s.parse::<Decimal>()
        .map_err(|e| corrupt(what, format!("{s:?}: {e}")))
}

fn to_i64(what: &str, v: u64) -> Result<i64, BrokerError> {
    i64::try_from(v).map_err(|e| corrupt(what, e))
}

/// Opens the file with the venue's durability settings and runs the embedded migrations.
pub(crate) async fn connect(path: &Path) -> Result<SqlitePool, BrokerError> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    // One connection: calls are serialised anyway, and it rules out
    // read-your-own-write surprises across connections.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .map_err(|e| BrokerError::Other(format!("paper broker: cannot open {}: {e}", path.display())))?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|e| BrokerError::Other(format!("paper broker: migrating {}: {e}", path.display())))?;
    Ok(pool)
}

/// A private in-memory venue database (for simulations): same schema, no file,
/// no fsync. Gone when the pool is dropped.
pub(crate) async fn connect_in_memory() -> Result<SqlitePool, BrokerError> {
    let opts = SqliteConnectOptions::new().in_memory(true).foreign_keys(true);
    // Each connection to :memory: is its own database, so the pool holds exactly
    // one connection and never lets it expire.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        // Nothing can drop an in-memory connection: skip the ping before each use.
        .test_before_acquire(false)
        .connect_with(opts)
        .await
        .map_err(|e| BrokerError::Other(format!("paper broker: cannot open in-memory database: {e}")))?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|e| BrokerError::Other(format!("paper broker: migrating in-memory database: {e}")))?;
    Ok(pool)
}

/// Creates the account on a new file, or loads the state of an existing one.
pub(crate) async fn load_or_init(
    pool: &SqlitePool,
    cfg: &PaperConfig,
    now: DateTime<Utc>,
    path: &Path,
) -> Result<State, BrokerError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT account_id, seed, cash FROM account WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    let cash = match row {
        None => {
            sqlx::query(
                "INSERT INTO account (id, account_id, seed, cash, created_at) VALUES (1, ?, ?, ?, ?)",
            )
            .bind(&cfg.account_id)
            .bind(cfg.seed.to_string())
            .bind(cfg.initial_cash.to_string())
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            cfg.initial_cash
        }
        Some((account_id, seed, cash)) => {
            if account_id != cfg.account_id {
                return Err(BrokerError::Other(format!(
                    "paper broker: {} belongs to account {account_id:?}, not {:?}",
                    path.display(),
                    cfg.account_id
                )));
            }
            if seed != cfg.seed.to_string() {
                return Err(BrokerError::Other(format!(
                    "paper broker: {} was created with seed {seed}, not {}",
                    path.display(),
                    cfg.seed
                )));
            }
            dec("account cash", &cash)?
        }
    };

    let mut positions = BTreeMap::new();
    let rows: Vec<(String, String, String)> = sqlx::query_as("SELECT symbol, qty, avg_cost FROM positions")
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    for (symbol, qty, avg_cost) in rows {
        let symbol = Symbol::new(&symbol).map_err(|e| corrupt("position symbol", e))?;
        positions.insert(
            symbol.clone(),
            Position {
                symbol,
                qty: dec("position qty", &qty)?,
                avg_cost: dec("position avg_cost", &avg_cost)?,
            },
        );
    }

    let mut open = BTreeMap::new();
    let docs: Vec<(String,)> = sqlx::query_as(
        "SELECT doc FROM orders WHERE status IN ('accepted', 'partially_filled') ORDER BY seq",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    for (doc,) in docs {
        let o: PaperOrder = serde_json::from_str(&doc).map_err(|e| corrupt("order", e))?;
        open.insert(o.seq, o);
    }

    let counters: Vec<(String, i64)> = sqlx::query_as("SELECT name, value FROM counters")
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    let counter = |name: &str| {
        counters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    let state = State {
        cash,
        positions,
        open,
        calls: u64::try_from(counter("calls")).unwrap_or(0),
        events: u64::try_from(counter("events")).unwrap_or(0),
        orders: counter("orders"),
        faults: cfg.faults,
    };
    tx.commit().await.map_err(db)?;
    Ok(state)
}

/// Writes one call's changes and the resulting state in one transaction.
pub(crate) async fn persist(
    pool: &SqlitePool,
    st: &State,
    ch: &Changes,
    now: DateTime<Utc>,
) -> Result<(), BrokerError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    sqlx::query("UPDATE account SET cash = ? WHERE id = 1")
        .bind(st.cash.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    for (name, value) in [
        ("calls", to_i64("calls", st.calls)?),
        ("events", to_i64("events", st.events)?),
        ("orders", st.orders),
    ] {
        sqlx::query(
            "INSERT INTO counters (name, value) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    for symbol in &ch.positions {
        match st.positions.get(symbol) {
            Some(p) => {
                sqlx::query(
                    "INSERT INTO positions (symbol, qty, avg_cost) VALUES (?, ?, ?) \
                     ON CONFLICT (symbol) DO UPDATE SET qty = excluded.qty, avg_cost = excluded.avg_cost",
                )
                .bind(symbol.as_str())
                .bind(p.qty.to_string())
                .bind(p.avg_cost.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            None => {
                sqlx::query("DELETE FROM positions WHERE symbol = ?")
                    .bind(symbol.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
        }
    }
    for o in ch.orders.values() {
        let doc = serde_json::to_string(o).map_err(|e| corrupt("order", e))?;
        sqlx::query(
            "INSERT INTO orders (seq, client_order_id, broker_order_id, symbol, status, doc) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (seq) DO UPDATE SET status = excluded.status, doc = excluded.doc",
        )
        .bind(o.seq)
        .bind(&o.order.client_order_id)
        .bind(&o.order.broker_order_id)
        .bind(o.order.symbol.as_str())
        .bind(o.order.status.as_str())
        .bind(doc)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    for f in &ch.fills {
        sqlx::query(
            "INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&f.fill.fill_id)
        .bind(&f.client_order_id)
        .bind(f.symbol.as_str())
        .bind(f.side.as_str())
        .bind(f.fill.qty.to_string())
        .bind(f.fill.price.to_string())
        .bind(ts(f.fill.at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    for (at, e) in &ch.events {
        let payload = serde_json::to_string(e).map_err(|e| corrupt("event", e))?;
        sqlx::query("INSERT INTO events (at, kind, client_order_id, payload) VALUES (?, ?, ?, ?)")
            .bind(ts(*at))
            .bind(e.kind())
            .bind(e.client_order_id())
            .bind(payload)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    for client_order_id in &ch.submissions {
        sqlx::query(
            "INSERT INTO submissions (client_order_id, received, first_at, last_at) VALUES (?, 1, ?, ?) \
             ON CONFLICT (client_order_id) DO UPDATE SET received = received + 1, last_at = excluded.last_at",
        )
        .bind(client_order_id)
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

/// Whether any order (open or final) has this client order id.
pub(crate) async fn order_exists(pool: &SqlitePool, client_order_id: &str) -> Result<bool, BrokerError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE client_order_id = ?")
        .bind(client_order_id)
        .fetch_one(pool)
        .await
        .map_err(db)?;
    Ok(n > 0)
}

/// The stored order with this client order id.
pub(crate) async fn order_by_client_id(
    pool: &SqlitePool,
    client_order_id: &str,
) -> Result<Option<BrokerOrder>, BrokerError> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM orders WHERE client_order_id = ?")
        .bind(client_order_id)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    doc.map(|d| {
        serde_json::from_str::<PaperOrder>(&d)
            .map(|o| o.order)
            .map_err(|e| corrupt("order", e))
    })
    .transpose()
}

/// Every stored order in submission order.
pub(crate) async fn all_orders(pool: &SqlitePool) -> Result<Vec<BrokerOrder>, BrokerError> {
    let docs: Vec<String> = sqlx::query_scalar("SELECT doc FROM orders ORDER BY seq")
        .fetch_all(pool)
        .await
        .map_err(db)?;
    docs.iter()
        .map(|d| {
            serde_json::from_str::<PaperOrder>(d)
                .map(|o| o.order)
                .map_err(|e| corrupt("order", e))
        })
        .collect()
}

/// Events after `cursor`, in sequence order.
pub(crate) async fn events_since(
    pool: &SqlitePool,
    cursor: u64,
) -> Result<Vec<(u64, BrokerEvent)>, BrokerError> {
    let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq")
            .bind(cursor)
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.into_iter()
        .map(|(seq, payload)| {
            let e: BrokerEvent = serde_json::from_str(&payload).map_err(|e| corrupt("event", e))?;
            let seq = u64::try_from(seq).map_err(|e| corrupt("event seq", e))?;
            Ok((seq, e))
        })
        .collect()
}

/// The submission log, in order of first receipt.
pub(crate) async fn submissions(pool: &SqlitePool) -> Result<Vec<(String, u32)>, BrokerError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT client_order_id, received FROM submissions ORDER BY rowid")
            .fetch_all(pool)
            .await
            .map_err(db)?;
    rows.into_iter()
        .map(|(id, n)| Ok((id, u32::try_from(n).map_err(|e| corrupt("submission count", e))?)))
        .collect()
}
