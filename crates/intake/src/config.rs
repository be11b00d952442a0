//! Intake limits, loaded from the `[intake]` section of keel's config.

use crate::decimal::parse_exact;
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The limits every target set must respect. Defaults are conservative: a
/// long-only, unlevered portfolio computed within the last hour.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeConfig {
    /// Largest allowed gross exposure (sum of |weight|); 1 means unlevered.
    #[serde(deserialize_with = "decimal_from_any")]
    #[schemars(range(max = 10), extend("exclusiveMinimum" = 0))]
    pub max_gross: Decimal,
    /// A set whose `as_of` is more than this many seconds before now is
    /// stale: the market has moved since the allocator looked at it.
    #[schemars(range(min = 1, max = 604800))]
    pub max_target_age_secs: i64,
    /// A set whose `as_of` is more than this many seconds after now comes from
    /// a machine with a wrong clock, so its other timestamps cannot be trusted.
    #[schemars(range(min = 0, max = 3600))]
    pub max_future_skew_secs: i64,
    /// Most targets in one set; more usually means the allocator emitted its
    /// whole universe or a join went wrong.
    #[schemars(range(min = 1, max = 100000))]
    pub max_targets: usize,
    /// Largest input accepted, checked before reading so a runaway file cannot
    /// exhaust memory.
    #[schemars(range(min = 1, max = 1073741824))]
    pub max_file_bytes: u64,
    /// A set whose weights sum (gross) below this is treated as a possible
    /// allocator crash unless it says `"liquidate": true`.
    #[serde(deserialize_with = "decimal_from_any")]
    #[schemars(range(min = 0, max = 1))]
    pub liquidate_floor: Decimal,
    /// Whether negative (short) weights are accepted.
    pub allow_short: bool,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            max_gross: Decimal::ONE,
            max_target_age_secs: 3600,
            max_future_skew_secs: 60,
            max_targets: 5000,
            max_file_bytes: 16 * 1024 * 1024,
            liquidate_floor: Decimal::new(5, 1),
            allow_short: false,
        }
    }
}

/// Accepts a decimal written as a string, an integer, a float (TOML) or an
/// arbitrary-precision JSON number. rust_decimal's own impl cannot read the
/// latter with this workspace's serde_json features, and config files
/// naturally write `max_gross = 1.5`.
fn decimal_from_any<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_any(DecimalVisitor)
}

struct DecimalVisitor;

impl<'de> Visitor<'de> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal number or decimal string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_exact(v).map_err(|e| E::custom(format!("{v:?}: {}", e.reason())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        // Display prints the shortest text that round-trips, i.e. what the user wrote.
        self.visit_str(&v.to_string())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Decimal, A::Error> {
        // serde_json's arbitrary_precision hands a number over as a one-entry map
        // {"$serde_json::private::Number": "<text>"}.
        match map.next_entry::<String, String>()? {
            Some((_, text)) if map.next_key::<de::IgnoredAny>()?.is_none() => self.visit_str(&text),
            _ => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = IntakeConfig::default();
        assert_eq!(c.max_gross, Decimal::ONE);
        assert_eq!(c.liquidate_floor.to_string(), "0.5");
        assert_eq!(c.max_file_bytes, 16_777_216);
        assert!(!c.allow_short);
    }

    #[test]
    fn deserializes_numbers_strings_and_partial() {
        let c: IntakeConfig =
            serde_json::from_str(r#"{"max_gross": 1.5, "liquidate_floor": "0.25"}"#).unwrap();
        assert_eq!(c.max_gross.to_string(), "1.5");
        assert_eq!(c.liquidate_floor.to_string(), "0.25");
        assert_eq!(c.max_targets, 5000);
        let c: IntakeConfig = serde_json::from_str(r#"{"max_gross": 2}"#).unwrap();
        assert_eq!(c.max_gross, Decimal::TWO);
        let back: IntakeConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn refuses_unknown_and_bad_values() {
        assert!(serde_json::from_str::<IntakeConfig>(r#"{"max_gros": 1}"#).is_err());
        assert!(serde_json::from_str::<IntakeConfig>(r#"{"max_gross": "NaN"}"#).is_err());
        assert!(serde_json::from_str::<IntakeConfig>(r#"{"max_gross": 1e308}"#).is_err());
        assert!(serde_json::from_str::<IntakeConfig>(r#"{"max_gross": true}"#).is_err());
    }
}
