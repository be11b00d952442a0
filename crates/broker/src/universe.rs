//! A deterministic synthetic market: about fifty large US stocks whose prices
//! follow a seeded random walk.
//!
//! Everything here is pure and synchronous: the same `(seed, symbol, instant)`
//! always gives the same quote, on any machine, whatever was asked before. The
//! paper broker, the simulator and tests all price from this module.
//!
//! # Price model
//!
//! * **Daily closes.** The log close of a symbol is `ln(base) + σ·W(t)`, where
//!   `t` counts weekdays from an anchor (Monday 2024-12-30, whose close is the
//!   symbol's base price) and `W` is a standard Brownian motion with unit
//!   variance per weekday (so `σ` is the daily volatility, 1.5–2.5 %). `W` is
//!   built with Lévy's midpoint construction over a dyadic grid of 2¹⁶
//!   weekdays (about 250 years) on each side of the anchor, with the normal
//!   draws derived from a hash of `(seed, symbol, grid node)`. Evaluating one
//!   close walks 16 levels of that tree: O(log) work with no state, no cache and
//!   no summing over the days in between.
//! * **Overnight gap.** 30 % of a day's variance happens between the previous
//!   close and the open: the opening level is the Brownian-bridge point at 0.3
//!   between the two closes.
//! * **Intraday.** During a session the price follows a Brownian bridge from
//!   the open to that day's close on a grid of 2¹⁵ steps (sub-second for a
//!   6.5-hour session), again built by midpoint descent. So the quote at the
//!   closing bell is exactly the session close that [`daily_closes`] reports.
//! * **Outside a session** (nights, weekends, holidays) the quote is the last
//!   session's close.
//! * **Book.** The mid is quoted with a spread of 2–5 bps (wider for less
//!   liquid names, at least one cent); bid is rounded down and ask up to whole
//!   cents, `last` is the mid rounded to cents.
//!
//! Holidays are weekdays on the walk too: their move simply shows up in the
//! next session's opening gap, like news over a long weekend.

use chrono::{DateTime, NaiveDate, Utc};
use keel_domain::{Quote, Symbol};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::BTreeMap;

/// Static description of one instrument in the synthetic universe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Instrument {
    /// Ticker.
    pub ticker: &'static str,
    /// Close on the anchor date (Monday 2024-12-30), in dollars.
    pub base_price: f64,
    /// Average daily volume in shares.
    pub adv_shares: u64,
    /// Daily volatility of log returns (0.015 = 1.5 %).
    pub daily_vol: f64,
}

const fn ins(ticker: &'static str, base_price: f64, adv_shares: u64, daily_vol: f64) -> Instrument {
    Instrument {
        ticker,
        base_price,
        adv_shares,
        daily_vol,
    }
}

/// The universe, sorted by ticker. Base prices and volumes are roughly those of
/// the end of 2024; volatilities are clamped to 1.5–2.5 % daily.
pub const INSTRUMENTS: &[Instrument] = &[
    ins("AAPL", 250.42, 55_000_000, 0.016),
    ins("ABBV", 177.70, 6_000_000, 0.016),
    ins("ABT", 113.11, 5_800_000, 0.015),
    ins("ACN", 351.79, 2_500_000, 0.017),
    ins("ADBE", 444.68, 3_400_000, 0.020),
    ins("AMD", 120.79, 45_000_000, 0.025),
    ins("AMGN", 260.56, 3_000_000, 0.016),
    ins("AMZN", 221.30, 40_000_000, 0.020),
    ins("AVGO", 234.48, 25_000_000, 0.025),
    ins("BAC", 44.23, 38_000_000, 0.018),
    ins("BRK.B", 452.16, 4_000_000, 0.015),
    ins("CAT", 363.40, 2_500_000, 0.018),
    ins("COST", 920.73, 2_000_000, 0.016),
    ins("CRM", 336.08, 6_000_000, 0.022),
    ins("CSCO", 59.28, 19_000_000, 0.015),
    ins("CVX", 145.86, 8_000_000, 0.016),
    ins("DIS", 111.62, 9_000_000, 0.018),
    ins("GOOG", 192.69, 20_000_000, 0.018),
    ins("GOOGL", 191.24, 28_000_000, 0.018),
    ins("GS", 574.42, 2_100_000, 0.018),
    ins("HD", 389.04, 3_500_000, 0.015),
    ins("IBM", 221.47, 4_000_000, 0.016),
    ins("INTC", 20.22, 60_000_000, 0.025),
    ins("INTU", 630.48, 1_600_000, 0.020),
    ins("JNJ", 144.93, 7_500_000, 0.015),
    ins("JPM", 240.15, 9_000_000, 0.015),
    ins("KO", 62.39, 14_000_000, 0.015),
    ins("LIN", 420.75, 2_000_000, 0.015),
    ins("LLY", 773.12, 3_500_000, 0.018),
    ins("MA", 527.87, 3_000_000, 0.015),
    ins("MCD", 290.26, 3_500_000, 0.015),
    ins("META", 591.24, 13_000_000, 0.022),
    ins("MRK", 99.19, 9_000_000, 0.016),
    ins("MSFT", 424.83, 20_000_000, 0.015),
    ins("NFLX", 891.32, 3_500_000, 0.024),
    ins("NKE", 75.40, 11_000_000, 0.020),
    ins("NVDA", 137.49, 250_000_000, 0.025),
    ins("ORCL", 167.29, 9_000_000, 0.022),
    ins("PEP", 151.95, 7_000_000, 0.015),
    ins("PFE", 26.49, 38_000_000, 0.016),
    ins("PG", 167.23, 7_000_000, 0.015),
    ins("QCOM", 153.75, 8_000_000, 0.022),
    // The S&P 500 ETF: the volatility brake's default reference symbol.
    ins("SPY", 586.08, 45_000_000, 0.015),
    ins("TMO", 520.36, 1_700_000, 0.016),
    ins("TSLA", 417.41, 90_000_000, 0.025),
    ins("TXN", 187.93, 6_000_000, 0.019),
    ins("UBER", 60.77, 20_000_000, 0.024),
    ins("UNH", 505.66, 4_000_000, 0.016),
    ins("V", 315.99, 7_000_000, 0.015),
    ins("VZ", 39.81, 20_000_000, 0.015),
    ins("WFC", 70.52, 16_000_000, 0.019),
    ins("WMT", 90.82, 18_000_000, 0.015),
    ins("XOM", 107.72, 16_000_000, 0.015),
];

/// The instrument for `symbol`, if it is in the universe.
pub fn instrument(symbol: &Symbol) -> Option<&'static Instrument> {
    INSTRUMENTS
        .binary_search_by(|i| i.ticker.cmp(symbol.as_str()))
        .ok()
        .map(|idx| &INSTRUMENTS[idx])
}

/// Every symbol of the universe, sorted.
pub fn symbols() -> Vec<Symbol> {
    INSTRUMENTS
        .iter()
        .filter_map(|i| Symbol::new(i.ticker).ok())
        .collect()
}

/// Average daily volume in shares, or `None` for a symbol outside the universe.
pub fn adv(symbol: &Symbol) -> Option<Decimal> {
    instrument(symbol).map(|i| Decimal::from(i.adv_shares))
}

/// The synthetic quote for `symbol` at `at` (`ts == at`), or `None` for a
/// symbol outside the universe. See the module docs for the model.
pub fn quote(seed: u64, symbol: &Symbol, at: DateTime<Utc>) -> Option<Quote> {
    let ins = instrument(symbol)?;
    let key = symbol_key(seed, ins.ticker);
    let ln_mid = match keel_calendar::session_containing(at) {
        Some(s) => {
            let span = (s.close - s.open).num_milliseconds().max(1) as f64;
            let into = (at - s.open).num_milliseconds().max(0) as f64;
            intraday_ln(ins, key, s.date, (into / span).clamp(0.0, 1.0))
        }
        None => ln_close(ins, key, last_closed_session_date(at)),
    };
    let mid = ln_mid.exp().max(0.01);
    book(symbol.clone(), ins, mid, at)
}

/// Quotes for the whole universe at `at`.
pub fn quotes(seed: u64, at: DateTime<Utc>) -> BTreeMap<Symbol, Quote> {
    symbols()
        .into_iter()
        .filter_map(|s| quote(seed, &s, at).map(|q| (s, q)))
        .collect()
}

/// Most closes [`daily_closes`] returns in one call.
pub const MAX_DAILY_CLOSES: usize = 10_000;

/// The closes of the last `n` sessions dated strictly before `end`, oldest
/// first, rounded to cents (the same value as the quote's `last` at or after
/// that session's close). Empty for a symbol outside the universe.
pub fn daily_closes(seed: u64, symbol: &Symbol, end: NaiveDate, n: usize) -> Vec<Decimal> {
    let Some(ins) = instrument(symbol) else {
        return Vec::new();
    };
    let key = symbol_key(seed, ins.ticker);
    // A request is bounded whatever the caller asks for: ~40 years of sessions.
    let n = n.min(MAX_DAILY_CLOSES);
    let mut out = Vec::with_capacity(n);
    let mut date = end;
    while out.len() < n {
        let s = keel_calendar::previous_session_before(date);
        if s.date >= date {
            // Only at the very start of chrono's range; nothing earlier exists.
            break;
        }
        out.push(cents(ln_close(ins, key, s.date).exp().max(0.01)));
        date = s.date;
    }
    out.reverse();
    out
}

/// The close of the session on `date` (whatever the time of day), or `None`
/// when `symbol` is unknown or `date` is not a session. Convenience for
/// end-of-day marks.
pub fn session_close(seed: u64, symbol: &Symbol, date: NaiveDate) -> Option<Decimal> {
    let ins = instrument(symbol)?;
    keel_calendar::session(date)?;
    Some(cents(
        ln_close(ins, symbol_key(seed, ins.ticker), date).exp().max(0.01),
    ))
}

// ---------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------

/// log2 of the number of weekdays covered on each side of the anchor.
const DAY_LEVELS: u32 = 16;
/// log2 of the intraday grid size.
const INTRADAY_LEVELS: u32 = 15;
/// Share of a day's variance that happens overnight (close to open).
const OVERNIGHT_SHARE: f64 = 0.3;

const SALT_FWD: u64 = 0x0066_7764;
const SALT_BWD: u64 = 0x0062_7764;
const SALT_GAP: u64 = 0x0067_6170;
const SALT_INTRADAY: u64 = 0x0069_6e74;

/// Monday 2024-12-30: weekday index 0, where every symbol closes at its base price.
fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 12, 30).unwrap_or_default()
}

/// Weekdays between the anchor and `date` (weekend dates map to the Friday before).
fn weekday_index(date: NaiveDate) -> i64 {
    let days = (date - anchor()).num_days();
    let weeks = days.div_euclid(7);
    let rem = days.rem_euclid(7).min(4);
    weeks * 5 + rem
}

/// The date of the last session that has closed at or before `at`.
fn last_closed_session_date(at: DateTime<Utc>) -> NaiveDate {
    // Sessions open and close within the UTC day of their New York date.
    let d = at.date_naive();
    match keel_calendar::session(d) {
        Some(s) if at >= s.close => s.date,
        _ => keel_calendar::previous_session_before(d).date,
    }
}

fn symbol_key(seed: u64, ticker: &str) -> u64 {
    // FNV-1a of the ticker, mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ticker.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix(h ^ splitmix(seed))
}

/// SplitMix64 finaliser: a fast, well-mixed 64-bit hash step. Shared by
/// everything in keel that needs reproducible pseudo-randomness from a seed.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash3(key: u64, salt: u64, node: u64) -> u64 {
    splitmix(splitmix(key ^ salt.rotate_left(32)) ^ node)
}

/// A standard normal draw determined by `(key, salt, node)` (Box–Muller).
fn normal(key: u64, salt: u64, node: u64) -> f64 {
    let h1 = hash3(key, salt, node);
    let h2 = splitmix(h1 ^ 0x5bd1_e995);
    let u1 = ((h1 >> 11) + 1) as f64 / (1u64 << 53) as f64; // (0, 1]
    let u2 = (h2 >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Standard Brownian motion at integer time `i` in `[0, 2^levels]`, `W(0) = 0`,
/// by Lévy's midpoint construction: O(levels) hash draws.
fn brownian(key: u64, salt: u64, levels: u32, i: u64) -> f64 {
    let n = 1u64 << levels;
    let i = i.min(n);
    if i == 0 {
        return 0.0;
    }
    let (mut a, mut b) = (0u64, n);
    let (mut wa, mut wb) = (0.0, (n as f64).sqrt() * normal(key, salt, n));
    // Interior dyadic points are each the midpoint of exactly one interval, so
    // the midpoint itself is a unique node id; `n` is the right endpoint's.
    while b - a > 1 {
        if i == b {
            return wb;
        }
        let m = a + (b - a) / 2;
        let wm = (wa + wb) / 2.0 + ((b - a) as f64 / 4.0).sqrt() * normal(key, salt, m);
        if i == m {
            return wm;
        }
        if i < m {
            b = m;
            wb = wm;
        } else {
            a = m;
            wa = wm;
        }
    }
    if i == a {
        wa
    } else {
        wb
    }
}

/// Standard Brownian bridge on `[0, 1]` pinned to 0 at both ends, at grid
/// point `k` of `2^levels`.
fn bridge(key: u64, salt: u64, levels: u32, k: u64) -> f64 {
    let n = 1u64 << levels;
    let k = k.min(n);
    let (mut a, mut b) = (0u64, n);
    let (mut wa, mut wb) = (0.0, 0.0);
    let scale = 1.0 / n as f64;
    while b - a > 1 {
        if k == a {
            return wa;
        }
        if k == b {
            return wb;
        }
        let m = a + (b - a) / 2;
        let wm = (wa + wb) / 2.0 + ((b - a) as f64 * scale / 4.0).sqrt() * normal(key, salt, m);
        if k < m {
            b = m;
            wb = wm;
        } else {
            a = m;
            wa = wm;
        }
    }
    if k == a {
        wa
    } else {
        wb
    }
}

/// The random walk at weekday index `t` (0 at the anchor), in daily-σ units.
fn walk(key: u64, t: i64) -> f64 {
    let span = 1i64 << DAY_LEVELS;
    let t = t.clamp(-span, span);
    if t >= 0 {
        brownian(key, SALT_FWD, DAY_LEVELS, t as u64)
    } else {
        brownian(key, SALT_BWD, DAY_LEVELS, t.unsigned_abs())
    }
}

fn ln_close_at_index(ins: &Instrument, key: u64, t: i64) -> f64 {
    ins.base_price.ln() + ins.daily_vol * walk(key, t)
}

fn ln_close(ins: &Instrument, key: u64, date: NaiveDate) -> f64 {
    ln_close_at_index(ins, key, weekday_index(date))
}

/// Log price at fraction `f` of the session dated `date`.
fn intraday_ln(ins: &Instrument, key: u64, date: NaiveDate, f: f64) -> f64 {
    let t = weekday_index(date);
    let prev = ln_close_at_index(ins, key, t - 1);
    let close = ln_close_at_index(ins, key, t);
    let sigma = ins.daily_vol;
    let day_node = t.wrapping_add(1 << 40) as u64;
    let open = prev
        + OVERNIGHT_SHARE * (close - prev)
        + (OVERNIGHT_SHARE * (1.0 - OVERNIGHT_SHARE)).sqrt() * sigma * normal(key, SALT_GAP, day_node);
    let grid = 1u64 << INTRADAY_LEVELS;
    let k = ((f * grid as f64) as u64).min(grid);
    let day_key = splitmix(key ^ splitmix(day_node));
    open + f * (close - open)
        + (1.0 - OVERNIGHT_SHARE).sqrt() * sigma * bridge(day_key, SALT_INTRADAY, INTRADAY_LEVELS, k)
}

/// Half-spread in bps of the mid, by liquidity.
fn spread_bps(ins: &Instrument) -> f64 {
    match ins.adv_shares {
        v if v >= 20_000_000 => 2.0,
        v if v >= 5_000_000 => 3.0,
        _ => 5.0,
    }
}

fn cents(x: f64) -> Decimal {
    Decimal::from_f64(x)
        .unwrap_or(Decimal::ONE)
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
        .max(Decimal::new(1, 2))
}

fn book(symbol: Symbol, ins: &Instrument, mid: f64, at: DateTime<Utc>) -> Option<Quote> {
    let mid_d = Decimal::from_f64(mid)?;
    let half = (mid_d * Decimal::from_f64(spread_bps(ins) / 2.0 / 10_000.0)?).max(Decimal::new(5, 3));
    let cent = Decimal::new(1, 2);
    let bid = (mid_d - half)
        .round_dp_with_strategy(2, RoundingStrategy::ToNegativeInfinity)
        .max(cent);
    let ask = (mid_d + half)
        .round_dp_with_strategy(2, RoundingStrategy::ToPositiveInfinity)
        .max(bid + cent);
    let last = mid_d
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
        .clamp(bid, ask);
    Some(Quote {
        symbol,
        bid,
        ask,
        last,
        ts: at,
    })
}

/// Realised daily volatility of log returns of `closes` (sample standard
/// deviation), as f64; `None` with fewer than three closes. Helper for tests
/// and the simulator's sanity checks.
pub fn realized_vol(closes: &[Decimal]) -> Option<f64> {
    if closes.len() < 3 {
        return None;
    }
    let px: Vec<f64> = closes.iter().filter_map(|c| c.to_f64()).collect();
    let rets: Vec<f64> = px.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
    let mean = rets.iter().sum::<f64>() / rets.len() as f64;
    let var = rets.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (rets.len() - 1) as f64;
    Some(var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    #[test]
    fn universe_is_sorted_valid_and_big_enough() {
        assert!(INSTRUMENTS.len() >= 50);
        assert!(INSTRUMENTS.windows(2).all(|w| w[0].ticker < w[1].ticker));
        assert_eq!(symbols().len(), INSTRUMENTS.len());
        for i in INSTRUMENTS {
            assert!((0.015..=0.025).contains(&i.daily_vol), "{}", i.ticker);
        }
        assert_eq!(adv(&sym("AAPL")), Some(Decimal::from(55_000_000u64)));
        assert_eq!(adv(&sym("ZZZZ")), None);
        assert!(quote(
            1,
            &sym("ZZZZ"),
            Utc.with_ymd_and_hms(2026, 1, 5, 15, 0, 0).unwrap()
        )
        .is_none());
    }

    #[test]
    fn anchor_close_is_base_price() {
        let d = anchor();
        for i in INSTRUMENTS {
            let s = sym(i.ticker);
            let c = session_close(7, &s, d).unwrap();
            assert_eq!(c, cents(i.base_price), "{}", i.ticker);
        }
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let at = Utc.with_ymd_and_hms(2026, 3, 10, 15, 0, 0).unwrap();
        let a = quotes(42, at);
        assert_eq!(a, quotes(42, at));
        assert_ne!(a, quotes(43, at));
        for (s, q) in &a {
            assert_eq!(&q.symbol, s);
            assert_eq!(q.ts, at);
            assert!(q.bid > Decimal::ZERO && q.bid < q.ask, "{s}: {q:?}");
            assert!(q.bid <= q.last && q.last <= q.ask);
            assert_eq!(q.bid.scale().max(q.ask.scale()), 2);
            let spread_bps = (q.ask - q.bid) / q.reference() * Decimal::from(10_000);
            assert!(spread_bps <= Decimal::from(12), "{s}: {spread_bps}");
        }
    }

    #[test]
    fn moves_intraday_and_meets_the_close() {
        let s = sym("MSFT");
        let sess = keel_calendar::session(NaiveDate::from_ymd_opt(2026, 3, 10).unwrap()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for m in 0..390 {
            let q = quote(9, &s, sess.open + chrono::Duration::minutes(m)).unwrap();
            seen.insert(q.last);
        }
        assert!(seen.len() > 20, "intraday prices barely move: {}", seen.len());
        let close = session_close(9, &s, sess.date).unwrap();
        assert_eq!(quote(9, &s, sess.close).unwrap().last, close);
        assert_eq!(
            quote(9, &s, sess.close + chrono::Duration::hours(10))
                .unwrap()
                .last,
            close
        );
        let just_before = quote(9, &s, sess.close - chrono::Duration::seconds(1)).unwrap();
        let diff = (just_before.last - close).abs();
        assert!(diff <= close * Decimal::new(2, 3), "{diff}");
        // Before the open the quote is the previous session's close.
        let prev = keel_calendar::previous_session_before(sess.date);
        assert_eq!(
            quote(9, &s, sess.open - chrono::Duration::minutes(1))
                .unwrap()
                .last,
            session_close(9, &s, prev.date).unwrap()
        );
    }

    #[test]
    fn daily_closes_match_sessions_and_vol_is_realistic() {
        let end = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        for i in INSTRUMENTS {
            let s = sym(i.ticker);
            let closes = daily_closes(3, &s, end, 500);
            assert_eq!(closes.len(), 500);
            let vol = realized_vol(&closes).unwrap();
            assert!((0.010..=0.035).contains(&vol), "{}: {vol}", i.ticker);
        }
        let s = sym("AAPL");
        let last3 = daily_closes(3, &s, end, 3);
        let sessions: Vec<_> = {
            let mut v = Vec::new();
            let mut d = end;
            for _ in 0..3 {
                let x = keel_calendar::previous_session_before(d);
                v.push(x.date);
                d = x.date;
            }
            v.reverse();
            v
        };
        let expect: Vec<_> = sessions
            .iter()
            .map(|d| session_close(3, &s, *d).unwrap())
            .collect();
        assert_eq!(last3, expect);
        assert_eq!(daily_closes(3, &s, end, 500)[497..], last3[..]);
        assert!(daily_closes(3, &sym("ZZZZ"), end, 5).is_empty());
    }

    #[test]
    fn far_dates_do_not_panic() {
        let s = sym("NVDA");
        for y in [1800, 1970, 2000, 2100, 2400] {
            let at = Utc.with_ymd_and_hms(y, 6, 15, 15, 0, 0).unwrap();
            let q = quote(1, &s, at).unwrap();
            assert!(q.bid > Decimal::ZERO);
        }
    }

    #[test]
    fn quote_is_cheap() {
        let start = std::time::Instant::now();
        let at = Utc.with_ymd_and_hms(2026, 3, 10, 15, 0, 0).unwrap();
        for k in 0..200 {
            let _ = quotes(k, at + chrono::Duration::seconds(k as i64));
        }
        // 200 × ~52 quotes; generous bound for debug builds on slow CI.
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
