//! `keel plan`: what the next cycle would do at this instant, computed by the
//! cycle's own planning half ([`Worker::plan_orders`]) over the same broker
//! snapshot and store guard state, with every write left out. The cycle's
//! preconditions (kill switch, market hours, working orders, attempts,
//! reconciliation, loss limits) are evaluated, not acted on: a dry run never
//! engages the kill switch, cancels, syncs or appends; it says what would
//! happen.

use crate::{cycle_id, label, set_expired, Worker, WorkerError};
use chrono::{DateTime, Duration, Utc};
use keel_domain::{Symbol, TargetSet};
use keel_planner::Plan;
use std::collections::BTreeSet;

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
    /// Plans `set` as the next cycle would at this instant, reading the broker
    /// and the store only.
    pub async fn dry_run(&self, set: &TargetSet) -> Result<DryRun, WorkerError> {
        let now = self.now();
        let mut holds = Vec::new();
        let mut notes = Vec::new();

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
            Some(s) if s != "queued" => holds.push(format!(
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

        let open = self.store.open_orders().await?;
        if !open.is_empty() {
            let stale_before = now - Duration::seconds(self.cfg.stale_order_secs);
            let working: BTreeSet<String> = self
                .broker
                .open_orders()
                .await?
                .into_iter()
                .map(|o| o.client_order_id)
                .collect();
            let still = open
                .iter()
                .filter(|r| r.created_at >= stale_before && working.contains(&r.client_order_id))
                .count();
            if still > 0 {
                holds.push(format!(
                    "{still} order(s) still working: the cycle would wait for them"
                ));
            } else {
                notes.push(format!(
                    "{} open order(s) would be synced or cancelled as stale first; fills the store \
                     has not seen yet are not in the cooldown and reconciliation inputs",
                    open.len()
                ));
            }
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
        let snapshot = keel_broker::snapshot(self.broker.as_ref(), self.market.as_ref(), &symbols).await?;
        // A store without an account yet is opened from the broker's cash by
        // the cycle, so there is nothing to compare.
        if open.is_empty() && self.store.account().await?.is_some() {
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
