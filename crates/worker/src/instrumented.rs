//! A [`Broker`] and [`MarketData`] decorator that records request latency and
//! errors per operation, so every venue (paper or real) is measured the same way.

use async_trait::async_trait;
use keel_broker::{AssetFacts, Broker, BrokerAccount, BrokerError, BrokerEvent, BrokerOrder, MarketData};
use keel_domain::metrics_names as m;
use keel_domain::{Decimal, OpenOrder, Order, Position, Quote, Symbol};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// Wraps a venue; behaviour is unchanged, only measured.
pub struct Instrumented<T: ?Sized>(pub Arc<T>);

fn kind(e: &BrokerError) -> &'static str {
    match e {
        BrokerError::Retryable { .. } => "retryable",
        BrokerError::Rejected { .. } => "rejected",
        BrokerError::UnknownOutcome { .. } => "unknown_outcome",
        BrokerError::DuplicateClientOrderId => "duplicate_client_order_id",
        BrokerError::Other(_) => "other",
    }
}

async fn timed<T>(
    op: &'static str,
    f: impl Future<Output = Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    // Latency is a measurement of the real world, not a decision input, so it reads the OS clock.
    let start = Instant::now();
    let r = f.await;
    metrics::histogram!(m::BROKER_REQUEST_DURATION, m::LABEL_OP => op).record(start.elapsed().as_secs_f64());
    if let Err(e) = &r {
        metrics::counter!(m::BROKER_ERRORS, m::LABEL_OP => op, m::LABEL_KIND => kind(e)).increment(1);
    }
    r
}

#[async_trait]
impl Broker for Instrumented<dyn Broker> {
    async fn account(&self) -> Result<BrokerAccount, BrokerError> {
        timed("account", self.0.account()).await
    }
    async fn positions(&self) -> Result<Vec<Position>, BrokerError> {
        timed("positions", self.0.positions()).await
    }
    async fn open_orders(&self) -> Result<Vec<OpenOrder>, BrokerError> {
        timed("open_orders", self.0.open_orders()).await
    }
    async fn submit(&self, order: &Order) -> Result<BrokerOrder, BrokerError> {
        timed("submit_order", self.0.submit(order)).await
    }
    async fn cancel(&self, client_order_id: &str) -> Result<(), BrokerError> {
        timed("cancel_order", self.0.cancel(client_order_id)).await
    }
    async fn order_by_client_id(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        timed("order_by_client_id", self.0.order_by_client_id(client_order_id)).await
    }
    async fn events_since(&self, cursor: u64) -> Result<Vec<(u64, BrokerEvent)>, BrokerError> {
        timed("events_since", self.0.events_since(cursor)).await
    }
    async fn trading_blocks(&self) -> Result<Vec<String>, BrokerError> {
        timed("trading_blocks", self.0.trading_blocks()).await
    }

    fn stream_down_for(&self) -> Option<std::time::Duration> {
        self.0.stream_down_for()
    }
}

#[async_trait]
impl MarketData for Instrumented<dyn MarketData> {
    async fn quotes(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Quote>, BrokerError> {
        timed("quotes", self.0.quotes(symbols)).await
    }
    async fn daily_closes(&self, symbol: &Symbol, n: usize) -> Result<Vec<Decimal>, BrokerError> {
        timed("daily_closes", self.0.daily_closes(symbol, n)).await
    }
    async fn adv(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Decimal>, BrokerError> {
        timed("adv", self.0.adv(symbols)).await
    }
    async fn assets(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, AssetFacts>, BrokerError> {
        timed("assets", self.0.assets(symbols)).await
    }
}
