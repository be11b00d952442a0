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
//! target list once sorted), so a plan is two merge walks that look nothing
//! up. The census walks targets ∪ positions ∪ working orders for the book
//! totals (which fix the equity), the size of the universe and the last
//! symbol that might be sold; the sizing walk over targets ∪ positions sizes
//! each symbol and takes it straight through the guards that judge an order
//! on its own (see [`plan`]), so only orders that pass them are kept for the
//! rest. Symbols are compared as 128-bit keys, not strings, and the hot
//! arithmetic runs on unpacked mantissas ([`crate::fx`]) with exactly the
//! results `rust_decimal` gives. A plan is O(n) in the number of symbols when
//! the targets arrive sorted (O(n log n) otherwise), with no per-symbol scans.

use crate::config::RiskConfig;
use crate::context::{Candidate, Ctx, CycleAccumulator, PreBlock, Working};
use crate::fx::{self, Sum, D64};
use crate::guards::{self, buying_power::buffered, stale_quote, Active, Blocked};
use crate::input::PlanInput;
use crate::num::{self, mul};
use crate::output::{Decision, Exposure, GuardId, GuardStep, Outcome, Plan, PlanBlock, ReasonCode};
use chrono::{DateTime, Utc};
use keel_domain::{
    client_order_id, AccountSnapshot, AssetFacts, OpenOrder, Order, OrderType, Position, Quote, Side, Symbol,
    Target,
};
use rust_decimal::Decimal;
use std::collections::btree_map;

/// Plans one cycle: proposes the orders that move the account from
/// `input.snapshot` to `input.targets`, runs every guard on them and returns
/// the orders to send with the decision behind each.
///
/// Pure and total: no clock, no I/O, no panics; the same input and config
/// give the same plan, byte for byte once serialised.
///
/// Sells go through the pipeline first, in symbol order, then buys, so the
/// cumulative guards (exposure, buying power) see the room sells free. Only
/// the guards that read those running totals (exposure, buying power, cycle
/// limits, order rate) need that order: the earlier ones judge each order on
/// its own, so each sized order meets them at once, and a buy that passes
/// them waits for the rest until every sell is done. Most orders of a large,
/// steady book stop at the no-trade band, so they never need to be kept around.
pub fn plan(input: &PlanInput<'_>, cfg: &RiskConfig) -> Plan {
    let open = group_open_orders(&input.snapshot.open_orders);
    let setup = setup(input, cfg, &open);
    let Setup {
        ctx,
        mut acc,
        plan_blocks,
        exposure_before,
        merged,
        universe,
        last_sell,
    } = setup;
    let guards = guards::active(&cfg.guards);
    let split = guards.iter().position(|g| g.cumulative).unwrap_or(guards.len());
    let (early, late) = guards.split_at(split);
    let mut run = Run {
        input,
        cfg,
        ctx: &ctx,
        late,
        orders: Vec::new(),
    };
    // Decisions are made in symbol order, into one vector reserved once (at most one
    // per symbol of the universe), and put in plan order (sells, then buys) at the end.
    let mut decisions: Vec<Decision> = Vec::with_capacity(universe);
    // Buys that passed the early guards: (index in `decisions`, the order, its steps so far).
    let mut waiting: Vec<(usize, Candidate<'_>, Vec<GuardStep>)> = Vec::new();
    candidates(input, merged.as_deref(), &open, &ctx, |key, c| {
        // Past the last symbol that might be sold every sell is done: waiting buys
        // go now, and later ones need not wait.
        let sells_done = last_sell.is_none_or(|l| key > l);
        if sells_done && !waiting.is_empty() {
            for (i, mut w, steps) in waiting.drain(..) {
                if let Some(d) = decisions.get_mut(i) {
                    run.finish(&mut w, &mut acc, steps, d);
                }
            }
        }
        let risk_reducing = c.is_risk_reducing();
        let mut steps = Vec::new();
        let blocked = guards::pre_blocked(c, &ctx).or_else(|| guards::run(c, &ctx, &acc, early, &mut steps));
        if let Some(b) = blocked {
            decisions.push(blocked_decision(c, risk_reducing, steps, b));
            return;
        }
        let mut d = new_decision(c, risk_reducing);
        if c.side == Side::Sell || sells_done {
            run.finish(c, &mut acc, steps, &mut d);
            decisions.push(d);
        } else {
            // Its place is kept; the decision is completed after the sells.
            decisions.push(d);
            waiting.push((decisions.len() - 1, c.clone(), steps));
        }
    });
    for (i, mut c, steps) in waiting {
        if let Some(d) = decisions.get_mut(i) {
            run.finish(&mut c, &mut acc, steps, d);
        }
    }
    sells_first(&mut decisions);
    let orders = run.orders;
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

/// Puts decisions made in symbol order into plan order, sells then buys,
/// each in symbol order: a stable partition, done in place by following the
/// cycles of the permutation (each decision moves once, nothing is copied).
fn sells_first(decisions: &mut [Decision]) {
    let sells = decisions.iter().filter(|d| d.side == Side::Sell).count();
    if decisions[..sells].iter().all(|d| d.side == Side::Sell) {
        return;
    }
    // to[i]: where the decision now at i belongs.
    let (mut next_sell, mut next_buy) = (0, sells);
    let mut to: Vec<usize> = decisions
        .iter()
        .map(|d| {
            let slot = if d.side == Side::Sell {
                &mut next_sell
            } else {
                &mut next_buy
            };
            *slot += 1;
            *slot - 1
        })
        .collect();
    for i in 0..decisions.len() {
        while to[i] != i {
            let j = to[i];
            decisions.swap(i, j);
            to.swap(i, j);
        }
    }
}

/// The part of [`plan`] that finishes orders: the guards after the first
/// cumulative one, then the order itself.
struct Run<'r, 'a> {
    input: &'r PlanInput<'a>,
    cfg: &'r RiskConfig,
    ctx: &'r Ctx<'a>,
    late: &'r [Active<'r>],
    orders: Vec<Order>,
}

impl Run<'_, '_> {
    /// Runs the late guards on an order that passed the early ones and
    /// completes its decision `d` (made by [`new_decision`]); a passing order is
    /// committed and sent.
    fn finish(
        &mut self,
        c: &mut Candidate<'_>,
        acc: &mut CycleAccumulator,
        mut steps: Vec<GuardStep>,
        d: &mut Decision,
    ) {
        let blocked =
            guards::run(c, self.ctx, acc, self.late, &mut steps).or_else(|| guards::nothing_sized(c));
        if let Some(b) = blocked {
            d.steps = steps;
            d.outcome = block_outcome(b);
            return;
        }
        let input = self.input;
        let id = client_order_id(
            input.account_id,
            &input.targets.id,
            c.symbol,
            c.side,
            input.attempt,
        );
        acc.commit(c, c.qty, self.ctx);
        self.orders.push(Order {
            client_order_id: id.clone(),
            symbol: c.symbol.clone(),
            side: c.side,
            qty: c.qty,
            order_type: self.cfg.planner.order_type,
            limit_price: c.limit_price,
            time_in_force: self.cfg.planner.time_in_force,
        });
        d.outcome = final_outcome(&steps, c.qty);
        d.final_qty = c.qty;
        d.client_order_id = Some(id);
        d.steps = steps;
    }
}

/// The decision for a blocked order.
#[inline]
fn blocked_decision(c: &Candidate<'_>, risk_reducing: bool, steps: Vec<GuardStep>, b: Blocked) -> Decision {
    let mut d = new_decision(c, risk_reducing);
    d.steps = steps;
    d.outcome = block_outcome(b);
    d
}

fn block_outcome(b: Blocked) -> Outcome {
    Outcome::Block {
        guard: b.guard,
        reason: b.reason,
        detail: b.detail,
    }
}

/// The decision on `c` before its verdict: nothing sent, no steps, `Pass`
/// until the pipeline says otherwise.
#[inline]
fn new_decision(c: &Candidate<'_>, risk_reducing: bool) -> Decision {
    Decision {
        symbol: c.symbol.clone(),
        side: c.side,
        risk_reducing,
        target_weight: c.weight,
        position: c.position,
        target_qty: c.target_qty,
        reference_price: c.price,
        limit_price: c.limit_price,
        proposed_qty: c.proposed_qty,
        final_qty: Decimal::ZERO,
        client_order_id: None,
        steps: Vec::new(),
        outcome: Outcome::Pass,
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

/// Everything the pipeline needs before any order is sized.
struct Setup<'a> {
    ctx: Ctx<'a>,
    /// Totals before this cycle's orders.
    acc: CycleAccumulator,
    plan_blocks: Vec<PlanBlock>,
    exposure_before: Exposure,
    /// The targets sorted and merged, when the input was not strictly sorted.
    merged: Option<Vec<Weight<'a>>>,
    /// How many symbols targets ∪ positions holds.
    universe: usize,
    /// The key of the last symbol that might be sold.
    last_sell: Option<u128>,
}

/// The book totals, the equity, the whole-plan verdicts and the context.
fn setup<'a>(input: &PlanInput<'a>, cfg: &'a RiskConfig, open: &[OpenAgg<'a>]) -> Setup<'a> {
    let snap = input.snapshot;
    let g = &cfg.guards;
    let targets = &input.targets.targets;
    // Intake sorts the targets: then they are walked in place (the walk checks
    // the order as it goes), else sorted and merged once, and walked again.
    let given = targets.iter().map(|t| (sym_key(&t.symbol), &t.symbol, t.weight));
    let census_given = census(input, given, true, open, &g.buying_power);
    let (
        Census {
            book,
            universe,
            last_sell,
            ..
        },
        merged,
        duplicates,
    ) = if census_given.sorted {
        (census_given, None, Vec::new())
    } else {
        let (merged, duplicates) = sorted_targets(targets);
        let c = census(input, merged.iter().copied(), false, open, &g.buying_power);
        (c, Some(merged), duplicates)
    };
    let equity = fx::min(snap.equity, book.marked);
    let plan_blocks = whole_plan_blocks(input, cfg, equity, &duplicates);
    let ctx = Ctx {
        cfg,
        now: input.now,
        equity,
        equity64: D64::of(equity),
        lot_dp: if cfg.planner.fractional { 4 } else { 0 },
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
        quote_window: g.stale_quote.window(input.now),
        account_cooldown: if g.cooldown.enabled {
            g.cooldown.account_active(input.state, input.now)
        } else {
            None
        },
        venue_facts: input.state.assets.is_some(),
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
    Setup {
        ctx,
        acc,
        plan_blocks,
        exposure_before: Exposure {
            gross_before: book.gross,
            net_before: book.net,
            gross_after: book.gross,
            net_after: book.net,
        },
        merged,
        universe,
        last_sell,
    }
}

/// Everything the pipeline needs, before any guard runs (for the tests of
/// single guards).
#[cfg(test)]
pub(crate) struct Prepared<'a> {
    pub ctx: Ctx<'a>,
    /// Proposed orders in symbol order.
    pub candidates: Vec<Candidate<'a>>,
    /// Totals before this cycle's orders.
    pub acc: CycleAccumulator,
}

/// The context and the proposed orders, as [`plan`] builds them.
#[cfg(test)]
pub(crate) fn prepare<'a>(input: &PlanInput<'a>, cfg: &'a RiskConfig) -> Prepared<'a> {
    let open = group_open_orders(&input.snapshot.open_orders);
    let Setup { ctx, acc, merged, .. } = setup(input, cfg, &open);
    let mut out = Vec::new();
    candidates(input, merged.as_deref(), &open, &ctx, |_, c| out.push(c.clone()));
    Prepared {
        ctx,
        candidates: out,
        acc,
    }
}

// Symbols are at most 12 characters of `A-Z0-9.-` (validated by every
// constructor of `Symbol`, deserialisation included), so the first 16 bytes,
// zero-padded and read big-endian, order and identify them exactly: no
// symbol byte is 0, so a shorter symbol's padding sorts before any character
// a longer one continues with, as in string order.
const _: () = assert!(keel_domain::symbol::MAX_SYMBOL_LEN <= 16);

/// The symbol as a 128-bit key with the symbols' string order (see above).
#[inline(always)]
fn sym_key(s: &Symbol) -> u128 {
    let b = s.as_str().as_bytes();
    let mut buf = [0u8; 16];
    let n = b.len().min(16);
    buf[..n].copy_from_slice(&b[..n]);
    u128::from_be_bytes(buf)
}

/// Working orders of one symbol, grouped once per plan.
struct OpenAgg<'a> {
    key: u128,
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
    /// Lowest limit of the working sells.
    min_sell_limit: Option<Decimal>,
    /// Highest limit of the working buys.
    max_buy_limit: Option<Decimal>,
    /// Working buys without a usable limit.
    unpriced_buys: u32,
    /// Working sells without a usable limit.
    unpriced_sells: u32,
    /// A remaining quantity could not be summed exactly.
    overflow: bool,
}

fn group_open_orders(orders: &[OpenOrder]) -> Vec<OpenAgg<'_>> {
    let mut sorted: Vec<(u128, &OpenOrder)> = orders.iter().map(|o| (sym_key(&o.symbol), o)).collect();
    // Stable: orders of one symbol keep their input order.
    sorted.sort_by_key(|(k, _)| *k);
    let mut out: Vec<OpenAgg<'_>> = Vec::new();
    for (key, o) in sorted {
        if out.last().is_none_or(|a| a.key != key) {
            out.push(OpenAgg {
                key,
                symbol: &o.symbol,
                buys: 0,
                sells: 0,
                buy_remaining: Decimal::ZERO,
                sell_remaining: Decimal::ZERO,
                buy_limit_notional: Decimal::ZERO,
                buy_market_remaining: Decimal::ZERO,
                max_limit: None,
                min_sell_limit: None,
                max_buy_limit: None,
                unpriced_buys: 0,
                unpriced_sells: 0,
                overflow: false,
            });
        }
        let Some(agg) = out.last_mut() else { continue };
        // OpenOrder::remaining would panic on overflow; a negative remainder means nothing is working.
        let remaining = match fx::checked_sub(o.qty, o.filled_qty) {
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
        let sum = |acc: &mut Decimal, x: Decimal, overflow: &mut bool| match fx::checked_add(*acc, x) {
            Some(v) => *acc = v,
            None => {
                *overflow = true;
                *acc = Decimal::MAX;
            }
        };
        match o.side {
            Side::Buy => {
                agg.buys = agg.buys.saturating_add(1);
                match limit {
                    Some(l) => agg.max_buy_limit = Some(agg.max_buy_limit.map_or(l, |m| m.max(l))),
                    None => agg.unpriced_buys = agg.unpriced_buys.saturating_add(1),
                }
                sum(&mut agg.buy_remaining, remaining, &mut agg.overflow);
                match limit {
                    Some(l) => {
                        agg.buy_limit_notional = fx::sat_add(agg.buy_limit_notional, mul(remaining, l))
                    }
                    None => agg.buy_market_remaining = fx::sat_add(agg.buy_market_remaining, remaining),
                }
            }
            Side::Sell => {
                agg.sells = agg.sells.saturating_add(1);
                match limit {
                    Some(l) => agg.min_sell_limit = Some(agg.min_sell_limit.map_or(l, |m| m.min(l))),
                    None => agg.unpriced_sells = agg.unpriced_sells.saturating_add(1),
                }
                sum(&mut agg.sell_remaining, remaining, &mut agg.overflow);
            }
        }
    }
    out
}

/// One target: its symbol's key, the symbol, the weight.
type Weight<'a> = (u128, &'a Symbol, Decimal);

/// Target weights sorted by symbol, so the plan does not depend on the order
/// of the input vector (intake already sorts it; checking is O(n)). Duplicate
/// symbols are summed, an order-independent choice, and reported to the
/// suspicious-set guard, which blocks such a set by default.
fn sorted_targets(targets: &[Target]) -> (Vec<Weight<'_>>, Vec<&Symbol>) {
    let mut v: Vec<Weight<'_>> = targets
        .iter()
        .map(|t| (sym_key(&t.symbol), &t.symbol, t.weight))
        .collect();
    if v.windows(2).all(|w| w[0].0 < w[1].0) {
        return (v, Vec::new());
    }
    // Weight as tie-break so duplicates are summed in the same order whatever the input order.
    v.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
    let mut merged: Vec<Weight<'_>> = Vec::with_capacity(v.len());
    let mut dupes: Vec<&Symbol> = Vec::new();
    let mut last_dupe = None;
    for (k, s, w) in v {
        match merged.last_mut() {
            Some((last, _, sum)) if *last == k => {
                *sum = sum.saturating_add(w);
                if last_dupe != Some(k) {
                    last_dupe = Some(k);
                    dupes.push(s);
                }
            }
            _ => merged.push((k, s, w)),
        }
    }
    (merged, dupes)
}

/// A cursor over a `BTreeMap` keyed by symbol, advanced to ascending keys by
/// the merge walk (each entry's key is computed once).
struct Cursor<'a, V> {
    it: btree_map::Iter<'a, Symbol, V>,
    head: Option<(u128, &'a Symbol, &'a V)>,
}

impl<'a, V> Cursor<'a, V> {
    fn new(map: &'a std::collections::BTreeMap<Symbol, V>) -> Self {
        let mut it = map.iter();
        let head = it.next().map(|(k, v)| (sym_key(k), k, v));
        Self { it, head }
    }

    #[inline(always)]
    fn advance(&mut self) {
        self.head = self.it.next().map(|(k, v)| (sym_key(k), k, v));
    }

    /// The value at `key`, skipping smaller keys; keys must be asked for in ascending order.
    #[inline(always)]
    fn seek(&mut self, key: u128) -> Option<&'a V> {
        while let Some((k, _, v)) = self.head {
            if k < key {
                self.advance();
            } else if k == key {
                self.advance();
                return Some(v);
            } else {
                return None;
            }
        }
        None
    }
}

/// Account-wide figures from positions and working orders (see [`book_add`]).
struct Book {
    marked: Sum,
    gross: Sum,
    net: Sum,
    open_buy_notional: Decimal,
    buying_power_unknown: Option<String>,
}

impl Book {
    fn totals(self) -> BookTotals {
        BookTotals {
            marked: self.marked.dec(),
            gross: self.gross.dec(),
            net: self.net.dec(),
            open_buy_notional: self.open_buy_notional,
            buying_power_unknown: self.buying_power_unknown,
        }
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

/// What the first merge walk learns (see [`census`]).
struct Census {
    book: BookTotals,
    /// How many symbols targets ∪ positions holds: at most one decision each.
    universe: usize,
    /// The targets were in strictly ascending symbol order (else the walk stopped early).
    sorted: bool,
    /// The key of the last symbol that might be sold (see [`might_sell`]).
    last_sell: Option<u128>,
}

/// Whether a symbol might become a sell that reaches the cumulative guards.
/// A sell is a target below the projected position. With positive equity
/// (otherwise the whole plan is blocked and no order gets that far), a
/// target is negative only for a negative weight, and a projected position
/// is positive only with shares held or working orders; a symbol with none
/// of the three is never sold.
fn might_sell(weight: Option<Decimal>, position: Option<&Position>, working: bool) -> bool {
    weight.is_some_and(|w| !fx::is_pos(w) && !w.is_zero())
        || position.is_some_and(|p| !p.qty.is_zero() && !p.qty.is_sign_negative())
        || working
}

/// The first merge walk, over targets ∪ positions ∪ working orders in
/// symbol order: the book totals from positions and working orders (targets
/// hold no value yet), and the size of the universe. With `strict`, stops at
/// the first target that does not follow the previous one.
fn census<'a>(
    input: &PlanInput<'a>,
    targets: impl Iterator<Item = Weight<'a>>,
    strict: bool,
    open: &[OpenAgg<'_>],
    bp: &guards::BuyingPower,
) -> Census {
    let snap = input.snapshot;
    let mut t = Book {
        marked: Sum::new(snap.cash),
        gross: Sum::new(Decimal::ZERO),
        net: Sum::new(Decimal::ZERO),
        open_buy_notional: Decimal::ZERO,
        buying_power_unknown: None,
    };
    let mut universe = 0;
    let mut ti = targets.peekable();
    let mut oi = open.iter().peekable();
    let mut pi = Cursor::new(&snap.positions);
    let mut quotes = Cursor::new(&snap.quotes);
    let mut last_target = None;
    let mut last_sell = None;
    loop {
        // The smallest key at the heads (u128::MAX never is a symbol key: symbols are ASCII).
        let tk = ti.peek().map_or(u128::MAX, |t| t.0);
        if strict && tk != u128::MAX && last_target.is_some_and(|last| tk <= last) {
            return Census {
                book: t.totals(),
                universe,
                sorted: false,
                last_sell,
            };
        }
        let pk = pi.head.map_or(u128::MAX, |p| p.0);
        let ok = oi.peek().map_or(u128::MAX, |o| o.key);
        let key = tk.min(pk).min(ok);
        if key == u128::MAX {
            break;
        }
        let weight = ti.next_if(|t| t.0 == key).map(|t| t.2);
        let target = weight.is_some();
        if target {
            last_target = Some(key);
        }
        let position = match pi.head {
            Some((k, _, p)) if k == key => {
                pi.advance();
                Some(p)
            }
            _ => None,
        };
        universe += usize::from(target || position.is_some());
        let agg = oi.next_if(|o| o.key == key);
        if might_sell(weight, position, agg.is_some()) {
            last_sell = Some(key);
        }
        let symbol = match (position, agg) {
            (Some(p), _) => &p.symbol,
            (None, Some(a)) => a.symbol,
            // A target alone holds no value.
            (None, None) => continue,
        };
        let (price, price64) = match quotes.seek(key) {
            Some(q) => num::reference_fast(q),
            None => (None, None),
        };
        book_add(&mut t, symbol, position, agg, price, price64, bp);
    }
    Census {
        book: t.totals(),
        universe,
        sorted: true,
        last_sell,
    }
}

/// The second merge walk, over targets ∪ positions in symbol order: sizes
/// each symbol against the equity and hands every order to `f`, in symbol
/// order (symbols with nothing to trade are skipped). `merged` replaces the
/// input targets when they were not strictly sorted.
fn candidates<'a>(
    input: &PlanInput<'a>,
    merged: Option<&[Weight<'a>]>,
    open: &[OpenAgg<'a>],
    ctx: &Ctx<'_>,
    mut f: impl FnMut(u128, &mut Candidate<'a>),
) {
    match merged {
        None => {
            let given = input
                .targets
                .targets
                .iter()
                .map(|t| (sym_key(&t.symbol), &t.symbol, t.weight));
            walk(input, given, open, ctx, &mut f)
        }
        Some(m) => walk(input, m.iter().copied(), open, ctx, &mut f),
    }
}

fn walk<'a>(
    input: &PlanInput<'a>,
    targets: impl Iterator<Item = Weight<'a>>,
    open: &[OpenAgg<'a>],
    ctx: &Ctx<'_>,
    f: &mut impl FnMut(u128, &mut Candidate<'a>),
) {
    let snap: &'a AccountSnapshot = input.snapshot;
    let mut ti = targets.peekable();
    let mut oi = open.iter().peekable();
    let mut pi = Cursor::new(&snap.positions);
    let mut quotes = Cursor::new(&snap.quotes);
    let mut advs = Cursor::new(&input.state.adv);
    let mut lasts = Cursor::new(&input.state.last_trade_at);
    static NO_ASSETS: std::collections::BTreeMap<Symbol, AssetFacts> = std::collections::BTreeMap::new();
    let mut assets = Cursor::new(input.state.assets.as_ref().unwrap_or(&NO_ASSETS));
    loop {
        let tk = ti.peek().map_or(u128::MAX, |t| t.0);
        let pk = pi.head.map_or(u128::MAX, |p| p.0);
        let key = tk.min(pk);
        if key == u128::MAX {
            break;
        }
        let target = ti.next_if(|t| t.0 == key);
        let position = match pi.head {
            Some((k, _, p)) if k == key => {
                pi.advance();
                Some(p)
            }
            _ => None,
        };
        let symbol = match (target, position) {
            (Some(t), _) => t.1,
            (None, Some(p)) => &p.symbol,
            (None, None) => break,
        };
        while oi.next_if(|o| o.key < key).is_some() {}
        let agg = oi.next_if(|o| o.key == key);
        let quote = quotes.seek(key);
        let (price, price64) = match quote {
            Some(q) => num::reference_fast(q),
            None => (None, None),
        };
        let mut c = unsized_candidate(
            symbol,
            target.map(|t| t.2).unwrap_or_default(),
            position,
            agg,
            quote,
            price,
            price64,
            advs.seek(key),
            lasts.seek(key),
            assets.seek(key),
        );
        if size(&mut c, ctx) {
            f(key, &mut c);
        }
    }
}

/// One symbol's share of the book totals.
///
/// Valuation price: reference, else average cost, else the highest working
/// limit; zero only when nothing at all is known about the symbol.
#[inline]
fn book_add(
    t: &mut Book,
    symbol: &Symbol,
    position: Option<&Position>,
    agg: Option<&OpenAgg<'_>>,
    price: Option<Decimal>,
    price64: Option<D64>,
    bp: &guards::BuyingPower,
) {
    // The common case, a position without working orders valued at its quote, unpacked.
    if let (Some(p), None, Some(px)) = (position, agg, price64) {
        if let Some(value) = D64::of(p.qty).and_then(|held| held.mul(px)) {
            if let Some(abs) = value.abs() {
                t.marked.add64(value);
                t.gross.add64(abs);
                t.net.add64(value);
                return;
            }
        }
    }
    let val_px = price
        .or_else(|| position.map(|p| p.avg_cost).filter(|c| num::is_positive(*c)))
        .or_else(|| agg.and_then(|a| a.max_limit))
        .unwrap_or_default();
    let held = position.map(|p| p.qty).unwrap_or_default();
    let held_value = mul(held, val_px);
    t.marked.add(held_value);
    // val_px ≥ 0, so |projected × px| = |projected| × px: one multiplication serves both sums.
    let value = match agg {
        // Without working orders the projected position is what is held.
        None => held_value,
        Some(a) => mul(
            fx::sat_sub(fx::sat_add(held, a.buy_remaining), a.sell_remaining),
            val_px,
        ),
    };
    t.gross.add(value.abs());
    t.net.add(value);
    let Some(a) = agg else { return };
    t.open_buy_notional = fx::sat_add(t.open_buy_notional, a.buy_limit_notional);
    if num::is_positive(a.buy_market_remaining) {
        match price {
            Some(p) => {
                let px = buffered(p, bp.market_buffer_bps);
                t.open_buy_notional = fx::sat_add(t.open_buy_notional, mul(a.buy_market_remaining, px));
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
    let equity_block = if !fx::is_pos(equity) {
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
        g.coverage.assess(input.targets, input.snapshot),
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

/// One symbol of the universe (targets ∪ positions) with everything known
/// about it before the equity is: its projected position, or the refusal
/// when that overflows. [`size`] finishes it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn unsized_candidate<'a>(
    symbol: &'a Symbol,
    weight: Decimal,
    holding: Option<&'a Position>,
    open: Option<&OpenAgg<'a>>,
    quote: Option<&'a Quote>,
    price: Option<Decimal>,
    price64: Option<D64>,
    adv: Option<&'a Decimal>,
    last_trade_at: Option<&'a DateTime<Utc>>,
    asset: Option<&'a AssetFacts>,
) -> Candidate<'a> {
    let held = holding.map(|p| p.qty).unwrap_or_default();
    let (position, pre_block) = match open {
        // Without working orders, held + 0 − 0 is held, unchanged (a zero comes back as
        // `Decimal::ZERO`, whatever its scale: that is what the decimal sum gives).
        None => (if held.is_zero() { Decimal::ZERO } else { held }, None),
        Some(a) => {
            let projected = if a.overflow {
                None
            } else {
                fx::checked_add(held, a.buy_remaining).and_then(|p| fx::checked_sub(p, a.sell_remaining))
            };
            match projected {
                Some(p) => (p, None),
                None => (
                    Decimal::ZERO,
                    Some(Box::new(overflow(symbol, "position plus working orders"))),
                ),
            }
        }
    };
    Candidate {
        symbol,
        side: if fx::is_neg(weight) { Side::Sell } else { Side::Buy },
        qty: Decimal::ZERO,
        proposed_qty: Decimal::ZERO,
        weight,
        target_qty: None,
        position,
        price,
        price64,
        limit_price: None,
        holding,
        working: open.map(|a| {
            Box::new(Working {
                buy: a.buy_remaining,
                sell: a.sell_remaining,
                buys: a.buys,
                sells: a.sells,
                min_sell_limit: a.min_sell_limit,
                max_buy_limit: a.max_buy_limit,
                unpriced_buys: a.unpriced_buys,
                unpriced_sells: a.unpriced_sells,
            })
        }),
        quote,
        adv,
        last_trade_at,
        asset,
        pre_block,
    }
}

/// The planner's refusal of a quantity it cannot compute.
fn overflow(symbol: &Symbol, what: &str) -> PreBlock {
    PreBlock {
        guard: GuardId::Planner,
        reason: ReasonCode::ArithmeticOverflow,
        detail: format!("{what} for {symbol} overflows decimal range"),
    }
}

/// Sizes one symbol against the equity. `false` when there is nothing to
/// trade (the candidate is dropped).
#[inline]
fn size(c: &mut Candidate<'_>, ctx: &Ctx<'_>) -> bool {
    if c.pre_block.is_some() {
        // Its position overflowed: refused as it is, unsized.
        return true;
    }
    match size_fast(c, ctx) {
        Some(keep) => keep,
        None => size_general(c, ctx),
    }
}

/// [`size_general`] on unpacked numbers, for a priced symbol whose every
/// step fits (the common case). `None` leaves the candidate untouched for
/// the general path: anything unusual (an unpriced symbol, an overflow, a
/// limit that is not a positive price) is its business.
#[inline(always)]
fn size_fast(c: &mut Candidate<'_>, ctx: &Ctx<'_>) -> Option<bool> {
    let px = c.price64?;
    let lot = ctx.lot_dp;
    let target = D64::of(c.weight)?.mul(ctx.equity64?)?.div_to_lot(px, lot)?;
    let delta = target.sub(D64::of(c.position)?)?;
    let side = if delta.is_pos() { Side::Buy } else { Side::Sell };
    let qty = delta.abs()?.floor_lot(lot)?;
    if qty.is_zero() {
        return Some(false);
    }
    let limit = if ctx.cfg.planner.order_type == OrderType::Limit {
        Some(ctx.pricer.price64(side, px)?)
    } else {
        None
    };
    c.target_qty = Some(target.dec());
    c.side = side;
    c.qty = qty.dec();
    c.proposed_qty = c.qty;
    c.limit_price = limit.map(D64::dec);
    Some(true)
}

/// Sizes one symbol against the equity, in `Decimal`. `false` when there is
/// nothing to trade.
fn size_general(c: &mut Candidate<'_>, ctx: &Ctx<'_>) -> bool {
    let planner_cfg = &ctx.cfg.planner;
    let position = c.position;
    let target = match c.price {
        Some(px) => {
            match fx::checked_mul(c.weight, ctx.equity).and_then(|n| num::div_to_lot(n, px, ctx.lot_dp)) {
                Some(t) => Some(t),
                None => {
                    c.pre_block = Some(Box::new(overflow(c.symbol, "target quantity")));
                    return true;
                }
            }
        }
        // Without a price only a zero target can be sized; the order is refused below anyway.
        None if c.weight.is_zero() => Some(Decimal::ZERO),
        None => None,
    };
    c.target_qty = target;
    // Unpriced with a non-zero weight keeps qty 0 and the weight's direction, so the audit shows why.
    if let Some(t) = target {
        let Some(delta) = fx::checked_sub(t, position) else {
            c.pre_block = Some(Box::new(overflow(c.symbol, "trade quantity")));
            return true;
        };
        c.side = if fx::is_pos(delta) { Side::Buy } else { Side::Sell };
        c.qty = ctx.floor_lot(delta.abs());
        if c.qty.is_zero() {
            return false;
        }
    }
    c.proposed_qty = c.qty;
    match c.price {
        None => c.pre_block = Some(Box::new(stale_quote::missing(c.symbol, c.quote.is_some()))),
        Some(px) if planner_cfg.order_type == OrderType::Limit => {
            c.limit_price = ctx.pricer.price(c.side, px);
            if c.limit_price.is_none() {
                c.pre_block = Some(Box::new(PreBlock {
                    guard: GuardId::Planner,
                    reason: ReasonCode::InvalidLimitPrice,
                    detail: format!(
                        "{} limit for {} at {} bps from {px} is not a positive price",
                        c.side, c.symbol, planner_cfg.limit_offset_bps
                    ),
                }));
            }
        }
        Some(_) => {}
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn symbol_keys_are_the_zero_padded_bytes_and_keep_string_order() {
        let padded = |s: &str| {
            let mut buf = [0u8; 16];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            u128::from_be_bytes(buf)
        };
        let mut names: Vec<String> = [
            "A",
            "AB",
            "ABC",
            "ABCD",
            "ABCDE",
            "ABCDEFG",
            "ABCDEFGH",
            "ABCDEFGHI",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.extend(
            [
                "BRK.B",
                "BF-B",
                "Z9",
                "ABCDEFGHIJKL",
                "ABCDEFGHIJK",
                "AAPL",
                "A.",
                "A-",
            ]
            .map(String::from),
        );
        for len in 1..=12 {
            names.push("XYZ.-0129ABC".chars().take(len).collect());
        }
        let syms: Vec<Symbol> = names.iter().map(|n| sym(n)).collect();
        for a in &syms {
            assert_eq!(sym_key(a), padded(a.as_str()), "{a}");
            for b in &syms {
                assert_eq!(sym_key(a).cmp(&sym_key(b)), a.cmp(b), "{a} vs {b}");
            }
        }
    }

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
    fn sells_first_is_a_stable_partition() {
        let plan = book().plan();
        let template = plan.decisions[0].clone();
        for pattern in [
            "",
            "S",
            "B",
            "SB",
            "BS",
            "BBSBSSB",
            "SSSBBB",
            "BBBSSS",
            "BSBSBSBSB",
        ] {
            let mut v: Vec<Decision> = pattern
                .chars()
                .enumerate()
                .map(|(i, ch)| Decision {
                    side: if ch == 'S' { Side::Sell } else { Side::Buy },
                    proposed_qty: Decimal::from(i),
                    ..template.clone()
                })
                .collect();
            let mut expected: Vec<(Side, Decimal)> = v.iter().map(|d| (d.side, d.proposed_qty)).collect();
            expected.sort_by_key(|(side, _)| *side == Side::Buy);
            sells_first(&mut v);
            let got: Vec<(Side, Decimal)> = v.iter().map(|d| (d.side, d.proposed_qty)).collect();
            assert_eq!(got, expected, "{pattern}");
        }
    }

    #[test]
    fn only_the_cumulative_guards_read_the_accumulator() {
        // The planner runs the guards before the first cumulative one as soon as an order
        // is sized, whatever the cycle has accepted; they must not look at it.
        let g = &RiskConfig::default().guards;
        let cumulative: Vec<GuardId> = guards::per_order(g)
            .iter()
            .filter(|g| g.reads_cycle())
            .map(|g| g.id())
            .collect();
        assert_eq!(
            cumulative,
            vec![
                GuardId::ExposureLimits,
                GuardId::BuyingPower,
                GuardId::CycleLimits,
                GuardId::OrderRateThrottle
            ]
        );
        let extreme = CycleAccumulator {
            gross: Decimal::MAX,
            net: Decimal::MIN,
            buying_power: Decimal::MIN,
            buying_power_unknown: Some("unknown".into()),
            turnover: Decimal::MAX,
            orders: usize::MAX,
        };
        for fx in [
            book(),
            book().with(|f| f.cfg.guards.max_position_weight.max_weight = d("0.01")),
            book().vol_hook("0.5").adv("MSFT", "100"),
            book().open_order("NVDA", Side::Sell, "5"),
        ] {
            let p = fx.prepare();
            for guard in guards::per_order(&fx.cfg.guards)
                .iter()
                .filter(|g| !g.reads_cycle())
            {
                for c in &p.candidates {
                    assert_eq!(
                        guard.check(c, &p.ctx, &p.acc),
                        guard.check(c, &p.ctx, &extreme),
                        "{:?} on {}",
                        guard.id(),
                        c.symbol
                    );
                }
            }
        }
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
