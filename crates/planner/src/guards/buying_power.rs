//! Buying power (SEC 15c3-5 credit threshold): buys are limited to the cash
//! the broker will let the account spend, after what working buys already
//! committed. Sells run first; their proceeds count only as configured,
//! because a buy can fill before the sell that was meant to pay for it.

use super::{cap_at, Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::fx::D64;
use crate::num::{mul, shares_for, BPS};
use crate::output::{GuardId, ReasonCode};
use keel_domain::Side;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The buying-power check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BuyingPower {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Fraction of this cycle's estimated sell proceeds (at the sell limit)
    /// that buys may spend. Default 0: proceeds count only once the broker
    /// reports them in the next snapshot, so a buy never relies on a sell
    /// that has not filled. Raise it (e.g. 0.95) to rotate in one cycle.
    #[schemars(range(min = 0, max = 1))]
    pub sell_proceeds_fraction: Decimal,
    /// Subtract working buys' notional from the broker's buying power.
    /// Default `true`: double-counting is the safe error. Set `false` for
    /// brokers whose buying power already nets open orders.
    pub subtract_open_buys: bool,
    /// Price buffer for market orders (which have no limit), in bps over the
    /// reference for buys and under it for sells. Default 100.
    #[schemars(range(min = 0, max = 1000))]
    pub market_buffer_bps: Decimal,
}

impl Default for BuyingPower {
    fn default() -> Self {
        Self {
            enabled: true,
            sell_proceeds_fraction: Decimal::ZERO,
            subtract_open_buys: true,
            market_buffer_bps: Decimal::from(100),
        }
    }
}

/// Worst price a buy can pay: its limit, or reference plus the market buffer.
pub(crate) fn buy_price(c: &Candidate<'_>, cfg: &BuyingPower) -> Decimal {
    c.limit_price
        .unwrap_or_else(|| buffered(c.price.unwrap_or_default(), cfg.market_buffer_bps))
}

/// Worst price a sell can get: its limit, or reference minus the market buffer.
pub(crate) fn sell_price(c: &Candidate<'_>, cfg: &BuyingPower) -> Decimal {
    c.limit_price
        .unwrap_or_else(|| buffered(c.price.unwrap_or_default(), -cfg.market_buffer_bps))
}

/// `price × (1 + bps / 10000)`, saturating; never negative.
pub(crate) fn buffered(price: Decimal, bps: Decimal) -> Decimal {
    let factor = fx::sat_add(Decimal::ONE, bps.checked_div(BPS).unwrap_or_default());
    fx::max(mul(price, factor), Decimal::ZERO)
}

impl Guard for BuyingPower {
    fn id(&self) -> GuardId {
        GuardId::BuyingPower
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

    /// Shrinks buys to what the remaining buying power pays for at the buy
    /// price. A short cover (risk-reducing) passes but still spends.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, acc: &CycleAccumulator) -> Verdict {
        if c.side != Side::Buy {
            return Verdict::Pass;
        }
        if let Some(why) = &acc.buying_power_unknown {
            return Verdict::Block {
                reason: ReasonCode::BuyingPower,
                detail: why.clone(),
            };
        }
        // The pass test below on unpacked numbers, for a limit order (its cost is the limit).
        let fast = || {
            D64::fits(
                D64::of(c.qty)?,
                D64::of(c.limit_price?)?,
                D64::of(acc.buying_power)?,
            )
        };
        if fast() == Some(true) {
            return Verdict::Pass;
        }
        let cost = buy_price(c, self);
        let remaining = acc.buying_power;
        if super::fits(c.qty, cost, remaining) {
            return Verdict::Pass;
        }
        cap_at(
            c,
            ctx,
            shares_for(remaining, cost),
            ReasonCode::BuyingPower,
            |q| {
                format!(
                    "buying power {remaining} pays for {q} of {} {} at {cost}",
                    c.qty, c.symbol
                )
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn buys_shrink_to_buying_power_in_symbol_order() {
        let fx = Fixture::new()
            .target("AAPL", "0.2")
            .quote("AAPL", "100")
            .target("MSFT", "0.2")
            .quote("MSFT", "100")
            .with(|f| f.snapshot.buying_power = d("30000"));
        let plan = fx.plan();
        // AAPL 200 at 100.10 = 20,020; leaves 9,980 -> 99 MSFT.
        assert_eq!(decision(&plan, "AAPL").final_qty, d("200"));
        let msft = decision(&plan, "MSFT");
        assert_eq!(msft.final_qty, d("99"));
        assert!(matches!(
            msft.outcome,
            Outcome::Resize {
                reason: ReasonCode::BuyingPower,
                ..
            }
        ));
    }

    #[test]
    fn open_buys_are_subtracted_unless_configured() {
        let fx = Fixture::new()
            .target("AAPL", "0.2")
            .quote("AAPL", "100")
            .open_order_limit("MSFT", Side::Buy, "900", "100")
            .quote("MSFT", "100")
            .with(|f| {
                f.snapshot.buying_power = d("100000");
                // The working MSFT buy also counts toward gross exposure; isolate buying power.
                f.cfg.guards.exposure.enabled = false;
            });
        // 100,000 - 90,000 committed = 10,000 -> 99 shares at 100.10.
        assert_eq!(decision(&fx.plan(), "AAPL").final_qty, d("99"));
        let fx = fx.with(|f| f.cfg.guards.buying_power.subtract_open_buys = false);
        assert_eq!(decision(&fx.plan(), "AAPL").final_qty, d("200"));
    }

    #[test]
    fn sell_proceeds_count_only_as_configured() {
        let fx = Fixture::new()
            .cash("0")
            .position("AAPL", "100")
            .quote("AAPL", "100")
            .target("MSFT", "1")
            .quote("MSFT", "100")
            .with(|f| {
                f.snapshot.buying_power = d("0");
                // Isolate buying power from the weight and turnover caps.
                f.cfg.guards.max_position_weight.enabled = false;
                f.cfg.guards.cycle_limits.enabled = false;
            });
        let plan = fx.plan();
        assert_eq!(decision(&plan, "AAPL").final_qty, d("100"));
        assert_blocked(decision(&plan, "MSFT"), ReasonCode::BuyingPower);
        // Half the proceeds of 100 * 99.90 = 4,995 -> 49 shares at 100.10.
        let fx = fx.with(|f| f.cfg.guards.buying_power.sell_proceeds_fraction = d("0.5"));
        assert_eq!(decision(&fx.plan(), "MSFT").final_qty, d("49"));
    }

    #[test]
    fn open_market_buy_without_price_fails_closed() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .open_order("MSFT", Side::Buy, "10");
        let plan = fx.plan();
        let dd = decision(&plan, "AAPL");
        assert_blocked(dd, ReasonCode::BuyingPower);
        assert!(block_detail(dd).contains("MSFT"), "{}", block_detail(dd));
    }

    #[test]
    fn market_orders_use_the_buffer() {
        let fx = Fixture::new()
            .target("AAPL", "0.5")
            .quote("AAPL", "100")
            .with(|f| {
                f.snapshot.buying_power = d("10100");
                f.cfg.planner.order_type = keel_domain::OrderType::Market;
            });
        // 10,100 / 101 = 100 shares.
        assert_eq!(decision(&fx.plan(), "AAPL").final_qty, d("100"));
    }
}
