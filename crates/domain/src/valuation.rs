//! One valuation: the single mark-to-market rule that `keel status`, the
//! end-of-day snapshot and the dashboard all use, and the one rounding rule
//! for money they all show, so the same state gives the same numbers
//! everywhere.
//!
//! # The price rule
//!
//! Each position is valued at one [`Mark`], chosen by the caller's price
//! source from, in order:
//!
//! 1. a live quote's reference price ([`Quote::reference`]: the mid when the
//!    book is sane, else the last trade) — only where a caller holds a quote
//!    it just read (the EOD snapshot at the close);
//! 2. else the newest price keel itself recorded for the symbol: its latest
//!    fill, or its close in the latest EOD snapshot, whichever is later
//!    ([`latest_recorded`]); this is what `keel status` and the dashboard
//!    use, since they read the store and hold no quotes;
//! 3. else the position's average cost (flagged [`PriceSource::Cost`]), so a
//!    holding is never silently left out of equity.
//!
//! Right after an EOD snapshot and before the next fill, rules 1 and 2 give
//! the same price, which is why status, the snapshot and the dashboard agree
//! to the cent on one state.
//!
//! Figures are computed at full precision; only display rounds, with
//! [`money`] (2 dp, half away from zero — the rule the dashboard's script
//! applies to the same digits) and [`plain`] for prices and quantities.

use crate::{Quote, Symbol};
use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Where a position's price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    /// A live quote's reference price.
    Quote,
    /// The symbol's latest fill.
    Fill,
    /// The close in the latest end-of-day snapshot that holds the symbol.
    Eod,
    /// No price is known: the position is valued at its average cost.
    Cost,
    /// No price is known for a symbol that is targeted but not held
    /// (`price` is 0 and means nothing).
    Unknown,
}

/// A price with its origin and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Price per share.
    pub price: Decimal,
    /// Where it came from.
    pub source: PriceSource,
    /// When it was observed (`None` for [`PriceSource::Cost`]).
    pub at: Option<DateTime<Utc>>,
}

impl Mark {
    /// The mark a quote gives (rule 1).
    pub fn of_quote(q: &Quote) -> Self {
        Self {
            price: q.reference(),
            source: PriceSource::Quote,
            at: Some(q.ts),
        }
    }
}

/// Rule 2: the newer of a symbol's last fill and its last end-of-day close
/// (a fill after the close is newer information than the close, and vice
/// versa; on a tie the close wins, since it is what the snapshot recorded).
pub fn latest_recorded(
    last_fill: Option<(Decimal, DateTime<Utc>)>,
    last_eod: Option<(Decimal, DateTime<Utc>)>,
) -> Option<Mark> {
    let fill = last_fill.map(|(price, at)| Mark {
        price,
        source: PriceSource::Fill,
        at: Some(at),
    });
    let eod = last_eod.map(|(price, at)| Mark {
        price,
        source: PriceSource::Eod,
        at: Some(at),
    });
    match (fill, eod) {
        (Some(f), Some(e)) => Some(if e.at >= f.at { e } else { f }),
        (f, e) => f.or(e),
    }
}

/// One position, valued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionValue {
    /// Instrument.
    pub symbol: Symbol,
    /// Signed shares.
    pub qty: Decimal,
    /// Average cost per share.
    pub avg_cost: Decimal,
    /// The mark used.
    pub mark: Mark,
    /// qty × price, full precision.
    pub market_value: Decimal,
    /// market value − qty × average cost (6 dp: the average cost is itself a
    /// rounded quotient, so further digits mean nothing).
    pub unrealized_pnl: Decimal,
}

/// An account marked to market.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Valuation {
    /// Cash.
    pub cash: Decimal,
    /// cash + net exposure.
    pub equity: Decimal,
    /// Σ |market value|.
    pub gross: Decimal,
    /// Σ market value.
    pub net: Decimal,
    /// Σ unrealized P&L.
    pub unrealized_pnl: Decimal,
    /// Positions in the order given.
    pub positions: Vec<PositionValue>,
}

impl Valuation {
    /// The weight of a market value in this equity (6 dp), `None` when equity is not positive.
    pub fn weight(&self, market_value: Decimal) -> Option<Decimal> {
        (self.equity > Decimal::ZERO).then(|| round(market_value / self.equity, 6))
    }
}

/// Marks `positions` — `(symbol, signed qty, average cost)` — at the prices
/// `price` gives, falling back to each position's average cost (rule 3).
pub fn mark<'a>(
    cash: Decimal,
    positions: impl IntoIterator<Item = (&'a Symbol, Decimal, Decimal)>,
    price: impl Fn(&Symbol) -> Option<Mark>,
) -> Valuation {
    let mut v = Valuation {
        cash,
        equity: cash,
        gross: Decimal::ZERO,
        net: Decimal::ZERO,
        unrealized_pnl: Decimal::ZERO,
        positions: Vec::new(),
    };
    for (symbol, qty, avg_cost) in positions {
        let mark = price(symbol).unwrap_or(Mark {
            price: avg_cost,
            source: PriceSource::Cost,
            at: None,
        });
        let market_value = qty * mark.price;
        let unrealized_pnl = round(market_value - qty * avg_cost, 6);
        v.gross += market_value.abs();
        v.net += market_value;
        v.unrealized_pnl += unrealized_pnl;
        v.positions.push(PositionValue {
            symbol: symbol.clone(),
            qty,
            avg_cost,
            mark,
            market_value,
            unrealized_pnl,
        });
    }
    v.equity = cash + v.net;
    v
}

fn round(d: Decimal, dp: u32) -> Decimal {
    d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

/// Money as shown anywhere (CLI, dashboard, demo, reports): 2 dp, half away
/// from zero. The one rounding rule for money.
pub fn money(d: Decimal) -> Decimal {
    let r = round(d, 2);
    // Always two places ("12.50", "0.00"), never "-0.00".
    let mut r = if r.is_zero() { Decimal::ZERO } else { r };
    r.rescale(2);
    r
}

/// [`money`] as text.
pub fn fmt_money(d: Decimal) -> String {
    money(d).to_string()
}

/// A price, quantity or other exact figure for a message: no trailing zeros
/// (`100.000000000000000000000000` → `100`).
pub fn plain(d: Decimal) -> Decimal {
    d.normalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn marks_at_given_prices_and_falls_back_to_cost() {
        let (a, b) = (sym("AAA"), sym("BBB"));
        let v = mark(d("1000"), [(&a, d("10"), d("90")), (&b, d("-5"), d("20"))], |s| {
            (s == &a).then(|| Mark {
                price: d("100"),
                source: PriceSource::Fill,
                at: None,
            })
        });
        assert_eq!(v.net, d("900"));
        assert_eq!(v.gross, d("1100"));
        assert_eq!(v.equity, d("1900"));
        assert_eq!(v.unrealized_pnl, d("100"));
        assert_eq!(v.positions[1].mark.source, PriceSource::Cost);
        assert_eq!(v.positions[1].market_value, d("-100"));
    }

    #[test]
    fn recorded_mark_prefers_the_newer() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap_or_else(|e| panic!("{s}: {e}"));
        let m = latest_recorded(
            Some((d("10"), t("2026-01-02T15:00:00Z"))),
            Some((d("11"), t("2026-01-02T21:00:00Z"))),
        );
        assert_eq!(m.map(|m| (m.price, m.source)), Some((d("11"), PriceSource::Eod)));
        let m = latest_recorded(
            Some((d("12"), t("2026-01-03T15:00:00Z"))),
            Some((d("11"), t("2026-01-02T21:00:00Z"))),
        );
        assert_eq!(m.map(|m| (m.price, m.source)), Some((d("12"), PriceSource::Fill)));
        assert_eq!(latest_recorded(None, None), None);
    }

    #[test]
    fn money_is_two_places_half_away_from_zero() {
        assert_eq!(fmt_money(d("1.005")), "1.01");
        assert_eq!(fmt_money(d("-1.005")), "-1.01");
        assert_eq!(fmt_money(d("1.0049999")), "1.00");
        assert_eq!(fmt_money(d("7")), "7.00");
        assert_eq!(fmt_money(d("-0.001")), "0.00");
        assert_eq!(plain(d("100.000000000000000000000000")).to_string(), "100");
        assert_eq!(plain(d("2.50")).to_string(), "2.5");
    }

    proptest! {
        /// Equity is cash plus net, gross bounds |net|, and the result does not
        /// depend on anything but the inputs (same in, same out).
        #[test]
        fn totals_are_consistent(
            cash in -1_000_000i64..1_000_000,
            rows in proptest::collection::vec((-10_000i64..10_000, 1i64..100_000, 1i64..100_000, any::<bool>()), 0..20),
        ) {
            let syms: Vec<Symbol> = (0..rows.len()).map(|i| sym(&format!("S{i}"))).collect();
            let prices: std::collections::BTreeMap<Symbol, Decimal> = syms
                .iter()
                .zip(&rows)
                .filter(|(_, r)| r.3)
                .map(|(s, r)| (s.clone(), Decimal::new(r.2, 2)))
                .collect();
            let input = || syms.iter().zip(&rows).map(|(s, r)| (s, Decimal::from(r.0), Decimal::new(r.1, 2)));
            let price = |s: &Symbol| prices.get(s).map(|p| Mark { price: *p, source: PriceSource::Quote, at: None });
            let v = mark(Decimal::from(cash), input(), price);
            prop_assert_eq!(v.equity, Decimal::from(cash) + v.net);
            prop_assert!(v.gross >= v.net.abs());
            let sum: Decimal = v.positions.iter().map(|p| p.market_value).sum();
            prop_assert_eq!(sum, v.net);
            prop_assert_eq!(&mark(Decimal::from(cash), input(), price), &v);
            prop_assert_eq!(money(v.equity).scale(), 2);
        }
    }
}
