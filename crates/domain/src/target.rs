//! Target sets: the allocator's statement of the whole desired portfolio.

use crate::Symbol;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One desired weight (fraction of equity; negative is short).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The instrument.
    pub symbol: Symbol,
    /// Fraction of account equity.
    pub weight: Decimal,
}

/// A validated target portfolio. Symbols absent from `targets` have weight 0.
/// Construct one through `keel-intake`, which enforces every intake rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSet {
    /// The allocator's id; also part of every client order id derived from this set.
    pub id: String,
    /// When the allocator computed it.
    pub as_of: DateTime<Utc>,
    /// After this instant the set must not be traded.
    pub valid_until: Option<DateTime<Utc>>,
    /// Desired weights, sorted by symbol.
    pub targets: Vec<Target>,
    /// Explicit permission to liquidate (required for near-empty sets).
    pub liquidate: bool,
}

impl TargetSet {
    /// Target weight of `symbol` (zero when absent).
    pub fn weight(&self, symbol: &Symbol) -> Decimal {
        self.targets
            .binary_search_by(|t| t.symbol.cmp(symbol))
            .map(|i| self.targets[i].weight)
            .unwrap_or_default()
    }

    /// Sum of absolute weights.
    pub fn gross(&self) -> Decimal {
        self.targets.iter().map(|t| t.weight.abs()).sum()
    }

    /// Sum of signed weights.
    pub fn net(&self) -> Decimal {
        self.targets.iter().map(|t| t.weight).sum()
    }
}
