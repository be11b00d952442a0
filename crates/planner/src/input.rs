//! What the planner is given. Everything it needs from the past (fills, the
//! kill switch, rate history, market data) arrives here as plain data, so
//! the planner never reads a clock, a database or the network.

use chrono::{DateTime, Utc};
use keel_domain::{AccountSnapshot, AssetFacts, Symbol, TargetSet};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One planning run's inputs.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The account being traded; part of every client order id and checked
    /// against `snapshot.account_id` (a mismatch blocks the whole plan).
    pub account_id: &'a str,
    /// The target portfolio.
    pub targets: &'a TargetSet,
    /// The broker's view of the account.
    pub snapshot: &'a AccountSnapshot,
    /// The instant the plan is for (from the worker's `Clock`).
    pub now: DateTime<Utc>,
    /// Attempt number for client order ids (the worker bumps it per retry cycle).
    pub attempt: u32,
    /// History the guards need.
    pub state: &'a GuardState,
}

/// History and market data the guards need, supplied by the worker from the
/// store. Every field defaults to "nothing known"; guards that need a value
/// that is missing fail closed where the config says so.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardState {
    /// Reason the kill switch is engaged; `None` when released.
    pub kill_switch: Option<String>,
    /// Last time each symbol traded (order sent), for the per-symbol cooldown.
    pub last_trade_at: BTreeMap<Symbol, DateTime<Utc>>,
    /// Last time this account submitted a rebalance, for the account cooldown.
    pub last_account_rebalance_at: Option<DateTime<Utc>>,
    /// Submission times of recent orders (any order), for the rate throttle.
    /// Times after `now` are counted too: a skewed clock must not open the gate.
    pub recent_order_times: Vec<DateTime<Utc>>,
    /// Ids of target sets already executed to completion (replay guard).
    /// Sets still being worked (retry attempts) must not be listed.
    pub executed_target_set_ids: BTreeSet<String>,
    /// Average daily volume per symbol, in shares.
    pub adv: BTreeMap<Symbol, Decimal>,
    /// Daily closes of the volatility brake's reference symbol, oldest first.
    pub reference_closes: Vec<Decimal>,
    /// The external volatility hook's scale, expected in [0, 1].
    pub external_vol_scale: Option<Decimal>,
    /// What the venue allows per symbol (the worker fills it from
    /// `MarketData::assets`), for the broker-rules guard. `None`: no venue
    /// was consulted and the guard does not run. `Some`: a symbol absent
    /// from the map is unknown to the venue, and its orders are blocked.
    pub assets: Option<BTreeMap<Symbol, AssetFacts>>,
}
