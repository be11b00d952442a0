//! The order tracker the stream and the REST backfill both feed: the fill
//! ledger, the latest snapshot of every order, and the local event log that
//! [`keel_broker::Broker::events_since`] serves (Alpaca has no replay and no
//! sequence numbers, so the sequence is ours).

use super::messages::{TradeEvent, TradeUpdate};
use crate::fills::{FillLedger, Observation, Observed};
use crate::http::models::{AlpacaFillActivity, AlpacaOrder, AlpacaOrderStatus};
use chrono::{DateTime, Utc};
use keel_broker::{BrokerError, BrokerEvent, BrokerOrder};
use keel_domain::{OrderStatus, OrderType, Side, Symbol};
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet, VecDeque};

/// Events kept for `events_since`; older ones are dropped (a consumer that
/// far behind resyncs by looking orders up, as after any gap).
const MAX_LOG: usize = 100_000;

#[derive(Debug, Clone)]
struct OrderState {
    order: AlpacaOrder,
    accepted_logged: bool,
    final_logged: bool,
}

/// Orders, fills and the event log, deduplicated.
#[derive(Debug, Default)]
pub struct Tracker {
    ledger: FillLedger,
    orders: HashMap<String, OrderState>,
    by_client: HashMap<String, String>,
    log: VecDeque<(u64, BrokerEvent)>,
    last_seq: u64,
    gaps: HashSet<String>,
}

/// keel's view of an Alpaca order, with the fills derived so far.
pub fn to_broker_order(
    o: &AlpacaOrder,
    fills: Vec<keel_broker::BrokerFill>,
    now: DateTime<Utc>,
) -> Result<BrokerOrder, BrokerError> {
    let symbol = Symbol::new(&o.symbol)
        .map_err(|e| BrokerError::Other(format!("order {}: symbol {:?}: {e}", o.id, o.symbol)))?;
    let side = match o.side.as_str() {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        other => {
            return Err(BrokerError::Other(format!(
                "order {}: side {other:?} is neither buy nor sell",
                o.id
            )))
        }
    };
    let filled = o.filled();
    Ok(BrokerOrder {
        broker_order_id: o.id.clone(),
        client_order_id: o.client_order_id.clone(),
        symbol,
        side,
        qty: o.qty.unwrap_or(filled),
        filled_qty: filled,
        avg_fill_price: o.filled_avg_price.filter(|_| filled > Decimal::ZERO),
        status: o.status.to_keel(filled),
        limit_price: o.limit_price,
        order_type: match o.order_kind() {
            Some("limit") => OrderType::Limit,
            _ => OrderType::Market,
        },
        submitted_at: o.submitted_at.or(o.created_at).unwrap_or(now),
        fills,
        reason: match &o.status {
            AlpacaOrderStatus::Other(s) => Some(format!("alpaca status {s:?}")),
            _ => None,
        },
    })
}

fn when(o: &AlpacaOrder, now: DateTime<Utc>) -> DateTime<Utc> {
    o.filled_at.or(o.updated_at).unwrap_or(now)
}

impl Tracker {
    fn push(&mut self, ev: BrokerEvent) {
        self.last_seq += 1;
        self.log.push_back((self.last_seq, ev));
        while self.log.len() > MAX_LOG {
            self.log.pop_front();
        }
    }

    fn observe(&mut self, o: &AlpacaOrder, obs: &Observation<'_>) {
        match self.ledger.observe(obs) {
            Observed::Fill(fill) => {
                self.gaps.remove(&o.id);
                if let (Ok(symbol), Ok(bo)) = (Symbol::new(&o.symbol), to_broker_order(o, Vec::new(), obs.at))
                {
                    self.push(BrokerEvent::Fill {
                        client_order_id: o.client_order_id.clone(),
                        fill,
                        symbol,
                        side: bo.side,
                    });
                }
            }
            Observed::Gap => {
                self.gaps.insert(o.id.clone());
            }
            Observed::Known => {}
        }
    }

    /// A REST snapshot (or the order inside a stream event): acceptance,
    /// growth of `filled_qty` (merged only when the order is final and
    /// `last_resort` says its activities cannot be had), final state.
    pub fn on_order(&mut self, o: &AlpacaOrder, now: DateTime<Utc>, last_resort: bool) {
        let st = self.orders.entry(o.id.clone()).or_insert_with(|| OrderState {
            order: o.clone(),
            accepted_logged: false,
            final_logged: false,
        });
        // A stale snapshot must not roll a newer one back, nor reopen or
        // rename a final one.
        let was_final = st.order.status.to_keel(st.order.filled()).is_final();
        if o.filled() >= st.order.filled() && !was_final {
            st.order = o.clone();
        }
        self.by_client.insert(o.client_order_id.clone(), o.id.clone());
        let keel_status = o.status.to_keel(o.filled());
        let log_accept = !st.accepted_logged && keel_status != OrderStatus::Rejected;
        if log_accept {
            st.accepted_logged = true;
            if let Ok(mut bo) = to_broker_order(o, Vec::new(), now) {
                bo.filled_qty = Decimal::ZERO;
                bo.avg_fill_price = None;
                bo.status = OrderStatus::Accepted;
                self.push(BrokerEvent::Accepted { order: bo });
            }
        }
        if o.filled() > self.ledger.filled(&o.id) {
            let obs = Observation {
                order_id: &o.id,
                execution_id: None,
                cum_qty: o.filled(),
                order_qty: o.qty,
                fill: None,
                avg_price: o.filled_avg_price,
                at: when(o, now),
                merge: last_resort && keel_status.is_final(),
            };
            self.observe(o, &obs);
        }
        let st = self.orders.get_mut(&o.id).map(|s| {
            let first = keel_status.is_final() && !s.final_logged;
            if first {
                s.final_logged = true;
            }
            first
        });
        if st == Some(true) {
            let cid = o.client_order_id.clone();
            match keel_status {
                OrderStatus::Canceled => self.push(BrokerEvent::Canceled { client_order_id: cid }),
                OrderStatus::Expired => self.push(BrokerEvent::Expired { client_order_id: cid }),
                OrderStatus::Rejected => self.push(BrokerEvent::Rejected {
                    client_order_id: cid,
                    reason: "rejected by Alpaca".into(),
                }),
                _ => {}
            }
        }
    }

    /// A trade_updates event.
    pub fn on_trade(&mut self, u: &TradeUpdate, now: DateTime<Utc>) {
        let at = u.timestamp.unwrap_or(now);
        if u.event.is_execution() {
            let obs = Observation {
                order_id: &u.order.id,
                execution_id: u.execution_id.as_deref(),
                cum_qty: u.order.filled(),
                order_qty: u.order.qty,
                fill: u.qty.zip(u.price),
                avg_price: u.order.filled_avg_price,
                at,
                merge: false,
            };
            // Register the order first so an execution of an order first seen
            // here is preceded by its acceptance in the log.
            self.on_order_head(&u.order, now);
            self.observe(&u.order, &obs);
        }
        if let TradeEvent::Other(name) = &u.event {
            tracing::info!(event = %name, order_id = %u.order.id, "unknown trade_updates event; order state taken from its snapshot");
        }
        self.on_order(&u.order, now, false);
    }

    fn on_order_head(&mut self, o: &AlpacaOrder, now: DateTime<Utc>) {
        if !self.orders.contains_key(&o.id) {
            let mut head = o.clone();
            head.filled_qty = Some(self.ledger.filled(&o.id));
            head.status = AlpacaOrderStatus::New;
            self.on_order(&head, now, false);
        }
    }

    /// A FILL activity (REST): one execution, exactly.
    pub fn on_activity(&mut self, a: &AlpacaFillActivity, order: &AlpacaOrder, now: DateTime<Utc>) {
        let Some(cum) = a.cum_qty else { return };
        let obs = Observation {
            order_id: &a.order_id,
            execution_id: Some(&a.id),
            cum_qty: cum,
            order_qty: order.qty,
            fill: Some((a.qty, a.price)),
            avg_price: None,
            at: a.transaction_time.unwrap_or(now),
            merge: false,
        };
        self.on_order_head(order, now);
        self.observe(order, &obs);
    }

    /// keel's view of `o` with every fill derived for it.
    pub fn broker_order(&self, o: &AlpacaOrder, now: DateTime<Utc>) -> Result<BrokerOrder, BrokerError> {
        to_broker_order(o, self.ledger.fills(&o.id), now)
    }

    /// Quantity accounted for by derived fills.
    pub fn filled(&self, order_id: &str) -> Decimal {
        self.ledger.filled(order_id)
    }

    /// Orders whose fills could not all be attributed (activities needed).
    pub fn gaps(&self) -> Vec<String> {
        self.gaps.iter().cloned().collect()
    }

    /// The latest snapshot of an order by client id.
    pub fn order_by_client(&self, client_order_id: &str) -> Option<&AlpacaOrder> {
        self.by_client
            .get(client_order_id)
            .and_then(|id| self.orders.get(id))
            .map(|s| &s.order)
    }

    /// Every logged event after `cursor`.
    pub fn events_since(&self, cursor: u64) -> Vec<(u64, BrokerEvent)> {
        self.log.iter().filter(|(s, _)| *s > cursor).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::messages::Incoming;
    use crate::websocket::parse::decode;
    use rust_decimal_macros::dec;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_600_000, 0).unwrap()
    }

    fn update(event: &str, exec: &str, fill_qty: &str, cum: &str, status: &str) -> TradeUpdate {
        let text = format!(
            r#"{{"stream":"trade_updates","data":{{"event":"{event}","execution_id":"{exec}","price":"100","qty":"{fill_qty}",
               "order":{{"id":"o1","client_order_id":"c1","symbol":"AAPL","side":"buy","qty":"10","filled_qty":"{cum}",
                        "filled_avg_price":"100","type":"market","status":"{status}"}}}}}}"#
        );
        match decode(text.as_bytes()) {
            Incoming::Trade(u) => *u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stream_events_become_one_accept_fills_once_and_one_close() {
        let mut t = Tracker::default();
        t.on_trade(&update("new", "", "0", "0", "new"), now());
        t.on_trade(&update("partial_fill", "x1", "4", "4", "partially_filled"), now());
        t.on_trade(&update("partial_fill", "x1", "4", "4", "partially_filled"), now()); // duplicate
        t.on_trade(&update("fill", "x2", "6", "10", "filled"), now());
        t.on_trade(&update("canceled", "", "0", "10", "canceled"), now()); // late, odd: still one close
        let ev = t.events_since(0);
        let kinds: Vec<&str> = ev.iter().map(|(_, e)| e.kind()).collect();
        assert_eq!(kinds, ["accepted", "fill", "fill"], "{ev:?}");
        let seqs: Vec<u64> = ev.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(t.events_since(2).len(), 1);
        assert_eq!(t.filled("o1"), dec!(10));
        let o = t.order_by_client("c1").unwrap().clone();
        let bo = t.broker_order(&o, now()).unwrap();
        assert_eq!(bo.status, OrderStatus::Filled);
        assert_eq!(bo.fills.iter().map(|f| f.qty).sum::<Decimal>(), dec!(10));
    }

    #[test]
    fn a_missed_fill_is_a_gap_until_activities_or_a_final_last_resort() {
        let mut t = Tracker::default();
        t.on_trade(&update("fill", "x2", "6", "10", "filled"), now());
        assert_eq!(t.filled("o1"), Decimal::ZERO);
        assert_eq!(t.gaps(), vec!["o1".to_string()]);
        let o = t.order_by_client("c1").unwrap().clone();
        t.on_order(&o, now(), true);
        assert_eq!(t.filled("o1"), dec!(10));
        assert!(t.gaps().is_empty());
    }

    #[test]
    fn unknown_status_is_never_final() {
        let mut t = Tracker::default();
        t.on_trade(&update("mystery", "", "0", "0", "mystery_status"), now());
        let o = t.order_by_client("c1").unwrap().clone();
        let bo = t.broker_order(&o, now()).unwrap();
        assert!(bo.is_open());
        assert!(bo.reason.unwrap().contains("mystery_status"));
    }
}
