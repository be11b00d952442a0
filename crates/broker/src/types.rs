//! What brokers say: accounts, orders, fills, order events and typed errors.

use chrono::{DateTime, Utc};
use keel_domain::{OpenOrder, OrderStatus, OrderType, Side, Symbol};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Account balances as the broker reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerAccount {
    /// The broker's account id.
    pub account_id: String,
    /// Cash (negative only for a margin account that borrowed).
    pub cash: Decimal,
    /// Cash plus the marked value of all positions.
    pub equity: Decimal,
    /// What a new buy order may spend now (cash less what open buys reserve).
    pub buying_power: Decimal,
}

// Lives in keel-domain so the pure planner can read it; re-exported here for venues.
pub use keel_domain::AssetFacts;

/// One execution of (part of) an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerFill {
    /// The broker's unique id for this execution: the dedup key for fills.
    pub fill_id: String,
    /// Shares executed.
    pub qty: Decimal,
    /// Execution price.
    pub price: Decimal,
    /// Execution time.
    pub at: DateTime<Utc>,
}

/// An order as the broker knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerOrder {
    /// The broker's id.
    pub broker_order_id: String,
    /// keel's id (the broker's dedup key).
    pub client_order_id: String,
    /// Instrument.
    pub symbol: Symbol,
    /// Buy or sell.
    pub side: Side,
    /// Ordered shares.
    pub qty: Decimal,
    /// Shares filled so far.
    pub filled_qty: Decimal,
    /// Volume-weighted average fill price, `None` before the first fill.
    pub avg_fill_price: Option<Decimal>,
    /// Lifecycle state.
    pub status: OrderStatus,
    /// Limit price for limit orders.
    pub limit_price: Option<Decimal>,
    /// Market or limit.
    pub order_type: OrderType,
    /// When the broker received it.
    pub submitted_at: DateTime<Utc>,
    /// Every execution so far, oldest first.
    pub fills: Vec<BrokerFill>,
    /// Why it was rejected (or other broker remark).
    pub reason: Option<String>,
}

impl BrokerOrder {
    /// Shares still working (zero once final).
    pub fn remaining(&self) -> Decimal {
        if self.status.is_final() {
            Decimal::ZERO
        } else {
            (self.qty - self.filled_qty).max(Decimal::ZERO)
        }
    }

    /// True while more fills can arrive.
    pub fn is_open(&self) -> bool {
        !self.status.is_final()
    }

    /// The planner's view of this order while it works.
    pub fn to_open_order(&self) -> OpenOrder {
        OpenOrder {
            client_order_id: self.client_order_id.clone(),
            symbol: self.symbol.clone(),
            side: self.side,
            qty: self.qty,
            filled_qty: self.filled_qty,
            order_type: self.order_type,
            limit_price: self.limit_price,
            submitted_at: self.submitted_at,
        }
    }
}

/// One entry of the broker's durable order-event stream.
///
/// Consumers must tolerate duplicates (dedup fills by `fill_id`, status changes
/// by client order id) and gaps (a lost event is recovered by looking the
/// order up with [`crate::Broker::order_by_client_id`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BrokerEvent {
    /// The broker accepted an order (snapshot at acceptance, before any fill).
    Accepted {
        /// The order.
        order: BrokerOrder,
    },
    /// An execution.
    Fill {
        /// Which order.
        client_order_id: String,
        /// The execution.
        fill: BrokerFill,
        /// Instrument.
        symbol: Symbol,
        /// Side of the order.
        side: Side,
    },
    /// The order was cancelled (possibly after partial fills).
    Canceled {
        /// Which order.
        client_order_id: String,
    },
    /// The broker refused the order.
    Rejected {
        /// Which order.
        client_order_id: String,
        /// Why.
        reason: String,
    },
    /// The order reached the end of its time in force unfilled or partially filled.
    Expired {
        /// Which order.
        client_order_id: String,
    },
}

impl BrokerEvent {
    /// The client order id the event is about.
    pub fn client_order_id(&self) -> &str {
        match self {
            BrokerEvent::Accepted { order } => &order.client_order_id,
            BrokerEvent::Fill { client_order_id, .. }
            | BrokerEvent::Canceled { client_order_id }
            | BrokerEvent::Rejected { client_order_id, .. }
            | BrokerEvent::Expired { client_order_id } => client_order_id,
        }
    }

    /// Stable lowercase kind name (`accepted`, `fill`, `canceled`, `rejected`, `expired`).
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerEvent::Accepted { .. } => "accepted",
            BrokerEvent::Fill { .. } => "fill",
            BrokerEvent::Canceled { .. } => "canceled",
            BrokerEvent::Rejected { .. } => "rejected",
            BrokerEvent::Expired { .. } => "expired",
        }
    }
}

/// Why a broker call failed, typed by what the caller may do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// Nothing happened at the broker (timeout before sending, 5xx, 429): the
    /// same request, with the same client order id, may be retried, after
    /// `retry_after` when given.
    #[error("retryable broker error: {message}")]
    Retryable {
        /// What went wrong.
        message: String,
        /// How long the broker asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The broker refused the request; retrying it unchanged will not help.
    #[error("rejected by broker: {reason}")]
    Rejected {
        /// The broker's reason.
        reason: String,
    },
    /// The request was sent but no answer came back: it may or may not have
    /// taken effect. The caller must look the order up by client order id
    /// before sending anything else for that symbol.
    #[error("unknown outcome: {message}")]
    UnknownOutcome {
        /// What went wrong.
        message: String,
    },
    /// An order with this client order id already exists; nothing changed.
    #[error("duplicate client order id")]
    DuplicateClientOrderId,
    /// Anything else (local storage failure, protocol error, misconfiguration).
    #[error("broker error: {0}")]
    Other(String),
}

impl BrokerError {
    /// True for [`BrokerError::Retryable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, BrokerError::Retryable { .. })
    }

    /// True for [`BrokerError::UnknownOutcome`]: state at the broker is unknown.
    pub fn is_unknown_outcome(&self) -> bool {
        matches!(self, BrokerError::UnknownOutcome { .. })
    }
}
