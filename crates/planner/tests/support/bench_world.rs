//! The benchmark's worlds, shared by `benches/plan.rs` and the golden test so
//! both measure and pin exactly the same inputs.
//!
//! Two worlds per size:
//! * `steady`: a book already near its targets (±3% drift per name, some
//!   working orders, cooldowns, ADV for all names) whose targets changed for
//!   one name in ten: the daily case, where most deltas die in the no-trade
//!   band and about a tenth of the book trades;
//! * `build`: the same targets from all cash, so every symbol becomes an
//!   order that runs the whole pipeline (the worst case).

use chrono::{DateTime, Duration, Utc};
use keel_domain::{AccountSnapshot, OpenOrder, OrderType, Position, Quote, Side, Symbol, Target, TargetSet};
use keel_planner::{GuardState, PlanInput, RiskConfig};
use rust_decimal::Decimal;

/// One benchmark world, owned.
pub struct World {
    pub targets: TargetSet,
    pub snapshot: AccountSnapshot,
    pub state: GuardState,
    pub cfg: RiskConfig,
    pub now: DateTime<Utc>,
}

/// A small deterministic generator so the worlds are the same on every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The world with `n` symbols: `invested` is the steady world, else the build world.
pub fn world(n: usize, invested: bool) -> World {
    let now: DateTime<Utc> = "2026-11-24T17:00:00Z".parse().unwrap();
    let mut rng = Lcg(42);
    let equity = Decimal::from(50_000_000);
    // Allocators write short decimals: 0.98 spread evenly, to 6 places.
    let weight = (Decimal::new(98, 2) / Decimal::from(n as u64)).round_dp(6);
    let mut targets = Vec::with_capacity(n);
    let mut snapshot = AccountSnapshot {
        account_id: "acct".into(),
        cash: equity,
        equity,
        buying_power: equity,
        ..Default::default()
    };
    let mut state = GuardState {
        reference_closes: vec![],
        ..Default::default()
    };
    let mut invested_value = Decimal::ZERO;
    for i in 0..n {
        let symbol = Symbol::new(&format!("S{i:05}")).unwrap();
        // Prices from $0.50 to ~$500 with cents.
        let px = Decimal::new(50 + rng.below(50_000) as i64, 2);
        let spread = Decimal::new(1 + rng.below(5) as i64, 2);
        snapshot.quotes.insert(
            symbol.clone(),
            Quote {
                symbol: symbol.clone(),
                bid: px,
                ask: px + spread,
                last: px,
                ts: now - Duration::seconds(rng.below(30) as i64),
            },
        );
        // In the steady world one name in ten gets a new weight (half or one and a half times), so a
        // realistic tenth of the book trades and the rest drifts inside the no-trade band.
        let target_weight = match (invested, i % 10, i % 20) {
            (true, 0, 0) => weight / Decimal::TWO,
            (true, 0, _) => weight * Decimal::new(15, 1),
            _ => weight,
        };
        targets.push(Target {
            symbol: symbol.clone(),
            weight: target_weight,
        });
        state
            .adv
            .insert(symbol.clone(), Decimal::from(100_000 + rng.below(10_000_000)));
        if invested {
            // Held at target ±3%.
            let mid = px + spread / Decimal::TWO;
            let drift = Decimal::new(970 + rng.below(61) as i64, 3);
            let qty = (weight * equity / mid * drift).trunc();
            invested_value += qty * mid;
            snapshot.positions.insert(
                symbol.clone(),
                Position {
                    symbol: symbol.clone(),
                    qty,
                    avg_cost: px,
                },
            );
            if i % 100 == 0 {
                snapshot.open_orders.push(OpenOrder {
                    client_order_id: format!("old-{i}"),
                    symbol: symbol.clone(),
                    side: if i % 200 == 0 { Side::Buy } else { Side::Sell },
                    qty: Decimal::from(10),
                    filled_qty: Decimal::ZERO,
                    order_type: OrderType::Limit,
                    limit_price: Some(px),
                    submitted_at: now - Duration::minutes(10),
                });
            }
            if i % 50 == 0 {
                state
                    .last_trade_at
                    .insert(symbol, now - Duration::seconds(rng.below(600) as i64));
            }
        }
    }
    if invested {
        snapshot.cash = equity - invested_value;
        snapshot.buying_power = snapshot.cash.max(Decimal::ZERO);
    }
    let mut p = Decimal::from(400);
    for _ in 0..30 {
        p += Decimal::new(rng.below(800) as i64 - 400, 2);
        state.reference_closes.push(p);
    }
    state.recent_order_times = (0..50).map(|i| now - Duration::seconds(i * 5)).collect();
    let mut cfg = RiskConfig::default();
    // These worlds were pinned before the coverage guard existed and price
    // only some of their targets on purpose (to reach the per-symbol paths);
    // the whole-set coverage block has its own tests (guards/coverage.rs).
    cfg.guards.coverage.enabled = false;
    // Let every order reach the end of the pipeline instead of stopping at the count limits.
    cfg.guards.cycle_limits.max_orders = 100_000;
    cfg.guards.order_rate.max_orders = 100_000;
    cfg.guards.max_position_weight.max_weight = Decimal::new(5, 2);
    let targets = TargetSet {
        id: "bench-set".into(),
        as_of: now - Duration::minutes(5),
        valid_until: None,
        targets,
        liquidate: false,
    };
    World {
        targets,
        snapshot,
        state,
        cfg,
        now,
    }
}

#[allow(dead_code)] // not every includer uses it
impl World {
    /// The plan input for this world (account "acct", attempt 0).
    pub fn input(&self) -> PlanInput<'_> {
        PlanInput {
            account_id: "acct",
            targets: &self.targets,
            snapshot: &self.snapshot,
            now: self.now,
            attempt: 0,
            state: &self.state,
        }
    }
}
