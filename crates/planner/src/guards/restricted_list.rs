//! Restricted list: symbols compliance says must not be traded (insider
//! windows, pending corporate actions, sanctions).

use super::{Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::output::{GuardId, ReasonCode};
use keel_domain::Symbol;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The restricted-list guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RestrictedList {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Symbols that must not be traded. Default empty.
    #[schemars(with = "BTreeSet<String>")]
    #[schemars(length(min = 0, max = 100000))]
    pub symbols: BTreeSet<Symbol>,
}

impl Default for RestrictedList {
    fn default() -> Self {
        Self {
            enabled: true,
            symbols: BTreeSet::new(),
        }
    }
}

impl Guard for RestrictedList {
    fn id(&self) -> GuardId {
        GuardId::RestrictedList
    }

    fn enabled(&self) -> bool {
        self.enabled && !self.symbols.is_empty()
    }

    /// Blocks any order in a listed symbol, sells included: a compliance
    /// restriction forbids trading, not just buying.
    fn check(&self, c: &Candidate<'_>, _ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        if self.symbols.contains(c.symbol) {
            Verdict::Block {
                reason: ReasonCode::RestrictedSymbol,
                detail: format!("{} is on the restricted list", c.symbol),
            }
        } else {
            Verdict::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn listed_symbols_block_both_sides() {
        let g = RestrictedList {
            enabled: true,
            symbols: [sym("AAPL")].into(),
        };
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .target("MSFT", "0.1")
            .quote("MSFT", "100");
        assert!(matches!(
            check(&g, &fx, "AAPL"),
            Verdict::Block {
                reason: ReasonCode::RestrictedSymbol,
                ..
            }
        ));
        assert_eq!(check(&g, &fx, "MSFT"), Verdict::Pass);
        let fx = Fixture::new()
            .position("AAPL", "10")
            .quote("AAPL", "100")
            .with(|f| {
                f.cfg.guards.restricted_list.symbols.insert(sym("AAPL"));
            });
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::RestrictedSymbol);
    }

    #[test]
    fn disabled_or_empty_list_does_not_run() {
        assert!(!RestrictedList::default().enabled());
        assert!(!RestrictedList {
            enabled: false,
            symbols: [sym("AAPL")].into()
        }
        .enabled());
    }
}
