//! The invariant checker, run after every step.
//!
//! It keeps its own model of the account, rebuilt only from the audit log
//! (read incrementally, every row re-hashed), and compares it with the
//! store's projections, the paper broker's books and what the simulator
//! recorded at the venue boundary. Nothing it checks is taken from the code
//! under test on trust: the kill switch state comes from the log, the
//! volatility-brake scale from the closes the simulator served, market hours
//! from the calendar and the intended configuration.

use crate::broker::VenueSubmit;
use crate::trace::Trace;
use chrono::{DateTime, NaiveDate, Utc};
use keel_broker::PaperBroker;
use keel_domain::{client_order_id, Event, KillSource, OrderStatus, Side, Symbol};
use keel_planner::guards::volatility_brake::realized_vol;
use keel_planner::guards::VolatilityBrake;
use keel_planner::{Outcome, Plan, RiskConfig};
use keel_store::{AuditRow, FillFilter, SqliteStore, Store, GENESIS_HASH};
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::{BTreeMap, BTreeSet};

/// A violated invariant: its stable name and what was seen.
pub(crate) type Found = (&'static str, String);

fn found<T>(invariant: &'static str, detail: impl Into<String>) -> Result<T, Found> {
    Err((invariant, detail.into()))
}

/// What the checker needs to know about the step that just ran.
pub(crate) struct StepView<'a> {
    /// The scale the intended volatility brake must have used this step
    /// (from the closes the simulator served); `None` when the intended
    /// configuration has no brake.
    pub oracle_scale: Option<Decimal>,
    /// Symbols quoted to the worker with a stale quote this step.
    pub stale: &'a BTreeSet<Symbol>,
    /// Orders that reached the venue this step.
    pub venue_submits: &'a [VenueSubmit],
    /// Submits that reached the venue per client order id, whole run.
    pub submits_by_id: &'a BTreeMap<String, u32>,
    /// A kill-switch action (cycle or operator) returned success this step:
    /// nothing may be working at the venue afterwards.
    pub kill_acknowledged: bool,
    /// Operator releases of the kill switch attempted so far.
    pub release_attempts: u64,
}

#[derive(Debug, Clone)]
struct ShadowOrder {
    symbol: Symbol,
    side: Side,
    qty: Decimal,
    filled: Decimal,
    closed: bool,
}

impl ShadowOrder {
    fn is_open(&self) -> bool {
        !self.closed && self.filled < self.qty
    }

    fn remaining(&self) -> Decimal {
        (self.qty - self.filled).max(Decimal::ZERO)
    }
}

/// The intended brake's scale for `closes`, computed as the brake documents
/// it (realized vol of the reference symbol vs target, 4 dp toward zero,
/// clamped to [0, 1], missing data fails closed to 0).
pub(crate) fn oracle_scale(b: &VolatilityBrake, closes: &[Decimal]) -> Decimal {
    if !b.enabled || !b.builtin {
        return Decimal::ONE;
    }
    match realized_vol(closes, b.lookback_days, b.annualization_days) {
        None => Decimal::ZERO,
        Some(v) if v <= 0.0 => Decimal::ONE,
        Some(v) => {
            let realized = Decimal::from_f64_retain(v).unwrap_or(Decimal::MAX);
            b.target_vol
                .checked_div(realized)
                .map(|x| {
                    x.round_dp_with_strategy(4, RoundingStrategy::ToZero)
                        .clamp(Decimal::ZERO, Decimal::ONE)
                })
                .unwrap_or(Decimal::ZERO)
        }
    }
}

/// Whether `at` is inside a session and outside the intended buffers.
fn tradable(risk: &RiskConfig, at: DateTime<Utc>) -> bool {
    let mh = &risk.guards.market_hours;
    let Some(s) = keel_calendar::session_containing(at) else {
        return false;
    };
    if !mh.enabled {
        return true;
    }
    let after_open = (at - s.open).num_milliseconds() >= (mh.after_open_secs as i64) * 1000;
    let before_close = (s.close - at).num_milliseconds() > (mh.before_close_secs as i64) * 1000;
    after_open && before_close
}

/// The checker's model of the account, from the audit log alone.
pub(crate) struct Checker {
    account: String,
    risk: RiskConfig,
    last_seq: u64,
    last_hash: String,
    cash: Decimal,
    positions: BTreeMap<Symbol, Decimal>,
    orders: BTreeMap<String, ShadowOrder>,
    open: BTreeSet<String>,
    /// When the kill switch was engaged, per the log.
    kill_since: Option<DateTime<Utc>>,
    releases: u64,
    cycles: BTreeMap<String, (String, u32)>,
    eods: BTreeMap<NaiveDate, u32>,
    /// A failed reconciliation not yet followed by an engaged kill switch.
    reconcile_pending: Option<u64>,
    /// Rows of the current day, to replay for the idempotency probe.
    day_rows: Vec<AuditRow>,
    /// Rows read so far.
    pub events: u64,
    /// Orders intended so far.
    pub intents: u64,
    /// Log size at which the next restart also verifies and rebuilds in full.
    next_rebuild_at: u64,
    /// Kill-switch engagements by source, and releases.
    pub kill_stats: BTreeMap<String, u64>,
}

impl Checker {
    pub fn new(account: &str, risk: RiskConfig) -> Self {
        Self {
            account: account.to_string(),
            risk,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_string(),
            cash: Decimal::ZERO,
            positions: BTreeMap::new(),
            orders: BTreeMap::new(),
            open: BTreeSet::new(),
            kill_since: None,
            releases: 0,
            cycles: BTreeMap::new(),
            eods: BTreeMap::new(),
            reconcile_pending: None,
            day_rows: Vec::new(),
            events: 0,
            intents: 0,
            next_rebuild_at: 0,
            kill_stats: BTreeMap::new(),
        }
    }

    /// When the kill switch was engaged, per the log (`None` when released).
    pub fn kill_since(&self) -> Option<DateTime<Utc>> {
        self.kill_since
    }

    /// The checks of every step.
    pub async fn after_step(
        &mut self,
        store: &SqliteStore,
        paper: &PaperBroker,
        v: &StepView<'_>,
        trace: &mut Trace,
    ) -> Result<(), Found> {
        loop {
            let rows = match store.audit_page(self.last_seq, 1000).await {
                Ok(r) => r,
                Err(e) => return found("audit_chain", format!("cannot read the audit log: {e}")),
            };
            if rows.is_empty() {
                break;
            }
            for row in rows {
                self.row(&row, v, trace)?;
                if self.day_rows.len() < 4096 {
                    self.day_rows.push(row);
                }
            }
        }
        if let Some(seq) = self.reconcile_pending {
            if self.kill_since.is_none() {
                return found(
                    "reconcile_mismatch_fails_closed",
                    format!(
                        "audit #{seq} recorded a reconciliation mismatch but the kill switch is not engaged"
                    ),
                );
            }
        }
        self.reconcile_pending = None;
        self.projections_match(store).await?;
        self.venue_checks(paper, v).await
    }

    /// One audit row: chain, decode, then the event's own checks.
    fn row(&mut self, row: &AuditRow, v: &StepView<'_>, trace: &mut Trace) -> Result<(), Found> {
        if row.seq != self.last_seq + 1 {
            return found(
                "audit_chain",
                format!("expected seq {}, read {}", self.last_seq + 1, row.seq),
            );
        }
        if row.prev_hash != self.last_hash {
            return found(
                "audit_chain",
                format!(
                    "audit #{} links to {}, previous hash is {}",
                    row.seq, row.prev_hash, self.last_hash
                ),
            );
        }
        let h = keel_store::chain_hash(
            &row.prev_hash,
            row.seq,
            &row.at,
            &row.kind,
            &row.event_id,
            &row.payload,
        );
        if h != row.hash {
            return found(
                "audit_chain",
                format!("audit #{} hash {} recomputes to {h}", row.seq, row.hash),
            );
        }
        let ev = match row.event() {
            Ok(e) => e,
            Err(e) => {
                return found(
                    "audit_chain",
                    format!("audit #{} payload does not decode: {e}", row.seq),
                )
            }
        };
        if ev.kind() != row.kind || ev.event_id() != row.event_id {
            return found(
                "audit_chain",
                format!(
                    "audit #{} kind/event_id columns disagree with its payload",
                    row.seq
                ),
            );
        }
        self.last_seq = row.seq;
        self.last_hash = row.hash.clone();
        self.events += 1;
        trace.push(format!("  audit #{} {}", row.seq, summary(&ev)));
        self.apply(row.seq, &ev, v)
    }

    fn apply(&mut self, seq: u64, ev: &Event, v: &StepView<'_>) -> Result<(), Found> {
        match ev {
            Event::AccountOpened { cash, .. } => self.cash += *cash,
            Event::CycleStarted {
                cycle_id,
                target_set_id,
                attempt,
                ..
            } => {
                self.cycles
                    .insert(cycle_id.clone(), (target_set_id.clone(), *attempt));
            }
            Event::GuardDecisions {
                cycle_id, decisions, ..
            } => self.decisions(seq, cycle_id, decisions, v)?,
            Event::OrderIntent { cycle_id, order, .. } => {
                self.intents += 1;
                let coid = &order.client_order_id;
                if let Some(k) = self.kill_since {
                    return found(
                        "kill_switch_blocks_orders",
                        format!("audit #{seq}: order {coid} intended while the kill switch is engaged (since {k})"),
                    );
                }
                let Some((set_id, attempt)) = self.cycles.get(cycle_id) else {
                    return found(
                        "deterministic_client_order_id",
                        format!(
                            "audit #{seq}: order {coid} belongs to cycle {cycle_id}, which never started"
                        ),
                    );
                };
                let expect = client_order_id(&self.account, set_id, &order.symbol, order.side, *attempt);
                if &expect != coid {
                    return found(
                        "deterministic_client_order_id",
                        format!("audit #{seq}: order id {coid}, derivation gives {expect}"),
                    );
                }
                if self.orders.contains_key(coid) {
                    return found(
                        "no_duplicate_orders",
                        format!("audit #{seq}: second intent for {coid}"),
                    );
                }
                if let Some(other) = self.open.iter().find(|id| {
                    self.orders
                        .get(*id)
                        .is_some_and(|o| o.symbol == order.symbol && o.side == order.side)
                }) {
                    return found(
                        "one_open_order_per_symbol_side",
                        format!(
                            "audit #{seq}: {} {} {coid} intended while {other} is still working or unresolved",
                            order.side, order.symbol
                        ),
                    );
                }
                if order.qty <= Decimal::ZERO || order.qty.fract() != Decimal::ZERO {
                    return found(
                        "money_exact",
                        format!("audit #{seq}: order {coid} quantity {}", order.qty),
                    );
                }
                if order.limit_price.is_some_and(|p| p <= Decimal::ZERO) {
                    return found(
                        "money_exact",
                        format!("audit #{seq}: order {coid} limit {:?}", order.limit_price),
                    );
                }
                if order.side == Side::Sell && !self.risk.planner.allow_short {
                    let held = self.positions.get(&order.symbol).copied().unwrap_or_default();
                    let committed: Decimal = self
                        .open
                        .iter()
                        .filter_map(|id| self.orders.get(id))
                        .filter(|o| o.symbol == order.symbol && o.side == Side::Sell)
                        .map(ShadowOrder::remaining)
                        .sum();
                    if order.qty > held - committed {
                        return found(
                            "no_sell_without_shares",
                            format!(
                                "audit #{seq}: sell {} {} with {held} held and {committed} committed to open sells",
                                order.qty, order.symbol
                            ),
                        );
                    }
                }
                if order.side == Side::Buy && v.oracle_scale == Some(Decimal::ZERO) {
                    return found(
                        "vol_brake_zero_only_risk_reducing",
                        format!(
                            "audit #{seq}: buy {} {} sent while the volatility brake must be at 0",
                            order.qty, order.symbol
                        ),
                    );
                }
                if v.stale.contains(&order.symbol) {
                    return found(
                        "stale_quote_fails_closed",
                        format!(
                            "audit #{seq}: order {coid} for {} priced from a stale quote",
                            order.symbol
                        ),
                    );
                }
                self.orders.insert(
                    coid.clone(),
                    ShadowOrder {
                        symbol: order.symbol.clone(),
                        side: order.side,
                        qty: order.qty,
                        filled: Decimal::ZERO,
                        closed: false,
                    },
                );
                self.open.insert(coid.clone());
            }
            Event::OrderFilled {
                client_order_id,
                symbol,
                side,
                qty,
                price,
                ..
            } => {
                if *qty <= Decimal::ZERO || *price <= Decimal::ZERO {
                    return found("money_exact", format!("audit #{seq}: fill {qty} @ {price}"));
                }
                self.cash -= side.sign() * qty * price;
                let p = self.positions.entry(symbol.clone()).or_default();
                *p += side.sign() * qty;
                if p.is_zero() {
                    self.positions.remove(symbol);
                } else if *p < Decimal::ZERO && !self.risk.planner.allow_short {
                    return found(
                        "no_sell_without_shares",
                        format!("audit #{seq}: {symbol} position went to {p} with shorting disabled"),
                    );
                }
                if let Some(o) = self.orders.get_mut(client_order_id) {
                    o.filled += qty;
                    if o.filled > o.qty {
                        return found(
                            "no_duplicate_orders",
                            format!("audit #{seq}: {client_order_id} filled {} of {}", o.filled, o.qty),
                        );
                    }
                    if !o.is_open() {
                        self.open.remove(client_order_id);
                    }
                }
            }
            Event::OrderClosed {
                client_order_id,
                status,
                reason,
                ..
            } => {
                if *status == OrderStatus::Rejected && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                    return found(
                        "blocked_order_has_reason",
                        format!("audit #{seq}: {client_order_id} rejected without a reason"),
                    );
                }
                if let Some(o) = self.orders.get_mut(client_order_id) {
                    o.closed = true;
                }
                self.open.remove(client_order_id);
            }
            Event::KillSwitchEngaged {
                reason, at, source, ..
            } => {
                *self
                    .kill_stats
                    .entry(format!("engaged_{}", format!("{source:?}").to_lowercase()))
                    .or_default() += 1;
                if reason.trim().is_empty() {
                    return found(
                        "blocked_order_has_reason",
                        format!("audit #{seq}: kill switch engaged without a reason"),
                    );
                }
                if self.kill_since.is_none() {
                    self.kill_since = Some(*at);
                }
            }
            Event::KillSwitchReleased { source, .. } => {
                self.releases += 1;
                *self.kill_stats.entry("released".into()).or_default() += 1;
                if *source == KillSource::Automatic || self.releases > v.release_attempts {
                    return found(
                        "kill_switch_sticky",
                        format!(
                            "audit #{seq}: kill switch released by {source:?}; the operator asked {} time(s), this is release {}",
                            v.release_attempts, self.releases
                        ),
                    );
                }
                self.kill_since = None;
            }
            Event::Reconciled { ok, .. } => {
                if !ok && self.kill_since.is_none() {
                    self.reconcile_pending = Some(seq);
                }
            }
            // Nothing is sent in a blocked cycle; the order checks see to that.
            Event::TradingBlocked { .. } => {}
            Event::EodSnapshot { date, .. } => {
                let n = self.eods.entry(*date).or_default();
                *n += 1;
                if *n > 1 {
                    return found(
                        "eod_exactly_once",
                        format!("audit #{seq}: second EOD snapshot for {date}"),
                    );
                }
            }
            Event::TargetSetQueued { .. }
            | Event::OrderAccepted { .. }
            | Event::CycleFinished { .. }
            | Event::TargetSetCompleted { .. }
            | Event::TargetSetSuperseded { .. }
            | Event::Alert { .. } => {}
        }
        if matches!(ev, Event::KillSwitchEngaged { .. }) {
            self.reconcile_pending = None;
        }
        Ok(())
    }

    /// One cycle's guard decisions.
    fn decisions(
        &self,
        seq: u64,
        cycle_id: &str,
        decisions: &serde_json::Value,
        v: &StepView<'_>,
    ) -> Result<(), Found> {
        let plan: Plan = match serde_json::from_value(decisions.clone()) {
            Ok(p) => p,
            Err(e) => {
                return found(
                    "blocked_order_has_reason",
                    format!("audit #{seq}: decisions of {cycle_id} do not decode as a plan: {e}"),
                )
            }
        };
        for b in &plan.plan_blocks {
            if b.detail.trim().is_empty() {
                return found(
                    "blocked_order_has_reason",
                    format!("audit #{seq}: whole-plan block {:?} without detail", b.reason),
                );
            }
        }
        for d in &plan.decisions {
            if let Some(step) = d.steps.iter().find(|s| s.detail.trim().is_empty()) {
                return found(
                    "blocked_order_has_reason",
                    format!(
                        "audit #{seq}: {} {} resized by {:?} without detail",
                        d.side, d.symbol, step.guard
                    ),
                );
            }
            if let Outcome::Block {
                reason,
                detail,
                guard,
            } = &d.outcome
            {
                if detail.trim().is_empty() {
                    return found(
                        "blocked_order_has_reason",
                        format!(
                            "audit #{seq}: {} {} blocked by {guard:?} ({reason}) without detail",
                            d.side, d.symbol
                        ),
                    );
                }
            } else if !plan.plan_blocks.is_empty() {
                return found(
                    "fail_closed_plan_block",
                    format!(
                        "audit #{seq}: {} {} sent although the plan is blocked by {:?}",
                        d.side, d.symbol, plan.plan_blocks[0].reason
                    ),
                );
            } else if plan.vol_scale.is_zero() && !d.risk_reducing {
                return found(
                    "vol_brake_zero_only_risk_reducing",
                    format!(
                        "audit #{seq}: {} {} is risk-increasing with vol scale 0",
                        d.side, d.symbol
                    ),
                );
            }
        }
        if self.kill_since.is_some()
            && !plan
                .plan_blocks
                .iter()
                .any(|b| b.reason == keel_planner::ReasonCode::KillSwitch)
        {
            return found(
                "kill_switch_blocks_orders",
                format!("audit #{seq}: cycle {cycle_id} planned without the engaged kill switch"),
            );
        }
        if let Some(expect) = v.oracle_scale {
            if plan.vol_scale != expect {
                return found(
                    "vol_brake_applied",
                    format!(
                        "audit #{seq}: cycle {cycle_id} used vol scale {}, the reference closes give {expect}",
                        plan.vol_scale
                    ),
                );
            }
        }
        Ok(())
    }

    /// The store's projections equal the model rebuilt from the log.
    async fn projections_match(&self, store: &SqliteStore) -> Result<(), Found> {
        let cash = store
            .cash()
            .await
            .map_err(|e| ("projections_match_log", e.to_string()))?;
        if cash != self.cash {
            return found(
                "projections_match_log",
                format!("store cash {cash}, the log sums to {}", self.cash),
            );
        }
        let positions = store
            .positions()
            .await
            .map_err(|e| ("projections_match_log", e.to_string()))?;
        let mine: BTreeMap<&Symbol, Decimal> = positions.iter().map(|(s, p)| (s, p.qty)).collect();
        let log: BTreeMap<&Symbol, Decimal> = self.positions.iter().map(|(s, q)| (s, *q)).collect();
        if mine != log {
            return found(
                "projections_match_log",
                format!("store positions {mine:?}, the log gives {log:?}"),
            );
        }
        Ok(())
    }

    /// What reached the venue, and the venue's books.
    async fn venue_checks(&self, paper: &PaperBroker, v: &StepView<'_>) -> Result<(), Found> {
        for s in v.venue_submits {
            if !tradable(&self.risk, s.at) {
                return found(
                    "no_order_outside_market_hours",
                    format!(
                        "{} {} {} reached the venue at {}",
                        s.side, s.symbol, s.client_order_id, s.at
                    ),
                );
            }
            if !self.orders.contains_key(&s.client_order_id) {
                return found(
                    "write_ahead_intent",
                    format!(
                        "{} reached the venue with no intent in the log",
                        s.client_order_id
                    ),
                );
            }
            if s.outcome.starts_with("rejected: insufficient quantity") {
                return found(
                    "no_sell_without_shares",
                    format!("{}: {}", s.client_order_id, s.outcome),
                );
            }
            let n = v.submits_by_id.get(&s.client_order_id).copied().unwrap_or(0);
            if n > 1 {
                return found(
                    "no_duplicate_orders",
                    format!(
                        "{} reached the venue {n} times (last: {})",
                        s.client_order_id, s.outcome
                    ),
                );
            }
        }
        let ledger = paper
            .inspect()
            .await
            .map_err(|e| ("sim_harness", format!("inspecting the venue: {e}")))?;
        let mut per_side: BTreeMap<(&Symbol, Side), &str> = BTreeMap::new();
        for o in &ledger.open_orders {
            if let Some(other) = per_side.insert((&o.symbol, o.side), &o.client_order_id) {
                return found(
                    "one_open_order_per_symbol_side",
                    format!(
                        "{} and {other} both working at the venue ({} {})",
                        o.client_order_id, o.side, o.symbol
                    ),
                );
            }
        }
        if let Some(p) = ledger.positions.iter().find(|p| p.qty < Decimal::ZERO) {
            if !self.risk.planner.allow_short {
                return found(
                    "no_sell_without_shares",
                    format!("venue position {} {}", p.qty, p.symbol),
                );
            }
        }
        if v.kill_acknowledged && !ledger.open_orders.is_empty() {
            let ids: Vec<&str> = ledger
                .open_orders
                .iter()
                .map(|o| o.client_order_id.as_str())
                .collect();
            return found(
                "kill_switch_cancels_open_orders",
                format!("kill switch acknowledged but still working at the venue: {ids:?}"),
            );
        }
        Ok(())
    }

    /// The checks after the close, with faults quiet and the worker synced:
    /// the store equals the venue, nothing was lost or sent twice, and the
    /// session has exactly one EOD snapshot.
    pub async fn nightly(
        &mut self,
        store: &SqliteStore,
        paper: &PaperBroker,
        session: NaiveDate,
        sessions: &[NaiveDate],
    ) -> Result<(), Found> {
        let harness = |e: &dyn std::fmt::Display| ("sim_harness", e.to_string());
        let ledger = paper.inspect().await.map_err(|e| harness(&e))?;
        let cash = store.cash().await.map_err(|e| harness(&e))?;
        if cash != ledger.cash {
            return found(
                "store_matches_broker",
                format!(
                    "after reconciliation: store cash {cash}, broker cash {}",
                    ledger.cash
                ),
            );
        }
        let mine: BTreeMap<Symbol, Decimal> = store
            .positions()
            .await
            .map_err(|e| harness(&e))?
            .into_iter()
            .map(|(s, p)| (s, p.qty))
            .collect();
        let theirs: BTreeMap<Symbol, Decimal> = ledger
            .positions
            .iter()
            .map(|p| (p.symbol.clone(), p.qty))
            .collect();
        if mine != theirs {
            return found(
                "store_matches_broker",
                format!("after reconciliation: store positions {mine:?}, broker positions {theirs:?}"),
            );
        }
        let orders = paper.orders().await.map_err(|e| harness(&e))?;
        let broker_fills: BTreeSet<String> = orders
            .iter()
            .flat_map(|o| o.fills.iter().map(|f| f.fill_id.clone()))
            .collect();
        let store_fills: BTreeSet<String> = store
            .fills(&FillFilter::default())
            .await
            .map_err(|e| harness(&e))?
            .into_iter()
            .map(|f| f.fill_id)
            .collect();
        if broker_fills != store_fills {
            let lost: Vec<&String> = broker_fills.difference(&store_fills).collect();
            let extra: Vec<&String> = store_fills.difference(&broker_fills).collect();
            return found(
                "no_fill_lost",
                format!("fills lost {lost:?}, fills the broker never made {extra:?}"),
            );
        }
        if let Some(o) = orders.iter().find(|o| {
            o.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("insufficient quantity"))
        }) {
            return found(
                "no_sell_without_shares",
                format!("{}: {:?}", o.client_order_id, o.reason),
            );
        }
        for (id, n) in paper.submissions_received().await.map_err(|e| harness(&e))? {
            if n > 1 {
                return found("no_duplicate_orders", format!("{id} reached the venue {n} times"));
            }
        }
        // Every session so far, not only tonight's: a night keel was down
        // for is checked at the next night it is up.
        for d in sessions {
            match self.eods.get(d).copied().unwrap_or(0) {
                1 => {}
                n => {
                    return found(
                        "eod_exactly_once",
                        format!("{n} EOD snapshots for session {d} (checked on the night of {session})"),
                    )
                }
            }
        }
        self.idempotency_probe(store).await
    }

    /// Appending any event of the day a second time changes nothing.
    async fn idempotency_probe(&mut self, store: &SqliteStore) -> Result<(), Found> {
        let rows = std::mem::take(&mut self.day_rows);
        let head = store
            .audit_head()
            .await
            .map_err(|e| ("sim_harness", e.to_string()))?;
        // A spread of the day's rows: every kind shows up on a busy day.
        let step = (rows.len() / 16).max(1);
        for row in rows.iter().step_by(step) {
            let ev = match row.event() {
                Ok(e) => e,
                Err(e) => return found("audit_chain", format!("audit #{}: {e}", row.seq)),
            };
            match store.append(&ev).await {
                Ok(None) => {}
                Ok(Some(s)) => {
                    return found(
                        "idempotent_append",
                        format!(
                            "re-appending audit #{} ({}) was recorded again as #{s}",
                            row.seq, row.event_id
                        ),
                    )
                }
                Err(e) => {
                    return found(
                        "idempotent_append",
                        format!("re-appending audit #{} ({}) failed: {e}", row.seq, row.event_id),
                    )
                }
            }
        }
        let after = store
            .audit_head()
            .await
            .map_err(|e| ("sim_harness", e.to_string()))?;
        if after != head {
            return found(
                "idempotent_append",
                format!("audit head moved from {head:?} to {after:?}"),
            );
        }
        Ok(())
    }

    /// After a restart: the kill switch survived, the chain verifies, and the
    /// projections are exactly what replaying the log gives.
    pub async fn after_restart(&mut self, store: &SqliteStore) -> Result<(), Found> {
        let engaged = store
            .kill_switch()
            .await
            .map_err(|e| ("sim_harness", e.to_string()))?
            .is_some();
        if engaged != self.kill_since.is_some() {
            return found(
                "kill_switch_sticky",
                format!(
                    "after restart the store says engaged={engaged}, the log says engaged={}",
                    self.kill_since.is_some()
                ),
            );
        }
        // A full verify and rebuild costs the whole log; doing it when the log
        // has doubled since the last one keeps the total linear in run length.
        if self.events >= self.next_rebuild_at {
            self.next_rebuild_at = (self.events * 2).max(1000);
            verify_and_rebuild(store).await?;
        }
        Ok(())
    }
}

/// The whole chain verifies, and rebuilding the projections from the log
/// reproduces them exactly (invariant 6).
pub(crate) async fn verify_and_rebuild(store: &SqliteStore) -> Result<(), Found> {
    let report = store
        .verify_chain()
        .await
        .map_err(|e| ("audit_chain", e.to_string()))?;
    if let Some((seq, why)) = report.first_bad {
        return found(
            "audit_chain",
            format!("verify_chain: first bad row #{seq}: {why}"),
        );
    }
    let before = store
        .dump_projections()
        .await
        .map_err(|e| ("sim_harness", e.to_string()))?;
    store
        .rebuild_projections()
        .await
        .map_err(|e| ("rebuild_from_log", e.to_string()))?;
    let after = store
        .dump_projections()
        .await
        .map_err(|e| ("sim_harness", e.to_string()))?;
    if before != after {
        let table = before
            .iter()
            .zip(&after)
            .find(|(a, b)| a != b)
            .map(|(a, _)| a.0.clone())
            .unwrap_or_default();
        return found(
            "rebuild_from_log",
            format!("projection table {table} differs after rebuilding from the log"),
        );
    }
    Ok(())
}

/// A short line for the trace.
fn summary(ev: &Event) -> String {
    match ev {
        Event::OrderIntent { order, .. } => format!(
            "order_intent {} {} {} @ {} ({})",
            order.side,
            order.qty,
            order.symbol,
            order
                .limit_price
                .map(|p| p.to_string())
                .unwrap_or_else(|| "mkt".into()),
            order.client_order_id
        ),
        Event::OrderFilled {
            client_order_id,
            qty,
            price,
            ..
        } => format!("order_filled {client_order_id} {qty} @ {price}"),
        Event::OrderClosed {
            client_order_id,
            status,
            reason,
            ..
        } => format!(
            "order_closed {client_order_id} {} {}",
            status.as_str(),
            reason.as_deref().unwrap_or("")
        ),
        Event::KillSwitchEngaged { reason, source, .. } => {
            format!("kill_switch_engaged by {source:?}: {reason}")
        }
        Event::KillSwitchReleased { reason, source, .. } => {
            format!("kill_switch_released by {source:?}: {reason}")
        }
        Event::CycleFinished {
            cycle_id, outcome, ..
        } => format!("cycle_finished {cycle_id}: {outcome}"),
        Event::Reconciled { ok, differences, .. } => format!("reconciled ok={ok} {differences:?}"),
        other => format!("{} {}", other.kind(), other.event_id()),
    }
}
