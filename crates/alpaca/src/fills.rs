//! Fill accounting without double counting.
//!
//! Alpaca reports executions three ways: `fill` / `partial_fill` events on
//! the trade_updates stream (with an `execution_id`), `FILL` account
//! activities over REST, and an order's cumulative `filled_qty`. None of them
//! replays in order, and the stream loses whatever happens while it is down.
//! Every observation here is reduced to one question — did the order's
//! cumulative filled quantity grow? — and a fill is the growth, never a
//! cumulative figure read as a per-fill one.
//!
//! Each fill's id is `<order id>:<cumulative qty after it>`, which the stream
//! and the activities agree on. For that id to mean the same quantity in
//! every keel process, a fill is emitted only when it is exactly one
//! execution (the report's own quantity equals the growth). A growth that
//! spans executions this ledger has not seen is a [`Observed::Gap`]: the
//! caller fetches the order's FILL activities and feeds them in. Only as a
//! last resort, for an order that is final and whose activities cannot be
//! had, is the growth emitted as one merged fill (`merge: true`).

use chrono::{DateTime, Utc};
use keel_broker::BrokerFill;
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};

/// Decimal places kept on a price derived from average prices.
const DERIVED_PRICE_DP: u32 = 6;

/// One report about an order's executions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation<'a> {
    /// Alpaca's order id.
    pub order_id: &'a str,
    /// The execution's id when the source gives one (stream `execution_id`,
    /// activity id): a repeat of a seen id is ignored outright.
    pub execution_id: Option<&'a str>,
    /// The order's cumulative filled quantity after this report.
    pub cum_qty: Decimal,
    /// The order's quantity, when known: nothing above it is ever counted.
    pub order_qty: Option<Decimal>,
    /// This execution's own quantity and price, when the source gives them.
    pub fill: Option<(Decimal, Decimal)>,
    /// The order's average fill price after this report.
    pub avg_price: Option<Decimal>,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Emit a growth spanning several executions as one fill (last resort).
    pub merge: bool,
}

/// What one observation proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A new execution.
    Fill(BrokerFill),
    /// Nothing new (duplicate, stale or reordered report).
    Known,
    /// The order filled more than this ledger can attribute to single
    /// executions: fetch its activities.
    Gap,
}

#[derive(Debug, Default, Clone)]
struct OrderFills {
    cum: Decimal,
    avg: Decimal,
    seen: HashSet<String>,
    fills: Vec<BrokerFill>,
}

/// Fills derived per order, deduplicated.
#[derive(Debug, Default, Clone)]
pub struct FillLedger {
    orders: HashMap<String, OrderFills>,
}

impl FillLedger {
    /// Applies one observation; returns the new fill it proves, if any.
    pub fn observe(&mut self, o: &Observation<'_>) -> Observed {
        let e = self.orders.entry(o.order_id.to_string()).or_default();
        if let Some(x) = o.execution_id {
            if e.seen.contains(x) {
                return Observed::Known;
            }
        }
        let cum = match o.order_qty {
            Some(q) if o.cum_qty > q => {
                tracing::warn!(order_id = o.order_id, cum = %o.cum_qty, qty = %q, "filled_qty above order qty; capped");
                q
            }
            _ => o.cum_qty,
        };
        if cum <= e.cum {
            // Stale, duplicate or reordered: already counted.
            if let Some(x) = o.execution_id {
                e.seen.insert(x.to_string());
            }
            return Observed::Known;
        }
        let delta = cum - e.cum;
        let price = match (o.fill, o.avg_price) {
            // The report is exactly this one execution: its own price.
            (Some((q, p)), _) if q == delta && p > Decimal::ZERO => p,
            _ if !o.merge => return Observed::Gap,
            // Several executions (some missed): their VWAP from the averages.
            (_, Some(avg)) if avg > Decimal::ZERO => {
                let vwap = (cum * avg - e.cum * e.avg) / delta;
                if vwap > Decimal::ZERO {
                    vwap.round_dp(DERIVED_PRICE_DP)
                } else {
                    avg
                }
            }
            (Some((_, p)), None) if p > Decimal::ZERO => p,
            // No price anywhere: wait for a report that has one rather than guess.
            _ => return Observed::Gap,
        };
        if let Some(x) = o.execution_id {
            e.seen.insert(x.to_string());
        }
        let fill = BrokerFill {
            fill_id: format!("{}:{}", o.order_id, cum.normalize()),
            qty: delta,
            price,
            at: o.at,
        };
        e.avg = match o.avg_price {
            Some(a) if a > Decimal::ZERO => a,
            _ => (e.cum * e.avg + delta * price) / cum,
        };
        e.cum = cum;
        e.fills.push(fill.clone());
        Observed::Fill(fill)
    }

    /// Every fill derived for `order_id`, in the order they were learnt.
    pub fn fills(&self, order_id: &str) -> Vec<BrokerFill> {
        self.orders
            .get(order_id)
            .map(|e| e.fills.clone())
            .unwrap_or_default()
    }

    /// The cumulative quantity accounted for so far.
    pub fn filled(&self, order_id: &str) -> Decimal {
        self.orders.get(order_id).map(|e| e.cum).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn t() -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_600_000, 0).unwrap()
    }

    #[test]
    fn a_cumulative_quantity_is_never_read_as_a_per_fill_one() {
        let mut l = FillLedger::default();
        let obs = |x: &'static str, cum, q, p, avg, merge| Observation {
            order_id: "o",
            execution_id: Some(x),
            cum_qty: cum,
            order_qty: Some(dec!(10)),
            fill: Some((q, p)),
            avg_price: Some(avg),
            at: t(),
            merge,
        };
        let fill = |r: Observed| match r {
            Observed::Fill(f) => f,
            other => panic!("{other:?}"),
        };
        let a = fill(l.observe(&obs("e1", dec!(4), dec!(4), dec!(100), dec!(100), false)));
        assert_eq!((a.qty, a.price, a.fill_id.as_str()), (dec!(4), dec!(100), "o:4"));
        // The same execution again (reconnect replay): nothing.
        assert_eq!(
            l.observe(&obs("e1", dec!(4), dec!(4), dec!(100), dec!(100), false)),
            Observed::Known
        );
        // e2 missed; e3 arrives saying cum 10: a gap, not a fill of 2 (nor of 10).
        assert_eq!(
            l.observe(&obs("e3", dec!(10), dec!(2), dec!(103), dec!(101.2), false)),
            Observed::Gap
        );
        // The backfill delivers e2 then e3: each exactly once.
        let b = fill(l.observe(&obs("e2", dec!(8), dec!(4), dec!(101.5), dec!(100.8), false)));
        assert_eq!((b.qty, b.fill_id.as_str()), (dec!(4), "o:8"));
        let c = fill(l.observe(&obs("e3", dec!(10), dec!(2), dec!(103), dec!(101.2), false)));
        assert_eq!((c.qty, c.price), (dec!(2), dec!(103)));
        assert_eq!(l.filled("o"), dec!(10));
        // Last resort on another order: one merged fill at the VWAP.
        let mut m = FillLedger::default();
        fill(m.observe(&obs("e1", dec!(4), dec!(4), dec!(100), dec!(100), false)));
        let c = fill(m.observe(&obs("e3", dec!(10), dec!(2), dec!(103), dec!(101.2), true)));
        assert_eq!((c.qty, c.price), (dec!(6), dec!(102))); // (10*101.2 - 4*100) / 6
    }

    #[derive(Debug, Clone)]
    struct Exec {
        id: String,
        cum: Decimal,
        qty: Decimal,
        price: Decimal,
        avg: Decimal,
    }

    fn execs(order_qty: u32, parts: &[(u32, u32)]) -> Vec<Exec> {
        let mut cum = Decimal::ZERO;
        let mut notional = Decimal::ZERO;
        let mut out = Vec::new();
        for (i, &(q, p)) in parts.iter().enumerate() {
            let q = Decimal::from(q);
            if cum + q > Decimal::from(order_qty) {
                break;
            }
            let price = Decimal::new(i64::from(p), 2);
            cum += q;
            notional += q * price;
            out.push(Exec {
                id: format!("x{i}"),
                cum,
                qty: q,
                price,
                avg: notional / cum,
            });
        }
        out
    }

    proptest! {
        /// Duplicates, gaps and reordering: the fills derived add up to the
        /// highest cumulative quantity reported (the final filled_qty once
        /// the last report is in), each execution counts at most once, and
        /// nothing ever exceeds the order's quantity — even when some
        /// reports arrive without an execution id (REST snapshots).
        #[test]
        fn fills_sum_to_the_cumulative_quantity(
            order_qty in 1u32..500,
            parts in proptest::collection::vec((1u32..60, 1u32..50_000), 1..25),
            script in proptest::collection::vec((0usize..64, any::<bool>(), any::<bool>()), 0..80),
            cap_lie in any::<bool>(),
        ) {
            let ex = execs(order_qty, &parts);
            prop_assume!(!ex.is_empty());
            // Deliver a scripted selection (duplicates, gaps, any order), then the last one.
            let mut deliveries: Vec<(usize, bool)> = script.iter().map(|&(i, snap, _)| (i % ex.len(), snap)).collect();
            deliveries.push((ex.len() - 1, script.first().is_some_and(|s| s.2)));
            let mut l = FillLedger::default();
            let mut derived = Vec::new();
            for (i, snapshot) in deliveries {
                let e = &ex[i];
                let o = Observation {
                    order_id: "o",
                    execution_id: (!snapshot).then_some(e.id.as_str()),
                    // A venue bug reporting more than the order: never counted.
                    cum_qty: if cap_lie && i == ex.len() - 1 { e.cum + Decimal::from(order_qty) } else { e.cum },
                    order_qty: Some(Decimal::from(order_qty)),
                    fill: (!snapshot).then_some((e.qty, e.price)),
                    avg_price: Some(e.avg),
                    at: t(),
                    merge: false,
                };
                if let Observed::Fill(f) = l.observe(&o) {
                    // Never merged: each fill is exactly one execution.
                    let one_execution = ex.iter().any(|x| x.qty == f.qty && x.price == f.price
                        && f.fill_id == format!("o:{}", x.cum.normalize()));
                    prop_assert!(one_execution, "{:?}", f);
                    derived.push(f);
                }
            }
            // The last report, as the final REST snapshot, merging what is still missing.
            let e = ex.last().unwrap();
            let last_cum = if cap_lie { e.cum + Decimal::from(order_qty) } else { e.cum };
            if let Observed::Fill(f) = l.observe(&Observation {
                order_id: "o", execution_id: None, cum_qty: last_cum, order_qty: Some(Decimal::from(order_qty)),
                fill: None, avg_price: Some(e.avg), at: t(), merge: true,
            }) {
                prop_assert!(f.qty > Decimal::ZERO && f.price > Decimal::ZERO);
                derived.push(f);
            }
            let total: Decimal = derived.iter().map(|f| f.qty).sum();
            let last = ex.last().unwrap().cum;
            let expect = if cap_lie { Decimal::from(order_qty) } else { last };
            prop_assert_eq!(total, expect);
            prop_assert!(total <= Decimal::from(order_qty));
            let ids: HashSet<&str> = derived.iter().map(|f| f.fill_id.as_str()).collect();
            prop_assert_eq!(ids.len(), derived.len(), "fill ids unique");
            prop_assert_eq!(l.filled("o"), expect);
        }

        /// Two ledgers (two keel processes) that learn the same executions in
        /// different orders give every fill the same id and quantity.
        #[test]
        fn the_same_execution_gets_the_same_id_everywhere(
            parts in proptest::collection::vec((1u32..60, 1u32..50_000), 1..15),
            perm in proptest::collection::vec(any::<u16>(), 15),
        ) {
            let ex = execs(10_000, &parts);
            let mut a = FillLedger::default();
            let mut b = FillLedger::default();
            let mut order: Vec<usize> = (0..ex.len()).collect();
            order.sort_by_key(|&i| perm[i % perm.len()]);
            for (ledger, seq) in [(&mut a, (0..ex.len()).collect::<Vec<_>>()), (&mut b, order)] {
                for i in seq {
                    let e = &ex[i];
                    ledger.observe(&Observation {
                        order_id: "o", execution_id: Some(&e.id), cum_qty: e.cum, order_qty: None,
                        fill: Some((e.qty, e.price)), avg_price: Some(e.avg), at: t(), merge: false,
                    });
                }
            }
            // In-order ledger a has every execution; b's fills are a subset, id for id and qty for qty.
            let fa: HashMap<String, Decimal> = a.fills("o").into_iter().map(|f| (f.fill_id, f.qty)).collect();
            prop_assert_eq!(fa.len(), ex.len());
            for f in b.fills("o") { prop_assert_eq!(fa.get(&f.fill_id), Some(&f.qty)); }
        }
    }
}
