//! The venue's state and matching rules: account, positions, orders, fills.
//!
//! Everything here is synchronous and runs under one mutex, so a submission,
//! a tick and a read always see one consistent state; the HTTP and stream
//! layers only render what this module decides.

use crate::faults::Rng;
use crate::json::{dec, order_json, ts};
use chrono::{DateTime, Utc};
use keel_broker::universe;
use keel_domain::{Quote, Symbol};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tokio::sync::broadcast;

/// An error answered to the client, shaped like Alpaca's `{"code","message"}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: u64,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: u64, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, 40010001, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, 40310000, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, 40410000, message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Market,
    Limit,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Market => "market",
            Kind::Limit => "limit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tif {
    Day,
    Gtc,
    Ioc,
    Fok,
}

impl Tif {
    pub fn as_str(self) -> &'static str {
        match self {
            Tif::Day => "day",
            Tif::Gtc => "gtc",
            Tif::Ioc => "ioc",
            Tif::Fok => "fok",
        }
    }
}

/// One order as the venue holds it.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub asset_id: String,
    pub side: Side,
    pub kind: Kind,
    pub tif: Tif,
    pub qty: Decimal,
    pub filled_qty: Decimal,
    /// Sum of fill qty × price, for the average fill price.
    pub filled_notional: Decimal,
    pub limit_price: Option<Decimal>,
    pub status: &'static str,
    pub extended_hours: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub filled_at: Option<DateTime<Utc>>,
    pub expired_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    /// When a day order expires (the close of its session).
    pub expires_at: Option<DateTime<Utc>>,
    /// When a `pending_cancel` order becomes `canceled`.
    pub cancel_at: Option<DateTime<Utc>>,
    /// Accepted, but to be rejected by the "exchange" on the next pass
    /// (the `reject_after_accept` fault).
    pub doomed: bool,
}

impl Order {
    pub fn remaining(&self) -> Decimal {
        (self.qty - self.filled_qty).max(Decimal::ZERO)
    }
    pub fn is_open(&self) -> bool {
        matches!(
            self.status,
            "accepted" | "new" | "partially_filled" | "pending_new" | "pending_cancel"
        )
    }
    pub fn avg_price(&self) -> Option<Decimal> {
        if self.filled_qty.is_zero() {
            None
        } else {
            Some((self.filled_notional / self.filled_qty).round_dp(4).normalize())
        }
    }
}

/// One execution, as `GET /v2/account/activities/FILL` reports it.
#[derive(Debug, Clone)]
pub struct Fill {
    pub activity_id: String,
    pub execution_id: String,
    pub order_id: String,
    pub symbol: String,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub at: DateTime<Utc>,
    pub cum_qty: Decimal,
    pub leaves_qty: Decimal,
    pub order_status: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct Position {
    pub qty: Decimal,
    pub avg_entry: Decimal,
}

/// Static facts of the assets the venue lists (overridable from flags).
#[derive(Debug, Clone, Default)]
pub struct AssetRules {
    pub non_fractionable: BTreeSet<String>,
    pub non_shortable: BTreeSet<String>,
    pub non_tradable: BTreeSet<String>,
}

impl AssetRules {
    pub fn fractionable(&self, s: &str) -> bool {
        !self.non_fractionable.contains(s)
    }
    pub fn shortable(&self, s: &str) -> bool {
        !self.non_shortable.contains(s)
    }
    pub fn tradable(&self, s: &str) -> bool {
        !self.non_tradable.contains(s)
    }
}

/// Every `POST /v2/orders` received, whatever its outcome.
#[derive(Debug, Clone)]
pub struct Submission {
    pub client_order_id: Option<String>,
    pub at: DateTime<Utc>,
    pub status: u16,
}

/// A parsed `POST /v2/orders` body.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub symbol: String,
    pub qty: Decimal,
    pub side: Side,
    pub kind: Kind,
    pub tif: Tif,
    pub limit_price: Option<Decimal>,
    pub client_order_id: Option<String>,
    pub extended_hours: bool,
    /// Set by the `reject_after_accept` fault: accept, then reject.
    pub doomed: bool,
}

pub struct VenueConfig {
    pub seed: u64,
    pub cash: Decimal,
    pub shorting: bool,
    pub partial_fill_prob: f64,
    /// How long a cancel stays `pending_cancel` (during which the order can
    /// still fill); zero cancels at once.
    pub cancel_delay: chrono::Duration,
    pub assets: AssetRules,
}

pub struct Venue {
    pub cfg: VenueConfig,
    pub account_id: String,
    pub created_at: DateTime<Utc>,
    pub cash: Decimal,
    pub positions: BTreeMap<String, Position>,
    pub orders: Vec<Order>,
    by_id: HashMap<String, usize>,
    by_cid: HashMap<String, usize>,
    pub fills: Vec<Fill>,
    pub submissions: Vec<Submission>,
    pub trading_blocked: bool,
    pub account_blocked: bool,
    rng: Rng,
    events: broadcast::Sender<String>,
}

/// Longest accepted client order id (Alpaca's current limit).
pub const MAX_CLIENT_ORDER_ID: usize = 128;

impl Venue {
    pub fn new(cfg: VenueConfig, now: DateTime<Utc>, events: broadcast::Sender<String>) -> Self {
        let mut rng = Rng::new(cfg.seed ^ 0x0076_656e_7565);
        let account_id = rng.uuid();
        Venue {
            cash: cfg.cash,
            cfg,
            account_id,
            created_at: now,
            positions: BTreeMap::new(),
            orders: Vec::new(),
            by_id: HashMap::new(),
            by_cid: HashMap::new(),
            fills: Vec::new(),
            submissions: Vec::new(),
            trading_blocked: false,
            account_blocked: false,
            rng,
            events,
        }
    }

    pub fn quote(&self, symbol: &str, now: DateTime<Utc>) -> Option<Quote> {
        let sym = Symbol::new(symbol).ok()?;
        universe::quote(self.cfg.seed, &sym, now)
    }

    pub fn order_by_id(&self, id: &str) -> Option<&Order> {
        self.by_id.get(id).and_then(|&i| self.orders.get(i))
    }

    pub fn order_by_cid(&self, cid: &str) -> Option<&Order> {
        self.by_cid.get(cid).and_then(|&i| self.orders.get(i))
    }

    pub fn record_submission(&mut self, cid: Option<String>, at: DateTime<Utc>, status: u16) {
        self.submissions.push(Submission {
            client_order_id: cid,
            at,
            status,
        });
    }

    /// The dollars reserved by open buy orders (at their limit, or the ask).
    fn reserved_for_buys(&self, now: DateTime<Utc>) -> Decimal {
        self.orders
            .iter()
            .filter(|o| o.is_open() && o.side == Side::Buy)
            .map(|o| o.remaining() * self.reference_price(o, now))
            .sum()
    }

    fn reference_price(&self, o: &Order, now: DateTime<Utc>) -> Decimal {
        match o.limit_price {
            Some(p) => p,
            None => self.quote(&o.symbol, now).map(|q| q.ask).unwrap_or(Decimal::ZERO),
        }
    }

    pub fn buying_power(&self, now: DateTime<Utc>) -> Decimal {
        (self.cash - self.reserved_for_buys(now)).max(Decimal::ZERO)
    }

    /// Long and short market value at the current quotes' last price.
    pub fn market_values(&self, now: DateTime<Utc>) -> (Decimal, Decimal) {
        let mut long = Decimal::ZERO;
        let mut short = Decimal::ZERO;
        for (sym, p) in &self.positions {
            let px = self.quote(sym, now).map(|q| q.last).unwrap_or(p.avg_entry);
            let v = p.qty * px;
            if p.qty.is_sign_negative() {
                short += v;
            } else {
                long += v;
            }
        }
        (long, short)
    }

    /// Equity at the previous session's close (today's cash, yesterday's marks).
    fn last_equity(&self, now: DateTime<Utc>) -> Decimal {
        let today = crate::json::ny_date(now);
        let mut eq = self.cash;
        for (sym, p) in &self.positions {
            let px = Symbol::new(sym)
                .ok()
                .and_then(|s| universe::daily_closes(self.cfg.seed, &s, today, 1).pop())
                .unwrap_or(p.avg_entry);
            eq += p.qty * px;
        }
        eq
    }

    pub fn account_json(&self, now: DateTime<Utc>) -> Value {
        let (long, short) = self.market_values(now);
        let equity = self.cash + long + short;
        let bp = self.buying_power(now);
        json!({
            "id": self.account_id,
            "account_number": format!("PA{}", &self.account_id[..8].to_uppercase()),
            "status": "ACTIVE",
            "currency": "USD",
            "cash": dec(self.cash),
            "portfolio_value": dec(equity),
            "trade_suspended_by_user": false,
            "trading_blocked": self.trading_blocked,
            "transfers_blocked": false,
            "account_blocked": self.account_blocked,
            "created_at": ts(self.created_at),
            "shorting_enabled": self.cfg.shorting,
            "long_market_value": dec(long),
            "short_market_value": dec(short),
            "equity": dec(equity),
            "last_equity": dec(self.last_equity(now)),
            "multiplier": "1",
            "buying_power": dec(bp),
            "regt_buying_power": dec(bp),
            "daytrading_buying_power": "0",
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
        })
    }

    /// Validates and accepts an order; the fill happens on a later tick.
    pub fn submit(&mut self, req: NewOrder, now: DateTime<Utc>) -> Result<Order, ApiError> {
        if let Some(cid) = &req.client_order_id {
            if cid.is_empty() || cid.chars().count() > MAX_CLIENT_ORDER_ID {
                return Err(ApiError::unprocessable(format!(
                    "client_order_id must be 1 to {MAX_CLIENT_ORDER_ID} characters"
                )));
            }
            if self.by_cid.contains_key(cid) {
                return Err(ApiError::unprocessable("client_order_id must be unique"));
            }
        }
        if self.account_blocked || self.trading_blocked {
            return Err(ApiError::forbidden("account is not authorized to trade"));
        }
        let symbol = req.symbol.to_uppercase();
        let Some(quote) = self.quote(&symbol, now) else {
            return Err(ApiError::unprocessable(format!(
                "asset \"{}\" not found",
                req.symbol
            )));
        };
        let rules = &self.cfg.assets;
        if !rules.tradable(&symbol) {
            return Err(ApiError::unprocessable(format!("asset {symbol} is not tradable")));
        }
        if req.qty <= Decimal::ZERO {
            return Err(ApiError::unprocessable("qty must be > 0"));
        }
        if req.qty.normalize().scale() > 9 {
            return Err(ApiError::unprocessable("qty must have at most 9 decimal places"));
        }
        let fractional = !req.qty.fract().is_zero();
        if fractional && !rules.fractionable(&symbol) {
            return Err(ApiError::unprocessable(format!(
                "requested asset {symbol} is not fractionable"
            )));
        }
        match (req.kind, req.limit_price) {
            (Kind::Limit, None) => {
                return Err(ApiError::unprocessable(
                    "limit_price is required for limit orders",
                ))
            }
            (Kind::Limit, Some(p)) if p <= Decimal::ZERO => {
                return Err(ApiError::unprocessable("limit_price must be > 0"))
            }
            // Sub-penny rule: limits of $1 or more in whole cents, below $1
            // in hundredths of a cent.
            (Kind::Limit, Some(p))
                if p.normalize().scale() > if p >= Decimal::ONE { 2 } else { 4 } =>
            {
                return Err(ApiError::new(
                    422,
                    42210000,
                    format!(
                        "invalid limit_price {}. sub-penny increment does not fulfill minimum pricing criteria",
                        p.normalize()
                    ),
                ))
            }
            (Kind::Market, Some(_)) => {
                return Err(ApiError::unprocessable(
                    "limit_price must not be given for market orders",
                ))
            }
            _ => {}
        }
        if req.extended_hours && !(req.kind == Kind::Limit && req.tif == Tif::Day) {
            return Err(ApiError::unprocessable(
                "extended hours order must be DAY limit orders",
            ));
        }
        // Shares: what is held minus what open sells already promise.
        let held = self.positions.get(&symbol).map(|p| p.qty).unwrap_or_default();
        let promised: Decimal = self
            .orders
            .iter()
            .filter(|o| o.is_open() && o.symbol == symbol && o.side == Side::Sell)
            .map(Order::remaining)
            .sum();
        match req.side {
            Side::Sell => {
                let available = (held - promised).max(Decimal::ZERO);
                if req.qty > available {
                    if !self.cfg.shorting {
                        return Err(ApiError::forbidden(format!(
                            "insufficient qty available for order (requested: {}, available: {})",
                            req.qty.normalize(),
                            available.normalize()
                        )));
                    }
                    if !rules.shortable(&symbol) {
                        return Err(ApiError::forbidden(format!(
                            "asset {symbol} cannot be sold short"
                        )));
                    }
                    if fractional {
                        return Err(ApiError::forbidden("fractional orders cannot be sold short"));
                    }
                    // A short needs buying power for what it sells short.
                    let px = req.limit_price.unwrap_or(quote.bid).max(quote.bid);
                    let short_value = (req.qty - available).checked_mul(px);
                    if short_value.is_none_or(|v| v > self.buying_power(now)) {
                        return Err(ApiError::forbidden("insufficient buying power"));
                    }
                }
            }
            Side::Buy => {
                let px = req.limit_price.unwrap_or(quote.ask);
                // checked: a client may send any 28-digit quantity or price.
                let cost = req.qty.checked_mul(px);
                if cost.is_none_or(|c| c > self.buying_power(now)) {
                    return Err(ApiError::forbidden("insufficient buying power"));
                }
            }
        }
        // Wash trade: the new order could trade against one of our own
        // resting orders on the other side.
        let crosses = self.orders.iter().any(|o| {
            o.is_open()
                && o.symbol == symbol
                && o.side != req.side
                && match (req.side, req.limit_price, o.limit_price) {
                    (_, None, _) | (_, _, None) => true,
                    (Side::Buy, Some(mine), Some(theirs)) => mine >= theirs,
                    (Side::Sell, Some(mine), Some(theirs)) => mine <= theirs,
                }
        });
        if crosses {
            return Err(ApiError::forbidden(
                "potential wash trade detected. use complex orders",
            ));
        }

        let id = self.rng.uuid();
        let cid = req.client_order_id.clone().unwrap_or_else(|| self.rng.uuid());
        let open_now = keel_calendar::session_containing(now);
        let expires_at = match req.tif {
            Tif::Day | Tif::Ioc | Tif::Fok => Some(day_close(now)),
            Tif::Gtc => None,
        };
        let order = Order {
            id: id.clone(),
            client_order_id: cid.clone(),
            asset_id: crate::json::asset_id(&symbol),
            symbol,
            side: req.side,
            kind: req.kind,
            tif: req.tif,
            qty: req.qty.normalize(),
            filled_qty: Decimal::ZERO,
            filled_notional: Decimal::ZERO,
            limit_price: req.limit_price.map(|p| p.normalize()),
            status: if open_now.is_some() { "new" } else { "accepted" },
            extended_hours: req.extended_hours,
            created_at: now,
            updated_at: now,
            filled_at: None,
            expired_at: None,
            canceled_at: None,
            failed_at: None,
            expires_at,
            cancel_at: None,
            doomed: req.doomed,
        };
        let idx = self.orders.len();
        self.orders.push(order.clone());
        self.by_id.insert(id, idx);
        self.by_cid.insert(cid, idx);
        if order.status == "new" {
            self.emit(idx, "new", None, now);
        }
        Ok(order)
    }

    pub fn cancel(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
        let Some(&idx) = self.by_id.get(id) else {
            return Err(ApiError::not_found(format!("order not found for {id}")));
        };
        if !self.orders[idx].is_open() {
            return Err(ApiError::new(422, 42210000, "order is not cancelable"));
        }
        self.request_cancel(idx, now);
        Ok(())
    }

    /// Cancels at once, or (with a cancel delay) moves the order to
    /// `pending_cancel`, where it can still fill until the delay is over.
    fn request_cancel(&mut self, idx: usize, now: DateTime<Utc>) {
        if self.cfg.cancel_delay <= chrono::Duration::zero() {
            self.close(idx, "canceled", now);
        } else if self.orders[idx].status != "pending_cancel" {
            let o = &mut self.orders[idx];
            o.status = "pending_cancel";
            o.updated_at = now;
            o.cancel_at = Some(now + self.cfg.cancel_delay);
            self.emit(idx, "pending_cancel", None, now);
        }
    }

    pub fn cancel_all(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let open: Vec<usize> = (0..self.orders.len())
            .filter(|&i| self.orders[i].is_open())
            .collect();
        open.into_iter()
            .map(|i| {
                self.request_cancel(i, now);
                self.orders[i].id.clone()
            })
            .collect()
    }

    fn close(&mut self, idx: usize, status: &'static str, now: DateTime<Utc>) {
        let o = &mut self.orders[idx];
        o.status = status;
        o.updated_at = now;
        match status {
            "canceled" => o.canceled_at = Some(now),
            "expired" => o.expired_at = Some(now),
            "rejected" => o.failed_at = Some(now),
            _ => {}
        }
        self.emit(idx, status, None, now);
    }

    /// One pass of the matching engine at `now`: route accepted orders when
    /// the session opens, fill what is marketable, expire what is due.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        let session_open = keel_calendar::is_open(now);
        // One quote per symbol per pass: many resting orders share a few names.
        let mut quotes: HashMap<String, Option<Quote>> = HashMap::new();
        for idx in 0..self.orders.len() {
            if !self.orders[idx].is_open() {
                continue;
            }
            if self.orders[idx].doomed {
                self.close(idx, "rejected", now);
                continue;
            }
            if let Some(at) = self.orders[idx].cancel_at {
                if now >= at {
                    self.close(idx, "canceled", now);
                    continue;
                }
            }
            if let Some(exp) = self.orders[idx].expires_at {
                if now >= exp {
                    self.close(idx, "expired", now);
                    continue;
                }
            }
            if !session_open {
                continue;
            }
            if self.orders[idx].status == "accepted" {
                let o = &mut self.orders[idx];
                o.status = "new";
                o.updated_at = now;
                self.emit(idx, "new", None, now);
            }
            let o = &self.orders[idx];
            let q = match quotes.get(&o.symbol) {
                Some(q) => q.clone(),
                None => {
                    let q = self.quote(&o.symbol, now);
                    quotes.insert(o.symbol.clone(), q.clone());
                    q
                }
            };
            let Some(q) = q else {
                continue;
            };
            let (marketable, price) = match (o.side, o.limit_price) {
                (Side::Buy, None) => (true, q.ask),
                (Side::Sell, None) => (true, q.bid),
                (Side::Buy, Some(l)) => (l >= q.ask, q.ask),
                (Side::Sell, Some(l)) => (l <= q.bid, q.bid),
            };
            if !marketable {
                if matches!(o.tif, Tif::Ioc | Tif::Fok) {
                    self.close(idx, "canceled", now);
                }
                continue;
            }
            let remaining = o.remaining();
            let whole = o.qty.fract().is_zero();
            let mut qty = remaining;
            if o.tif != Tif::Fok && self.rng.chance(self.cfg.partial_fill_prob) {
                let half = remaining / Decimal::TWO;
                let half = if whole { half.floor() } else { half.round_dp(9) };
                if half > Decimal::ZERO && half < remaining {
                    qty = half;
                }
            }
            self.fill(idx, qty, price, now);
            if self.orders[idx].tif == Tif::Ioc && self.orders[idx].is_open() {
                self.close(idx, "canceled", now);
            }
        }
    }

    fn fill(&mut self, idx: usize, qty: Decimal, price: Decimal, now: DateTime<Utc>) {
        let (symbol, side) = {
            let o = &self.orders[idx];
            (o.symbol.clone(), o.side)
        };
        let signed = match side {
            Side::Buy => qty,
            Side::Sell => -qty,
        };
        self.cash -= signed * price;
        let pos = self.positions.entry(symbol.clone()).or_default();
        let new_qty = pos.qty + signed;
        if pos.qty.is_zero() || (pos.qty.is_sign_positive() != new_qty.is_sign_positive()) {
            pos.avg_entry = price;
        } else if (pos.qty.is_sign_positive() && signed.is_sign_positive())
            || (pos.qty.is_sign_negative() && signed.is_sign_negative())
        {
            pos.avg_entry = (pos.avg_entry * pos.qty + price * signed) / new_qty;
        }
        pos.qty = new_qty;
        let position_qty = new_qty;
        if new_qty.is_zero() {
            self.positions.remove(&symbol);
        }
        let o = &mut self.orders[idx];
        o.filled_qty += qty;
        o.filled_notional += qty * price;
        o.updated_at = now;
        let full = o.remaining().is_zero();
        o.status = match (full, o.status) {
            (true, _) => "filled",
            // A fill during a pending cancel leaves the cancel pending.
            (false, "pending_cancel") => "pending_cancel",
            (false, _) => "partially_filled",
        };
        if full {
            o.filled_at = Some(now);
        }
        let execution_id = self.rng.uuid();
        let o = &self.orders[idx];
        self.fills.push(Fill {
            activity_id: format!("{}::{}", now.format("%Y%m%d%H%M%S%3f"), execution_id),
            execution_id: execution_id.clone(),
            order_id: o.id.clone(),
            symbol,
            side,
            qty,
            price,
            at: now,
            cum_qty: o.filled_qty,
            leaves_qty: o.remaining(),
            order_status: o.status,
        });
        let event = if full { "fill" } else { "partial_fill" };
        self.emit_with(idx, event, execution_id, Some((price, qty, position_qty)), now);
    }

    fn emit(
        &mut self,
        idx: usize,
        event: &str,
        fill: Option<(Decimal, Decimal, Decimal)>,
        now: DateTime<Utc>,
    ) {
        let execution_id = self.rng.uuid();
        self.emit_with(idx, event, execution_id, fill, now);
    }

    fn emit_with(
        &mut self,
        idx: usize,
        event: &str,
        execution_id: String,
        fill: Option<(Decimal, Decimal, Decimal)>,
        now: DateTime<Utc>,
    ) {
        let mut data = json!({
            "event": event,
            "execution_id": execution_id,
            "order": order_json(&self.orders[idx]),
            "timestamp": ts(now),
        });
        if let (Some((price, qty, position_qty)), Some(m)) = (fill, data.as_object_mut()) {
            m.insert("price".into(), dec(price).into());
            m.insert("qty".into(), dec(qty).into());
            m.insert("position_qty".into(), dec(position_qty).into());
        }
        let msg = json!({"stream": "trade_updates", "data": data});
        // No subscriber means nobody is listening: like Alpaca, no replay.
        let _ = self.events.send(msg.to_string());
    }
}

/// The close of the session a day order submitted at `now` lives in: the
/// current one, else the next one to open.
fn day_close(now: DateTime<Utc>) -> DateTime<Utc> {
    if let Some(s) = keel_calendar::session_containing(now) {
        return s.close;
    }
    let d = crate::json::ny_date(now);
    let s = keel_calendar::next_session_on_or_after(d);
    if s.close > now {
        return s.close;
    }
    keel_calendar::next_session_on_or_after(d.succ_opt().unwrap_or(d)).close
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SYMS: &[&str] = &["AAPL", "MSFT", "BRK.B", "KO"];

    #[derive(Debug, Clone)]
    enum Op {
        Submit {
            sym: usize,
            buy: bool,
            qty_tenths: u32,
            limit_bps: Option<i32>,
        },
        Tick(u32),
        Cancel(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                0..SYMS.len(),
                any::<bool>(),
                1u32..300,
                proptest::option::of(-200i32..200)
            )
                .prop_map(|(sym, buy, qty_tenths, limit_bps)| Op::Submit {
                    sym,
                    buy,
                    qty_tenths,
                    limit_bps
                }),
            (1u32..120_000).prop_map(Op::Tick),
            (0usize..64).prop_map(Op::Cancel),
        ]
    }

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T14:31:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever is submitted, filled partly, cancelled or expired: cash
        /// and positions are exactly what the fills say, no order fills past
        /// its quantity, and (shorting off) nothing is ever sold short.
        #[test]
        fn accounting_follows_the_fills(seed in 0u64..1000, ops in proptest::collection::vec(op(), 1..60)) {
            let (tx, _rx) = broadcast::channel(1 << 16);
            let initial = Decimal::from(50_000);
            let mut v = Venue::new(
                VenueConfig {
                    seed,
                    cash: initial,
                    shorting: false,
                    partial_fill_prob: 0.3,
                    cancel_delay: chrono::Duration::milliseconds(if seed % 2 == 0 { 0 } else { 500 }),
                    assets: AssetRules {
                        non_fractionable: ["BRK.B".to_string()].into(),
                        ..AssetRules::default()
                    },
                },
                start(),
                tx,
            );
            let mut now = start();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Submit { sym, buy, qty_tenths, limit_bps } => {
                        let symbol = SYMS[sym];
                        let q = v.quote(symbol, now).unwrap();
                        let limit = limit_bps.map(|b| {
                            (q.reference() * (Decimal::ONE + Decimal::from(b) / Decimal::from(10_000))).round_dp(2)
                        });
                        let _ = v.submit(
                            NewOrder {
                                symbol: symbol.to_string(),
                                qty: Decimal::from(qty_tenths) / Decimal::from(10),
                                side: if buy { Side::Buy } else { Side::Sell },
                                kind: if limit.is_some() { Kind::Limit } else { Kind::Market },
                                tif: if i % 3 == 0 { Tif::Gtc } else { Tif::Day },
                                limit_price: limit,
                                client_order_id: Some(format!("c{i}")),
                                extended_hours: false,
                                doomed: i % 7 == 3,
                            },
                            now,
                        );
                    }
                    Op::Tick(ms) => {
                        now += chrono::Duration::milliseconds(i64::from(ms) * 60);
                        v.tick(now);
                    }
                    Op::Cancel(k) => {
                        if let Some(id) = v.orders.get(k).map(|o| o.id.clone()) {
                            let _ = v.cancel(&id, now);
                        }
                    }
                }
                let mut cash = initial;
                let mut held: BTreeMap<String, Decimal> = BTreeMap::new();
                let mut per_order: HashMap<String, Decimal> = HashMap::new();
                for f in &v.fills {
                    let signed = if f.side == Side::Buy { f.qty } else { -f.qty };
                    cash -= signed * f.price;
                    *held.entry(f.symbol.clone()).or_default() += signed;
                    *per_order.entry(f.order_id.clone()).or_default() += f.qty;
                    prop_assert!(f.qty > Decimal::ZERO);
                }
                prop_assert_eq!(v.cash, cash);
                held.retain(|_, q| !q.is_zero());
                let positions: BTreeMap<String, Decimal> =
                    v.positions.iter().map(|(s, p)| (s.clone(), p.qty)).collect();
                prop_assert_eq!(&positions, &held);
                for (s, q) in &positions {
                    prop_assert!(*q > Decimal::ZERO, "short {} {}", s, q);
                    let promised: Decimal = v.orders.iter()
                        .filter(|o| o.is_open() && &o.symbol == s && o.side == Side::Sell)
                        .map(Order::remaining).sum();
                    prop_assert!(promised <= *q);
                }
                for o in &v.orders {
                    let filled = per_order.get(&o.id).copied().unwrap_or_default();
                    prop_assert_eq!(o.filled_qty, filled);
                    prop_assert!(o.filled_qty <= o.qty);
                    prop_assert_eq!(o.status == "filled", o.remaining().is_zero());
                    if o.symbol == "BRK.B" {
                        prop_assert!(o.qty.fract().is_zero());
                    }
                }
                prop_assert!(v.buying_power(now) >= Decimal::ZERO);
            }
        }
    }
}
