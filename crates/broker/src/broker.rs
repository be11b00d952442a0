//! The venue interface.

use crate::{BrokerAccount, BrokerError, BrokerEvent, BrokerOrder};
use async_trait::async_trait;
use keel_domain::{AccountSnapshot, OpenOrder, Order, Position, Quote, Symbol};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// A brokerage venue. Object-safe: the worker holds an `Arc<dyn Broker>`.
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

    /// Latest quotes; symbols the broker does not know are absent from the map.
    async fn quotes(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Quote>, BrokerError>;

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

    /// Closes of the last `n` completed sessions, oldest first.
    async fn daily_closes(&self, symbol: &Symbol, n: usize) -> Result<Vec<Decimal>, BrokerError>;

    /// Average daily volume in shares; unknown symbols are absent.
    async fn adv(&self, symbols: &[Symbol]) -> Result<BTreeMap<Symbol, Decimal>, BrokerError>;

    /// Account, positions, open orders and quotes in one snapshot. Quotes cover
    /// `symbols` plus every held symbol and every symbol with a working order,
    /// so the snapshot can always be marked to market.
    async fn snapshot(&self, symbols: &[Symbol]) -> Result<AccountSnapshot, BrokerError> {
        let account = self.account().await?;
        let positions = self.positions().await?;
        let open_orders = self.open_orders().await?;
        let wanted: BTreeSet<Symbol> = symbols
            .iter()
            .cloned()
            .chain(positions.iter().map(|p| p.symbol.clone()))
            .chain(open_orders.iter().map(|o| o.symbol.clone()))
            .collect();
        let wanted: Vec<Symbol> = wanted.into_iter().collect();
        let quotes = self.quotes(&wanted).await?;
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
}
