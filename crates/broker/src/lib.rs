//! keel's broker seam.
//!
//! * [`universe`]: a deterministic synthetic market (about fifty large US
//!   stocks) used by the paper broker, the simulator and tests.
//! * [`Broker`]: the async, object-safe interface every venue implements.
//! * [`PaperBroker`]: the embedded default venue — deterministic from a seed
//!   and a [`keel_domain::Clock`], crash-safe on its own SQLite file, with
//!   fault injection for testing the engine's failure handling.

#![warn(missing_docs)]

pub mod universe;

mod broker;
pub mod paper;
mod types;

pub use broker::Broker;
pub use paper::{FaultConfig, PaperBroker, PaperConfig, PaperLedger};
pub use types::{BrokerAccount, BrokerError, BrokerEvent, BrokerFill, BrokerOrder};
