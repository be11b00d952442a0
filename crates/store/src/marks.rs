//! The recorded prices keel values positions at when it holds no quote
//! (`keel status`, the dashboard): rule 2 of [`keel_domain::valuation`],
//! read from the store in one place so every reader marks alike.

use crate::{EodRow, FillFilter, Store, StoreError};
use chrono::{DateTime, Utc};
use keel_domain::valuation::{latest_recorded, Mark};
use keel_domain::{Decimal, Symbol};
use std::collections::BTreeMap;

/// One EOD snapshot's closes by symbol. Parsed from the snapshot JSON the
/// store keeps (`positions: [[symbol, qty, price], ...]`); anything that does
/// not parse is skipped rather than failing the reader.
pub fn eod_prices(snapshot: &serde_json::Value) -> BTreeMap<String, Decimal> {
    let mut out = BTreeMap::new();
    let Some(rows) = snapshot.get("positions").and_then(|p| p.as_array()) else {
        return out;
    };
    for row in rows {
        let Some(cols) = row.as_array() else { continue };
        let (Some(sym), Some(price)) = (
            cols.first().and_then(|v| v.as_str()),
            cols.get(2).and_then(json_decimal),
        ) else {
            continue;
        };
        out.insert(sym.to_string(), price);
    }
    out
}

/// A decimal from JSON written as a string (keel's convention) or a number.
pub fn json_decimal(v: &serde_json::Value) -> Option<Decimal> {
    match v {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

/// The snapshot time recorded in an EOD row's JSON.
pub fn eod_time(row: &EodRow) -> Option<DateTime<Utc>> {
    row.snapshot
        .get("at")
        .and_then(|v| v.as_str())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Each symbol's recorded mark: its latest fill or its close in the latest
/// EOD snapshot (`eods` oldest first, as [`Store::eod_snapshots`] returns
/// them), whichever is newer. Symbols with neither are absent.
pub async fn recorded_marks(
    store: &dyn Store,
    symbols: impl IntoIterator<Item = &Symbol>,
    eods: &[EodRow],
) -> Result<BTreeMap<Symbol, Mark>, StoreError> {
    let last_eod = eods.last().map(|r| (eod_prices(&r.snapshot), eod_time(r)));
    let mut marks = BTreeMap::new();
    for sym in symbols {
        let fill = store
            .fills(&FillFilter {
                symbol: Some(sym.clone()),
                limit: Some(1),
                ..FillFilter::default()
            })
            .await?
            .into_iter()
            .next()
            .map(|f| (f.price, f.at));
        let eod = last_eod.as_ref().and_then(|(prices, at)| {
            let p = prices.get(sym.as_str())?;
            Some((*p, (*at)?))
        });
        if let Some(m) = latest_recorded(fill, eod) {
            marks.insert(sym.clone(), m);
        }
    }
    Ok(marks)
}
