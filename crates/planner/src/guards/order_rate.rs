//! Order-rate throttle: no more than N orders in any rolling window, counting
//! orders sent by earlier cycles, so a restart loop or a fast cycle schedule
//! cannot flood the broker (Knight Capital sent millions in 45 minutes).

use super::{Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::input::GuardState;
use crate::num::{ms_between, secs_to_ms};
use crate::output::{GuardId, ReasonCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The rolling-window throttle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OrderRateThrottle {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Maximum orders per window. Default 200 (Alpaca's API allows 200
    /// requests a minute in total). Risk-reducing orders are not stopped but count.
    #[schemars(range(min = 1, max = 100000))]
    pub max_orders: u32,
    /// Window length in seconds. Default 60.
    #[schemars(range(min = 1, max = 86400))]
    pub window_secs: u64,
}

impl Default for OrderRateThrottle {
    fn default() -> Self {
        Self {
            enabled: true,
            max_orders: 200,
            window_secs: 60,
        }
    }
}

impl OrderRateThrottle {
    /// Orders in `(now − window, now]` plus any stamped after `now` (clock
    /// skew must not open the gate). Computed once per plan.
    pub(crate) fn recent(&self, state: &GuardState, now: DateTime<Utc>) -> usize {
        let window = secs_to_ms(self.window_secs);
        state
            .recent_order_times
            .iter()
            .filter(|t| ms_between(**t, now) < window)
            .count()
    }
}

impl Guard for OrderRateThrottle {
    fn id(&self) -> GuardId {
        GuardId::OrderRateThrottle
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn reads_cycle(&self) -> bool {
        true
    }

    fn exempts_risk_reducing(&self) -> bool {
        true
    }

    /// Blocks risk-increasing orders once the window is full.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, acc: &CycleAccumulator) -> Verdict {
        let used = ctx.recent_orders.saturating_add(acc.orders);
        if used >= self.max_orders as usize {
            return Verdict::Block {
                reason: ReasonCode::OrderRate,
                detail: format!(
                    "{} orders in the last {}s plus {} this cycle reach the limit of {}; {} waits",
                    ctx.recent_orders, self.window_secs, acc.orders, self.max_orders, c.symbol
                ),
            };
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn counts_the_window_only() {
        let g = OrderRateThrottle {
            max_orders: 3,
            ..Default::default()
        };
        let state = GuardState {
            recent_order_times: vec![
                t("2026-11-24T16:58:00Z"),
                t("2026-11-24T16:59:00Z"),
                t("2026-11-24T16:59:30Z"),
                t("2026-11-24T17:30:00Z"),
            ],
            ..Default::default()
        };
        // 16:59:00 is exactly 60s old: outside (now - 60s, now].
        assert_eq!(g.recent(&state, t(NOW)), 2);
    }

    #[test]
    fn full_window_blocks_buys_not_reducing_sells() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .position("MSFT", "10")
            .quote("MSFT", "100")
            .with(|f| {
                f.cfg.guards.order_rate.max_orders = 2;
                f.state.recent_order_times = vec![t("2026-11-24T16:59:30Z")];
            });
        let plan = fx.plan();
        assert!(decision(&plan, "MSFT").is_sent());
        let dd = decision(&plan, "AAPL");
        assert_blocked(dd, ReasonCode::OrderRate);
        assert!(block_detail(dd).contains("1 orders in the last 60s plus 1 this cycle"));
    }
}
