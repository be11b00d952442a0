//! Gross and net exposure limits: the book as a whole may not grow beyond the
//! configured leverage, whatever the targets sum to.
//!
//! Exposure is measured at reference prices on the *projected* book: held
//! positions plus working orders plus the orders this cycle has already
//! accepted, as if all fill. Sells run first, so buys can use the room they
//! free; if those sells don't fill, the broker's buying-power check and the
//! next cycle's replan are the backstop.

use super::{cap_increase, Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::fx::D64;
use crate::num::{mul, pct, shares_for};
use crate::output::{GuardId, ReasonCode};
use keel_domain::Side;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The exposure limits, as fractions of equity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExposureLimits {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Maximum Σ|position × price| / equity. Default 1.0: no leverage.
    #[schemars(range(max = 10), extend("exclusiveMinimum" = 0))]
    pub max_gross: Decimal,
    /// Maximum |Σ position × price| / equity. Default 1.0.
    #[schemars(range(min = 0, max = 10))]
    pub max_net: Decimal,
}

impl Default for ExposureLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            max_gross: Decimal::ONE,
            max_net: Decimal::ONE,
        }
    }
}

impl ExposureLimits {
    /// The pass test of [`Guard::check`] below on unpacked numbers (the
    /// same operations, so the same answer); `None` when something does not fit.
    #[inline]
    fn fits_fast(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, acc: &CycleAccumulator) -> Option<bool> {
        let f = c.fast()?;
        let px = f.price;
        let reducing = f.reducing_qty()?.mul(px)?;
        let gross_mid = D64::of(acc.gross)?.sub(reducing)?;
        let net_mid = D64::of(acc.net)?.add(f.sign.mul(reducing)?)?;
        let equity = ctx.equity64?;
        let gross_room = D64::of(self.max_gross)?.mul(equity)?.sub(gross_mid)?;
        let net_limit = D64::of(self.max_net)?.mul(equity)?;
        let net_room = match c.side {
            Side::Buy => net_limit.sub(net_mid)?,
            Side::Sell => net_limit.add(net_mid)?,
        };
        let increase = f.increasing_qty()?;
        Some(D64::fits(increase, px, gross_room)? && D64::fits(increase, px, net_room)?)
    }
}

impl Guard for ExposureLimits {
    fn id(&self) -> GuardId {
        GuardId::ExposureLimits
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn reads_cycle(&self) -> bool {
        true
    }

    /// Risk-reducing orders always pass (even if they move net the wrong
    /// way); the rest is capped so gross and net after the order stay within
    /// the limits.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, acc: &CycleAccumulator) -> Verdict {
        if self.fits_fast(c, ctx, acc) == Some(true) {
            return Verdict::Pass;
        }
        let px = c.price.unwrap_or_default();
        let reducing = mul(c.reducing_qty(), px);
        // After the reducing part: the symbol's gross shrinks by it, net moves by it.
        let gross_mid = fx::sat_sub(acc.gross, reducing);
        let net_mid = fx::sat_add(acc.net, mul(c.sign(), reducing));
        let gross_limit = ctx.of_equity(self.max_gross);
        let net_limit = ctx.of_equity(self.max_net);
        let gross_room = fx::sat_sub(gross_limit, gross_mid);
        let net_room = match c.side {
            Side::Buy => fx::sat_sub(net_limit, net_mid),
            Side::Sell => fx::sat_add(net_limit, net_mid),
        };
        let increase = c.increasing_qty();
        if super::fits(increase, px, gross_room) && super::fits(increase, px, net_room) {
            return Verdict::Pass;
        }
        let by_gross = shares_for(gross_room, px);
        let by_net = shares_for(net_room, px);
        let (max_increase, reason, which, limit, now) = if fx::le(by_gross, by_net) {
            (
                by_gross,
                ReasonCode::MaxGrossExposure,
                "gross",
                self.max_gross,
                gross_mid,
            )
        } else {
            (by_net, ReasonCode::MaxNetExposure, "net", self.max_net, net_mid)
        };
        cap_increase(c, ctx, max_increase, reason, |q| {
            format!(
                "{which} exposure {now} with {} {} {} would exceed {} of equity {}; allowed {q}",
                c.side,
                c.qty,
                c.symbol,
                pct(limit),
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
    fn gross_cap_shrinks_buys() {
        // Equity 100,000 all cash; gross limit 0.5 -> 50,000 at 100 = 500 shares.
        let fx = Fixture::new()
            .target("AAPL", "0.4")
            .quote("AAPL", "100")
            .target("MSFT", "0.4")
            .quote("MSFT", "100")
            .with(|f| {
                f.cfg.guards.exposure.max_gross = d("0.5");
                f.cfg.guards.max_position_weight.enabled = false;
            });
        let plan = fx.plan();
        assert_eq!(decision(&plan, "AAPL").final_qty, d("400"));
        let msft = decision(&plan, "MSFT");
        assert_eq!(msft.final_qty, d("100"));
        assert!(matches!(
            msft.outcome,
            Outcome::Resize {
                reason: ReasonCode::MaxGrossExposure,
                ..
            }
        ));
        assert!(plan.exposure.gross_after <= d("50000"));
    }

    #[test]
    fn sells_free_room_for_buys() {
        // Fully invested: 100,000 equity = 1000 AAPL at 100. Rotate half into MSFT.
        let fx = Fixture::new()
            .cash("0")
            .position("AAPL", "1000")
            .quote("AAPL", "100")
            .target("AAPL", "0.5")
            .target("MSFT", "0.5")
            .quote("MSFT", "100")
            .with(|f| {
                f.cfg.guards.buying_power.sell_proceeds_fraction = d("1");
                f.cfg.guards.buying_power.enabled = false;
                f.cfg.guards.max_position_weight.enabled = false;
            });
        let plan = fx.plan();
        assert_eq!(plan.orders.len(), 2);
        assert_eq!(plan.orders[0].side, Side::Sell);
        // Gross after the sell is 50,000: exactly room for 500 MSFT.
        assert_eq!(
            decision(&plan, "MSFT").final_qty,
            d("500"),
            "{:#?}",
            plan.decisions
        );
        assert_eq!(plan.exposure.gross_after, d("100000"));
        // One more share of target would exceed the limit.
        let fx = fx.target("NVDA", "0.01").quote("NVDA", "100");
        let plan = fx.plan();
        assert_blocked(decision(&plan, "NVDA"), ReasonCode::MaxGrossExposure);
    }

    #[test]
    fn net_cap_applies_to_shorts() {
        let fx = Fixture::new()
            .target("AAPL", "-0.5")
            .quote("AAPL", "100")
            .with(|f| {
                f.cfg.planner.allow_short = true;
                f.cfg.guards.exposure.max_net = d("0.2");
                f.cfg.guards.max_position_weight.enabled = false;
            });
        let plan = fx.plan();
        let dd = decision(&plan, "AAPL");
        assert_eq!(dd.final_qty, d("200"));
        assert!(matches!(
            dd.outcome,
            Outcome::Resize {
                reason: ReasonCode::MaxNetExposure,
                ..
            }
        ));
    }

    #[test]
    fn over_limit_book_can_still_reduce() {
        let fx = Fixture::new()
            .cash("-50000")
            .position("AAPL", "1500")
            .quote("AAPL", "100")
            .target("AAPL", "1.2");
        // Equity 100,000, gross 150,000 > 1.0: target 1200 shares, sell 300 passes.
        let plan = fx.plan();
        assert_eq!(decision(&plan, "AAPL").final_qty, d("300"));
    }
}
