//! JSON target sets.

use crate::validate::{
    check_as_of, check_id, check_size, check_valid_until, decode_utf8, Collector, Format, MISSING,
};
use crate::{IntakeConfig, IntakeError};
use chrono::{DateTime, Utc};
use keel_domain::TargetSet;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;
use std::io::{self, Write};

/// Top-level fields of a target set; anything else is refused so a typo such
/// as `"liquidiate"` cannot silently drop an instruction.
const TOP_FIELDS: [&str; 5] = ["id", "as_of", "valid_until", "targets", "liquidate"];
/// Fields of one target.
const TARGET_FIELDS: [&str; 2] = ["symbol", "weight"];

/// Parses and validates a JSON target set.
///
/// `source` names the origin in error messages (a path, `<stdin>`, `http`).
/// `now` is the caller's clock, so staleness checks are reproducible.
pub fn parse_json(
    source: &str,
    bytes: &[u8],
    cfg: &IntakeConfig,
    now: DateTime<Utc>,
) -> Result<TargetSet, IntakeError> {
    check_size(source, bytes.len() as u64, cfg)?;
    let text = decode_utf8(source, bytes)?;
    let (value, duplicate) = parse_checked(text).map_err(|e| syntax_error(source, text, &e))?;
    // serde_json keeps the last of repeated keys; refuse instead, since another
    // reader of the same file may keep the first and see a different portfolio.
    if let Some((field, key)) = duplicate {
        return Err(IntakeError::new(
            source,
            field,
            render(&Value::String(key)),
            "duplicate key: a JSON object must not repeat a key (readers disagree on which copy wins)",
        ));
    }
    let Value::Object(top) = value else {
        return Err(IntakeError::new(
            source,
            "(top level)",
            render(&value),
            "a target set must be a JSON object with \"id\", \"as_of\" and \"targets\"",
        ));
    };
    check_known_fields(source, "", &top, &TOP_FIELDS, "a target set has only")?;

    let id = match top.get("id") {
        None => return Err(IntakeError::new(source, "id", MISSING, "id is required")),
        Some(Value::String(s)) => s,
        Some(v) => return Err(IntakeError::new(source, "id", render(v), "id must be a string")),
    };
    check_id(source, "id", id)?;

    let (as_of, as_of_shown) = match top.get("as_of") {
        None => return Err(IntakeError::new(source, "as_of", MISSING, "as_of is required")),
        Some(v) => (timestamp(source, "as_of", v)?, render(v)),
    };
    check_as_of(source, &as_of_shown, as_of, now, cfg)?;

    // Null is accepted as "absent" so a serialised TargetSet reads back unchanged.
    let valid_until = match top.get("valid_until") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let t = timestamp(source, "valid_until", v)?;
            check_valid_until(source, &render(v), t, as_of, now)?;
            Some(t)
        }
    };

    let liquidate = match top.get("liquidate") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(IntakeError::new(
                source,
                "liquidate",
                render(v),
                "liquidate must be true or false (a JSON boolean, not a string or number)",
            ))
        }
    };

    let items = match top.get("targets") {
        None => {
            return Err(IntakeError::new(
                source,
                "targets",
                MISSING,
                "targets is required (an empty array liquidates, together with \"liquidate\": true)",
            ))
        }
        Some(Value::Array(items)) => items,
        Some(v) => {
            return Err(IntakeError::new(
                source,
                "targets",
                render(v),
                "targets must be an array of {\"symbol\", \"weight\"} objects",
            ))
        }
    };

    let mut collector = Collector::new(source, cfg);
    collector.check_count("targets", items.len())?;
    for (i, item) in items.iter().enumerate() {
        let path = format!("targets[{i}]");
        let Value::Object(obj) = item else {
            return Err(IntakeError::new(
                source,
                &path,
                render(item),
                "each target must be an object {\"symbol\": ..., \"weight\": ...}",
            ));
        };
        check_known_fields(source, &path, obj, &TARGET_FIELDS, "a target has only")?;

        let symbol_field = format!("{path}.symbol");
        let (symbol, symbol_shown) = match obj.get("symbol") {
            None => {
                return Err(IntakeError::new(
                    source,
                    &symbol_field,
                    MISSING,
                    "symbol is required",
                ))
            }
            Some(v @ Value::String(s)) => {
                let shown = render(v);
                (collector.symbol(&symbol_field, &shown, s)?, shown)
            }
            Some(v) => {
                return Err(IntakeError::new(
                    source,
                    &symbol_field,
                    render(v),
                    "symbol must be a string",
                ))
            }
        };

        let weight_field = format!("{path}.weight");
        let weight = match obj.get("weight") {
            None => {
                return Err(IntakeError::new(
                    source,
                    &weight_field,
                    MISSING,
                    "weight is required",
                ))
            }
            Some(v @ Value::String(s)) => collector.weight(&weight_field, &render(v), s)?,
            Some(Value::Number(n)) => collector.weight(&weight_field, n.as_str(), n.as_str())?,
            Some(v) => {
                return Err(IntakeError::new(
                    source,
                    &weight_field,
                    render(v),
                    "weight must be a number or a decimal string such as \"0.05\"",
                ))
            }
        };
        collector.push(&symbol_field, &symbol_shown, symbol, weight)?;
    }
    let targets = collector.finish("targets", liquidate, Format::Json)?;

    Ok(TargetSet {
        id: id.clone(),
        as_of,
        valid_until,
        targets,
        liquidate,
    })
}

/// Parses an RFC 3339 timestamp string into UTC.
fn timestamp(source: &str, field: &str, v: &Value) -> Result<DateTime<Utc>, IntakeError> {
    let reason = "must be an RFC 3339 timestamp such as \"2026-11-24T20:40:00Z\"";
    let Value::String(s) = v else {
        return Err(IntakeError::new(
            source,
            field,
            render(v),
            format!("{field} {reason}"),
        ));
    };
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| IntakeError::new(source, field, render(v), format!("{field} {reason} ({e})")))
}

/// Refuses any key of `obj` outside `known`, suggesting the intended one for near misses.
fn check_known_fields(
    source: &str,
    path: &str,
    obj: &Map<String, Value>,
    known: &[&str],
    what: &str,
) -> Result<(), IntakeError> {
    for (key, value) in obj {
        if known.contains(&key.as_str()) {
            continue;
        }
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let hint = known
            .iter()
            .map(|k| (edit_distance(k, key), k))
            .filter(|(d, _)| *d <= 2)
            .min()
            .map(|(_, k)| format!(" (did you mean {k:?}?)"))
            .unwrap_or_default();
        return Err(IntakeError::new(
            source,
            field,
            render(value),
            format!("unknown field{hint}; {what} {}", known.join(", ")),
        ));
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean" hints; inputs here are short keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().take(64).enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A `Write` that keeps only the first `limit` bytes, so rendering a huge
/// value for an error message costs little.
struct Truncating {
    buf: Vec<u8>,
    limit: usize,
    cut: bool,
}

impl Write for Truncating {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.buf.len());
        if data.len() > room {
            self.cut = true;
        }
        if room == 0 {
            return Err(io::Error::other("value rendering truncated"));
        }
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Renders a JSON value compactly as written (strings quoted), cut short;
/// [`IntakeError::new`] does the final escaping and truncation.
fn render(v: &Value) -> String {
    let mut w = Truncating {
        buf: Vec::new(),
        limit: 200,
        cut: false,
    };
    // An error here only means the rendering was cut short, which is the point.
    let _ = serde_json::to_writer(&mut w, v);
    let mut buf = w.buf;
    let valid = match std::str::from_utf8(&buf) {
        Ok(_) => buf.len(),
        Err(e) => e.valid_up_to(),
    };
    buf.truncate(valid);
    let mut s = String::from_utf8(buf).unwrap_or_default();
    if w.cut {
        s.push_str("...");
    }
    s
}

/// Turns a serde_json error into a refusal naming the line, column and text there.
fn syntax_error(source: &str, text: &str, e: &serde_json::Error) -> IntakeError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    let line = text.split('\n').nth(e.line().saturating_sub(1)).unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    let excerpt = excerpt_at(line, e.column().saturating_sub(1));
    let lowered = excerpt.to_ascii_lowercase();
    let (value, reason) = if e.is_eof() {
        (
            "(end of input)".to_string(),
            format!("truncated or incomplete JSON: {msg}"),
        )
    } else if lowered.contains("nan") || lowered.contains("inf") {
        (
            excerpt,
            format!("malformed JSON: {msg}; NaN and Infinity are not JSON numbers and never valid weights"),
        )
    } else {
        (excerpt, format!("malformed JSON: {msg}"))
    };
    IntakeError::new(
        source,
        format!("line {} column {}", e.line(), e.column()),
        value,
        reason,
    )
}

/// Up to 30 characters before and 20 after byte `at` of `line` (serde_json
/// columns count bytes; clamp to character boundaries).
fn excerpt_at(line: &str, at: usize) -> String {
    let mut at = at.min(line.len());
    while !line.is_char_boundary(at) {
        at -= 1;
    }
    let before: Vec<(usize, char)> = line[..at].char_indices().collect();
    let start = before.len().checked_sub(30).map_or(0, |i| before[i].0);
    let end = line[at..]
        .char_indices()
        .nth(20)
        .map_or(line.len(), |(i, _)| at + i);
    line[start..end].to_string()
}

/// Parses `text` once into a [`Value`], noting the first repeated key in any
/// object as (path of the key, key). serde_json alone keeps the last copy of
/// a repeated key silently; a second pass over the text to find one would
/// parse every target set twice.
fn parse_checked(text: &str) -> Result<(Value, Option<(String, String)>), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let found = Checked { path: String::new() }.deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

#[cfg(test)]
fn find_duplicate_key(text: &str) -> Result<Option<(String, String)>, serde_json::Error> {
    parse_checked(text).map(|(_, dup)| dup)
}

/// The key under which serde_json (with `arbitrary_precision`) hands a
/// number's exact text to a visitor.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Builds a JSON value remembering each object's keys.
struct Checked {
    path: String,
}

impl Checked {
    fn child(&self, suffix: &str) -> Self {
        Self {
            path: format!("{}{suffix}", self.path),
        }
    }
}

type CheckedValue = (Value, Option<(String, String)>);

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = CheckedValue;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = CheckedValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok((Value::Bool(v), None))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok((Value::String(v.to_owned()), None))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok((Value::String(v), None))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, None))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut items = Vec::new();
        while let Some((v, r)) = seq.next_element_seed(self.child(&format!("[{}]", items.len())))? {
            found = found.or(r);
            items.push(v);
        }
        Ok((Value::Array(items), found))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut keys = HashSet::new();
        let mut found = None;
        let mut out = Map::new();
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            if first && key == NUMBER_TOKEN {
                // A number, exact text preserved.
                let text: String = map.next_value()?;
                let n: serde_json::Number = text.parse().map_err(serde::de::Error::custom)?;
                return Ok((Value::Number(n), None));
            }
            first = false;
            let child = if self.path.is_empty() {
                Self { path: key.clone() }
            } else {
                self.child(&format!(".{key}"))
            };
            if found.is_none() && keys.contains(&key) {
                found = Some((child.path.clone(), key.clone()));
            }
            keys.insert(key.clone());
            let (v, r) = map.next_value_seed(child)?;
            found = found.or(r);
            out.insert(key, v);
        }
        Ok((Value::Object(out), found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_found_with_path() {
        assert_eq!(find_duplicate_key(r#"{"a":1,"b":[1,{"c":2}]}"#).unwrap(), None);
        assert_eq!(
            find_duplicate_key(r#"{"a":1,"b":[1,{"c":2,"c":3}]}"#).unwrap(),
            Some(("b[1].c".into(), "c".into()))
        );
        assert_eq!(
            find_duplicate_key(r#"{"a":1,"a":1.5e3}"#).unwrap(),
            Some(("a".into(), "a".into()))
        );
    }

    #[test]
    fn one_pass_value_equals_serde_json() {
        for text in [
            r#"{"id":"x","targets":[{"symbol":"AAPL","weight":0.100000000000000000000000000001}],"n":null,"t":true}"#,
            r#"[1, -2, 3.5e-3, "é\u0041", [], {}, {"a":{"b":[{"c":18446744073709551616}]}}]"#,
            r#""just a string""#,
            "12345678901234567890123456789.5",
        ] {
            let (v, dup) = parse_checked(text).unwrap();
            assert_eq!(v, serde_json::from_str::<Value>(text).unwrap(), "{text}");
            assert_eq!(
                v.to_string(),
                serde_json::from_str::<Value>(text).unwrap().to_string()
            );
            assert!(dup.is_none());
        }
        assert!(parse_checked(r#"{"a":1} x"#).is_err());
        assert!(parse_checked(r#"{"a":[1,}"#).is_err());
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("liquidate", "liquidiate"), 1);
        assert_eq!(edit_distance("weight", "wieght"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn render_is_bounded() {
        let big = Value::Array((0..100_000).map(Value::from).collect());
        let s = render(&big);
        assert!(s.len() < 220 && s.ends_with("..."));
        assert_eq!(render(&Value::String("five".into())), "\"five\"");
        let s = render(&Value::String("é".repeat(150)));
        assert!(s.starts_with("\"é") && s.ends_with("é...") && s.chars().count() == 1 + 99 + 3);
        let exact = Value::String("a".repeat(198)); // renders to exactly the 200-byte limit
        assert!(!render(&exact).ends_with("..."));
    }

    #[test]
    fn excerpt_respects_char_boundaries() {
        let line = "ééééééééééééééééééééééééééééééééééé x";
        for at in 0..=line.len() + 3 {
            let _ = excerpt_at(line, at);
        }
        assert_eq!(excerpt_at("abc", 1), "abc");
    }
}
