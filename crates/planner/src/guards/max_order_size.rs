//! Maximum order size (SEC 15c3-5 credit/capital threshold per order): caps
//! each order's notional and share count, so a units error in a target or a
//! quote cannot become one enormous order.

use super::{cap_at, Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::fx::D64;
use crate::num::shares_for;
use crate::output::{GuardId, ReasonCode};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The per-order size caps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MaxOrderSize {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Maximum notional per order, at the worse of reference and limit price.
    /// Default 1,000,000.
    #[schemars(range(max = 1_000_000_000_000_i64), extend("exclusiveMinimum" = 0))]
    pub max_notional: Decimal,
    /// Maximum shares per order. Default 100,000.
    #[schemars(range(max = 1000000000), extend("exclusiveMinimum" = 0))]
    pub max_shares: Decimal,
}

impl Default for MaxOrderSize {
    fn default() -> Self {
        Self {
            enabled: true,
            max_notional: Decimal::from(1_000_000),
            max_shares: Decimal::from(100_000),
        }
    }
}

impl Guard for MaxOrderSize {
    fn id(&self) -> GuardId {
        GuardId::MaxOrderSize
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    /// Shrinks every order, risk-reducing ones too (a huge sell moves the
    /// market as much as a huge buy), to the tighter of the two caps.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        let px = c.notional_price();
        // The pass test below on unpacked numbers, when they fit.
        let fast = || {
            let qty = D64::of(c.qty)?;
            Some(
                qty.le(D64::of(self.max_shares)?)?
                    && D64::fits(qty, D64::of(px)?, D64::of(self.max_notional)?)?,
            )
        };
        if fast() == Some(true) {
            return Verdict::Pass;
        }
        if fx::le(c.qty, self.max_shares) && super::fits(c.qty, px, self.max_notional) {
            return Verdict::Pass;
        }
        let by_notional = shares_for(self.max_notional, px);
        let (max, reason) = if fx::lt(by_notional, self.max_shares) {
            (by_notional, ReasonCode::MaxOrderNotional)
        } else {
            (self.max_shares, ReasonCode::MaxOrderShares)
        };
        cap_at(c, ctx, max, reason, |q| {
            format!(
                "{} {} at {px}: max notional {} / max shares {}; allowed {q}",
                c.qty, c.symbol, self.max_notional, self.max_shares
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn notional_and_share_caps() {
        let fx = Fixture::new().target("AAPL", "0.5").quote("AAPL", "100");
        // 500 shares at limit 100.10 = 50,050.
        let g = MaxOrderSize {
            max_notional: d("10000"),
            ..Default::default()
        };
        let v = check(&g, &fx, "AAPL");
        // 10,000 / 100.10 = 99.9 -> 99.
        assert!(
            matches!(v, Verdict::Cap { qty, reason: ReasonCode::MaxOrderNotional, .. } if qty == d("99")),
            "{v:?}"
        );
        let g = MaxOrderSize {
            max_shares: d("42"),
            ..Default::default()
        };
        assert!(
            matches!(check(&g, &fx, "AAPL"), Verdict::Cap { qty, reason: ReasonCode::MaxOrderShares, .. } if qty == d("42"))
        );
        assert_eq!(check(&MaxOrderSize::default(), &fx, "AAPL"), Verdict::Pass);
    }

    #[test]
    fn applies_to_sells_and_blocks_at_zero() {
        let fx = Fixture::new()
            .position("AAPL", "500")
            .quote("AAPL", "100")
            .with(|f| f.cfg.guards.max_order_size.max_shares = d("200"));
        let plan = fx.plan();
        assert_eq!(decision(&plan, "AAPL").final_qty, d("200"));
        let fx = fx.with(|f| f.cfg.guards.max_order_size.max_notional = d("50"));
        assert_blocked(decision(&fx.plan(), "AAPL"), ReasonCode::MaxOrderNotional);
    }
}
