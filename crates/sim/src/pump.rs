//! The order-event stream consumer.
//!
//! The worker itself learns about fills by looking orders up by client order
//! id; a live engine also listens to the broker's event stream. The pump is
//! that listener: every step it reads the paper broker's durable stream from
//! its cursor — through dropped, duplicated and reordered events and
//! disconnects — and applies what it reads to the store through the same
//! idempotent event path the worker uses. Fills are applied as they come
//! (deduplicated by fill id in the store); a terminal event (cancel, expiry,
//! reject) makes it look the order up and adopt the broker's full record, so
//! a fill whose event was dropped is never lost behind a close. Anything it
//! misses, the worker's own lookups recover; the checker proves the two
//! paths together converge on the broker's books.

use crate::broker::classify;
use crate::rng::Rng;
use crate::trace::Trace;
use chrono::{DateTime, Utc};
use keel_broker::{Broker, BrokerEvent, BrokerOrder, PaperBroker};
use keel_domain::{Event, OrderStatus};
use keel_store::Store;
use std::collections::{BTreeMap, BTreeSet};

/// The events the worker records for what the broker says about an order
/// (the same list as the worker's own adoption, so the two deduplicate).
pub(crate) fn adopt_events(bo: &BrokerOrder, now: DateTime<Utc>) -> Vec<Event> {
    let mut events = vec![Event::OrderAccepted {
        client_order_id: bo.client_order_id.clone(),
        broker_order_id: bo.broker_order_id.clone(),
        at: bo.submitted_at,
    }];
    for f in &bo.fills {
        events.push(Event::OrderFilled {
            client_order_id: bo.client_order_id.clone(),
            fill_id: f.fill_id.clone(),
            symbol: bo.symbol.clone(),
            side: bo.side,
            qty: f.qty,
            price: f.price,
            at: f.at,
        });
    }
    if bo.status.is_final() {
        events.push(Event::OrderClosed {
            client_order_id: bo.client_order_id.clone(),
            status: bo.status,
            reason: bo.reason.clone(),
            at: now,
        });
    }
    events
}

/// A stable identity for a stream event, to count duplicates.
fn key(e: &BrokerEvent) -> String {
    match e {
        BrokerEvent::Fill { fill, .. } => format!("fill:{}", fill.fill_id),
        other => format!("{}:{}", other.kind(), other.client_order_id()),
    }
}

/// How many distinct events the venue emitted for these orders (before
/// injected drops): an accept, each fill and a cancel or expiry, or a reject.
pub(crate) fn events_emitted(orders: &[BrokerOrder]) -> u64 {
    orders
        .iter()
        .map(|o| match o.status {
            OrderStatus::Rejected => 1,
            OrderStatus::Canceled | OrderStatus::Expired => 2 + o.fills.len() as u64,
            _ => 1 + o.fills.len() as u64,
        })
        .sum()
}

/// Stream faults in force.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamFaults {
    pub reorder: f64,
    pub disconnect: f64,
}

/// The stream consumer.
pub(crate) struct StreamPump {
    cursor: u64,
    seen: BTreeSet<String>,
    rng: Rng,
}

impl StreamPump {
    pub fn new(seed: u64) -> Self {
        Self {
            cursor: 0,
            seen: BTreeSet::new(),
            rng: Rng::new(seed, "stream"),
        }
    }

    /// Distinct events read so far.
    pub fn distinct_seen(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Reads and applies what the stream has. `Err` only when the store
    /// refuses an event read from the venue, which is itself a violation.
    pub async fn pump(
        &mut self,
        paper: &PaperBroker,
        store: &dyn Store,
        now: DateTime<Utc>,
        faults: StreamFaults,
        tally: &mut BTreeMap<String, u64>,
        trace: &mut Trace,
    ) -> Result<(), String> {
        let mut count = |k: &str| *tally.entry(k.to_string()).or_default() += 1;
        let cut = self.rng.chance(faults.disconnect);
        let cut_point = self.rng.next_u64();
        let reorder = self.rng.chance(faults.reorder);
        let shuffle_seed = self.rng.next_u64();
        let mut events = match paper.events_since(self.cursor).await {
            Ok(v) => v,
            Err(e) => {
                if let Some(k) = classify(&e) {
                    count(k);
                }
                trace.push(format!(
                    "  stream: read failed ({e}); resume from {}",
                    self.cursor
                ));
                return Ok(());
            }
        };
        if events.is_empty() {
            return Ok(());
        }
        if cut {
            // The connection drops mid-batch: only a prefix (maybe nothing) arrives.
            let keep = (cut_point % events.len() as u64) as usize;
            events.truncate(keep);
            count("stream_disconnect");
            trace.push(format!("  stream: disconnected after {keep} event(s)"));
        }
        let Some(last) = events.last().map(|(s, _)| *s) else {
            return Ok(());
        };
        self.cursor = last;
        if reorder && events.len() > 1 {
            let mut r = Rng::new(shuffle_seed, "shuffle");
            for i in (1..events.len()).rev() {
                let j = r.below(i as u64 + 1) as usize;
                events.swap(i, j);
            }
            count("reorder_events");
            trace.push(format!(
                "  stream: {} events delivered out of order",
                events.len()
            ));
        }
        for (_, e) in &events {
            if !self.seen.insert(key(e)) {
                count("duplicate_event");
            }
            let result = match e {
                BrokerEvent::Accepted { order } => store
                    .append(&Event::OrderAccepted {
                        client_order_id: order.client_order_id.clone(),
                        broker_order_id: order.broker_order_id.clone(),
                        at: order.submitted_at,
                    })
                    .await
                    .map(|_| ()),
                BrokerEvent::Fill {
                    client_order_id,
                    fill,
                    symbol,
                    side,
                } => store
                    .append(&Event::OrderFilled {
                        client_order_id: client_order_id.clone(),
                        fill_id: fill.fill_id.clone(),
                        symbol: symbol.clone(),
                        side: *side,
                        qty: fill.qty,
                        price: fill.price,
                        at: fill.at,
                    })
                    .await
                    .map(|_| ()),
                BrokerEvent::Canceled { client_order_id }
                | BrokerEvent::Expired { client_order_id }
                | BrokerEvent::Rejected { client_order_id, .. } => {
                    match paper.order_by_client_id(client_order_id).await {
                        Ok(Some(bo)) => store.append_batch(&adopt_events(&bo, now)).await.map(|_| ()),
                        Ok(None) => Ok(()),
                        Err(e) => {
                            if let Some(k) = classify(&e) {
                                count(k);
                            }
                            Ok(())
                        }
                    }
                }
            };
            if let Err(err) = result {
                return Err(format!(
                    "the store refused broker event {} for {}: {err}",
                    e.kind(),
                    e.client_order_id()
                ));
            }
        }
        Ok(())
    }
}
