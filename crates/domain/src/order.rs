//! Orders as keel proposes and tracks them.

use crate::Symbol;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Increase a long position (or cover a short).
    Buy,
    /// Decrease a long position (or open a short, when shorting is enabled).
    Sell,
}

impl Side {
    /// The lowercase wire name (`buy`/`sell`), also used inside client order ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// +1 for buys, -1 for sells: multiply a quantity by it to get the signed position change.
    pub fn sign(self) -> Decimal {
        match self {
            Side::Buy => Decimal::ONE,
            Side::Sell => Decimal::NEGATIVE_ONE,
        }
    }

    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Market or limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    /// Fill at the prevailing price.
    Market,
    /// Fill at the limit price or better.
    Limit,
}

/// How long an order stays working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimeInForce {
    /// Until the end of the session.
    Day,
    /// Immediate or cancel.
    Ioc,
    /// Good till cancelled.
    Gtc,
}

/// An order keel intends to send (or has sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Deterministic id (see [`crate::client_order_id`]); the broker's dedup key.
    pub client_order_id: String,
    /// What to trade.
    pub symbol: Symbol,
    /// Which way.
    pub side: Side,
    /// Shares, always positive.
    pub qty: Decimal,
    /// Market or limit.
    pub order_type: OrderType,
    /// Required for limit orders.
    pub limit_price: Option<Decimal>,
    /// Time in force.
    pub time_in_force: TimeInForce,
}

/// Lifecycle state of an order at the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Intent recorded locally, not yet known to be at the broker.
    Intent,
    /// Accepted by the broker, working.
    Accepted,
    /// Some quantity filled, rest working.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Cancelled (possibly after partial fills).
    Canceled,
    /// Refused by the broker.
    Rejected,
    /// Expired at the end of its time in force.
    Expired,
}

impl OrderStatus {
    /// True when no further fills can arrive.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled | OrderStatus::Canceled | OrderStatus::Rejected | OrderStatus::Expired
        )
    }

    /// Stable lowercase name used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Intent => "intent",
            OrderStatus::Accepted => "accepted",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Expired => "expired",
        }
    }

    /// Inverse of [`OrderStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "intent" => OrderStatus::Intent,
            "accepted" => OrderStatus::Accepted,
            "partially_filled" => OrderStatus::PartiallyFilled,
            "filled" => OrderStatus::Filled,
            "canceled" => OrderStatus::Canceled,
            "rejected" => OrderStatus::Rejected,
            "expired" => OrderStatus::Expired,
            _ => return None,
        })
    }
}
