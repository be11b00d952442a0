//! Fault profiles: how often each kind of trouble is injected.

use keel_broker::FaultConfig;
use std::fmt;
use std::str::FromStr;

/// How hostile the simulated world is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultProfile {
    /// No injected faults, no crashes, no partial fills: a clean market.
    None,
    /// Every fault kind on, at low rates.
    Light,
    /// Every fault kind on, at rates high enough that most simulated days see
    /// several: broker timeouts, 5xx, 429, rejects, partial fills, dropped,
    /// duplicated and reordered order events, stream disconnects, stale quotes,
    /// price gaps, volatility spikes and outages, operator kills, and worker
    /// crashes at any I/O boundary.
    #[default]
    All,
}

impl FaultProfile {
    /// Every profile, in order of hostility.
    pub const ALL: [FaultProfile; 3] = [FaultProfile::None, FaultProfile::Light, FaultProfile::All];

    /// The CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultProfile::None => "none",
            FaultProfile::Light => "light",
            FaultProfile::All => "all",
        }
    }

    pub(crate) fn rates(self) -> FaultRates {
        match self {
            FaultProfile::None => FaultRates::default(),
            FaultProfile::Light => FaultRates {
                venue: FaultConfig {
                    timeout_before_send: 0.005,
                    timeout_after_send: 0.005,
                    server_error: 0.005,
                    rate_limited: 0.002,
                    reject: 0.005,
                    drop_event: 0.02,
                    duplicate_event: 0.02,
                    delay_ms: 0,
                },
                partial_fill: 0.1,
                stale_quote_step: 0.02,
                price_gap_day: 0.03,
                vol_spike_day: 0.03,
                vol_outage_step: 0.01,
                reorder_batch: 0.1,
                disconnect: 0.03,
                crash_step: 0.02,
                storm_day: 0.01,
                operator_kill_day: 0.01,
                operator_release: 0.9,
            },
            FaultProfile::All => FaultRates {
                venue: FaultConfig {
                    timeout_before_send: 0.02,
                    timeout_after_send: 0.02,
                    server_error: 0.02,
                    rate_limited: 0.01,
                    reject: 0.02,
                    drop_event: 0.1,
                    duplicate_event: 0.1,
                    delay_ms: 0,
                },
                partial_fill: 0.3,
                stale_quote_step: 0.08,
                price_gap_day: 0.1,
                vol_spike_day: 0.1,
                vol_outage_step: 0.04,
                reorder_batch: 0.3,
                disconnect: 0.1,
                crash_step: 0.1,
                storm_day: 0.06,
                operator_kill_day: 0.03,
                operator_release: 0.85,
            },
        }
    }
}

impl fmt::Display for FaultProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultProfile::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown fault profile {s:?}: expected none, light or all"))
    }
}

/// Probabilities of every injected event.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultRates {
    /// Venue faults (per call / per event), injected by the paper broker itself.
    pub venue: FaultConfig,
    /// Chance that an order's first fill is partial.
    pub partial_fill: f64,
    /// Per step: some quotes the worker sees are minutes old.
    pub stale_quote_step: f64,
    /// Per day: a price gap in the quote feed from some step on.
    pub price_gap_day: f64,
    /// Per day: the reference symbol's recent closes show a volatility spike.
    pub vol_spike_day: f64,
    /// Per step: the reference symbol's closes are cut short (brake fails closed to 0).
    pub vol_outage_step: f64,
    /// Per stream read: the batch arrives out of order.
    pub reorder_batch: f64,
    /// Per stream read: the stream drops (nothing, or only a prefix, arrives).
    pub disconnect: f64,
    /// Per step: the worker process dies at a random I/O boundary.
    pub crash_step: f64,
    /// Per day: a venue storm (all rejects, or most answers lost) at one of
    /// the first cycles.
    pub storm_day: f64,
    /// Per day: the operator engages the kill switch mid-session.
    pub operator_kill_day: f64,
    /// Per morning with the switch engaged: the operator releases it.
    pub operator_release: f64,
}
