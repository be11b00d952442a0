//! The venue interfaces: [`Broker`] (execution) and [`MarketData`] (prices and
//! instrument facts), kept apart so one venue's execution can be paired with
//! another source's data.

use crate::{AssetFacts, BrokerAccount, BrokerError, BrokerEvent, BrokerOrder};
use async_trait::async_trait;
use keel_domain::{AccountSnapshot, OpenOrder, Order, Position, Quote, Symbol};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// A brokerage venue's execution side. Object-safe: the worker holds an `Arc<dyn Broker>`.
///
/// Every method may fail with any [`BrokerError`]; only `submit` and `cancel`
/// change state at the broker, and only they return
/// [`BrokerError::UnknownOutcome`].
#[async_trait]
pub trait Broker: Send + Sync {
    /// Balances.
    async fn account(&self) -> Result<BrokerAccount, BrokerError>;

    /// Current holdings (non-zero quantities only).
    async fn positions(&self) -> Result<Vec<Position>, BrokerError>;

    /// Orders still working.
    async fn open_orders(&self) -> Result<Vec<OpenOrder>, BrokerError>;

    /// Sends an order. A second submit with an existing client order id fails
    /// with [`BrokerError::DuplicateClientOrderId`] and changes nothing.
    async fn submit(&self, order: &Order) -> Result<BrokerOrder, BrokerError>;

    /// Cancels a working order. Cancelling an order that is already
    /// cancelled, expired or rejected succeeds; a filled or unknown order is
    /// [`BrokerError::Rejected`].
    async fn cancel(&self, client_order_id: &str) -> Result<(), BrokerError>;

    /// The order with this client order id, or `None` if the broker never
    /// received it.
    async fn order_by_client_id(&self, client_order_id: &str) -> Result<Option<BrokerOrder>, BrokerError>;

    /// Durable, resumable order-event stream: every event with sequence number
    /// greater than `cursor`, in order. Pass the last sequence number seen to resume.
    async fn events_since(&self, cursor: u64) -> Result<Vec<(u64, BrokerEvent)>, BrokerError>;

    /// How long the venue's order-update stream has been down (not
    /// connected, or connected but not yet backfilled). `None` when the venue
    /// has no such stream or it is up. A long outage is an operator alert.
    fn stream_down_for(&self) -> Option<std::time::Duration> {
        None
    }

    /// Why the venue will not take new risk now: account flags such as
    /// `trading_blocked`, a venue clock that disagrees with keel's calendar, a
    /// trade stream not yet backfilled. Empty when trading may proceed. The
    /// worker fails closed on any entry and records it as the reason.
    async fn trading_blocks(&self) -> Result<Vec<String>, BrokerError> {
        Ok(Vec::new())
    }
}

/// Prices and instrument facts. Object-safe: the worker holds an `Arc<dyn MarketData>`.
#[async_trait]
pub trait MarketData: Send + Sync {
    /// Latest quotes; symbols the source does not know are absent from the map.
    async fn quotes(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Quote>, BrokerError>;

    /// Closes of the last `n` completed sessions, oldest first.
    async fn daily_closes(&self, symbol: &Symbol, n: usize) -> Result<Vec<Decimal>, BrokerError>;

    /// Average daily volume in shares; unknown symbols are absent.
    async fn adv(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Decimal>, BrokerError>;

    /// What the venue allows for each symbol (tradable, fractionable,
    /// shortable); unknown symbols are absent.
    async fn assets(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, AssetFacts>, BrokerError>;
}

/// Account, positions, open orders and quotes in one snapshot. Quotes cover
/// `symbols` plus every held symbol and every symbol with a working order,
/// so the snapshot can always be marked to market.
pub async fn snapshot(
    broker: &dyn Broker,
    market: &dyn MarketData,
    symbols: &[Symbol],
) -> Result<AccountSnapshot, BrokerError> {
    let account = broker.account().await?;
    let positions = broker.positions().await?;
    let open_orders = broker.open_orders().await?;
    let wanted: BTreeSet<Symbol> = symbols
        .iter()
        .cloned()
        .chain(positions.iter().map(|p| p.symbol.clone()))
        .chain(open_orders.iter().map(|o| o.symbol.clone()))
        .collect();
    let wanted: Vec<Symbol> = wanted.into_iter().collect();
    let quotes = market.quotes(&wanted).await?;
    Ok(AccountSnapshot {
        account_id: account.account_id,
        cash: account.cash,
        equity: account.equity,
        buying_power: account.buying_power,
        positions: positions.into_iter().map(|p| (p.symbol.clone(), p)).collect(),
        open_orders,
        quotes,
    })
}
