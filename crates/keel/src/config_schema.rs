//! keel.toml's JSON Schema and the range check run at load.
//!
//! The schema is derived (`schemars`) from the config structs: each field's
//! doc comment is its description and its `#[schemars(range(..))]`,
//! `length(..)`, `pattern(..)` or `extend("exclusiveMinimum" = ..)` attribute
//! its allowed values. That one declaration is what [`check`] enforces, what
//! `keel init` prints above each key, and what `docs/keel.schema.json` (kept up
//! to date by a test) gives editors, so the three cannot drift.
//!
//! [`check`] runs on the file as written, before serde turns it into structs:
//! a string where a number belongs, a negative count or `nan` is reported with
//! its dotted key, the value and the allowed range, never as a bare serde error.
//! It implements the subset of JSON Schema the derive emits (`$ref`, `anyOf`
//! for options, `oneOf`/`enum` for enums, types, numeric bounds and integer
//! formats, string length and pattern, item counts, unknown keys). Decimals are
//! written as strings or numbers; their bounds apply to both.

use crate::config::KeelConfig;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::str::FromStr;

/// The JSON Schema of keel.toml (draft 2020-12), as committed in `docs/keel.schema.json`.
pub fn schema() -> Value {
    let mut gen = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let root = gen.root_schema_for::<KeelConfig>();
    let mut v = root.to_value();
    if let Value::Object(m) = &mut v {
        m.insert("title".into(), "keel.toml".into());
    }
    v
}

/// The schema as committed: pretty JSON with a trailing newline.
pub fn schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    s.push('\n');
    s
}

/// One value outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `guards.price_collar.max_bps` or `accounts[1].id`.
    pub key: String,
    /// The value as written (TOML syntax).
    pub value: String,
    /// What is allowed, e.g. `a decimal in (0, 1000]`.
    pub allowed: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {}: must be {}", self.key, self.value, self.allowed)
    }
}

/// More problems than this are summarised: a hostile file cannot produce an
/// unbounded message.
const MAX_PROBLEMS: usize = 20;

/// Checks a parsed keel.toml against the schema; every problem found (up to
/// [`MAX_PROBLEMS`]).
pub fn check(doc: &toml::Table) -> Vec<Problem> {
    let root = schema();
    let value = Value::Object(doc.iter().map(|(k, v)| (k.clone(), to_json(v))).collect());
    let mut out = Vec::new();
    walk(&root, &root, &value, "", &mut out);
    out
}

/// [`check`] over a config already built (a merged `[[accounts]]` entry).
pub fn check_value(cfg: &KeelConfig) -> Vec<Problem> {
    match toml::Table::try_from(cfg) {
        Ok(t) => check(&t),
        Err(e) => vec![Problem {
            key: "(config)".into(),
            value: String::new(),
            allowed: format!("serializable: {e}"),
        }],
    }
}

/// A key's documentation and allowed values, from the schema: what `keel
/// init` prints above it. `None` when the path is not a key.
pub fn doc_at(path: &str) -> Option<(Option<String>, String)> {
    let root = schema();
    let s = at_path(&root, path)?;
    let desc = s.get("description").and_then(Value::as_str).map(str::to_string);
    let inner = option_inner(&root, s);
    let desc = desc.or_else(|| {
        inner
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    Some((desc, expected(&root, inner)))
}

fn at_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut s = resolve(root, root);
    for seg in path.split('.') {
        let name = seg.split('[').next().unwrap_or(seg);
        s = option_inner(root, s);
        if s.get("type").and_then(Value::as_str) == Some("array") {
            s = option_inner(root, s.get("items")?);
        }
        s = s.get("properties")?.get(name)?;
    }
    Some(s)
}

/// The allowed values of the key at a dotted path (`accounts[0].id` and
/// `accounts.id` both work), for messages about values serde refused.
pub fn allowed_at(path: &str) -> Option<String> {
    let root = schema();
    let s = option_inner(&root, at_path(&root, path)?);
    Some(expected(&root, s))
}

/// TOML → JSON, keeping floats that JSON cannot hold (`nan`, `inf`) as text
/// so they are reported rather than turned into `null`.
fn to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

fn resolve<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
    // Bounded: a reference cycle in a derived schema would be a bug, not input.
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix("#/$defs/").and_then(|n| root.get("$defs")?.get(n)) {
                Some(next) => s = next,
                None => return s,
            },
            None => return s,
        }
    }
    s
}

fn is_null_schema(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("null")
}

/// `Option<T>`'s schema is `anyOf: [T, null]` (or a type list with "null").
fn option_inner<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    let s = resolve(root, s);
    if let Some(alts) = s.get("anyOf").and_then(Value::as_array) {
        if let Some(a) = alts.iter().find(|a| !is_null_schema(a)) {
            return resolve(root, a);
        }
    }
    s
}

fn types(s: &Value) -> Vec<&str> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match (t, v) {
        ("null", Value::Null) | ("boolean", Value::Bool(_)) | ("object", Value::Object(_)) => true,
        ("array", Value::Array(_)) | ("string", Value::String(_)) | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => !n.to_string().contains(['.', 'e', 'E']),
        _ => false,
    }
}

/// The enum values a schema allows (`enum`, `const`, or `oneOf` of those).
fn enum_values(root: &Value, s: &Value) -> Option<Vec<Value>> {
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return Some(e.clone());
    }
    if let Some(c) = s.get("const") {
        return Some(vec![c.clone()]);
    }
    let alts = s.get("oneOf").and_then(Value::as_array)?;
    let mut out = Vec::new();
    for a in alts {
        out.extend(enum_values(root, resolve(root, a))?);
    }
    Some(out)
}

fn num(v: &Value) -> Option<Decimal> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    let t = text.trim();
    Decimal::from_str(t)
        .ok()
        .or_else(|| Decimal::from_scientific(t).ok())
}

/// Inclusive and exclusive bounds, the integer format's own bounds included.
fn bounds(s: &Value) -> (Option<(Decimal, bool)>, Option<(Decimal, bool)>) {
    let fmt_bounds: (Option<i128>, Option<i128>) = match s.get("format").and_then(Value::as_str) {
        Some("uint8") => (Some(0), Some(u8::MAX.into())),
        Some("uint16") => (Some(0), Some(u16::MAX.into())),
        Some("uint32") => (Some(0), Some(u32::MAX.into())),
        Some("uint64") | Some("uint") => (Some(0), Some(u64::MAX.into())),
        Some("int32") => (Some(i32::MIN.into()), Some(i32::MAX.into())),
        _ => (None, None),
    };
    let get = |k: &str| s.get(k).and_then(num);
    let lo = get("exclusiveMinimum")
        .map(|d| (d, true))
        .or_else(|| get("minimum").map(|d| (d, false)))
        .or_else(|| {
            fmt_bounds
                .0
                .and_then(|i| Decimal::try_from(i).ok())
                .map(|d| (d, false))
        });
    let hi = get("exclusiveMaximum")
        .map(|d| (d, true))
        .or_else(|| get("maximum").map(|d| (d, false)))
        .or_else(|| {
            fmt_bounds
                .1
                .and_then(|i| Decimal::try_from(i).ok())
                .map(|d| (d, false))
        });
    (lo, hi)
}

fn range_text(s: &Value) -> String {
    match bounds(s) {
        (Some((lo, lx)), Some((hi, hx))) => format!(
            "in {}{lo}, {hi}{}",
            if lx { "(" } else { "[" },
            if hx { ")" } else { "]" }
        ),
        (Some((lo, true)), None) => format!("greater than {lo}"),
        (Some((lo, false)), None) => format!("at least {lo}"),
        (None, Some((hi, true))) => format!("less than {hi}"),
        (None, Some((hi, false))) => format!("at most {hi}"),
        (None, None) => String::new(),
    }
}

/// What a schema allows, in words: "an integer in [1, 86400]".
fn expected(root: &Value, s: &Value) -> String {
    if let Some(vals) = enum_values(root, s) {
        let list: Vec<String> = vals.iter().map(Value::to_string).collect();
        return format!("one of {}", list.join(", "));
    }
    let ts = types(s);
    let is = |t| ts.contains(&t);
    let mut out = if is("number") && is("string") {
        "a decimal (a number or a string such as \"0.05\")".to_string()
    } else if is("integer") {
        "an integer".to_string()
    } else if is("number") {
        "a number".to_string()
    } else if is("boolean") {
        "true or false".to_string()
    } else if is("string") {
        let mut t = "a string".to_string();
        let lmin = s.get("minLength").and_then(Value::as_u64);
        let lmax = s.get("maxLength").and_then(Value::as_u64);
        match (lmin, lmax) {
            (Some(a), Some(b)) => {
                let _ = write!(t, " of {a} to {b} characters");
            }
            (Some(a), None) => {
                let _ = write!(t, " of at least {a} characters");
            }
            (None, Some(b)) => {
                let _ = write!(t, " of at most {b} characters");
            }
            (None, None) => {}
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            let _ = write!(t, " matching {p}");
        }
        t
    } else if is("array") {
        "a list".to_string()
    } else if is("object") {
        "a table".to_string()
    } else {
        "a value".to_string()
    };
    if is("number") || is("integer") {
        let r = range_text(s);
        if !r.is_empty() {
            out.push(' ');
            out.push_str(&r);
        }
    }
    out
}

/// A value as the user wrote it (TOML-ish), bounded in length.
fn shown(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "{ ... }".to_string(),
        Value::Array(a) => format!("[ {} items ]", a.len()),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(root: &Value, schema: &Value, v: &Value, path: &str, out: &mut Vec<Problem>) {
    if out.len() >= MAX_PROBLEMS {
        return;
    }
    let s = resolve(root, schema);
    let mut push = |allowed: String| {
        out.push(Problem {
            key: path.to_string(),
            value: shown(v),
            allowed,
        })
    };
    if let Some(alts) = s.get("anyOf").and_then(Value::as_array) {
        if v.is_null() && alts.iter().any(is_null_schema) {
            return;
        }
        if let Some(a) = alts.iter().find(|a| !is_null_schema(a)) {
            walk(root, a, v, path, out);
        }
        return;
    }
    if let Some(vals) = enum_values(root, s) {
        if !vals.contains(v) {
            push(expected(root, s));
        }
        return;
    }
    let ts = types(s);
    if !ts.is_empty() && !ts.iter().any(|t| type_matches(t, v)) {
        push(expected(root, s));
        return;
    }
    match v {
        Value::Object(m) => walk_object(root, s, m, path, out),
        Value::Array(items) => {
            let n = items.len() as u64;
            let too_few = s.get("minItems").and_then(Value::as_u64).is_some_and(|k| n < k);
            let too_many = s.get("maxItems").and_then(Value::as_u64).is_some_and(|k| n > k);
            if too_few || too_many {
                let lo = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                let hi = s.get("maxItems").and_then(Value::as_u64).map(|h| h.to_string());
                push(format!(
                    "a list of {lo} to {} items",
                    hi.unwrap_or_else(|| "any number of".into())
                ));
                return;
            }
            if let Some(item) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    walk(root, item, it, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Number(_) => check_number(s, v, &mut push, root),
        Value::String(text) => {
            if ts.contains(&"number") {
                // A decimal written as a string.
                if num(v).is_none() {
                    push(expected(root, s));
                    return;
                }
                check_number(s, v, &mut push, root);
                return;
            }
            let len = text.chars().count() as u64;
            let short = s
                .get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|k| len < k);
            let long = s
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|k| len > k);
            let mismatch = s
                .get("pattern")
                .and_then(Value::as_str)
                .is_some_and(|p| regex::Regex::new(p).map(|re| !re.is_match(text)).unwrap_or(true));
            if short || long || mismatch {
                push(expected(root, s));
            }
        }
        _ => {}
    }
}

fn check_number(s: &Value, v: &Value, push: &mut impl FnMut(String), root: &Value) {
    let Some(d) = num(v) else {
        // Beyond what a decimal holds (e.g. 1e300): outside every range keel has.
        push(expected(root, s));
        return;
    };
    let (lo, hi) = bounds(s);
    let low = lo.is_some_and(|(b, ex)| if ex { d <= b } else { d < b });
    let high = hi.is_some_and(|(b, ex)| if ex { d >= b } else { d > b });
    if low || high {
        push(expected(root, s));
    }
}

fn walk_object(root: &Value, s: &Value, m: &Map<String, Value>, path: &str, out: &mut Vec<Problem>) {
    let empty = Map::new();
    let props = s.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let closed = s.get("additionalProperties") == Some(&Value::Bool(false));
    for (k, child_v) in m {
        if out.len() >= MAX_PROBLEMS {
            return;
        }
        match props.get(k) {
            Some(ps) => walk(root, ps, child_v, &child(path, k), out),
            None if closed => {
                let known: Vec<&str> = props.keys().map(String::as_str).collect();
                out.push(Problem {
                    key: child(path, k),
                    value: shown(child_v),
                    allowed: format!("absent: unknown key (known here: {})", known.join(", ")),
                });
            }
            None => {}
        }
    }
    if let Some(req) = s.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if !m.contains_key(r) {
                out.push(Problem {
                    key: child(path, r),
                    value: "(missing)".into(),
                    allowed: format!(
                        "set: it is required ({})",
                        expected(root, resolve(root, &props[r]))
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let t: toml::Table = toml::from_str(text).expect("toml");
        check(&t).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn schema_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/keel.schema.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == schema_text(),
            "docs/keel.schema.json is stale: run `cargo run -p keel -- init --schema > docs/keel.schema.json`"
        );
    }

    #[test]
    fn defaults_pass() {
        let t: toml::Table = toml::from_str(&toml::to_string(&KeelConfig::default()).unwrap()).unwrap();
        assert_eq!(check(&t), vec![]);
    }

    #[test]
    fn names_key_value_and_range() {
        assert_eq!(
            problems("[guards.price_collar]\nmax_bps = \"99999\"\n"),
            vec!["guards.price_collar.max_bps = \"99999\": must be a decimal (a number or a string such as \"0.05\") in (0, 1000]"]
        );
        assert_eq!(
            problems("[worker]\nstale_order_secs = 9223372036854775807\n"),
            vec!["worker.stale_order_secs = 9223372036854775807: must be an integer in [1, 604800]"]
        );
        assert_eq!(
            problems("[kill_switch]\ndaily_loss_limit = 5\n"),
            vec!["kill_switch.daily_loss_limit = 5: must be a decimal (a number or a string such as \"0.05\") in (0, 1)"]
        );
        let p = problems("[worker]\nmax_attempts = \"three\"\n");
        assert_eq!(
            p,
            vec!["worker.max_attempts = \"three\": must be an integer in [1, 100]"]
        );
        let p = problems("[paper]\npartial_fill_prob = nan\n");
        assert_eq!(
            p,
            vec!["paper.partial_fill_prob = \"NaN\": must be a number in [0, 1]"]
        );
        let p = problems("[planner]\norder_type = \"stop\"\n");
        assert_eq!(
            p,
            vec!["planner.order_type = \"stop\": must be one of \"market\", \"limit\""]
        );
    }

    #[test]
    fn account_overrides_and_ids_are_checked() {
        let p = problems("[[accounts]]\nid = \"a b\"\n[[accounts]]\nid = \"ok\"\nguards = { cycle_limits = { max_orders = 0 } }\n");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("accounts[0].id = \"a b\": must be a string"),
            "{p:?}"
        );
        assert_eq!(
            p[1],
            "accounts[1].guards.cycle_limits.max_orders = 0: must be an integer in [1, 100000]"
        );
    }

    #[test]
    fn allowed_at_paths() {
        assert_eq!(
            allowed_at("worker.max_attempts").as_deref(),
            Some("an integer in [1, 100]")
        );
        assert_eq!(
            allowed_at("accounts[3].guards.cycle_limits.max_orders").as_deref(),
            Some("an integer in [1, 100000]")
        );
        assert_eq!(allowed_at("nope.x"), None);
    }

    #[test]
    fn problem_count_is_bounded() {
        let mut text = String::from("[worker]\n");
        for i in 0..100 {
            text.push_str(&format!("bogus{i} = 1\n"));
        }
        assert_eq!(problems(&text).len(), MAX_PROBLEMS);
    }
}
