//! The commented `keel.toml` that `keel init` writes: the real defaults,
//! rendered from [`KeelConfig::default`], each key preceded by its doc comment
//! and allowed values taken from the JSON Schema (the same source the load-time
//! check and `docs/keel.schema.json` use). A key without a doc comment fails a
//! test, so the example cannot drift from the code.

use crate::config::KeelConfig;
use crate::config_schema::doc_at;

/// Keys that are absent by default, shown commented out under their table.
pub const OPTIONAL: &[(&str, &str)] = &[
    (
        "store",
        "# path = \"keel-data/keel.db\"   # SQLite file; default <data_dir>/keel.db",
    ),
    (
        "store",
        "# url = \"postgres://keel@db.internal:5432/keel\"   # PostgreSQL instead of SQLite (keep passwords out of shared files)",
    ),
    (
        "kill_switch",
        "# flag_file = \"/var/run/keel/STOP\"   # engage the kill switch whenever this file exists",
    ),
    (
        "schedule",
        "# inbox = \"keel-data/inbox\"   # watched for target files; default <data_dir>/inbox",
    ),
    (
        "server",
        "# control_token_file = \"/etc/keel/control-token\"   # enables the control API (KEEL_CONTROL_TOKEN wins)",
    ),
    (
        "broker.alpaca",
        "# trading_url = \"https://paper-api.alpaca.markets\"   # default from env (live: https://api.alpaca.markets)",
    ),
    (
        "broker.alpaca",
        "# data_url = \"https://data.alpaca.markets\"   # Market Data API",
    ),
    (
        "broker.alpaca",
        "# stream_url = \"wss://paper-api.alpaca.markets/stream\"   # trade_updates; default from env",
    ),
    (
        "broker.alpaca",
        "# key_id_file = \"/etc/keel/alpaca-key-id\"   # APCA_API_KEY_ID wins",
    ),
    (
        "broker.alpaca",
        "# secret_key_file = \"/etc/keel/alpaca-secret\"   # APCA_API_SECRET_KEY wins",
    ),
];

/// Appended to the example: several accounts in one file.
const ACCOUNTS_EXAMPLE: &str = "
# Several accounts: one [[accounts]] entry each. Every account gets its own
# store (SQLite <data_dir>/<id>/keel.db, or PostgreSQL schema <schema_prefix><id>),
# paper venue and inbox; `keel run` trades them all, one leased worker each;
# other verbs take --account ID. Unset keys come from the top level, and
# paper / guards / kill_switch tables are merged over it key by key.
# [[accounts]]
# id = \"growth\"
# data_dir = \"keel-data/growth\"      # default <data_dir>/<id>
# inbox = \"keel-data/growth/inbox\"   # default <its data_dir>/inbox
# paper = { seed = 7, initial_cash = \"250000\" }
# guards = { max_order_size = { max_notional = \"20000\" } }
";

/// `# ...` lines for a key: its description, then what is allowed (booleans,
/// whose only values are obvious, get no "allowed" line).
fn comment(key: &str) -> Option<String> {
    let (desc, allowed) = doc_at(key)?;
    let desc = desc?;
    let mut out = String::new();
    for l in desc.lines() {
        let l = l.trim_end();
        if l.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str(&format!("# {l}\n"));
        }
    }
    if allowed != "true or false" {
        out.push_str(&format!("# Allowed: {allowed}.\n"));
    }
    Some(out)
}

/// Renders the example; `Err` lists undocumented keys (a test keeps it empty).
pub fn render() -> Result<String, Vec<String>> {
    let body = toml::to_string_pretty(&KeelConfig::default()).map_err(|e| vec![e.to_string()])?;
    let mut out = String::from(
        "# keel.toml — every key with its default. Delete what you do not change.\n\
         # Unknown keys and values outside the allowed range are refused (exit code 2),\n\
         # so a misspelt or nonsensical limit is never used. JSON Schema: docs/keel.schema.json.\n\n",
    );
    let mut table = String::new();
    let mut missing = Vec::new();
    let key_of = |table: &str, k: &str| {
        if table.is_empty() {
            k.to_string()
        } else {
            format!("{table}.{k}")
        }
    };
    for line in body.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            table = t.trim_matches(|c| c == '[' || c == ']').to_string();
            out.push_str(line);
            out.push('\n');
            for (tbl, text) in OPTIONAL {
                if *tbl == table {
                    let k = text.trim_start_matches("# ").split(" = ").next().unwrap_or("");
                    match comment(&key_of(&table, k)) {
                        Some(c) => out.push_str(&c),
                        None => missing.push(key_of(&table, k)),
                    }
                    out.push_str(text);
                    out.push('\n');
                }
            }
            continue;
        }
        if let Some((k, _)) = t.split_once(" = ") {
            match comment(&key_of(&table, k)) {
                Some(c) => out.push_str(&c),
                None => missing.push(key_of(&table, k)),
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(ACCOUNTS_EXAMPLE);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_documented_and_the_example_parses_to_the_defaults() {
        let text = render().unwrap_or_else(|missing| panic!("undocumented config keys: {missing:?}"));
        let parsed: KeelConfig = toml::from_str(&text).expect("the example parses");
        assert_eq!(parsed, KeelConfig::default());
        // Uncommenting the optional keys still parses.
        let uncommented: String = text
            .lines()
            .map(|l| {
                if OPTIONAL.iter().any(|(_, o)| *o == l) {
                    &l[2..]
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        toml::from_str::<KeelConfig>(&uncommented).expect("optional keys parse");
    }

    #[test]
    fn every_number_and_path_has_a_range() {
        // Walk the rendered example: every numeric or path-like key's
        // "Allowed:" line must state a bound (a range, length or pattern).
        let text = render().expect("renders");
        let mut unbounded = Vec::new();
        let mut allowed = String::new();
        for l in text.lines() {
            if let Some(a) = l.strip_prefix("# Allowed: ") {
                allowed = a.to_string();
                continue;
            }
            if l.starts_with('#') || !l.contains(" = ") {
                continue;
            }
            let bounded = allowed.contains(" in ")
                || allowed.contains("at least")
                || allowed.contains("at most")
                || allowed.contains("greater than")
                || allowed.contains(" characters")
                || allowed.contains("matching")
                || allowed.starts_with("one of");
            let needs = allowed.starts_with("a decimal")
                || allowed.starts_with("an integer")
                || allowed.starts_with("a number")
                || allowed.starts_with("a string");
            if needs && !bounded {
                unbounded.push(format!("{l} ({allowed})"));
            }
            allowed.clear();
        }
        // The paper venue's seed is any u64 by design (it only picks a price path).
        unbounded.retain(|l| !l.starts_with("seed = "));
        assert!(
            unbounded.is_empty(),
            "keys without a declared range: {unbounded:#?}"
        );
    }
}
