//! Decimal helpers that cannot panic.
//!
//! `rust_decimal`'s operators panic on overflow and division by zero, and the
//! planner promises not to panic on any input, so arithmetic on input values
//! goes through these helpers or the `checked_*` / `saturating_*` methods.
//! Saturation is used only where a huge value fails closed (an exposure or a
//! spend that saturates at `Decimal::MAX` exceeds every limit).

use crate::fx::{self, D64, POW10};
use chrono::{DateTime, Utc};
use keel_domain::{Quote, Side};
use rust_decimal::{Decimal, RoundingStrategy};

/// Basis points per unit.
pub(crate) const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

/// Rounds a quantity toward zero to the lot size (`dp` decimal places: 0 for
/// whole shares, 4 for fractional), never below zero. Toward zero so that a
/// rounded order never overshoots the quantity that was allowed.
#[inline]
pub(crate) fn floor_lot(x: Decimal, dp: u32) -> Decimal {
    if !fx::is_pos(x) {
        Decimal::ZERO
    } else {
        fx::trunc_positive(x, dp).unwrap_or_else(|| x.round_dp_with_strategy(dp, RoundingStrategy::ToZero))
    }
}

/// `n / d` rounded toward zero to `dp` decimal places: target sizing.
///
/// Exact integer arithmetic on the mantissas when it fits in `i128` (the
/// common case), so the result is the true truncated quotient and costs one
/// integer division instead of a 28-digit decimal division plus rounding.
/// Falls back to decimal division otherwise; `None` on overflow or `d == 0`.
pub(crate) fn div_to_lot(n: Decimal, d: Decimal, dp: u32) -> Option<Decimal> {
    if d.is_zero() {
        return None;
    }
    // n / d × 10^dp = mn × 10^(sd + dp) / (md × 10^sn), first in 64 bits (the common case).
    if let (Some((mn, sn)), Some((md, sd))) = (fx::small(n), fx::small(d)) {
        let up = sd + dp;
        let p = fx::POW10_64.get(up.abs_diff(sn) as usize);
        let frac = match p {
            Some(p) if up >= sn => mn.checked_mul(*p).map(|num| (num, md)),
            Some(p) => md.checked_mul(*p).map(|den| (mn, den)),
            None => None,
        };
        if let Some((num, den)) = frac {
            if let Some(q) = num.checked_div(den) {
                if let Ok(q) = Decimal::try_new(q, dp) {
                    return Some(q);
                }
            }
        }
    }
    let (mn, sn) = (n.mantissa(), n.scale());
    let (md, sd) = (d.mantissa(), d.scale());
    let up = sd + dp;
    let pow = |k: u32| POW10.get(k as usize).copied();
    let fast = if up >= sn {
        pow(up - sn).and_then(|p| mn.checked_mul(p)).map(|num| (num, md))
    } else {
        pow(sn - up).and_then(|p| md.checked_mul(p)).map(|den| (mn, den))
    };
    if let Some((num, den)) = fast {
        // Integer division truncates toward zero, which is the rounding wanted;
        // 64-bit division when both fit, the common case.
        let q = match (i64::try_from(num), i64::try_from(den)) {
            (Ok(a), Ok(b)) if b != -1 => i128::from(a / b),
            _ => num / den,
        };
        if let Ok(q) = Decimal::try_from_i128_with_scale(q, dp) {
            return Some(q);
        }
    }
    n.checked_div(d)
        .map(|q| q.round_dp_with_strategy(dp, RoundingStrategy::ToZero))
}

/// How many shares `notional` buys at `price`, unrounded; 0 for a non-positive
/// notional or price (fail closed), `Decimal::MAX` when the quotient overflows
/// (the limit is then effectively absent, which is what a huge headroom means).
pub(crate) fn shares_for(notional: Decimal, price: Decimal) -> Decimal {
    if !fx::is_pos(notional) || !fx::is_pos(price) {
        return Decimal::ZERO;
    }
    notional.checked_div(price).unwrap_or(Decimal::MAX)
}

/// `a × b`, saturating; used for notionals that feed limits.
#[inline]
pub(crate) fn mul(a: Decimal, b: Decimal) -> Decimal {
    fx::sat_mul(a, b)
}

/// The quote's reference price with the value [`Quote::reference`] defines,
/// but `None` instead of a panic when bid + ask overflows, and `None` when the
/// result is not a positive price (a zero or negative reference can size nothing).
#[inline]
pub(crate) fn reference(q: &Quote) -> Option<Decimal> {
    let px = if is_positive(q.bid) && fx::ge(q.ask, q.bid) {
        half(fx::checked_add(q.bid, q.ask)?)?
    } else {
        q.last
    };
    is_positive(px).then_some(px)
}

/// [`reference`], and the same price unpacked when it fits: computed on the
/// unpacked bid, ask and last when they fit (the common case), else by
/// [`reference`] itself.
#[inline]
pub(crate) fn reference_fast(q: &Quote) -> (Option<Decimal>, Option<D64>) {
    if let Some(px) = reference64(q) {
        return if px.is_pos() {
            (Some(px.dec()), Some(px))
        } else {
            (None, None)
        };
    }
    let px = reference(q);
    (px, px.and_then(D64::of))
}

/// [`reference`]'s price before its positivity test, when every step fits.
#[inline(always)]
fn reference64(q: &Quote) -> Option<D64> {
    let bid = D64::of(q.bid)?;
    let ask = D64::of(q.ask)?;
    if bid.is_pos() && ask.cmp(bid)? != std::cmp::Ordering::Less {
        bid.add(ask)?.half()
    } else {
        D64::of(q.last)
    }
}

/// `x > 0` from the sign and zero bits, without a full decimal comparison
/// (this runs several times per symbol).
#[inline]
pub(crate) fn is_positive(x: Decimal) -> bool {
    fx::is_pos(x)
}

/// `x / 2`, exactly, without the cost of general decimal division: an even
/// mantissa halves at the same scale, an odd one gains one digit. (Division
/// can pad an extra zero, `10.0150` where this gives `10.015`: same value.)
#[inline]
pub(crate) fn half(x: Decimal) -> Option<Decimal> {
    let (m, s) = (x.mantissa(), x.scale());
    let (m, s) = if m % 2 == 0 {
        (m / 2, s)
    } else {
        (m.checked_mul(5)?, s + 1)
    };
    Decimal::try_from_i128_with_scale(m, s)
        .ok()
        .or_else(|| x.checked_div(Decimal::TWO))
}

/// Limit prices at a fixed offset through the reference: buys at
/// `reference × (1 + bps)`, sells at `reference × (1 − bps)`. The two factors
/// are computed once per plan.
///
/// Ticks follow Reg NMS Rule 612: cents from $1, 4 decimal places below.
/// Buys round down and sells round up, so rounding never makes the order
/// more aggressive than configured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LimitPricer {
    buy: Option<Decimal>,
    sell: Option<Decimal>,
    /// The factors unpacked, when positive and representable.
    buy64: Option<D64>,
    sell64: Option<D64>,
}

impl LimitPricer {
    pub(crate) fn new(bps: Decimal) -> Self {
        let offset = bps.checked_div(BPS);
        let buy = offset.and_then(|o| Decimal::ONE.checked_add(o));
        let sell = offset.and_then(|o| Decimal::ONE.checked_sub(o));
        let unpacked = |f: Option<Decimal>| f.and_then(D64::of).filter(|f| f.is_pos());
        Self {
            buy,
            sell,
            buy64: unpacked(buy),
            sell64: unpacked(sell),
        }
    }

    /// [`LimitPricer::price`] of a positive unpacked reference, when it is a
    /// positive price and every step fits; `None` means "ask `price`".
    #[inline(always)]
    pub(crate) fn price64(&self, side: Side, reference: D64) -> Option<D64> {
        let factor = match side {
            Side::Buy => self.buy64?,
            Side::Sell => self.sell64?,
        };
        let raw = reference.mul(factor)?;
        let dp = if raw.at_least_one() { 2 } else { 4 };
        raw.round_pos(dp, side == Side::Sell).filter(|px| px.is_pos())
    }

    /// The limit for `side`; `None` when it overflows or is not positive.
    #[inline]
    pub(crate) fn price(&self, side: Side, reference: Decimal) -> Option<Decimal> {
        let (factor, strategy) = match side {
            Side::Buy => (self.buy?, RoundingStrategy::ToNegativeInfinity),
            Side::Sell => (self.sell?, RoundingStrategy::ToPositiveInfinity),
        };
        // Positive reference and factor: the product is positive, buys truncate
        // and sells round up any remainder, on the integer mantissa.
        if is_positive(reference) && is_positive(factor) {
            if let Some(raw) = fx::try_mul(reference, factor) {
                let (m, s) = (raw.mantissa(), raw.scale());
                let dp = if m >= POW10[s as usize] { 2 } else { 4 };
                let px = if s <= dp {
                    raw
                } else {
                    let (q, r) = fx::divrem_pow10(m, s - dp);
                    let q = if side == Side::Sell && r != 0 { q + 1 } else { q };
                    fx::pack(q, dp)?
                };
                return is_positive(px).then_some(px);
            }
        }
        let raw = reference.checked_mul(factor)?;
        let dp = if raw >= Decimal::ONE { 2 } else { 4 };
        let px = raw.round_dp_with_strategy(dp, strategy);
        (px > Decimal::ZERO).then_some(px)
    }
}

#[cfg(test)]
fn limit_price(side: Side, reference: Decimal, bps: Decimal) -> Option<Decimal> {
    LimitPricer::new(bps).price(side, reference)
}

/// Seconds config values are `u64`; chrono works in `i64` milliseconds. This
/// saturates instead of wrapping so a huge configured window means "forever".
pub(crate) fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
}

/// Milliseconds from `earlier` to `later` (negative when `later` is before `earlier`).
pub(crate) fn ms_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> i64 {
    later.signed_duration_since(earlier).num_milliseconds()
}

/// Formats a fraction as a percentage with two decimals, for details.
pub(crate) fn pct(x: Decimal) -> String {
    match x.checked_mul(Decimal::ONE_HUNDRED) {
        Some(p) => format!("{}%", p.round_dp(2)),
        None => format!("{x} (fraction)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_domain::Symbol;
    use rust_decimal_macros::dec;

    #[test]
    fn floor_lot_rounds_toward_zero_and_clamps() {
        assert_eq!(floor_lot(dec!(10.9), 0), dec!(10));
        assert_eq!(floor_lot(dec!(10.12349), 4), dec!(10.1234));
        assert_eq!(floor_lot(dec!(-3), 0), Decimal::ZERO);
        assert_eq!(floor_lot(dec!(0.9), 0), Decimal::ZERO);
    }

    #[test]
    fn limit_prices_round_toward_the_reference() {
        // 100 * 1.001 = 100.1 exactly.
        assert_eq!(limit_price(Side::Buy, dec!(100), dec!(10)), Some(dec!(100.10)));
        assert_eq!(limit_price(Side::Sell, dec!(100), dec!(10)), Some(dec!(99.90)));
        // 10.005 * 1.001 = 10.015005: buy rounds down; 10.005 * 0.999 = 9.994995: sell rounds up.
        assert_eq!(limit_price(Side::Buy, dec!(10.005), dec!(10)), Some(dec!(10.01)));
        assert_eq!(limit_price(Side::Sell, dec!(10.005), dec!(10)), Some(dec!(10.00)));
        // The tick depends on the rounded side of $1: 1.0005 * 0.999 = 0.9995 keeps 4 dp.
        assert_eq!(
            limit_price(Side::Sell, dec!(1.0005), dec!(10)),
            Some(dec!(0.9995))
        );
        // Sub-dollar prices keep 4 decimals.
        assert_eq!(limit_price(Side::Buy, dec!(0.5), dec!(10)), Some(dec!(0.5005)));
        assert_eq!(
            limit_price(Side::Sell, dec!(0.12345), dec!(0)),
            Some(dec!(0.1235))
        );
        // An offset of 100% or more cannot give a positive sell price.
        assert_eq!(limit_price(Side::Sell, dec!(10), dec!(10000)), None);
        assert_eq!(limit_price(Side::Buy, Decimal::MAX, dec!(10)), None);
    }

    #[test]
    fn reference_never_panics() {
        let s = Symbol::new("X").unwrap();
        let ts = DateTime::<Utc>::UNIX_EPOCH;
        let q = |bid, ask, last| Quote {
            symbol: s.clone(),
            bid,
            ask,
            last,
            ts,
        };
        assert_eq!(reference(&q(dec!(10), dec!(10.02), dec!(9))), Some(dec!(10.01)));
        assert_eq!(reference(&q(dec!(10.02), dec!(10), dec!(9))), Some(dec!(9)));
        assert_eq!(reference(&q(Decimal::MAX, Decimal::MAX, dec!(9))), None);
        assert_eq!(reference(&q(dec!(0), dec!(0), dec!(0))), None);
        assert_eq!(reference(&q(dec!(0), dec!(0), dec!(-1))), None);
    }

    #[test]
    fn div_to_lot_truncates_exactly() {
        assert_eq!(div_to_lot(dec!(10000), dec!(3), 0), Some(dec!(3333)));
        assert_eq!(div_to_lot(dec!(10000), dec!(3), 4), Some(dec!(3333.3333)));
        assert_eq!(div_to_lot(dec!(-10000), dec!(3), 0), Some(dec!(-3333)));
        assert_eq!(div_to_lot(dec!(32.6666), dec!(0.0123), 0), Some(dec!(2655)));
        assert_eq!(div_to_lot(dec!(1.5), dec!(123.456), 4), Some(dec!(0.0121)));
        assert_eq!(div_to_lot(dec!(1), dec!(0), 0), None);
        // Too wide for i128: the decimal fallback still answers.
        assert_eq!(div_to_lot(Decimal::MAX, dec!(1), 0), Some(Decimal::MAX));
        assert_eq!(div_to_lot(Decimal::MAX, dec!(0.5), 0), None);
        assert_eq!(div_to_lot(dec!(1), Decimal::MAX, 4), Some(dec!(0)));
        // Agrees with decimal division rounded toward zero.
        for (n, d) in [
            (dec!(98765.4321), dec!(17.05)),
            (dec!(0.000326), dec!(499.99)),
            (dec!(5e7), dec!(0.51)),
        ] {
            for dp in [0, 4] {
                let slow = (n / d).round_dp_with_strategy(dp, RoundingStrategy::ToZero);
                assert_eq!(div_to_lot(n, d, dp), Some(slow), "{n} / {d} at {dp}");
            }
        }
    }

    #[test]
    fn half_matches_decimal_division() {
        for x in [
            dec!(20.02),
            dec!(20.03),
            dec!(20.00),
            dec!(0),
            dec!(-3),
            dec!(1e-28),
            dec!(0.0000000000000000000000000003),
        ] {
            assert_eq!(half(x).unwrap(), x / Decimal::TWO, "{x}");
        }
        assert_eq!(half(Decimal::MAX), Some(Decimal::MAX / Decimal::TWO));
        let s = Symbol::new("X").unwrap();
        let q = Quote {
            symbol: s,
            bid: dec!(10.00),
            ask: dec!(10.03),
            last: dec!(1),
            ts: DateTime::<Utc>::UNIX_EPOCH,
        };
        assert_eq!(reference(&q), Some(q.reference()));
    }

    #[test]
    fn shares_for_fails_closed() {
        assert_eq!(shares_for(dec!(100), dec!(0)), Decimal::ZERO);
        assert_eq!(shares_for(dec!(-1), dec!(10)), Decimal::ZERO);
        assert_eq!(shares_for(Decimal::MAX, dec!(0.0000001)), Decimal::MAX);
        assert_eq!(shares_for(dec!(100), dec!(8)), dec!(12.5));
    }
}
