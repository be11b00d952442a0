//! keel's domain model.
//!
//! Every price, quantity, cash amount and weight is a [`rust_decimal::Decimal`]
//! (invariant 7: money is exact). This crate does no I/O and knows nothing of
//! brokers, databases or HTTP, so every other crate can share it.

pub mod alert;
pub mod asset;
pub mod clock;
pub mod event;
pub mod ids;
pub mod metrics_names;
pub mod order;
pub mod snapshot;
pub mod symbol;
pub mod target;
pub mod text;
pub mod valuation;

pub use alert::{notice_of, AlertKind, Notice, Severity};
pub use asset::AssetFacts;
pub use clock::{Clock, FixedClock, SystemClock};
pub use event::{Event, KillSource, ReconScope};
pub use ids::client_order_id;
pub use order::{Order, OrderStatus, OrderType, Side, TimeInForce};
pub use snapshot::{AccountSnapshot, OpenOrder, Position, Quote};
pub use symbol::{Symbol, SymbolError};
pub use target::{Target, TargetSet};
pub use text::log_safe;

pub use rust_decimal::Decimal;
