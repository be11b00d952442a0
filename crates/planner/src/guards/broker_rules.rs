//! Broker rules: refuse, before sending, the orders the venue itself would
//! refuse, so a rejection is a named decision in the plan rather than a 403
//! or 422 after the write-ahead intent (and a step toward the reject-storm
//! kill switch). The rules are Alpaca's; every venue keel trades has them in
//! some form:
//!
//! * **asset not tradable** — the venue does not take orders in the symbol
//!   (`asset_not_tradable`). A symbol the venue reported nothing for is
//!   treated as unknown to it and blocked (`unknown_asset`): Alpaca answers
//!   such an order with a 422, and a symbol keel cannot look up is not one
//!   it should trade.
//! * **fractional quantity** — only for a fractionable asset, only as a day
//!   order, and never in a short sale (Alpaca refuses all three with a 422
//!   or 403). The order is cut to whole shares, not blocked, when that
//!   leaves something to send (`fractional_not_allowed`).
//! * **short sale** — the part of a sell beyond the shares held minus those
//!   already committed to working sells is a short sale. It is taken only
//!   with `planner.allow_short` and a shortable asset (a venue reports
//!   `shortable = false` when the account itself may not short). Otherwise
//!   the sell is cut to the long part (`short_not_allowed`). With shorting
//!   off the position-existence guard has already made that cut; this rule
//!   adds the venue's word on the asset.
//! * **potential wash trade** — Alpaca refuses (403 "potential wash trade
//!   detected") an order that could execute against the account's own
//!   resting order on the other side. Conservatively, an order is blocked
//!   (`potential_wash_trade`) when an opposite-side order is working and any
//!   of these holds: the new order is a market order (or has no limit); a
//!   resting opposite order has no limit price (a market order can fill at
//!   any price); a buy's limit is at or above the lowest resting sell limit;
//!   a sell's limit is at or below the highest resting buy limit. An open
//!   order with nothing left to fill still counts: the venue still holds it.
//!
//! The rules are a venue's, so they apply when the venue's facts are in the
//! plan's inputs ([`crate::GuardState::assets`] is `Some`; the worker and
//! `keel plan` always supply them, the paper venue reporting everything it
//! quotes as tradable and fractionable). A caller with no venue at all
//! (`None`) gets no predictions from this guard.
//!
//! Risk-reducing orders get no exemption: the venue refuses them just the
//! same. The guard runs last in the pipeline, on the quantity that will
//! really be sent, because a later cap could turn a whole quantity
//! fractional again.

use super::{Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::fx;
use crate::output::{GuardId, ReasonCode};
use keel_domain::{OrderType, Side, TimeInForce};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The broker-rules guard (`[guards.broker_rules]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerRules {
    /// Run the guard. Default `true`: a refusal predicted is cheaper than a
    /// refusal received, and the paper venue allows everything it quotes.
    pub enabled: bool,
    /// Block orders that could cross the account's own resting order on the
    /// other side. Default `true` (Alpaca refuses them).
    pub block_potential_wash_trades: bool,
}

impl Default for BrokerRules {
    fn default() -> Self {
        Self {
            enabled: true,
            block_potential_wash_trades: true,
        }
    }
}

impl Guard for BrokerRules {
    fn id(&self) -> GuardId {
        GuardId::BrokerRules
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        // No venue facts: no venue to predict (see the module docs).
        if !ctx.venue_facts {
            return Verdict::Pass;
        }
        let facts = {
            match c.asset {
                None => {
                    return block(
                        ReasonCode::UnknownAsset,
                        format!(
                            "the venue reported no asset facts for {}: unknown to it",
                            c.symbol
                        ),
                    )
                }
                Some(f) if !f.tradable => {
                    return block(
                        ReasonCode::AssetNotTradable,
                        format!("{} is not tradable at the venue", c.symbol),
                    )
                }
                Some(f) => f,
            }
        };
        if self.block_potential_wash_trades {
            if let Some(detail) = wash_trade(c, ctx.cfg.planner.order_type) {
                return block(ReasonCode::PotentialWashTrade, detail);
            }
        }
        let mut allowed = c.qty;
        let mut why: Option<(ReasonCode, String)> = None;
        let long_part = available_to_sell(c);
        let shorts = c.side == Side::Sell && fx::gt(allowed, long_part);
        if shorts {
            let asset_ok = facts.shortable;
            if !ctx.cfg.planner.allow_short || !asset_ok {
                let off = if ctx.cfg.planner.allow_short {
                    format!("{} is not shortable at the venue", c.symbol)
                } else {
                    "shorting is off (planner.allow_short)".to_string()
                };
                allowed = long_part;
                why = Some((
                    ReasonCode::ShortNotAllowed,
                    format!(
                        "sell of {} {} beyond the {} available would be a short sale and {off}; allowed {}",
                        c.qty, c.symbol, long_part, allowed
                    ),
                ));
            }
        }
        let whole = allowed.trunc();
        if whole != allowed {
            let short_sale = c.side == Side::Sell && fx::gt(allowed, long_part);
            let refusal = if !facts.fractionable {
                Some(format!("{} is not fractionable at the venue", c.symbol))
            } else if ctx.cfg.planner.time_in_force != TimeInForce::Day {
                Some("fractional orders must be day orders".to_string())
            } else if short_sale {
                Some("a short sale cannot be fractional".to_string())
            } else {
                None
            };
            if let Some(r) = refusal {
                why = Some((
                    ReasonCode::FractionalNotAllowed,
                    format!(
                        "{} {} is fractional and {r}; allowed {whole}",
                        allowed.normalize(),
                        c.symbol
                    ),
                ));
                allowed = whole;
            }
        }
        match why {
            Some((reason, detail)) if fx::gt(c.qty, allowed) => Verdict::Cap {
                qty: allowed,
                reason,
                detail,
            },
            _ => Verdict::Pass,
        }
    }
}

fn block(reason: ReasonCode, detail: String) -> Verdict {
    Verdict::Block { reason, detail }
}

/// Shares a sell can take from the long position without shorting: held
/// minus working sells, never below zero.
fn available_to_sell(c: &Candidate<'_>) -> Decimal {
    let held = c.held();
    if !fx::is_pos(held) {
        return Decimal::ZERO;
    }
    fx::checked_sub(held, c.committed_sell())
        .unwrap_or(Decimal::ZERO)
        .max(Decimal::ZERO)
}

/// Why the order could cross a resting order of the account on the other
/// side, or `None`.
fn wash_trade(c: &Candidate<'_>, order_type: OrderType) -> Option<String> {
    let w = c.working.as_deref()?;
    let (opposite, unpriced, best) = match c.side {
        Side::Buy => (w.sells, w.unpriced_sells, w.min_sell_limit),
        Side::Sell => (w.buys, w.unpriced_buys, w.max_buy_limit),
    };
    if opposite == 0 {
        return None;
    }
    let other = c.side.opposite();
    let limit = match (order_type, c.limit_price) {
        (OrderType::Limit, Some(l)) => l,
        _ => {
            return Some(format!(
                "a market {} of {} while {opposite} {other} order(s) rest could fill against them",
                c.side, c.symbol
            ))
        }
    };
    if unpriced > 0 {
        return Some(format!(
            "{unpriced} resting {other} market order(s) on {} could fill against a {} at any price",
            c.symbol, c.side
        ));
    }
    let best = best?;
    let crosses = match c.side {
        Side::Buy => fx::ge(limit, best),
        Side::Sell => fx::le(limit, best),
    };
    crosses.then(|| {
        format!(
            "{} limit {limit} on {} crosses the account's resting {other} limit {best}",
            c.side, c.symbol
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use keel_domain::AssetFacts;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const ALL_OK: AssetFacts = AssetFacts {
        tradable: true,
        fractionable: true,
        shortable: true,
    };

    fn facts(f: &mut Fixture, s: &str, a: AssetFacts) {
        f.state.assets.get_or_insert_with(BTreeMap::new).insert(sym(s), a);
    }

    fn g() -> BrokerRules {
        BrokerRules::default()
    }

    fn reason(v: &Verdict) -> Option<ReasonCode> {
        match v {
            Verdict::Pass => None,
            Verdict::Cap { reason, .. } | Verdict::Block { reason, .. } => Some(*reason),
        }
    }

    #[test]
    fn tradable_and_unknown_assets() {
        let base = Fixture::new().target("AAPL", "0.1").quote("AAPL", "100");
        // No venue consulted at all: nothing to predict.
        assert_eq!(check(&g(), &base, "AAPL"), Verdict::Pass);
        let crossing = base.clone().open_order("AAPL", Side::Sell, "1");
        assert_eq!(check(&g(), &crossing, "AAPL"), Verdict::Pass);
        // Facts supplied, but none for AAPL: unknown to the venue.
        let fx = base.clone().with(|f| facts(f, "MSFT", ALL_OK));
        assert_eq!(reason(&check(&g(), &fx, "AAPL")), Some(ReasonCode::UnknownAsset));
        let fx = base.clone().with(|f| {
            facts(
                f,
                "AAPL",
                AssetFacts {
                    tradable: false,
                    ..ALL_OK
                },
            )
        });
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::AssetNotTradable);
        assert_eq!(
            decision(&plan, "AAPL").outcome_guard(),
            Some(GuardId::BrokerRules)
        );
        let fx = base.with(|f| facts(f, "AAPL", ALL_OK));
        assert_eq!(fx.plan().orders.len(), 1);
    }

    #[test]
    fn fractional_quantities_are_cut_to_whole_shares() {
        let fractional = |a: AssetFacts| {
            Fixture::new()
                .target("AAPL", "0.1")
                .quote("AAPL", "300")
                .with(|f| {
                    f.cfg.planner.fractional = true;
                    facts(f, "AAPL", a);
                })
        };
        // 10,000 / 300 = 33.3333 shares.
        let plan = fractional(ALL_OK).plan();
        assert_eq!(plan.orders[0].qty, d("33.3333"));
        let plan = fractional(AssetFacts {
            fractionable: false,
            ..ALL_OK
        })
        .plan();
        assert_eq!(plan.orders[0].qty, d("33"));
        let dd = decision(&plan, "AAPL");
        assert!(matches!(
            &dd.outcome,
            Outcome::Resize {
                reason: ReasonCode::FractionalNotAllowed,
                guard: GuardId::BrokerRules,
                ..
            }
        ));
        // A GTC fractional order is refused too.
        let fx = fractional(ALL_OK).with(|f| f.cfg.planner.time_in_force = keel_domain::TimeInForce::Gtc);
        assert_eq!(fx.plan().orders[0].qty, d("33"));
        // Below one share there is nothing whole left: blocked.
        let fx = Fixture::new()
            .target("AAPL", "0.001")
            .quote("AAPL", "300")
            .with(|f| {
                f.cfg.planner.fractional = true;
                facts(
                    f,
                    "AAPL",
                    AssetFacts {
                        fractionable: false,
                        ..ALL_OK
                    },
                );
            });
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::FractionalNotAllowed);
    }

    #[test]
    fn short_sales_need_shorting_and_a_shortable_asset() {
        let short = |allow: bool, shortable: bool| {
            Fixture::new()
                .position("AAPL", "10")
                .target("AAPL", "-0.1")
                .quote("AAPL", "100")
                .with(|f| {
                    f.cfg.planner.allow_short = allow;
                    facts(f, "AAPL", AssetFacts { shortable, ..ALL_OK });
                })
        };
        // Shorting on and shortable: the whole sell goes.
        let plan = short(true, true).plan();
        assert!(plan.orders[0].qty > d("10"), "{:?}", plan.orders);
        // Shorting on, asset not shortable: cut to the 10 held.
        let plan = short(true, false).plan();
        assert_eq!(plan.orders[0].qty, d("10"));
        let dd = decision(&plan, "AAPL");
        assert!(
            matches!(
                &dd.outcome,
                Outcome::Resize {
                    reason: ReasonCode::ShortNotAllowed,
                    ..
                }
            ),
            "{dd:#?}"
        );
        // Flat and not shortable: nothing to sell at all.
        let fx = Fixture::new()
            .target("AAPL", "-0.1")
            .quote("AAPL", "100")
            .with(|f| {
                f.cfg.planner.allow_short = true;
                facts(
                    f,
                    "AAPL",
                    AssetFacts {
                        shortable: false,
                        ..ALL_OK
                    },
                );
            });
        assert_blocked(decision(&fx.plan(), "AAPL"), ReasonCode::ShortNotAllowed);
        // Committed sells count against the long part.
        let fx = short(true, false).open_order_limit("AAPL", Side::Sell, "4", "200");
        let v = check(&g(), &fx, "AAPL");
        assert!(matches!(v, Verdict::Cap { qty, .. } if qty == d("6")), "{v:?}");
    }

    #[test]
    fn wash_trades_are_predicted() {
        let known = |f: Fixture| f.with(|f| facts(f, "AAPL", ALL_OK));
        let buy = |f: Fixture| {
            known(
                f.target("AAPL", "0.2")
                    .position("AAPL", "50")
                    .quote("AAPL", "100"),
            )
        };
        // Buy limit 100.10 vs a resting sell limit at 100.05: crosses.
        let fx = buy(Fixture::new()).open_order_limit("AAPL", Side::Sell, "10", "100.05");
        let v = check(&g(), &fx, "AAPL");
        assert_eq!(reason(&v), Some(ReasonCode::PotentialWashTrade), "{v:?}");
        // Resting sell far above the buy's limit: cannot cross.
        let fx = buy(Fixture::new()).open_order_limit("AAPL", Side::Sell, "10", "120");
        assert_eq!(check(&g(), &fx, "AAPL"), Verdict::Pass);
        // Equal prices cross.
        let fx = buy(Fixture::new()).open_order_limit("AAPL", Side::Sell, "10", "100.1");
        assert_eq!(
            reason(&check(&g(), &fx, "AAPL")),
            Some(ReasonCode::PotentialWashTrade)
        );
        // A resting market sell crosses any buy.
        let fx = buy(Fixture::new()).open_order("AAPL", Side::Sell, "10");
        assert_eq!(
            reason(&check(&g(), &fx, "AAPL")),
            Some(ReasonCode::PotentialWashTrade)
        );
        // A market buy crosses any resting sell.
        let fx = buy(Fixture::new())
            .open_order_limit("AAPL", Side::Sell, "10", "120")
            .with(|f| f.cfg.planner.order_type = OrderType::Market);
        assert_eq!(
            reason(&check(&g(), &fx, "AAPL")),
            Some(ReasonCode::PotentialWashTrade)
        );
        // Sells against resting buys, mirrored: sell limit 99.90.
        let sell = |f: Fixture| {
            known(
                f.position("AAPL", "100")
                    .target("AAPL", "0.02")
                    .quote("AAPL", "100"),
            )
        };
        let fx = sell(Fixture::new()).open_order_limit("AAPL", Side::Buy, "5", "99.95");
        assert_eq!(
            reason(&check(&g(), &fx, "AAPL")),
            Some(ReasonCode::PotentialWashTrade)
        );
        let fx = sell(Fixture::new()).open_order_limit("AAPL", Side::Buy, "5", "90");
        assert_eq!(check(&g(), &fx, "AAPL"), Verdict::Pass);
        // Same-side orders are the open-order guard's business, not a wash trade.
        let fx = buy(Fixture::new()).open_order_limit("AAPL", Side::Buy, "10", "100");
        assert_eq!(check(&g(), &fx, "AAPL"), Verdict::Pass);
        // Switched off: passes.
        let off = BrokerRules {
            block_potential_wash_trades: false,
            ..g()
        };
        let fx = buy(Fixture::new()).open_order("AAPL", Side::Sell, "10");
        assert_eq!(check(&off, &fx, "AAPL"), Verdict::Pass);
        // Through the whole pipeline, a risk-reducing order is refused too.
        let fx = Fixture::new()
            .position("AAPL", "-50")
            .quote("AAPL", "100")
            .open_order_limit("AAPL", Side::Sell, "1", "100")
            .with(|f| {
                f.cfg.planner.allow_short = true;
                facts(f, "AAPL", ALL_OK);
            });
        assert_blocked(decision(&fx.plan(), "AAPL"), ReasonCode::PotentialWashTrade);
    }

    #[test]
    fn config_defaults_and_switch() {
        let cfg: crate::RiskConfig = toml::from_str("[guards.broker_rules]\nenabled = false\n").unwrap();
        assert!(!cfg.guards.broker_rules.enabled);
        assert!(cfg.guards.broker_rules.block_potential_wash_trades);
        assert!(crate::RiskConfig::default().guards.broker_rules.enabled);
        assert!(toml::from_str::<crate::RiskConfig>("[guards.broker_rules]\nwash = false\n").is_err());
    }

    impl Decision {
        fn outcome_guard(&self) -> Option<GuardId> {
            match &self.outcome {
                Outcome::Block { guard, .. } | Outcome::Resize { guard, .. } => Some(*guard),
                Outcome::Pass => None,
            }
        }
    }

    /// A random one-account world: three symbols with random holdings
    /// (fractional and short ones too), resting orders on either side,
    /// venue facts (missing for some symbols), targets and planner settings.
    fn world() -> impl Strategy<Value = Fixture> {
        let sym_names = ["AAA", "BBB", "CCC"];
        let per_symbol = (
            -300i64..300,
            0u32..3,
            prop::option::of((any::<bool>(), any::<bool>(), any::<bool>())),
            -30i64..30,
            prop::collection::vec(
                (any::<bool>(), 1i64..50, prop::option::of(9_000i64..11_000)),
                0..3,
            ),
        );
        (
            prop::collection::vec(per_symbol, 3),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(move |(syms, fractional, allow_short, market, gtc)| {
                let mut f = Fixture::new();
                f.cfg.planner.fractional = fractional;
                f.cfg.planner.allow_short = allow_short;
                if market {
                    f.cfg.planner.order_type = OrderType::Market;
                }
                if gtc {
                    f.cfg.planner.time_in_force = keel_domain::TimeInForce::Gtc;
                }
                // Venue facts always supplied (the guard's precondition), some symbols missing.
                f.state.assets = Some(BTreeMap::new());
                for (name, (held, held_scale, asset, weight, resting)) in sym_names.iter().zip(syms) {
                    f = f.quote(name, "100");
                    if held != 0 {
                        f = f.position(name, &Decimal::new(held, held_scale).to_string());
                    }
                    if let (Some((tradable, fractionable, shortable)), Some(m)) =
                        (asset, f.state.assets.as_mut())
                    {
                        m.insert(
                            sym(name),
                            AssetFacts {
                                tradable,
                                fractionable,
                                shortable,
                            },
                        );
                    }
                    f = f.target(name, &Decimal::new(weight, 2).to_string());
                    for (buy, qty, limit) in resting {
                        let side = if buy { Side::Buy } else { Side::Sell };
                        f = match limit {
                            Some(l) => f.open_order_limit(
                                name,
                                side,
                                &qty.to_string(),
                                &Decimal::new(l, 2).to_string(),
                            ),
                            None => f.open_order(name, side, &qty.to_string()),
                        };
                    }
                }
                // Keep the other guards out of the way: this property is about the venue's rules.
                let g = &mut f.cfg.guards;
                g.open_orders = Default::default();
                g.max_position_weight.enabled = false;
                g.exposure.enabled = false;
                g.buying_power.enabled = false;
                g.cycle_limits.enabled = false;
                g.no_trade_band.enabled = false;
                g.max_order_size.enabled = false;
                g.adv_limit.enabled = false;
                g.price_collar.enabled = false;
                f.snapshot.buying_power = d("1000000000");
                f
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// No order that leaves the planner breaks any of the venue's four
        /// rules, judged from the raw snapshot, not from the guard's helpers.
        #[test]
        fn no_sent_order_breaks_a_venue_rule(fx in world()) {
            let plan = fx.plan();
            let snap = &fx.snapshot;
            let cfg = &fx.cfg.planner;
            for o in &plan.orders {
                let asset = fx.state.assets.as_ref().and_then(|m| m.get(&o.symbol));
                // 1. Known to the venue and tradable.
                let Some(a) = asset else {
                    prop_assert!(false, "order in a symbol the venue does not know: {o:?}");
                    continue;
                };
                prop_assert!(a.tradable, "{o:?}");
                let held = snap.held(&o.symbol);
                let committed: Decimal = snap.open_orders.iter()
                    .filter(|r| r.symbol == o.symbol && r.side == Side::Sell)
                    .map(|r| r.remaining()).sum();
                let long_part = if held > Decimal::ZERO { (held - committed).max(Decimal::ZERO) } else { Decimal::ZERO };
                let short_sale = o.side == Side::Sell && o.qty > long_part;
                // 2. Fractional only where allowed.
                if o.qty.fract() != Decimal::ZERO {
                    prop_assert!(a.fractionable, "{o:?}");
                    prop_assert_eq!(o.time_in_force, keel_domain::TimeInForce::Day);
                    prop_assert!(!short_sale, "fractional short {o:?}");
                }
                // 3. Short sales only with shorting on and a shortable asset.
                if short_sale {
                    prop_assert!(cfg.allow_short, "{o:?}");
                    prop_assert!(a.shortable, "{o:?}");
                }
                // 4. Nothing that could cross a resting order on the other side.
                for r in snap.open_orders.iter().filter(|r| r.symbol == o.symbol && r.side != o.side) {
                    let (Some(mine), Some(theirs)) = (o.limit_price, r.limit_price) else {
                        prop_assert!(false, "{o:?} could cross resting {r:?}");
                        continue;
                    };
                    match o.side {
                        Side::Buy => prop_assert!(mine < theirs, "{o:?} crosses {r:?}"),
                        Side::Sell => prop_assert!(mine > theirs, "{o:?} crosses {r:?}"),
                    }
                }
            }
        }
    }
}
