//! Worker settings: how cycles retry, reconcile and trip the kill switch.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Longest `stale_order_secs`: a week (orders are Day orders; anything longer
/// only hides a stuck order). The worker clamps to it as well.
pub const MAX_STALE_ORDER_SECS: i64 = 604_800;

/// How the execution cycle behaves. Every key has a safe default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Working orders older than this are cancelled before re-planning (never stacked).
    #[schemars(range(min = 1, max = MAX_STALE_ORDER_SECS))]
    pub stale_order_secs: i64,
    /// Cycles per target set before keel stops chasing it (each cycle is one `attempt` in client order ids).
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: u32,
    /// Resends allowed after a retryable broker error, per order.
    #[schemars(range(min = 0, max = 20))]
    pub retry_budget: u32,
    /// Pause between retries, in milliseconds (the broker's retry-after wins when longer, capped at 5 s).
    #[schemars(range(min = 0, max = 60000))]
    pub retry_backoff_ms: u64,
    /// Cash difference between store and broker tolerated by reconciliation.
    #[schemars(range(min = 0, max = 100))]
    pub reconcile_cash_tolerance: Decimal,
    /// Share difference per symbol tolerated by reconciliation.
    #[schemars(range(min = 0, max = 1))]
    pub reconcile_qty_tolerance: Decimal,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            stale_order_secs: 900,
            max_attempts: 3,
            retry_budget: 3,
            retry_backoff_ms: 200,
            reconcile_cash_tolerance: Decimal::new(1, 2),
            reconcile_qty_tolerance: Decimal::ZERO,
        }
    }
}

/// Automatic kill-switch triggers and the manual flag file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KillSwitchConfig {
    /// If this file exists, the kill switch is engaged at the next check.
    #[schemars(length(min = 1, max = 4096))]
    pub flag_file: Option<PathBuf>,
    /// Engage when equity falls this fraction below the previous close's equity (0.05 = 5%).
    #[schemars(extend("exclusiveMinimum" = 0, "exclusiveMaximum" = 1))]
    pub daily_loss_limit: Decimal,
    /// Engage when equity falls this fraction below its highest recorded close.
    #[schemars(extend("exclusiveMinimum" = 0, "exclusiveMaximum" = 1))]
    pub drawdown_limit: Decimal,
    /// Engage when this many orders are rejected in one cycle.
    #[schemars(range(min = 1, max = 10000))]
    pub reject_storm: u32,
    /// Engage when submissions get this many unknown-outcome answers (sent, no reply)
    /// in one cycle, resolved by lookup or not: a venue that keeps timing out is sick.
    #[schemars(range(min = 1, max = 10000))]
    pub unknown_outcome_limit: u32,
}

impl Default for KillSwitchConfig {
    fn default() -> Self {
        Self {
            flag_file: None,
            daily_loss_limit: Decimal::new(5, 2),
            drawdown_limit: Decimal::new(15, 2),
            reject_storm: 5,
            unknown_outcome_limit: 3,
        }
    }
}
