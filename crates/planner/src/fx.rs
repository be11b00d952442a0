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

/// `m × 10^-s` as a `Decimal`, or `None` when it does not fit.
#[inline(always)]
pub(crate) fn pack(m: i128, s: u32) -> Option<Decimal> {
    Decimal::try_from_i128_with_scale(m, s).ok()
}

/// Both mantissas at the larger scale, each still within 96 bits.
#[inline(always)]
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
#[inline]
pub(crate) fn try_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    // rust_decimal returns the other operand unchanged (scale and sign) when one is zero.
    if a.is_zero() {
        return Some(b);
    }
    if b.is_zero() {
        return Some(a);
    }
    let (ma, sa) = unpack(a);
    let (mb, sb) = unpack(b);
    let (ma, mb, s) = align(ma, sa, mb, sb)?;
    pack(ma + mb, s)
}

/// `a − b` exactly as `Decimal::checked_sub`, when the difference fits.
#[inline]
pub(crate) fn try_sub(a: Decimal, b: Decimal) -> Option<Decimal> {
    if a.is_zero() {
        // 0 − x is −x, but a zero x comes back as it was (a negative zero stays one).
        return Some(if b.is_zero() { b } else { -b });
    }
    if b.is_zero() {
        return Some(a);
    }
    let (ma, sa) = unpack(a);
    let (mb, sb) = unpack(b);
    let (ma, mb, s) = align(ma, sa, mb, sb)?;
    pack(ma - mb, s)
}

/// `a × b` exactly as `Decimal::checked_mul`, when the product fits unrounded.
#[inline]
pub(crate) fn try_mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    if a.is_zero() || b.is_zero() {
        return Some(Decimal::ZERO);
    }
    let (ma, sa) = unpack(a);
    let (mb, sb) = unpack(b);
    let s = sa + sb;
    if s > Decimal::MAX_SCALE {
        return None;
    }
    let p = match (i64::try_from(ma), i64::try_from(mb)) {
        (Ok(x), Ok(y)) => i128::from(x) * i128::from(y),
        _ => ma.checked_mul(mb)?,
    };
    pack(p, s)
}

/// `Decimal::checked_add`.
#[inline]
pub(crate) fn checked_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    try_add(a, b).or_else(|| a.checked_add(b))
}

/// `Decimal::checked_sub`.
#[inline]
pub(crate) fn checked_sub(a: Decimal, b: Decimal) -> Option<Decimal> {
    try_sub(a, b).or_else(|| a.checked_sub(b))
}

/// `Decimal::checked_mul`.
#[inline]
pub(crate) fn checked_mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    try_mul(a, b).or_else(|| a.checked_mul(b))
}

/// `Decimal::saturating_add`.
#[inline]
pub(crate) fn sat_add(a: Decimal, b: Decimal) -> Decimal {
    try_add(a, b).unwrap_or_else(|| a.saturating_add(b))
}

/// `Decimal::saturating_sub`.
#[inline]
pub(crate) fn sat_sub(a: Decimal, b: Decimal) -> Decimal {
    try_sub(a, b).unwrap_or_else(|| a.saturating_sub(b))
}

/// `Decimal::saturating_mul`.
#[inline]
pub(crate) fn sat_mul(a: Decimal, b: Decimal) -> Decimal {
    try_mul(a, b).unwrap_or_else(|| a.saturating_mul(b))
}

/// `Decimal::cmp` (by value: scales and the sign of zero do not matter).
#[inline]
pub(crate) fn cmp(a: Decimal, b: Decimal) -> Ordering {
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
#[inline]
pub(crate) fn lt(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) == Ordering::Less
}

/// `a <= b`.
#[inline]
pub(crate) fn le(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) != Ordering::Greater
}

/// `a > b`.
#[inline]
pub(crate) fn gt(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) == Ordering::Greater
}

/// `a >= b`.
#[inline]
pub(crate) fn ge(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) != Ordering::Less
}

/// `a == b` by value.
#[inline]
pub(crate) fn eq(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) == Ordering::Equal
}

/// `Decimal::min(a, b)`: `a` unless `b` is strictly smaller (which of two
/// equal values comes back matters: they may differ in scale).
#[inline]
pub(crate) fn min(a: Decimal, b: Decimal) -> Decimal {
    if gt(a, b) {
        b
    } else {
        a
    }
}

/// `Decimal::max(a, b)`: `a` unless `b` is strictly greater.
#[inline]
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
#[inline(always)]
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
        let n = if cfg!(debug_assertions) { 300_000 } else { 3_000_000 };
        let (mut fast_add, mut fast_mul) = (0, 0);
        for _ in 0..n {
            let (a, b) = (any(&mut r), any(&mut r));
            let b = if r.below(8) == 0 { a.round_dp(r.below(29) as u32) } else { b };
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
            assert_eq!(checked_add(a, b).map(|x| x.serialize()), a.checked_add(b).map(|x| x.serialize()));
            assert_eq!(checked_sub(a, b).map(|x| x.serialize()), a.checked_sub(b).map(|x| x.serialize()));
            assert_eq!(checked_mul(a, b).map(|x| x.serialize()), a.checked_mul(b).map(|x| x.serialize()));
            assert_eq!(cmp(a, b), a.cmp(&b), "{a:?} vs {b:?}");
            assert!(same(min(a, b), a.min(b)), "min {a:?} {b:?}");
            assert!(same(max(a, b), a.max(b)), "max {a:?} {b:?}");
            assert_eq!(is_pos(a), a > Decimal::ZERO);
            assert_eq!(is_neg(a), a < Decimal::ZERO);
            let dp = r.below(6) as u32;
            if let Some(x) = trunc_positive(a, dp) {
                assert!(a > Decimal::ZERO);
                assert!(same(x, a.round_dp_with_strategy(dp, RoundingStrategy::ToZero)), "{a:?} {dp}");
            } else {
                assert!(a <= Decimal::ZERO);
            }
        }
        // The generator must exercise the fast paths, not only the fallbacks.
        assert!(fast_add > n / 2 && fast_mul > n / 4, "{fast_add} {fast_mul}");
    }

    #[test]
    fn pow10_table() {
        for (k, p) in POW10.iter().enumerate() {
            assert_eq!(*p, 10i128.pow(k as u32));
        }
    }
}
