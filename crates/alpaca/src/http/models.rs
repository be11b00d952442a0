//! What Alpaca sends, modelled tolerantly: unknown fields are ignored,
//! optional fields may be absent or null, and an unknown `status` is kept as
//! data ([`AlpacaOrderStatus::Other`]) instead of failing the whole answer.

use crate::common::parse::{de_decimal, de_opt_decimal};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// Every order status Alpaca documents, and whatever else it may send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AlpacaOrderStatus {
    /// `new`
    New,
    /// `partially_filled`
    PartiallyFilled,
    /// `filled`
    Filled,
    /// `done_for_day`
    DoneForDay,
    /// `canceled`
    Canceled,
    /// `expired`
    Expired,
    /// `replaced`
    Replaced,
    /// `pending_cancel`
    PendingCancel,
    /// `pending_replace`
    PendingReplace,
    /// `pending_review`
    PendingReview,
    /// `accepted`
    Accepted,
    /// `pending_new`
    PendingNew,
    /// `accepted_for_bidding`
    AcceptedForBidding,
    /// `stopped`
    Stopped,
    /// `rejected`
    Rejected,
    /// `suspended`
    Suspended,
    /// `calculated`
    Calculated,
    /// `held`
    Held,
    /// A status this adapter does not know (kept verbatim).
    Other(String),
}

impl AlpacaOrderStatus {
    /// Every documented wire name with its variant (FACTS.md's list).
    pub const KNOWN: [(&'static str, AlpacaOrderStatus); 18] = [
        ("new", AlpacaOrderStatus::New),
        ("partially_filled", AlpacaOrderStatus::PartiallyFilled),
        ("filled", AlpacaOrderStatus::Filled),
        ("done_for_day", AlpacaOrderStatus::DoneForDay),
        ("canceled", AlpacaOrderStatus::Canceled),
        ("expired", AlpacaOrderStatus::Expired),
        ("replaced", AlpacaOrderStatus::Replaced),
        ("pending_cancel", AlpacaOrderStatus::PendingCancel),
        ("pending_replace", AlpacaOrderStatus::PendingReplace),
        ("pending_review", AlpacaOrderStatus::PendingReview),
        ("accepted", AlpacaOrderStatus::Accepted),
        ("pending_new", AlpacaOrderStatus::PendingNew),
        ("accepted_for_bidding", AlpacaOrderStatus::AcceptedForBidding),
        ("stopped", AlpacaOrderStatus::Stopped),
        ("rejected", AlpacaOrderStatus::Rejected),
        ("suspended", AlpacaOrderStatus::Suspended),
        ("calculated", AlpacaOrderStatus::Calculated),
        ("held", AlpacaOrderStatus::Held),
    ];

    /// Decodes a wire name; anything unknown is [`AlpacaOrderStatus::Other`].
    pub fn parse(s: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| AlpacaOrderStatus::Other(s.chars().take(64).collect()))
    }

    /// keel's view. Conservative: only `filled`, `canceled`, `expired` and
    /// `rejected` are final; everything else (including an unknown status,
    /// `replaced` and `done_for_day`, which keel never asks for) is a working
    /// order, so keel keeps looking it up and never assumes a fill.
    pub fn to_keel(&self, filled_qty: Decimal) -> keel_domain::OrderStatus {
        use keel_domain::OrderStatus as K;
        match self {
            AlpacaOrderStatus::Filled => K::Filled,
            AlpacaOrderStatus::Canceled => K::Canceled,
            AlpacaOrderStatus::Expired => K::Expired,
            AlpacaOrderStatus::Rejected => K::Rejected,
            _ if filled_qty > Decimal::ZERO => K::PartiallyFilled,
            _ => K::Accepted,
        }
    }
}

impl<'de> Deserialize<'de> for AlpacaOrderStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// An order (`Order` in the Trading API spec); only what keel reads.
#[derive(Debug, Clone, Deserialize)]
pub struct AlpacaOrder {
    /// Alpaca's order id.
    pub id: String,
    /// keel's id.
    #[serde(default)]
    pub client_order_id: String,
    /// Ticker.
    pub symbol: String,
    /// `buy` / `sell`.
    pub side: String,
    /// Ordered quantity (absent for notional orders, which keel never sends).
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub qty: Option<Decimal>,
    /// Cumulative filled quantity.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub filled_qty: Option<Decimal>,
    /// Average fill price so far.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub filled_avg_price: Option<Decimal>,
    /// `market`, `limit`, ...
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The older name of `type`; Alpaca sends both, so they are two fields.
    #[serde(default)]
    pub order_type: Option<String>,
    /// Limit price.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub limit_price: Option<Decimal>,
    /// Status.
    pub status: AlpacaOrderStatus,
    /// When Alpaca received it.
    #[serde(default)]
    pub submitted_at: Option<DateTime<Utc>>,
    /// When it was created.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Last change.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// When it filled completely.
    #[serde(default)]
    pub filled_at: Option<DateTime<Utc>>,
}

impl AlpacaOrder {
    /// Filled quantity, zero when absent.
    pub fn filled(&self) -> Decimal {
        self.filled_qty.unwrap_or_default()
    }

    /// The order type (`type`, else the older `order_type`).
    pub fn order_kind(&self) -> Option<&str> {
        self.kind.as_deref().or(self.order_type.as_deref())
    }
}

/// `GET /v2/account`.
#[derive(Debug, Clone, Deserialize)]
pub struct AlpacaAccount {
    /// Account id.
    pub id: String,
    /// `ACTIVE`, `ONBOARDING`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// Cash.
    #[serde(deserialize_with = "de_decimal")]
    pub cash: Decimal,
    /// Equity.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub equity: Option<Decimal>,
    /// Buying power.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub buying_power: Option<Decimal>,
    /// The account may not trade.
    #[serde(default)]
    pub trading_blocked: Option<bool>,
    /// The account is blocked altogether.
    #[serde(default)]
    pub account_blocked: Option<bool>,
    /// The user suspended trading.
    #[serde(default)]
    pub trade_suspended_by_user: Option<bool>,
    /// Shorting allowed.
    #[serde(default)]
    pub shorting_enabled: Option<bool>,
}

/// `GET /v2/positions` entries.
#[derive(Debug, Clone, Deserialize)]
pub struct AlpacaPosition {
    /// Ticker.
    pub symbol: String,
    /// Signed quantity (negative for a short).
    #[serde(deserialize_with = "de_decimal")]
    pub qty: Decimal,
    /// `long` / `short` (some answers give an unsigned qty and the side).
    #[serde(default)]
    pub side: Option<String>,
    /// Average entry price.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub avg_entry_price: Option<Decimal>,
}

/// `GET /v2/assets/{symbol}` or `/v2/assets` entries.
#[derive(Debug, Clone, Deserialize)]
pub struct AlpacaAsset {
    /// Ticker.
    pub symbol: String,
    /// `active` / `inactive`.
    #[serde(default)]
    pub status: Option<String>,
    /// Orders accepted.
    #[serde(default)]
    pub tradable: bool,
    /// Fractional quantities accepted.
    #[serde(default)]
    pub fractionable: bool,
    /// Short sales accepted.
    #[serde(default)]
    pub shortable: bool,
}

/// `GET /v2/clock`.
#[derive(Debug, Clone, Deserialize)]
pub struct AlpacaClock {
    /// Whether the market is open now.
    pub is_open: bool,
    /// Alpaca's time.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// `GET /v2/account/activities?activity_types=FILL` entries.
#[derive(Debug, Clone, Deserialize)]
pub struct AlpacaFillActivity {
    /// Activity id (`<time>::<uuid>`), also the page token.
    pub id: String,
    /// Which order.
    pub order_id: String,
    /// Shares in this execution.
    #[serde(deserialize_with = "de_decimal")]
    pub qty: Decimal,
    /// Cumulative filled quantity of the order after this execution.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub cum_qty: Option<Decimal>,
    /// Execution price.
    #[serde(deserialize_with = "de_decimal")]
    pub price: Decimal,
    /// When.
    #[serde(default)]
    pub transaction_time: Option<DateTime<Utc>>,
}

/// One latest quote (Market Data API; numbers are JSON numbers).
#[derive(Debug, Clone, Deserialize)]
pub struct DataQuote {
    /// Ask price.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub ap: Option<Decimal>,
    /// Bid price.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub bp: Option<Decimal>,
    /// Time.
    pub t: DateTime<Utc>,
}

/// `GET /v2/stocks/quotes/latest`.
#[derive(Debug, Clone, Deserialize)]
pub struct LatestQuotes {
    /// By symbol.
    #[serde(default)]
    pub quotes: BTreeMap<String, DataQuote>,
}

/// One bar.
#[derive(Debug, Clone, Deserialize)]
pub struct DataBar {
    /// Bar start.
    pub t: DateTime<Utc>,
    /// Close.
    #[serde(deserialize_with = "de_decimal")]
    pub c: Decimal,
    /// Volume.
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub v: Option<Decimal>,
}

/// `GET /v2/stocks/bars`.
#[derive(Debug, Clone, Deserialize)]
pub struct MultiBars {
    /// By symbol (null when nothing matched).
    #[serde(default, deserialize_with = "null_as_default")]
    pub bars: BTreeMap<String, Vec<DataBar>>,
    /// Next page, if any.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Alpaca's error body (`{"code": 40310000, "message": "..."}`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    /// Alpaca's numeric code.
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /v2/orders` body. Quantities and prices go as strings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrderRequest {
    /// Ticker.
    pub symbol: String,
    /// Shares, as decimal text.
    pub qty: String,
    /// `buy` / `sell`.
    pub side: &'static str,
    /// `market` / `limit`.
    #[serde(rename = "type")]
    pub order_type: &'static str,
    /// `day` / `ioc` / `gtc`.
    pub time_in_force: &'static str,
    /// Limit price as decimal text (limit orders only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
    /// keel's id, Alpaca's dedup key.
    pub client_order_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_decodes_and_unknown_ones_are_kept() {
        use keel_domain::OrderStatus as K;
        for (name, v) in AlpacaOrderStatus::KNOWN {
            assert_eq!(AlpacaOrderStatus::parse(name), v);
            let k = v.to_keel(Decimal::ZERO);
            let final_ = matches!(name, "filled" | "canceled" | "expired" | "rejected");
            assert_eq!(k.is_final(), final_, "{name}");
            if name != "filled" {
                assert_ne!(k, K::Filled, "{name} must never read as filled");
            }
        }
        let o = AlpacaOrderStatus::parse("teleported");
        assert_eq!(o, AlpacaOrderStatus::Other("teleported".into()));
        assert_eq!(o.to_keel(Decimal::ZERO), K::Accepted);
        assert_eq!(o.to_keel(Decimal::ONE), K::PartiallyFilled);
    }

    #[test]
    fn an_order_with_unknown_fields_and_a_new_status_parses() {
        let o: AlpacaOrder = serde_json::from_str(
            r#"{"id":"o1","client_order_id":"c1","symbol":"AAPL","side":"buy","qty":"10",
                "filled_qty":"3","filled_avg_price":null,"type":"limit","order_type":"limit","limit_price":"190.12",
                "status":"quantum_pending","brand_new_field":{"x":1},"submitted_at":"2026-12-01T15:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(o.status, AlpacaOrderStatus::Other("quantum_pending".into()));
        assert_eq!(o.filled().to_string(), "3");
        assert_eq!(o.limit_price.unwrap().to_string(), "190.12");
        assert_eq!(o.order_kind(), Some("limit"));
    }

    #[test]
    fn an_account_without_pdt_fields_parses() {
        let a: AlpacaAccount = serde_json::from_str(
            r#"{"id":"a","status":"ACTIVE","cash":"1000.5","equity":"1000.5","buying_power":"2001",
                "trading_blocked":false,"whatever":3}"#,
        )
        .unwrap();
        assert_eq!(a.cash.to_string(), "1000.5");
        assert_eq!(a.account_blocked, None);
    }

    #[test]
    fn market_data_numbers_are_exact() {
        let q: LatestQuotes = serde_json::from_str(
            r#"{"quotes":{"AAPL":{"t":"2026-12-01T15:00:00Z","ap":190.12,"bp":190.1,"as":3,"bs":1,"c":["R"]}}}"#,
        )
        .unwrap();
        assert_eq!(q.quotes["AAPL"].ap.unwrap().to_string(), "190.12");
        let b: MultiBars = serde_json::from_str(r#"{"bars":null,"next_page_token":null}"#).unwrap();
        assert!(b.bars.is_empty());
    }

    #[test]
    fn requests_carry_strings() {
        let r = OrderRequest {
            symbol: "AAPL".into(),
            qty: "10".into(),
            side: "buy",
            order_type: "limit",
            time_in_force: "day",
            limit_price: Some("190.12".into()),
            client_order_id: "c".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["qty"], serde_json::json!("10"));
        assert_eq!(v["type"], serde_json::json!("limit"));
    }
}
