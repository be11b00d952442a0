//! The store as the simulated worker sees it: the real SQLite store behind a
//! crash gate, plus the planted "kill switch blind" bug.

use crate::crash::{CrashSwitch, Gate, DEAD};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{Event, Symbol, TargetSet};
use keel_store::{
    AccountRow, AuditRow, ChainReport, CycleRow, EodRow, FillFilter, FillRow, KillState, OrderFilter,
    OrderRow, PositionRow, ReconciliationRow, Store, StoreError,
};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A [`Store`] that dies on cue. Only the worker goes through it; the
/// checker reads the real store directly.
pub(crate) struct SimStore {
    inner: Arc<dyn Store>,
    crash: Arc<CrashSwitch>,
    /// Planted bug: the worker never sees an engaged kill switch.
    kill_blind: bool,
}

impl SimStore {
    pub fn new(inner: Arc<dyn Store>, crash: Arc<CrashSwitch>, kill_blind: bool) -> Self {
        Self {
            inner,
            crash,
            kill_blind,
        }
    }
}

fn dead(what: &str) -> StoreError {
    StoreError::Refused {
        event_id: what.to_string(),
        why: DEAD.to_string(),
    }
}

/// Runs `$call` through the crash gate named `$what`.
macro_rules! gated {
    ($self:ident, $what:expr, $mutating:expr, $call:expr) => {{
        let what = $what;
        match $self.crash.enter(&what, $mutating) {
            Gate::Pass => {
                let t0 = std::time::Instant::now();
                let r = $call.await;
                $self.crash.timed(&what, t0);
                r
            }
            Gate::Before | Gate::Dead => Err(dead(&what)),
            Gate::After => {
                let _ = $call.await;
                Err(dead(&what))
            }
        }
    }};
}

#[async_trait]
impl Store for SimStore {
    async fn append(&self, ev: &Event) -> Result<Option<u64>, StoreError> {
        gated!(
            self,
            format!("store.append {}", ev.kind()),
            true,
            self.inner.append(ev)
        )
    }

    async fn append_batch(&self, evs: &[Event]) -> Result<Vec<Option<u64>>, StoreError> {
        let kinds: Vec<&str> = evs.iter().map(Event::kind).collect();
        gated!(
            self,
            format!("store.append_batch [{}]", kinds.join(", ")),
            true,
            self.inner.append_batch(evs)
        )
    }

    async fn account(&self) -> Result<Option<AccountRow>, StoreError> {
        gated!(self, "store.account", false, self.inner.account())
    }

    async fn cash(&self) -> Result<Decimal, StoreError> {
        gated!(self, "store.cash", false, self.inner.cash())
    }

    async fn positions(&self) -> Result<BTreeMap<Symbol, PositionRow>, StoreError> {
        gated!(self, "store.positions", false, self.inner.positions())
    }

    async fn kill_switch(&self) -> Result<Option<KillState>, StoreError> {
        let real: Result<Option<KillState>, StoreError> =
            gated!(self, "store.kill_switch", false, self.inner.kill_switch());
        if self.kill_blind {
            return real.map(|_| None);
        }
        real
    }

    async fn queued_target_sets(&self) -> Result<Vec<TargetSet>, StoreError> {
        gated!(
            self,
            "store.queued_target_sets",
            false,
            self.inner.queued_target_sets()
        )
    }

    async fn target_set_status(&self, id: &str) -> Result<Option<String>, StoreError> {
        gated!(
            self,
            "store.target_set_status",
            false,
            self.inner.target_set_status(id)
        )
    }

    async fn order(&self, client_order_id: &str) -> Result<Option<OrderRow>, StoreError> {
        gated!(self, "store.order", false, self.inner.order(client_order_id))
    }

    async fn open_orders(&self) -> Result<Vec<OrderRow>, StoreError> {
        gated!(self, "store.open_orders", false, self.inner.open_orders())
    }

    async fn orders(&self, filter: &OrderFilter) -> Result<Vec<OrderRow>, StoreError> {
        gated!(self, "store.orders", false, self.inner.orders(filter))
    }

    async fn fills(&self, filter: &FillFilter) -> Result<Vec<FillRow>, StoreError> {
        gated!(self, "store.fills", false, self.inner.fills(filter))
    }

    async fn cycles(&self, limit: u32) -> Result<Vec<CycleRow>, StoreError> {
        gated!(self, "store.cycles", false, self.inner.cycles(limit))
    }

    async fn cycle_count_for_set(&self, target_set_id: &str) -> Result<u32, StoreError> {
        gated!(
            self,
            "store.cycle_count_for_set",
            false,
            self.inner.cycle_count_for_set(target_set_id)
        )
    }

    async fn guard_decisions(&self, cycle_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        gated!(
            self,
            "store.guard_decisions",
            false,
            self.inner.guard_decisions(cycle_id)
        )
    }

    async fn eod_snapshots(&self) -> Result<Vec<EodRow>, StoreError> {
        gated!(self, "store.eod_snapshots", false, self.inner.eod_snapshots())
    }

    async fn has_eod(&self, date: NaiveDate) -> Result<bool, StoreError> {
        gated!(self, "store.has_eod", false, self.inner.has_eod(date))
    }

    async fn last_trade_times(&self) -> Result<BTreeMap<Symbol, DateTime<Utc>>, StoreError> {
        gated!(
            self,
            "store.last_trade_times",
            false,
            self.inner.last_trade_times()
        )
    }

    async fn order_times_since(&self, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, StoreError> {
        gated!(
            self,
            "store.order_times_since",
            false,
            self.inner.order_times_since(since)
        )
    }

    async fn executed_target_set_ids(&self) -> Result<BTreeSet<String>, StoreError> {
        gated!(
            self,
            "store.executed_target_set_ids",
            false,
            self.inner.executed_target_set_ids()
        )
    }

    async fn last_reconciliation(&self) -> Result<Option<ReconciliationRow>, StoreError> {
        gated!(
            self,
            "store.last_reconciliation",
            false,
            self.inner.last_reconciliation()
        )
    }

    async fn audit_head(&self) -> Result<(u64, String), StoreError> {
        gated!(self, "store.audit_head", false, self.inner.audit_head())
    }

    async fn audit_page(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        gated!(
            self,
            "store.audit_page",
            false,
            self.inner.audit_page(after_seq, limit)
        )
    }

    async fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        gated!(self, "store.verify_chain", false, self.inner.verify_chain())
    }

    async fn rebuild_projections(&self) -> Result<(), StoreError> {
        gated!(
            self,
            "store.rebuild_projections",
            true,
            self.inner.rebuild_projections()
        )
    }
}
