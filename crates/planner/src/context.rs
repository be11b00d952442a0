//! The data guards look at: one proposed order ([`Candidate`]), facts about
//! the whole run computed once ([`Ctx`]), and the running totals of orders
//! already accepted this cycle ([`CycleAccumulator`]).
//!
//! Everything a guard needs is precomputed here once per plan (indexes,
//! limits in currency units, the vol scale, window counts) so that a guard's
//! check is a few comparisons, not a scan.

use crate::config::RiskConfig;
use crate::guards::volatility_brake::VolScale;
use crate::num::{self, mul};
use crate::output::{GuardId, ReasonCode};
use chrono::{DateTime, Utc};
use keel_domain::{Side, Symbol};
use rust_decimal::Decimal;

/// A verdict prepared before the guards run (whole-plan blocks, or a
/// candidate the planner could not size safely).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PreBlock {
    pub guard: GuardId,
    pub reason: ReasonCode,
    pub detail: String,
}

/// One proposed order as it moves through the pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Candidate<'a> {
    pub symbol: &'a Symbol,
    pub side: Side,
    /// Current quantity (shrinks as guards resize it).
    pub qty: Decimal,
    /// What the planner proposed.
    pub proposed_qty: Decimal,
    /// Target weight (0 when the symbol is absent from the set).
    pub weight: Decimal,
    /// Desired position, rounded toward zero; `None` when unpriced.
    pub target_qty: Option<Decimal>,
    /// Shares held (signed).
    pub held: Decimal,
    /// Open buy shares still working.
    pub committed_buy: Decimal,
    /// Open sell shares still working.
    pub committed_sell: Decimal,
    /// held + committed_buy − committed_sell: where the position ends if working orders fill.
    pub position: Decimal,
    /// How much of an order on `side` can reduce |position| without crossing
    /// zero (|position| when the side opposes it, else 0). Cached because
    /// most guards ask whether the order is risk-reducing.
    pub reducible: Decimal,
    /// Working orders on this symbol: (buys, sells).
    pub open_counts: (u32, u32),
    /// Positive reference price, `None` when unusable.
    pub price: Option<Decimal>,
    /// When the quote was observed.
    pub quote_ts: Option<DateTime<Utc>>,
    /// Limit price for limit orders.
    pub limit_price: Option<Decimal>,
    /// Average daily volume, shares.
    pub adv: Option<Decimal>,
    /// Last trade time for the cooldown.
    pub last_trade_at: Option<DateTime<Utc>>,
    /// Set when the planner itself refuses the candidate (overflow, bad limit).
    pub pre_block: Option<PreBlock>,
}

impl Candidate<'_> {
    /// The part of the current quantity that moves |position| toward zero
    /// without crossing it.
    pub fn reducing_qty(&self) -> Decimal {
        self.qty.min(self.reducible)
    }

    /// The part of the current quantity that grows |position| (beyond zero).
    pub fn increasing_qty(&self) -> Decimal {
        if self.qty > self.reducible {
            self.qty.saturating_sub(self.reducible)
        } else {
            Decimal::ZERO
        }
    }

    /// True when the order at its current quantity only reduces risk.
    pub fn is_risk_reducing(&self) -> bool {
        self.qty <= self.reducible
    }

    /// |position| when an order on `side` would reduce it, else 0.
    pub fn reducible_for(side: Side, position: Decimal) -> Decimal {
        match side {
            Side::Sell if position > Decimal::ZERO => position,
            Side::Buy if position < Decimal::ZERO => -position,
            _ => Decimal::ZERO,
        }
    }

    /// +1 for buys, −1 for sells.
    pub fn sign(&self) -> Decimal {
        self.side.sign()
    }

    /// Price for order-size notionals: the worse of reference and limit, so
    /// a notional cap holds at whatever price the order can fill.
    pub fn notional_price(&self) -> Decimal {
        let px = self.price.unwrap_or_default();
        match self.limit_price {
            Some(l) if l > px => l,
            _ => px,
        }
    }
}

/// Facts about the whole run, computed once.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a RiskConfig,
    pub now: DateTime<Utc>,
    /// Equity weights are applied to (min of broker and marked).
    pub equity: Decimal,
    /// Decimal places of a lot (0 whole shares, 4 fractional).
    pub lot_dp: u32,
    /// The effective volatility scale and its explanation.
    pub vol: VolScale,
    /// The first whole-plan block in precedence order, applied to every candidate.
    pub plan_block: Option<PreBlock>,
    /// Orders in the throttle window before this plan.
    pub recent_orders: usize,
    /// Set when the account cooldown is active: its explanation.
    pub account_cooldown: Option<String>,
    /// The no-trade band in currency, with its shared explanation.
    pub band: crate::guards::no_trade_band::Band,
    /// Limit-price factors for the configured offset.
    pub pricer: num::LimitPricer,
}

impl Ctx<'_> {
    /// Rounds a quantity toward zero to the lot size.
    pub fn floor_lot(&self, q: Decimal) -> Decimal {
        num::floor_lot(q, self.lot_dp)
    }

    /// `fraction × equity`, the currency amount a fractional limit stands for.
    pub fn of_equity(&self, fraction: Decimal) -> Decimal {
        mul(fraction, self.equity)
    }
}

/// Running totals of what this cycle has accepted so far (sells first, then
/// buys), which the cumulative guards limit.
#[derive(Debug, Clone, Default)]
pub(crate) struct CycleAccumulator {
    /// Σ |position| × price with working and accepted orders filled.
    pub gross: Decimal,
    /// Σ position × price, same view.
    pub net: Decimal,
    /// Buying power left for further buys.
    pub buying_power: Decimal,
    /// Set when buying power cannot be known (an open market buy without a price).
    pub buying_power_unknown: Option<String>,
    /// Σ qty × reference of accepted orders.
    pub turnover: Decimal,
    /// Accepted orders.
    pub orders: usize,
}

impl CycleAccumulator {
    /// Records an accepted order of `qty` for candidate `c`.
    pub fn commit(&mut self, c: &Candidate<'_>, qty: Decimal, ctx: &Ctx<'_>) {
        let px = c.price.unwrap_or_default();
        let after = c.position.saturating_add(mul(c.sign(), qty));
        self.gross = self
            .gross
            .saturating_sub(mul(c.position.abs(), px))
            .saturating_add(mul(after.abs(), px));
        self.net = self.net.saturating_add(mul(mul(c.sign(), qty), px));
        self.turnover = self.turnover.saturating_add(mul(qty, px));
        let bp = &ctx.cfg.guards.buying_power;
        match c.side {
            Side::Buy => {
                let cost = crate::guards::buying_power::buy_price(c, bp);
                self.buying_power = self.buying_power.saturating_sub(mul(qty, cost));
            }
            Side::Sell => {
                let proceeds = crate::guards::buying_power::sell_price(c, bp);
                // Clamped: a fraction above 1 would count money the sell cannot raise.
                let fraction = bp.sell_proceeds_fraction.clamp(Decimal::ZERO, Decimal::ONE);
                let counted = mul(mul(qty, proceeds), fraction);
                self.buying_power = self.buying_power.saturating_add(counted);
            }
        }
        self.orders += 1;
    }
}
