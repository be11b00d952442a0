//! Property tests: the invariants the planner promises, over random
//! snapshots, targets, histories and configs.

use chrono::{DateTime, Duration, Utc};
use keel_domain::{
    AccountSnapshot, OpenOrder, OrderType, Position, Quote, Side, Symbol, Target, TargetSet, TimeInForce,
};
use keel_planner::guards::VolHook;
use keel_planner::{plan, GuardState, Outcome, Plan, PlanInput, RiskConfig};
use proptest::prelude::*;
use proptest::sample::SizeRange;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

const POOL: [&str; 8] = ["AAA", "BB.B", "CCC", "DDD", "EE-E", "FFF", "GGG", "HHH"];

fn now() -> DateTime<Utc> {
    // Tuesday 2026-11-24, 12:00 New York: in session, so market hours may stay on.
    "2026-11-24T17:00:00Z".parse().unwrap()
}

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

fn dec(lo: i64, hi: i64, scale: u32) -> impl Strategy<Value = Decimal> + Clone {
    (lo..=hi).prop_map(move |m| Decimal::new(m, scale))
}

/// Everything one plan needs, owned.
#[derive(Debug, Clone)]
struct World {
    targets: TargetSet,
    snapshot: AccountSnapshot,
    state: GuardState,
    cfg: RiskConfig,
}

impl World {
    fn input(&self) -> PlanInput<'_> {
        PlanInput {
            account_id: "acct",
            targets: &self.targets,
            snapshot: &self.snapshot,
            now: now(),
            attempt: 1,
            state: &self.state,
        }
    }

    fn plan(&self) -> Plan {
        plan(&self.input(), &self.cfg)
    }

    /// Valuation price exactly as the planner documents it: reference, else
    /// average cost, else the highest working limit.
    fn val_px(&self, s: &Symbol) -> Decimal {
        let reference = self
            .snapshot
            .quotes
            .get(s)
            .map(Quote::reference)
            .filter(|p| *p > Decimal::ZERO);
        let avg = self
            .snapshot
            .positions
            .get(s)
            .map(|p| p.avg_cost)
            .filter(|c| *c > Decimal::ZERO);
        let limit = self
            .snapshot
            .open_orders
            .iter()
            .filter(|o| &o.symbol == s)
            .filter_map(|o| o.limit_price.filter(|p| *p > Decimal::ZERO))
            .max();
        reference.or(avg).or(limit).unwrap_or_default()
    }

    /// held + working buys − working sells for every symbol.
    fn projected(&self) -> BTreeMap<Symbol, Decimal> {
        let mut m: BTreeMap<Symbol, Decimal> = self
            .snapshot
            .positions
            .iter()
            .map(|(s, p)| (s.clone(), p.qty))
            .collect();
        for o in &self.snapshot.open_orders {
            *m.entry(o.symbol.clone()).or_default() += o.side.sign() * o.remaining();
        }
        m
    }

    fn gross(&self, positions: &BTreeMap<Symbol, Decimal>) -> Decimal {
        positions.iter().map(|(s, q)| q.abs() * self.val_px(s)).sum()
    }
}

#[derive(Debug, Clone)]
struct SymbolSpec {
    weight: Option<Decimal>,
    position: Option<Decimal>,
    quote: Option<(Decimal, Decimal, i64)>,
    open: Vec<(bool, Decimal, Decimal, Option<Decimal>)>,
    adv: Option<Decimal>,
    last_trade_secs_ago: Option<i64>,
}

fn symbol_spec() -> impl Strategy<Value = SymbolSpec> {
    (
        prop::option::weighted(0.7, dec(-3000, 5000, 4)),
        prop::option::weighted(0.6, prop_oneof![dec(-400, 1500, 0), dec(-4000, 15000, 1)]),
        prop::option::weighted(0.9, (dec(50, 50000, 2), dec(0, 30, 2), 0i64..90)),
        prop::collection::vec(
            (
                any::<bool>(),
                dec(0, 300, 0),
                dec(0, 100, 0),
                prop::option::of(dec(50, 50000, 2)),
            ),
            SizeRange::from(0..3),
        ),
        prop::option::of(dec(0, 200_000, 0)),
        prop::option::weighted(0.3, 0i64..900),
    )
        .prop_map(|(weight, position, quote, open, adv, last)| SymbolSpec {
            weight,
            position,
            quote,
            open,
            adv,
            last_trade_secs_ago: last,
        })
}

fn config() -> impl Strategy<Value = RiskConfig> {
    (
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            dec(0, 80, 0),
            any::<bool>(),
        ),
        (
            dec(1, 30, 1),
            dec(1, 30, 1),
            dec(0, 30, 4),
            dec(1, 100, 2),
            dec(100, 2_000_000, 0),
        ),
        (
            dec(1, 5000, 0),
            dec(0, 100, 3),
            any::<bool>(),
            dec(0, 100, 2),
            any::<bool>(),
        ),
        (0u32..12, dec(0, 300, 2), 0u32..30, 0u64..600, 0u64..120),
        (
            30u64..120,
            dec(0, 100, 0),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(|(a, b, c, d, e)| {
            let mut cfg = RiskConfig::default();
            cfg.planner.fractional = a.0;
            cfg.planner.order_type = if a.1 { OrderType::Limit } else { OrderType::Market };
            cfg.planner.allow_short = a.2;
            cfg.planner.limit_offset_bps = a.3;
            cfg.planner.time_in_force = if a.4 { TimeInForce::Day } else { TimeInForce::Ioc };
            let g = &mut cfg.guards;
            // Worlds price only some targets on purpose; half the set may be
            // unpriced before the whole-set coverage block, so both paths run.
            g.coverage.max_missing_weight = rust_decimal::Decimal::new(5, 1);
            g.exposure.max_gross = b.0;
            g.exposure.max_net = b.1;
            g.no_trade_band.min_weight = b.2;
            g.max_position_weight.max_weight = b.3;
            g.max_order_size.max_notional = b.4;
            g.max_order_size.max_shares = c.0;
            g.adv_limit.max_adv_fraction = c.1;
            g.adv_limit.block_unknown = c.2;
            g.buying_power.sell_proceeds_fraction = c.3;
            g.buying_power.subtract_open_buys = c.4;
            g.cycle_limits.max_orders = d.0;
            g.cycle_limits.max_turnover = d.1;
            g.order_rate.max_orders = d.2;
            g.cooldown.symbol_secs = d.3;
            g.cooldown.account_secs = d.4;
            g.stale_quote.max_age_secs = e.0;
            g.price_collar.max_bps = e.1;
            g.market_hours.enabled = e.2;
            g.open_orders.block_opposite_side = e.3;
            g.no_trade_band.exempt_full_exit = e.4;
            // The built-in source needs a close history; the hook is driven directly below.
            g.volatility_brake.builtin = false;
            cfg
        })
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(symbol_spec(), POOL.len()),
        dec(-50_000, 300_000, 0),
        dec(0, 400_000, 0),
        config(),
        (
            prop::option::weighted(0.1, "[a-z ]{0,12}"),
            prop_oneof![
                Just(VolHook::Off),
                Just(VolHook::Optional),
                Just(VolHook::Required)
            ],
            prop::option::weighted(
                0.8,
                prop_oneof![dec(0, 10, 1), Just(Decimal::ZERO), dec(-5, 15, 1)],
            ),
            prop::option::weighted(0.3, 0i64..200),
            prop::collection::vec(0i64..120, SizeRange::from(0..12)),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(specs, cash, bp, mut cfg, (kill, hook, ext, last_rebalance, recent, liquidate))| {
                let now = now();
                let mut snapshot = AccountSnapshot {
                    account_id: "acct".into(),
                    cash,
                    equity: Decimal::ZERO,
                    buying_power: bp,
                    ..Default::default()
                };
                let mut state = GuardState {
                    kill_switch: kill,
                    last_account_rebalance_at: last_rebalance.map(|s| now - Duration::seconds(s)),
                    recent_order_times: recent.into_iter().map(|s| now - Duration::seconds(s)).collect(),
                    external_vol_scale: ext,
                    ..Default::default()
                };
                cfg.guards.volatility_brake.hook = hook;
                let mut targets = Vec::new();
                for (i, (name, spec)) in POOL.iter().zip(specs).enumerate() {
                    let s = sym(name);
                    if let Some(w) = spec.weight {
                        targets.push(Target {
                            symbol: s.clone(),
                            weight: w,
                        });
                    }
                    if let Some(q) = spec.position {
                        snapshot.positions.insert(
                            s.clone(),
                            Position {
                                symbol: s.clone(),
                                qty: q,
                                avg_cost: Decimal::TEN,
                            },
                        );
                    }
                    if let Some((px, spread, age)) = spec.quote {
                        snapshot.quotes.insert(
                            s.clone(),
                            Quote {
                                symbol: s.clone(),
                                bid: px,
                                ask: px + spread,
                                last: px,
                                ts: now - Duration::seconds(age),
                            },
                        );
                    }
                    for (j, (buy, qty, filled, limit)) in spec.open.into_iter().enumerate() {
                        snapshot.open_orders.push(OpenOrder {
                            client_order_id: format!("old-{i}-{j}"),
                            symbol: s.clone(),
                            side: if buy { Side::Buy } else { Side::Sell },
                            qty,
                            filled_qty: filled,
                            order_type: if limit.is_some() {
                                OrderType::Limit
                            } else {
                                OrderType::Market
                            },
                            limit_price: limit,
                            submitted_at: now - Duration::minutes(3),
                        });
                    }
                    if let Some(a) = spec.adv {
                        state.adv.insert(s.clone(), a);
                    }
                    if let Some(secs) = spec.last_trade_secs_ago {
                        state.last_trade_at.insert(s, now - Duration::seconds(secs));
                    }
                }
                snapshot.equity = snapshot.marked_equity();
                targets.sort_by(|a, b| a.symbol.cmp(&b.symbol));
                let targets = TargetSet {
                    id: "set-7".into(),
                    as_of: now - Duration::minutes(2),
                    valid_until: None,
                    targets,
                    liquidate,
                };
                World {
                    targets,
                    snapshot,
                    state,
                    cfg,
                }
            },
        )
}

/// 512 cases by default; `PROPTEST_CASES` raises it for a longer soak.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn json(p: &Plan) -> String {
    serde_json::to_string(p).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Invariant 1: with shorting off, no sell exceeds held − working sells.
    #[test]
    fn never_sells_more_than_held(mut w in world()) {
        w.cfg.planner.allow_short = false;
        let p = w.plan();
        for o in p.orders.iter().filter(|o| o.side == Side::Sell) {
            let held = w.snapshot.held(&o.symbol);
            let committed = w.snapshot.committed(&o.symbol, Side::Sell);
            prop_assert!(o.qty <= held - committed, "{o:?} held {held} committed {committed}");
        }
    }

    /// Gross exposure after the plan (positions + working + sent orders at
    /// reference prices) stays within max_gross × equity, or does not grow
    /// when the book was already above it.
    #[test]
    fn gross_exposure_within_limit(w in world()) {
        let p = w.plan();
        let mut after = w.projected();
        let before = w.gross(&after);
        for o in &p.orders {
            *after.entry(o.symbol.clone()).or_default() += o.side.sign() * o.qty;
        }
        let gross_after = w.gross(&after);
        let limit = w.cfg.guards.exposure.max_gross * p.equity;
        prop_assert!(gross_after <= limit.max(before), "after {gross_after} limit {limit} before {before}");
        prop_assert_eq!(p.exposure.gross_before, before);
        prop_assert_eq!(p.exposure.gross_after, gross_after);
    }

    /// Invariant 5: the same inputs give the same bytes, whatever the order of the targets vector.
    #[test]
    fn deterministic_and_order_invariant(w in world(), seed in any::<u64>()) {
        let a = json(&w.plan());
        prop_assert_eq!(&a, &json(&w.plan()));
        let mut shuffled = w.clone();
        let n = shuffled.targets.targets.len();
        let mut s = seed;
        for i in (1..n).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.targets.targets.swap(i, (s >> 33) as usize % (i + 1));
        }
        shuffled.targets.targets.reverse();
        prop_assert_eq!(&a, &json(&shuffled.plan()));
    }

    /// Invariant 2: never a second working order on the same symbol and side.
    #[test]
    fn no_order_on_top_of_a_working_one(w in world()) {
        let p = w.plan();
        for o in &p.orders {
            prop_assert!(
                !w.snapshot.open_orders.iter().any(|x| x.symbol == o.symbol && x.side == o.side),
                "{o:?}"
            );
        }
        // And at most one order per symbol in the plan itself.
        let mut seen = std::collections::BTreeSet::new();
        for o in &p.orders {
            prop_assert!(seen.insert(o.symbol.clone()));
        }
    }

    /// Every block explains itself; every sent order is positive and no larger
    /// than proposed; orders and decisions agree and are ordered sells-then-buys by symbol.
    #[test]
    fn decisions_are_well_formed(w in world()) {
        let p = w.plan();
        let mut sent = p.decisions.iter().filter(|d| d.is_sent());
        for o in &p.orders {
            let d = sent.next().expect("an order without a decision");
            prop_assert_eq!(&d.symbol, &o.symbol);
            prop_assert_eq!(d.side, o.side);
            prop_assert_eq!(d.final_qty, o.qty);
            prop_assert_eq!(d.client_order_id.as_ref(), Some(&o.client_order_id));
            prop_assert!(o.qty > Decimal::ZERO && o.qty <= d.proposed_qty, "{d:?}");
            if !w.cfg.planner.fractional {
                prop_assert_eq!(o.qty, o.qty.trunc());
            }
            match w.cfg.planner.order_type {
                OrderType::Limit => prop_assert!(o.limit_price.is_some_and(|p| p > Decimal::ZERO)),
                OrderType::Market => prop_assert!(o.limit_price.is_none()),
            }
        }
        prop_assert!(sent.next().is_none());
        for d in &p.decisions {
            match &d.outcome {
                Outcome::Block { reason, detail, .. } => {
                    prop_assert!(!reason.as_str().is_empty());
                    prop_assert!(!detail.trim().is_empty(), "{d:?}");
                    prop_assert!(d.final_qty.is_zero());
                }
                Outcome::Resize { qty, detail, .. } => {
                    prop_assert!(!detail.is_empty());
                    prop_assert_eq!(*qty, d.final_qty);
                    prop_assert!(d.final_qty < d.proposed_qty);
                }
                Outcome::Pass => prop_assert_eq!(d.final_qty, d.proposed_qty),
            }
            for s in &d.steps {
                prop_assert!(s.to < s.from && s.to > Decimal::ZERO && !s.detail.is_empty());
            }
        }
        let keys: Vec<(u8, &Symbol)> = p
            .orders
            .iter()
            .map(|o| (if o.side == Side::Sell { 0 } else { 1 }, &o.symbol))
            .collect();
        prop_assert!(keys.windows(2).all(|k| k[0] < k[1]), "{keys:?}");
    }

    /// Invariant 4: an engaged kill switch means no orders at all.
    #[test]
    fn kill_switch_stops_everything(mut w in world(), reason in ".{0,20}") {
        w.state.kill_switch = Some(reason);
        let p = w.plan();
        prop_assert!(p.orders.is_empty());
        prop_assert!(p.decisions.iter().all(|d| !d.is_sent()));
    }

    /// At volatility scale 0 only risk-reducing orders go out.
    #[test]
    fn zero_vol_scale_only_reduces(mut w in world()) {
        w.cfg.guards.volatility_brake.hook = VolHook::Required;
        w.state.external_vol_scale = Some(Decimal::ZERO);
        let p = w.plan();
        prop_assert_eq!(p.vol_scale, Decimal::ZERO);
        let projected = w.projected();
        for o in &p.orders {
            let pos = projected.get(&o.symbol).copied().unwrap_or_default();
            let after = pos + o.side.sign() * o.qty;
            prop_assert!(!pos.is_zero(), "{o:?} opens a position");
            prop_assert!(after.abs() < pos.abs(), "{o:?} from {pos}");
            prop_assert!(after.is_zero() || after.is_sign_negative() == pos.is_sign_negative(), "{o:?} crosses");
        }
    }
}

/// Extreme decimals (overflow, zero and negative prices, huge positions):
/// the planner must neither panic nor emit a malformed order.
fn wild_decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(Decimal::MAX),
        Just(Decimal::MIN),
        Just(Decimal::ZERO),
        Just(Decimal::new(1, 28)),
        Just(Decimal::new(-1, 28)),
        any::<i64>().prop_map(|m| Decimal::new(m, 0)),
        (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s)),
        dec(-1000, 100000, 2),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn wild_inputs_never_panic(
        mut w in world(),
        wilds in prop::collection::vec(wild_decimal(), 12),
        pick in any::<u16>(),
    ) {
        // Sprinkle extreme values over quotes, positions, weights, open orders and the account.
        let mut it = wilds.into_iter().cycle();
        let mut next = || it.next().unwrap_or_default();
        if pick & 1 != 0 { w.snapshot.cash = next(); }
        if pick & 2 != 0 { w.snapshot.equity = next(); }
        if pick & 4 != 0 { w.snapshot.buying_power = next(); }
        for q in w.snapshot.quotes.values_mut() {
            if pick & 8 != 0 { q.bid = next(); q.ask = next(); }
            if pick & 16 != 0 { q.last = next(); }
        }
        for p in w.snapshot.positions.values_mut() {
            if pick & 32 != 0 { p.qty = next(); }
            if pick & 64 != 0 { p.avg_cost = next(); }
        }
        for t in &mut w.targets.targets {
            if pick & 128 != 0 { t.weight = next(); }
        }
        for o in &mut w.snapshot.open_orders {
            if pick & 256 != 0 { o.qty = next(); o.filled_qty = next(); }
            if pick & 512 != 0 { o.limit_price = Some(next()); }
        }
        if pick & 1024 != 0 { w.cfg.planner.limit_offset_bps = next(); }
        if pick & 2048 != 0 { w.cfg.guards.exposure.max_gross = next(); }
        if pick & 4096 != 0 { w.cfg.guards.max_order_size.max_notional = next(); }
        if pick & 8192 != 0 { w.state.external_vol_scale = Some(next()); }
        if pick & 16384 != 0 { w.cfg.guards.volatility_brake.builtin = true; w.state.reference_closes = (0..25).map(|_| next()).collect(); }
        let p = w.plan();
        for o in &p.orders {
            prop_assert!(o.qty > Decimal::ZERO);
            if let Some(l) = o.limit_price { prop_assert!(l > Decimal::ZERO); }
        }
        prop_assert!(p.vol_scale >= Decimal::ZERO && p.vol_scale <= Decimal::ONE);
        let _ = json(&p);
    }
}

/// Guards the generator against vacuity: the properties above mean little if
/// random worlds rarely produce orders, resizes or blocks of each kind.
#[test]
fn generator_exercises_the_pipeline() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = world();
    let (mut with_orders, mut resized, mut crossing_or_reducing) = (0, 0, 0);
    let mut reasons = std::collections::BTreeSet::new();
    for _ in 0..1000 {
        let w = strategy.new_tree(&mut runner).unwrap().current();
        let p = w.plan();
        if !p.orders.is_empty() {
            with_orders += 1;
        }
        for d in &p.decisions {
            if matches!(d.outcome, Outcome::Resize { .. }) {
                resized += 1;
            }
            if d.risk_reducing && d.is_sent() {
                crossing_or_reducing += 1;
            }
            reasons.extend(d.steps.iter().map(|s| s.reason));
            if let Outcome::Block { reason, .. } = &d.outcome {
                reasons.insert(*reason);
            }
        }
    }
    eprintln!("{with_orders}/1000 plans with orders, {resized} resizes, {crossing_or_reducing} reducing sent; reasons: {reasons:?}");
    assert!(with_orders > 300, "{with_orders}");
    assert!(resized > 100, "{resized}");
    assert!(crossing_or_reducing > 100, "{crossing_or_reducing}");
    assert!(reasons.len() >= 20, "{reasons:?}");
}
