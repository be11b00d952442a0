//! The guard pipeline: every pre-trade control is one module here, holding
//! its config struct (which is also the guard), its check and its tests.
//!
//! Two kinds of guard:
//!
//! * **Whole-plan guards** ([`KillSwitch`], [`ReplayedTargetSet`],
//!   [`StaleTargets`], [`SuspiciousTargetSet`], [`MarketHours`]) judge the run
//!   once; when one applies, every order of the plan is blocked with its reason.
//! * **Per-order guards** implement [`Guard`] and run in the fixed order of
//!   [`per_order`] on each proposed order, sells first, then buys. Each may pass
//!   the order, shrink it, or block it; the first block ends the pipeline.
//!   Only the order of the guards that read the cycle's running totals
//!   (`Guard::reads_cycle`: exposure, buying power, cycle limits, order
//!   rate) depends on other orders; the planner runs the guards before them
//!   as soon as an order is sized.
//!
//! Risk-reducing orders (ones that move |position| toward zero without
//! crossing it) pass the guards whose [`Guard::exempts_risk_reducing`] is true;
//! for an order that crosses zero those guards can take away only the part
//! beyond zero. The exceptions are deliberate and documented per guard:
//! invariants (position existence, one open order per side), prices that can't
//! be trusted (stale quote, collar), set-level distrust, market hours and the
//! kill switch stop risk-reducing orders too.

pub mod adv_limit;
pub mod buying_power;
pub mod cooldown;
pub mod cycle_limits;
pub mod exposure;
pub mod kill_switch;
pub mod market_hours;
pub mod max_order_size;
pub mod max_position_weight;
pub mod no_trade_band;
pub mod open_order;
pub mod order_rate;
pub mod position_existence;
pub mod price_collar;
pub mod replayed_target_set;
pub mod restricted_list;
pub mod stale_quote;
pub mod stale_targets;
pub mod suspicious_target_set;
pub mod volatility_brake;

pub use adv_limit::AdvLimit;
pub use buying_power::BuyingPower;
pub use cooldown::Cooldown;
pub use cycle_limits::CycleLimits;
pub use exposure::ExposureLimits;
pub use kill_switch::KillSwitch;
pub use market_hours::MarketHours;
pub use max_order_size::MaxOrderSize;
pub use max_position_weight::MaxPositionWeight;
pub use no_trade_band::NoTradeBand;
pub use open_order::OpenOrderGuard;
pub use order_rate::OrderRateThrottle;
pub use position_existence::PositionExistence;
pub use price_collar::PriceCollar;
pub use replayed_target_set::ReplayedTargetSet;
pub use restricted_list::RestrictedList;
pub use stale_quote::StaleQuote;
pub use stale_targets::StaleTargets;
pub use suspicious_target_set::SuspiciousTargetSet;
pub use volatility_brake::{VolHook, VolatilityBrake, MAX_LOOKBACK_DAYS};

use crate::config::GuardsConfig;
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::output::{GuardId, GuardStep, ReasonCode};
use rust_decimal::Decimal;

/// What a per-order guard says about one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No objection.
    Pass,
    /// The order may go out at most at `qty` (already rounded to the lot).
    Cap {
        qty: Decimal,
        reason: ReasonCode,
        detail: String,
    },
    /// The order must not go out.
    Block { reason: ReasonCode, detail: String },
}

/// A per-order check.
pub(crate) trait Guard {
    /// Which guard this is, for the audit trail.
    fn id(&self) -> GuardId;
    /// Whether the guard runs at all.
    fn enabled(&self) -> bool;
    /// True when risk-reducing orders pass this guard untouched (and an order
    /// crossing zero keeps at least its reducing part).
    fn exempts_risk_reducing(&self) -> bool {
        false
    }
    /// True when the check reads the [`CycleAccumulator`], so its verdict
    /// depends on the orders accepted before this one. The planner runs the
    /// guards before the first such guard as soon as an order is sized, and
    /// the rest in pipeline order (sells, then buys).
    fn reads_cycle(&self) -> bool {
        false
    }
    /// Judges `c` given the run's facts and what the cycle has accepted so far.
    /// Details are only formatted when the guard acts, to keep passes cheap.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, acc: &CycleAccumulator) -> Verdict;
}

/// The per-order guards in pipeline order. Cheap, order-independent refusals
/// come first so a doomed order costs little; guards that only shrink come
/// next; guards that depend on what the cycle already accepted come last, so
/// their totals only ever see quantities that will really be sent.
pub(crate) fn per_order(g: &GuardsConfig) -> [&dyn Guard; 15] {
    [
        &g.stale_quote,
        &g.restricted_list,
        &g.open_orders,
        &g.no_trade_band,
        &g.position_existence,
        &g.cooldown,
        &g.volatility_brake,
        &g.price_collar,
        &g.max_order_size,
        &g.adv_limit,
        &g.max_position_weight,
        &g.exposure,
        &g.buying_power,
        &g.cycle_limits,
        &g.order_rate,
    ]
}

/// An enabled guard with the facts the pipeline asks of it on every order,
/// read once per plan (they depend on the config only).
#[derive(Clone, Copy)]
pub(crate) struct Active<'g> {
    guard: &'g dyn Guard,
    id: GuardId,
    exempt: bool,
    /// [`Guard::reads_cycle`].
    pub cumulative: bool,
}

/// The enabled per-order guards, in pipeline order.
pub(crate) fn active(g: &GuardsConfig) -> Vec<Active<'_>> {
    per_order(g)
        .into_iter()
        .filter(|g| g.enabled())
        .map(|guard| Active {
            guard,
            id: guard.id(),
            exempt: guard.exempts_risk_reducing(),
            cumulative: guard.reads_cycle(),
        })
        .collect()
}

/// A blocked order's final reason.
pub(crate) struct Blocked {
    pub guard: GuardId,
    pub reason: ReasonCode,
    pub detail: String,
}

impl Blocked {
    fn new(guard: GuardId, reason: ReasonCode, detail: String) -> Self {
        Self {
            guard,
            reason,
            detail,
        }
    }
}

// The pipeline on one order is `pre_blocked`, then `run` over every guard,
// then `nothing_sized`; the planner calls the parts separately to run the
// guards that do not read the accumulator early (see `Guard::reads_cycle`).
// The pipeline, not the guards, enforces the two rules every guard must
// obey: quantities only ever go down (so the final quantity is at most the
// proposed one), and exempt guards never take away the reducing part.

/// A whole-plan block, or the planner's own refusal of `c`.
#[inline]
pub(crate) fn pre_blocked(c: &Candidate<'_>, ctx: &Ctx<'_>) -> Option<Blocked> {
    let pre = ctx.plan_block.as_ref().or(c.pre_block.as_deref());
    pre.map(|b| Blocked::new(b.guard, b.reason, b.detail.clone()))
}

/// Runs `guards` in order on `c`, shrinking `c.qty` in place and recording
/// every resize in `steps`. Returns the block, if any.
#[inline]
pub(crate) fn run(
    c: &mut Candidate<'_>,
    ctx: &Ctx<'_>,
    acc: &CycleAccumulator,
    guards: &[Active<'_>],
    steps: &mut Vec<GuardStep>,
) -> Option<Blocked> {
    // Whether the order only reduces risk changes only when its quantity does.
    let mut reducing = c.is_risk_reducing();
    for g in guards {
        let exempt = g.exempt;
        if exempt && reducing {
            continue;
        }
        let (cap, reason, detail) = match g.guard.check(c, ctx, acc) {
            Verdict::Pass => continue,
            Verdict::Cap { qty, reason, detail } => (qty, reason, detail),
            Verdict::Block { reason, detail } => (Decimal::ZERO, reason, detail),
        };
        let floor = if exempt {
            ctx.floor_lot(c.reducing_qty())
        } else {
            Decimal::ZERO
        };
        let qty = fx::max(ctx.floor_lot(fx::min(cap, c.qty)), floor);
        if fx::ge(qty, c.qty) {
            continue;
        }
        if !fx::is_pos(qty) {
            return Some(Blocked::new(g.id, reason, detail));
        }
        steps.push(GuardStep {
            guard: g.id,
            from: c.qty,
            to: qty,
            reason,
            detail,
        });
        c.qty = qty;
        reducing = c.is_risk_reducing();
    }
    None
}

/// The last check after every guard passed.
#[inline]
pub(crate) fn nothing_sized(c: &Candidate<'_>) -> Option<Blocked> {
    if !fx::is_pos(c.qty) {
        // Only unpriced candidates start at zero and they carry a pre-block;
        // kept so that no path can ever emit a zero-quantity order.
        return Some(Blocked::new(
            GuardId::Planner,
            ReasonCode::MissingQuote,
            format!("no quantity could be sized for {}", c.symbol),
        ));
    }
    None
}

/// `Cap` at `max_qty` (rounded to the lot) when that is below the order's
/// quantity, else `Pass`. `detail` gets the capped quantity and is only
/// called when the cap binds.
pub(crate) fn cap_at(
    c: &Candidate<'_>,
    ctx: &Ctx<'_>,
    max_qty: Decimal,
    reason: ReasonCode,
    detail: impl FnOnce(Decimal) -> String,
) -> Verdict {
    let q = ctx.floor_lot(max_qty);
    if fx::ge(q, c.qty) {
        Verdict::Pass
    } else {
        Verdict::Cap {
            qty: q,
            reason,
            detail: detail(q),
        }
    }
}

/// Caps the part of the order beyond its reducing part at `max_increase`
/// shares; the reducing part is always allowed.
pub(crate) fn cap_increase(
    c: &Candidate<'_>,
    ctx: &Ctx<'_>,
    max_increase: Decimal,
    reason: ReasonCode,
    detail: impl FnOnce(Decimal) -> String,
) -> Verdict {
    let allowed = fx::sat_add(c.reducing_qty(), fx::max(max_increase, Decimal::ZERO));
    cap_at(c, ctx, allowed, reason, detail)
}

/// |position| left after the order's reducing part: the base that a
/// risk-increasing remainder grows from (zero when the order crosses zero).
pub(crate) fn base_after_reducing(c: &Candidate<'_>) -> Decimal {
    fx::sat_add(c.position, fx::sat_mul(c.sign(), c.reducing_qty())).abs()
}

/// Whether `qty × price ≤ room`: the exact test a notional cap makes, and a
/// cheap one, so caps that don't bind skip their division. A non-positive
/// price never fits (nothing can be sized against it).
#[inline]
pub(crate) fn fits(qty: Decimal, price: Decimal, room: Decimal) -> bool {
    fx::is_pos(price) && fx::checked_mul(qty, price).is_some_and(|n| fx::le(n, room))
}
