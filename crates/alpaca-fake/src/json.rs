//! Rendering of Alpaca's entities, field for field as the OpenAPI files say:
//! the Trading API sends quantities and prices as strings, the Market Data
//! API as numbers.

use crate::faults::format_uuid;
use crate::venue::{AssetRules, Fill, Order, Position};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use chrono_tz::America::New_York;
use keel_broker::universe::splitmix;
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// A Trading API decimal: a JSON string without trailing zeros.
pub fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

/// A Market Data API decimal: a JSON number with the decimal's exact digits
/// (serde_json's `arbitrary_precision` keeps them; no f64 on the way).
pub fn num(d: Decimal) -> Value {
    serde_json::from_str::<serde_json::Number>(&d.normalize().to_string())
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(ts(t))).unwrap_or(Value::Null)
}

/// The New York calendar date of an instant (what sessions are named by).
pub fn ny_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&New_York).date_naive()
}

/// Midnight New York of `date`, as Alpaca stamps daily bars.
pub fn ny_midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0)
        .and_then(|n| n.and_local_timezone(New_York).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| date.and_hms_opt(5, 0, 0).unwrap_or_default().and_utc())
}

/// An instant in New York's offset (how Alpaca's clock endpoint writes it).
pub fn ny_ts(t: DateTime<Utc>) -> String {
    t.with_timezone(&New_York)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A stable asset id per symbol.
pub fn asset_id(symbol: &str) -> String {
    let h = fnv(symbol);
    format_uuid(splitmix(h), splitmix(h ^ 0x0061_7373_6574))
}

/// The listing exchange (Exchange enum of the spec).
pub fn exchange(symbol: &str) -> &'static str {
    const NASDAQ: &[&str] = &[
        "AAPL", "ADBE", "AMD", "AMGN", "AMZN", "AVGO", "COST", "CSCO", "GOOG", "GOOGL", "INTC", "INTU",
        "META", "MSFT", "NFLX", "NVDA", "PEP", "QCOM", "TSLA", "TXN", "LIN",
    ];
    if symbol == "SPY" {
        "ARCA"
    } else if NASDAQ.contains(&symbol) {
        "NASDAQ"
    } else {
        "NYSE"
    }
}

pub fn asset_json(symbol: &str, rules: &AssetRules) -> Value {
    json!({
        "id": asset_id(symbol),
        "class": "us_equity",
        "exchange": exchange(symbol),
        "symbol": symbol,
        "name": format!("{symbol} Common Stock (alpaca-fake)"),
        "status": "active",
        "tradable": rules.tradable(symbol),
        "marginable": true,
        "shortable": rules.shortable(symbol),
        "easy_to_borrow": rules.shortable(symbol),
        "fractionable": rules.fractionable(symbol),
        "borrow_status": if rules.shortable(symbol) { "easy_to_borrow" } else { "cannot_borrow" },
    })
}

pub fn order_json(o: &Order) -> Value {
    json!({
        "id": o.id,
        "client_order_id": o.client_order_id,
        "created_at": ts(o.created_at),
        "updated_at": ts(o.updated_at),
        "submitted_at": ts(o.created_at),
        "filled_at": opt_ts(o.filled_at),
        "expired_at": opt_ts(o.expired_at),
        "canceled_at": opt_ts(o.canceled_at),
        "failed_at": opt_ts(o.failed_at),
        "replaced_at": null,
        "replaced_by": null,
        "replaces": null,
        "asset_id": o.asset_id,
        "symbol": o.symbol,
        "asset_class": "us_equity",
        "notional": null,
        "qty": dec(o.qty),
        "filled_qty": dec(o.filled_qty),
        "filled_avg_price": o.avg_price().map(dec),
        "order_class": "",
        "order_type": o.kind.as_str(),
        "type": o.kind.as_str(),
        "side": o.side.as_str(),
        "time_in_force": o.tif.as_str(),
        "limit_price": o.limit_price.map(dec),
        "stop_price": null,
        "status": o.status,
        "extended_hours": o.extended_hours,
        "legs": null,
    })
}

/// A position valued at `current` against the previous close `lastday`.
pub fn position_json(
    symbol: &str,
    p: &Position,
    qty_available: Decimal,
    current: Decimal,
    lastday: Decimal,
) -> Value {
    let market_value = p.qty * current;
    let cost_basis = p.qty * p.avg_entry;
    let pl = market_value - cost_basis;
    let ratio = |a: Decimal, b: Decimal| {
        if b.is_zero() {
            Decimal::ZERO
        } else {
            (a / b.abs()).round_dp(10)
        }
    };
    let intraday = p.qty * (current - lastday);
    json!({
        "asset_id": asset_id(symbol),
        "symbol": symbol,
        "exchange": exchange(symbol),
        "asset_class": "us_equity",
        "asset_marginable": true,
        "avg_entry_price": dec(p.avg_entry.round_dp(4)),
        "qty": dec(p.qty),
        "qty_available": dec(qty_available),
        "side": if p.qty.is_sign_negative() { "short" } else { "long" },
        "market_value": dec(market_value.round_dp(4)),
        "cost_basis": dec(cost_basis.round_dp(4)),
        "unrealized_pl": dec(pl.round_dp(4)),
        "unrealized_plpc": dec(ratio(pl, cost_basis)),
        "unrealized_intraday_pl": dec(intraday.round_dp(4)),
        "unrealized_intraday_plpc": dec(ratio(intraday, p.qty * lastday)),
        "current_price": dec(current),
        "lastday_price": dec(lastday),
        "change_today": dec(ratio(current - lastday, lastday)),
    })
}

pub fn fill_json(f: &Fill) -> Value {
    json!({
        "activity_type": "FILL",
        "id": f.activity_id,
        "transaction_time": ts(f.at),
        "type": if f.leaves_qty.is_zero() { "fill" } else { "partial_fill" },
        "price": dec(f.price),
        "qty": dec(f.qty),
        "side": f.side.as_str(),
        "symbol": f.symbol,
        "leaves_qty": dec(f.leaves_qty),
        "order_id": f.order_id,
        "cum_qty": dec(f.cum_qty),
        "order_status": f.order_status,
    })
}
