//! Target-set intake: the gate between an external allocator and keel.
//!
//! An allocator (a model, a notebook, a cron job) writes the whole desired
//! portfolio as a JSON (or CSV) target set. Everything here exists to refuse
//! target sets that are malformed, ambiguous, stale or dangerous before any
//! order is planned from them, and to say precisely why: every
//! [`IntakeError`] names the source, the field and the offending value.
//!
//! Weights become exact [`keel_domain::Decimal`]s straight from the input
//! text (never through `f64`), and accepted sets are returned with targets
//! sorted by symbol, so the same input always yields the same [`TargetSet`].
//!
//! The crate is pure apart from [`read_file`]: the caller supplies `now`, so
//! staleness checks are reproducible in tests and in `keel plan --at`.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use keel_intake::{parse_json, IntakeConfig};
//!
//! let now = Utc.with_ymd_and_hms(2026, 11, 24, 20, 45, 0).unwrap();
//! let cfg = IntakeConfig::default();
//! let ok = br#"{"id": "close", "as_of": "2026-11-24T20:40:00Z",
//!               "targets": [{"symbol": "MSFT", "weight": 0.4}, {"symbol": "AAPL", "weight": "0.2"}]}"#;
//! let set = parse_json("<stdin>", ok, &cfg, now).unwrap();
//! assert_eq!(set.targets[0].symbol.as_str(), "AAPL");
//!
//! let typo = br#"{"id": "close", "as_of": "2026-11-24T20:40:00Z", "liquidiate": true, "targets": []}"#;
//! let err = parse_json("<stdin>", typo, &cfg, now).unwrap_err();
//! assert_eq!(err.field, "liquidiate");
//! ```
//!
//! [`TargetSet`]: keel_domain::TargetSet

#![deny(missing_docs)]

mod config;
mod csv_format;
mod decimal;
mod error;
mod file;
mod json;
mod validate;

pub use config::IntakeConfig;
pub use csv_format::parse_csv;
pub use error::IntakeError;
pub use file::{read_file, read_inbox_file, CSV_ID_HEADER};
pub use json::parse_json;
pub use validate::MAX_ID_LEN;
