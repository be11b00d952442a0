//! trade_updates wire messages.

use crate::common::parse::de_opt_decimal;
use crate::http::models::AlpacaOrder;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

/// Every event Alpaca documents on trade_updates, and whatever else it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeEvent {
    /// `new`
    New,
    /// `fill`
    Fill,
    /// `partial_fill`
    PartialFill,
    /// `canceled`
    Canceled,
    /// `expired`
    Expired,
    /// `done_for_day`
    DoneForDay,
    /// `replaced`
    Replaced,
    /// `rejected`
    Rejected,
    /// `pending_new`
    PendingNew,
    /// `stopped`
    Stopped,
    /// `pending_cancel`
    PendingCancel,
    /// `pending_replace`
    PendingReplace,
    /// `calculated`
    Calculated,
    /// `suspended`
    Suspended,
    /// `order_replace_rejected`
    OrderReplaceRejected,
    /// `order_cancel_rejected`
    OrderCancelRejected,
    /// `accepted`
    Accepted,
    /// `restated`
    Restated,
    /// An event this adapter does not know (kept verbatim).
    Other(String),
}

impl TradeEvent {
    /// Every documented wire name (FACTS.md's list plus `accepted`, `restated`).
    pub const KNOWN: [(&'static str, TradeEvent); 18] = [
        ("new", TradeEvent::New),
        ("fill", TradeEvent::Fill),
        ("partial_fill", TradeEvent::PartialFill),
        ("canceled", TradeEvent::Canceled),
        ("expired", TradeEvent::Expired),
        ("done_for_day", TradeEvent::DoneForDay),
        ("replaced", TradeEvent::Replaced),
        ("rejected", TradeEvent::Rejected),
        ("pending_new", TradeEvent::PendingNew),
        ("stopped", TradeEvent::Stopped),
        ("pending_cancel", TradeEvent::PendingCancel),
        ("pending_replace", TradeEvent::PendingReplace),
        ("calculated", TradeEvent::Calculated),
        ("suspended", TradeEvent::Suspended),
        ("order_replace_rejected", TradeEvent::OrderReplaceRejected),
        ("order_cancel_rejected", TradeEvent::OrderCancelRejected),
        ("accepted", TradeEvent::Accepted),
        ("restated", TradeEvent::Restated),
    ];

    /// Decodes a wire name; anything unknown is [`TradeEvent::Other`].
    pub fn parse(s: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| TradeEvent::Other(s.chars().take(64).collect()))
    }

    /// True for the two execution events.
    pub fn is_execution(&self) -> bool {
        matches!(self, TradeEvent::Fill | TradeEvent::PartialFill)
    }
}

impl<'de> Deserialize<'de> for TradeEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(d)?))
    }
}

/// One trade_updates payload.
#[derive(Debug, Clone, Deserialize)]
pub struct TradeUpdate {
    /// What happened.
    pub event: TradeEvent,
    /// The execution's id (fills only).
    #[serde(default)]
    pub execution_id: Option<String>,
    /// The whole order after the event (its `filled_qty` is cumulative).
    pub order: AlpacaOrder,
    /// This execution's price (fills only).
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub price: Option<Decimal>,
    /// This execution's quantity (fills only).
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub qty: Option<Decimal>,
    /// Position after the execution (not used: keel derives positions from fills).
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub position_qty: Option<Decimal>,
    /// When.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// What one frame said.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// `authorization` with `status: authorized`.
    Authorized,
    /// `authorization` with any other status (the action's error).
    Unauthorized(String),
    /// `listening` acknowledgement, with the streams now subscribed.
    Listening(Vec<String>),
    /// A trade update.
    Trade(Box<TradeUpdate>),
    /// A trade_updates frame whose payload could not be read (kept for the log).
    BadTrade(String),
    /// Some other stream or an error message.
    Other(String),
}

/// `{"action":"authenticate","data":{"key_id":K,"secret_key":S}}`.
#[derive(Serialize)]
pub struct Authenticate<'a> {
    /// `authenticate`.
    pub action: &'static str,
    /// Keys.
    pub data: AuthData<'a>,
}

/// The keys.
#[derive(Serialize)]
pub struct AuthData<'a> {
    /// Key id.
    pub key_id: &'a str,
    /// Secret.
    pub secret_key: &'a str,
}

/// `{"action":"listen","data":{"streams":["trade_updates"]}}`.
pub fn listen_message() -> String {
    r#"{"action":"listen","data":{"streams":["trade_updates"]}}"#.to_string()
}
