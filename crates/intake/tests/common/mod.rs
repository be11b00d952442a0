//! Helpers shared by the integration tests.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use keel_domain::{Decimal, TargetSet};
use keel_intake::{parse_csv, parse_json, IntakeConfig, IntakeError};
use std::str::FromStr;

/// The instant the example files are valid at (as_of 20:40, valid_until 20:58).
pub fn now() -> DateTime<Utc> {
    ts("2026-11-24T20:45:00Z")
}

pub fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub fn cfg() -> IntakeConfig {
    IntakeConfig::default()
}

pub fn json_ok(text: &str) -> TargetSet {
    parse_json("t.json", text.as_bytes(), &cfg(), now()).unwrap_or_else(|e| panic!("refused: {e}"))
}

pub fn json_err_with(text: &str, cfg: &IntakeConfig) -> IntakeError {
    match parse_json("t.json", text.as_bytes(), cfg, now()) {
        Ok(set) => panic!("accepted: {set:?}\n{text}"),
        Err(e) => e,
    }
}

pub fn json_err(text: &str) -> IntakeError {
    json_err_with(text, &cfg())
}

pub fn csv_ok(text: &str) -> TargetSet {
    parse_csv("t.csv", text.as_bytes(), "set-1", &cfg(), now()).unwrap_or_else(|e| panic!("refused: {e}"))
}

pub fn csv_err(text: &str) -> IntakeError {
    match parse_csv("t.csv", text.as_bytes(), "set-1", &cfg(), now()) {
        Ok(set) => panic!("accepted: {set:?}\n{text}"),
        Err(e) => e,
    }
}

/// Asserts the error names `field` and `value`, and its reason contains `reason`.
#[track_caller]
pub fn assert_refusal(e: &IntakeError, field: &str, value: &str, reason: &str) {
    assert_eq!(e.field, field, "field of: {e}");
    assert_eq!(e.value, value, "value of: {e}");
    assert!(
        e.reason.contains(reason),
        "reason of: {e}\nexpected to contain: {reason}"
    );
    assert_eq!(
        e.to_string(),
        format!("{}: {field} = {value}: {}", e.source, e.reason)
    );
}

/// A valid set around a targets array literal: as_of five minutes before `now()`.
pub fn with_targets(targets: &str) -> String {
    format!(r#"{{"id": "s1", "as_of": "2026-11-24T20:40:00Z", "targets": {targets}}}"#)
}

/// A valid set with one extra top-level member (e.g. `"liquidate": true`).
pub fn with_extra(targets: &str, extra: &str) -> String {
    format!(r#"{{"id": "s1", "as_of": "2026-11-24T20:40:00Z", {extra}, "targets": {targets}}}"#)
}

/// A valid targets array holding `weight` (as written) for MSFT plus 0.5 of AAPL,
/// so the set is not near-empty.
pub fn weight_set(weight: &str) -> String {
    with_targets(&format!(
        r#"[{{"symbol": "AAPL", "weight": 0.5}}, {{"symbol": "MSFT", "weight": {weight}}}]"#
    ))
}
