//! keel's planner and pre-trade guard pipeline.
//!
//! [`plan`] turns a target portfolio and a broker snapshot into the orders to
//! send, and records for every proposed order what each guard did to it:
//!
//! ```text
//! targets × snapshot × config × now ──► candidates ──► guards ──► Plan { orders, decisions }
//! ```
//!
//! The crate is pure: no clock reads (time is [`PlanInput::now`]), no I/O,
//! no async, no floating point for money (invariant 7), and no panics on any
//! input. The same inputs give the same plan, byte for byte once serialised
//! (invariant 5); client order ids come from
//! [`keel_domain::client_order_id`] (invariant 2).
//!
//! Guards and their defaults are documented in [`guards`]; the configuration
//! is [`RiskConfig`].

#![warn(missing_docs)]

pub mod config;
mod context;
mod fx;
pub mod guards;
pub mod input;
mod num;
pub mod output;
mod planner;
#[cfg(test)]
mod testkit;

pub use config::{ConfigProblem, GuardsConfig, PlannerConfig, RiskConfig};
pub use input::{GuardState, PlanInput};
pub use output::{Decision, Exposure, GuardId, GuardStep, Outcome, Plan, PlanBlock, ReasonCode};
pub use planner::plan;
