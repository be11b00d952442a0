//! The venue as the simulated worker sees it: the real paper broker behind a
//! crash gate, with market-data faults layered on top (stale quotes, price
//! gaps, volatility spikes and outages in the reference closes), and a record
//! of what the worker was shown and what reached the venue, for the checker.
//!
//! Venue faults (timeouts before and after sending, 5xx, 429, rejects,
//! dropped and duplicated events, partial fills) are injected by the paper
//! broker itself from its seeded [`keel_broker::FaultConfig`]; this layer only
//! classifies and counts them.

use crate::crash::{CrashSwitch, Gate, DEAD};
use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use keel_broker::{
    universe, AssetFacts, Broker, BrokerAccount, BrokerError, BrokerEvent, BrokerOrder, MarketData,
    PaperBroker,
};
use keel_domain::{Clock, OpenOrder, Order, Position, Quote, Side, Symbol};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// A price gap in the quote feed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gap {
    /// Affected symbols; `None` is the whole market.
    pub symbols: Option<BTreeSet<Symbol>>,
    /// Multiplier on bid, ask and last.
    pub factor: Decimal,
}

/// What happens to the reference symbol's daily closes.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum ClosesFault {
    /// As the venue reports them.
    #[default]
    Normal,
    /// The last closes move by these log returns (a volatility spike).
    Spike(Vec<f64>),
    /// Only the last `n` closes arrive (a data outage).
    Outage(usize),
}

/// The market-data faults in force for the current step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Market {
    /// Symbols whose quotes are this many seconds old.
    pub stale: BTreeMap<Symbol, i64>,
    /// A gap in the feed, if any.
    pub gap: Option<Gap>,
    /// The reference closes.
    pub closes: ClosesFault,
}

/// An order that reached the venue's order handling.
#[derive(Debug, Clone)]
pub(crate) struct VenueSubmit {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub at: DateTime<Utc>,
    /// `accepted`, `rejected: <reason>`, `unknown outcome`, `duplicate`, `answer lost (crash)`.
    pub outcome: String,
}

/// What the worker was shown and did this step, and venue fault counts.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Symbols quoted to the worker with a quote older than the stale limit (this step).
    pub stale_served: BTreeSet<Symbol>,
    /// Orders that reached the venue (this step).
    pub venue_submits: Vec<VenueSubmit>,
    /// Submits that reached order handling, per client order id (whole run).
    pub submits_by_id: BTreeMap<String, u32>,
    /// Venue faults seen, by kind (whole run).
    pub faults: BTreeMap<&'static str, u64>,
}

impl Observed {
    /// Clears the per-step records.
    pub fn begin_step(&mut self) {
        self.stale_served.clear();
        self.venue_submits.clear();
    }
}

/// The kind of an injected venue fault, from the error it produced.
pub(crate) fn classify(e: &BrokerError) -> Option<&'static str> {
    match e {
        BrokerError::Retryable { message, .. } if message.contains("connect timeout") => {
            Some("timeout_before_send")
        }
        BrokerError::Retryable { message, .. } if message.contains("429") => Some("rate_limited"),
        BrokerError::Retryable { message, .. } if message.contains("503") => Some("server_error"),
        BrokerError::UnknownOutcome { .. } => Some("timeout_after_send"),
        BrokerError::Rejected { reason } if reason.contains("(injected fault)") => Some("reject"),
        _ => None,
    }
}

/// Locks a mutex, ignoring poisoning (a panic elsewhere already failed the run).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The session date after which "closes of completed sessions" end, as the
/// paper broker computes it: today counts once its session has closed.
pub(crate) fn closes_end(now: DateTime<Utc>) -> NaiveDate {
    let d = now.date_naive();
    match keel_calendar::session(d) {
        Some(s) if now >= s.close => d.succ_opt().unwrap_or(d),
        _ => d,
    }
}

/// Applies a closes fault to the venue's closes.
pub(crate) fn transform_closes(fault: &ClosesFault, mut closes: Vec<Decimal>) -> Vec<Decimal> {
    match fault {
        ClosesFault::Normal => closes,
        ClosesFault::Outage(keep) => {
            let drop = closes.len().saturating_sub(*keep);
            closes.drain(..drop);
            closes
        }
        ClosesFault::Spike(moves) => {
            let n = closes.len();
            if n <= moves.len() {
                return closes;
            }
            for (k, m) in moves.iter().enumerate() {
                let i = n - moves.len() + k;
                let prev = closes[i - 1].to_f64().unwrap_or(1.0);
                closes[i] = Decimal::from_f64(prev * m.exp())
                    .unwrap_or(closes[i - 1])
                    .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
                    .max(Decimal::new(1, 2));
            }
            closes
        }
    }
}

/// A quote moved by `factor`, still a sane book in whole cents.
fn gapped(q: &Quote, factor: Decimal) -> Quote {
    let cent = Decimal::new(1, 2);
    let bid = (q.bid * factor)
        .round_dp_with_strategy(2, RoundingStrategy::ToNegativeInfinity)
        .max(cent);
    let ask = (q.ask * factor)
        .round_dp_with_strategy(2, RoundingStrategy::ToPositiveInfinity)
        .max(bid + cent);
    let last = (q.last * factor).round_dp(2).clamp(bid, ask);
    Quote {
        symbol: q.symbol.clone(),
        bid,
        ask,
        last,
        ts: q.ts,
    }
}

/// The worker's broker.
pub(crate) struct SimBroker {
    inner: Arc<PaperBroker>,
    clock: Arc<dyn Clock>,
    crash: Arc<CrashSwitch>,
    market: Arc<Mutex<Market>>,
    obs: Arc<Mutex<Observed>>,
    seed: u64,
    /// Quotes older than this count as stale (the intended stale-quote limit).
    stale_after_secs: i64,
}

impl SimBroker {
    pub fn new(
        inner: Arc<PaperBroker>,
        clock: Arc<dyn Clock>,
        crash: Arc<CrashSwitch>,
        market: Arc<Mutex<Market>>,
        obs: Arc<Mutex<Observed>>,
        stale_after_secs: i64,
    ) -> Self {
        let seed = inner.config().seed;
        Self {
            inner,
            clock,
            crash,
            market,
            obs,
            seed,
            stale_after_secs,
        }
    }

    fn count<T>(&self, r: Result<T, BrokerError>) -> Result<T, BrokerError> {
        if let Err(e) = &r {
            if let Some(kind) = classify(e) {
                *lock(&self.obs).faults.entry(kind).or_default() += 1;
            }
        }
        r
    }
}

fn dead(what: &str) -> BrokerError {
    BrokerError::Other(format!("{what}: {DEAD}"))
}

/// Runs `$call` through the crash gate, counting venue faults.
macro_rules! gated {
    ($self:ident, $what:expr, $mutating:expr, $call:expr) => {{
        let what = $what;
        match $self.crash.enter(what, $mutating) {
            Gate::Pass => {
                let t0 = std::time::Instant::now();
                let r = $self.count($call.await);
                $self.crash.timed(what, t0);
                r
            }
            Gate::Before | Gate::Dead => Err(dead(what)),
            Gate::After => {
                let _ = $self.count($call.await);
                Err(dead(what))
            }
        }
    }};
}

#[async_trait]
impl Broker for SimBroker {
    async fn account(&self) -> Result<BrokerAccount, BrokerError> {
        gated!(self, "broker.account", false, self.inner.account())
    }

    async fn positions(&self) -> Result<Vec<Position>, BrokerError> {
        gated!(self, "broker.positions", false, self.inner.positions())
    }

    async fn open_orders(&self) -> Result<Vec<OpenOrder>, BrokerError> {
        gated!(self, "broker.open_orders", false, self.inner.open_orders())
    }

    async fn submit(&self, order: &Order) -> Result<BrokerOrder, BrokerError> {
        let gate = self.crash.enter("broker.submit", true);
        if matches!(gate, Gate::Before | Gate::Dead) {
            return Err(dead("broker.submit"));
        }
        let t0 = std::time::Instant::now();
        let r = self.count(self.inner.submit(order).await);
        self.crash.timed("broker.submit", t0);
        let outcome = match (&r, gate) {
            (Err(BrokerError::Retryable { .. } | BrokerError::Other(_)), _) => None,
            (_, Gate::After) => Some("answer lost (crash)".to_string()),
            (Ok(_), _) => Some("accepted".to_string()),
            (Err(BrokerError::Rejected { reason }), _) => Some(format!("rejected: {reason}")),
            (Err(BrokerError::UnknownOutcome { .. }), _) => Some("unknown outcome".to_string()),
            (Err(BrokerError::DuplicateClientOrderId), _) => Some("duplicate".to_string()),
        };
        if let Some(outcome) = outcome {
            let mut obs = lock(&self.obs);
            *obs.submits_by_id
                .entry(order.client_order_id.clone())
                .or_default() += 1;
            obs.venue_submits.push(VenueSubmit {
                client_order_id: order.client_order_id.clone(),
                symbol: order.symbol.clone(),
                side: order.side,
                at: self.clock.now(),
                outcome,
            });
        }
        if gate == Gate::After {
            return Err(dead("broker.submit"));
        }
        r
    }

    async fn cancel(&self, client_order_id: &str) -> Result<(), BrokerError> {
        gated!(self, "broker.cancel", true, self.inner.cancel(client_order_id))
    }

    async fn order_by_client_id(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        gated!(
            self,
            "broker.order_by_client_id",
            false,
            self.inner.order_by_client_id(client_order_id)
        )
    }

    async fn events_since(&self, cursor: u64) -> Result<Vec<(u64, BrokerEvent)>, BrokerError> {
        gated!(
            self,
            "broker.events_since",
            false,
            self.inner.events_since(cursor)
        )
    }
}

#[async_trait]
impl MarketData for SimBroker {
    async fn quotes(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Quote>, BrokerError> {
        let mut quotes = gated!(self, "broker.quotes", false, self.inner.quotes(symbols))?;
        let now = self.clock.now();
        let market = lock(&self.market).clone();
        let mut stale_served = Vec::new();
        for (symbol, q) in quotes.iter_mut() {
            if let Some(age) = market.stale.get(symbol) {
                // A stalled feed shows the price of `age` seconds ago, stamped then.
                if let Some(old) = universe::quote(self.seed, symbol, now - Duration::seconds(*age)) {
                    *q = old;
                }
                if *age > self.stale_after_secs {
                    stale_served.push(symbol.clone());
                }
            }
            if let Some(g) = &market.gap {
                if g.symbols.as_ref().is_none_or(|s| s.contains(symbol)) {
                    *q = gapped(q, g.factor);
                }
            }
        }
        lock(&self.obs).stale_served.extend(stale_served);
        Ok(quotes)
    }

    async fn daily_closes(&self, symbol: &Symbol, n: usize) -> Result<Vec<Decimal>, BrokerError> {
        let closes = gated!(
            self,
            "broker.daily_closes",
            false,
            self.inner.daily_closes(symbol, n)
        )?;
        let fault = lock(&self.market).closes.clone();
        Ok(transform_closes(&fault, closes))
    }

    async fn adv(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Decimal>, BrokerError> {
        gated!(self, "broker.adv", false, self.inner.adv(symbols))
    }

    async fn assets(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, AssetFacts>, BrokerError> {
        gated!(self, "broker.assets", false, self.inner.assets(symbols))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn closes_faults() {
        let c: Vec<Decimal> = (0..10).map(|i| Decimal::from(100 + i)).collect();
        assert_eq!(transform_closes(&ClosesFault::Normal, c.clone()), c);
        assert_eq!(
            transform_closes(&ClosesFault::Outage(3), c.clone()),
            c[7..].to_vec()
        );
        let s = transform_closes(&ClosesFault::Spike(vec![0.1, -0.1]), c.clone());
        assert_eq!(s[..8], c[..8]);
        assert!(s[8] > d("118") && s[9] < s[8]);
    }

    #[test]
    fn gaps_keep_a_sane_book() {
        let q = Quote {
            symbol: Symbol::new("AAPL").unwrap(),
            bid: d("100.00"),
            ask: d("100.04"),
            last: d("100.02"),
            ts: Utc::now(),
        };
        let g = gapped(&q, d("0.9"));
        assert_eq!((g.bid, g.ask, g.last), (d("90.00"), d("90.04"), d("90.02")));
        let g = gapped(&q, d("0.00001"));
        assert!(g.bid > Decimal::ZERO && g.ask > g.bid && g.last >= g.bid && g.last <= g.ask);
    }
}
