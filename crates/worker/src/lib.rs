//! The execution cycle (DESIGN.md "Data flow"): intake → snapshot → reconcile →
//! plan → guard → write-ahead intent → submit → track → EOD snapshot.
//!
//! The worker owns no state of its own: everything it knows is in the
//! [`Store`] (rebuilt from the audit log) or at the [`Broker`]. That is what
//! makes a `kill -9` at any point recoverable (invariant 8): on start it looks
//! up every order whose outcome it does not know by client order id and adopts
//! what the broker says, before anything new is sent.

mod config;
mod dry_run;
mod instrumented;
pub mod retry;

pub use config::{KillSwitchConfig, QueuePolicy, WorkerConfig, MAX_STALE_ORDER_SECS};
pub use dry_run::DryRun;
pub use instrumented::Instrumented;
pub use retry::{ReadRetry, Retrying};

use keel_domain::metrics_names as m;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use keel_broker::{Broker, BrokerError, BrokerOrder, MarketData};
use keel_domain::{
    AccountSnapshot, AlertKind, Clock, Decimal, Event, KillSource, Order, OrderStatus, Symbol, TargetSet,
};
use keel_planner::{GuardState, PlanInput, RiskConfig};
use keel_store::{Lease, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Why a worker operation failed. Every variant means "fail closed": nothing
/// further is sent in this cycle.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The store could not be read or written.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The broker failed beyond the retry budget, or its state is unknown.
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    /// A target set was refused.
    #[error("{0}")]
    Refused(String),
}

/// What one call to [`Worker::cycle`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum CycleOutcome {
    /// The kill switch is engaged; open orders were cancelled, nothing new sent.
    Killed(String),
    /// The market is closed now.
    MarketClosed,
    /// No target set is waiting.
    Idle,
    /// Orders of the current target set are still working.
    Waiting(String),
    /// Orders were planned and sent.
    Submitted {
        /// The cycle's id.
        cycle_id: String,
        /// Orders the broker accepted.
        sent: u32,
        /// Orders the broker rejected.
        rejected: u32,
        /// Orders planned but blocked by guards.
        blocked: u32,
    },
    /// The target set needs nothing more (all deltas inside the no-trade band, or gave up).
    Completed(String),
    /// The venue will not take new risk now (`Broker::trading_blocks`):
    /// nothing was sent or cancelled, the reasons are in the audit log.
    VenueBlocked(Vec<String>),
}

/// Where a submitted target set ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Newly queued for the next cycle.
    Queued,
    /// A set with this id was already received: nothing changed.
    AlreadyKnown(String),
}

/// The execution worker for one account.
pub struct Worker {
    account_id: String,
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    market: Arc<dyn MarketData>,
    clock: Arc<dyn Clock>,
    risk: RiskConfig,
    cfg: WorkerConfig,
    kill_cfg: KillSwitchConfig,
    /// The single-writer lease this worker trades under, if any.
    lease: Option<Arc<Lease>>,
    /// The venue's blocks last written to the audit log, so a venue blocked
    /// all day is recorded when its reasons change, not every cycle.
    last_blocks: std::sync::Mutex<Option<Vec<String>>>,
}

impl Worker {
    /// A worker over `store`, trading at `broker` on `market`'s prices; call
    /// [`Worker::recover`] before the first cycle. Both venues' reads are
    /// retried within `cfg.read_retry_budget` ([`retry`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        account_id: impl Into<String>,
        store: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        market: Arc<dyn MarketData>,
        clock: Arc<dyn Clock>,
        risk: RiskConfig,
        cfg: WorkerConfig,
        kill_cfg: KillSwitchConfig,
    ) -> Self {
        let policy = ReadRetry {
            budget: cfg.read_retry_budget,
            backoff_ms: cfg.retry_backoff_ms,
        };
        Self {
            account_id: account_id.into(),
            store,
            broker: Arc::new(Retrying::new(broker, policy)),
            market: Arc::new(Retrying::new(market, policy)),
            clock,
            risk,
            cfg,
            kill_cfg,
            lease: None,
            last_blocks: std::sync::Mutex::new(None),
        }
    }

    /// Trades only while `lease` is held: its local deadline is checked before
    /// every cycle, order sync, end-of-day snapshot and before every broker
    /// submit and cancel, so a worker that lost the lease (paused process,
    /// partitioned network) stops talking to the broker before another worker
    /// can take over. Pair it with a store that fences writes with the same
    /// lease ([`keel_store::Lease::fenced_store`]), so the database refuses
    /// whatever a stale worker still tries to write.
    pub fn with_lease(mut self, lease: Arc<Lease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The lease this worker trades under, if any.
    pub fn lease(&self) -> Option<&Arc<Lease>> {
        self.lease.as_ref()
    }

    /// `Err` (fail closed, nothing sent) when trading under a lease that is no
    /// longer held.
    fn lease_held(&self) -> Result<(), WorkerError> {
        match &self.lease {
            Some(l) => Ok(l.check()?),
            None => Ok(()),
        }
    }

    /// The store this worker writes.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The broker this worker trades with.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Where this worker's prices, volumes and asset facts come from.
    pub fn market(&self) -> &Arc<dyn MarketData> {
        &self.market
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Opens the account in the store from the broker's cash on first use, then
    /// resolves every order whose outcome the store does not know.
    pub async fn recover(&self) -> Result<(), WorkerError> {
        if self.store.account().await?.is_none() {
            let acct = self.broker.account().await?;
            self.store
                .append(&Event::AccountOpened {
                    account_id: self.account_id.clone(),
                    cash: acct.cash,
                    at: self.now(),
                })
                .await?;
        }
        self.sync_orders().await
    }

    /// Looks up every non-final order at the broker by client order id and
    /// records what happened to it (acceptance, fills, final state). An intent
    /// the broker has never seen is closed: it was never sent, so it can
    /// never fill, and the next cycle re-plans from the broker's positions.
    pub async fn sync_orders(&self) -> Result<(), WorkerError> {
        self.lease_held()?;
        for row in self.store.open_orders().await? {
            match self.broker.order_by_client_id(&row.client_order_id).await? {
                Some(bo) => self.adopt(&bo).await?,
                None if row.status == OrderStatus::Intent => {
                    self.store
                        .append(&Event::OrderClosed {
                            client_order_id: row.client_order_id.clone(),
                            status: OrderStatus::Canceled,
                            reason: Some("never reached the broker".into()),
                            at: self.now(),
                        })
                        .await?;
                }
                None => {
                    // The broker forgot an order it once acknowledged: unknown state, fail closed.
                    // Recorded only: cancelling here would recurse into this sync; the next
                    // cycle sees the engaged switch and cancels everything.
                    let reason = format!("broker lost acknowledged order {}", row.client_order_id);
                    self.record_kill(&reason, KillSource::Automatic).await?;
                    return Err(WorkerError::Refused(reason));
                }
            }
        }
        Ok(())
    }

    /// Records the broker's view of one order: acceptance, every fill (by fill id, so
    /// replays are no-ops), and its final state.
    async fn adopt(&self, bo: &BrokerOrder) -> Result<(), WorkerError> {
        let now = self.now();
        let mut events = vec![Event::OrderAccepted {
            client_order_id: bo.client_order_id.clone(),
            broker_order_id: bo.broker_order_id.clone(),
            at: bo.submitted_at,
        }];
        for f in &bo.fills {
            events.push(Event::OrderFilled {
                client_order_id: bo.client_order_id.clone(),
                fill_id: f.fill_id.clone(),
                symbol: bo.symbol.clone(),
                side: bo.side,
                qty: f.qty,
                price: f.price,
                at: f.at,
            });
        }
        if bo.status.is_final() {
            events.push(Event::OrderClosed {
                client_order_id: bo.client_order_id.clone(),
                status: bo.status,
                reason: bo.reason.clone(),
                at: now,
            });
        }
        let applied = self.store.append_batch(&events).await?;
        // Count only what was new: adopting the same order twice must not double-count.
        for (ev, seq) in events.iter().zip(&applied) {
            match (ev, seq) {
                (
                    Event::OrderFilled {
                        side,
                        qty,
                        price,
                        fill_id,
                        ..
                    },
                    Some(_),
                ) => {
                    tracing::info!(
                        client_order_id = %bo.client_order_id,
                        symbol = %bo.symbol,
                        side = side.as_str(),
                        qty = %qty.normalize(),
                        price = %price.normalize(),
                        fill_id = %fill_id,
                        "order filled"
                    );
                    metrics::counter!(m::FILLS, m::LABEL_SIDE => side.as_str()).increment(1)
                }
                (
                    Event::OrderClosed {
                        status: OrderStatus::Filled,
                        ..
                    },
                    Some(_),
                ) => metrics::counter!(m::ORDERS_FILLED, m::LABEL_SIDE => bo.side.as_str()).increment(1),
                _ => {}
            }
        }
        Ok(())
    }

    /// Validated target set → queue. A set id seen before changes nothing.
    pub async fn submit_target_set(&self, set: TargetSet) -> Result<SubmitOutcome, WorkerError> {
        if let Some(status) = self.store.target_set_status(&set.id).await? {
            return Ok(SubmitOutcome::AlreadyKnown(status));
        }
        let id = set.id.clone();
        match self
            .store
            .append(&Event::TargetSetQueued { set, at: self.now() })
            .await?
        {
            Some(_) => {
                // Closed at once, so the dashboard and status show it without waiting for a cycle.
                self.supersede_older().await?;
                Ok(SubmitOutcome::Queued)
            }
            None => Ok(SubmitOutcome::AlreadyKnown(
                self.store
                    .target_set_status(&id)
                    .await?
                    .unwrap_or_else(|| "queued".into()),
            )),
        }
    }

    /// The set the next cycle trades. Under [`QueuePolicy::Newest`] that is
    /// the newest queued or executing set — latest `as_of`, a tie broken by
    /// the later queue time — and every other one is closed as superseded
    /// (audited, once per set). Under [`QueuePolicy::Fifo`] it is the oldest
    /// queued and nothing is closed.
    pub async fn supersede_older(&self) -> Result<Option<TargetSet>, WorkerError> {
        // Oldest queued first (the store's order), so a later index is a later queue time.
        let mut queued = self.store.queued_target_sets().await?;
        if self.cfg.queue_policy == QueuePolicy::Fifo || queued.len() < 2 {
            return Ok(queued.into_iter().next());
        }
        let newest = queued
            .iter()
            .enumerate()
            .max_by_key(|(i, s)| (s.as_of, *i))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let keep = queued.swap_remove(newest);
        let now = self.now();
        let events: Vec<Event> = queued
            .iter()
            .map(|old| Event::TargetSetSuperseded {
                target_set_id: old.id.clone(),
                by: keep.id.clone(),
                at: now,
            })
            .collect();
        self.store.append_batch(&events).await?;
        for old in &queued {
            tracing::info!(superseded = %old.id, by = %keep.id, "target set superseded");
        }
        Ok(Some(keep))
    }

    /// Engages the kill switch (sticky, audited) and cancels every open order.
    /// Engaging an engaged switch only re-cancels.
    pub async fn engage_kill(&self, reason: &str, source: KillSource) -> Result<(), WorkerError> {
        self.record_kill(reason, source).await?;
        self.cancel_open_orders("kill_switch", |_| true).await
    }

    /// Appends the engagement (once: an engaged switch keeps its first reason).
    async fn record_kill(&self, reason: &str, source: KillSource) -> Result<(), WorkerError> {
        if self.store.kill_switch().await?.is_none() {
            self.store
                .append(&Event::KillSwitchEngaged {
                    reason: reason.to_string(),
                    source,
                    at: self.now(),
                })
                .await?;
            tracing::warn!(reason = %keel_domain::log_safe(reason), source = %label(&source), "kill switch engaged");
            metrics::counter!(m::KILL_SWITCH_ENGAGEMENTS, m::LABEL_SOURCE => label(&source)).increment(1);
        }
        Ok(())
    }

    /// Releases the kill switch (operator action only).
    pub async fn release_kill(&self, reason: &str, source: KillSource) -> Result<bool, WorkerError> {
        if self.store.kill_switch().await?.is_none() {
            return Ok(false);
        }
        self.store
            .append(&Event::KillSwitchReleased {
                reason: reason.to_string(),
                source,
                at: self.now(),
            })
            .await?;
        tracing::warn!(reason = %keel_domain::log_safe(reason), source = %label(&source), "kill switch released");
        Ok(true)
    }

    async fn cancel_open_orders(
        &self,
        why: &'static str,
        which: impl Fn(&keel_store::OrderRow) -> bool,
    ) -> Result<(), WorkerError> {
        let mut first_err = None;
        for row in self.store.open_orders().await? {
            if !which(&row) {
                continue;
            }
            self.lease_held()?;
            match self.broker.cancel(&row.client_order_id).await {
                Ok(()) => metrics::counter!(m::ORDERS_CANCELED, m::LABEL_REASON => why).increment(1),
                Err(e) => {
                    tracing::warn!(order = %row.client_order_id, error = %e, "cancel failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        self.sync_orders().await?;
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Inside the market-hours guard's opening or closing buffer. Such a cycle
    /// would have every order blocked and still use up one of the set's attempts,
    /// so it is not run at all.
    fn in_session_buffer(&self, now: DateTime<Utc>) -> bool {
        let mh = &self.risk.guards.market_hours;
        let Some(s) = keel_calendar::session_containing(now) else {
            return false;
        };
        let secs = |v: u64| Duration::seconds(v.min(86_400) as i64);
        mh.enabled && (now < s.open + secs(mh.after_open_secs) || now >= s.close - secs(mh.before_close_secs))
    }

    /// True when the configured kill-switch flag file exists (`keel run`
    /// looks every tick, market open or not).
    pub fn flag_file_present(&self) -> bool {
        self.kill_cfg.flag_file.as_ref().is_some_and(|p| p.exists())
    }

    /// Orders created before this are stale. Clamped and checked: no
    /// configured value can overflow the subtraction.
    fn stale_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let stale_age =
            Duration::try_seconds(self.cfg.stale_order_secs.clamp(0, config::MAX_STALE_ORDER_SECS))
                .unwrap_or_else(Duration::zero);
        now.checked_sub_signed(stale_age).unwrap_or(now)
    }

    /// Runs one execution cycle now.
    pub async fn cycle(&self) -> Result<CycleOutcome, WorkerError> {
        let start = std::time::Instant::now();
        let r = self.cycle_inner().await;
        metrics::histogram!(m::CYCLE_DURATION).record(start.elapsed().as_secs_f64());
        let outcome = match &r {
            Ok(CycleOutcome::Killed(_)) => "killed",
            Ok(CycleOutcome::MarketClosed) => "market_closed",
            Ok(CycleOutcome::Idle) => "idle",
            Ok(CycleOutcome::Waiting(_)) => "waiting",
            Ok(CycleOutcome::Submitted { .. }) => "submitted",
            Ok(CycleOutcome::Completed(_)) => "completed",
            Ok(CycleOutcome::VenueBlocked(_)) => "venue_blocked",
            Err(_) => "error",
        };
        metrics::counter!(m::CYCLES, m::LABEL_OUTCOME => outcome).increment(1);
        r
    }

    async fn cycle_inner(&self) -> Result<CycleOutcome, WorkerError> {
        self.lease_held()?;
        self.recover().await?;
        // A restart after an outage over the close writes that session's snapshot first.
        self.maybe_eod().await?;
        if self.flag_file_present() {
            self.engage_kill("flag file present", KillSource::FlagFile)
                .await?;
        }
        if let Some(k) = self.store.kill_switch().await? {
            self.cancel_open_orders("kill_switch", |_| true).await?;
            return Ok(CycleOutcome::Killed(k.reason));
        }
        let now = self.now();
        if !keel_calendar::is_open(now) || self.in_session_buffer(now) {
            return Ok(CycleOutcome::MarketClosed);
        }
        // Sets may also be queued by another process (inbox, control API of
        // another holder), so the newest rule is applied here too.
        let Some(set) = self.supersede_older().await? else {
            return Ok(CycleOutcome::Idle);
        };
        // Before anything is sent or cancelled: a venue that will not take new
        // risk (account flags, its clock against keel's calendar) stops the cycle.
        let blocks = self.broker.trading_blocks().await?;
        if !blocks.is_empty() {
            self.record_blocks(&blocks).await?;
            return Ok(CycleOutcome::VenueBlocked(blocks));
        }
        self.forget_blocks();

        // Stale working orders are cancelled, not stacked; fresh ones are waited for.
        let stale_before = self.stale_before(now);
        let open = self.store.open_orders().await?;
        if !open.is_empty() {
            self.cancel_open_orders("stale", |r| r.created_at < stale_before)
                .await?;
            let still = self.store.open_orders().await?;
            if !still.is_empty() {
                return Ok(CycleOutcome::Waiting(format!(
                    "{} order(s) still working",
                    still.len()
                )));
            }
        }

        let attempt = self.store.cycle_count_for_set(&set.id).await?;
        if let Some(reason) = set_expired(&set, now) {
            if attempt == 0 {
                self.refused(&set, &reason).await?;
            }
            return self.complete(&set, &reason).await;
        }
        if attempt >= self.cfg.max_attempts {
            return self
                .complete(&set, &format!("stopped after {attempt} attempts"))
                .await;
        }

        let snapshot = self.reconciled_snapshot(&set).await?;
        if let Some(reason) = self.loss_trigger(&snapshot).await? {
            self.engage_kill(&reason, KillSource::Automatic).await?;
            return Ok(CycleOutcome::Killed(reason));
        }

        let plan = self.plan_orders(&set, &snapshot, attempt, now, None).await?;
        record_guard_metrics(&plan);
        let cycle_id = cycle_id(&set, attempt);
        let decisions = serde_json::to_value(&plan).unwrap_or(serde_json::Value::Null);
        let blocked = plan.decisions.iter().filter(|d| !d.is_sent()).count() as u32;
        self.store
            .append_batch(&[
                Event::CycleStarted {
                    cycle_id: cycle_id.clone(),
                    target_set_id: set.id.clone(),
                    attempt,
                    at: now,
                },
                Event::GuardDecisions {
                    cycle_id: cycle_id.clone(),
                    decisions,
                    at: now,
                },
            ])
            .await?;

        if attempt == 0 && !plan.plan_blocks.is_empty() {
            let why: Vec<String> = plan
                .plan_blocks
                .iter()
                .map(|b| format!("{}: {}", b.reason, b.detail))
                .collect();
            self.refused(&set, &why.join("; ")).await?;
        }
        if plan.orders.is_empty() {
            let outcome = if blocked == 0 {
                "nothing to do"
            } else {
                "every order blocked"
            };
            self.finish_cycle(&cycle_id, outcome).await?;
            if blocked == 0 {
                return self.complete(&set, "at target within the no-trade band").await;
            }
            return Ok(CycleOutcome::Submitted {
                cycle_id,
                sent: 0,
                rejected: 0,
                blocked,
            });
        }

        let t = self.send_all(&cycle_id, &plan.orders, &snapshot).await?;
        self.finish_cycle(
            &cycle_id,
            &format!(
                "sent {}, rejected {}, unknown outcomes {}, unresolved {}",
                t.sent, t.rejected, t.unknown_outcomes, t.unresolved
            ),
        )
        .await?;
        if t.rejected >= self.kill_cfg.reject_storm {
            let reason = format!("reject storm: {} rejects in cycle {cycle_id}", t.rejected);
            self.engage_kill(&reason, KillSource::Automatic).await?;
        } else if t.unknown_outcomes + t.unresolved >= self.kill_cfg.unknown_outcome_limit {
            let reason = format!(
                "repeated unknown outcomes: {} unknown, {} unresolved in cycle {cycle_id}",
                t.unknown_outcomes, t.unresolved
            );
            self.engage_kill(&reason, KillSource::Automatic).await?;
        }
        Ok(CycleOutcome::Submitted {
            cycle_id,
            sent: t.sent,
            rejected: t.rejected,
            blocked,
        })
    }

    /// Audits the venue's blocks when they differ from the last ones recorded.
    async fn record_blocks(&self, blocks: &[String]) -> Result<(), WorkerError> {
        let same = self
            .last_blocks
            .lock()
            .map(|l| l.as_deref() == Some(blocks))
            .unwrap_or(false);
        if same {
            return Ok(());
        }
        tracing::warn!(reasons = ?blocks, "venue blocks new risk; nothing sent this cycle");
        self.store
            .append(&Event::TradingBlocked {
                reasons: blocks.to_vec(),
                at: self.now(),
            })
            .await?;
        if let Ok(mut l) = self.last_blocks.lock() {
            *l = Some(blocks.to_vec());
        }
        Ok(())
    }

    fn forget_blocks(&self) {
        if let Ok(mut l) = self.last_blocks.lock() {
            *l = None;
        }
    }

    async fn finish_cycle(&self, cycle_id: &str, outcome: &str) -> Result<(), WorkerError> {
        self.store
            .append(&Event::CycleFinished {
                cycle_id: cycle_id.to_string(),
                outcome: outcome.to_string(),
                at: self.now(),
            })
            .await?;
        Ok(())
    }

    /// A set keel will not trade as a whole (a whole-plan block on its first
    /// attempt, or expired before one): someone should know the model's
    /// portfolio is not being traded. One alert per set (keyed by its id).
    async fn refused(&self, set: &TargetSet, why: &str) -> Result<(), WorkerError> {
        self.store
            .append(&Event::Alert {
                alert: AlertKind::TargetSetRefused,
                detail: format!(
                    "account {}: target set {} refused: {why}",
                    self.account_id, set.id
                ),
                key: format!("{}:{}", self.account_id, set.id),
                at: self.now(),
            })
            .await?;
        Ok(())
    }

    async fn complete(&self, set: &TargetSet, why: &str) -> Result<CycleOutcome, WorkerError> {
        self.store
            .append(&Event::TargetSetCompleted {
                target_set_id: set.id.clone(),
                at: self.now(),
            })
            .await?;
        Ok(CycleOutcome::Completed(format!("{}: {why}", set.id)))
    }

    /// Snapshot the broker and check it against the store. A mismatch is given
    /// one more chance after re-syncing orders (a fill may land between the
    /// two reads); if it persists, the kill switch is engaged.
    async fn reconciled_snapshot(&self, set: &TargetSet) -> Result<AccountSnapshot, WorkerError> {
        let mut differences = Vec::new();
        let mut scope = None;
        for _ in 0..2 {
            self.sync_orders().await?;
            let mut symbols: BTreeSet<Symbol> = set.targets.iter().map(|t| t.symbol.clone()).collect();
            symbols.extend(self.store.positions().await?.into_keys());
            let symbols: Vec<Symbol> = symbols.into_iter().collect();
            let snap = keel_broker::snapshot(self.broker.as_ref(), self.market.as_ref(), &symbols).await?;
            differences = self.differences(&snap).await?;
            scope = Some(self.recon_scope(&snap).await?);
            if differences.is_empty() {
                // Recorded once per trading cycle (which is audited anyway), so
                // the dashboard can say when keel last checked and what.
                self.store
                    .append(&Event::Reconciled {
                        ok: true,
                        differences: Vec::new(),
                        scope,
                        at: self.now(),
                    })
                    .await?;
                metrics::counter!(m::RECONCILIATIONS, m::LABEL_OUTCOME => "ok").increment(1);
                return Ok(snap);
            }
        }
        self.store
            .append(&Event::Reconciled {
                ok: false,
                differences: differences.clone(),
                scope,
                at: self.now(),
            })
            .await?;
        metrics::counter!(m::RECONCILIATIONS, m::LABEL_OUTCOME => "mismatch").increment(1);
        let reason = format!("reconciliation mismatch: {}", differences.join("; "));
        self.engage_kill(&reason, KillSource::Automatic).await?;
        Err(WorkerError::Refused(reason))
    }

    /// What [`Worker::differences`] compares for `snap`.
    async fn recon_scope(&self, snap: &AccountSnapshot) -> Result<keel_domain::ReconScope, WorkerError> {
        let mine = self.store.positions().await?;
        let mut symbols: BTreeSet<&Symbol> = mine.keys().collect();
        symbols.extend(snap.positions.keys());
        Ok(keel_domain::ReconScope {
            symbols: u32::try_from(symbols.len()).unwrap_or(u32::MAX),
            store_cash: self.store.cash().await?,
            broker_cash: snap.cash,
            cash_tolerance: self.cfg.reconcile_cash_tolerance,
            qty_tolerance: self.cfg.reconcile_qty_tolerance,
        })
    }

    /// Differences between the store's positions and cash and the broker's snapshot.
    pub async fn differences(&self, snap: &AccountSnapshot) -> Result<Vec<String>, WorkerError> {
        let mut out = Vec::new();
        let cash = self.store.cash().await?;
        if (cash - snap.cash).abs() > self.cfg.reconcile_cash_tolerance {
            out.push(format!(
                "cash: store {}, broker {}",
                cash.normalize(),
                snap.cash.normalize()
            ));
        }
        let mine = self.store.positions().await?;
        let mut symbols: BTreeSet<&Symbol> = mine.keys().collect();
        symbols.extend(snap.positions.keys());
        for s in symbols {
            let a = mine.get(s).map(|p| p.qty).unwrap_or_default();
            let b = snap.held(s);
            if (a - b).abs() > self.cfg.reconcile_qty_tolerance {
                out.push(format!("{s}: store {}, broker {}", a.normalize(), b.normalize()));
            }
        }
        Ok(out)
    }

    async fn loss_trigger(&self, snap: &AccountSnapshot) -> Result<Option<String>, WorkerError> {
        let eods = self.store.eod_snapshots().await?;
        let equity = snap.marked_equity();
        if let Some(last) = eods.last() {
            if last.equity > Decimal::ZERO {
                let loss = (last.equity - equity) / last.equity;
                if loss > self.kill_cfg.daily_loss_limit {
                    return Ok(Some(format!(
                        "daily loss {}% exceeds limit {}% (equity {equity}, previous close {})",
                        (loss * Decimal::ONE_HUNDRED).round_dp(2),
                        self.kill_cfg.daily_loss_limit * Decimal::ONE_HUNDRED,
                        last.equity
                    )));
                }
            }
        }
        if let Some(peak) = eods.iter().map(|e| e.equity).max() {
            if peak > Decimal::ZERO {
                let dd = (peak - equity) / peak;
                if dd > self.kill_cfg.drawdown_limit {
                    return Ok(Some(format!(
                        "drawdown {}% exceeds limit {}% (equity {equity}, peak {peak})",
                        (dd * Decimal::ONE_HUNDRED).round_dp(2),
                        self.kill_cfg.drawdown_limit * Decimal::ONE_HUNDRED
                    )));
                }
            }
        }
        Ok(None)
    }

    /// The planning half of a cycle, shared with [`Worker::dry_run`] so
    /// `keel plan` and `keel cycle` cannot disagree: guard state from the
    /// store and the market, then the pure planner. `kill_override` is the
    /// reason a kill switch the store does not show yet would be engaged by
    /// (the flag file, in a dry run that must not engage it).
    async fn plan_orders(
        &self,
        set: &TargetSet,
        snapshot: &AccountSnapshot,
        attempt: u32,
        now: DateTime<Utc>,
        kill_override: Option<String>,
    ) -> Result<keel_planner::Plan, WorkerError> {
        let mut state = self.guard_state(set, snapshot, now).await?;
        if state.kill_switch.is_none() {
            state.kill_switch = kill_override;
        }
        let input = PlanInput {
            account_id: &self.account_id,
            targets: set,
            snapshot,
            now,
            attempt,
            state: &state,
        };
        Ok(keel_planner::plan(&input, &self.risk))
    }

    async fn guard_state(
        &self,
        set: &TargetSet,
        snap: &AccountSnapshot,
        now: DateTime<Utc>,
    ) -> Result<GuardState, WorkerError> {
        let mut executed = self.store.executed_target_set_ids().await?;
        executed.remove(&set.id);
        let window = Duration::seconds(self.risk.guards.order_rate.window_secs.min(86_400 * 366) as i64);
        let symbols: Vec<Symbol> = snap.quotes.keys().cloned().collect();
        let brake = &self.risk.guards.volatility_brake;
        // An unknown reference symbol yields no closes: the brake then fails closed to 0.
        let reference_closes = match Symbol::new(&brake.reference_symbol) {
            Ok(s) if brake.enabled && brake.builtin => {
                self.market.daily_closes(&s, brake.closes_needed()).await?
            }
            _ => Vec::new(),
        };
        Ok(GuardState {
            kill_switch: self.store.kill_switch().await?.map(|k| k.reason),
            last_trade_at: self.store.last_trade_times().await?,
            last_account_rebalance_at: self.store.cycles(1).await?.first().map(|c| c.started_at),
            recent_order_times: self.store.order_times_since(now - window).await?,
            executed_target_set_ids: executed,
            adv: self.market.adv(&symbols).await?,
            reference_closes,
            external_vol_scale: None,
            assets: Some(self.market.assets(&symbols).await?),
        })
    }

    /// Write-ahead intent, then submit, for each order in plan order (sells first).
    async fn send_all(
        &self,
        cycle_id: &str,
        orders: &[Order],
        snap: &AccountSnapshot,
    ) -> Result<Tally, WorkerError> {
        let mut tally = Tally::default();
        for order in orders {
            // The kill switch may be engaged mid-cycle (HTTP, another process): check before each send.
            if self.store.kill_switch().await?.is_some() || self.flag_file_present() {
                break;
            }
            let quote = snap.quotes.get(&order.symbol);
            let arrival = quote.map(|q| q.reference()).unwrap_or_default();
            // Only a two-sided, uncrossed quote has a spread to pay.
            let spread = quote
                .filter(|q| q.bid > Decimal::ZERO && q.ask >= q.bid)
                .and_then(|q| q.ask.checked_sub(q.bid));
            self.store
                .append(&Event::OrderIntent {
                    cycle_id: cycle_id.to_string(),
                    order: order.clone(),
                    arrival_price: arrival,
                    arrival_spread: spread,
                    at: self.now(),
                })
                .await?;
            // The last look before the order leaves the process: a worker that
            // lost its lease must not send, even with its intent recorded (the
            // next holder finds the intent, sees the broker never got it, and
            // closes it).
            self.lease_held()?;
            match self.submit_one(order, &mut tally).await? {
                Sent::Accepted => {
                    tracing::info!(
                        client_order_id = %order.client_order_id,
                        symbol = %order.symbol,
                        side = order.side.as_str(),
                        qty = %order.qty.normalize(),
                        limit_price = %order.limit_price.map(|p| p.normalize().to_string()).unwrap_or_else(|| "market".into()),
                        "order sent"
                    );
                    tally.sent += 1;
                    metrics::counter!(m::ORDERS_SENT, m::LABEL_SIDE => order.side.as_str()).increment(1);
                }
                Sent::Rejected => {
                    tracing::warn!(
                        client_order_id = %order.client_order_id,
                        symbol = %order.symbol,
                        side = order.side.as_str(),
                        qty = %order.qty.normalize(),
                        "order rejected by the broker"
                    );
                    tally.rejected += 1;
                    metrics::counter!(m::ORDERS_REJECTED, m::LABEL_REASON => "broker_reject").increment(1);
                }
                Sent::Unresolved => {
                    tally.unresolved += 1;
                    // Fail closed: the broker's state is unknown, send nothing more this cycle.
                    break;
                }
            }
        }
        Ok(tally)
    }

    async fn submit_one(&self, order: &Order, tally: &mut Tally) -> Result<Sent, WorkerError> {
        let mut tries = 0;
        loop {
            // Every send, resends included, happens under a held lease.
            self.lease_held()?;
            match self.broker.submit(order).await {
                Ok(bo) => {
                    self.adopt(&bo).await?;
                    return Ok(Sent::Accepted);
                }
                Err(BrokerError::Rejected { reason }) => {
                    self.store
                        .append(&Event::OrderClosed {
                            client_order_id: order.client_order_id.clone(),
                            status: OrderStatus::Rejected,
                            reason: Some(reason),
                            at: self.now(),
                        })
                        .await?;
                    return Ok(Sent::Rejected);
                }
                Err(e @ (BrokerError::DuplicateClientOrderId | BrokerError::UnknownOutcome { .. })) => {
                    if matches!(e, BrokerError::UnknownOutcome { .. }) {
                        tally.unknown_outcomes += 1;
                    }
                    // It may have arrived: ask before anything else is sent for this symbol.
                    match self.broker.order_by_client_id(&order.client_order_id).await {
                        Ok(Some(bo)) => {
                            self.adopt(&bo).await?;
                            return Ok(if bo.status == OrderStatus::Rejected {
                                Sent::Rejected
                            } else {
                                Sent::Accepted
                            });
                        }
                        Ok(None) if tries < self.cfg.retry_budget => {
                            tracing::info!(order = %order.client_order_id, error = %e, "not at broker, resending");
                        }
                        Ok(None) | Err(_) => return Ok(Sent::Unresolved),
                    }
                }
                Err(BrokerError::Retryable { message, retry_after }) if tries < self.cfg.retry_budget => {
                    tracing::info!(order = %order.client_order_id, %message, "retryable broker error");
                    let wait = retry_after
                        .unwrap_or(std::time::Duration::from_millis(self.cfg.retry_backoff_ms))
                        .min(std::time::Duration::from_millis(
                            self.cfg.retry_backoff_ms.clamp(1, 60_000).saturating_mul(25),
                        ));
                    tokio::time::sleep(wait).await;
                }
                Err(_) => return Ok(Sent::Unresolved),
            }
            tries += 1;
        }
    }

    /// Records the end-of-day snapshot for the session that closed most recently
    /// at or before now, exactly once per date.
    pub async fn maybe_eod(&self) -> Result<Option<NaiveDate>, WorkerError> {
        self.lease_held()?;
        let now = self.now();
        // The latest session that has closed by now — not just today's: keel may have
        // been down over the close (an evening outage, a weekend), and that session
        // still gets its one snapshot, taken at the first chance.
        let latest = keel_calendar::previous_session_before(now.date_naive() + Duration::days(1));
        let session = if latest.close <= now {
            latest
        } else {
            keel_calendar::previous_session_before(latest.date)
        };
        if self.store.has_eod(session.date).await? {
            return Ok(None);
        }
        // Nothing to snapshot for a session that closed before the account existed.
        if let Some(acct) = self.store.account().await? {
            if session.close < acct.opened_at {
                return Ok(None);
            }
        }
        // Only the most recent missing session: an older one's close is no longer observable.
        if let Some(last) = self.store.eod_snapshots().await?.last() {
            if last.date > session.date {
                return Ok(None);
            }
        }
        self.sync_orders().await?;
        let positions = self.store.positions().await?;
        let symbols: Vec<Symbol> = positions.keys().cloned().collect();
        let quotes = self.market.quotes(&symbols).await?;
        let cash = self.store.cash().await?;
        // The one valuation (keel_domain::valuation): the close's quotes, else
        // the recorded price, else cost — the rule status and the dashboard use.
        let eods = self.store.eod_snapshots().await?;
        let recorded =
            keel_store::marks::recorded_marks(self.store.as_ref(), positions.keys(), &eods).await?;
        let v =
            keel_domain::valuation::mark(cash, positions.iter().map(|(s, p)| (s, p.qty, p.avg_cost)), |s| {
                quotes
                    .get(s)
                    .filter(|q| q.reference() > Decimal::ZERO)
                    .map(keel_domain::valuation::Mark::of_quote)
                    .or_else(|| recorded.get(s).cloned())
            });
        let rows: Vec<(Symbol, Decimal, Decimal)> = v
            .positions
            .iter()
            .map(|p| (p.symbol.clone(), p.qty, p.mark.price))
            .collect();
        let (equity, gross, net) = (v.equity, v.gross, v.net);
        let prev = match self.store.eod_snapshots().await?.last() {
            Some(e) => e.equity,
            None => self
                .store
                .account()
                .await?
                .map(|a| a.opening_cash)
                .unwrap_or(equity),
        };
        let day_fills = self
            .store
            .fills(&keel_store::FillFilter {
                day: Some(session.date),
                ..Default::default()
            })
            .await?;
        let slippage: Vec<Decimal> = day_fills.iter().filter_map(|f| f.slippage_bps).collect();
        let slippage_mean_bps = (!slippage.is_empty())
            .then(|| (slippage.iter().copied().sum::<Decimal>() / Decimal::from(slippage.len())).round_dp(4));
        self.store
            .append(&Event::EodSnapshot {
                date: session.date,
                equity,
                cash,
                gross_exposure: gross,
                net_exposure: net,
                day_pnl: equity - prev,
                positions: rows,
                slippage_mean_bps,
                at: now,
            })
            .await?;
        Ok(Some(session.date))
    }
}

fn label<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn record_guard_metrics(plan: &keel_planner::Plan) {
    for d in &plan.decisions {
        for s in &d.steps {
            metrics::counter!(m::GUARD_RESIZES, m::LABEL_GUARD => label(&s.guard), m::LABEL_REASON => s.reason.as_str())
                .increment(1);
        }
        if let keel_planner::Outcome::Block { guard, reason, .. } = &d.outcome {
            metrics::counter!(m::GUARD_BLOCKS, m::LABEL_GUARD => label(guard), m::LABEL_REASON => reason.as_str())
                .increment(1);
        }
    }
}

enum Sent {
    Accepted,
    Rejected,
    Unresolved,
}

/// Counts of one cycle's submissions.
#[derive(Debug, Default)]
struct Tally {
    sent: u32,
    rejected: u32,
    /// `UnknownOutcome` answers received (each then resolved by lookup, or not).
    unknown_outcomes: u32,
    /// Orders whose fate is still unknown after the retry budget.
    unresolved: u32,
}

/// A cycle's id: its target set and attempt number (client order ids derive from both).
fn cycle_id(set: &TargetSet, attempt: u32) -> String {
    format!("{}#{}", set.id, attempt)
}

fn set_expired(set: &TargetSet, now: DateTime<Utc>) -> Option<String> {
    set.valid_until
        .filter(|v| *v < now)
        .map(|v| format!("valid_until {v} has passed"))
}

/// Symbols → weights of a target set, for reporting.
pub fn weights(set: &TargetSet) -> BTreeMap<Symbol, Decimal> {
    set.targets.iter().map(|t| (t.symbol.clone(), t.weight)).collect()
}
