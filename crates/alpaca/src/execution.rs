//! [`keel_broker::Broker`] over Alpaca's Trading API.

use crate::common::parse::decimal_wire;
use crate::config::AlpacaConfig;
use crate::http::client::{Host, RestClient};
use crate::http::models::{
    AlpacaAccount, AlpacaClock, AlpacaFillActivity, AlpacaOrder, AlpacaPosition, OrderRequest,
};
use crate::websocket::client::StreamStatus;
use crate::websocket::handler::Tracker;
use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use keel_broker::{Broker, BrokerAccount, BrokerError, BrokerEvent, BrokerOrder};
use keel_domain::{Clock, OpenOrder, Order, OrderType, Position, Side, Symbol, TimeInForce};
use rust_decimal::Decimal;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

/// Largest page Alpaca serves for orders.
const ORDER_PAGE: usize = 500;
/// Largest page for account activities.
const ACTIVITY_PAGE: usize = 100;
/// Pages read per listing at most (bounded work per call).
const MAX_PAGES: usize = 50;
/// Longest client order id Alpaca accepts.
const MAX_CLIENT_ORDER_ID: usize = 128;
/// How far back the first backfill after start-up looks.
const FIRST_BACKFILL: i64 = 24 * 60;
/// Overlap between consecutive backfills (clock skew, same-instant orders).
const BACKFILL_SLACK_MIN: i64 = 5;

/// State the REST side and the stream task share.
pub(crate) struct Shared {
    pub(crate) rest: RestClient,
    pub(crate) clock: Arc<dyn Clock>,
    tracker: Mutex<Tracker>,
    pub(crate) stream: Mutex<Option<Arc<StreamStatus>>>,
    last_backfill: Mutex<Option<DateTime<Utc>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Shared {
    pub(crate) fn new(rest: RestClient, clock: Arc<dyn Clock>) -> Self {
        Self {
            rest,
            clock,
            tracker: Mutex::new(Tracker::default()),
            stream: Mutex::new(None),
            last_backfill: Mutex::new(None),
        }
    }

    pub(crate) fn tracker(&self) -> MutexGuard<'_, Tracker> {
        lock(&self.tracker)
    }

    /// Orders submitted after `after`, oldest first, every page.
    async fn orders_after(&self, after: DateTime<Utc>) -> Result<Vec<AlpacaOrder>, BrokerError> {
        let mut out: Vec<AlpacaOrder> = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor = after;
        for _ in 0..MAX_PAGES {
            let page: Vec<AlpacaOrder> = self
                .rest
                .get(
                    Host::Trading,
                    "/v2/orders",
                    &[
                        ("status", "all".into()),
                        ("after", rfc3339(cursor)),
                        ("direction", "asc".into()),
                        ("limit", ORDER_PAGE.to_string()),
                    ],
                )
                .await?
                .unwrap_or_default();
            let full = page.len() >= ORDER_PAGE;
            let mut newest = cursor;
            let mut progressed = false;
            for o in page {
                if let Some(t) = o.submitted_at.or(o.created_at) {
                    newest = newest.max(t);
                }
                if seen.insert(o.id.clone()) {
                    progressed = true;
                    out.push(o);
                }
            }
            // `after` is exclusive; orders sharing the boundary instant come again and are skipped.
            if !full || !progressed {
                break;
            }
            cursor = newest - ChronoDuration::microseconds(1);
        }
        Ok(out)
    }

    /// FILL activities after `after`, oldest first; `None` when the venue has no such endpoint.
    async fn fills_after(
        &self,
        after: DateTime<Utc>,
    ) -> Result<Option<Vec<AlpacaFillActivity>>, BrokerError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            // Not /v2/account/activities/FILL: that path's answer is a oneOf
            // of two schemas that both accept any fill, so no answer can
            // validate against Alpaca's own contract; this one is an anyOf.
            let mut q = vec![
                ("activity_types", "FILL".to_string()),
                ("after", rfc3339(after)),
                ("direction", "asc".to_string()),
                ("page_size", ACTIVITY_PAGE.to_string()),
            ];
            if let Some(t) = &token {
                q.push(("page_token", t.clone()));
            }
            let Some(page) = self
                .rest
                .get::<Vec<AlpacaFillActivity>>(Host::Trading, "/v2/account/activities", &q)
                .await?
            else {
                return Ok(None);
            };
            let n = page.len();
            let last = page.last().map(|a| a.id.clone());
            out.extend(page);
            if n < ACTIVITY_PAGE || last.is_none() || last == token {
                break;
            }
            token = last;
        }
        Ok(Some(out))
    }

    /// Attributes every unattributed fill of `orders` from the FILL
    /// activities; an order that is final and still not covered (or a venue
    /// without activities) gets its growth as one merged fill.
    async fn attribute_fills(&self, orders: &[AlpacaOrder], since: DateTime<Utc>) -> Result<(), BrokerError> {
        let now = self.clock.now();
        let missing: Vec<&AlpacaOrder> = {
            let t = self.tracker();
            orders.iter().filter(|o| o.filled() > t.filled(&o.id)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let activities = self.fills_after(since).await?;
        let mut t = self.tracker();
        if let Some(acts) = &activities {
            for a in acts {
                if let Some(o) = missing.iter().find(|o| o.id == a.order_id) {
                    t.on_activity(a, o, now);
                }
            }
        }
        for o in missing {
            t.on_order(o, now, true);
        }
        Ok(())
    }

    /// The REST backfill after a (re)connect: every order since the last
    /// backfill (a day back on the first), and their fills.
    pub(crate) async fn backfill(&self) -> Result<usize, BrokerError> {
        let now = self.clock.now();
        let since = lock(&self.last_backfill)
            .map(|t| t - ChronoDuration::minutes(BACKFILL_SLACK_MIN))
            .unwrap_or_else(|| now - ChronoDuration::minutes(FIRST_BACKFILL));
        let orders = self.orders_after(since).await?;
        {
            let mut t = self.tracker();
            for o in &orders {
                t.on_order(o, now, false);
            }
        }
        self.attribute_fills(&orders, since).await?;
        *lock(&self.last_backfill) = Some(now);
        Ok(orders.len())
    }

    /// Resolves orders the stream could not attribute fills for.
    pub(crate) async fn fill_gaps(&self) -> Result<(), BrokerError> {
        let gaps = self.tracker().gaps();
        let mut orders = Vec::new();
        let mut since = self.clock.now();
        for id in gaps {
            if let Some(o) = self
                .rest
                .get::<AlpacaOrder>(Host::Trading, &format!("/v2/orders/{id}"), &[])
                .await?
            {
                if let Some(t) = o.submitted_at.or(o.created_at) {
                    since = since.min(t);
                }
                orders.push(o);
            }
        }
        self.attribute_fills(&orders, since - ChronoDuration::seconds(1))
            .await
    }

    fn stream_block(&self) -> Option<String> {
        let s = lock(&self.stream).clone()?;
        (!s.backfilled()).then(|| {
            format!(
                "alpaca trade_updates stream not backfilled since its last (re)connect{}",
                s.last_error().map(|e| format!(" ({e})")).unwrap_or_default()
            )
        })
    }
}

/// Alpaca execution: account, positions, orders, the event log.
#[derive(Clone)]
pub struct AlpacaBroker {
    pub(crate) shared: Arc<Shared>,
    /// Keeps the stream task alive while any handle exists.
    pub(crate) guard: Option<Arc<crate::websocket::client::StreamGuard>>,
    /// The keel account this key trades for: what [`Broker::account`]
    /// reports, so plans for that account match snapshots of this venue.
    /// `None` reports Alpaca's own account id (no keel plan will match it,
    /// which fails closed).
    pub(crate) keel_account: Option<Arc<str>>,
}

impl std::fmt::Debug for AlpacaBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlpacaBroker").finish_non_exhaustive()
    }
}

fn side_str(s: Side) -> &'static str {
    s.as_str()
}

/// The request for `order`, or why it cannot be sent (nothing is sent then).
pub fn order_request(order: &Order) -> Result<OrderRequest, BrokerError> {
    let bad = |m: String| BrokerError::Rejected { reason: m };
    if order.client_order_id.is_empty() || order.client_order_id.len() > MAX_CLIENT_ORDER_ID {
        return Err(bad(format!(
            "client_order_id of {} characters: Alpaca accepts 1 to {MAX_CLIENT_ORDER_ID}",
            order.client_order_id.len()
        )));
    }
    if order.qty <= Decimal::ZERO {
        return Err(bad(format!("qty = {}: must be positive", order.qty)));
    }
    let limit_price = match (order.order_type, order.limit_price) {
        (OrderType::Limit, Some(p)) if p > Decimal::ZERO => Some(decimal_wire(p)),
        (OrderType::Limit, p) => return Err(bad(format!("limit order with limit_price {p:?}"))),
        (OrderType::Market, _) => None,
    };
    Ok(OrderRequest {
        symbol: order.symbol.to_string(),
        qty: decimal_wire(order.qty),
        side: side_str(order.side),
        order_type: match order.order_type {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
        },
        time_in_force: match order.time_in_force {
            TimeInForce::Day => "day",
            TimeInForce::Ioc => "ioc",
            TimeInForce::Gtc => "gtc",
        },
        limit_price,
        client_order_id: order.client_order_id.clone(),
    })
}

/// Why an account's flags forbid new risk (empty when none do).
pub fn account_blocks(a: &AlpacaAccount) -> Vec<String> {
    let mut out = Vec::new();
    if a.trading_blocked == Some(true) {
        out.push("alpaca account: trading_blocked".to_string());
    }
    if a.account_blocked == Some(true) {
        out.push("alpaca account: account_blocked".to_string());
    }
    if a.trade_suspended_by_user == Some(true) {
        out.push("alpaca account: trade_suspended_by_user".to_string());
    }
    match a.status.as_deref() {
        Some("ACTIVE") => {}
        other => out.push(format!(
            "alpaca account: status {:?} is not ACTIVE",
            other.unwrap_or("absent")
        )),
    }
    out
}

/// A venue clock that disagrees with keel's calendar at `now` (fail closed).
pub fn clock_block(venue_open: bool, now: DateTime<Utc>) -> Option<String> {
    let ours = keel_calendar::is_open(now);
    (venue_open != ours).then(|| {
        format!(
            "alpaca clock says the market is {} but keel's NYSE calendar says {} at {}",
            if venue_open { "open" } else { "closed" },
            if ours { "open" } else { "closed" },
            rfc3339(now)
        )
    })
}

impl AlpacaBroker {
    /// Builds the broker over a REST client (see [`crate::connect`]).
    pub fn new(rest: RestClient, clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::new(Shared::new(rest, clock)),
            guard: None,
            keel_account: None,
        }
    }

    /// The shared request budget's counters.
    pub fn stats(&self) -> crate::common::rate_limit::BudgetStats {
        self.shared.rest.stats()
    }

    /// Starts the trade_updates stream task (authenticate, listen, watchdog,
    /// reconnect, backfill). Until its first backfill, `trading_blocks` is
    /// non-empty and `submit` refuses (sending nothing). Use
    /// [`crate::Venue::start_stream`], which also stops it on drop.
    pub(crate) fn start_stream(&self, cfg: &AlpacaConfig) -> Arc<StreamStatus> {
        crate::websocket::client::spawn(self.shared.clone(), cfg)
    }

    async fn lookup(&self, client_order_id: &str) -> Result<Option<AlpacaOrder>, BrokerError> {
        self.shared
            .rest
            .get(
                Host::Trading,
                "/v2/orders:by_client_order_id",
                &[("client_order_id", client_order_id.to_string())],
            )
            .await
    }
}

#[async_trait]
impl Broker for AlpacaBroker {
    async fn account(&self) -> Result<BrokerAccount, BrokerError> {
        let a: AlpacaAccount = self
            .shared
            .rest
            .get(Host::Trading, "/v2/account", &[])
            .await?
            .ok_or_else(|| BrokerError::Other("GET /v2/account: 404".into()))?;
        Ok(BrokerAccount {
            account_id: match &self.keel_account {
                Some(k) => k.to_string(),
                None => a.id.clone(),
            },
            cash: a.cash,
            equity: a.equity.unwrap_or(a.cash),
            buying_power: a.buying_power.unwrap_or(a.cash),
        })
    }

    async fn positions(&self) -> Result<Vec<Position>, BrokerError> {
        let ps: Vec<AlpacaPosition> = self
            .shared
            .rest
            .get(Host::Trading, "/v2/positions", &[])
            .await?
            .unwrap_or_default();
        let mut out = Vec::new();
        for p in ps {
            let symbol = Symbol::new(&p.symbol)
                .map_err(|e| BrokerError::Other(format!("position symbol {:?}: {e}", p.symbol)))?;
            // Some answers carry an unsigned qty with side = short.
            let qty = if p.side.as_deref() == Some("short") && p.qty > Decimal::ZERO {
                -p.qty
            } else {
                p.qty
            };
            if qty.is_zero() {
                continue;
            }
            out.push(Position {
                symbol,
                qty,
                avg_cost: p.avg_entry_price.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    async fn open_orders(&self) -> Result<Vec<OpenOrder>, BrokerError> {
        let now = self.shared.clock.now();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut after: Option<DateTime<Utc>> = None;
        for _ in 0..MAX_PAGES {
            let mut q = vec![
                ("status", "open".to_string()),
                ("direction", "asc".to_string()),
                ("limit", ORDER_PAGE.to_string()),
            ];
            if let Some(a) = after {
                q.push(("after", rfc3339(a)));
            }
            let page: Vec<AlpacaOrder> = self
                .shared
                .rest
                .get(Host::Trading, "/v2/orders", &q)
                .await?
                .unwrap_or_default();
            let full = page.len() >= ORDER_PAGE;
            let mut progressed = false;
            for o in page {
                if let Some(t) = o.submitted_at.or(o.created_at) {
                    after = Some(after.map_or(t, |a| a.max(t)));
                }
                if !seen.insert(o.id.clone()) {
                    continue;
                }
                progressed = true;
                let bo = crate::websocket::handler::to_broker_order(&o, Vec::new(), now)?;
                if bo.is_open() {
                    out.push(bo.to_open_order());
                }
            }
            if !full || !progressed {
                break;
            }
            after = after.map(|a| a - ChronoDuration::microseconds(1));
        }
        Ok(out)
    }

    async fn submit(&self, order: &Order) -> Result<BrokerOrder, BrokerError> {
        let req = order_request(order)?;
        if let Some(why) = self.shared.stream_block() {
            return Err(BrokerError::Retryable {
                message: format!("{why}; nothing sent"),
                retry_after: None,
            });
        }
        let o = self.shared.rest.submit(&req).await?;
        let now = self.shared.clock.now();
        let mut t = self.shared.tracker();
        t.on_order(&o, now, false);
        t.broker_order(&o, now)
    }

    async fn cancel(&self, client_order_id: &str) -> Result<(), BrokerError> {
        use keel_domain::OrderStatus as K;
        let Some(o) = self.lookup(client_order_id).await? else {
            return Err(BrokerError::Rejected {
                reason: format!("cancel {client_order_id}: Alpaca has no such order"),
            });
        };
        let settled = |o: &AlpacaOrder| -> Option<Result<(), BrokerError>> {
            match o.status.to_keel(o.filled()) {
                K::Canceled | K::Expired | K::Rejected => Some(Ok(())),
                K::Filled => Some(Err(BrokerError::Rejected {
                    reason: format!("cancel {client_order_id}: already filled"),
                })),
                _ => None,
            }
        };
        if let Some(r) = settled(&o) {
            return r;
        }
        if self.shared.rest.cancel(&o.id).await? {
            return Ok(());
        }
        // 422 not cancelable: say why from its current state.
        match self.lookup(client_order_id).await? {
            Some(now) => settled(&now).unwrap_or_else(|| {
                Err(BrokerError::Rejected {
                    reason: format!(
                        "cancel {client_order_id}: not cancelable (status {:?})",
                        now.status
                    ),
                })
            }),
            None => Err(BrokerError::Rejected {
                reason: format!("cancel {client_order_id}: Alpaca no longer has the order"),
            }),
        }
    }

    async fn order_by_client_id(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        let Some(o) = self.lookup(client_order_id).await? else {
            return Ok(None);
        };
        let now = self.shared.clock.now();
        self.shared.tracker().on_order(&o, now, false);
        let since = o.submitted_at.or(o.created_at).unwrap_or(now) - ChronoDuration::seconds(1);
        self.shared
            .attribute_fills(std::slice::from_ref(&o), since)
            .await?;
        let bo = self.shared.tracker().broker_order(&o, now)?;
        Ok(Some(bo))
    }

    async fn events_since(&self, cursor: u64) -> Result<Vec<(u64, BrokerEvent)>, BrokerError> {
        Ok(self.shared.tracker().events_since(cursor))
    }

    fn stream_down_for(&self) -> Option<std::time::Duration> {
        lock(&self.shared.stream).clone()?.down_for()
    }

    async fn trading_blocks(&self) -> Result<Vec<String>, BrokerError> {
        let a: AlpacaAccount = self
            .shared
            .rest
            .get(Host::Trading, "/v2/account", &[])
            .await?
            .ok_or_else(|| BrokerError::Other("GET /v2/account: 404".into()))?;
        let mut out = account_blocks(&a);
        let c: AlpacaClock = self
            .shared
            .rest
            .get(Host::Trading, "/v2/clock", &[])
            .await?
            .ok_or_else(|| BrokerError::Other("GET /v2/clock: 404".into()))?;
        out.extend(clock_block(c.is_open, self.shared.clock.now()));
        out.extend(self.shared.stream_block());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn order(t: OrderType, p: Option<Decimal>) -> Order {
        Order {
            client_order_id: "keel-a-s1-AAPL-buy-0".into(),
            symbol: Symbol::new("AAPL").unwrap(),
            side: Side::Buy,
            qty: dec!(10.500),
            order_type: t,
            limit_price: p,
            time_in_force: TimeInForce::Day,
        }
    }

    #[test]
    fn requests_are_built_or_refused_before_sending() {
        let r = order_request(&order(OrderType::Limit, Some(dec!(190.120)))).unwrap();
        assert_eq!(
            (r.qty.as_str(), r.limit_price.as_deref()),
            ("10.5", Some("190.12"))
        );
        assert_eq!((r.order_type, r.time_in_force, r.side), ("limit", "day", "buy"));
        assert!(order_request(&order(OrderType::Limit, None)).is_err());
        assert!(order_request(&order(OrderType::Market, None))
            .unwrap()
            .limit_price
            .is_none());
        let mut long = order(OrderType::Market, None);
        long.client_order_id = "x".repeat(129);
        assert!(order_request(&long).is_err());
    }

    #[test]
    fn account_flags_and_status_block() {
        let a: AlpacaAccount = serde_json::from_str(r#"{"id":"a","cash":"1","status":"ACTIVE"}"#).unwrap();
        assert!(account_blocks(&a).is_empty());
        let a: AlpacaAccount = serde_json::from_str(
            r#"{"id":"a","cash":"1","status":"ACCOUNT_CLOSED","trading_blocked":true,"account_blocked":true,"trade_suspended_by_user":true}"#,
        )
        .unwrap();
        assert_eq!(account_blocks(&a).len(), 4);
    }

    #[test]
    fn a_clock_disagreement_blocks() {
        // Tuesday 2026-12-01 15:00Z is inside the NYSE session.
        let open = DateTime::parse_from_rfc3339("2026-12-01T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(clock_block(true, open).is_none());
        assert!(clock_block(false, open).unwrap().contains("closed"));
        let night = DateTime::parse_from_rfc3339("2026-12-01T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(clock_block(false, night).is_none());
        assert!(clock_block(true, night).is_some());
    }
}
