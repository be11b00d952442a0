//! [`SqlStore`]: the [`Store`] implementation shared by every SQL backend.

use crate::apply::{apply_batch, insert_sql, placeholders, rows_per_statement, PROJECTION_TABLES};
use crate::codec::{self, fmt_date, fmt_time, GENESIS_HASH};
use crate::conn::{exec, fetch, fetch_one, Conn, Rd, Val};
use crate::error::StoreError;
use crate::lease::{check_fence, Fence};
use crate::rows::*;
use crate::tables::{
    account_row, cols, cycle_row, fill_row, order_row, ACCOUNT_COLS, CYCLE_COLS, FILL_COLS, ORDER_COLS,
};
use crate::Store;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{Event, Symbol, TargetSet};
use rust_decimal::Decimal;
use sqlx::{Database, Pool};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use tokio::sync::Mutex;

/// Rows read per round trip when scanning the audit log (verify, rebuild).
/// Paging by `seq` keeps memory flat for a log of any length and works the
/// same on every backend.
const PAGE: i64 = 2_000;

/// Tries of one append when another process moved the chain head under us.
const HEAD_RETRIES: usize = 3;

/// The last audit row's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

/// The store on a SQL database: audit log plus projections.
///
/// Use the backend aliases [`crate::SqliteStore`] and [`crate::PgStore`],
/// whose `open`/`connect` functions build one. Everything else — appends,
/// projections, queries, verification — is this one generic implementation,
/// so the backends cannot drift apart.
pub struct SqlStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
    /// Writers in this process take this lock for the whole transaction, so
    /// `seq` and `prev_hash` are never raced. It caches the chain head so an
    /// append needs no read; the `seq` primary key catches a writer in
    /// another process, and the append then reloads the head and retries.
    pub(crate) head: Mutex<Head>,
    /// How a write transaction starts. SQLite: `BEGIN IMMEDIATE`, which takes
    /// the write lock up front, so the duplicate check and the insert see the
    /// same database even with a second writer process.
    begin_sql: &'static str,
    /// The audit key: appends chain with HMAC-SHA-256 under it (version 2)
    /// and verification requires every row keyed. `None`: SHA-256 (version 1).
    pub(crate) key: Option<crate::chain::AuditKey>,
    /// The SQLite file, when the store is one: verification scans it through
    /// a raw read-only connection (`raw.rs`).
    pub(crate) file: Option<std::path::PathBuf>,
}

/// One event prepared for the log (serialised outside the writer lock).
struct Encoded {
    event_id: String,
    kind: &'static str,
    at: String,
    payload: String,
}

/// How one append attempt ended.
enum Attempt {
    /// Committed, with the per-event results and the new head.
    Done(Vec<Option<u64>>, Head),
    /// The `seq` we chose was taken: another process appended. Reload and retry.
    StaleHead,
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    DB::Connection: Conn,
{
    /// Wraps a migrated pool, reading the chain head once from the last row.
    /// Nothing is replayed, so opening is O(log n) in the log length.
    pub(crate) async fn from_pool(pool: Pool<DB>, begin_sql: &'static str) -> Result<Self, StoreError> {
        let head = read_head(&pool).await?;
        Ok(Self {
            pool,
            head: Mutex::new(head),
            begin_sql,
            key: None,
            file: None,
        })
    }

    /// Chains new rows with HMAC-SHA-256 under `key` and verifies with it
    /// (see [`crate::chain`]). Set before the store is shared.
    pub fn with_audit_key(mut self, key: Option<crate::chain::AuditKey>) -> Self {
        self.key = key;
        self
    }

    /// The configured audit key, if any.
    pub fn audit_key(&self) -> Option<&crate::chain::AuditKey> {
        self.key.as_ref()
    }

    /// Starts a write transaction.
    pub(crate) async fn begin(&self, context: &str) -> Result<sqlx::Transaction<'static, DB>, StoreError> {
        self.pool
            .begin_with(self.begin_sql)
            .await
            .map_err(StoreError::db(context))
    }

    /// Closes the pool, waiting for connections to finish. Dropping the store
    /// also works; this is for callers that want the files released now.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The underlying pool, for tests, benchmarks and diagnostics (pragmas,
    /// tamper simulations). Writing through it bypasses the audit log.
    #[doc(hidden)]
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Every projection table with its rows rendered as text, in primary-key
    /// order. For tests and diagnostics: two stores with equal dumps have
    /// identical projections.
    pub async fn dump_projections(&self) -> Result<Vec<(String, Vec<Vec<Option<String>>>)>, StoreError> {
        Ok(self
            .dump_projection_vals()
            .await?
            .into_iter()
            .map(|(t, rows)| {
                (
                    t,
                    rows.iter().map(|r| r.iter().map(Val::render).collect()).collect(),
                )
            })
            .collect())
    }

    /// Every projection table's rows as stored values, in primary-key order.
    pub(crate) async fn dump_projection_vals(&self) -> Result<Vec<(String, Vec<Vec<Val>>)>, StoreError> {
        let mut c = self.read_conn().await?;
        let mut out = Vec::new();
        for table in PROJECTION_TABLES {
            // Column 1 is the primary key of every projection table.
            let sql = format!("SELECT * FROM {table} ORDER BY 1");
            let rows = c
                .fetch(&sql, &[])
                .await
                .map_err(StoreError::db(&format!("dumping {table}")))?;
            out.push((table.to_string(), rows));
        }
        Ok(out)
    }

    /// A pooled connection for reads.
    async fn read_conn(&self) -> Result<sqlx::pool::PoolConnection<DB>, StoreError> {
        self.pool
            .acquire()
            .await
            .map_err(StoreError::db("acquiring a connection"))
    }

    /// [`Store::append_batch`], optionally fenced by a single-writer lease
    /// (see [`crate::FencedStore`]): with `Some(fence)`, the batch commits
    /// only if the lease row still carries `fence.token` and has not expired
    /// by the database's clock, checked inside the append's transaction;
    /// otherwise nothing is written and the error is [`StoreError::Fenced`].
    pub(crate) async fn append_batch_with(
        &self,
        evs: &[Event],
        fence: Option<&Fence>,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        if evs.is_empty() {
            return Ok(Vec::new());
        }
        // Serialising needs no ordering, so it happens before taking the lock.
        let enc = evs.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let mut head = self.head.lock().await;
        for _ in 0..HEAD_RETRIES {
            match self.try_append(&head, evs, &enc, fence).await {
                Ok(Attempt::Done(results, new_head)) => {
                    // Only a committed transaction moves the head.
                    *head = new_head;
                    return Ok(results);
                }
                Ok(Attempt::StaleHead) => *head = read_head(&self.pool).await?,
                Err(e) => {
                    // If the commit's fate is unknown (I/O error mid-commit),
                    // the database, not our cache, says where the chain ends.
                    if let Ok(h) = read_head(&self.pool).await {
                        *head = h;
                    }
                    return Err(e);
                }
            }
        }
        Err(StoreError::Refused {
            event_id: enc[0].event_id.clone(),
            why: format!("the audit head kept moving under {HEAD_RETRIES} attempts (another writer?)"),
        })
    }

    /// One append attempt: a single transaction for the whole batch. With a
    /// `fence`, the lease row is checked (and locked) first, in the same
    /// transaction, so a writer that lost its lease writes nothing.
    async fn try_append(
        &self,
        head: &Head,
        evs: &[Event],
        enc: &[Encoded],
        fence: Option<&Fence>,
    ) -> Result<Attempt, StoreError> {
        let mut tx = self.begin("beginning append").await?;
        if let Some(f) = fence {
            check_fence::<DB, _>(&mut *tx, f).await?;
        }
        let existing = existing_ids(&mut *tx, enc).await?;
        let mut seen = HashSet::with_capacity(enc.len());
        let mut seq = head.seq;
        let mut prev = head.hash.clone();
        let mut results = Vec::with_capacity(evs.len());
        let mut rows = Vec::with_capacity(evs.len());
        let mut fresh = Vec::with_capacity(evs.len());
        let mut notices = Vec::new();
        for (ev, e) in evs.iter().zip(enc) {
            // Already logged, or repeated earlier in this batch: a no-op.
            if existing.contains(&e.event_id) || !seen.insert(e.event_id.as_str()) {
                results.push(None);
                continue;
            }
            let next = seq + 1;
            let hash = crate::chain::row_hash(
                self.key.as_ref(),
                &prev,
                next,
                &e.at,
                e.kind,
                &e.event_id,
                &e.payload,
            );
            rows.push([
                Val::i(seq_i64(next)?),
                Val::t(&e.at),
                Val::t(e.kind),
                Val::t(&e.event_id),
                Val::t(&e.payload),
                Val::t(std::mem::replace(&mut prev, hash.clone())),
                Val::t(hash),
            ]);
            fresh.push((ev, e.event_id.as_str()));
            notices.extend(crate::outbox::row_for(ev, next, &e.event_id, &e.at)?);
            seq = next;
            results.push(Some(next));
        }
        let per = rows_per_statement(AUDIT_COLS.len());
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<[Val; 7]> = rows.by_ref().take(per).collect();
            // No conflict clause: a taken seq or event_id here means another
            // process appended since we read the head (or the duplicate check).
            let sql = insert_sql("audit", AUDIT_COLS, chunk.len(), false);
            let n = chunk.len();
            let args: Vec<Val> = chunk.into_iter().flatten().collect();
            match tx.exec(&sql, &args).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => return Ok(Attempt::StaleHead),
                Err(source) => {
                    return Err(StoreError::Db {
                        context: format!("appending {n} audit rows after seq {}", head.seq),
                        source,
                    })
                }
            }
        }
        if !fresh.is_empty() {
            apply_batch(&mut *tx, &fresh).await?;
        }
        // Same transaction: an event that needs a person commits with its notification.
        crate::outbox::derive(&mut *tx, notices).await?;
        tx.commit().await.map_err(StoreError::db("committing append"))?;
        Ok(Attempt::Done(results, Head { seq, hash: prev }))
    }
}

/// Columns of `audit`, in insert order.
pub(crate) const AUDIT_COLS: &[&str] = &["seq", "at", "kind", "event_id", "payload", "prev_hash", "hash"];

/// Which of the batch's event ids are already in the log (one indexed query per 500 ids).
async fn existing_ids<C: Conn + ?Sized>(c: &mut C, enc: &[Encoded]) -> Result<HashSet<String>, StoreError> {
    let ids: BTreeSet<&str> = enc.iter().map(|e| e.event_id.as_str()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut out = HashSet::new();
    for chunk in ids.chunks(rows_per_statement(1)) {
        let sql = format!(
            "SELECT event_id FROM audit WHERE event_id IN ({})",
            placeholders(chunk.len())
        );
        let args: Vec<Val> = chunk.iter().map(|id| Val::t(*id)).collect();
        for r in fetch(c, "audit", "checking for duplicate events", &sql, &args).await? {
            out.insert(r.text(0, "event_id")?);
        }
    }
    Ok(out)
}

/// Reads the chain head from the last audit row (genesis for an empty log).
pub(crate) async fn read_head<DB>(pool: &Pool<DB>) -> Result<Head, StoreError>
where
    DB: Database,
    DB::Connection: Conn,
{
    let mut c = pool
        .acquire()
        .await
        .map_err(StoreError::db("acquiring a connection"))?;
    let row = fetch_one(
        &mut *c,
        "audit",
        "reading the audit head",
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        &[],
    )
    .await?;
    match row {
        None => Ok(Head {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }),
        Some(r) => Ok(Head {
            seq: r.uint(0, "seq")?,
            hash: r.text(1, "hash")?,
        }),
    }
}

/// `seq` as the database's signed integer.
pub(crate) fn seq_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt {
        table: "audit",
        column: "seq",
        key: seq.to_string(),
        detail: "sequence number exceeds the database's integer range".to_string(),
    })
}

/// Serialises an event for the log.
fn encode(ev: &Event) -> Result<Encoded, StoreError> {
    let event_id = ev.event_id();
    let payload = serde_json::to_string(ev).map_err(|source| StoreError::Encode {
        event_id: event_id.clone(),
        source,
    })?;
    Ok(Encoded {
        event_id,
        kind: ev.kind(),
        at: fmt_time(ev.at()),
        payload,
    })
}

/// Decodes an `audit` row selected as `seq, at, kind, event_id, payload, prev_hash, hash`.
pub(crate) fn audit_row(r: &Rd) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        seq: r.uint(0, "seq")?,
        at: r.text(1, "at")?,
        kind: r.text(2, "kind")?,
        event_id: r.text(3, "event_id")?,
        payload: r.text(4, "payload")?,
        prev_hash: r.text(5, "prev_hash")?,
        hash: r.text(6, "hash")?,
    })
}

/// The `[start, end)` bounds of a UTC calendar day as stored time strings.
fn day_bounds(day: NaiveDate) -> (String, String) {
    let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
    (fmt_time(start), fmt_time(start + chrono::Duration::days(1)))
}

/// Appends `AND <clause>` filters with numbered placeholders. Building the SQL
/// (instead of `$1 IS NULL OR ...`) lets the database use the indexes.
struct Where {
    sql: String,
    args: Vec<Val>,
}

impl Where {
    fn new(base: &str) -> Self {
        Self {
            sql: format!("{base} WHERE 1 = 1"),
            args: Vec::new(),
        }
    }

    /// Adds `column <op> $n`.
    fn and(&mut self, column: &str, op: &str, v: Val) {
        self.args.push(v);
        self.sql
            .push_str(&format!(" AND {column} {op} ${}", self.args.len()));
    }

    /// Adds the order and limit and returns the statement and its arguments.
    fn finish(mut self, order: &str, limit: Option<u32>) -> (String, Vec<Val>) {
        self.args.push(Val::i(limit.map_or(i64::MAX, i64::from)));
        self.sql
            .push_str(&format!(" ORDER BY {order} LIMIT ${}", self.args.len()));
        (self.sql, self.args)
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Database,
    DB::Connection: Conn,
{
    async fn append(&self, ev: &Event) -> Result<Option<u64>, StoreError> {
        let mut r = self.append_batch(std::slice::from_ref(ev)).await?;
        Ok(r.pop().flatten())
    }

    async fn append_batch(&self, evs: &[Event]) -> Result<Vec<Option<u64>>, StoreError> {
        self.append_batch_with(evs, None).await
    }

    async fn account(&self) -> Result<Option<AccountRow>, StoreError> {
        let mut c = self.read_conn().await?;
        let sql = format!(
            "SELECT {} FROM account ORDER BY opened_at LIMIT 1",
            cols(ACCOUNT_COLS)
        );
        let row = fetch_one(&mut *c, "account", "reading account", &sql, &[]).await?;
        row.as_ref().map(account_row).transpose()
    }

    async fn cash(&self) -> Result<Decimal, StoreError> {
        let mut c = self.read_conn().await?;
        let row = fetch_one(
            &mut *c,
            "cash",
            "reading cash",
            "SELECT id, amount FROM cash WHERE id = 1",
            &[],
        )
        .await?;
        row.map_or(Ok(Decimal::ZERO), |r| r.dec(1, "amount"))
    }

    async fn positions(&self) -> Result<BTreeMap<Symbol, PositionRow>, StoreError> {
        let mut c = self.read_conn().await?;
        let rows = fetch(
            &mut *c,
            "positions",
            "reading positions",
            "SELECT symbol, qty, avg_cost FROM positions",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.symbol(0, "symbol")?,
                    PositionRow {
                        qty: r.dec(1, "qty")?,
                        avg_cost: r.dec(2, "avg_cost")?,
                    },
                ))
            })
            .collect()
    }

    async fn kill_switch(&self) -> Result<Option<KillState>, StoreError> {
        // The log says whether the switch is engaged, so an edit of the
        // kill_switch table cannot release it; the table can only add an
        // engagement (fail closed: either source engaged means engaged).
        if let Some(k) = self.kill_switch_from_log().await? {
            return Ok(Some(k));
        }
        let mut c = self.read_conn().await?;
        let row = fetch_one(
            &mut *c,
            "kill_switch",
            "reading kill switch",
            "SELECT id, engaged, reason, source, at FROM kill_switch WHERE id = 1",
            &[],
        )
        .await?;
        match row {
            Some(r) if r.int(1, "engaged")? != 0 => Ok(Some(KillState {
                reason: r.text(2, "reason")?,
                source: r.parse(3, "source", codec::parse_kill_source)?,
                at: r.time(4, "at")?,
            })),
            _ => Ok(None),
        }
    }

    async fn queued_target_sets(&self) -> Result<Vec<TargetSet>, StoreError> {
        let mut c = self.read_conn().await?;
        let rows = fetch(
            &mut *c,
            "target_sets",
            "reading queued target sets",
            // Queue order: two sets queued at the same instant (a fixed
            // clock, one batch) are ordered by their queue event in the log,
            // never by id, so "newest" means queued last.
            "SELECT t.id, t.payload FROM target_sets t \
             LEFT JOIN audit a ON a.event_id = 'set:' || t.id \
             WHERE t.status IN ('queued', 'executing') ORDER BY t.queued_at, a.seq, t.id",
            &[],
        )
        .await?;
        rows.iter().map(|r| r.json(1, "payload")).collect()
    }

    async fn target_set_status(&self, id: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.read_conn().await?;
        let row = fetch_one(
            &mut *c,
            "target_sets",
            "reading target set status",
            "SELECT id, status FROM target_sets WHERE id = $1",
            &[Val::t(id)],
        )
        .await?;
        row.map(|r| r.text(1, "status")).transpose()
    }

    async fn order(&self, client_order_id: &str) -> Result<Option<OrderRow>, StoreError> {
        let mut c = self.read_conn().await?;
        let sql = format!(
            "SELECT {} FROM orders WHERE client_order_id = $1",
            cols(ORDER_COLS)
        );
        let row = fetch_one(
            &mut *c,
            "orders",
            "reading order",
            &sql,
            &[Val::t(client_order_id)],
        )
        .await?;
        row.as_ref().map(order_row).transpose()
    }

    async fn open_orders(&self) -> Result<Vec<OrderRow>, StoreError> {
        let mut c = self.read_conn().await?;
        let sql = format!(
            "SELECT {} FROM orders WHERE status IN ('intent', 'accepted', 'partially_filled') \
             ORDER BY created_at, client_order_id",
            cols(ORDER_COLS)
        );
        let rows = fetch(&mut *c, "orders", "reading open orders", &sql, &[]).await?;
        rows.iter().map(order_row).collect()
    }

    async fn orders(&self, filter: &OrderFilter) -> Result<Vec<OrderRow>, StoreError> {
        let mut w = Where::new(&format!("SELECT {} FROM orders", cols(ORDER_COLS)));
        if let Some(day) = filter.day {
            let (from, to) = day_bounds(day);
            w.and("created_at", ">=", Val::t(from));
            w.and("created_at", "<", Val::t(to));
        }
        if let Some(s) = &filter.symbol {
            w.and("symbol", "=", Val::t(s.as_str()));
        }
        if let Some(s) = filter.status {
            w.and("status", "=", Val::t(s.as_str()));
        }
        let (sql, args) = w.finish("created_at DESC, client_order_id DESC", filter.limit);
        let mut c = self.read_conn().await?;
        let rows = fetch(&mut *c, "orders", "reading orders", &sql, &args).await?;
        rows.iter().map(order_row).collect()
    }

    async fn fills(&self, filter: &FillFilter) -> Result<Vec<FillRow>, StoreError> {
        let mut w = Where::new(&format!("SELECT {} FROM fills", cols(FILL_COLS)));
        if let Some(day) = filter.day {
            let (from, to) = day_bounds(day);
            w.and("at", ">=", Val::t(from));
            w.and("at", "<", Val::t(to));
        }
        if let Some(s) = &filter.symbol {
            w.and("symbol", "=", Val::t(s.as_str()));
        }
        if let Some(id) = &filter.client_order_id {
            w.and("client_order_id", "=", Val::t(id));
        }
        let (sql, args) = w.finish("at DESC, fill_id DESC", filter.limit);
        let mut c = self.read_conn().await?;
        let rows = fetch(&mut *c, "fills", "reading fills", &sql, &args).await?;
        rows.iter().map(fill_row).collect()
    }

    async fn cycles(&self, limit: u32) -> Result<Vec<CycleRow>, StoreError> {
        let mut c = self.read_conn().await?;
        let sql = format!(
            "SELECT {} FROM cycles ORDER BY started_at DESC, cycle_id DESC LIMIT $1",
            cols(CYCLE_COLS)
        );
        let rows = fetch(
            &mut *c,
            "cycles",
            "reading cycles",
            &sql,
            &[Val::i(i64::from(limit))],
        )
        .await?;
        rows.iter().map(cycle_row).collect()
    }

    async fn cycle_count_for_set(&self, target_set_id: &str) -> Result<u32, StoreError> {
        let mut c = self.read_conn().await?;
        let row = fetch_one(
            &mut *c,
            "cycles",
            "counting cycles",
            "SELECT COUNT(*) FROM cycles WHERE target_set_id = $1",
            &[Val::t(target_set_id)],
        )
        .await?;
        let n = row.map_or(Ok(0), |r| r.uint(0, "count"))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn guard_decisions(&self, cycle_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let mut c = self.read_conn().await?;
        let row = fetch_one(
            &mut *c,
            "guard_decisions",
            "reading guard decisions",
            "SELECT cycle_id, decisions FROM guard_decisions WHERE cycle_id = $1",
            &[Val::t(cycle_id)],
        )
        .await?;
        row.map(|r| r.json(1, "decisions")).transpose()
    }

    async fn eod_snapshots(&self) -> Result<Vec<EodRow>, StoreError> {
        let mut c = self.read_conn().await?;
        let rows = fetch(
            &mut *c,
            "eod_snapshots",
            "reading EOD snapshots",
            "SELECT date, snapshot, equity, cash, gross, net, day_pnl FROM eod_snapshots ORDER BY date",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EodRow {
                    date: r.date(0, "date")?,
                    snapshot: r.json(1, "snapshot")?,
                    equity: r.dec(2, "equity")?,
                    cash: r.dec(3, "cash")?,
                    gross_exposure: r.dec(4, "gross")?,
                    net_exposure: r.dec(5, "net")?,
                    day_pnl: r.dec(6, "day_pnl")?,
                })
            })
            .collect()
    }

    async fn has_eod(&self, date: NaiveDate) -> Result<bool, StoreError> {
        let mut c = self.read_conn().await?;
        let row = fetch_one(
            &mut *c,
            "eod_snapshots",
            "checking EOD snapshot",
            "SELECT date FROM eod_snapshots WHERE date = $1",
            &[Val::t(fmt_date(date))],
        )
        .await?;
        Ok(row.is_some())
    }

    async fn last_trade_times(&self) -> Result<BTreeMap<Symbol, DateTime<Utc>>, StoreError> {
        let mut c = self.read_conn().await?;
        // Fixed-width times make MAX over the strings the latest instant.
        let rows = fetch(
            &mut *c,
            "orders",
            "reading last trade times",
            "SELECT symbol, MAX(t) FROM (SELECT symbol, at AS t FROM fills \
             UNION ALL SELECT symbol, created_at AS t FROM orders) AS trades GROUP BY symbol",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| Ok((r.symbol(0, "symbol")?, r.time(1, "at")?)))
            .collect()
    }

    async fn order_times_since(&self, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let mut c = self.read_conn().await?;
        let rows = fetch(
            &mut *c,
            "orders",
            "reading recent order times",
            "SELECT created_at FROM orders WHERE created_at >= $1 ORDER BY created_at",
            &[Val::t(fmt_time(since))],
        )
        .await?;
        rows.iter().map(|r| r.time(0, "created_at")).collect()
    }

    async fn executed_target_set_ids(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut c = self.read_conn().await?;
        let rows = fetch(
            &mut *c,
            "target_sets",
            "reading executed target sets",
            "SELECT target_set_id FROM cycles UNION SELECT id FROM target_sets WHERE status <> 'queued'",
            &[],
        )
        .await?;
        rows.iter().map(|r| r.text(0, "id")).collect()
    }

    async fn last_reconciliation(&self) -> Result<Option<ReconciliationRow>, StoreError> {
        let mut c = self.read_conn().await?;
        let row = fetch_one(
            &mut *c,
            "reconciliations",
            "reading reconciliation",
            "SELECT id, ok, differences, at FROM reconciliations WHERE id = 1",
            &[],
        )
        .await?;
        row.map(|r| {
            Ok(ReconciliationRow {
                ok: r.int(1, "ok")? != 0,
                differences: r.json(2, "differences")?,
                at: r.time(3, "at")?,
            })
        })
        .transpose()
    }

    async fn audit_head(&self) -> Result<(u64, String), StoreError> {
        // Read from the database rather than the cache: a dashboard process
        // must see what the worker process appended.
        let head = read_head(&self.pool).await?;
        Ok((head.seq, head.hash))
    }

    async fn audit_page(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let mut c = self.read_conn().await?;
        let rows = fetch(
            &mut *c,
            "audit",
            "reading audit page",
            "SELECT seq, at, kind, event_id, payload, prev_hash, hash FROM audit \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[Val::i(seq_i64(after_seq)?), Val::i(i64::from(limit))],
        )
        .await?;
        rows.iter().map(audit_row).collect()
    }

    async fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        // The chain half of `verify_log`: a "state" past any row keeps the
        // scan from replaying or collecting anything.
        let chain = self.scan_chain().await?;
        let (events, expected_seq) = (chain.0, chain.1);
        if let Some(bad) = chain.2 {
            return Ok(ChainReport {
                events,
                first_bad: Some(bad),
            });
        }
        // Rows removed from the end leave a valid shorter chain; only a head
        // this process appended itself can reveal that.
        let cached = self.head.lock().await.clone();
        if cached.seq >= expected_seq {
            return Ok(ChainReport {
                events,
                first_bad: Some((
                    expected_seq,
                    format!(
                        "log ends at seq {} but this process appended up to seq {} (rows removed from the end)",
                        expected_seq - 1,
                        cached.seq
                    ),
                )),
            });
        }
        Ok(ChainReport {
            events,
            first_bad: None,
        })
    }

    async fn rebuild_projections(&self) -> Result<(), StoreError> {
        // Holding the writer lock keeps appends out; the single transaction
        // means readers see either the old projections or the rebuilt ones.
        let _head = self.head.lock().await;
        let mut tx = self.begin("beginning rebuild").await?;
        for table in PROJECTION_TABLES {
            exec(
                &mut *tx,
                &format!("clearing {table}"),
                &format!("DELETE FROM {table}"),
                &[],
            )
            .await?;
        }
        // Replayed a page at a time through the same batch path as appends.
        let mut after = 0i64;
        loop {
            let rows = fetch(
                &mut *tx,
                "audit",
                "replaying the audit log",
                "SELECT seq, event_id, payload, at FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[Val::i(after), Val::i(PAGE)],
            )
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.int(0, "seq")?;
            let mut page = Vec::with_capacity(rows.len());
            let mut notices = Vec::new();
            for r in &rows {
                let ev = r.json::<Event>(2, "payload")?;
                let id = r.text(1, "event_id")?;
                notices.extend(crate::outbox::row_for(
                    &ev,
                    r.uint(0, "seq")?,
                    &id,
                    &r.text(3, "at")?,
                )?);
                page.push((ev, id));
            }
            let refs: Vec<(&Event, &str)> = page.iter().map(|(e, id)| (e, id.as_str())).collect();
            apply_batch(&mut *tx, &refs).await?;
            // The outbox is derived too; rows already there (and their delivery state) are kept.
            crate::outbox::derive(&mut *tx, notices).await?;
        }
        tx.commit().await.map_err(StoreError::db("committing rebuild"))?;
        Ok(())
    }
}
