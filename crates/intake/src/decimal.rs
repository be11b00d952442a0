//! Exact text → Decimal conversion for weights.
//!
//! JSON numbers (kept verbatim thanks to serde_json's `arbitrary_precision`),
//! decimal strings and CSV cells all go through [`parse_exact`], so `0.1`
//! means exactly one tenth whichever way it was written. Anything that cannot
//! be represented exactly (too many digits, too large, NaN, infinities) is
//! refused rather than rounded: a silently rounded weight is a different
//! instruction from the one the allocator sent.

use rust_decimal::Decimal;

/// Most significant digits a 96-bit decimal mantissa can hold (2^96 ≈ 7.9e28).
const MAX_DIGITS: usize = 29;

/// Why a text is not an exact decimal; the text becomes the error reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// NaN or an infinity in any spelling.
    NotFinite,
    /// Not a number at all (`five`, `1,5`, empty).
    NotANumber,
    /// Too large in magnitude for a 96-bit decimal (`1e308`).
    OutOfRange,
    /// Would need more than 28 decimal places (`1e-30`), so would be rounded.
    TooPrecise,
}

impl DecimalError {
    /// Human-readable reason.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            DecimalError::NotFinite => "not a finite number: NaN and infinities are never valid weights",
            DecimalError::NotANumber => {
                "not a decimal number: write a JSON number or a decimal string such as \"0.05\""
            }
            DecimalError::OutOfRange => "number out of range: does not fit an exact 96-bit decimal",
            DecimalError::TooPrecise => {
                "more than 28 decimal places: cannot be represented exactly, and weights are never rounded"
            }
        }
    }
}

/// Parses `[+-]digits[.digits][(e|E)[+-]digits]` (either side of the point
/// may be empty, not both) into an exact, normalised Decimal.
pub(crate) fn parse_exact(text: &str) -> Result<Decimal, DecimalError> {
    let lower = text.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "nan" | "inf" | "infinity") {
        return Err(DecimalError::NotFinite);
    }

    let bytes = text.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &text[int_start..i];
    let mut frac_digits = "";
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &text[start..i];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(DecimalError::NotANumber);
    }
    let mut exponent: i64 = 0;
    let mut exponent_overflow = false;
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        let exp_negative = match bytes.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &text[start..i];
        if digits.is_empty() {
            return Err(DecimalError::NotANumber);
        }
        // Anything beyond ~1e15 is out of range whatever the mantissa; only a zero mantissa survives it.
        match digits.trim_start_matches('0') {
            d if d.len() > 15 => exponent_overflow = true,
            "" => exponent = 0,
            d => exponent = d.parse::<i64>().map_err(|_| DecimalError::NotANumber)?,
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    if i != bytes.len() {
        return Err(DecimalError::NotANumber);
    }

    // Significant digits and the power of ten they are scaled down by.
    let mut digits: String = format!("{int_digits}{frac_digits}");
    let mut scale: i64 = frac_digits.len() as i64 - exponent;
    let trimmed_len = digits.trim_end_matches('0').len();
    scale -= (digits.len() - trimmed_len) as i64;
    digits.truncate(trimmed_len);
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(Decimal::ZERO);
    }
    if exponent_overflow {
        return Err(DecimalError::OutOfRange);
    }
    let mut digits = digits.to_string();
    if scale < 0 {
        let zeros = usize::try_from(-scale).map_err(|_| DecimalError::OutOfRange)?;
        if digits.len().saturating_add(zeros) > MAX_DIGITS {
            return Err(DecimalError::OutOfRange);
        }
        digits.push_str(&"0".repeat(zeros));
        scale = 0;
    }
    if scale > i64::from(Decimal::MAX_SCALE) {
        return Err(DecimalError::TooPrecise);
    }
    if digits.len() > MAX_DIGITS {
        return Err(DecimalError::OutOfRange);
    }
    let magnitude: i128 = digits.parse().map_err(|_| DecimalError::OutOfRange)?;
    let signed = if negative { -magnitude } else { magnitude };
    // `scale` is within 0..=28 here, so the conversion cannot fail.
    let scale = u32::try_from(scale).map_err(|_| DecimalError::TooPrecise)?;
    Decimal::try_from_i128_with_scale(signed, scale)
        .map(|d| d.normalize())
        .map_err(|_| DecimalError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn exact_forms() {
        for (text, want) in [
            ("0.05", "0.05"),
            ("0.050", "0.05"),
            ("-0.05", "-0.05"),
            ("+0.05", "0.05"),
            (".5", "0.5"),
            ("5.", "5"),
            ("5e-2", "0.05"),
            ("5E-2", "0.05"),
            ("0.5e+1", "5"),
            ("1e0", "1"),
            ("0", "0"),
            ("-0", "0"),
            ("0e99999999999999999999", "0"),
            ("000.1000", "0.1"),
            ("0.0000000000000000000000000001", "0.0000000000000000000000000001"),
            ("0.50000000000000000000000000000000000", "0.5"),
            ("79228162514264337593543950335", "79228162514264337593543950335"),
            ("1e28", "10000000000000000000000000000"),
        ] {
            assert_eq!(parse_exact(text), Ok(d(want)), "{text}");
        }
        assert_eq!(parse_exact("-0").unwrap().to_string(), "0");
        assert_eq!(parse_exact("0.050").unwrap().to_string(), "0.05");
    }

    #[test]
    fn refusals() {
        use DecimalError::*;
        for (text, want) in [
            ("NaN", NotFinite),
            ("nan", NotFinite),
            ("-NaN", NotFinite),
            ("inf", NotFinite),
            ("-Infinity", NotFinite),
            ("+INF", NotFinite),
            ("five", NotANumber),
            ("", NotANumber),
            ("-", NotANumber),
            (".", NotANumber),
            ("1,5", NotANumber),
            ("0x10", NotANumber),
            (" 0.5", NotANumber),
            ("0.5 ", NotANumber),
            ("1e", NotANumber),
            ("1e+", NotANumber),
            ("1.2.3", NotANumber),
            ("--1", NotANumber),
            ("1e308", OutOfRange),
            ("-1e308", OutOfRange),
            ("1e99999999999999999999", OutOfRange),
            ("79228162514264337593543950336", OutOfRange),
            ("1e29", OutOfRange),
            ("1e-29", TooPrecise),
            ("1e-99999999999999999999", OutOfRange),
            ("0.00000000000000000000000000001", TooPrecise),
        ] {
            assert_eq!(parse_exact(text), Err(want), "{text}");
        }
    }

    #[test]
    fn sums_are_exact() {
        assert_eq!(
            parse_exact("0.1").unwrap() + parse_exact("0.2").unwrap(),
            d("0.3")
        );
    }
}
