//! Suspicious target set: an allocator that crashed and wrote an empty (or
//! nearly empty) file must not liquidate the portfolio. A set whose gross
//! weight is below the floor trades only when it says `"liquidate": true`.
//! Intake refuses such sets too; this is defence in depth at execution time.

use crate::context::PreBlock;
use crate::num::pct;
use crate::output::{GuardId, ReasonCode};
use keel_domain::{Symbol, TargetSet};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The suspicious-set guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SuspiciousTargetSet {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Minimum Σ|weight| for a set without `liquidate`. Default 0.5, the
    /// documented intake floor. Gross rather than net so a market-neutral
    /// long/short set (net ≈ 0) is not mistaken for an empty one.
    #[schemars(range(min = 0, max = 1))]
    pub min_gross_weight: Decimal,
}

impl Default for SuspiciousTargetSet {
    fn default() -> Self {
        Self {
            enabled: true,
            min_gross_weight: Decimal::new(5, 1),
        }
    }
}

impl SuspiciousTargetSet {
    /// Blocks the whole plan for a near-empty set without `liquidate`, or a
    /// set that lists a symbol twice (intake forbids it, so it means the set
    /// did not come through intake). Buys are blocked as well as sells: a set
    /// that fails a sanity check is not trusted for anything.
    pub(crate) fn assess(&self, set: &TargetSet, duplicates: &[&Symbol]) -> Option<PreBlock> {
        if !self.enabled {
            return None;
        }
        let block = |detail| {
            Some(PreBlock {
                guard: GuardId::SuspiciousTargetSet,
                reason: ReasonCode::SuspiciousTargetSet,
                detail,
            })
        };
        if let Some(first) = duplicates.first() {
            return block(format!(
                "target set {:?} lists {} symbol(s) more than once (first: {first})",
                set.id,
                duplicates.len()
            ));
        }
        if set.liquidate {
            return None;
        }
        let mut sum = crate::fx::Sum::new(Decimal::ZERO);
        for t in &set.targets {
            sum.add(t.weight.abs());
        }
        let gross = sum.dec();
        if crate::fx::lt(gross, self.min_gross_weight) {
            return block(format!(
                "target set {:?} has gross weight {} ({} symbols) below the floor {} without \"liquidate\": true",
                set.id,
                pct(gross),
                set.targets.len(),
                pct(self.min_gross_weight)
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn near_empty_set_without_liquidate_blocks_sells() {
        let fx = Fixture::new()
            .position("AAPL", "100")
            .quote("AAPL", "100")
            .position("MSFT", "10")
            .quote("MSFT", "300")
            .target("MSFT", "0.01")
            .with(|f| f.targets.liquidate = false);
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::SuspiciousTargetSet);
        assert!(
            plan.plan_blocks[0].detail.contains("gross weight 1.00%"),
            "{:?}",
            plan.plan_blocks
        );
    }

    #[test]
    fn liquidate_flag_allows_the_liquidation() {
        let fx = Fixture::new()
            .position("AAPL", "100")
            .quote("AAPL", "100")
            .with(|f| f.targets.liquidate = true);
        let plan = fx.plan();
        assert_eq!(plan.orders.len(), 1);
        assert_eq!(plan.orders[0].qty, d("100"));
    }

    #[test]
    fn full_sets_and_long_short_sets_pass() {
        let g = SuspiciousTargetSet::default();
        let mut set = Fixture::new().targets;
        set.liquidate = false;
        set.targets = vec![target("AAPL", "0.3"), target("MSFT", "-0.3")];
        assert_eq!(g.assess(&set, &[]), None);
        set.targets = vec![target("AAPL", "0.49")];
        assert!(g.assess(&set, &[]).is_some());
        assert_eq!(
            SuspiciousTargetSet { enabled: false, ..g }.assess(&set, &[]),
            None
        );
    }

    #[test]
    fn duplicate_symbols_block_even_with_liquidate() {
        let fx = Fixture::new()
            .target("AAPL", "0.3")
            .target("AAPL", "0.3")
            .quote("AAPL", "100")
            .with(|f| f.targets.liquidate = true);
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert!(plan.plan_blocks[0]
            .detail
            .contains("more than once (first: AAPL)"));
    }
}
