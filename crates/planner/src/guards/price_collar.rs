//! Price collar (SEC 15c3-5 "erroneous order" control): a limit price more
//! than N bps from the reference quote is a fat finger or a bad quote, and is
//! refused rather than corrected.

use super::{Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::fx::D64;
use crate::num::BPS;
use crate::output::{GuardId, ReasonCode};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The price collar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PriceCollar {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Maximum distance of the limit from the reference, in bps. Default 50:
    /// five times the default limit offset, far below any real mispricing.
    #[schemars(range(max = 1000), extend("exclusiveMinimum" = 0))]
    pub max_bps: Decimal,
}

impl Default for PriceCollar {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bps: Decimal::from(50),
        }
    }
}

impl Guard for PriceCollar {
    fn id(&self) -> GuardId {
        GuardId::PriceCollar
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    /// Blocks limit orders (risk-reducing ones too: selling at a wrong price
    /// is a loss, not a risk reduction) whose limit is too far from the
    /// reference. Market orders carry no price to collar; that is why
    /// `Limit` is the default order type.
    fn check(&self, c: &Candidate<'_>, _ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        let (Some(limit), Some(reference)) = (c.limit_price, c.price) else {
            return Verdict::Pass;
        };
        // |limit - ref| * 10000 <= max_bps * ref, without dividing; unpacked when it fits.
        let fast = || {
            let reference = c.price64?;
            let distance = D64::of(limit)?.sub(reference)?.abs()?.mul(D64::of(BPS)?)?;
            distance.le(D64::of(self.max_bps)?.mul(reference)?)
        };
        if c.price64.is_some() && fast() == Some(true) {
            return Verdict::Pass;
        }
        let distance = fx::checked_sub(limit, reference).and_then(|x| fx::checked_mul(x.abs(), BPS));
        let allowed = fx::checked_mul(self.max_bps, reference);
        match (distance, allowed) {
            (Some(dist), Some(allowed)) if fx::le(dist, allowed) => Verdict::Pass,
            _ => {
                let bps = limit
                    .checked_sub(reference)
                    .and_then(|x| x.checked_mul(BPS))
                    .and_then(|x| x.checked_div(reference))
                    .map(|x| x.round_dp(1).to_string())
                    .unwrap_or_else(|| "?".into());
                Verdict::Block {
                    reason: ReasonCode::PriceCollar,
                    detail: format!(
                        "{} {} limit {limit} is {bps} bps from reference {reference}; collar {} bps",
                        c.side, c.symbol, self.max_bps
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn default_offset_is_inside_the_collar() {
        let fx = Fixture::new().target("AAPL", "0.1").quote("AAPL", "100");
        assert_eq!(check(&PriceCollar::default(), &fx, "AAPL"), Verdict::Pass);
        assert_eq!(fx.plan().orders[0].limit_price, Some(d("100.10")));
    }

    #[test]
    fn offset_beyond_collar_blocks() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .with(|f| f.cfg.planner.limit_offset_bps = d("60"));
        let v = check(&PriceCollar::default(), &fx, "AAPL");
        assert!(
            matches!(&v, Verdict::Block { reason: ReasonCode::PriceCollar, detail } if detail.contains("60.0 bps from reference 100")),
            "{v:?}"
        );
        // Risk-reducing sells are collared too.
        let fx = Fixture::new()
            .position("AAPL", "10")
            .quote("AAPL", "100")
            .with(|f| f.cfg.planner.limit_offset_bps = d("60"));
        let plan = fx.plan();
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::PriceCollar);
    }

    #[test]
    fn exactly_at_the_collar_passes_and_market_orders_pass() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .with(|f| f.cfg.planner.limit_offset_bps = d("50"));
        assert_eq!(check(&PriceCollar::default(), &fx, "AAPL"), Verdict::Pass);
        let fx = fx.with(|f| f.cfg.planner.order_type = keel_domain::OrderType::Market);
        let plan = fx.plan();
        assert_eq!(plan.orders[0].limit_price, None);
        assert_eq!(check(&PriceCollar::default(), &fx, "AAPL"), Verdict::Pass);
    }
}
