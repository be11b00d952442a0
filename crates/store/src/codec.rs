//! How values are written as TEXT and how audit rows are hashed.
//!
//! Everything the store persists is INTEGER or TEXT so that SQLite and
//! PostgreSQL hold byte-identical data and the same SQL runs on both:
//! decimals as their exact string form (invariant 7: never REAL), times as
//! RFC 3339 UTC with a fixed nine-digit fraction so that comparing the strings
//! compares the instants.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use keel_domain::{KillSource, OrderType, Side, TimeInForce};
use rust_decimal::Decimal;
use sha2::digest::Update;
use sha2::{Digest, Sha256};
use std::str::FromStr;

/// `prev_hash` of the first audit row: 64 hex zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain-separation tag hashed before every row, so a keel audit hash can never
/// be confused with a hash of some other structure that happens to share bytes.
const HASH_TAG: &[u8] = b"keel-audit-v1";

/// The hash of one audit row, as lowercase hex.
///
/// Canonical encoding (version 1): SHA-256 over
///
/// ```text
/// "keel-audit-v1"
/// || field(prev_hash) || be_u64(seq) || field(at) || field(kind) || field(event_id) || field(payload)
/// where field(s) = be_u64(byte length of s) || UTF-8 bytes of s
/// ```
///
/// Every variable-length field is length-prefixed so that no two different
/// rows share an encoding (moving a byte from `kind` into `event_id` changes
/// the hash). `at` and `payload` are hashed exactly as stored, so an external
/// verifier needs nothing but the table.
pub fn chain_hash(prev_hash: &str, seq: u64, at: &str, kind: &str, event_id: &str, payload: &str) -> String {
    hex::encode(chain_digest(prev_hash, seq, at, kind, event_id, payload))
}

/// [`chain_hash`] as bytes (verification compares these, not hex strings).
pub(crate) fn chain_digest(
    prev_hash: &str,
    seq: u64,
    at: &str,
    kind: &str,
    event_id: &str,
    payload: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    feed_row(&mut h, HASH_TAG, prev_hash, seq, at, kind, event_id, payload);
    h.finalize().into()
}

/// Writes one audit row's canonical encoding, after its version's `tag`,
/// into a hash or a MAC (version 1 hashes it, version 2 MACs it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn feed_row(
    h: &mut dyn Update,
    tag: &[u8],
    prev_hash: &str,
    seq: u64,
    at: &str,
    kind: &str,
    event_id: &str,
    payload: &str,
) {
    h.update(tag);
    field(h, prev_hash.as_bytes());
    h.update(&seq.to_be_bytes());
    for s in [at, kind, event_id, payload] {
        field(h, s.as_bytes());
    }
}

/// Writes one length-prefixed field (every keel digest encodes fields so).
pub(crate) fn field(h: &mut dyn Update, s: &[u8]) {
    h.update(&(s.len() as u64).to_be_bytes());
    h.update(s);
}

/// Formats an instant as stored: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`. The fixed
/// width (always nine fraction digits, always `Z`) makes string order equal
/// time order, which the queries rely on.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses a stored instant.
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

/// Formats a calendar date as stored (`YYYY-MM-DD`).
pub(crate) fn fmt_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Parses a stored calendar date.
pub(crate) fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("{s:?} is not a YYYY-MM-DD date: {e}"))
}

/// Formats a decimal exactly, keeping its scale (`100.50` stays `100.50`).
/// Values the store computes (cash, averages) are normalised before they get
/// here, so a long run of additions does not grow the stored scale.
pub(crate) fn fmt_dec(d: Decimal) -> String {
    d.to_string()
}

/// Parses a stored decimal.
pub(crate) fn parse_dec(s: &str) -> Result<Decimal, String> {
    Decimal::from_str(s).map_err(|e| format!("{s:?} is not a decimal: {e}"))
}

/// Stored name of a side (`buy`/`sell`).
pub(crate) fn side_str(s: Side) -> &'static str {
    s.as_str()
}

/// Parses a stored side.
pub(crate) fn parse_side(s: &str) -> Result<Side, String> {
    match s {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        _ => Err(format!("{s:?} is not buy/sell")),
    }
}

/// Stored name of an order type; the same spelling as its serde form.
pub(crate) fn order_type_str(t: OrderType) -> &'static str {
    match t {
        OrderType::Market => "market",
        OrderType::Limit => "limit",
    }
}

/// Parses a stored order type.
pub(crate) fn parse_order_type(s: &str) -> Result<OrderType, String> {
    match s {
        "market" => Ok(OrderType::Market),
        "limit" => Ok(OrderType::Limit),
        _ => Err(format!("{s:?} is not market/limit")),
    }
}

/// Stored name of a time in force; the same spelling as its serde form.
pub(crate) fn tif_str(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Day => "day",
        TimeInForce::Ioc => "ioc",
        TimeInForce::Gtc => "gtc",
    }
}

/// Parses a stored time in force.
pub(crate) fn parse_tif(s: &str) -> Result<TimeInForce, String> {
    match s {
        "day" => Ok(TimeInForce::Day),
        "ioc" => Ok(TimeInForce::Ioc),
        "gtc" => Ok(TimeInForce::Gtc),
        _ => Err(format!("{s:?} is not day/ioc/gtc")),
    }
}

/// Stored name of a kill-switch source; the same spelling as its serde form.
pub(crate) fn kill_source_str(k: KillSource) -> &'static str {
    match k {
        KillSource::Cli => "cli",
        KillSource::Http => "http",
        KillSource::FlagFile => "flag_file",
        KillSource::Automatic => "automatic",
    }
}

/// Parses a stored kill-switch source.
pub(crate) fn parse_kill_source(s: &str) -> Result<KillSource, String> {
    match s {
        "cli" => Ok(KillSource::Cli),
        "http" => Ok(KillSource::Http),
        "flag_file" => Ok(KillSource::FlagFile),
        "automatic" => Ok(KillSource::Automatic),
        _ => Err(format!("{s:?} is not a kill-switch source")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_format_is_fixed_width_and_ordered() {
        let a = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().map(fmt_time);
        let b = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .map(|t| fmt_time(t + chrono::Duration::nanoseconds(1)));
        assert_eq!(a.as_deref(), Some("2026-01-02T03:04:05.000000000Z"));
        assert_eq!(b.as_deref(), Some("2026-01-02T03:04:05.000000001Z"));
        assert!(a < b);
        let back = a.as_deref().map(parse_time);
        assert_eq!(
            back.map(|r| r.map(fmt_time)),
            Some(Ok("2026-01-02T03:04:05.000000000Z".to_string()))
        );
    }

    #[test]
    fn hash_fields_are_unambiguous() {
        let h = |k: &str, e: &str| chain_hash(GENESIS_HASH, 1, "t", k, e, "{}");
        assert_ne!(h("ab", "c"), h("a", "bc"));
        assert_ne!(
            chain_hash(GENESIS_HASH, 1, "t", "k", "e", "{}"),
            chain_hash(GENESIS_HASH, 2, "t", "k", "e", "{}")
        );
        assert_eq!(h("a", "b").len(), 64);
    }
}
