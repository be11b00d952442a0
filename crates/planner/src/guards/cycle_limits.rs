//! Cycle limits (FIA/MiFID RTS 6 "maximum messages / maximum volume"): caps
//! the number of orders and the traded notional of one cycle, so a bug that
//! generates orders cannot generate unboundedly many.

use super::{cap_at, Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::fx::D64;
use crate::num::{pct, shares_for};
use crate::output::{GuardId, ReasonCode};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The per-cycle limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CycleLimits {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Maximum orders per cycle. Default 500. Risk-reducing orders are not
    /// stopped by it but count toward it.
    #[schemars(range(min = 1, max = 100000))]
    pub max_orders: u32,
    /// Maximum Σ qty × reference of the cycle's orders, as a fraction of
    /// equity. Default 1.0: enough to build a book from cash in one cycle,
    /// not to turn it over twice. Risk-reducing orders count toward it.
    #[schemars(range(max = 10), extend("exclusiveMinimum" = 0))]
    pub max_turnover: Decimal,
}

impl Default for CycleLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            max_orders: 500,
            max_turnover: Decimal::ONE,
        }
    }
}

impl Guard for CycleLimits {
    fn id(&self) -> GuardId {
        GuardId::CycleLimits
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

    /// Blocks risk-increasing orders past the order count, shrinks them to
    /// the remaining turnover.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, acc: &CycleAccumulator) -> Verdict {
        if acc.orders >= self.max_orders as usize {
            return Verdict::Block {
                reason: ReasonCode::MaxOrdersPerCycle,
                detail: format!("cycle already has {} orders; max {}", acc.orders, self.max_orders),
            };
        }
        // The pass test below on unpacked numbers, when they fit.
        let fast = || {
            let room = D64::of(self.max_turnover)?
                .mul(ctx.equity64?)?
                .sub(D64::of(acc.turnover)?)?;
            D64::fits(D64::of(c.qty)?, c.price64?, room)
        };
        if fast() == Some(true) {
            return Verdict::Pass;
        }
        let px = c.price.unwrap_or_default();
        let limit = ctx.of_equity(self.max_turnover);
        let room = fx::sat_sub(limit, acc.turnover);
        if super::fits(c.qty, px, room) {
            return Verdict::Pass;
        }
        cap_at(c, ctx, shares_for(room, px), ReasonCode::MaxTurnover, |q| {
            format!(
                "cycle turnover {} + {} {} at {px} would exceed {} of equity = {limit}; allowed {q}",
                acc.turnover,
                c.qty,
                c.symbol,
                pct(self.max_turnover)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn order_count_stops_risk_increasing_orders() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .target("MSFT", "0.1")
            .quote("MSFT", "100")
            .position("IBM", "10")
            .quote("IBM", "100")
            .with(|f| f.cfg.guards.cycle_limits.max_orders = 1);
        let plan = fx.plan();
        // The IBM sell goes first and is exempt; it uses the one slot.
        assert!(decision(&plan, "IBM").is_sent());
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::MaxOrdersPerCycle);
        assert_blocked(decision(&plan, "MSFT"), ReasonCode::MaxOrdersPerCycle);
    }

    #[test]
    fn turnover_shrinks_the_last_buys() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .target("MSFT", "0.1")
            .quote("MSFT", "100")
            .with(|f| f.cfg.guards.cycle_limits.max_turnover = d("0.15"));
        let plan = fx.plan();
        assert_eq!(decision(&plan, "AAPL").final_qty, d("100"));
        let msft = decision(&plan, "MSFT");
        assert_eq!(msft.final_qty, d("50"));
        assert!(matches!(
            msft.outcome,
            Outcome::Resize {
                reason: ReasonCode::MaxTurnover,
                ..
            }
        ));
    }
}
