//! Maximum position weight: no single name may grow beyond a fraction of
//! equity, whatever the allocator asks for (concentration risk, and the
//! classic percent-vs-fraction units error).

use super::{base_after_reducing, cap_increase, Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::fx::D64;
use crate::num::{pct, shares_for};
use crate::output::{GuardId, ReasonCode};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The per-symbol weight cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MaxPositionWeight {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Maximum |position| × price as a fraction of equity. Default 0.20.
    #[schemars(range(max = 1), extend("exclusiveMinimum" = 0))]
    pub max_weight: Decimal,
}

impl Default for MaxPositionWeight {
    fn default() -> Self {
        Self {
            enabled: true,
            max_weight: Decimal::new(20, 2),
        }
    }
}

impl Guard for MaxPositionWeight {
    fn id(&self) -> GuardId {
        GuardId::MaxPositionWeight
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn exempts_risk_reducing(&self) -> bool {
        true
    }

    /// Caps growth so |position after| × reference ≤ max_weight × equity.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        // The pass test below on unpacked numbers, when they fit.
        let fast = || {
            let f = c.fast()?;
            let limit = D64::of(self.max_weight)?.mul(ctx.equity64?)?;
            D64::fits(f.base_after_reducing()?.add(f.increasing_qty()?)?, f.price, limit)
        };
        if fast() == Some(true) {
            return Verdict::Pass;
        }
        let px = c.price.unwrap_or_default();
        let limit = ctx.of_equity(self.max_weight);
        let base = base_after_reducing(c);
        if super::fits(fx::sat_add(base, c.increasing_qty()), px, limit) {
            return Verdict::Pass;
        }
        let max_abs = shares_for(limit, px);
        let max_increase = fx::sat_sub(max_abs, base);
        cap_increase(c, ctx, max_increase, ReasonCode::MaxPositionWeight, |q| {
            format!(
                "{} position may not exceed {} of equity {} = {limit} ({max_abs} shares at {px}); allowed {q}",
                c.symbol,
                pct(self.max_weight),
                ctx.equity
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn caps_growth_at_the_weight() {
        let fx = Fixture::new()
            .target("AAPL", "0.3")
            .quote("AAPL", "100")
            .position("AAPL", "100");
        // Equity 100,000 (cash) + 10,000 (AAPL) = 110,000; target 330 shares, cap 220.
        let v = check(&MaxPositionWeight::default(), &fx, "AAPL");
        assert!(matches!(v, Verdict::Cap { qty, .. } if qty == d("120")), "{v:?}");
    }

    #[test]
    fn reductions_of_an_oversized_position_pass() {
        let fx = Fixture::new()
            .target("AAPL", "0.25")
            .quote("AAPL", "100")
            .position("AAPL", "500");
        let plan = fx.plan();
        assert!(decision(&plan, "AAPL").is_sent());
        assert!(decision(&plan, "AAPL").steps.is_empty());
    }

    #[test]
    fn crossing_order_may_flatten_then_grow_to_the_cap() {
        let fx = Fixture::new()
            .target("AAPL", "0.3")
            .quote("AAPL", "100")
            .position("AAPL", "-100")
            .with(|f| f.cfg.planner.allow_short = true);
        // Equity 90,000; target 270; buy 370 = 100 cover + 270; cap 180 beyond zero.
        let v = check(&MaxPositionWeight::default(), &fx, "AAPL");
        assert!(matches!(v, Verdict::Cap { qty, .. } if qty == d("280")), "{v:?}");
    }
}
