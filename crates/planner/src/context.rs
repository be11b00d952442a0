//! The data guards look at: one proposed order ([`Candidate`]), facts about
//! the whole run computed once ([`Ctx`]), and the running totals of orders
//! already accepted this cycle ([`CycleAccumulator`]).
//!
//! Everything a guard needs is precomputed here once per plan (indexes,
//! limits in currency units, the vol scale, window counts) so that a guard's
//! check is a few comparisons, not a scan.

use crate::config::RiskConfig;
use crate::fx;
use crate::guards::volatility_brake::VolScale;
use crate::num::{self, mul};
use crate::output::{GuardId, ReasonCode};
use chrono::{DateTime, Utc};
use keel_domain::{AssetFacts, Position, Quote, Side, Symbol};
use rust_decimal::Decimal;

/// A verdict prepared before the guards run (whole-plan blocks, or a
/// candidate the planner could not size safely).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PreBlock {
    pub guard: GuardId,
    pub reason: ReasonCode,
    pub detail: String,
}

/// Working orders of one symbol (rare, so boxed to keep [`Candidate`] small).
#[derive(Debug, Clone, Default)]
pub(crate) struct Working {
    /// Open buy shares still working.
    pub buy: Decimal,
    /// Open sell shares still working.
    pub sell: Decimal,
    /// Working buy orders.
    pub buys: u32,
    /// Working sell orders.
    pub sells: u32,
    /// Lowest limit of the working sells (`None` without a priced one).
    pub min_sell_limit: Option<Decimal>,
    /// Highest limit of the working buys (`None` without a priced one).
    pub max_buy_limit: Option<Decimal>,
    /// Working buys without a usable limit price (market orders).
    pub unpriced_buys: u32,
    /// Working sells without a usable limit price (market orders).
    pub unpriced_sells: u32,
}

/// One proposed order as it moves through the pipeline. Kept small: a large
/// plan holds thousands while buys wait for the sells.
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
    /// held + committed buys − committed sells: where the position ends if working orders fill.
    pub position: Decimal,
    /// Positive reference price, `None` when unusable.
    pub price: Option<Decimal>,
    /// The same price unpacked, when it fits (for the fast paths).
    pub price64: Option<fx::D64>,
    /// Limit price for limit orders.
    pub limit_price: Option<Decimal>,
    /// The position held, if any.
    pub holding: Option<&'a Position>,
    /// Working orders on the symbol, if any.
    pub working: Option<Box<Working>>,
    /// The quote, if any.
    pub quote: Option<&'a Quote>,
    /// Average daily volume, shares.
    pub adv: Option<&'a Decimal>,
    /// Last trade time for the cooldown.
    pub last_trade_at: Option<&'a DateTime<Utc>>,
    /// What the venue allows for the symbol, when it said.
    pub asset: Option<&'a AssetFacts>,
    /// Set when the planner itself refuses the candidate (overflow, bad limit).
    pub pre_block: Option<Box<PreBlock>>,
}

impl Candidate<'_> {
    /// Shares held (signed).
    #[inline]
    pub fn held(&self) -> Decimal {
        self.holding.map(|p| p.qty).unwrap_or_default()
    }

    /// Open buy shares still working.
    #[inline]
    pub fn committed_buy(&self) -> Decimal {
        self.working.as_ref().map(|w| w.buy).unwrap_or_default()
    }

    /// Open sell shares still working.
    #[inline]
    pub fn committed_sell(&self) -> Decimal {
        self.working.as_ref().map(|w| w.sell).unwrap_or_default()
    }

    /// Working orders on this symbol: (buys, sells).
    #[inline]
    pub fn open_counts(&self) -> (u32, u32) {
        self.working
            .as_ref()
            .map(|w| (w.buys, w.sells))
            .unwrap_or_default()
    }

    /// When the quote was observed.
    #[inline]
    pub fn quote_ts(&self) -> Option<DateTime<Utc>> {
        self.quote.map(|q| q.ts)
    }

    /// How much of an order on `side` can reduce |position| without crossing
    /// zero (|position| when the side opposes it, else 0).
    #[inline]
    pub fn reducible(&self) -> Decimal {
        Self::reducible_for(self.side, self.position)
    }

    /// The part of the current quantity that moves |position| toward zero
    /// without crossing it.
    #[inline]
    pub fn reducing_qty(&self) -> Decimal {
        fx::min(self.qty, self.reducible())
    }

    /// The part of the current quantity that grows |position| (beyond zero).
    #[inline]
    pub fn increasing_qty(&self) -> Decimal {
        let reducible = self.reducible();
        if fx::gt(self.qty, reducible) {
            fx::sat_sub(self.qty, reducible)
        } else {
            Decimal::ZERO
        }
    }

    /// True when the order at its current quantity only reduces risk.
    #[inline]
    pub fn is_risk_reducing(&self) -> bool {
        fx::le(self.qty, self.reducible())
    }

    /// |position| when an order on `side` would reduce it, else 0.
    #[inline]
    pub fn reducible_for(side: Side, position: Decimal) -> Decimal {
        match side {
            Side::Sell if fx::is_pos(position) => position,
            Side::Buy if fx::is_neg(position) => -position,
            _ => Decimal::ZERO,
        }
    }

    /// The numbers most guards work with, unpacked, when they all fit
    /// (`None`, and the guards take the `Decimal` path, otherwise).
    #[inline]
    pub fn fast(&self) -> Option<Fast> {
        let qty = fx::D64::of(self.qty)?;
        let position = fx::D64::of(self.position)?;
        let reducible = match self.side {
            Side::Sell if position.is_pos() => position,
            Side::Buy if !position.is_pos() && !position.is_zero() => fx::D64::ZERO.sub(position)?,
            _ => fx::D64::ZERO,
        };
        Some(Fast {
            qty,
            price: self.price64?,
            position,
            reducible,
            sign: match self.side {
                Side::Buy => fx::D64::ONE,
                Side::Sell => fx::D64::NEGATIVE_ONE,
            },
        })
    }

    /// +1 for buys, −1 for sells.
    pub fn sign(&self) -> Decimal {
        self.side.sign()
    }

    /// Price for order-size notionals: the worse of reference and limit, so
    /// a notional cap holds at whatever price the order can fill.
    #[inline]
    pub fn notional_price(&self) -> Decimal {
        let px = self.price.unwrap_or_default();
        match self.limit_price {
            Some(l) if fx::gt(l, px) => l,
            _ => px,
        }
    }
}

/// A candidate's quantities unpacked (see [`Candidate::fast`]); the methods
/// mirror [`Candidate`]'s and return `None` where the `Decimal` path must answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fast {
    pub qty: fx::D64,
    /// The reference price (priced candidates only).
    pub price: fx::D64,
    pub position: fx::D64,
    pub reducible: fx::D64,
    /// +1 for buys, −1 for sells.
    pub sign: fx::D64,
}

impl Fast {
    /// [`Candidate::reducing_qty`].
    #[inline]
    pub fn reducing_qty(&self) -> Option<fx::D64> {
        self.qty.min(self.reducible)
    }

    /// [`Candidate::increasing_qty`].
    #[inline]
    pub fn increasing_qty(&self) -> Option<fx::D64> {
        if self.qty.gt(self.reducible)? {
            self.qty.sub(self.reducible)
        } else {
            Some(fx::D64::ZERO)
        }
    }

    /// [`crate::guards::base_after_reducing`].
    #[inline]
    pub fn base_after_reducing(&self) -> Option<fx::D64> {
        self.position.add(self.sign.mul(self.reducing_qty()?)?)?.abs()
    }
}

/// Facts about the whole run, computed once.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a RiskConfig,
    pub now: DateTime<Utc>,
    /// Equity weights are applied to (min of broker and marked).
    pub equity: Decimal,
    /// The same equity unpacked, when it fits (for the fast paths).
    pub equity64: Option<fx::D64>,
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
    /// The configured stale-quote guard's bounds at `now`.
    pub quote_window: Option<crate::guards::stale_quote::QuoteWindow>,
    /// Venue asset facts were supplied ([`crate::GuardState::assets`]), so a
    /// candidate without any is a symbol the venue does not know.
    pub venue_facts: bool,
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
        if self.commit_fast(c, qty, ctx).is_some() {
            return;
        }
        let px = c.price.unwrap_or_default();
        let signed = mul(c.sign(), qty);
        let after = fx::sat_add(c.position, signed);
        self.gross = fx::sat_add(
            fx::sat_sub(self.gross, mul(c.position.abs(), px)),
            mul(after.abs(), px),
        );
        self.net = fx::sat_add(self.net, mul(signed, px));
        self.turnover = fx::sat_add(self.turnover, mul(qty, px));
        let bp = &ctx.cfg.guards.buying_power;
        match c.side {
            Side::Buy => {
                let cost = crate::guards::buying_power::buy_price(c, bp);
                self.buying_power = fx::sat_sub(self.buying_power, mul(qty, cost));
            }
            Side::Sell => {
                let proceeds = crate::guards::buying_power::sell_price(c, bp);
                // Clamped: a fraction above 1 would count money the sell cannot raise.
                let fraction = bp.sell_proceeds_fraction.clamp(Decimal::ZERO, Decimal::ONE);
                let counted = mul(mul(qty, proceeds), fraction);
                self.buying_power = fx::sat_add(self.buying_power, counted);
            }
        }
        self.orders += 1;
    }

    /// [`CycleAccumulator::commit`] for a limit order, on unpacked numbers:
    /// the same operations, so the same totals. `None`, having changed
    /// nothing, when something does not fit.
    #[inline]
    fn commit_fast(&mut self, c: &Candidate<'_>, qty: Decimal, ctx: &Ctx<'_>) -> Option<()> {
        use fx::D64;
        let px = c.price64?;
        let qty = D64::of(qty)?;
        let position = D64::of(c.position)?;
        let sign = match c.side {
            Side::Buy => D64::ONE,
            Side::Sell => D64::NEGATIVE_ONE,
        };
        let signed = sign.mul(qty)?;
        let after = position.add(signed)?;
        let gross = D64::of(self.gross)?
            .sub(position.abs()?.mul(px)?)?
            .add(after.abs()?.mul(px)?)?;
        let net = D64::of(self.net)?.add(signed.mul(px)?)?;
        let turnover = D64::of(self.turnover)?.add(qty.mul(px)?)?;
        // Limit orders buy and sell at their limit.
        let limit = D64::of(c.limit_price?)?;
        let bp = &ctx.cfg.guards.buying_power;
        let buying_power = D64::of(self.buying_power)?;
        let buying_power = match c.side {
            Side::Buy => buying_power.sub(qty.mul(limit)?)?,
            Side::Sell => {
                let fraction = D64::of(bp.sell_proceeds_fraction.clamp(Decimal::ZERO, Decimal::ONE))?;
                buying_power.add(qty.mul(limit)?.mul(fraction)?)?
            }
        };
        self.gross = gross.dec();
        self.net = net.dec();
        self.turnover = turnover.dec();
        self.buying_power = buying_power.dec();
        self.orders += 1;
        Some(())
    }
}
