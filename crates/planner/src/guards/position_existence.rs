//! Position existence (invariant 1): a sell never exceeds the shares held
//! minus the shares already committed to working sells, unless shorting is
//! enabled (`planner.allow_short`).

use super::{Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::output::{GuardId, ReasonCode};
use keel_domain::Side;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The position-existence guard. It has no `enabled` flag: it enforces an
/// invariant; shorting is a planner setting, not a guard switch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PositionExistence {}

impl Guard for PositionExistence {
    fn id(&self) -> GuardId {
        GuardId::PositionExistence
    }

    fn enabled(&self) -> bool {
        true
    }

    /// Shrinks a sell to held − committed sells (rounded down to the lot) and
    /// blocks it when nothing is left. Working *buys* are not counted as held:
    /// they may never fill.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        if c.side != Side::Sell || ctx.cfg.planner.allow_short {
            return Verdict::Pass;
        }
        let available = fx::checked_sub(c.held(), c.committed_sell()).unwrap_or(Decimal::ZERO);
        let detail = |q| {
            format!(
                "sell of {} {} exceeds held {} minus committed sells {} (shorting disabled); allowed {q}",
                c.qty,
                c.symbol,
                c.held(),
                c.committed_sell()
            )
        };
        super::cap_at(c, ctx, available, ReasonCode::NoPosition, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn sell_within_holdings_passes() {
        let fx = Fixture::new().position("AAPL", "100").quote("AAPL", "100");
        assert_eq!(check(&PositionExistence {}, &fx, "AAPL"), Verdict::Pass);
    }

    #[test]
    fn sell_beyond_holdings_is_resized_then_blocked() {
        // Negative target with shorting off (equity 110,000): the planner proposes 100 + 110, the guard
        // allows the 100 held.
        let fx = Fixture::new()
            .position("AAPL", "100")
            .target("AAPL", "-0.1")
            .quote("AAPL", "100");
        let plan = fx.plan();
        let dd = decision(&plan, "AAPL");
        assert_eq!(dd.proposed_qty, d("210"));
        assert_eq!(dd.final_qty, d("100"));
        assert_eq!(dd.steps[0].guard, GuardId::PositionExistence);
        // Committed sells count against what is held.
        let fx = Fixture::new()
            .position("AAPL", "100")
            .target("AAPL", "-0.1")
            .quote("AAPL", "100")
            .open_order("AAPL", Side::Sell, "100");
        let v = check(&PositionExistence {}, &fx, "AAPL");
        assert!(matches!(v, Verdict::Cap { qty, reason: ReasonCode::NoPosition, .. } if qty.is_zero()));
    }

    #[test]
    fn no_position_blocks_with_reason() {
        let fx = Fixture::new().target("AAPL", "-0.1").quote("AAPL", "100");
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        let dd = decision(&plan, "AAPL");
        assert_blocked(dd, ReasonCode::NoPosition);
        assert!(block_detail(dd).contains("exceeds held 0"));
    }

    #[test]
    fn fractional_holdings_round_down() {
        let fx = Fixture::new()
            .position("AAPL", "10.5")
            .target("AAPL", "-0.1")
            .quote("AAPL", "100");
        let v = check(&PositionExistence {}, &fx, "AAPL");
        assert!(matches!(v, Verdict::Cap { qty, .. } if qty == d("10")), "{v:?}");
    }

    #[test]
    fn shorting_allowed_passes() {
        let fx = Fixture::new()
            .target("AAPL", "-0.1")
            .quote("AAPL", "100")
            .with(|f| f.cfg.planner.allow_short = true);
        assert_eq!(check(&PositionExistence {}, &fx, "AAPL"), Verdict::Pass);
        assert_eq!(fx.plan().orders[0].qty, d("100"));
    }
}
