//! keel's broker seam.
//!
//! * [`universe`]: a deterministic synthetic market (about fifty large US
//!   stocks) used by the paper broker, the simulator and tests.
//! * [`Broker`] and [`MarketData`]: the async, object-safe interfaces every
//!   venue implements (execution apart from prices and asset facts).
//! * [`PaperBroker`]: the embedded default venue — deterministic from a seed
//!   and a [`keel_domain::Clock`], crash-safe on its own SQLite file, with
//!   fault injection for testing the engine's failure handling.

#![warn(missing_docs)]

pub mod universe;

mod broker;
pub mod paper;
mod types;

pub use broker::{snapshot, Broker, MarketData};
pub use paper::{FaultConfig, PaperBroker, PaperConfig, PaperLedger};
pub use types::{AssetFacts, BrokerAccount, BrokerError, BrokerEvent, BrokerFill, BrokerOrder};
