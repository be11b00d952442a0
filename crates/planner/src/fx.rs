//! Exact fast paths for the `Decimal` operations a plan runs thousands of
//! times: bit-for-bit the result `rust_decimal` gives (same value, same
//! scale, same sign, so the serialized plan cannot change), computed on the
//! 96-bit mantissas in native `i128`/`u64` arithmetic.
//!
//! Each `try_*` returns `None` whenever its result might differ from
//! `rust_decimal`'s: a mantissa that would leave 96 bits, a scale beyond 28,
//! or an alignment that does not fit. The wrappers then fall back to the
//! `rust_decimal` operation itself, so every wrapper is a drop-in
//! replacement for the method it names. `rust_decimal` rounds only when a
//! result does not fit, and the fast paths only answer when it fits, which is
//! why they agree; the differential tests below check it on millions of
//! inputs, negative zeros, mixed scales and 96-bit mantissas included.

use rust_decimal::Decimal;
use std::cmp::Ordering;

/// 10^k for k in 0..=38 (10^38 is the largest power of ten in an `i128`).
pub(crate) const POW10: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut k = 1;
    while k < 39 {
        t[k] = t[k - 1] * 10;
        k += 1;
    }
    t
};

/// 10^k for k in 0..=18, the powers of ten in an `i64`.
pub(crate) const POW10_64: [i64; 19] = {
    let mut t = [1i64; 19];
    let mut k = 1;
    while k < 19 {
        t[k] = t[k - 1] * 10;
        k += 1;
    }
    t
};

/// One more than the largest `Decimal` mantissa.
const LIMIT: u128 = 1 << 96;

#[inline(always)]
fn fits(m: i128) -> bool {
    m.unsigned_abs() < LIMIT
}

/// The signed mantissa and the scale (a negative zero reads as 0).
#[inline(always)]
pub(crate) fn unpack(d: Decimal) -> (i128, u32) {
    (d.mantissa(), d.scale())
}

/// The signed mantissa when it fits in an `i64` (the common case, served
/// by the first tier below), and the scale.
#[inline(always)]
pub(crate) fn small(d: Decimal) -> Option<(i64, u32)> {
    let u = d.unpack();
    let lo = u64::from(u.mid) << 32 | u64::from(u.lo);
    if u.hi != 0 || lo > i64::MAX as u64 {
        return None;
    }
    let m = lo as i64;
    Some((if u.negative { -m } else { m }, u.scale))
}

/// `m × 10^-s` as a `Decimal`, or `None` when it does not fit.
#[inline(always)]
pub(crate) fn pack(m: i128, s: u32) -> Option<Decimal> {
    Decimal::try_from_i128_with_scale(m, s).ok()
}

/// `m × 10^-s` for an `i64` mantissa (always fits; `s ≤ 28` by construction).
#[inline(always)]
fn pack64(m: i64, s: u32) -> Option<Decimal> {
    Decimal::try_new(m, s).ok()
}

/// Both `i64` mantissas at the larger scale, if they stay `i64`.
#[inline(always)]
fn align64(ma: i64, sa: u32, mb: i64, sb: u32) -> Option<(i64, i64, u32)> {
    if sa == sb {
        Some((ma, mb, sa))
    } else if sa < sb {
        let p = *POW10_64.get((sb - sa) as usize)?;
        Some((ma.checked_mul(p)?, mb, sb))
    } else {
        let p = *POW10_64.get((sa - sb) as usize)?;
        Some((ma, mb.checked_mul(p)?, sa))
    }
}

/// Both mantissas at the larger scale, each still within 96 bits.
#[inline]
fn align(ma: i128, sa: u32, mb: i128, sb: u32) -> Option<(i128, i128, u32)> {
    match sa.cmp(&sb) {
        Ordering::Equal => Some((ma, mb, sa)),
        Ordering::Less => {
            let a = ma.checked_mul(POW10[(sb - sa) as usize])?;
            fits(a).then_some((a, mb, sb))
        }
        Ordering::Greater => {
            let b = mb.checked_mul(POW10[(sa - sb) as usize])?;
            fits(b).then_some((ma, b, sa))
        }
    }
}

/// `a + b` exactly as `Decimal::checked_add`, when the sum fits.
#[inline(always)]
pub(crate) fn try_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    // rust_decimal returns the other operand unchanged (scale and sign) when one is zero.
    if a.is_zero() {
        return Some(b);
    }
    if b.is_zero() {
        return Some(a);
    }
    if let (Some((ma, sa)), Some((mb, sb))) = (small(a), small(b)) {
        if let Some((x, y, s)) = align64(ma, sa, mb, sb) {
            if let Some(m) = x.checked_add(y) {
                return pack64(m, s);
            }
        }
    }
    add_wide(a, b)
}

/// The 96-bit tier of [`try_add`] (operands known non-zero).
#[inline(never)]
fn add_wide(a: Decimal, b: Decimal) -> Option<Decimal> {
    let (ma, sa) = unpack(a);
    let (mb, sb) = unpack(b);
    let (ma, mb, s) = align(ma, sa, mb, sb)?;
    pack(ma + mb, s)
}

/// `a − b` exactly as `Decimal::checked_sub`, when the difference fits.
#[inline(always)]
pub(crate) fn try_sub(a: Decimal, b: Decimal) -> Option<Decimal> {
    if a.is_zero() {
        // 0 − x is −x, but a zero x comes back as it was (a negative zero stays one).
        return Some(if b.is_zero() { b } else { -b });
    }
    if b.is_zero() {
        return Some(a);
    }
    if let (Some((ma, sa)), Some((mb, sb))) = (small(a), small(b)) {
        if let Some((x, y, s)) = align64(ma, sa, mb, sb) {
            if let Some(m) = x.checked_sub(y) {
                return pack64(m, s);
            }
        }
    }
    sub_wide(a, b)
}

/// The 96-bit tier of [`try_sub`] (operands known non-zero).
#[inline(never)]
fn sub_wide(a: Decimal, b: Decimal) -> Option<Decimal> {
    let (ma, sa) = unpack(a);
    let (mb, sb) = unpack(b);
    let (ma, mb, s) = align(ma, sa, mb, sb)?;
    pack(ma - mb, s)
}

/// `a × b` exactly as `Decimal::checked_mul`, when the product fits unrounded.
#[inline(always)]
pub(crate) fn try_mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    if a.is_zero() || b.is_zero() {
        return Some(Decimal::ZERO);
    }
    let s = a.scale() + b.scale();
    if s > Decimal::MAX_SCALE {
        return None;
    }
    if let (Some((ma, _)), Some((mb, _))) = (small(a), small(b)) {
        return match ma.checked_mul(mb) {
            Some(p) => pack64(p, s),
            // Two i64s multiply exactly in an i128.
            None => pack(i128::from(ma) * i128::from(mb), s),
        };
    }
    mul_wide(a, b, s)
}

/// The 96-bit tier of [`try_mul`] (operands known non-zero, `s ≤ 28`).
#[inline(never)]
fn mul_wide(a: Decimal, b: Decimal, s: u32) -> Option<Decimal> {
    pack(a.mantissa().checked_mul(b.mantissa())?, s)
}

/// `Decimal::checked_add`.
#[inline(always)]
pub(crate) fn checked_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    match try_add(a, b) {
        Some(x) => Some(x),
        None => slow_checked_add(a, b),
    }
}

/// `Decimal::checked_sub`.
#[inline(always)]
pub(crate) fn checked_sub(a: Decimal, b: Decimal) -> Option<Decimal> {
    match try_sub(a, b) {
        Some(x) => Some(x),
        None => slow_checked_sub(a, b),
    }
}

/// `Decimal::checked_mul`.
#[inline(always)]
pub(crate) fn checked_mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    match try_mul(a, b) {
        Some(x) => Some(x),
        None => slow_checked_mul(a, b),
    }
}

/// `Decimal::saturating_add`.
#[inline(always)]
pub(crate) fn sat_add(a: Decimal, b: Decimal) -> Decimal {
    match try_add(a, b) {
        Some(x) => x,
        None => slow_sat_add(a, b),
    }
}

/// `Decimal::saturating_sub`.
#[inline(always)]
pub(crate) fn sat_sub(a: Decimal, b: Decimal) -> Decimal {
    match try_sub(a, b) {
        Some(x) => x,
        None => slow_sat_sub(a, b),
    }
}

/// `Decimal::saturating_mul`.
#[inline(always)]
pub(crate) fn sat_mul(a: Decimal, b: Decimal) -> Decimal {
    match try_mul(a, b) {
        Some(x) => x,
        None => slow_sat_mul(a, b),
    }
}

#[cold]
#[inline(never)]
fn slow_checked_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    a.checked_add(b)
}

#[cold]
#[inline(never)]
fn slow_checked_sub(a: Decimal, b: Decimal) -> Option<Decimal> {
    a.checked_sub(b)
}

#[cold]
#[inline(never)]
fn slow_checked_mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    a.checked_mul(b)
}

#[cold]
#[inline(never)]
fn slow_sat_add(a: Decimal, b: Decimal) -> Decimal {
    a.saturating_add(b)
}

#[cold]
#[inline(never)]
fn slow_sat_sub(a: Decimal, b: Decimal) -> Decimal {
    a.saturating_sub(b)
}

#[cold]
#[inline(never)]
fn slow_sat_mul(a: Decimal, b: Decimal) -> Decimal {
    a.saturating_mul(b)
}

/// `Decimal::cmp` (by value: scales and the sign of zero do not matter).
#[inline(always)]
pub(crate) fn cmp(a: Decimal, b: Decimal) -> Ordering {
    if let (Some((ma, sa)), Some((mb, sb))) = (small(a), small(b)) {
        if let Some((x, y, _)) = align64(ma, sa, mb, sb) {
            return x.cmp(&y);
        }
    }
    cmp_wide(a, b)
}

/// The 96-bit tier of [`cmp`].
#[inline(never)]
fn cmp_wide(a: Decimal, b: Decimal) -> Ordering {
    let (ma, sa) = unpack(a);
    let (mb, sb) = unpack(b);
    match sa.cmp(&sb) {
        Ordering::Equal => ma.cmp(&mb),
        Ordering::Less => match ma.checked_mul(POW10[(sb - sa) as usize]) {
            Some(x) => x.cmp(&mb),
            None => a.cmp(&b),
        },
        Ordering::Greater => match mb.checked_mul(POW10[(sa - sb) as usize]) {
            Some(y) => ma.cmp(&y),
            None => a.cmp(&b),
        },
    }
}

/// `a < b`.
#[inline(always)]
pub(crate) fn lt(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) == Ordering::Less
}

/// `a <= b`.
#[inline(always)]
pub(crate) fn le(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) != Ordering::Greater
}

/// `a > b`.
#[inline(always)]
pub(crate) fn gt(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) == Ordering::Greater
}

/// `a >= b`.
#[inline(always)]
pub(crate) fn ge(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) != Ordering::Less
}

/// `a == b` by value.
#[inline(always)]
pub(crate) fn eq(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) == Ordering::Equal
}

/// `Decimal::min(a, b)`: `a` unless `b` is strictly smaller (which of two
/// equal values comes back matters: they may differ in scale).
#[inline(always)]
pub(crate) fn min(a: Decimal, b: Decimal) -> Decimal {
    if gt(a, b) {
        b
    } else {
        a
    }
}

/// `Decimal::max(a, b)`: `a` unless `b` is strictly greater.
#[inline(always)]
pub(crate) fn max(a: Decimal, b: Decimal) -> Decimal {
    if lt(a, b) {
        b
    } else {
        a
    }
}

/// `x > 0`.
#[inline(always)]
pub(crate) fn is_pos(x: Decimal) -> bool {
    !x.is_zero() && x.is_sign_positive()
}

/// `x < 0`.
#[inline(always)]
pub(crate) fn is_neg(x: Decimal) -> bool {
    !x.is_zero() && x.is_sign_negative()
}

/// `(m / 10^k, m % 10^k)` for `m ≥ 0`, in 64-bit arithmetic when it fits.
#[inline]
pub(crate) fn divrem_pow10(m: i128, k: u32) -> (i128, i128) {
    let p = POW10[k as usize];
    match (u64::try_from(m), u64::try_from(p)) {
        (Ok(x), Ok(y)) => (i128::from(x / y), i128::from(x % y)),
        _ => (m / p, m % p),
    }
}

/// `x.round_dp_with_strategy(dp, ToZero)` for `x > 0` (`None` otherwise).
#[inline]
pub(crate) fn trunc_positive(x: Decimal, dp: u32) -> Option<Decimal> {
    let (m, s) = unpack(x);
    if m <= 0 {
        return None;
    }
    if s <= dp {
        return Some(x);
    }
    pack(divrem_pow10(m, s - dp).0, dp)
}

/// A `Decimal` whose mantissa fits in an `i64`, unpacked once so that a
/// chain of operations runs on registers: the same mantissa and scale the
/// `Decimal` has (trailing zeros included), never a negative zero.
///
/// Every operation returns what the named `Decimal` operation returns, bit
/// for bit once converted back with [`D64::dec`], or `None` when the result
/// would leave this representation; callers then take the `Decimal` path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct D64 {
    m: i64,
    s: u32,
}

impl D64 {
    /// `Decimal::ZERO`.
    pub(crate) const ZERO: D64 = D64 { m: 0, s: 0 };
    /// `Decimal::ONE`.
    pub(crate) const ONE: D64 = D64 { m: 1, s: 0 };
    /// `Decimal::NEGATIVE_ONE`.
    pub(crate) const NEGATIVE_ONE: D64 = D64 { m: -1, s: 0 };

    /// The unpacked form of `d`, if its mantissa fits and it is not a negative zero.
    #[inline(always)]
    pub(crate) fn of(d: Decimal) -> Option<D64> {
        let u = d.unpack();
        let lo = u64::from(u.mid) << 32 | u64::from(u.lo);
        if u.hi != 0 || lo > i64::MAX as u64 || (lo == 0 && u.negative) {
            return None;
        }
        let m = lo as i64;
        Some(D64 {
            m: if u.negative { -m } else { m },
            s: u.scale,
        })
    }

    /// Back to a `Decimal` (always representable).
    #[inline(always)]
    pub(crate) fn dec(self) -> Decimal {
        // The scale came from a Decimal or was checked against MAX_SCALE.
        Decimal::try_new(self.m, self.s).unwrap_or_default()
    }

    /// `x.is_zero()`.
    #[inline(always)]
    pub(crate) fn is_zero(self) -> bool {
        self.m == 0
    }

    /// `x > 0`.
    #[inline(always)]
    pub(crate) fn is_pos(self) -> bool {
        self.m > 0
    }

    /// `Decimal::abs`.
    #[inline(always)]
    pub(crate) fn abs(self) -> Option<D64> {
        Some(D64 {
            m: self.m.checked_abs()?,
            s: self.s,
        })
    }

    /// `-x` (of a non-zero value).
    #[inline(always)]
    fn neg(self) -> Option<D64> {
        Some(D64 {
            m: self.m.checked_neg()?,
            s: self.s,
        })
    }

    /// `Decimal::checked_add`.
    #[inline(always)]
    pub(crate) fn add(self, b: D64) -> Option<D64> {
        if self.m == 0 {
            return Some(b);
        }
        if b.m == 0 {
            return Some(self);
        }
        let (x, y, s) = align64(self.m, self.s, b.m, b.s)?;
        Some(D64 {
            m: x.checked_add(y)?,
            s,
        })
    }

    /// `Decimal::checked_sub`.
    #[inline(always)]
    pub(crate) fn sub(self, b: D64) -> Option<D64> {
        if self.m == 0 {
            return if b.m == 0 { Some(b) } else { b.neg() };
        }
        if b.m == 0 {
            return Some(self);
        }
        let (x, y, s) = align64(self.m, self.s, b.m, b.s)?;
        Some(D64 {
            m: x.checked_sub(y)?,
            s,
        })
    }

    /// `Decimal::checked_mul`.
    #[inline(always)]
    pub(crate) fn mul(self, b: D64) -> Option<D64> {
        if self.m == 0 || b.m == 0 {
            return Some(D64::ZERO);
        }
        let s = self.s + b.s;
        if s > Decimal::MAX_SCALE {
            return None;
        }
        Some(D64 {
            m: self.m.checked_mul(b.m)?,
            s,
        })
    }

    /// `Decimal::cmp`.
    #[inline(always)]
    pub(crate) fn cmp(self, b: D64) -> Option<Ordering> {
        let (x, y, _) = align64(self.m, self.s, b.m, b.s)?;
        Some(x.cmp(&y))
    }

    /// `a > b`.
    #[inline(always)]
    pub(crate) fn gt(self, b: D64) -> Option<bool> {
        Some(self.cmp(b)? == Ordering::Greater)
    }

    /// `a <= b`.
    #[inline(always)]
    pub(crate) fn le(self, b: D64) -> Option<bool> {
        Some(self.cmp(b)? != Ordering::Greater)
    }

    /// `Decimal::min(a, b)`: `a` unless `b` is strictly smaller.
    #[inline(always)]
    pub(crate) fn min(self, b: D64) -> Option<D64> {
        Some(if self.gt(b)? { b } else { self })
    }

    /// `x.round_dp_with_strategy(dp, ToZero)` of a positive `x`, or `None`.
    #[inline(always)]
    pub(crate) fn trunc_pos(self, dp: u32) -> Option<D64> {
        if self.m <= 0 {
            return None;
        }
        if self.s <= dp {
            return Some(self);
        }
        let p = *POW10_64.get((self.s - dp) as usize)?;
        Some(D64 { m: self.m / p, s: dp })
    }

    /// [`crate::num::floor_lot`]: rounded toward zero to `dp` places, `Decimal::ZERO` unless positive.
    #[inline(always)]
    pub(crate) fn floor_lot(self, dp: u32) -> Option<D64> {
        if self.m <= 0 {
            Some(D64::ZERO)
        } else {
            self.trunc_pos(dp)
        }
    }

    /// [`crate::num::div_to_lot`]'s exact quotient `n / d` truncated to `dp` places.
    #[inline(always)]
    pub(crate) fn div_to_lot(self, d: D64, dp: u32) -> Option<D64> {
        if d.m == 0 {
            return None;
        }
        let up = d.s + dp;
        let p = *POW10_64.get(up.abs_diff(self.s) as usize)?;
        let (num, den) = if up >= self.s {
            (self.m.checked_mul(p)?, d.m)
        } else {
            (self.m, d.m.checked_mul(p)?)
        };
        Some(D64 {
            m: num.checked_div(den)?,
            s: dp,
        })
    }

    /// [`crate::num`]'s exact half: an even mantissa halves, an odd one gains a digit.
    #[inline(always)]
    pub(crate) fn half(self) -> Option<D64> {
        if self.m % 2 == 0 {
            Some(D64 {
                m: self.m / 2,
                s: self.s,
            })
        } else if self.s < Decimal::MAX_SCALE {
            Some(D64 {
                m: self.m.checked_mul(5)?,
                s: self.s + 1,
            })
        } else {
            None
        }
    }

    /// `x ≥ 1` for a positive `x`.
    #[inline(always)]
    pub(crate) fn at_least_one(self) -> bool {
        match POW10_64.get(self.s as usize) {
            Some(p) => self.m >= *p,
            // 10^s beyond i64: the mantissa is smaller.
            None => false,
        }
    }

    /// [`crate::guards::fits`]: `price > 0 && qty × price ≤ room`.
    #[inline(always)]
    pub(crate) fn fits(qty: D64, price: D64, room: D64) -> Option<bool> {
        if !price.is_pos() {
            return Some(false);
        }
        qty.mul(price)?.le(room)
    }

    /// A positive price rounded to `dp` places: toward zero, or up when `up`
    /// (`ToNegativeInfinity` / `ToPositiveInfinity` on a positive value).
    #[inline(always)]
    pub(crate) fn round_pos(self, dp: u32, up: bool) -> Option<D64> {
        if self.s <= dp {
            return Some(self);
        }
        let p = *POW10_64.get((self.s - dp) as usize)?;
        let (q, r) = (self.m / p, self.m % p);
        Some(D64 {
            m: if up && r != 0 { q + 1 } else { q },
            s: dp,
        })
    }
}

/// A running `Decimal` sum (`acc = acc.saturating_add(x)`, one term at a
/// time), kept unpacked while every partial sum fits: the same value and
/// representation as the `Decimal` chain, which it continues from the first
/// term that does not fit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sum {
    Fast(D64),
    Slow(Decimal),
}

impl Sum {
    pub(crate) fn new(d: Decimal) -> Self {
        D64::of(d).map_or(Sum::Slow(d), Sum::Fast)
    }

    #[inline(always)]
    pub(crate) fn add64(&mut self, x: D64) {
        *self = match *self {
            Sum::Fast(a) => match a.add(x) {
                Some(s) => Sum::Fast(s),
                None => Sum::Slow(sat_add(a.dec(), x.dec())),
            },
            Sum::Slow(a) => Sum::Slow(sat_add(a, x.dec())),
        }
    }

    #[inline]
    pub(crate) fn add(&mut self, x: Decimal) {
        match D64::of(x) {
            Some(x) => self.add64(x),
            None => *self = Sum::Slow(sat_add(self.dec(), x)),
        }
    }

    pub(crate) fn dec(self) -> Decimal {
        match self {
            Sum::Fast(a) => a.dec(),
            Sum::Slow(a) => a,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::RoundingStrategy;

    /// splitmix64.
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
    }

    /// A decimal from a mix meant to hit every path: zeros of any scale and
    /// sign, small and 32/64/96-bit mantissas, all scales, near-limit values.
    fn any(r: &mut Rng) -> Decimal {
        let scale = match r.below(4) {
            0 => r.below(3) as u32,
            1 => r.below(7) as u32,
            _ => r.below(29) as u32,
        };
        let negative = r.below(3) == 0;
        let bits = match r.below(10) {
            0 => 0,
            1 => 1 + r.below(8),
            2 => 32,
            3 => 33 + r.below(31),
            4 => 64,
            5 => 65 + r.below(31),
            6 => 96,
            _ => 1 + r.below(40),
        };
        let raw = (u128::from(r.next()) << 64 | u128::from(r.next())) & ((1u128 << bits) - 1);
        let (lo, mid, hi) = (raw as u32, (raw >> 32) as u32, (raw >> 64) as u32);
        let mut d = Decimal::from_parts(lo, mid, hi, negative, scale);
        if raw == 0 && negative {
            d.set_sign_negative(true); // a negative zero, as `-Decimal::ZERO` makes
        }
        d
    }

    fn same(a: Decimal, b: Decimal) -> bool {
        a.serialize() == b.serialize()
    }

    #[test]
    fn fast_paths_match_rust_decimal_bit_for_bit() {
        let mut r = Rng(7);
        let n = if cfg!(debug_assertions) {
            300_000
        } else {
            3_000_000
        };
        let (mut fast_add, mut fast_mul) = (0, 0);
        for _ in 0..n {
            let (a, b) = (any(&mut r), any(&mut r));
            let b = if r.below(8) == 0 {
                a.round_dp(r.below(29) as u32)
            } else {
                b
            };
            if let Some(x) = try_add(a, b) {
                fast_add += 1;
                let y = a.checked_add(b).expect("fast add where rust_decimal overflows");
                assert!(same(x, y), "{a:?} + {b:?}: {x:?} vs {y:?}");
            }
            if let Some(x) = try_sub(a, b) {
                let y = a.checked_sub(b).expect("fast sub where rust_decimal overflows");
                assert!(same(x, y), "{a:?} - {b:?}: {x:?} vs {y:?}");
            }
            if let Some(x) = try_mul(a, b) {
                fast_mul += 1;
                let y = a.checked_mul(b).expect("fast mul where rust_decimal overflows");
                assert!(same(x, y), "{a:?} * {b:?}: {x:?} vs {y:?}");
            }
            assert!(same(sat_add(a, b), a.saturating_add(b)));
            assert!(same(sat_sub(a, b), a.saturating_sub(b)));
            assert!(same(sat_mul(a, b), a.saturating_mul(b)));
            assert_eq!(
                checked_add(a, b).map(|x| x.serialize()),
                a.checked_add(b).map(|x| x.serialize())
            );
            assert_eq!(
                checked_sub(a, b).map(|x| x.serialize()),
                a.checked_sub(b).map(|x| x.serialize())
            );
            assert_eq!(
                checked_mul(a, b).map(|x| x.serialize()),
                a.checked_mul(b).map(|x| x.serialize())
            );
            assert_eq!(cmp(a, b), a.cmp(&b), "{a:?} vs {b:?}");
            assert!(same(min(a, b), a.min(b)), "min {a:?} {b:?}");
            assert!(same(max(a, b), a.max(b)), "max {a:?} {b:?}");
            assert_eq!(is_pos(a), a > Decimal::ZERO);
            assert_eq!(is_neg(a), a < Decimal::ZERO);
            let dp = r.below(6) as u32;
            if let Some(x) = trunc_positive(a, dp) {
                assert!(a > Decimal::ZERO);
                assert!(
                    same(x, a.round_dp_with_strategy(dp, RoundingStrategy::ToZero)),
                    "{a:?} {dp}"
                );
            } else {
                assert!(a <= Decimal::ZERO);
            }
        }
        // The generator must exercise the fast paths, not only the fallbacks.
        assert!(fast_add > n / 2 && fast_mul > n / 4, "{fast_add} {fast_mul}");
    }

    #[test]
    fn d64_matches_rust_decimal_bit_for_bit() {
        use rust_decimal::RoundingStrategy::{ToNegativeInfinity, ToPositiveInfinity, ToZero};
        let mut r = Rng(11);
        let n = if cfg!(debug_assertions) {
            300_000
        } else {
            3_000_000
        };
        let (mut seen, mut fast) = (0, 0);
        for _ in 0..n {
            let (a, b) = (any(&mut r), any(&mut r));
            let b = if r.below(8) == 0 {
                a.round_dp(r.below(29) as u32)
            } else {
                b
            };
            let (Some(x), Some(y)) = (D64::of(a), D64::of(b)) else {
                assert!(D64::of(a).is_none_or(|x| same(x.dec(), a)));
                continue;
            };
            seen += 1;
            assert!(same(x.dec(), a), "{a:?}");
            let check = |what: &str, got: Option<D64>, want: Option<Decimal>| {
                if let Some(g) = got {
                    let w = want.unwrap_or_else(|| panic!("{what} {a:?} {b:?}: fast {g:?}, decimal none"));
                    assert!(same(g.dec(), w), "{what} {a:?} {b:?}: {:?} vs {w:?}", g.dec());
                }
            };
            check("add", x.add(y), a.checked_add(b));
            check("sub", x.sub(y), a.checked_sub(b));
            check("mul", x.mul(y), a.checked_mul(b));
            check("abs", x.abs(), Some(a.abs()));
            check("min", x.min(y), Some(a.min(b)));
            if let Some(g) = x.gt(y) {
                assert_eq!(g, a > b);
            }
            if let Some(le) = x.le(y) {
                assert_eq!(le, a <= b);
            }
            if let Some(o) = x.cmp(y) {
                fast += 1;
                assert_eq!(o, a.cmp(&b), "{a:?} {b:?}");
            }
            assert_eq!(x.is_pos(), a > Decimal::ZERO);
            assert_eq!(x.is_zero(), a.is_zero());
            let dp = r.below(6) as u32;
            check(
                "trunc",
                x.trunc_pos(dp),
                (a > Decimal::ZERO).then(|| a.round_dp_with_strategy(dp, ToZero)),
            );
            check("floor_lot", x.floor_lot(dp), Some(crate::num::floor_lot(a, dp)));
            if !b.is_zero() {
                check(
                    "div_to_lot",
                    x.div_to_lot(y, dp),
                    crate::num::div_to_lot(a, b, dp),
                );
            }
            if a > Decimal::ZERO {
                assert_eq!(x.at_least_one(), a >= Decimal::ONE, "{a:?}");
                check(
                    "round down",
                    x.round_pos(dp, false),
                    Some(a.round_dp_with_strategy(dp, ToNegativeInfinity)),
                );
                check(
                    "round up",
                    x.round_pos(dp, true),
                    Some(a.round_dp_with_strategy(dp, ToPositiveInfinity)),
                );
            }
            check("half", x.half(), crate::num::half(a));
        }
        assert!(seen > n / 2 && fast > n / 4, "{seen} {fast}");
    }

    #[test]
    fn sum_matches_a_saturating_decimal_chain() {
        let mut r = Rng(13);
        for _ in 0..20_000 {
            let start = any(&mut r);
            let mut sum = Sum::new(start);
            let mut chain = start;
            for _ in 0..r.below(40) {
                let x = match r.below(4) {
                    0 => any(&mut r),
                    1 => Decimal::new(r.below(2_000_000) as i64 - 1_000_000, r.below(5) as u32),
                    2 => Decimal::new(0, r.below(4) as u32),
                    _ => Decimal::new(r.next() as i64 >> r.below(40), r.below(8) as u32),
                };
                chain = chain.saturating_add(x);
                match D64::of(x) {
                    Some(x64) if r.below(2) == 0 => sum.add64(x64),
                    _ => sum.add(x),
                }
                assert!(same(sum.dec(), chain), "{:?} vs {chain:?}", sum.dec());
            }
        }
    }

    #[test]
    fn pow10_table() {
        for (k, p) in POW10.iter().enumerate() {
            assert_eq!(*p, 10i128.pow(k as u32));
        }
    }
}
