//! What the broker says the account looks like at one instant.

use crate::{OrderType, Side, Symbol};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A holding. Negative `qty` is a short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The instrument.
    pub symbol: Symbol,
    /// Signed shares.
    pub qty: Decimal,
    /// Average cost per share.
    pub avg_cost: Decimal,
}

/// A top-of-book quote. Quotes carry their own timestamp so staleness is checkable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The instrument.
    pub symbol: Symbol,
    /// Best bid.
    pub bid: Decimal,
    /// Best ask.
    pub ask: Decimal,
    /// Last trade price.
    pub last: Decimal,
    /// When the quote was observed.
    pub ts: DateTime<Utc>,
}

impl Quote {
    /// The reference price used for sizing and collars: the mid when the book
    /// is sane, else the last trade.
    pub fn reference(&self) -> Decimal {
        if self.bid > Decimal::ZERO && self.ask >= self.bid {
            (self.bid + self.ask) / Decimal::TWO
        } else {
            self.last
        }
    }
}

/// An order working at the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOrder {
    /// keel's id for it.
    pub client_order_id: String,
    /// The instrument.
    pub symbol: Symbol,
    /// Which way.
    pub side: Side,
    /// Ordered shares.
    pub qty: Decimal,
    /// Shares filled so far.
    pub filled_qty: Decimal,
    /// Market or limit.
    pub order_type: OrderType,
    /// Limit price if any.
    pub limit_price: Option<Decimal>,
    /// When it was submitted; used to find stale orders.
    pub submitted_at: DateTime<Utc>,
}

impl OpenOrder {
    /// Shares still working.
    pub fn remaining(&self) -> Decimal {
        (self.qty - self.filled_qty).max(Decimal::ZERO)
    }
}

/// Account state as the broker reports it; the planner's view of the world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AccountSnapshot {
    /// Which account.
    pub account_id: String,
    /// Settled plus unsettled cash.
    pub cash: Decimal,
    /// Cash plus market value of positions.
    pub equity: Decimal,
    /// What the broker will let us spend.
    pub buying_power: Decimal,
    /// Holdings by symbol.
    pub positions: BTreeMap<Symbol, Position>,
    /// Working orders.
    pub open_orders: Vec<OpenOrder>,
    /// Latest quotes by symbol.
    pub quotes: BTreeMap<Symbol, Quote>,
}

impl AccountSnapshot {
    /// Signed shares held in `symbol` (zero when flat).
    pub fn held(&self, symbol: &Symbol) -> Decimal {
        self.positions.get(symbol).map(|p| p.qty).unwrap_or_default()
    }

    /// Shares already committed to working orders on `side` for `symbol`.
    pub fn committed(&self, symbol: &Symbol, side: Side) -> Decimal {
        self.open_orders
            .iter()
            .filter(|o| &o.symbol == symbol && o.side == side)
            .map(OpenOrder::remaining)
            .sum()
    }

    /// Market value of a position at the reference price (zero without a quote).
    pub fn market_value(&self, symbol: &Symbol) -> Decimal {
        let px = self.quotes.get(symbol).map(Quote::reference).unwrap_or_default();
        self.held(symbol) * px
    }

    /// Equity recomputed from cash and quotes; the broker's `equity` may lag.
    pub fn marked_equity(&self) -> Decimal {
        self.cash
            + self
                .positions
                .keys()
                .map(|s| self.market_value(s))
                .sum::<Decimal>()
    }
}
