//! Exact decimals from Alpaca's JSON. The Trading API sends numbers as strings
//! (`"qty": "10"`); the Market Data API sends JSON numbers (`"ap": 190.12`).
//! serde_json is built with `arbitrary_precision` workspace-wide, so a
//! [`serde_json::Number`]'s text is exactly what was on the wire: we parse
//! that text, never an `f64`.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

/// Longest numeric text accepted; anything longer is not a price or a size.
const MAX_NUMBER_TEXT: usize = 64;

/// Parses decimal text (`"190.12"`, `"-3"`, `"1.5e-3"`) exactly.
pub fn decimal_text(s: &str) -> Result<Decimal, String> {
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_NUMBER_TEXT {
        return Err(format!("{:?}: not a decimal number", truncate(t)));
    }
    if t.contains(['e', 'E']) {
        return Decimal::from_scientific(t).map_err(|e| format!("{:?}: {e}", truncate(t)));
    }
    Decimal::from_str_exact(t).map_err(|e| format!("{:?}: {e}", truncate(t)))
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A Decimal from a JSON string or number, through its text.
pub fn decimal_value(v: &serde_json::Value) -> Result<Decimal, String> {
    match v {
        serde_json::Value::String(s) => decimal_text(s),
        serde_json::Value::Number(n) => decimal_text(&n.to_string()),
        other => Err(format!("expected a number, got {}", kind(other))),
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `#[serde(deserialize_with = "...")]` for a required decimal.
pub fn de_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    decimal_value(&v).map_err(serde::de::Error::custom)
}

/// `#[serde(default, deserialize_with = "...")]` for an optional decimal
/// (absent, `null` or `""` are `None`).
pub fn de_opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match &v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        _ => decimal_value(&v).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Normalised decimal text for a request (`"10"`, `"190.12"`; never an exponent).
pub fn decimal_wire(d: Decimal) -> String {
    d.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    #[test]
    fn numbers_keep_their_text() {
        // 0.1 + 0.2 style values that an f64 path would change.
        let v: serde_json::Value =
            serde_json::from_str(r#"{"ap": 190.12, "x": 0.30000000000000001, "b": 1e-3}"#).unwrap();
        assert_eq!(decimal_value(&v["ap"]).unwrap().to_string(), "190.12");
        assert_eq!(decimal_value(&v["x"]).unwrap().to_string(), "0.30000000000000001");
        assert_eq!(decimal_value(&v["b"]).unwrap().to_string(), "0.001");
        assert!(decimal_value(&serde_json::json!(true)).is_err());
        assert!(decimal_text("12abc").is_err());
        assert!(decimal_text(&"9".repeat(100)).is_err());
        assert_eq!(decimal_wire(Decimal::from_str("10.500").unwrap()), "10.5");
    }

    proptest! {
        #[test]
        fn any_decimal_survives_json_number_text(mantissa in -1_000_000_000_000i64..1_000_000_000_000i64, scale in 0u32..10) {
            let d = Decimal::new(mantissa, scale);
            let text = format!("{{\"p\": {d}}}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(decimal_value(&v["p"]).unwrap(), d);
            let s: serde_json::Value = serde_json::json!({"p": d.to_string()});
            prop_assert_eq!(decimal_value(&s["p"]).unwrap(), d);
        }
    }
}
