//! Domain events: every state change keel makes is one of these, appended to
//! the hash-chained audit log and applied to the store's projections.
//!
//! Each event carries an `event_id` that is derived from what it describes (a
//! fill id, a client order id and status, a cycle id), so applying the same
//! event twice — after a crash, a replayed broker message, a retry — is a no-op.

use crate::alert::AlertKind;
use crate::{Order, OrderStatus, Side, Symbol, TargetSet};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Who or what engaged or released the kill switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillSource {
    /// `keel kill` / `keel resume`.
    Cli,
    /// The authenticated control API.
    Http,
    /// The flag file named in config.
    FlagFile,
    /// An automatic trigger (daily loss, drawdown, reject storm, reconciliation mismatch, unknown outcomes).
    Automatic,
}

/// What one reconciliation compared: the store's cash and every symbol held
/// on either side, within the configured tolerances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconScope {
    /// Symbols compared (held in the store, at the broker, or both).
    pub symbols: u32,
    /// The store's cash.
    pub store_cash: Decimal,
    /// The broker's cash.
    pub broker_cash: Decimal,
    /// Cash difference tolerated.
    pub cash_tolerance: Decimal,
    /// Share difference tolerated per symbol.
    pub qty_tolerance: Decimal,
}

/// A state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The account was opened in the store with its starting cash (from the broker).
    AccountOpened {
        /// Account id.
        account_id: String,
        /// Starting cash.
        cash: Decimal,
        /// When.
        at: DateTime<Utc>,
    },
    /// A validated target set was queued for the next cycle.
    TargetSetQueued {
        /// The set, already validated.
        set: TargetSet,
        /// When keel received it.
        at: DateTime<Utc>,
    },
    /// A cycle began executing a target set.
    CycleStarted {
        /// Unique cycle id.
        cycle_id: String,
        /// Which set.
        target_set_id: String,
        /// Attempt number used in client order ids for this cycle.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// Every guard decision of one cycle (opaque JSON from the planner).
    GuardDecisions {
        /// Cycle id.
        cycle_id: String,
        /// The planner's decisions, serialised.
        decisions: serde_json::Value,
        /// When.
        at: DateTime<Utc>,
    },
    /// Write-ahead intent: recorded before the order is sent.
    OrderIntent {
        /// Cycle id.
        cycle_id: String,
        /// The order as it will be sent.
        order: Order,
        /// Reference price at decision time, for slippage.
        arrival_price: Decimal,
        /// Ask minus bid of the arrival quote, for the spread paid (absent in
        /// logs written before it was recorded, or without a two-sided quote).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arrival_spread: Option<Decimal>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The broker acknowledged the order.
    OrderAccepted {
        /// keel's id.
        client_order_id: String,
        /// The broker's id.
        broker_order_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A (partial) fill.
    OrderFilled {
        /// keel's id.
        client_order_id: String,
        /// Broker's unique fill id (dedup key).
        fill_id: String,
        /// Instrument.
        symbol: Symbol,
        /// Side.
        side: Side,
        /// Filled shares in this execution.
        qty: Decimal,
        /// Execution price.
        price: Decimal,
        /// When.
        at: DateTime<Utc>,
    },
    /// The order reached a final state other than fully filled by fills alone
    /// (cancelled, rejected, expired) or was confirmed filled.
    OrderClosed {
        /// keel's id.
        client_order_id: String,
        /// Final status.
        status: OrderStatus,
        /// Broker's reason, if any.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A cycle ended.
    CycleFinished {
        /// Cycle id.
        cycle_id: String,
        /// Short outcome (`submitted`, `nothing_to_do`, `blocked: ...`, `error: ...`).
        outcome: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The target set is done: no further cycles will trade it.
    TargetSetCompleted {
        /// Which set.
        target_set_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The kill switch was engaged.
    KillSwitchEngaged {
        /// Why (free text from the operator or the trigger's description).
        reason: String,
        /// Who.
        source: KillSource,
        /// When.
        at: DateTime<Utc>,
    },
    /// The kill switch was released by an operator.
    KillSwitchReleased {
        /// Why.
        reason: String,
        /// Who.
        source: KillSource,
        /// When.
        at: DateTime<Utc>,
    },
    /// The store's positions and cash were compared with the broker's.
    /// Recorded on every trading cycle's reconciliation, agreeing or not, so
    /// "when did keel last check" is in the log, not only mismatches.
    Reconciled {
        /// Whether they agreed within tolerance.
        ok: bool,
        /// Human-readable differences, empty when ok.
        differences: Vec<String>,
        /// What was compared (absent in logs written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<ReconScope>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A queued (or partly executed) target set was closed because a newer
    /// one was queued: each set is the whole portfolio, so only the newest is
    /// traded. Working orders of the superseded set are left to the normal
    /// stale-order handling of the next cycles.
    TargetSetSuperseded {
        /// The set closed.
        target_set_id: String,
        /// The newer set that replaces it.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The venue would not take new risk (account flags, a clock that
    /// disagrees with keel's calendar, a stream not yet backfilled): the
    /// cycle sent nothing. Recorded when the reasons change, not every cycle.
    TradingBlocked {
        /// The venue's reasons, as `Broker::trading_blocks` gave them.
        reasons: Vec<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// End-of-day snapshot, exactly one per session date.
    EodSnapshot {
        /// Session date.
        date: NaiveDate,
        /// Equity at the close.
        equity: Decimal,
        /// Cash at the close.
        cash: Decimal,
        /// Sum of |market value|.
        gross_exposure: Decimal,
        /// Sum of signed market value.
        net_exposure: Decimal,
        /// Equity change since the previous snapshot.
        day_pnl: Decimal,
        /// Positions at the close: (symbol, qty, price).
        positions: Vec<(Symbol, Decimal, Decimal)>,
        /// Mean signed slippage of the day's fills, in bps (None without fills).
        slippage_mean_bps: Option<Decimal>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An operational alert that changes no other state (a cycle error, the
    /// broker's stream down too long, a lease lost or taken over, a target
    /// set refused). It is logged so its notification is as durable as any
    /// event's: the store's outbox is derived from the log in the append's
    /// transaction (see `keel_domain::alert`).
    Alert {
        /// What kind.
        alert: AlertKind,
        /// One line for a person (no secrets).
        detail: String,
        /// Deduplication key chosen by the emitter (e.g. the outage's start
        /// time), so one occurrence is one event however often it is reported.
        key: String,
        /// When.
        at: DateTime<Utc>,
    },
}

impl Event {
    /// The idempotency key: applying two events with the same id is applying one.
    pub fn event_id(&self) -> String {
        match self {
            Event::AccountOpened { account_id, .. } => format!("account:{account_id}"),
            Event::TargetSetQueued { set, .. } => format!("set:{}", set.id),
            Event::CycleStarted { cycle_id, .. } => format!("cycle-start:{cycle_id}"),
            Event::GuardDecisions { cycle_id, .. } => format!("decisions:{cycle_id}"),
            Event::OrderIntent { order, .. } => format!("intent:{}", order.client_order_id),
            Event::OrderAccepted { client_order_id, .. } => format!("accepted:{client_order_id}"),
            Event::OrderFilled { fill_id, .. } => format!("fill:{fill_id}"),
            Event::OrderClosed { client_order_id, .. } => format!("closed:{client_order_id}"),
            Event::CycleFinished { cycle_id, .. } => format!("cycle-end:{cycle_id}"),
            Event::TargetSetCompleted { target_set_id, .. } => format!("set-done:{target_set_id}"),
            // Kill-switch changes are distinct occurrences even with the same reason; the time disambiguates.
            Event::KillSwitchEngaged { at, reason, .. } => format!("kill:{}:{reason}", at.to_rfc3339()),
            Event::KillSwitchReleased { at, reason, .. } => format!("resume:{}:{reason}", at.to_rfc3339()),
            Event::Reconciled { at, .. } => format!("reconciled:{}", at.to_rfc3339()),
            Event::TradingBlocked { at, .. } => format!("trading-blocked:{}", at.to_rfc3339()),
            Event::EodSnapshot { date, .. } => format!("eod:{date}"),
            // A set is superseded at most once, whatever superseded it.
            Event::TargetSetSuperseded { target_set_id, .. } => format!("set-superseded:{target_set_id}"),
            Event::Alert { alert, key, .. } => format!("alert:{alert}:{key}"),
        }
    }

    /// The stable kind name stored in the audit log's `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::AccountOpened { .. } => "account_opened",
            Event::TargetSetQueued { .. } => "target_set_queued",
            Event::CycleStarted { .. } => "cycle_started",
            Event::GuardDecisions { .. } => "guard_decisions",
            Event::OrderIntent { .. } => "order_intent",
            Event::OrderAccepted { .. } => "order_accepted",
            Event::OrderFilled { .. } => "order_filled",
            Event::OrderClosed { .. } => "order_closed",
            Event::CycleFinished { .. } => "cycle_finished",
            Event::TargetSetCompleted { .. } => "target_set_completed",
            Event::KillSwitchEngaged { .. } => "kill_switch_engaged",
            Event::KillSwitchReleased { .. } => "kill_switch_released",
            Event::Reconciled { .. } => "reconciled",
            Event::TradingBlocked { .. } => "trading_blocked",
            Event::EodSnapshot { .. } => "eod_snapshot",
            Event::TargetSetSuperseded { .. } => "target_set_superseded",
            Event::Alert { .. } => "alert",
        }
    }

    /// When the event happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Event::AccountOpened { at, .. }
            | Event::TargetSetQueued { at, .. }
            | Event::CycleStarted { at, .. }
            | Event::GuardDecisions { at, .. }
            | Event::OrderIntent { at, .. }
            | Event::OrderAccepted { at, .. }
            | Event::OrderFilled { at, .. }
            | Event::OrderClosed { at, .. }
            | Event::CycleFinished { at, .. }
            | Event::TargetSetCompleted { at, .. }
            | Event::KillSwitchEngaged { at, .. }
            | Event::KillSwitchReleased { at, .. }
            | Event::Reconciled { at, .. }
            | Event::TradingBlocked { at, .. }
            | Event::EodSnapshot { at, .. }
            | Event::TargetSetSuperseded { at, .. }
            | Event::Alert { at, .. } => *at,
        }
    }
}
