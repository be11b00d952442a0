//! No-trade band: changes too small to matter are not traded, so rounding and
//! price drift don't turn into a stream of tiny orders that only pay spread.

use super::{Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::num::{mul, pct};
use crate::output::{GuardId, ReasonCode};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The no-trade band. An order is ignored when any threshold is not met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NoTradeBand {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Minimum change as a fraction of equity. Default 0.0001 (1 bp): a
    /// 3,000-name book holds ~3 bps per name, so re-weighting a name by a
    /// third still trades while a day's few-percent drift (~0.1 bp) does not.
    #[schemars(range(min = 0, max = 0.1))]
    pub min_weight: Decimal,
    /// Minimum change in currency (at the reference price). Default 10.
    #[schemars(range(min = 0, max = 1000000))]
    pub min_notional: Decimal,
    /// Minimum change in shares. Default 0 (off).
    #[schemars(range(min = 0, max = 1000000))]
    pub min_shares: Decimal,
    /// Let an order that closes a position completely (target 0) through
    /// whatever its size, so small leftovers can always be exited. Default `true`.
    pub exempt_full_exit: bool,
}

impl Default for NoTradeBand {
    fn default() -> Self {
        Self {
            enabled: true,
            min_weight: Decimal::new(1, 4),
            min_notional: Decimal::TEN,
            min_shares: Decimal::ZERO,
            exempt_full_exit: true,
        }
    }
}

/// The band in currency for one plan, and the explanation every order it
/// stops shares. Computed once per plan: formatting the same numbers for
/// thousands of drifting symbols was most of a large plan's cost, and each
/// decision already records its own quantity and price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Band {
    pub threshold: Decimal,
    /// The threshold unpacked, when it fits.
    pub threshold64: Option<fx::D64>,
    pub detail: String,
}

impl NoTradeBand {
    /// The band at `equity`.
    pub(crate) fn band(&self, equity: Decimal) -> Band {
        let threshold = self.min_notional.max(mul(self.min_weight, equity));
        let detail = format!(
            "notional change below the no-trade band of {threshold} (max of {} and {} of equity {equity})",
            self.min_notional,
            pct(self.min_weight)
        );
        Band {
            threshold,
            threshold64: fx::D64::of(threshold),
            detail,
        }
    }
}

/// The plan's precomputed band threshold, unpacked, for the configured guard.
#[inline]
fn band_threshold64(g: &NoTradeBand, ctx: &Ctx<'_>) -> Option<fx::D64> {
    if std::ptr::eq(g, &ctx.cfg.guards.no_trade_band) {
        ctx.band.threshold64
    } else {
        None
    }
}

impl Guard for NoTradeBand {
    fn id(&self) -> GuardId {
        GuardId::NoTradeBand
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    /// Blocks orders below the band, risk-reducing ones too (the band is about
    /// churn, not risk), except full exits when `exempt_full_exit` is set.
    /// Runs before any resizing guard, so it judges the planner's proposal.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        // Flattens the position exactly: the whole order reduces, down to zero.
        let full_exit = c.target_qty.is_some_and(|t| t.is_zero()) && fx::eq(c.qty, c.reducible());
        if self.exempt_full_exit && full_exit {
            return Verdict::Pass;
        }
        // notional = qty × price, compared with the band unpacked when everything fits.
        let unpacked = match (band_threshold64(self, ctx), fx::D64::of(c.qty), c.price64) {
            (Some(t), Some(q), Some(p)) => q.mul(p).and_then(|n| n.cmp(t)),
            _ => None,
        };
        // The configured guard uses the plan's precomputed band; another instance (tests) computes its own.
        let configured = std::ptr::eq(self, &ctx.cfg.guards.no_trade_band);
        let own;
        let band = if configured {
            &ctx.band
        } else {
            own = self.band(ctx.equity);
            &own
        };
        let below = match unpacked {
            Some(o) => o == std::cmp::Ordering::Less,
            None => fx::lt(mul(c.qty, c.price.unwrap_or_default()), band.threshold),
        };
        if below {
            return Verdict::Block {
                reason: ReasonCode::BelowNoTradeBand,
                detail: band.detail.clone(),
            };
        }
        if fx::lt(c.qty, self.min_shares) {
            return Verdict::Block {
                reason: ReasonCode::BelowNoTradeBand,
                detail: format!(
                    "change of {} {} is below the band of {} shares",
                    c.qty, c.symbol, self.min_shares
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
    fn small_changes_are_ignored() {
        // Equity 100,000: band = max(10, 0.0002 * 100,000) = 20.
        let g = NoTradeBand {
            min_weight: d("0.0002"),
            ..Default::default()
        };
        let fx = Fixture::new().target("AAPL", "0.0001").quote("AAPL", "10");
        // 0.0001 * 100,000 / 10 = 1 share = 10 notional < 20.
        let v = check(&g, &fx, "AAPL");
        assert!(
            matches!(&v, Verdict::Block { reason: ReasonCode::BelowNoTradeBand, detail } if detail.contains("no-trade band of 20.0000 (max of 10 and 0.02% of equity 100000)")),
            "{v:?}"
        );
        let fx = Fixture::new().target("AAPL", "0.0003").quote("AAPL", "10");
        assert_eq!(check(&g, &fx, "AAPL"), Verdict::Pass);
        // The default band (1 bp, at least 10): 10 notional passes, 5 does not.
        let fx = Fixture::new().target("AAPL", "0.0001").quote("AAPL", "10");
        assert_eq!(check(&NoTradeBand::default(), &fx, "AAPL"), Verdict::Pass);
        let fx = Fixture::new().target("AAPL", "0.00005").quote("AAPL", "5");
        let plan = fx.plan();
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::BelowNoTradeBand);
        assert_eq!(
            block_detail(decision(&plan, "AAPL")),
            "notional change below the no-trade band of 10 (max of 10 and 0.01% of equity 100000)"
        );
    }

    #[test]
    fn share_threshold() {
        let g = NoTradeBand {
            min_shares: d("5"),
            ..Default::default()
        };
        let fx = Fixture::new().target("AAPL", "0.004").quote("AAPL", "100");
        // 4 shares, 400 notional: passes the notional band, fails the share band.
        assert!(matches!(check(&g, &fx, "AAPL"), Verdict::Block { .. }));
    }

    #[test]
    fn full_exit_is_exempt_partial_is_not() {
        let fx = Fixture::new().position("AAPL", "1").quote("AAPL", "5");
        assert_eq!(check(&NoTradeBand::default(), &fx, "AAPL"), Verdict::Pass);
        let g = NoTradeBand {
            exempt_full_exit: false,
            ..Default::default()
        };
        assert!(matches!(check(&g, &fx, "AAPL"), Verdict::Block { .. }));
        // Partial reduction by one share is still churn.
        let fx = Fixture::new()
            .position("AAPL", "3")
            .target("AAPL", "0.0001")
            .quote("AAPL", "5");
        assert!(matches!(
            check(&NoTradeBand::default(), &fx, "AAPL"),
            Verdict::Block { .. }
        ));
    }
}
