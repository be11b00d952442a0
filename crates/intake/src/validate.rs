//! Rules shared by the JSON and CSV readers, so both formats refuse exactly
//! the same things with the same messages.

use crate::decimal::parse_exact;
use crate::{IntakeConfig, IntakeError};
use chrono::{DateTime, TimeDelta, Utc};
use keel_domain::{Symbol, SymbolError, Target};
use rust_decimal::Decimal;
use std::collections::HashMap;

/// Longest accepted target-set id. Ids end up in client order ids, log lines
/// and file names, so they stay short and free of separators that need quoting.
pub const MAX_ID_LEN: usize = 64;

/// Value shown for a field that is absent.
pub(crate) const MISSING: &str = "(missing)";

/// Refuses input larger than the configured limit, whatever its origin.
pub(crate) fn check_size(source: &str, len: u64, cfg: &IntakeConfig) -> Result<(), IntakeError> {
    if len > cfg.max_file_bytes {
        return Err(IntakeError::new(
            source,
            "size",
            format!("{len} bytes"),
            format!("larger than max_file_bytes ({})", cfg.max_file_bytes),
        ));
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
pub(crate) fn line_col(text: &[u8], at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, col)
}

/// Checks the input is UTF-8 and strips a leading byte-order mark, which
/// some Windows tools write and which carries no meaning.
pub(crate) fn decode_utf8<'a>(source: &str, bytes: &'a [u8]) -> Result<&'a str, IntakeError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.strip_prefix('\u{feff}').unwrap_or(text)),
        Err(e) => {
            let at = e.valid_up_to();
            let len = e.error_len().unwrap_or(bytes.len() - at).clamp(1, 4);
            let shown: Vec<String> = bytes[at..]
                .iter()
                .take(len)
                .map(|b| format!("0x{b:02X}"))
                .collect();
            let (line, col) = line_col(bytes, at);
            Err(IntakeError::new(
                source,
                format!("line {line} column {col} (byte {at})"),
                shown.join(" "),
                "not valid UTF-8: target sets must be UTF-8 text",
            ))
        }
    }
}

/// Validates a target-set id (`field` is `id` for JSON, `--id` for CSV).
pub(crate) fn check_id(source: &str, field: &str, id: &str) -> Result<(), IntakeError> {
    // Shown as a JSON string, like every other string value, whether it came from JSON or --id.
    let head: String = id.chars().take(100).collect();
    let shown = serde_json::to_string(&head).unwrap_or_default();
    if id.is_empty() {
        return Err(IntakeError::new(source, field, shown, "id must not be empty"));
    }
    if id.chars().count() > MAX_ID_LEN {
        return Err(IntakeError::new(
            source,
            field,
            shown,
            format!("id is longer than {MAX_ID_LEN} characters"),
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(IntakeError::new(
            source,
            field,
            shown,
            format!(
                "id contains {:?}; only A-Z, a-z, 0-9, '.', '_', ':' and '-' are allowed",
                bad
            ),
        ));
    }
    Ok(())
}

/// Seconds from a config value; absurdly large limits mean "no limit" rather than overflow.
fn secs(n: i64) -> TimeDelta {
    TimeDelta::try_seconds(n).unwrap_or(TimeDelta::MAX)
}

/// Refuses an `as_of` that is stale or from the future.
pub(crate) fn check_as_of(
    source: &str,
    shown: &str,
    as_of: DateTime<Utc>,
    now: DateTime<Utc>,
    cfg: &IntakeConfig,
) -> Result<(), IntakeError> {
    let age = now.signed_duration_since(as_of);
    if age > secs(cfg.max_target_age_secs) {
        return Err(IntakeError::new(
            source,
            "as_of",
            shown,
            format!(
                "stale target set: computed {}s before now ({}), more than max_target_age_secs ({})",
                age.num_seconds(),
                now.to_rfc3339(),
                cfg.max_target_age_secs
            ),
        ));
    }
    let ahead = as_of.signed_duration_since(now);
    if ahead > secs(cfg.max_future_skew_secs) {
        return Err(IntakeError::new(
            source,
            "as_of",
            shown,
            format!(
                "future-dated target set: {}s after now ({}), more than max_future_skew_secs ({}); check the allocator's clock",
                ahead.num_seconds(),
                now.to_rfc3339(),
                cfg.max_future_skew_secs
            ),
        ));
    }
    Ok(())
}

/// Refuses a `valid_until` that precedes `as_of` or has already passed.
pub(crate) fn check_valid_until(
    source: &str,
    shown: &str,
    valid_until: DateTime<Utc>,
    as_of: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), IntakeError> {
    if valid_until < as_of {
        return Err(IntakeError::new(
            source,
            "valid_until",
            shown,
            format!("valid_until is before as_of ({})", as_of.to_rfc3339()),
        ));
    }
    if valid_until < now {
        return Err(IntakeError::new(
            source,
            "valid_until",
            shown,
            format!(
                "target set expired: valid_until is before now ({})",
                now.to_rfc3339()
            ),
        ));
    }
    Ok(())
}

/// What a near-empty refusal should tell the user to do; CSV has no way to say "liquidate".
#[derive(Debug, Clone, Copy)]
pub(crate) enum Format {
    /// JSON target set.
    Json,
    /// CSV target set.
    Csv,
}

/// Accumulates validated targets and checks the rules that span them.
pub(crate) struct Collector<'a> {
    source: &'a str,
    cfg: &'a IntakeConfig,
    /// Symbol → field of its first occurrence, to name both sides of a duplicate.
    seen: HashMap<Symbol, String>,
    targets: Vec<Target>,
}

impl<'a> Collector<'a> {
    /// An empty collector.
    pub(crate) fn new(source: &'a str, cfg: &'a IntakeConfig) -> Self {
        Self {
            source,
            cfg,
            seen: HashMap::new(),
            targets: Vec::new(),
        }
    }

    /// Refuses a list longer than `max_targets`; `field` names the list.
    pub(crate) fn check_count(&self, field: &str, count: usize) -> Result<(), IntakeError> {
        if count > self.cfg.max_targets {
            return Err(IntakeError::new(
                self.source,
                field,
                format!("{count} targets"),
                format!("more than max_targets ({})", self.cfg.max_targets),
            ));
        }
        Ok(())
    }

    /// Validates a symbol's text.
    pub(crate) fn symbol(&self, field: &str, shown: &str, text: &str) -> Result<Symbol, IntakeError> {
        Symbol::new(text).map_err(|e| {
            let reason = match e {
                SymbolError::Empty => "symbol is empty".to_string(),
                SymbolError::TooLong(_) => {
                    format!(
                        "symbol is longer than {} characters",
                        keel_domain::symbol::MAX_SYMBOL_LEN
                    )
                }
                SymbolError::BadChar(_) => {
                    "not a valid symbol: use 1-12 uppercase letters, digits, '.' or '-', \
                     starting with a letter (lowercase is refused, not folded)"
                        .to_string()
                }
            };
            IntakeError::new(self.source, field, shown, reason)
        })
    }

    /// Parses and range-checks a weight written as `text` (shown as `shown`).
    pub(crate) fn weight(&self, field: &str, shown: &str, text: &str) -> Result<Decimal, IntakeError> {
        let w = parse_exact(text).map_err(|e| IntakeError::new(self.source, field, shown, e.reason()))?;
        if w.abs() > Decimal::ONE {
            return Err(IntakeError::new(
                self.source,
                field,
                shown,
                "weight magnitude above 1: a single position above 100% of equity is refused \
                 (weights are fractions, e.g. 0.05 for 5%)",
            ));
        }
        if w.is_sign_negative() && !w.is_zero() && !self.cfg.allow_short {
            return Err(IntakeError::new(
                self.source,
                field,
                shown,
                "negative weight (short) refused: allow_short is off",
            ));
        }
        Ok(w)
    }

    /// Adds a validated target, refusing a symbol that already appeared.
    pub(crate) fn push(
        &mut self,
        symbol_field: &str,
        shown: &str,
        symbol: Symbol,
        weight: Decimal,
    ) -> Result<(), IntakeError> {
        if let Some(first) = self.seen.get(&symbol) {
            return Err(IntakeError::new(
                self.source,
                symbol_field,
                shown,
                format!(
                    "duplicate symbol: also at {first}; each symbol may appear once (which weight was meant?)"
                ),
            ));
        }
        self.seen.insert(symbol.clone(), symbol_field.to_string());
        self.targets.push(Target { symbol, weight });
        Ok(())
    }

    /// Applies the whole-set rules and returns the targets sorted by symbol.
    pub(crate) fn finish(
        mut self,
        list_field: &str,
        liquidate: bool,
        format: Format,
    ) -> Result<Vec<Target>, IntakeError> {
        let mut gross = Decimal::ZERO;
        for t in &self.targets {
            gross = gross.checked_add(t.weight.abs()).ok_or_else(|| {
                IntakeError::new(self.source, list_field, "(sum)", "sum of weights overflows")
            })?;
        }
        if gross > self.cfg.max_gross {
            return Err(IntakeError::new(
                self.source,
                list_field,
                format!("gross {gross}"),
                format!(
                    "gross exposure (sum of |weight|) {gross} exceeds max_gross ({})",
                    self.cfg.max_gross
                ),
            ));
        }
        // Gross, not net: for long-only sets they are equal, and a market-neutral
        // long/short book (net ≈ 0) is not "near-empty".
        if gross < self.cfg.liquidate_floor && !liquidate {
            let fix = match format {
                Format::Json => "set \"liquidate\": true to liquidate deliberately",
                Format::Csv => {
                    "CSV target sets cannot liquidate: submit a JSON target set with \"liquidate\": true \
                     to liquidate deliberately"
                }
            };
            return Err(IntakeError::new(
                self.source,
                list_field,
                format!("sum {gross} ({} targets)", self.targets.len()),
                format!(
                    "near-empty target set: weights sum to {gross}, below liquidate_floor ({}), \
                     which looks like a crashed allocator; {fix}",
                    self.cfg.liquidate_floor
                ),
            ));
        }
        self.targets.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        Ok(self.targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nxé".as_bytes(), 6), (2, 3));
        assert_eq!(line_col(b"", 0), (1, 1));
        assert_eq!(line_col(b"abc", 99), (1, 4));
    }

    #[test]
    fn ids() {
        for ok in ["a", "2026-11-24-close", "x:y.z_w", &"a".repeat(64)] {
            assert!(check_id("s", "id", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"a".repeat(65), "a\n"] {
            let e = check_id("s", "id", bad).unwrap_err();
            assert_eq!(e.field, "id");
        }
    }
}
