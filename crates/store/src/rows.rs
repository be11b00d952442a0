//! What the store's queries return, and the filters they take.

use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{KillSource, OrderStatus, OrderType, Side, Symbol, TimeInForce};
use rust_decimal::Decimal;
use serde::Serialize;

/// The broker account the store tracks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountRow {
    /// Broker account id.
    pub account_id: String,
    /// Cash when the account was opened in the store.
    pub opening_cash: Decimal,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
}

/// One held position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PositionRow {
    /// Signed shares (negative is short).
    pub qty: Decimal,
    /// Average cost per share of the open quantity.
    pub avg_cost: Decimal,
}

/// An engaged kill switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KillState {
    /// Why it was engaged (the first engagement's reason while it stays engaged).
    pub reason: String,
    /// Who engaged it.
    pub source: KillSource,
    /// When.
    pub at: DateTime<Utc>,
}

/// One order as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRow {
    /// keel's deterministic id.
    pub client_order_id: String,
    /// The cycle that created it.
    pub cycle_id: String,
    /// Instrument.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// Ordered shares.
    pub qty: Decimal,
    /// Market or limit.
    pub order_type: OrderType,
    /// Limit price, for limit orders.
    pub limit_price: Option<Decimal>,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// Current status.
    pub status: OrderStatus,
    /// The broker's id, once accepted.
    pub broker_order_id: Option<String>,
    /// Shares filled so far.
    pub filled_qty: Decimal,
    /// Volume-weighted average fill price, once anything filled.
    pub avg_fill_price: Option<Decimal>,
    /// Reference price at decision time.
    pub arrival_price: Decimal,
    /// Ask minus bid at decision time, when both were quoted.
    pub arrival_spread: Option<Decimal>,
    /// The broker's reason for a cancel, reject or expiry.
    pub reason: Option<String>,
    /// When the intent was recorded.
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

/// One execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FillRow {
    /// Broker's fill id.
    pub fill_id: String,
    /// The order it belongs to.
    pub client_order_id: String,
    /// Instrument.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// Shares.
    pub qty: Decimal,
    /// Execution price.
    pub price: Decimal,
    /// When.
    pub at: DateTime<Utc>,
    /// Signed slippage against the order's arrival price in basis points,
    /// positive when it cost keel (a buy paid more, a sell received less),
    /// rounded to 4 decimal places. `None` when the order or its arrival price
    /// is unknown or zero.
    pub slippage_bps: Option<Decimal>,
}

/// One execution cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CycleRow {
    /// Cycle id.
    pub cycle_id: String,
    /// The target set it executed.
    pub target_set_id: String,
    /// Attempt number used in its client order ids.
    pub attempt: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished (None while running or if it crashed).
    pub finished_at: Option<DateTime<Utc>>,
    /// Short outcome text.
    pub outcome: Option<String>,
}

/// One end-of-day snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EodRow {
    /// Session date.
    pub date: NaiveDate,
    /// Equity at the close.
    pub equity: Decimal,
    /// Cash at the close.
    pub cash: Decimal,
    /// Sum of |market value|.
    pub gross_exposure: Decimal,
    /// Sum of signed market value.
    pub net_exposure: Decimal,
    /// Equity change since the previous snapshot.
    pub day_pnl: Decimal,
    /// The whole snapshot event as JSON (positions, slippage, …).
    pub snapshot: serde_json::Value,
}

/// The latest reconciliation with the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconciliationRow {
    /// Whether store and broker agreed.
    pub ok: bool,
    /// Differences found, empty when ok.
    pub differences: Vec<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// One audit-log row, exactly as stored (so it can be re-hashed outside keel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    /// Sequence number, consecutive from 1.
    pub seq: u64,
    /// Event time as stored (RFC 3339, UTC, nine fraction digits).
    pub at: String,
    /// Event kind.
    pub kind: String,
    /// Idempotency key.
    pub event_id: String,
    /// The event as JSON text, byte for byte as hashed.
    pub payload: String,
    /// Hash of the previous row (hex; 64 zeros for seq 1).
    pub prev_hash: String,
    /// This row's hash (hex), see [`crate::chain_hash`].
    pub hash: String,
}

impl AuditRow {
    /// Decodes the payload back into the event.
    pub fn event(&self) -> Result<keel_domain::Event, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }
}

/// Result of [`crate::Store::verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Rows examined. The scan stops at the first bad row, so when
    /// `first_bad` is set this counts the rows up to and including it.
    pub events: u64,
    /// The first sequence number at which the chain breaks, and why.
    pub first_bad: Option<(u64, String)>,
}

impl ChainReport {
    /// True when every row checked out.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Which orders [`crate::Store::orders`] returns. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Orders created on this UTC calendar day.
    pub day: Option<NaiveDate>,
    /// Orders for this symbol.
    pub symbol: Option<Symbol>,
    /// Orders in this status.
    pub status: Option<OrderStatus>,
    /// At most this many (newest first).
    pub limit: Option<u32>,
}

/// Which fills [`crate::Store::fills`] returns. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FillFilter {
    /// Fills on this UTC calendar day.
    pub day: Option<NaiveDate>,
    /// Fills for this symbol.
    pub symbol: Option<Symbol>,
    /// Fills of this order.
    pub client_order_id: Option<String>,
    /// At most this many (newest first).
    pub limit: Option<u32>,
}
