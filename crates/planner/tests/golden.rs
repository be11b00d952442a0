//! Golden plans: the serialized plan of fixed worlds, pinned byte for byte.
//!
//! The fixtures under `tests/golden/` were captured from the planner before
//! its performance work; any change to orders, decisions, reasons, details
//! or number formatting shows up here. Worlds:
//!
//! * the benchmark's worlds (`tests/support/bench_world.rs`) at 40 symbols
//!   in full text, and at 500 and 3,000 symbols as digests;
//! * several hundred small seeded random worlds (random books, configs,
//!   clocks, histories, and a share of extreme decimals), covering every
//!   guard's resize and block paths, whole-plan blocks and overflow paths.
//!
//! A deliberate behaviour change regenerates the fixtures with
//! `KEEL_GOLDEN_UPDATE=1 cargo test -p keel-planner --test golden`, and the
//! diff of `tests/golden/plans.jsonl` is then part of the review.

use chrono::{DateTime, Duration, Utc};
use keel_domain::{
    AccountSnapshot, OpenOrder, OrderType, Position, Quote, Side, Symbol, Target, TargetSet, TimeInForce,
};
use keel_planner::guards::VolHook;
use keel_planner::{plan, GuardState, PlanInput, RiskConfig};
use rust_decimal::Decimal;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

#[path = "support/bench_world.rs"]
mod bench_world;

/// Random worlds kept in full text (seeds `0..RANDOM_FULL`).
const RANDOM_FULL: u64 = 250;
/// Further random worlds kept as digests (seeds `RANDOM_FULL..RANDOM_WORLDS`).
const RANDOM_WORLDS: u64 = 2_500;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(name)
}

/// FNV-1a, 64 bit: a stable digest that needs no dependency.
fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `p` percent.
    fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn dec(&mut self, lo: i64, hi: i64, scale: u32) -> Decimal {
        Decimal::new(self.range(lo, hi), scale)
    }
    /// Zero at a random scale, sometimes negative (`-Decimal::ZERO`).
    fn zero(&mut self) -> Decimal {
        let mut z = Decimal::new(0, self.below(5) as u32);
        if self.pct(30) {
            z.set_sign_negative(true);
        }
        z
    }
    /// The same value with up to three more trailing zeros, now and then.
    fn pad(&mut self, d: Decimal) -> Decimal {
        if !self.pct(15) {
            return d;
        }
        let k = 1 + self.below(3) as u32;
        let m = d.mantissa() * 10i128.pow(k);
        Decimal::try_from_i128_with_scale(m, d.scale() + k).unwrap_or(d)
    }
    fn pdec(&mut self, lo: i64, hi: i64, scale: u32) -> Decimal {
        let d = self.dec(lo, hi, scale);
        self.pad(d)
    }
    fn wild(&mut self) -> Decimal {
        match self.below(9) {
            0 => Decimal::MAX,
            1 => Decimal::MIN,
            2 => Decimal::ZERO,
            3 => Decimal::new(1, 28),
            4 => Decimal::new(-1, 28),
            5 => Decimal::new(self.next() as i64, 0),
            6 => Decimal::new(self.next() as i64, self.below(29) as u32),
            7 => Decimal::from_i128_with_scale(
                (i128::from(self.next()) << 30) | i128::from(self.next() >> 34),
                self.below(10) as u32,
            ),
            _ => self.dec(-1000, 100_000, 2),
        }
    }
}

const POOL: [&str; 16] = [
    "A", "AA", "AAPL", "AMZN", "B.C", "BRK-B", "C", "GOOGL", "IBM", "MSFT", "NVDA", "QQQ", "SPY", "T", "XOM",
    "Z9",
];

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Everything one plan needs, owned.
struct Case {
    account: String,
    attempt: u32,
    now: DateTime<Utc>,
    targets: TargetSet,
    snapshot: AccountSnapshot,
    state: GuardState,
    cfg: RiskConfig,
}

impl Case {
    fn json(&self) -> String {
        let input = PlanInput {
            account_id: &self.account,
            targets: &self.targets,
            snapshot: &self.snapshot,
            now: self.now,
            attempt: self.attempt,
            state: &self.state,
        };
        serde_json::to_string(&plan(&input, &self.cfg)).unwrap()
    }
}

fn random_config(r: &mut Rng) -> RiskConfig {
    let mut cfg = RiskConfig::default();
    // These worlds were pinned before the coverage guard existed and price
    // only some of their targets on purpose (to reach the per-symbol paths);
    // the whole-set coverage block has its own tests (guards/coverage.rs).
    cfg.guards.coverage.enabled = false;
    let p = &mut cfg.planner;
    p.fractional = r.pct(30);
    p.order_type = if r.pct(75) {
        OrderType::Limit
    } else {
        OrderType::Market
    };
    p.allow_short = r.pct(25);
    p.limit_offset_bps = match r.below(6) {
        0 => Decimal::ZERO,
        1 => r.dec(0, 80, 0),
        2 => r.dec(0, 800, 1),
        3 => r.dec(-50, 50, 0),
        _ => Decimal::TEN,
    };
    p.time_in_force = if r.pct(80) {
        TimeInForce::Day
    } else {
        TimeInForce::Ioc
    };
    let g = &mut cfg.guards;
    g.exposure.enabled = r.pct(90);
    g.exposure.max_gross = r.dec(1, 30, 1);
    g.exposure.max_net = r.dec(1, 30, 1);
    g.no_trade_band.enabled = r.pct(90);
    g.no_trade_band.min_weight = r.dec(0, 30, 4);
    g.no_trade_band.min_notional = r.dec(0, 2000, 0);
    g.no_trade_band.min_shares = if r.pct(20) { r.dec(0, 20, 0) } else { Decimal::ZERO };
    g.no_trade_band.exempt_full_exit = r.pct(70);
    g.max_position_weight.enabled = r.pct(90);
    g.max_position_weight.max_weight = r.dec(1, 100, 2);
    g.max_order_size.enabled = r.pct(90);
    g.max_order_size.max_notional = r.dec(100, 2_000_000, 0);
    g.max_order_size.max_shares = r.dec(1, 5000, 0);
    g.adv_limit.enabled = r.pct(90);
    g.adv_limit.max_adv_fraction = r.dec(0, 100, 3);
    g.adv_limit.block_unknown = r.pct(40);
    g.buying_power.enabled = r.pct(90);
    g.buying_power.sell_proceeds_fraction = r.dec(0, 120, 2);
    g.buying_power.subtract_open_buys = r.pct(60);
    g.buying_power.market_buffer_bps = r.dec(0, 300, 0);
    g.cycle_limits.enabled = r.pct(90);
    g.cycle_limits.max_orders = r.below(14) as u32;
    g.cycle_limits.max_turnover = r.dec(0, 300, 2);
    g.order_rate.enabled = r.pct(90);
    g.order_rate.max_orders = r.below(30) as u32;
    g.order_rate.window_secs = r.below(200);
    g.cooldown.enabled = r.pct(90);
    g.cooldown.symbol_secs = r.below(600);
    g.cooldown.account_secs = r.below(120);
    g.stale_quote.enabled = r.pct(90);
    g.stale_quote.max_age_secs = 30 + r.below(90);
    g.stale_quote.max_future_secs = r.below(10);
    g.price_collar.enabled = r.pct(90);
    g.price_collar.max_bps = if r.pct(15) {
        r.dec(0, 12, 0)
    } else {
        r.dec(20, 100, 0)
    };
    g.market_hours.enabled = r.pct(70);
    g.open_orders.block_opposite_side = r.pct(50);
    g.stale_targets.enabled = r.pct(90);
    g.replayed_target_set.enabled = r.pct(90);
    g.suspicious_target_set.enabled = r.pct(85);
    g.suspicious_target_set.min_gross_weight = r.dec(0, 60, 2);
    if r.pct(25) {
        g.restricted_list.symbols = (0..1 + r.below(3))
            .map(|_| Symbol::new(POOL[r.below(POOL.len() as u64) as usize]).unwrap())
            .collect::<BTreeSet<_>>();
    }
    let vb = &mut g.volatility_brake;
    vb.enabled = r.pct(80);
    vb.builtin = r.pct(40);
    vb.lookback_days = 2 + r.below(25) as u32;
    vb.target_vol = r.dec(5, 60, 2);
    vb.annualization_days = [252, 365, 0, 1][r.below(4) as usize];
    vb.hook = [VolHook::Off, VolHook::Optional, VolHook::Required][r.below(3) as usize];
    cfg
}

fn random_case(seed: u64) -> Case {
    let mut r = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x1234_5678);
    // One world in four has a whole-plan problem (closed market, stale or
    // replayed set, kill switch, wrong account, ...); the rest reach the guards.
    let trouble = if r.pct(25) { r.below(9) } else { 99 };
    let now = t(match trouble {
        0 => [
            "2026-11-24T14:32:00Z",
            "2026-11-24T20:57:00Z",
            "2026-11-28T17:00:00Z",
        ][r.below(3) as usize],
        1 => "2026-11-27T17:58:00Z",
        _ if r.pct(50) => "2026-11-24T19:30:00Z",
        _ => "2026-11-24T17:00:00Z",
    });
    let mut cfg = random_config(&mut r);
    cfg.guards.market_hours.enabled = trouble <= 1 || r.pct(90);
    let wild = r.pct(15);
    let mut snapshot = AccountSnapshot {
        account_id: if trouble == 2 {
            "other".into()
        } else {
            "acct".into()
        },
        cash: if trouble == 3 {
            r.dec(-50_000, 0, 0)
        } else if r.pct(5) {
            r.zero()
        } else {
            r.dec(0, 300_000, 0)
        },
        equity: Decimal::ZERO,
        buying_power: r.dec(0, 400_000, 0),
        ..Default::default()
    };
    let mut state = GuardState {
        kill_switch: match (trouble, r.below(2)) {
            (4, 0) => Some("drawdown".into()),
            (4, _) => Some("  ".into()),
            _ => None,
        },
        last_account_rebalance_at: r.pct(30).then(|| now - Duration::seconds(r.range(-20, 200))),
        recent_order_times: (0..r.below(14))
            .map(|_| now - Duration::seconds(r.range(-10, 150)))
            .collect(),
        external_vol_scale: match r.below(6) {
            0 => None,
            1 => Some(r.dec(-5, 15, 1)),
            2 => Some(Decimal::ZERO),
            3 => Some(r.dec(0, 10_000, 4)),
            _ => Some(r.dec(0, 10, 1)),
        },
        ..Default::default()
    };
    state.executed_target_set_ids.insert("set-6".into());
    if trouble == 5 {
        state.executed_target_set_ids.insert("set-7".into());
    }
    if cfg.guards.volatility_brake.builtin && r.pct(80) {
        let mut p = Decimal::from(400);
        let step = r.range(50, 2000);
        state.reference_closes = (0..r.range(10, 40))
            .map(|_| {
                p += Decimal::new(r.range(-step, step), 2);
                p
            })
            .collect();
    }
    let n = 1 + r.below(POOL.len() as u64) as usize;
    let mut names: Vec<&str> = POOL.to_vec();
    for i in (1..names.len()).rev() {
        names.swap(i, r.below(i as u64 + 1) as usize);
    }
    names.truncate(n);
    let mut targets = Vec::new();
    let mut marked = Some(snapshot.cash);
    for (i, name) in names.iter().enumerate() {
        let s = Symbol::new(name).unwrap();
        if r.pct(70) {
            let weight = match r.below(12) {
                0 => r.dec(-3000, 5000, 4),
                1 => r.dec(-30, 50, 2),
                2 => r.dec(0, 2_000_000, 7),
                3 => r.zero(),
                _ => r.dec(0, 3000, 4),
            };
            let weight = r.pad(weight);
            targets.push(Target {
                symbol: s.clone(),
                weight,
            });
        }
        let quote = r.pct(90).then(|| {
            let px = match r.below(10) {
                0 => r.dec(1, 9999, 4),
                1 => r.dec(50, 50_000, 3),
                _ => r.dec(50, 50_000, 2),
            };
            let px = r.pad(px);
            let spread = r.pdec(0, 30, 2);
            let (bid, ask) = match r.below(12) {
                0 => (Decimal::ZERO, px),
                1 => (px + spread + Decimal::ONE, px),
                _ => (px, px + spread),
            };
            Quote {
                symbol: s.clone(),
                bid,
                ask,
                last: if r.pct(5) { Decimal::ZERO } else { px },
                ts: now
                    - Duration::seconds(if r.pct(15) {
                        r.range(-12, 150)
                    } else {
                        r.range(0, 30)
                    }),
            }
        });
        let reference = quote
            .as_ref()
            .map(|q| {
                if q.bid > Decimal::ZERO && q.ask >= q.bid {
                    (q.bid + q.ask) / Decimal::TWO
                } else {
                    q.last
                }
            })
            .unwrap_or_default();
        if let Some(q) = quote {
            snapshot.quotes.insert(s.clone(), q);
        }
        if r.pct(60) {
            let qty = match r.below(12) {
                0..=2 => r.dec(-4000, 15_000, 1),
                3 => r.zero(),
                _ => r.dec(-400, 1500, 0),
            };
            let qty = r.pad(qty);
            marked = marked.and_then(|m| m.checked_add(qty.checked_mul(reference)?));
            snapshot.positions.insert(
                s.clone(),
                Position {
                    symbol: s.clone(),
                    qty,
                    avg_cost: if r.pct(10) {
                        Decimal::ZERO
                    } else {
                        r.dec(100, 30_000, 2)
                    },
                },
            );
        }
        for j in 0..[0, 0, 0, 0, 0, 0, 1, 1, 2, 3][r.below(10) as usize] {
            let limit = r.pct(60).then(|| match r.below(8) {
                0 => Decimal::ZERO,
                _ => r.dec(50, 50_000, 2),
            });
            snapshot.open_orders.push(OpenOrder {
                client_order_id: format!("old-{i}-{j}"),
                symbol: s.clone(),
                side: if r.pct(50) { Side::Buy } else { Side::Sell },
                qty: r.pdec(0, 300, 0),
                filled_qty: if r.pct(10) { r.zero() } else { r.pdec(0, 100, 0) },
                order_type: if limit.is_some() {
                    OrderType::Limit
                } else {
                    OrderType::Market
                },
                limit_price: limit,
                submitted_at: now - Duration::minutes(3),
            });
        }
        if r.pct(70) {
            let adv = if r.pct(10) {
                r.zero()
            } else {
                r.pdec(0, 200_000, 0)
            };
            state.adv.insert(s.clone(), adv);
        }
        if r.pct(30) {
            state
                .last_trade_at
                .insert(s.clone(), now - Duration::seconds(r.range(-30, 900)));
        }
    }
    snapshot.equity = match (r.below(5), marked) {
        (0, _) => r.dec(-1000, 300_000, 0),
        (1, Some(m)) => m - Decimal::from(r.range(0, 5000)),
        (_, Some(m)) => m,
        (_, None) => snapshot.cash,
    };
    if trouble == 6 && !targets.is_empty() {
        let k = r.below(targets.len() as u64) as usize;
        let mut dup = targets[k].clone();
        dup.weight = r.pad(dup.weight);
        targets.push(dup);
    }
    if r.pct(70) {
        targets.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    }
    let as_of = match (trouble, r.below(2)) {
        (7, 0) => now - Duration::hours(20),
        (7, _) => now + Duration::seconds(r.range(0, 200)),
        _ => now - Duration::minutes(2),
    };
    let valid_until = match (trouble, r.below(3)) {
        (8, _) => Some(now - Duration::seconds(1)),
        (_, 0) => Some(now + Duration::minutes(10)),
        _ => None,
    };
    let mut case = Case {
        account: "acct".into(),
        attempt: r.below(3) as u32,
        now,
        targets: TargetSet {
            id: "set-7".into(),
            as_of,
            valid_until,
            targets,
            liquidate: trouble != 6 && r.pct(80),
        },
        snapshot,
        state,
        cfg,
    };
    if wild {
        let pick = r.next();
        let w = &mut r;
        if pick & 1 != 0 {
            case.snapshot.cash = w.wild();
        }
        if pick & 2 != 0 {
            case.snapshot.equity = w.wild();
        }
        if pick & 4 != 0 {
            case.snapshot.buying_power = w.wild();
        }
        for q in case.snapshot.quotes.values_mut() {
            if pick & 8 != 0 && w.pct(50) {
                q.bid = w.wild();
                q.ask = w.wild();
            }
            if pick & 16 != 0 && w.pct(50) {
                q.last = w.wild();
            }
        }
        for p in case.snapshot.positions.values_mut() {
            if pick & 32 != 0 && w.pct(50) {
                p.qty = w.wild();
            }
            if pick & 64 != 0 && w.pct(50) {
                p.avg_cost = w.wild();
            }
        }
        for t in &mut case.targets.targets {
            if pick & 128 != 0 && w.pct(50) {
                t.weight = w.wild();
            }
        }
        for o in &mut case.snapshot.open_orders {
            if pick & 256 != 0 && w.pct(50) {
                o.qty = w.wild();
                o.filled_qty = w.wild();
            }
            if pick & 512 != 0 && w.pct(50) {
                o.limit_price = Some(w.wild());
            }
        }
        let g = &mut case.cfg.guards;
        if pick & 1024 != 0 {
            case.cfg.planner.limit_offset_bps = w.wild();
        }
        if pick & 2048 != 0 {
            g.exposure.max_gross = w.wild();
        }
        if pick & 4096 != 0 {
            g.max_order_size.max_notional = w.wild();
        }
        if pick & 8192 != 0 {
            case.state.external_vol_scale = Some(w.wild());
        }
        if pick & 16384 != 0 {
            g.volatility_brake.builtin = true;
            case.state.reference_closes = (0..25).map(|_| w.wild()).collect();
        }
        if pick & 32768 != 0 {
            g.max_position_weight.max_weight = w.wild();
            g.cycle_limits.max_turnover = w.wild();
        }
        if pick & 65536 != 0 {
            g.no_trade_band.min_notional = w.wild();
            g.adv_limit.max_adv_fraction = w.wild();
            g.buying_power.market_buffer_bps = w.wild();
        }
        if pick & 131072 != 0 {
            g.max_order_size.max_shares = w.wild();
            g.buying_power.sell_proceeds_fraction = w.wild();
            g.exposure.max_net = w.wild();
        }
        if pick & 262144 != 0 {
            for a in case.state.adv.values_mut() {
                *a = w.wild();
            }
        }
    }
    case
}

fn bench_case(n: usize, invested: bool) -> Case {
    let w = bench_world::world(n, invested);
    Case {
        account: "acct".into(),
        attempt: 0,
        now: w.now,
        targets: w.targets,
        snapshot: w.snapshot,
        state: w.state,
        cfg: w.cfg,
    }
}

/// `(name, plan json)` for every world kept in full text.
fn full_text_worlds() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for invested in [true, false] {
        let kind = if invested { "steady" } else { "build" };
        for n in [1usize, 7, 40] {
            out.push((format!("bench/{kind}/{n}"), bench_case(n, invested).json()));
        }
    }
    for seed in 0..RANDOM_FULL {
        out.push((format!("random/{seed}"), random_case(seed).json()));
    }
    out
}

/// `(name, length, digest)` for the large worlds and the remaining random ones.
fn digest_worlds() -> Vec<(String, usize, u64)> {
    let mut out = Vec::new();
    for seed in RANDOM_FULL..RANDOM_WORLDS {
        let json = random_case(seed).json();
        out.push((format!("random/{seed}"), json.len(), fnv64(json.as_bytes())));
    }
    for n in [500usize, 3_000] {
        for invested in [true, false] {
            let kind = if invested { "steady" } else { "build" };
            let json = bench_case(n, invested).json();
            out.push((format!("bench/{kind}/{n}"), json.len(), fnv64(json.as_bytes())));
        }
    }
    out
}

fn render_full(worlds: &[(String, String)]) -> String {
    let mut s = String::new();
    for (name, json) in worlds {
        writeln!(s, "{{\"world\":{name:?},\"plan\":{json}}}").unwrap();
    }
    s
}

fn render_digests(worlds: &[(String, usize, u64)]) -> String {
    let mut s = String::new();
    for (name, len, digest) in worlds {
        writeln!(s, "{name} {len} {digest:016x}").unwrap();
    }
    s
}

fn check(file: &str, actual: &str) {
    let path = fixture(file);
    if std::env::var_os("KEEL_GOLDEN_UPDATE").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (KEEL_GOLDEN_UPDATE=1 creates it)", path.display()));
    if expected == actual {
        return;
    }
    let (mut shown, mut differing) = (0, 0);
    let mut report = String::new();
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            differing += 1;
            if shown < 3 {
                shown += 1;
                let at = e.bytes().zip(a.bytes()).take_while(|(x, y)| x == y).count();
                let from = at.saturating_sub(200);
                writeln!(
                    report,
                    "line {}: first difference at byte {at}\n  expected …{}\n  actual   …{}",
                    i + 1,
                    e.get(from..(at + 200).min(e.len())).unwrap_or(e),
                    a.get(from..(at + 200).min(a.len())).unwrap_or(a),
                )
                .unwrap();
            }
        }
    }
    panic!(
        "{file}: {differing} line(s) differ ({} expected, {} actual)\n{report}",
        expected.lines().count(),
        actual.lines().count()
    );
}

#[test]
fn small_and_random_worlds_match_the_golden_plans() {
    check("plans.jsonl", &render_full(&full_text_worlds()));
}

#[test]
fn large_and_more_random_worlds_match_the_golden_digests() {
    check("digests.txt", &render_digests(&digest_worlds()));
}

/// Guards the fixture against vacuity: the random worlds must reach orders,
/// resizes and blocks of most kinds, or the golden file pins little.
#[test]
fn random_worlds_cover_the_pipeline() {
    let mut reasons = BTreeSet::new();
    let (mut orders, mut resizes) = (0, 0);
    let mut hist = std::collections::BTreeMap::new();
    for seed in 0..RANDOM_WORLDS {
        let json = random_case(seed).json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        orders += v["orders"].as_array().unwrap().len();
        for b in v["plan_blocks"].as_array().unwrap() {
            reasons.insert(b["reason"].as_str().unwrap().to_string());
        }
        for d in v["decisions"].as_array().unwrap() {
            let outcome = &d["outcome"];
            if outcome["kind"] == "resize" {
                resizes += 1;
            }
            if let Some(r) = outcome["reason"].as_str() {
                *hist.entry(format!("{}:{r}", outcome["kind"])).or_insert(0usize) += 1;
                reasons.insert(r.to_string());
            }
            for s in d["steps"].as_array().unwrap() {
                reasons.insert(s["reason"].as_str().unwrap().to_string());
            }
        }
    }
    eprintln!("{hist:?}");
    eprintln!("{orders} orders, {resizes} resizes, reasons: {reasons:?}");
    assert!(orders > 2_000, "{orders}");
    assert!(resizes > 1_000, "{resizes}");
    assert!(reasons.len() >= 28, "{} {reasons:?}", reasons.len());
}
