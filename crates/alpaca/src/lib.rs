//! keel's Alpaca venue adapter, shaped like NautilusTrader's adapters:
//! `common` (keys, the request budget, retries, hosts, exact numbers),
//! `http` (REST client, tolerant models, outcome classification),
//! `websocket` (trade_updates), [`execution`] ([`keel_broker::Broker`]) and
//! [`data`] ([`keel_broker::MarketData`]).
//!
//! # Building a venue from config
//!
//! ```no_run
//! # async fn f() -> Result<(), keel_broker::BrokerError> {
//! use std::sync::Arc;
//! let cfg = keel_alpaca::AlpacaConfig {
//!     trading_url: Some("http://127.0.0.1:9000".into()),
//!     data_url: Some("http://127.0.0.1:9000".into()),
//!     stream_url: Some("ws://127.0.0.1:9000/stream".into()),
//!     ..Default::default()
//! };
//! // Keys from APCA_API_KEY_ID / APCA_API_SECRET_KEY, or cfg.key_id_file / secret_key_file.
//! let creds = keel_alpaca::Credentials::resolve(cfg.key_id_file.as_deref(), cfg.secret_key_file.as_deref())
//!     .map_err(|e| keel_broker::BrokerError::Other(e.to_string()))?;
//! let clock: Arc<dyn keel_domain::Clock> = Arc::new(keel_domain::SystemClock);
//! let mut venue = keel_alpaca::connect(&cfg, creds, clock)?.for_keel_account("main");
//! venue.start_stream(&cfg); // long-running workers only (`keel run`)
//! let (broker, market) = (venue.broker(), venue.market());
//! # let _ = (broker, market); Ok(()) }
//! ```
//!
//! # Counting requests (benchmarks)
//!
//! Every REST call of one key goes through one [`RateLimiter`] (default 200
//! per minute, paced; shared by every client built in the process for that
//! key). [`Venue::stats`] / [`AlpacaBroker::stats`] return its
//! [`BudgetStats`]: requests sent, HTTP 429s received, time spent pacing.
//!
//! # Safety rules this crate keeps
//!
//! * A submit is sent once. Timeout, broken connection or 5xx is
//!   [`keel_broker::BrokerError::UnknownOutcome`]; 422 "client_order_id must
//!   be unique" is `DuplicateClientOrderId`; the worker resolves both with
//!   `order_by_client_id` (`GET /v2/orders:by_client_order_id`).
//! * Reads retry within [`common::retry::RetryPolicy`], honouring `Retry-After`.
//! * Fills come from growth of `filled_qty`, one execution each, deduplicated
//!   (see [`fills`]). An unknown order status is a working order, never a fill.

#![warn(missing_docs)]

pub mod common;
pub mod config;
pub mod data;
pub mod execution;
pub mod fills;
pub mod http;
pub mod websocket;

pub use common::credentials::{Credentials, CredentialsError};
pub use common::rate_limit::{BudgetStats, RateLimiter};
pub use common::urls::AlpacaEnv;
pub use config::{AlpacaConfig, Feed};
pub use data::AlpacaData;
pub use execution::AlpacaBroker;
pub use websocket::client::StreamStatus;

use keel_broker::{Broker, BrokerError, MarketData};
use keel_domain::Clock;
use std::sync::Arc;

/// An Alpaca account's execution and market data, sharing one request budget.
#[derive(Debug)]
pub struct Venue {
    broker: AlpacaBroker,
    data: AlpacaData,
    guard: Option<Arc<websocket::client::StreamGuard>>,
}

/// Validates `cfg` and builds the clients (no request is made yet).
pub fn connect(cfg: &AlpacaConfig, creds: Credentials, clock: Arc<dyn Clock>) -> Result<Venue, BrokerError> {
    cfg.validate().map_err(BrokerError::Other)?;
    let rest = http::client::RestClient::new(cfg, creds)?;
    Ok(Venue {
        broker: AlpacaBroker::new(rest.clone(), clock.clone()),
        data: AlpacaData::new(rest, cfg.feed, clock),
        guard: None,
    })
}

impl Venue {
    /// Names the keel account this key trades for (see
    /// [`AlpacaBroker`]'s account snapshot). One key pair is one account.
    pub fn for_keel_account(mut self, account_id: &str) -> Self {
        self.broker.keel_account = Some(Arc::from(account_id));
        self
    }

    /// Starts the trade_updates stream (inside a tokio runtime). It stops when
    /// the last handle from [`Venue::broker`] and the venue itself are dropped.
    pub fn start_stream(&mut self, cfg: &AlpacaConfig) -> Arc<StreamStatus> {
        let status = self.broker.start_stream(cfg);
        let guard = Arc::new(websocket::client::StreamGuard(status.clone()));
        self.broker.guard = Some(guard.clone());
        self.guard = Some(guard);
        status
    }

    /// Execution, as the worker takes it.
    pub fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(self.broker.clone())
    }

    /// Market data, as the worker takes it.
    pub fn market(&self) -> Arc<dyn MarketData> {
        Arc::new(self.data.clone())
    }

    /// The concrete broker (tests, benchmarks).
    pub fn alpaca_broker(&self) -> &AlpacaBroker {
        &self.broker
    }

    /// The key's request budget counters.
    pub fn stats(&self) -> BudgetStats {
        self.broker.stats()
    }
}
