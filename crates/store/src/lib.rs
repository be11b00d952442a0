//! keel's store: a hash-chained audit log and the projections derived from it.
//!
//! Every state change is an [`Event`] passed to [`Store::append`]. In one
//! transaction the store
//!
//! 1. skips the event if its `event_id` is already in the log (idempotent:
//!    replays, retries and duplicate broker messages change nothing),
//! 2. appends an audit row `(seq, at, kind, event_id, payload, prev_hash, hash)`
//!    whose hash covers the previous row's hash (see [`chain_hash`]), and
//! 3. applies the event to the projection tables (positions, cash, orders, …).
//!
//! A batch ([`Store::append_batch`]) is one transaction and one durable
//! commit, and costs about ten statements whatever its size: one duplicate
//! check, one multi-row audit insert, and per projection table one load and
//! one multi-row write-back (see `apply.rs`). Writers in one process are
//! serialised by a lock around the cached chain head; a writer in another
//! process is caught by the `seq` primary key and the append retries.
//!
//! So the projections are always a function of the log, can be rebuilt from
//! it ([`Store::rebuild_projections`]), and [`Store::verify_chain`] names the
//! first edited, removed or reordered row (invariant 6). Commits are durable
//! before `append` returns (invariant 8), and the kill switch lives in the
//! store, so it survives restarts (invariant 4).
//!
//! Backends: [`SqliteStore`] (embedded, default) and [`PgStore`]. Both are the
//! one generic [`SqlStore`], written against a two-method seam ([`Conn`]).

#![warn(missing_docs)]

pub mod anchor;
mod apply;
pub mod chain;
mod codec;
mod conn;
mod engine;
mod error;
mod lease;
pub mod marks;
mod outbox;
mod pg;
mod raw;
mod rows;
mod schema;
mod sqlite;
mod state;
mod tables;
mod transfer;
mod verify;

pub use anchor::{AnchorError, Checkpoint, Witness};
pub use chain::AuditKey;
pub use codec::{chain_hash, fmt_time, GENESIS_HASH};
pub use conn::{Conn, Val};
pub use engine::SqlStore;
pub use error::StoreError;
pub use lease::{
    holder_id, holder_is_dead_here, Fence, FencedStore, Lease, LeaseAttempt, LeaseRow, LeaseStore, LeaseTerms,
};
pub use outbox::{Delivery, Outbox, OutboxCounts, OutboxItem};
pub use pg::PgStore;
pub use rows::{
    AccountRow, AuditRow, ChainReport, CycleRow, EodRow, FillFilter, FillRow, KillState, OrderFilter,
    OrderRow, PositionRow, ReconciliationRow,
};
pub use schema::check_schema_name;
pub use sqlite::SqliteStore;
pub use state::VerifiedState;
pub use verify::{grouped, LogReport};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{Event, Symbol, TargetSet};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// Persistent state: the audit log (the truth) and its projections (the views).
///
/// Object safe (`Arc<dyn Store>`), so the worker and server need not know the backend.
#[async_trait]
pub trait Store: Send + Sync {
    /// Appends one event: `Ok(Some(seq))` when recorded, `Ok(None)` when an
    /// event with the same `event_id` already is (nothing changes).
    async fn append(&self, ev: &Event) -> Result<Option<u64>, StoreError>;

    /// Appends events in order in one transaction (one durable commit for the
    /// batch). Element `i` of the result is what [`Store::append`] would have
    /// returned for `evs[i]`; a duplicate inside the batch counts as already
    /// recorded. If any event fails, nothing of the batch is written.
    async fn append_batch(&self, evs: &[Event]) -> Result<Vec<Option<u64>>, StoreError>;

    /// The tracked broker account, once opened.
    async fn account(&self) -> Result<Option<AccountRow>, StoreError>;

    /// Current cash: opening cash plus every fill's cash flow (zero before the account is opened).
    async fn cash(&self) -> Result<Decimal, StoreError>;

    /// Open positions by symbol (flat symbols are absent).
    async fn positions(&self) -> Result<BTreeMap<Symbol, PositionRow>, StoreError>;

    /// The kill switch when engaged, `None` when released or never engaged.
    async fn kill_switch(&self) -> Result<Option<KillState>, StoreError>;

    /// Target sets not yet completed (queued or executing), oldest first.
    async fn queued_target_sets(&self) -> Result<Vec<TargetSet>, StoreError>;

    /// `queued`, `executing`, `completed` or `superseded`; `None` for an unknown id.
    async fn target_set_status(&self, id: &str) -> Result<Option<String>, StoreError>;

    /// One order by client order id (how a restart finds an order instead of resending it).
    async fn order(&self, client_order_id: &str) -> Result<Option<OrderRow>, StoreError>;

    /// Orders that can still fill (intent, accepted, partially filled), oldest first.
    async fn open_orders(&self) -> Result<Vec<OrderRow>, StoreError>;

    /// Orders matching `filter`, newest first.
    async fn orders(&self, filter: &OrderFilter) -> Result<Vec<OrderRow>, StoreError>;

    /// Fills matching `filter`, newest first.
    async fn fills(&self, filter: &FillFilter) -> Result<Vec<FillRow>, StoreError>;

    /// The latest `limit` cycles, newest first.
    async fn cycles(&self, limit: u32) -> Result<Vec<CycleRow>, StoreError>;

    /// How many cycles have started for a target set (the next attempt number).
    async fn cycle_count_for_set(&self, target_set_id: &str) -> Result<u32, StoreError>;

    /// The guard decisions recorded for a cycle.
    async fn guard_decisions(&self, cycle_id: &str) -> Result<Option<serde_json::Value>, StoreError>;

    /// Every end-of-day snapshot, oldest first.
    async fn eod_snapshots(&self) -> Result<Vec<EodRow>, StoreError>;

    /// Whether the snapshot for `date` exists (exactly one per session).
    async fn has_eod(&self, date: NaiveDate) -> Result<bool, StoreError>;

    /// Per symbol, the latest fill or order intent (for cooldowns).
    async fn last_trade_times(&self) -> Result<BTreeMap<Symbol, DateTime<Utc>>, StoreError>;

    /// Creation times of orders created at or after `since`, ascending (for the order-rate throttle).
    async fn order_times_since(&self, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, StoreError>;

    /// Ids of target sets that a cycle has started on or that were completed
    /// (for the replayed-target-set guard).
    async fn executed_target_set_ids(&self) -> Result<BTreeSet<String>, StoreError>;

    /// The latest reconciliation with the broker.
    async fn last_reconciliation(&self) -> Result<Option<ReconciliationRow>, StoreError>;

    /// `(seq, hash)` of the last audit row; `(0, GENESIS_HASH)` for an empty log.
    async fn audit_head(&self) -> Result<(u64, String), StoreError>;

    /// Up to `limit` audit rows with `seq > after_seq`, in order.
    async fn audit_page(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRow>, StoreError>;

    /// Re-hashes the whole log in `seq` order (streamed in pages) and reports
    /// the first row that was edited (hash mismatch), removed (seq gap) or
    /// reordered (prev_hash mismatch).
    async fn verify_chain(&self) -> Result<ChainReport, StoreError>;

    /// Clears every projection and replays the log into them in one transaction.
    async fn rebuild_projections(&self) -> Result<(), StoreError>;
}
