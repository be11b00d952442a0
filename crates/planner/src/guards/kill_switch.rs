//! Kill switch (invariant 4): while engaged, no new order of any kind goes out.
//!
//! The switch's state (engaged by an operator or an automatic trigger, sticky
//! across restarts) lives in the store; the worker passes its reason in
//! [`GuardState::kill_switch`]. This guard only refuses to plan around it.

use crate::context::PreBlock;
use crate::input::GuardState;
use crate::output::{GuardId, ReasonCode};
use serde::{Deserialize, Serialize};

/// The kill-switch guard. It has no `enabled` flag on purpose: a config that
/// tries to switch it off (`enabled = false`) fails to parse instead of
/// silently removing the last line of defence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KillSwitch {}

impl KillSwitch {
    /// Blocks the whole plan when the switch is engaged. Risk-reducing orders
    /// are blocked too: the worker's engage path cancels working orders, and
    /// a human decides what happens next.
    pub(crate) fn assess(&self, state: &GuardState) -> Option<PreBlock> {
        let reason = state.kill_switch.as_deref()?;
        let reason = if reason.trim().is_empty() {
            "(no reason recorded)"
        } else {
            reason
        };
        Some(PreBlock {
            guard: GuardId::KillSwitch,
            reason: ReasonCode::KillSwitch,
            detail: format!("kill switch engaged: {reason}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn released_switch_passes() {
        assert_eq!(KillSwitch {}.assess(&GuardState::default()), None);
    }

    #[test]
    fn engaged_switch_blocks_everything_including_reducing_sells() {
        let fx = Fixture::new()
            .target("AAPL", "0.10")
            .quote("AAPL", "100")
            .position("MSFT", "10")
            .quote("MSFT", "200")
            .with(|f| f.state.kill_switch = Some("operator: bad fills".into()));
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert_eq!(plan.decisions.len(), 2);
        for d in &plan.decisions {
            assert_blocked(d, ReasonCode::KillSwitch);
        }
        assert_eq!(
            plan.plan_blocks[0].detail,
            "kill switch engaged: operator: bad fills"
        );
    }

    #[test]
    fn empty_reason_still_has_a_detail() {
        let state = GuardState {
            kill_switch: Some(" ".into()),
            ..Default::default()
        };
        let b = KillSwitch {}.assess(&state).unwrap();
        assert!(b.detail.contains("no reason recorded"));
    }
}
