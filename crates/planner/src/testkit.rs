//! Builders shared by the unit tests: a one-account world at a fixed,
//! in-session instant with sane defaults, changed one fact at a time.

use crate::config::RiskConfig;
use crate::context::Candidate;
use crate::guards::{Guard, Verdict};
use crate::input::{GuardState, PlanInput};
pub(crate) use crate::output::{Decision, Outcome, Plan, ReasonCode};
use crate::planner::{prepare, Prepared};
use chrono::{DateTime, Utc};
pub(crate) use keel_domain::Side;
use keel_domain::{AccountSnapshot, OpenOrder, OrderType, Position, Quote, Symbol, Target, TargetSet};
pub(crate) use rust_decimal::Decimal;
use std::str::FromStr;

/// Tuesday 2026-11-24, 12:00 New York: mid-session.
pub(crate) const NOW: &str = "2026-11-24T17:00:00Z";

pub(crate) fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub(crate) fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

pub(crate) fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(crate) fn target(s: &str, w: &str) -> Target {
    Target {
        symbol: sym(s),
        weight: d(w),
    }
}

pub(crate) fn quote_obj(s: &str, px: &str, ts: DateTime<Utc>) -> Quote {
    Quote {
        symbol: sym(s),
        bid: d(px),
        ask: d(px),
        last: d(px),
        ts,
    }
}

pub(crate) fn open_order_obj(s: &str, side: Side, qty: &str) -> OpenOrder {
    OpenOrder {
        client_order_id: format!("old-{s}-{side}"),
        symbol: sym(s),
        side,
        qty: d(qty),
        filled_qty: Decimal::ZERO,
        order_type: OrderType::Market,
        limit_price: None,
        submitted_at: t("2026-11-24T16:00:00Z"),
    }
}

/// Everything one plan needs, owned.
#[derive(Debug, Clone)]
pub(crate) struct Fixture {
    pub account: String,
    pub targets: TargetSet,
    pub snapshot: AccountSnapshot,
    pub state: GuardState,
    pub cfg: RiskConfig,
    pub now: DateTime<Utc>,
    pub attempt: u32,
    /// Keep `snapshot.equity` as set instead of recomputing it from cash and quotes.
    pub fixed_equity: bool,
}

impl Fixture {
    /// 100,000 cash and buying power, no positions, an empty (liquidate-allowed)
    /// target set stamped five minutes ago, default config, a flat reference
    /// history so the volatility brake is at 1.
    pub fn new() -> Self {
        let now = t(NOW);
        let mut f = Self {
            account: "acct".into(),
            targets: TargetSet {
                id: "set-1".into(),
                as_of: now - chrono::Duration::minutes(5),
                valid_until: None,
                targets: vec![],
                liquidate: true,
            },
            snapshot: AccountSnapshot {
                account_id: "acct".into(),
                cash: d("100000"),
                equity: d("100000"),
                buying_power: d("100000"),
                ..Default::default()
            },
            state: GuardState {
                reference_closes: vec![d("100"); 30],
                ..Default::default()
            },
            cfg: RiskConfig::default(),
            now,
            attempt: 0,
            fixed_equity: false,
        };
        f.sync();
        f
    }

    fn sync(&mut self) {
        if !self.fixed_equity {
            self.snapshot.equity = self.snapshot.marked_equity();
        }
    }

    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self.sync();
        self
    }

    pub fn target(mut self, s: &str, w: &str) -> Self {
        self.targets.targets.push(target(s, w));
        self.targets.targets.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        self
    }

    pub fn position(mut self, s: &str, qty: &str) -> Self {
        self.snapshot.positions.insert(
            sym(s),
            Position {
                symbol: sym(s),
                qty: d(qty),
                avg_cost: d("1"),
            },
        );
        self.sync();
        self
    }

    pub fn quote(self, s: &str, px: &str) -> Self {
        let now = self.now;
        self.quote_ts(s, px, now)
    }

    pub fn quote_at(self, s: &str, px: &str, ts: &str) -> Self {
        self.quote_ts(s, px, t(ts))
    }

    fn quote_ts(mut self, s: &str, px: &str, ts: DateTime<Utc>) -> Self {
        self.snapshot.quotes.insert(sym(s), quote_obj(s, px, ts));
        self.sync();
        self
    }

    pub fn open_order(mut self, s: &str, side: Side, qty: &str) -> Self {
        self.snapshot.open_orders.push(open_order_obj(s, side, qty));
        self
    }

    pub fn open_order_limit(mut self, s: &str, side: Side, qty: &str, limit: &str) -> Self {
        let mut o = open_order_obj(s, side, qty);
        o.order_type = OrderType::Limit;
        o.limit_price = Some(d(limit));
        self.snapshot.open_orders.push(o);
        self
    }

    /// Sets cash (and buying power to match).
    pub fn cash(mut self, cash: &str) -> Self {
        self.snapshot.cash = d(cash);
        self.snapshot.buying_power = d(cash).max(Decimal::ZERO);
        self.sync();
        self
    }

    pub fn adv(mut self, s: &str, adv: &str) -> Self {
        self.state.adv.insert(sym(s), d(adv));
        self
    }

    /// Replaces the built-in brake with a required hook of value `v`.
    pub fn vol_hook(mut self, v: &str) -> Self {
        self.cfg.guards.volatility_brake.builtin = false;
        self.cfg.guards.volatility_brake.hook = crate::guards::VolHook::Required;
        self.state.external_vol_scale = Some(d(v));
        self
    }

    /// Moves the clock, keeping quotes fresh and the target set five minutes old.
    pub fn at(mut self, now: &str) -> Self {
        self.now = t(now);
        for q in self.snapshot.quotes.values_mut() {
            q.ts = self.now;
        }
        self.targets.as_of = self.now - chrono::Duration::minutes(5);
        self
    }

    pub fn input(&self) -> PlanInput<'_> {
        PlanInput {
            account_id: &self.account,
            targets: &self.targets,
            snapshot: &self.snapshot,
            now: self.now,
            attempt: self.attempt,
            state: &self.state,
        }
    }

    pub fn plan(&self) -> Plan {
        crate::plan(&self.input(), &self.cfg)
    }

    pub fn prepare(&self) -> Prepared<'_> {
        prepare(&self.input(), &self.cfg)
    }
}

impl<'a> Prepared<'a> {
    pub fn candidate(&self, s: &str) -> &Candidate<'a> {
        self.candidates
            .iter()
            .find(|c| c.symbol.as_str() == s)
            .unwrap_or_else(|| panic!("no candidate for {s}"))
    }
}

/// Runs one guard on the candidate for `s` with nothing accepted yet this cycle.
pub(crate) fn check(g: &dyn Guard, fx: &Fixture, s: &str) -> Verdict {
    let p = fx.prepare();
    g.check(p.candidate(s), &p.ctx, &p.acc)
}

pub(crate) fn decision<'p>(plan: &'p Plan, s: &str) -> &'p Decision {
    plan.decisions
        .iter()
        .find(|d| d.symbol.as_str() == s)
        .unwrap_or_else(|| panic!("no decision for {s} in {:#?}", plan.decisions))
}

pub(crate) fn assert_blocked(d: &Decision, reason: ReasonCode) {
    match &d.outcome {
        Outcome::Block {
            reason: r, detail, ..
        } => {
            assert_eq!(*r, reason, "{d:#?}");
            assert!(!detail.is_empty());
            assert!(d.final_qty.is_zero());
        }
        other => panic!("expected block {reason}, got {other:?} in {d:#?}"),
    }
}

pub(crate) fn block_detail(d: &Decision) -> &str {
    match &d.outcome {
        Outcome::Block { detail, .. } => detail,
        _ => "",
    }
}
