//! Open-order guard (invariant 2): at most one working order per symbol and
//! side. A second order on top of a working one is how duplicates happen; the
//! worker cancels stale working orders instead, and the next cycle replans.

use super::{Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::output::{GuardId, ReasonCode};
use keel_domain::Side;
use serde::{Deserialize, Serialize};

/// The open-order guard. It has no `enabled` flag: it enforces an invariant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OpenOrderGuard {
    /// Also block when an order on the *opposite* side is working. Default
    /// `false`: the planner already nets working orders into the position,
    /// so an opposite order is a legitimate change of mind; set it for brokers
    /// that reject potential wash trades.
    pub block_opposite_side: bool,
}

impl Guard for OpenOrderGuard {
    fn id(&self) -> GuardId {
        GuardId::OpenOrder
    }

    fn enabled(&self) -> bool {
        true
    }

    /// Blocks every order (risk-reducing ones too) on a symbol and side that
    /// already has a working order.
    fn check(&self, c: &Candidate<'_>, _ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        let (buys, sells) = c.open_counts();
        let (same, opposite) = match c.side {
            Side::Buy => (buys, sells),
            Side::Sell => (sells, buys),
        };
        let working = |n: u32, side: Side, remaining| Verdict::Block {
            reason: ReasonCode::OpenOrderExists,
            detail: format!(
                "{n} working {side} order(s) on {} ({remaining} shares remaining)",
                c.symbol
            ),
        };
        if same > 0 {
            let remaining = if c.side == Side::Buy {
                c.committed_buy()
            } else {
                c.committed_sell()
            };
            return working(same, c.side, remaining);
        }
        if self.block_opposite_side && opposite > 0 {
            let remaining = if c.side == Side::Buy {
                c.committed_sell()
            } else {
                c.committed_buy()
            };
            return working(opposite, c.side.opposite(), remaining);
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn same_side_working_order_blocks() {
        let fx = Fixture::new()
            .target("AAPL", "0.2")
            .quote("AAPL", "100")
            .open_order("AAPL", Side::Buy, "50");
        // Target 200 shares, 50 already working: the planner wants 150 more, the guard refuses.
        let plan = fx.plan();
        let dd = decision(&plan, "AAPL");
        assert_eq!(dd.proposed_qty, d("150"));
        assert_blocked(dd, ReasonCode::OpenOrderExists);
        assert!(block_detail(dd).contains("1 working buy order(s) on AAPL (50 shares remaining)"));
    }

    #[test]
    fn opposite_side_passes_unless_configured() {
        let fx = Fixture::new()
            .target("AAPL", "0.05")
            .position("AAPL", "100")
            .quote("AAPL", "100")
            .open_order("AAPL", Side::Buy, "10");
        // Position 100 + 10 working = 110; target 50: sell 60.
        assert_eq!(check(&OpenOrderGuard::default(), &fx, "AAPL"), Verdict::Pass);
        let g = OpenOrderGuard {
            block_opposite_side: true,
        };
        assert!(matches!(check(&g, &fx, "AAPL"), Verdict::Block { .. }));
    }

    #[test]
    fn fully_filled_but_still_open_order_blocks() {
        // Remaining 0 is still an open order at the broker: fail closed.
        let fx = Fixture::new()
            .target("AAPL", "0.2")
            .quote("AAPL", "100")
            .with(|f| {
                let mut o = open_order_obj("AAPL", Side::Buy, "10");
                o.filled_qty = d("10");
                f.snapshot.open_orders.push(o);
            });
        assert!(matches!(
            check(&OpenOrderGuard::default(), &fx, "AAPL"),
            Verdict::Block { .. }
        ));
    }
}
