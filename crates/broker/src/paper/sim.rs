//! The paper venue's matching engine: pure, synchronous and deterministic.
//!
//! A [`Work`] is one API call's unit of work: it starts from a copy of the
//! venue [`State`], applies time-driven processing and the call's own effect,
//! and records what changed in [`Changes`] so the caller can persist it in one
//! transaction before publishing the new state.

use super::{FaultConfig, PaperConfig};
use crate::universe::{self, splitmix};
use crate::{BrokerAccount, BrokerError, BrokerEvent, BrokerFill, BrokerOrder};
use chrono::{DateTime, Duration, Utc};
use keel_calendar::Session;
use keel_domain::{OpenOrder, Order, OrderStatus, OrderType, Position, Quote, Side, Symbol, TimeInForce};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The venue's mutable state that lives in memory between calls (closed
/// orders, fills and events live only in the database).
#[derive(Debug, Clone)]
pub(crate) struct State {
    /// Account cash.
    pub cash: Decimal,
    /// Non-zero positions.
    pub positions: BTreeMap<Symbol, Position>,
    /// Working orders by sequence number.
    pub open: BTreeMap<i64, PaperOrder>,
    /// API calls made so far (input to fault decisions).
    pub calls: u64,
    /// Events generated so far, including dropped ones (input to event faults).
    pub events: u64,
    /// Last order sequence number assigned.
    pub orders: i64,
    /// Fault probabilities in force (not persisted).
    pub faults: FaultConfig,
}

/// An order plus the simulator's scheduling state; persisted as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PaperOrder {
    /// Venue sequence number (submission order).
    pub seq: i64,
    /// The order as the API reports it.
    pub order: BrokerOrder,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// When the matching engine next looks at this order.
    pub next_check_at: Option<DateTime<Utc>>,
    /// DAY orders: the session close at which the remainder expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the order's one partial fill has happened (or was decided against).
    pub partial_done: bool,
}

/// A fill to insert into the fills table.
#[derive(Debug, Clone)]
pub(crate) struct FillRow {
    /// Order.
    pub client_order_id: String,
    /// Instrument.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// The execution.
    pub fill: BrokerFill,
}

/// Everything one call changed, to be written in one transaction.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Orders inserted or updated (last version per sequence number).
    pub orders: BTreeMap<i64, PaperOrder>,
    /// New fills.
    pub fills: Vec<FillRow>,
    /// Events to append, in order.
    pub events: Vec<(DateTime<Utc>, BrokerEvent)>,
    /// Symbols whose position changed.
    pub positions: BTreeSet<Symbol>,
    /// Client order ids whose submit reached order handling.
    pub submissions: Vec<String>,
}

/// One call's unit of work.
pub(crate) struct Work<'a> {
    pub cfg: &'a PaperConfig,
    pub st: State,
    pub ch: Changes,
    pub now: DateTime<Utc>,
}

/// A uniform draw in `[0, 1)` determined by the seed, a list of labels and a counter.
pub(crate) fn roll(seed: u64, labels: &[&str], n: u64) -> f64 {
    let mut h = splitmix(seed ^ 0x6b65_656c);
    for label in labels {
        let mut f: u64 = 0xcbf2_9ce4_8422_2325;
        for b in label.bytes().chain(std::iter::once(0xff)) {
            f ^= u64::from(b);
            f = f.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = splitmix(h ^ f);
    }
    h = splitmix(h ^ n);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn fires(p: f64, u: f64) -> bool {
    p > 0.0 && u < p
}

fn cents(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The first instant strictly after `t` that is a whole UTC minute.
fn next_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    let next = secs - secs.rem_euclid(60) + 60;
    DateTime::from_timestamp(next, 0).unwrap_or(t + Duration::seconds(60))
}

/// The session open at `t`, else the next one to open after `t`.
fn current_or_next_session(t: DateTime<Utc>) -> Session {
    if let Some(s) = keel_calendar::session_containing(t) {
        return s;
    }
    // Sessions open and close within the UTC day of their New York date.
    let d = t.date_naive();
    match keel_calendar::session(d) {
        Some(s) if t < s.open => s,
        _ => keel_calendar::next_session_on_or_after(d.succ_opt().unwrap_or(d)),
    }
}

impl<'a> Work<'a> {
    /// Starts a call at `now` from a copy of the state.
    pub fn new(cfg: &'a PaperConfig, st: State, now: DateTime<Utc>) -> Self {
        Self {
            cfg,
            st,
            ch: Changes::default(),
            now,
        }
    }

    fn slip(&self) -> Decimal {
        self.cfg.slippage_bps / Decimal::from(10_000)
    }

    fn quote_at(&self, symbol: &Symbol, at: DateTime<Utc>) -> Option<Quote> {
        universe::quote(self.cfg.seed, symbol, at)
    }

    /// What a marketable buy pays at `q`: the ask plus slippage, in cents.
    fn buy_price(&self, q: &Quote) -> Decimal {
        cents(q.ask * (Decimal::ONE + self.slip()))
    }

    /// What a marketable sell receives at `q`: the bid less slippage, in cents.
    fn sell_price(&self, q: &Quote) -> Decimal {
        cents(q.bid * (Decimal::ONE - self.slip())).max(Decimal::new(1, 2))
    }

    // ----- faults ---------------------------------------------------------

    /// Counts this call; fault decisions use the count.
    pub fn tick(&mut self) {
        self.st.calls += 1;
    }

    fn fault(&self, p: f64, op: &str, key: &str, kind: &str) -> bool {
        fires(p, roll(self.cfg.seed, &["fault", op, key, kind], self.st.calls))
    }

    /// A failure before the request reached order handling, if one is injected.
    pub fn pre_send_fault(&self, op: &str, key: &str) -> Option<BrokerError> {
        let f = &self.st.faults;
        if self.fault(f.timeout_before_send, op, key, "timeout_before_send") {
            return Some(BrokerError::Retryable {
                message: format!("{op}: connect timeout, request not sent (injected)"),
                retry_after: None,
            });
        }
        if self.fault(f.rate_limited, op, key, "rate_limited") {
            return Some(BrokerError::Retryable {
                message: format!("{op}: 429 too many requests (injected)"),
                retry_after: Some(std::time::Duration::from_secs(1)),
            });
        }
        if self.fault(f.server_error, op, key, "server_error") {
            return Some(BrokerError::Retryable {
                message: format!("{op}: 503 service unavailable, request not processed (injected)"),
                retry_after: None,
            });
        }
        None
    }

    /// Whether the answer to a processed mutating request is lost.
    pub fn lost_answer(&self, op: &str, key: &str) -> bool {
        self.fault(self.st.faults.timeout_after_send, op, key, "timeout_after_send")
    }

    fn injected_reject(&self, key: &str) -> bool {
        self.fault(self.st.faults.reject, "submit", key, "reject")
    }

    /// Appends an event to the stream, subject to drop/duplicate faults.
    fn emit(&mut self, at: DateTime<Utc>, event: BrokerEvent) {
        self.st.events += 1;
        let n = self.st.events;
        let key = event.client_order_id().to_string();
        let f = &self.st.faults;
        if fires(f.drop_event, roll(self.cfg.seed, &["event", &key, "drop"], n)) {
            return;
        }
        let dup = fires(f.duplicate_event, roll(self.cfg.seed, &["event", &key, "dup"], n));
        if dup {
            self.ch.events.push((at, event.clone()));
        }
        self.ch.events.push((at, event));
    }

    // ----- views ----------------------------------------------------------

    /// Cash reserved by working buys: remaining × (limit, or ask plus slippage now).
    fn reserved(&self) -> Decimal {
        self.st
            .open
            .values()
            .filter(|o| o.order.side == Side::Buy)
            .map(|o| {
                let px = match o.order.limit_price {
                    Some(l) => l,
                    None => self
                        .quote_at(&o.order.symbol, self.now)
                        .map(|q| self.buy_price(&q))
                        .unwrap_or_default(),
                };
                o.order.remaining() * px
            })
            .sum()
    }

    /// Buying power: cash less reservations, never negative (no margin).
    pub fn buying_power(&self) -> Decimal {
        (self.st.cash - self.reserved()).max(Decimal::ZERO)
    }

    /// Balances marked at the current quotes.
    pub fn account(&self) -> BrokerAccount {
        let marked: Decimal = self
            .st
            .positions
            .values()
            .map(|p| {
                let px = self
                    .quote_at(&p.symbol, self.now)
                    .map(|q| q.last)
                    .unwrap_or(p.avg_cost);
                p.qty * px
            })
            .sum();
        BrokerAccount {
            account_id: self.cfg.account_id.clone(),
            cash: self.st.cash,
            equity: self.st.cash + marked,
            buying_power: self.buying_power(),
        }
    }

    /// Non-zero positions, by symbol.
    pub fn positions(&self) -> Vec<Position> {
        self.st.positions.values().cloned().collect()
    }

    /// Working orders in submission order.
    pub fn open_orders(&self) -> Vec<OpenOrder> {
        self.st.open.values().map(|o| o.order.to_open_order()).collect()
    }

    /// A working order by client order id.
    pub fn open_by_client_id(&self, client_order_id: &str) -> Option<&PaperOrder> {
        self.st
            .open
            .values()
            .find(|o| o.order.client_order_id == client_order_id)
    }

    // ----- submit / cancel ------------------------------------------------

    /// Records that a submit for `client_order_id` reached order handling.
    pub fn record_submission(&mut self, client_order_id: &str) {
        self.ch.submissions.push(client_order_id.to_string());
    }

    fn validate(&self, order: &Order) -> Option<String> {
        if order.qty <= Decimal::ZERO {
            return Some(format!("quantity must be positive, got {}", order.qty));
        }
        match (order.order_type, order.limit_price) {
            (OrderType::Limit, None) => return Some("limit order without a limit price".into()),
            (OrderType::Limit, Some(l)) if l <= Decimal::ZERO => {
                return Some(format!("limit price must be positive, got {l}"))
            }
            (OrderType::Market, Some(_)) => return Some("market order must not carry a limit price".into()),
            _ => {}
        }
        let Some(q) = self.quote_at(&order.symbol, self.now) else {
            return Some(format!("unknown symbol {}", order.symbol));
        };
        match order.side {
            Side::Buy => {
                let px = order.limit_price.unwrap_or_else(|| self.buy_price(&q));
                let cost = order.qty * px;
                let bp = self.buying_power();
                if cost > bp {
                    return Some(format!(
                        "insufficient buying power: order needs {cost}, available {bp}"
                    ));
                }
            }
            Side::Sell if !self.cfg.allow_short => {
                let held = self
                    .st
                    .positions
                    .get(&order.symbol)
                    .map(|p| p.qty)
                    .unwrap_or_default();
                let committed: Decimal = self
                    .st
                    .open
                    .values()
                    .filter(|o| o.order.side == Side::Sell && o.order.symbol == order.symbol)
                    .map(|o| o.order.remaining())
                    .sum();
                if order.qty > held - committed {
                    return Some(format!(
                        "insufficient quantity: sell {} requested, {held} held, {committed} committed to open sells (shorting disabled)",
                        order.qty
                    ));
                }
            }
            Side::Sell => {}
        }
        None
    }

    /// Handles a submit that is not a duplicate: creates the order (accepted or
    /// rejected), fills what is immediately fillable, and returns it.
    pub fn submit(&mut self, order: &Order) -> BrokerOrder {
        let now = self.now;
        self.st.orders += 1;
        let seq = self.st.orders;
        let reason = if self.injected_reject(&order.client_order_id) {
            Some("rejected by venue (injected fault)".to_string())
        } else {
            self.validate(order)
        };
        let mut po = PaperOrder {
            seq,
            order: BrokerOrder {
                broker_order_id: format!("paper-{seq:010}"),
                client_order_id: order.client_order_id.clone(),
                symbol: order.symbol.clone(),
                side: order.side,
                qty: order.qty,
                filled_qty: Decimal::ZERO,
                avg_fill_price: None,
                status: OrderStatus::Accepted,
                limit_price: order.limit_price,
                order_type: order.order_type,
                submitted_at: now,
                fills: Vec::new(),
                reason: None,
            },
            time_in_force: order.time_in_force,
            next_check_at: None,
            expires_at: None,
            partial_done: false,
        };
        if let Some(reason) = reason {
            po.order.status = OrderStatus::Rejected;
            po.order.reason = Some(reason.clone());
            self.emit(
                now,
                BrokerEvent::Rejected {
                    client_order_id: order.client_order_id.clone(),
                    reason,
                },
            );
            let out = po.order.clone();
            self.ch.orders.insert(seq, po);
            return out;
        }
        if order.time_in_force == TimeInForce::Day {
            po.expires_at = Some(current_or_next_session(now).close);
        }
        po.next_check_at = Some(now);
        let accepted = po.order.clone();
        self.emit(
            now,
            BrokerEvent::Accepted {
                order: accepted.clone(),
            },
        );
        self.ch.orders.insert(seq, po.clone());
        self.st.open.insert(seq, po);
        self.process();
        self.ch
            .orders
            .get(&seq)
            .map(|o| o.order.clone())
            .unwrap_or(accepted)
    }

    /// Cancels a working order; false if no working order has this id.
    pub fn cancel_open(&mut self, client_order_id: &str) -> bool {
        let Some(seq) = self
            .st
            .open
            .values()
            .find(|o| o.order.client_order_id == client_order_id)
            .map(|o| o.seq)
        else {
            return false;
        };
        let now = self.now;
        self.close(seq, OrderStatus::Canceled, now, None);
        true
    }

    // ----- matching -------------------------------------------------------

    /// Runs every scheduled check due at or before `now`, in time order (ties
    /// by submission order), so outcomes depend only on the clock, not on how
    /// often the venue is polled.
    pub fn process(&mut self) {
        loop {
            let due = self
                .st
                .open
                .values()
                .filter_map(|o| o.next_check_at.filter(|t| *t <= self.now).map(|t| (t, o.seq)))
                .min();
            let Some((t, seq)) = due else { break };
            self.evaluate(seq, t);
        }
    }

    fn touch(&mut self, seq: i64) {
        if let Some(o) = self.st.open.get(&seq) {
            self.ch.orders.insert(seq, o.clone());
        }
    }

    /// Moves an order to a final status, emitting the matching event.
    fn close(&mut self, seq: i64, status: OrderStatus, at: DateTime<Utc>, reason: Option<String>) {
        let Some(mut o) = self.st.open.remove(&seq) else {
            return;
        };
        o.order.status = status;
        if reason.is_some() {
            o.order.reason = reason;
        }
        o.next_check_at = None;
        let client_order_id = o.order.client_order_id.clone();
        match status {
            OrderStatus::Canceled => self.emit(at, BrokerEvent::Canceled { client_order_id }),
            OrderStatus::Expired => self.emit(at, BrokerEvent::Expired { client_order_id }),
            _ => {}
        }
        self.ch.orders.insert(seq, o);
    }

    fn reschedule(&mut self, seq: i64, next: DateTime<Utc>) {
        if let Some(o) = self.st.open.get_mut(&seq) {
            let next = match o.expires_at {
                Some(exp) => next.min(exp),
                None => next,
            };
            o.next_check_at = Some(next);
        }
        self.touch(seq);
    }

    /// One scheduled look at order `seq` at instant `t`.
    fn evaluate(&mut self, seq: i64, t: DateTime<Utc>) {
        let Some(o) = self.st.open.get(&seq).cloned() else {
            return;
        };
        let ioc = o.time_in_force == TimeInForce::Ioc;
        if o.expires_at.is_some_and(|exp| t >= exp) {
            self.close(seq, OrderStatus::Expired, o.expires_at.unwrap_or(t), None);
            return;
        }
        let Some(session) = keel_calendar::session_containing(t) else {
            if ioc {
                self.close(seq, OrderStatus::Canceled, t, Some("IOC: market closed".into()));
            } else {
                self.reschedule(seq, current_or_next_session(t).open);
            }
            return;
        };
        let Some(q) = self.quote_at(&o.order.symbol, t) else {
            self.close(seq, OrderStatus::Canceled, t, Some("no quote for symbol".into()));
            return;
        };
        let price = match (o.order.side, o.order.limit_price) {
            (Side::Buy, None) => Some(self.buy_price(&q)),
            (Side::Buy, Some(l)) => (q.ask <= l).then(|| self.buy_price(&q).min(l)),
            (Side::Sell, None) => Some(self.sell_price(&q)),
            (Side::Sell, Some(l)) => (q.bid >= l).then(|| self.sell_price(&q).max(l)),
        };
        let Some(price) = price else {
            if ioc {
                self.close(seq, OrderStatus::Canceled, t, Some("IOC: not marketable".into()));
            } else {
                self.reschedule(seq, next_minute(t).min(session.close));
            }
            return;
        };
        let remaining = o.order.qty - o.order.filled_qty;
        let part = if o.partial_done {
            None
        } else {
            self.partial_qty(&o.order.client_order_id, remaining)
        };
        if let Some(o) = self.st.open.get_mut(&seq) {
            o.partial_done = true;
        }
        match part {
            Some(part) => {
                self.fill(seq, part, price, t);
                if ioc {
                    self.close(
                        seq,
                        OrderStatus::Canceled,
                        t,
                        Some("IOC: remainder canceled".into()),
                    );
                } else {
                    // Config validation bounds the delay to a week, so this cannot overflow.
                    let secs = self.cfg.fill_delay_secs.clamp(1, super::MAX_FILL_DELAY_SECS);
                    let delay = Duration::seconds(i64::try_from(secs).unwrap_or(1));
                    self.reschedule(seq, t + delay);
                }
            }
            None => self.fill(seq, remaining, price, t),
        }
    }

    /// The size of an order's one partial fill, if it gets one: 20–80 % of
    /// `remaining`, whole shares, leaving at least one share.
    fn partial_qty(&self, client_order_id: &str, remaining: Decimal) -> Option<Decimal> {
        let p = self.cfg.partial_fill_prob;
        if !fires(p, roll(self.cfg.seed, &["partial", client_order_id], 0)) || remaining < Decimal::TWO {
            return None;
        }
        let pct = 20 + (roll(self.cfg.seed, &["partial-size", client_order_id], 0) * 61.0) as i64;
        let part = (remaining * Decimal::from(pct) / Decimal::from(100)).floor();
        (part >= Decimal::ONE && part < remaining).then_some(part)
    }

    /// Executes `qty` of order `seq` at `price` at `t`: updates the order,
    /// cash and position, and emits the fill.
    fn fill(&mut self, seq: i64, qty: Decimal, price: Decimal, t: DateTime<Utc>) {
        let Some(o) = self.st.open.get_mut(&seq) else {
            return;
        };
        let n = o.order.fills.len() + 1;
        let fill = BrokerFill {
            fill_id: format!("{}-{n}", o.order.broker_order_id),
            qty,
            price,
            at: t,
        };
        let prev_notional = o.order.avg_fill_price.unwrap_or_default() * o.order.filled_qty;
        o.order.filled_qty += qty;
        o.order.avg_fill_price = Some(((prev_notional + qty * price) / o.order.filled_qty).round_dp(6));
        o.order.fills.push(fill.clone());
        let done = o.order.filled_qty >= o.order.qty;
        o.order.status = if done {
            OrderStatus::Filled
        } else {
            OrderStatus::PartiallyFilled
        };
        let (symbol, side, client_order_id) = (
            o.order.symbol.clone(),
            o.order.side,
            o.order.client_order_id.clone(),
        );

        self.st.cash -= side.sign() * qty * price;
        self.apply_position(&symbol, side.sign() * qty, price);
        self.ch.fills.push(FillRow {
            client_order_id: client_order_id.clone(),
            symbol: symbol.clone(),
            side,
            fill: fill.clone(),
        });
        self.emit(
            t,
            BrokerEvent::Fill {
                client_order_id,
                fill,
                symbol,
                side,
            },
        );
        if done {
            self.close(seq, OrderStatus::Filled, t, None);
        } else {
            self.touch(seq);
        }
    }

    fn apply_position(&mut self, symbol: &Symbol, delta: Decimal, price: Decimal) {
        self.ch.positions.insert(symbol.clone());
        let (old_qty, old_avg) = self
            .st
            .positions
            .get(symbol)
            .map(|p| (p.qty, p.avg_cost))
            .unwrap_or_default();
        let new_qty = old_qty + delta;
        if new_qty.is_zero() {
            self.st.positions.remove(symbol);
            return;
        }
        let avg_cost = if old_qty.is_zero() || old_qty.is_sign_negative() != new_qty.is_sign_negative() {
            // Opened, or crossed through flat: the new position's cost is this price.
            price
        } else if old_qty.is_sign_negative() == delta.is_sign_negative() {
            // Added to the position: weighted average.
            ((old_qty.abs() * old_avg + delta.abs() * price) / new_qty.abs()).round_dp(6)
        } else {
            // Reduced: cost basis of what remains is unchanged.
            old_avg
        };
        self.st.positions.insert(
            symbol.clone(),
            Position {
                symbol: symbol.clone(),
                qty: new_qty,
                avg_cost,
            },
        );
    }
}
