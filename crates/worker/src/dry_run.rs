//! `keel plan`: what the next cycle would do at this instant, computed by the
//! cycle's own code over the same broker snapshot and store guard state.
//!
//! The cycle starts with bookkeeping that writes to the store (opening the
//! account, adopting fills that arrived since the last sync, the EOD snapshot
//! of a session that closed meanwhile), and the plan depends on it: a fill
//! starts a cooldown, an EOD snapshot moves the daily-loss base. So the dry
//! run replays the store's audit log into a private in-memory copy and runs
//! that bookkeeping there, with the broker only read. The real store is never
//! written. The cycle's preconditions (kill switch, market hours, working
//! orders, attempts, reconciliation, loss limits) are evaluated, not acted
//! on: a dry run never engages the kill switch at the store or cancels at the
//! broker; it says what would happen.

use crate::{cycle_id, label, set_expired, Worker, WorkerError};
use chrono::{DateTime, Utc};
use keel_domain::{Symbol, TargetSet};
use keel_planner::Plan;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Audit rows copied per page into the dry run's scratch store.
const COPY_PAGE: u32 = 5_000;

/// The result of [`Worker::dry_run`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    /// The target set planned.
    pub target_set_id: String,
    /// The instant planned for.
    pub at: DateTime<Utc>,
    /// The cycle id the next cycle would use (client order ids derive from it).
    pub cycle_id: String,
    /// The set's attempt number (cycles it already had).
    pub attempt: u32,
    /// True when the next cycle would send exactly `orders`; false when one
    /// of `holds` stops it first.
    pub would_send: bool,
    /// Why the next cycle would send nothing (each says what it would do instead).
    pub holds: Vec<String>,
    /// What the plan cannot see (e.g. fills not yet synced into the store).
    pub notes: Vec<String>,
    /// The plan: orders and every guard decision.
    #[serde(flatten)]
    pub plan: Plan,
}

impl Worker {
    /// Plans `set` as the next cycle would at this instant. Reads the broker
    /// (account, positions, open orders, order lookups, quotes) and the store;
    /// writes neither.
    pub async fn dry_run(&self, set: &TargetSet) -> Result<DryRun, WorkerError> {
        self.scratch().await?.dry_run_on_scratch(set).await
    }

    /// This worker over an in-memory copy of its store (no lease: the copy is
    /// private, and the broker is only read).
    async fn scratch(&self) -> Result<Worker, WorkerError> {
        let copy = keel_store::SqliteStore::open_in_memory().await?;
        let mut after = 0;
        loop {
            let page = self.store.audit_page(after, COPY_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            copy.import_audit(&page).await?;
        }
        Ok(Worker {
            account_id: self.account_id.clone(),
            store: Arc::new(copy),
            broker: self.broker.clone(),
            market: self.market.clone(),
            clock: self.clock.clone(),
            risk: self.risk.clone(),
            cfg: self.cfg.clone(),
            kill_cfg: self.kill_cfg.clone(),
            lease: None,
            last_blocks: std::sync::Mutex::new(None),
        })
    }

    /// The dry run proper; `self.store` is the scratch copy.
    async fn dry_run_on_scratch(&self, set: &TargetSet) -> Result<DryRun, WorkerError> {
        let now = self.now();
        let mut holds = Vec::new();
        let mut notes = Vec::new();

        // The cycle's bookkeeping, as the cycle does it. A broker that lost an
        // acknowledged order engages the (copy's) kill switch, reported below.
        match self.recover().await {
            Ok(()) => {
                self.maybe_eod().await?;
            }
            Err(WorkerError::Refused(_)) => {}
            Err(e) => return Err(e),
        }

        // The flag file engages the switch at the start of a cycle; a dry run
        // plans as if it had, without engaging it.
        let mut kill_override = None;
        match self.store.kill_switch().await? {
            Some(k) => holds.push(format!(
                "kill switch engaged since {} by {}: {} (the cycle cancels open orders and sends nothing)",
                k.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                label(&k.source),
                k.reason
            )),
            None if self.flag_file_present() => {
                holds.push(
                    "flag file present: the cycle would engage the kill switch and send nothing".into(),
                );
                kill_override = Some("flag file present".to_string());
            }
            None => {}
        }
        if !keel_calendar::is_open(now) || self.in_session_buffer(now) {
            holds.push("market closed (or inside the market-hours buffer): the cycle would not trade".into());
        }
        match self.store.target_set_status(&set.id).await? {
            // Queued or executing sets are traded; any other status is final.
            Some(s) if s != "queued" && s != "executing" => holds.push(format!(
                "target set {:?} was already submitted (status: {s}): it would not be traded again",
                set.id
            )),
            _ => {}
        }
        if let Some(first) = self.store.queued_target_sets().await?.first() {
            if first.id != set.id {
                notes.push(format!("target set {:?} is queued ahead of this one", first.id));
            }
        }

        // After the sync, the store's open orders are the ones still working.
        // The cycle cancels the stale ones and plans without them in the same
        // cycle; it waits for fresh ones.
        let stale_before = self.stale_before(now);
        let open = self.store.open_orders().await?;
        let stale: BTreeSet<String> = open
            .iter()
            .filter(|r| r.created_at < stale_before)
            .map(|r| r.client_order_id.clone())
            .collect();
        let fresh = open.len() - stale.len();
        if fresh > 0 {
            holds.push(format!(
                "{fresh} order(s) still working: the cycle would wait for them"
            ));
        }
        if !stale.is_empty() {
            notes.push(format!(
                "the cycle would first cancel {} stale order(s): {}; this plan assumes they are gone",
                stale.len(),
                stale.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }

        if let Some(reason) = set_expired(set, now) {
            holds.push(format!(
                "{reason}: the cycle would complete the set without trading"
            ));
        }
        let attempt = self.store.cycle_count_for_set(&set.id).await?;
        if attempt >= self.cfg.max_attempts {
            holds.push(format!(
                "stopped after {attempt} attempts: the cycle would complete the set without trading"
            ));
        }

        let mut symbols: BTreeSet<Symbol> = set.targets.iter().map(|t| t.symbol.clone()).collect();
        symbols.extend(self.store.positions().await?.into_keys());
        let symbols: Vec<Symbol> = symbols.into_iter().collect();
        let mut snapshot =
            keel_broker::snapshot(self.broker.as_ref(), self.market.as_ref(), &symbols).await?;
        snapshot
            .open_orders
            .retain(|o| !stale.contains(&o.client_order_id));
        if fresh == 0 {
            let differences = self.differences(&snapshot).await?;
            if !differences.is_empty() {
                holds.push(format!(
                    "reconciliation mismatch: {}: the cycle would engage the kill switch",
                    differences.join("; ")
                ));
            }
        }
        if let Some(reason) = self.loss_trigger(&snapshot).await? {
            holds.push(format!("{reason}: the cycle would engage the kill switch"));
        }

        let plan = self
            .plan_orders(set, &snapshot, attempt, now, kill_override)
            .await?;
        Ok(DryRun {
            target_set_id: set.id.clone(),
            at: now,
            cycle_id: cycle_id(set, attempt),
            attempt,
            would_send: holds.is_empty() && !plan.orders.is_empty(),
            holds,
            notes,
            plan,
        })
    }
}
