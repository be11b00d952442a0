//! Targets × snapshot → proposed orders, then the guard pipeline → [`Plan`].
//!
//! Sizing: target qty = weight × equity / reference price, rounded toward
//! zero to the lot (whole shares, or 4 dp when fractional), so the planner
//! never overshoots a target. The trade is the difference to the *projected*
//! position, held + working buys − working sells, so orders already working
//! are not sent again.
//!
//! Equity is `min(snapshot.equity, marked equity)`, where marked equity is
//! cash plus positions at the same reference prices used for sizing (avg
//! cost when a position has no quote). The lower of the two because either
//! can be wrong upward: a bad tick inflates the marked figure, a lagging
//! broker figure can trail a fall; sizing against the lower one can only make
//! buys smaller.
//!
//! Performance: every input map is sorted by symbol (`BTreeMap`s, and the
//! target list once sorted), so one merge walk visits each symbol once and
//! looks nothing up; working orders are grouped by symbol once. A plan is
//! O(n log n) in the number of symbols with no per-symbol scans.

use crate::config::RiskConfig;
use crate::context::{Candidate, Ctx, CycleAccumulator, PreBlock};
use crate::guards::{self, buying_power::buffered, stale_quote, Blocked};
use crate::input::PlanInput;
use crate::num::{self, mul};
use crate::output::{Decision, Exposure, GuardId, GuardStep, Outcome, Plan, PlanBlock, ReasonCode};
use chrono::{DateTime, Utc};
use keel_domain::{
    client_order_id, AccountSnapshot, OpenOrder, Order, OrderType, Position, Quote, Side, Symbol, Target,
};
use rust_decimal::Decimal;
use std::iter::Peekable;

/// Plans one cycle: proposes the orders that move the account from
/// `input.snapshot` to `input.targets`, runs every guard on them and returns
/// the orders to send with the decision behind each.
///
/// Pure and total: no clock, no I/O, no panics; the same input and config
/// give the same plan, byte for byte once serialised.
pub fn plan(input: &PlanInput<'_>, cfg: &RiskConfig) -> Plan {
    let Prepared {
        ctx,
        mut candidates,
        mut acc,
        plan_blocks,
        exposure_before,
    } = prepare(input, cfg);
    let guards = guards::per_order(&cfg.guards);
    let mut decisions = Vec::with_capacity(candidates.len());
    let mut orders = Vec::with_capacity(candidates.len());
    // Sells first so the cumulative guards (exposure, buying power) see the room they free;
    // candidates are already in symbol order within each side.
    for side in [Side::Sell, Side::Buy] {
        for c in candidates.iter_mut().filter(|c| c.side == side) {
            let risk_reducing = c.is_risk_reducing();
            let mut steps: Vec<GuardStep> = Vec::new();
            let blocked = guards::evaluate(c, &ctx, &acc, &guards, &mut steps);
            let (outcome, client_order_id) = match blocked {
                Some(Blocked {
                    guard,
                    reason,
                    detail,
                }) => (
                    Outcome::Block {
                        guard,
                        reason,
                        detail,
                    },
                    None,
                ),
                None => {
                    let id = client_order_id(
                        input.account_id,
                        &input.targets.id,
                        c.symbol,
                        c.side,
                        input.attempt,
                    );
                    acc.commit(c, c.qty, &ctx);
                    orders.push(Order {
                        client_order_id: id.clone(),
                        symbol: c.symbol.clone(),
                        side: c.side,
                        qty: c.qty,
                        order_type: cfg.planner.order_type,
                        limit_price: c.limit_price,
                        time_in_force: cfg.planner.time_in_force,
                    });
                    (final_outcome(&steps, c.qty), Some(id))
                }
            };
            decisions.push(Decision {
                symbol: c.symbol.clone(),
                side: c.side,
                risk_reducing,
                target_weight: c.weight,
                position: c.position,
                target_qty: c.target_qty,
                reference_price: c.price,
                limit_price: c.limit_price,
                proposed_qty: c.proposed_qty,
                final_qty: if client_order_id.is_some() {
                    c.qty
                } else {
                    Decimal::ZERO
                },
                client_order_id,
                steps,
                outcome,
            });
        }
    }
    Plan {
        orders,
        decisions,
        vol_scale: ctx.vol.scale,
        equity: ctx.equity,
        exposure: Exposure {
            gross_after: acc.gross,
            net_after: acc.net,
            ..exposure_before
        },
        plan_blocks,
    }
}

/// Pass, or a resize naming the last guard that shrank the order.
fn final_outcome(steps: &[GuardStep], qty: Decimal) -> Outcome {
    match steps.last() {
        Some(s) => Outcome::Resize {
            qty,
            guard: s.guard,
            reason: s.reason,
            detail: s.detail.clone(),
        },
        None => Outcome::Pass,
    }
}

/// Everything the pipeline needs, before any guard runs.
pub(crate) struct Prepared<'a> {
    pub ctx: Ctx<'a>,
    /// Proposed orders in symbol order.
    pub candidates: Vec<Candidate<'a>>,
    /// Totals before this cycle's orders.
    pub acc: CycleAccumulator,
    pub plan_blocks: Vec<PlanBlock>,
    pub exposure_before: Exposure,
}

/// Working orders of one symbol, grouped once per plan.
struct OpenAgg<'a> {
    symbol: &'a Symbol,
    buys: u32,
    sells: u32,
    buy_remaining: Decimal,
    sell_remaining: Decimal,
    /// Σ remaining × limit of limit buys.
    buy_limit_notional: Decimal,
    /// Σ remaining of buys without a usable limit price.
    buy_market_remaining: Decimal,
    /// Highest limit price seen, a last-resort valuation price.
    max_limit: Option<Decimal>,
    /// A remaining quantity could not be summed exactly.
    overflow: bool,
}

fn group_open_orders(orders: &[OpenOrder]) -> Vec<OpenAgg<'_>> {
    let mut sorted: Vec<&OpenOrder> = orders.iter().collect();
    sorted.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    let mut out: Vec<OpenAgg<'_>> = Vec::new();
    for o in sorted {
        if out.last().is_none_or(|a| a.symbol != &o.symbol) {
            out.push(OpenAgg {
                symbol: &o.symbol,
                buys: 0,
                sells: 0,
                buy_remaining: Decimal::ZERO,
                sell_remaining: Decimal::ZERO,
                buy_limit_notional: Decimal::ZERO,
                buy_market_remaining: Decimal::ZERO,
                max_limit: None,
                overflow: false,
            });
        }
        let Some(agg) = out.last_mut() else { continue };
        // OpenOrder::remaining would panic on overflow; a negative remainder means nothing is working.
        let remaining = match o.qty.checked_sub(o.filled_qty) {
            Some(r) => r.max(Decimal::ZERO),
            None => {
                agg.overflow = true;
                Decimal::MAX
            }
        };
        let limit = o.limit_price.filter(|p| num::is_positive(*p));
        if let Some(l) = limit {
            agg.max_limit = Some(agg.max_limit.map_or(l, |m| m.max(l)));
        }
        let sum = |acc: &mut Decimal, x: Decimal, overflow: &mut bool| match acc.checked_add(x) {
            Some(v) => *acc = v,
            None => {
                *overflow = true;
                *acc = Decimal::MAX;
            }
        };
        match o.side {
            Side::Buy => {
                agg.buys = agg.buys.saturating_add(1);
                sum(&mut agg.buy_remaining, remaining, &mut agg.overflow);
                match limit {
                    Some(l) => {
                        agg.buy_limit_notional = agg.buy_limit_notional.saturating_add(mul(remaining, l))
                    }
                    None => agg.buy_market_remaining = agg.buy_market_remaining.saturating_add(remaining),
                }
            }
            Side::Sell => {
                agg.sells = agg.sells.saturating_add(1);
                sum(&mut agg.sell_remaining, remaining, &mut agg.overflow);
            }
        }
    }
    out
}

/// Target weights sorted by symbol, so the plan does not depend on the order
/// of the input vector (intake already sorts it; checking is O(n)). Duplicate
/// symbols are summed, an order-independent choice, and reported to the
/// suspicious-set guard, which blocks such a set by default.
fn sorted_targets(targets: &[Target]) -> (Vec<(&Symbol, Decimal)>, Vec<&Symbol>) {
    let mut v: Vec<(&Symbol, Decimal)> = targets.iter().map(|t| (&t.symbol, t.weight)).collect();
    if v.windows(2).all(|w| w[0].0 < w[1].0) {
        return (v, Vec::new());
    }
    // Weight as tie-break so duplicates are summed in the same order whatever the input order.
    v.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
    let mut merged: Vec<(&Symbol, Decimal)> = Vec::with_capacity(v.len());
    let mut dupes: Vec<&Symbol> = Vec::new();
    for (s, w) in v {
        match merged.last_mut() {
            Some((last, sum)) if *last == s => {
                *sum = sum.saturating_add(w);
                if dupes.last() != Some(&s) {
                    dupes.push(s);
                }
            }
            _ => merged.push((s, w)),
        }
    }
    (merged, dupes)
}

/// Symbol equality that skips the string compare when both sides are the
/// same reference (the merge walks take the current symbol from one of the
/// sequences they compare it with).
#[inline]
fn same(a: &Symbol, b: &Symbol) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// Advances a sorted `(symbol, value)` iterator to `symbol`; symbols must be
/// asked for in ascending order, which the merge walk guarantees.
struct Seek<'a, V, I: Iterator<Item = (&'a Symbol, V)>> {
    it: Peekable<I>,
}

impl<'a, V, I: Iterator<Item = (&'a Symbol, V)>> Seek<'a, V, I> {
    fn new(it: I) -> Self {
        Self { it: it.peekable() }
    }

    fn seek(&mut self, symbol: &Symbol) -> Option<V> {
        while let Some((k, _)) = self.it.peek() {
            match (*k).cmp(symbol) {
                std::cmp::Ordering::Less => {
                    self.it.next();
                }
                std::cmp::Ordering::Equal => return self.it.next().map(|(_, v)| v),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

/// One symbol of the universe (targets ∪ positions) with everything known about it.
struct Row<'a, 'o> {
    symbol: &'a Symbol,
    weight: Decimal,
    position: Option<&'a Position>,
    open: Option<&'o OpenAgg<'a>>,
    quote: Option<&'a Quote>,
    price: Option<Decimal>,
    adv: Option<Decimal>,
    last_trade_at: Option<DateTime<Utc>>,
}

/// Builds the context and the proposed orders (see [`plan`]).
pub(crate) fn prepare<'a>(input: &PlanInput<'a>, cfg: &'a RiskConfig) -> Prepared<'a> {
    let snap = input.snapshot;
    let g = &cfg.guards;
    let lot_dp = if cfg.planner.fractional { 4 } else { 0 };
    let (targets, duplicates) = sorted_targets(&input.targets.targets);
    let open = group_open_orders(&snap.open_orders);
    let book = book_totals(snap, &open, &g.buying_power);

    let equity = snap.equity.min(book.marked);
    let plan_blocks = whole_plan_blocks(input, cfg, equity, &duplicates);
    let ctx = Ctx {
        cfg,
        now: input.now,
        equity,
        lot_dp,
        vol: g.volatility_brake.scale(input.state),
        plan_block: plan_blocks.first().map(|b| PreBlock {
            guard: b.guard,
            reason: b.reason,
            detail: b.detail.clone(),
        }),
        recent_orders: if g.order_rate.enabled {
            g.order_rate.recent(input.state, input.now)
        } else {
            0
        },
        band: g.no_trade_band.band(equity),
        pricer: num::LimitPricer::new(cfg.planner.limit_offset_bps),
        account_cooldown: if g.cooldown.enabled {
            g.cooldown.account_active(input.state, input.now)
        } else {
            None
        },
    };
    let subtract = g.buying_power.subtract_open_buys;
    let acc = CycleAccumulator {
        gross: book.gross,
        net: book.net,
        buying_power: if subtract {
            snap.buying_power.saturating_sub(book.open_buy_notional)
        } else {
            snap.buying_power
        },
        buying_power_unknown: if subtract { book.buying_power_unknown } else { None },
        turnover: Decimal::ZERO,
        orders: 0,
    };

    // The universe is targets ∪ positions, walked once in symbol order; every
    // other input is sorted too, so each lookup is a cursor step, not a search.
    let mut candidates = Vec::with_capacity(targets.len().max(snap.positions.len()));
    let mut ti = targets.iter().peekable();
    let mut pi = snap.positions.iter().peekable();
    let mut quotes = Seek::new(snap.quotes.iter());
    let mut opens = Seek::new(open.iter().map(|a| (a.symbol, a)));
    let mut advs = Seek::new(input.state.adv.iter());
    let mut lasts = Seek::new(input.state.last_trade_at.iter());
    loop {
        let symbol = match (ti.peek(), pi.peek()) {
            (Some(t), Some(p)) => t.0.min(p.0),
            (Some(t), None) => t.0,
            (None, Some(p)) => p.0,
            (None, None) => break,
        };
        let weight = ti.next_if(|t| same(t.0, symbol)).map(|t| t.1);
        let position = pi.next_if(|p| same(p.0, symbol)).map(|p| p.1);
        let quote = quotes.seek(symbol);
        let row = Row {
            symbol,
            weight: weight.unwrap_or_default(),
            position,
            open: opens.seek(symbol),
            quote,
            price: quote.and_then(num::reference),
            adv: advs.seek(symbol).copied(),
            last_trade_at: lasts.seek(symbol).copied(),
        };
        candidates.extend(candidate(&row, &ctx));
    }
    Prepared {
        ctx,
        candidates,
        acc,
        plan_blocks,
        exposure_before: Exposure {
            gross_before: book.gross,
            net_before: book.net,
            gross_after: book.gross,
            net_after: book.net,
        },
    }
}

/// Account-wide figures from positions and working orders.
struct BookTotals {
    /// Cash + positions at valuation prices.
    marked: Decimal,
    /// Σ |projected position| × valuation price.
    gross: Decimal,
    /// Σ projected position × valuation price.
    net: Decimal,
    /// What working buys may still spend.
    open_buy_notional: Decimal,
    /// Why the above is unknown, if it is.
    buying_power_unknown: Option<String>,
}

/// One merge walk over positions ∪ working orders (targets hold no value yet).
/// Valuation price: reference, else average cost, else the highest working
/// limit; zero only when nothing at all is known about the symbol.
fn book_totals(snap: &AccountSnapshot, open: &[OpenAgg<'_>], bp: &guards::BuyingPower) -> BookTotals {
    let mut t = BookTotals {
        marked: snap.cash,
        gross: Decimal::ZERO,
        net: Decimal::ZERO,
        open_buy_notional: Decimal::ZERO,
        buying_power_unknown: None,
    };
    let mut pi = snap.positions.iter().peekable();
    let mut oi = open.iter().peekable();
    let mut quotes = Seek::new(snap.quotes.iter());
    loop {
        let symbol = match (pi.peek(), oi.peek()) {
            (Some(p), Some(o)) => p.0.min(o.symbol),
            (Some(p), None) => p.0,
            (None, Some(o)) => o.symbol,
            (None, None) => break,
        };
        let position = pi.next_if(|p| same(p.0, symbol)).map(|p| p.1);
        let agg = oi.next_if(|o| same(o.symbol, symbol));
        let price = quotes.seek(symbol).and_then(num::reference);
        let val_px = price
            .or_else(|| position.map(|p| p.avg_cost).filter(|c| num::is_positive(*c)))
            .or_else(|| agg.and_then(|a| a.max_limit))
            .unwrap_or_default();
        let held = position.map(|p| p.qty).unwrap_or_default();
        t.marked = t.marked.saturating_add(mul(held, val_px));
        let (cb, cs) = agg
            .map(|a| (a.buy_remaining, a.sell_remaining))
            .unwrap_or_default();
        // val_px ≥ 0, so |projected × px| = |projected| × px: one multiplication serves both sums.
        let value = mul(held.saturating_add(cb).saturating_sub(cs), val_px);
        t.gross = t.gross.saturating_add(value.abs());
        t.net = t.net.saturating_add(value);
        let Some(a) = agg else { continue };
        t.open_buy_notional = t.open_buy_notional.saturating_add(a.buy_limit_notional);
        if num::is_positive(a.buy_market_remaining) {
            match price {
                Some(p) => {
                    let px = buffered(p, bp.market_buffer_bps);
                    t.open_buy_notional = t
                        .open_buy_notional
                        .saturating_add(mul(a.buy_market_remaining, px));
                }
                None if t.buying_power_unknown.is_none() => {
                    t.buying_power_unknown = Some(format!(
                        "working market buy of {} {symbol} has no price; buying power unknown",
                        a.buy_market_remaining
                    ));
                }
                None => {}
            }
        }
    }
    t
}

/// Whole-plan verdicts in precedence order (the first is what each decision records).
fn whole_plan_blocks(
    input: &PlanInput<'_>,
    cfg: &RiskConfig,
    equity: Decimal,
    dupes: &[&Symbol],
) -> Vec<PlanBlock> {
    let g = &cfg.guards;
    let planner = |reason, detail| {
        Some(PreBlock {
            guard: GuardId::Planner,
            reason,
            detail,
        })
    };
    let account = if input.snapshot.account_id != input.account_id {
        planner(
            ReasonCode::AccountMismatch,
            format!(
                "snapshot is for account {:?}, plan is for {:?}",
                input.snapshot.account_id, input.account_id
            ),
        )
    } else {
        None
    };
    let equity_block = if equity <= Decimal::ZERO {
        planner(
            ReasonCode::NonPositiveEquity,
            format!(
                "equity {equity} (min of broker {} and marked) leaves nothing to size against",
                input.snapshot.equity
            ),
        )
    } else {
        None
    };
    [
        g.kill_switch.assess(input.state),
        account,
        g.replayed_target_set.assess(input.targets, input.state),
        g.stale_targets.assess(input.targets, input.now),
        g.suspicious_target_set.assess(input.targets, dupes),
        equity_block,
        g.market_hours.assess(input.now),
    ]
    .into_iter()
    .flatten()
    .map(|b| PlanBlock {
        guard: b.guard,
        reason: b.reason,
        detail: b.detail,
    })
    .collect()
}

/// Sizes one symbol. `None` when there is nothing to trade.
fn candidate<'a>(r: &Row<'a, '_>, ctx: &Ctx<'a>) -> Option<Candidate<'a>> {
    let planner_cfg = &ctx.cfg.planner;
    let held = r.position.map(|p| p.qty).unwrap_or_default();
    let (committed_buy, committed_sell) = r
        .open
        .map(|a| (a.buy_remaining, a.sell_remaining))
        .unwrap_or_default();
    let mut c = Candidate {
        symbol: r.symbol,
        side: if r.weight < Decimal::ZERO {
            Side::Sell
        } else {
            Side::Buy
        },
        qty: Decimal::ZERO,
        proposed_qty: Decimal::ZERO,
        weight: r.weight,
        target_qty: None,
        held,
        committed_buy,
        committed_sell,
        position: Decimal::ZERO,
        reducible: Decimal::ZERO,
        open_counts: r.open.map(|a| (a.buys, a.sells)).unwrap_or_default(),
        price: r.price,
        quote_ts: r.quote.map(|q| q.ts),
        limit_price: None,
        adv: r.adv,
        last_trade_at: r.last_trade_at,
        pre_block: None,
    };
    let overflow = |mut c: Candidate<'a>, what: &str| {
        c.pre_block = Some(PreBlock {
            guard: GuardId::Planner,
            reason: ReasonCode::ArithmeticOverflow,
            detail: format!("{what} for {} overflows decimal range", r.symbol),
        });
        Some(c)
    };
    let position = held
        .checked_add(committed_buy)
        .and_then(|p| p.checked_sub(committed_sell));
    let Some(position) = position.filter(|_| !r.open.is_some_and(|a| a.overflow)) else {
        return overflow(c, "position plus working orders");
    };
    c.position = position;
    let target = match r.price {
        Some(px) => match r
            .weight
            .checked_mul(ctx.equity)
            .and_then(|n| num::div_to_lot(n, px, ctx.lot_dp))
        {
            Some(t) => Some(t),
            None => return overflow(c, "target quantity"),
        },
        // Without a price only a zero target can be sized; the order is refused below anyway.
        None if r.weight.is_zero() => Some(Decimal::ZERO),
        None => None,
    };
    c.target_qty = target;
    // Unpriced with a non-zero weight keeps qty 0 and the weight's direction, so the audit shows why.
    if let Some(t) = target {
        let Some(delta) = t.checked_sub(position) else {
            return overflow(c, "trade quantity");
        };
        c.side = if delta > Decimal::ZERO {
            Side::Buy
        } else {
            Side::Sell
        };
        c.qty = ctx.floor_lot(delta.abs());
        if c.qty.is_zero() {
            return None;
        }
    }
    c.proposed_qty = c.qty;
    c.reducible = Candidate::reducible_for(c.side, position);
    match r.price {
        None => c.pre_block = Some(stale_quote::missing(r.symbol, r.quote.is_some())),
        Some(px) if planner_cfg.order_type == OrderType::Limit => {
            c.limit_price = ctx.pricer.price(c.side, px);
            if c.limit_price.is_none() {
                c.pre_block = Some(PreBlock {
                    guard: GuardId::Planner,
                    reason: ReasonCode::InvalidLimitPrice,
                    detail: format!(
                        "{} limit for {} at {} bps from {px} is not a positive price",
                        c.side, r.symbol, planner_cfg.limit_offset_bps
                    ),
                });
            }
        }
        Some(_) => {}
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    fn book() -> Fixture {
        Fixture::new()
            .position("AAPL", "100")
            .quote("AAPL", "100")
            .target("AAPL", "0.05")
            .position("IBM", "20")
            .quote("IBM", "50")
            .target("MSFT", "0.1")
            .quote("MSFT", "200")
            .target("NVDA", "0.1")
            .quote("NVDA", "100")
    }

    #[test]
    fn sizes_against_min_equity_and_orders_sells_first() {
        let plan = book().plan();
        // Equity: cash 100,000 + 10,000 AAPL + 1,000 IBM.
        assert_eq!(plan.equity, d("111000"));
        let keys: Vec<(Side, &str, Decimal)> = plan
            .orders
            .iter()
            .map(|o| (o.side, o.symbol.as_str(), o.qty))
            .collect();
        assert_eq!(
            keys,
            vec![
                (Side::Sell, "AAPL", d("45")),
                (Side::Sell, "IBM", d("20")),
                (Side::Buy, "MSFT", d("55")),
                (Side::Buy, "NVDA", d("111")),
            ]
        );
        let ids: Vec<_> = plan
            .decisions
            .iter()
            .map(|d| d.client_order_id.clone().unwrap())
            .collect();
        let expected = client_order_id("acct", "set-1", &sym("AAPL"), Side::Sell, 0);
        assert_eq!(ids[0], expected);
        assert!(plan
            .orders
            .iter()
            .all(|o| o.time_in_force == keel_domain::TimeInForce::Day));
        // A broker equity below the marked one wins.
        let plan = book()
            .with(|f| f.fixed_equity = true)
            .with(|f| f.snapshot.equity = d("50000"))
            .plan();
        assert_eq!(plan.equity, d("50000"));
        assert_eq!(decision(&plan, "NVDA").target_qty, Some(d("50")));
    }

    #[test]
    fn working_orders_count_toward_the_position() {
        // Target 111 NVDA with a working buy of 100: 11 more are proposed, and the open-order
        // guard blocks them (one working order per side).
        let plan = book().open_order_limit("NVDA", Side::Buy, "100", "100").plan();
        let dd = decision(&plan, "NVDA");
        assert_eq!(dd.position, d("100"));
        assert_eq!(dd.proposed_qty, d("11"));
        assert_blocked(dd, ReasonCode::OpenOrderExists);
    }

    #[test]
    fn fractional_quantities_have_four_places() {
        let plan = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "300")
            .with(|f| f.cfg.planner.fractional = true)
            .plan();
        assert_eq!(plan.orders[0].qty, d("33.3333"));
        let plan = Fixture::new().target("AAPL", "0.1").quote("AAPL", "300").plan();
        assert_eq!(plan.orders[0].qty, d("33"));
    }

    #[test]
    fn account_mismatch_and_non_positive_equity_block_everything() {
        let plan = book().with(|f| f.snapshot.account_id = "other".into()).plan();
        assert!(plan.orders.is_empty());
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::AccountMismatch);
        let plan = book().cash("-11000").plan();
        assert_eq!(plan.equity, d("0"));
        assert!(plan.orders.is_empty());
        // Without this block, a zero equity would mean "sell everything".
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::NonPositiveEquity);
    }

    #[test]
    fn every_whole_plan_block_is_listed_first_one_wins() {
        let plan = book()
            .with(|f| {
                f.state.kill_switch = Some("drawdown".into());
                f.state.executed_target_set_ids.insert("set-1".into());
            })
            .at("2026-11-28T17:00:00Z")
            .plan();
        let reasons: Vec<_> = plan.plan_blocks.iter().map(|b| b.reason).collect();
        assert_eq!(
            reasons,
            vec![
                ReasonCode::KillSwitch,
                ReasonCode::ReplayedTargetSet,
                ReasonCode::MarketClosed
            ]
        );
        assert!(plan.decisions.iter().all(|d| matches!(
            d.outcome,
            Outcome::Block {
                reason: ReasonCode::KillSwitch,
                ..
            }
        )));
    }

    #[test]
    fn plan_json_is_stable_and_round_trips() {
        let plan = book()
            .with(|f| f.cfg.guards.max_order_size.max_shares = d("50"))
            .plan();
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(
            json,
            serde_json::to_string(
                &book()
                    .with(|f| f.cfg.guards.max_order_size.max_shares = d("50"))
                    .plan()
            )
            .unwrap()
        );
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
        assert!(json.contains(r#""outcome":{"kind":"resize","qty":"50","guard":"max_order_size","reason":"max_order_shares""#), "{json}");
    }

    #[test]
    fn unsorted_and_duplicate_targets() {
        let mut fx = book();
        fx.targets.targets.reverse();
        assert_eq!(
            serde_json::to_string(&fx.plan()).unwrap(),
            serde_json::to_string(&book().plan()).unwrap()
        );
        // Duplicates: blocked by the suspicious-set guard; summed if that guard is off.
        let mut fx = book();
        fx.targets.targets.push(target("MSFT", "0.1"));
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        fx.cfg.guards.suspicious_target_set.enabled = false;
        let plan = fx.plan();
        assert_eq!(decision(&plan, "MSFT").target_weight, d("0.2"));
    }

    #[test]
    fn zero_delta_symbols_produce_no_decision() {
        let plan = Fixture::new()
            .position("AAPL", "100")
            .quote("AAPL", "100")
            .target("AAPL", "0.1")
            .plan();
        // Equity 110,000 * 0.1 / 100 = 110 > 100: a buy of 10.
        assert_eq!(plan.decisions.len(), 1);
        // 0.091 * 110,000 / 100 = 100.1, rounded toward zero: exactly what is held.
        let plan = Fixture::new()
            .position("AAPL", "100")
            .quote("AAPL", "100")
            .target("AAPL", "0.091")
            .plan();
        assert!(plan.decisions.is_empty(), "{:#?}", plan.decisions);
    }
}
