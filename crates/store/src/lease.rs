//! Single-writer leases with fencing tokens.
//!
//! Several `keel run` processes may point at one account (a standby beside
//! the active worker, or a restarted worker beside a paused one). Only the
//! holder of the account's lease may write; the lease is one row of `leases`
//! (`account_id, holder, token, acquired_at, expires_at`):
//!
//! * **Acquire** is one conditional upsert: it succeeds when there is no row,
//!   the row has expired, or this process holds it already, and every success
//!   increments `token` (the fencing token: 1, 2, 3, … never reused).
//! * **Renew** is one conditional UPDATE that extends `expires_at` only while
//!   the row still carries our holder and token and has not expired.
//! * **Every fenced append** ([`FencedStore`]) first runs a conditional UPDATE
//!   of the lease row inside the append's own transaction: the batch commits
//!   only if the row still carries our token and has not expired. The UPDATE
//!   also locks the row, so on PostgreSQL a concurrent take-over waits for the
//!   append to commit (the append is ordered before it) instead of racing it.
//!   A writer that lost the lease gets [`StoreError::Fenced`] and writes
//!   nothing.
//!
//! All times are the DATABASE's clock (`clock_timestamp()` on PostgreSQL;
//! SQLite is embedded, so its clock is the host's), in milliseconds since the
//! epoch, so the hosts' clocks never matter.
//!
//! Locally, the holder keeps a deadline on the monotonic clock: the instant
//! *before* it sent the acquire/renew statement, plus the TTL, minus a safety
//! margin. The database computed its expiry after that instant, so the local
//! deadline always falls at least `margin` before anyone else can acquire the
//! lease. [`Lease::check`] compares against it; the worker calls it before
//! every broker submit and cancel, so a paused or partitioned worker stops
//! sending before another can take over. (A process paused *inside* a broker
//! call, after the check, can still complete that one call when it resumes:
//! no lease can stop a request already in flight to a venue that does not
//! know the token. The store, which does know it, refuses everything after.)
//!
//! A holder on this host whose process no longer exists (SIGKILL, crash) is
//! taken over at once instead of after its TTL: the holder id records host,
//! boot id, pid namespace and pid, and the take-over is a compare-and-swap on
//! the dead holder's token. Anywhere else, the lease simply expires.

use crate::conn::{exec, fetch, fetch_one, Conn, Val};
use crate::engine::SqlStore;
use crate::error::StoreError;
use crate::rows::{
    AccountRow, AuditRow, ChainReport, CycleRow, EodRow, FillFilter, FillRow, KillState, OrderFilter,
    OrderRow, PositionRow, ReconciliationRow,
};
use crate::Store;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{Event, Symbol, TargetSet};
use rust_decimal::Decimal;
use sqlx::Database;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a fenced write presents to the database: the account and the token
/// of the lease it was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The account whose lease row is checked.
    pub account_id: String,
    /// The fencing token the writer holds.
    pub token: i64,
}

/// The lease row as the database has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// Who holds (or last held) it.
    pub holder: String,
    /// Its current fencing token.
    pub token: i64,
    /// Milliseconds until it expires by the database's clock (negative: expired).
    pub expires_in_ms: i64,
}

/// The database's clock in milliseconds since the Unix epoch, as SQL.
fn now_ms_sql<DB: Database>() -> &'static str {
    if DB::NAME == "PostgreSQL" {
        // clock_timestamp(), not now(): now() is frozen at the start of the
        // transaction, and a fenced append checks the lease mid-transaction.
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    } else {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    }
}

/// The fencing check of one append, run first inside its transaction: a
/// conditional UPDATE that matches only while the row carries `f.token` and
/// has not expired. It changes nothing but takes the row's lock, which orders
/// the append before any concurrent take-over (PostgreSQL); SQLite's write
/// lock already serialises everything.
pub(crate) async fn check_fence<DB: Database, C: Conn + ?Sized>(
    c: &mut C,
    f: &Fence,
) -> Result<(), StoreError> {
    let now = now_ms_sql::<DB>();
    let n = exec(
        c,
        "checking the lease's fencing token",
        &format!(
            "UPDATE leases SET token = token WHERE account_id = $1 AND token = $2 AND expires_at > {now}"
        ),
        &[Val::t(&f.account_id), Val::i(f.token)],
    )
    .await?;
    if n == 1 {
        return Ok(());
    }
    let row = lease_row::<DB, C>(c, &f.account_id).await?;
    Err(StoreError::Fenced {
        account_id: f.account_id.clone(),
        token: f.token,
        why: refusal(f.token, row.as_ref()),
    })
}

/// Why the database refused `token`, given what the row holds.
fn refusal(token: i64, row: Option<&LeaseRow>) -> String {
    match row {
        None => "the account has no lease row (the lease was never acquired in this store)".into(),
        Some(r) if r.token != token => format!(
            "the account was taken over: the lease now carries token {} held by {}",
            r.token, r.holder
        ),
        Some(r) => format!(
            "the lease expired {} ms ago by the database's clock",
            r.expires_in_ms.saturating_neg()
        ),
    }
}

async fn lease_row<DB: Database, C: Conn + ?Sized>(
    c: &mut C,
    account_id: &str,
) -> Result<Option<LeaseRow>, StoreError> {
    let now = now_ms_sql::<DB>();
    let row = fetch_one(
        c,
        "leases",
        "reading the lease",
        &format!("SELECT holder, token, expires_at - {now} FROM leases WHERE account_id = $1"),
        &[Val::t(account_id)],
    )
    .await?;
    row.map(|r| {
        Ok(LeaseRow {
            holder: r.text(0, "holder")?,
            token: r.int(1, "token")?,
            expires_in_ms: r.int(2, "expires_at")?,
        })
    })
    .transpose()
}

/// A [`Store`] that can grant single-writer leases and append under one.
/// Implemented by every SQL backend ([`crate::SqliteStore`], [`crate::PgStore`])
/// with the same statements.
#[async_trait]
pub trait LeaseStore: Store {
    /// One acquisition attempt: `Some(token)` when granted for `ttl_ms` (no
    /// row yet, the row expired, or `holder` holds it already; the token is
    /// incremented either way), `None` when someone else holds it.
    async fn try_acquire_lease(
        &self,
        account_id: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError>;

    /// Takes the lease over from `from` (a holder known to be dead) if the row
    /// still shows exactly that holder and token: `Some(new token)`, or `None`
    /// if the row changed meanwhile.
    async fn take_over_lease(
        &self,
        account_id: &str,
        holder: &str,
        ttl_ms: i64,
        from: &LeaseRow,
    ) -> Result<Option<i64>, StoreError>;

    /// Extends the lease by `ttl_ms` from now if `holder` still holds it with
    /// `fence.token` and it has not expired; `false` otherwise.
    async fn renew_lease(&self, fence: &Fence, holder: &str, ttl_ms: i64) -> Result<bool, StoreError>;

    /// Ends the lease now (so another process may acquire it at once) if it
    /// still carries `fence.token`; `false` if it did not.
    async fn release_lease(&self, fence: &Fence) -> Result<bool, StoreError>;

    /// The account's lease row, if any.
    async fn lease(&self, account_id: &str) -> Result<Option<LeaseRow>, StoreError>;

    /// [`Store::append_batch`] under a lease: commits only if the lease row
    /// carries `fence.token` and has not expired (checked in the same
    /// transaction); [`StoreError::Fenced`] otherwise, with nothing written.
    async fn append_batch_fenced(&self, evs: &[Event], fence: &Fence)
        -> Result<Vec<Option<u64>>, StoreError>;
}

#[async_trait]
impl<DB> LeaseStore for SqlStore<DB>
where
    DB: Database,
    DB::Connection: Conn,
{
    async fn try_acquire_lease(
        &self,
        account_id: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms_sql::<DB>();
        let sql = format!(
            "INSERT INTO leases (account_id, holder, token, acquired_at, expires_at) \
             VALUES ($1, $2, 1, {now}, {now} + $3) \
             ON CONFLICT (account_id) DO UPDATE SET holder = excluded.holder, token = leases.token + 1, \
             acquired_at = excluded.acquired_at, expires_at = excluded.expires_at \
             WHERE leases.expires_at <= excluded.acquired_at OR leases.holder = excluded.holder \
             RETURNING token"
        );
        let mut c = self.write_conn().await?;
        let row = fetch_one(
            &mut *c,
            "leases",
            "acquiring the lease",
            &sql,
            &[Val::t(account_id), Val::t(holder), Val::i(ttl_ms)],
        )
        .await?;
        row.map(|r| r.int(0, "token")).transpose()
    }

    async fn take_over_lease(
        &self,
        account_id: &str,
        holder: &str,
        ttl_ms: i64,
        from: &LeaseRow,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms_sql::<DB>();
        let sql = format!(
            "UPDATE leases SET holder = $1, token = token + 1, acquired_at = {now}, expires_at = {now} + $2 \
             WHERE account_id = $3 AND holder = $4 AND token = $5 RETURNING token"
        );
        let mut c = self.write_conn().await?;
        let row = fetch_one(
            &mut *c,
            "leases",
            "taking over the lease of a dead holder",
            &sql,
            &[
                Val::t(holder),
                Val::i(ttl_ms),
                Val::t(account_id),
                Val::t(&from.holder),
                Val::i(from.token),
            ],
        )
        .await?;
        row.map(|r| r.int(0, "token")).transpose()
    }

    async fn renew_lease(&self, fence: &Fence, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let now = now_ms_sql::<DB>();
        let mut c = self.write_conn().await?;
        let n = exec(
            &mut *c,
            "renewing the lease",
            &format!(
                "UPDATE leases SET expires_at = {now} + $1 \
                 WHERE account_id = $2 AND holder = $3 AND token = $4 AND expires_at > {now}"
            ),
            &[
                Val::i(ttl_ms),
                Val::t(&fence.account_id),
                Val::t(holder),
                Val::i(fence.token),
            ],
        )
        .await?;
        Ok(n == 1)
    }

    async fn release_lease(&self, fence: &Fence) -> Result<bool, StoreError> {
        let now = now_ms_sql::<DB>();
        let mut c = self.write_conn().await?;
        let n = exec(
            &mut *c,
            "releasing the lease",
            &format!(
                "UPDATE leases SET expires_at = {now} WHERE account_id = $1 AND token = $2 AND expires_at > {now}"
            ),
            &[Val::t(&fence.account_id), Val::i(fence.token)],
        )
        .await?;
        Ok(n == 1)
    }

    async fn lease(&self, account_id: &str) -> Result<Option<LeaseRow>, StoreError> {
        let mut c = self.write_conn().await?;
        lease_row::<DB, _>(&mut *c, account_id).await
    }

    async fn append_batch_fenced(
        &self,
        evs: &[Event],
        fence: &Fence,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        self.append_batch_with(evs, Some(fence)).await
    }
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    DB::Connection: Conn,
{
    /// A pooled connection for lease statements (single autocommit statements).
    async fn write_conn(&self) -> Result<sqlx::pool::PoolConnection<DB>, StoreError> {
        self.pool
            .acquire()
            .await
            .map_err(StoreError::db("acquiring a connection"))
    }

    /// Every lease row (account, holder, token, ms until expiry), for
    /// diagnostics and tests.
    pub async fn leases(&self) -> Result<Vec<(String, LeaseRow)>, StoreError> {
        let now = now_ms_sql::<DB>();
        let mut c = self.write_conn().await?;
        let rows = fetch(
            &mut *c,
            "leases",
            "reading leases",
            &format!("SELECT account_id, holder, token, expires_at - {now} FROM leases ORDER BY account_id"),
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.text(0, "account_id")?,
                    LeaseRow {
                        holder: r.text(1, "holder")?,
                        token: r.int(2, "token")?,
                        expires_in_ms: r.int(3, "expires_at")?,
                    },
                ))
            })
            .collect()
    }
}

/// How long a lease lasts and how much of it the holder trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    /// Validity granted by each acquisition or renewal (database clock).
    pub ttl: Duration,
    /// Subtracted from the local deadline, for clock-rate differences and the
    /// time between a check and the action it guards.
    pub margin: Duration,
}

/// The outcome of [`Lease::acquire`].
pub enum LeaseAttempt {
    /// The lease is ours.
    Acquired(Arc<Lease>),
    /// Someone else holds it.
    Busy(LeaseRow),
}

/// A held lease: the fencing token plus the local (monotonic) deadline.
///
/// Renew it with [`Lease::renew`] well inside the TTL; check it with
/// [`Lease::check`] before anything leaves the process; write through
/// [`Lease::fenced_store`] so the database refuses the writes of a holder
/// that lost it.
pub struct Lease {
    store: Arc<dyn LeaseStore>,
    fence: Fence,
    holder: String,
    terms: LeaseTerms,
    deadline: Mutex<Instant>,
    lost: Mutex<Option<String>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("fence", &self.fence)
            .field("holder", &self.holder)
            .field("terms", &self.terms)
            .finish_non_exhaustive()
    }
}

fn ttl_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Lease {
    /// One attempt to acquire `account_id`'s lease for `holder` (normally
    /// [`holder_id`]). A holder that is a dead process on this host is taken
    /// over at once; a live or remote one makes this [`LeaseAttempt::Busy`].
    pub async fn acquire(
        store: Arc<dyn LeaseStore>,
        account_id: &str,
        holder: &str,
        terms: LeaseTerms,
    ) -> Result<LeaseAttempt, StoreError> {
        let ttl = ttl_ms(terms.ttl);
        // The deadline counts from before the statement is sent: the
        // database's expiry is computed later, so it is never earlier.
        let sent = Instant::now();
        if let Some(token) = store.try_acquire_lease(account_id, holder, ttl).await? {
            return Ok(LeaseAttempt::Acquired(Self::granted(
                store, account_id, holder, terms, token, sent,
            )));
        }
        let Some(current) = store.lease(account_id).await? else {
            // Rows are never deleted; only a concurrent schema change gets here.
            return Ok(LeaseAttempt::Busy(LeaseRow {
                holder: "?".into(),
                token: 0,
                expires_in_ms: 0,
            }));
        };
        if current.holder != holder && holder_is_dead_here(&current.holder) {
            let sent = Instant::now();
            if let Some(token) = store.take_over_lease(account_id, holder, ttl, &current).await? {
                return Ok(LeaseAttempt::Acquired(Self::granted(
                    store, account_id, holder, terms, token, sent,
                )));
            }
            if let Some(now) = store.lease(account_id).await? {
                return Ok(LeaseAttempt::Busy(now));
            }
        }
        Ok(LeaseAttempt::Busy(current))
    }

    fn granted(
        store: Arc<dyn LeaseStore>,
        account_id: &str,
        holder: &str,
        terms: LeaseTerms,
        token: i64,
        sent: Instant,
    ) -> Arc<Lease> {
        Arc::new(Lease {
            store,
            fence: Fence {
                account_id: account_id.to_string(),
                token,
            },
            holder: holder.to_string(),
            terms,
            deadline: Mutex::new(local_deadline(sent, terms)),
            lost: Mutex::new(None),
        })
    }

    /// The account.
    pub fn account_id(&self) -> &str {
        &self.fence.account_id
    }

    /// The fencing token.
    pub fn token(&self) -> i64 {
        self.fence.token
    }

    /// The holder id this lease was granted to.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// What fenced writes present.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// The terms it was granted under.
    pub fn terms(&self) -> LeaseTerms {
        self.terms
    }

    /// The store the lease lives in (unfenced).
    pub fn store(&self) -> &Arc<dyn LeaseStore> {
        &self.store
    }

    /// Time left before the local deadline (zero once passed or lost).
    pub fn remaining(&self) -> Duration {
        if self.lost_reason().is_some() {
            return Duration::ZERO;
        }
        let d = *self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        d.saturating_duration_since(Instant::now())
    }

    /// Why the lease counts as lost, if it does.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Marks the lease lost for good (a refused renewal or write, a release).
    pub fn mark_lost(&self, why: impl Into<String>) {
        let mut l = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        if l.is_none() {
            *l = Some(why.into());
        }
    }

    /// `Ok` while the lease is held by the local count: not lost, and the
    /// monotonic deadline (sent + TTL − margin) not passed. Once the deadline
    /// passes the lease stays lost; re-acquire for a new token.
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(why) = self.lost_reason() {
            return Err(self.lost_error(why));
        }
        let d = *self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now >= d {
            let why = format!(
                "local deadline passed {} ms ago without a renewal (paused process or unreachable database?)",
                now.duration_since(d).as_millis()
            );
            self.mark_lost(why.clone());
            return Err(self.lost_error(self.lost_reason().unwrap_or(why)));
        }
        Ok(())
    }

    /// [`Lease::check`] as a bool.
    pub fn is_valid(&self) -> bool {
        self.check().is_ok()
    }

    fn lost_error(&self, why: String) -> StoreError {
        StoreError::LeaseLost {
            account_id: self.fence.account_id.clone(),
            token: self.fence.token,
            why,
        }
    }

    /// Extends the lease by its TTL. A refusal by the database (someone else
    /// holds it, or it expired) marks it lost and is [`StoreError::Fenced`];
    /// a database error leaves the deadline as it was (retry; the local
    /// deadline decides when to give up).
    pub async fn renew(&self) -> Result<(), StoreError> {
        self.check()?;
        let sent = Instant::now();
        let ok = self
            .store
            .renew_lease(&self.fence, &self.holder, ttl_ms(self.terms.ttl))
            .await?;
        if ok {
            let mut d = self.deadline.lock().unwrap_or_else(|p| p.into_inner());
            *d = (*d).max(local_deadline(sent, self.terms));
            return Ok(());
        }
        let row = self.store.lease(&self.fence.account_id).await.ok().flatten();
        let why = format!(
            "renewal refused by the database: {}",
            refusal(self.fence.token, row.as_ref())
        );
        self.mark_lost(why.clone());
        Err(StoreError::Fenced {
            account_id: self.fence.account_id.clone(),
            token: self.fence.token,
            why,
        })
    }

    /// Gives the lease up now, so another process can take over without
    /// waiting for the TTL. The lease is lost afterwards either way.
    pub async fn release(&self) -> Result<bool, StoreError> {
        self.mark_lost("released");
        self.store.release_lease(&self.fence).await
    }

    /// A [`Store`] whose every append carries this lease's fencing token.
    pub fn fenced_store(self: &Arc<Self>) -> FencedStore {
        FencedStore { lease: self.clone() }
    }
}

/// Sent + TTL − margin, never before `sent`.
fn local_deadline(sent: Instant, terms: LeaseTerms) -> Instant {
    sent + terms.ttl.saturating_sub(terms.margin)
}

/// The store as a lease holder writes it: every append and batch carries the
/// lease's fencing token and is refused by the database
/// ([`StoreError::Fenced`], nothing written) once another process took the
/// account over or the lease expired. Reads pass straight through.
pub struct FencedStore {
    lease: Arc<Lease>,
}

impl FencedStore {
    /// The lease whose token the writes carry.
    pub fn lease(&self) -> &Arc<Lease> {
        &self.lease
    }

    fn inner(&self) -> &dyn LeaseStore {
        self.lease.store.as_ref()
    }
}

#[async_trait]
impl Store for FencedStore {
    async fn append(&self, ev: &Event) -> Result<Option<u64>, StoreError> {
        let mut r = self.append_batch(std::slice::from_ref(ev)).await?;
        Ok(r.pop().flatten())
    }

    async fn append_batch(&self, evs: &[Event]) -> Result<Vec<Option<u64>>, StoreError> {
        let r = self.inner().append_batch_fenced(evs, &self.lease.fence).await;
        if let Err(e @ StoreError::Fenced { .. }) = &r {
            self.lease.mark_lost(e.to_string());
        }
        r
    }

    async fn account(&self) -> Result<Option<AccountRow>, StoreError> {
        self.inner().account().await
    }
    async fn cash(&self) -> Result<Decimal, StoreError> {
        self.inner().cash().await
    }
    async fn positions(&self) -> Result<BTreeMap<Symbol, PositionRow>, StoreError> {
        self.inner().positions().await
    }
    async fn kill_switch(&self) -> Result<Option<KillState>, StoreError> {
        self.inner().kill_switch().await
    }
    async fn queued_target_sets(&self) -> Result<Vec<TargetSet>, StoreError> {
        self.inner().queued_target_sets().await
    }
    async fn target_set_status(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.inner().target_set_status(id).await
    }
    async fn order(&self, client_order_id: &str) -> Result<Option<OrderRow>, StoreError> {
        self.inner().order(client_order_id).await
    }
    async fn open_orders(&self) -> Result<Vec<OrderRow>, StoreError> {
        self.inner().open_orders().await
    }
    async fn orders(&self, filter: &OrderFilter) -> Result<Vec<OrderRow>, StoreError> {
        self.inner().orders(filter).await
    }
    async fn fills(&self, filter: &FillFilter) -> Result<Vec<FillRow>, StoreError> {
        self.inner().fills(filter).await
    }
    async fn cycles(&self, limit: u32) -> Result<Vec<CycleRow>, StoreError> {
        self.inner().cycles(limit).await
    }
    async fn cycle_count_for_set(&self, target_set_id: &str) -> Result<u32, StoreError> {
        self.inner().cycle_count_for_set(target_set_id).await
    }
    async fn guard_decisions(&self, cycle_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.inner().guard_decisions(cycle_id).await
    }
    async fn eod_snapshots(&self) -> Result<Vec<EodRow>, StoreError> {
        self.inner().eod_snapshots().await
    }
    async fn has_eod(&self, date: NaiveDate) -> Result<bool, StoreError> {
        self.inner().has_eod(date).await
    }
    async fn last_trade_times(&self) -> Result<BTreeMap<Symbol, DateTime<Utc>>, StoreError> {
        self.inner().last_trade_times().await
    }
    async fn order_times_since(&self, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, StoreError> {
        self.inner().order_times_since(since).await
    }
    async fn executed_target_set_ids(&self) -> Result<BTreeSet<String>, StoreError> {
        self.inner().executed_target_set_ids().await
    }
    async fn last_reconciliation(&self) -> Result<Option<ReconciliationRow>, StoreError> {
        self.inner().last_reconciliation().await
    }
    async fn audit_head(&self) -> Result<(u64, String), StoreError> {
        self.inner().audit_head().await
    }
    async fn audit_page(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        self.inner().audit_page(after_seq, limit).await
    }
    async fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        self.inner().verify_chain().await
    }
    async fn rebuild_projections(&self) -> Result<(), StoreError> {
        // Rewrites every projection: only the lease holder may, and only while
        // it holds the lease by its own count.
        self.lease.check()?;
        self.inner().rebuild_projections().await
    }
}

/// This process's identity on this host's facts, or `None` off Linux.
fn local_identity() -> Option<(String, String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let host = read("/proc/sys/kernel/hostname")?;
    let boot = read("/proc/sys/kernel/random/boot_id")?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let ns = ns.to_string_lossy().into_owned();
    if [&host, &boot, &ns]
        .iter()
        .any(|s| s.is_empty() || s.contains('|'))
    {
        return None;
    }
    Some((host, boot, ns))
}

/// A holder id unique to this process: `host|boot id|pid namespace|pid|nonce`
/// (the first three are `?` where unknown, which disables dead-holder
/// detection for it).
pub fn holder_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let nonce = h.finish();
        let (host, boot, ns) = local_identity().unwrap_or_else(|| ("?".into(), "?".into(), "?".into()));
        format!("{host}|{boot}|{ns}|{}|{nonce:016x}", std::process::id())
    })
    .clone()
}

/// True only when `holder` was a process on this very host, boot and pid
/// namespace and no process with its pid exists any more. Anything unknown
/// counts as alive (the lease then simply expires).
pub fn holder_is_dead_here(holder: &str) -> bool {
    let parts: Vec<&str> = holder.split('|').collect();
    let [host, boot, ns, pid, _nonce] = parts.as_slice() else {
        return false;
    };
    let Some((h, b, n)) = local_identity() else {
        return false;
    };
    if (*host, *boot, *ns) != (h.as_str(), b.as_str(), n.as_str()) {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if pid == std::process::id() || pid == 0 {
        return false;
    }
    // A zombie still has its /proc entry: it counts as alive until reaped.
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}
