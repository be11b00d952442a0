//! Replayed target set: a set id that was already executed must never be
//! traded again (a re-sent file, a retried HTTP submit, a restored backup).

use crate::context::PreBlock;
use crate::input::GuardState;
use crate::output::{GuardId, ReasonCode};
use keel_domain::TargetSet;
use serde::{Deserialize, Serialize};

/// The replay guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayedTargetSet {
    /// Run the guard. Default `true`.
    pub enabled: bool,
}

impl Default for ReplayedTargetSet {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl ReplayedTargetSet {
    /// Blocks the whole plan when `set.id` is in
    /// [`GuardState::executed_target_set_ids`]. Sells are blocked too: an
    /// old set's sells are as stale as its buys.
    pub(crate) fn assess(&self, set: &TargetSet, state: &GuardState) -> Option<PreBlock> {
        if !self.enabled || !state.executed_target_set_ids.contains(&set.id) {
            return None;
        }
        Some(PreBlock {
            guard: GuardId::ReplayedTargetSet,
            reason: ReasonCode::ReplayedTargetSet,
            detail: format!("target set {:?} was already executed", set.id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn executed_id_blocks_the_plan() {
        let fx = Fixture::new()
            .target("AAPL", "0.10")
            .quote("AAPL", "100")
            .with(|f| {
                f.state.executed_target_set_ids.insert("set-1".into());
            });
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::ReplayedTargetSet);
    }

    #[test]
    fn other_ids_and_disabled_guard_pass() {
        let fx = Fixture::new().with(|f| {
            f.state.executed_target_set_ids.insert("set-0".into());
        });
        assert_eq!(ReplayedTargetSet::default().assess(&fx.targets, &fx.state), None);
        let mut state = fx.state.clone();
        state.executed_target_set_ids.insert("set-1".into());
        assert!(ReplayedTargetSet::default().assess(&fx.targets, &state).is_some());
        assert_eq!(
            ReplayedTargetSet { enabled: false }.assess(&fx.targets, &state),
            None
        );
    }
}
