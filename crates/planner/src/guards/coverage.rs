//! Coverage, all or nothing: a target set is the whole portfolio, so trading
//! only the names that happen to have a price turns it into a different,
//! lopsided portfolio (seen: 48 of 500 names bought, 447 without quotes). A
//! set whose targeted symbols lack a usable quote — no quote, or no positive
//! reference price, which is also what a symbol unknown to the venue gets —
//! beyond `max_missing_weight` of its gross weight is blocked whole, with one
//! reason naming the symbols.

use crate::context::PreBlock;
use crate::num::pct;
use crate::output::{GuardId, ReasonCode};
use keel_domain::{AccountSnapshot, Symbol, TargetSet};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The coverage guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Coverage {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Largest share of the set's gross weight (Σ|weight|) whose symbols may
    /// lack a usable quote, as a fraction in [0, 1]. Default 0: every
    /// targeted symbol must be priced. Within the allowance the priced names
    /// trade and each unpriced one is refused on its own (missing quote).
    #[schemars(range(min = 0, max = 1))]
    pub max_missing_weight: Decimal,
    /// Symbols named in the reason before "and N more". Default 10.
    #[schemars(range(min = 1, max = 1000))]
    pub max_listed: usize,
}

impl Default for Coverage {
    fn default() -> Self {
        Self {
            enabled: true,
            max_missing_weight: Decimal::ZERO,
            max_listed: 10,
        }
    }
}

impl Coverage {
    /// Blocks the whole plan when too much of the set is unpriced.
    /// Zero-weight targets (exits) do not count: they add no exposure, and
    /// each such sell still needs its own quote to be priced.
    pub(crate) fn assess(&self, set: &TargetSet, snap: &AccountSnapshot) -> Option<PreBlock> {
        if !self.enabled {
            return None;
        }
        let mut gross = Decimal::ZERO;
        let mut missing_weight = Decimal::ZERO;
        let mut missing: Vec<&Symbol> = Vec::new();
        for t in &set.targets {
            let w = t.weight.abs();
            if w.is_zero() {
                continue;
            }
            // Weights are intake-bounded, so these sums cannot overflow.
            gross = gross.checked_add(w)?;
            // The planner's own checked reference price: the one it would size with.
            let priced = snap
                .quotes
                .get(&t.symbol)
                .and_then(crate::num::reference)
                .is_some();
            if !priced {
                missing_weight = missing_weight.checked_add(w)?;
                missing.push(&t.symbol);
            }
        }
        if missing.is_empty() || gross.is_zero() {
            return None;
        }
        let share = missing_weight.checked_div(gross)?;
        if share <= self.max_missing_weight {
            return None;
        }
        // By symbol, whatever order the set came in (plans are order-invariant).
        missing.sort();
        missing.dedup();
        let listed: Vec<String> = missing
            .iter()
            .take(self.max_listed.max(1))
            .map(|s| s.to_string())
            .collect();
        let more = missing.len() - listed.len();
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        Some(PreBlock {
            guard: GuardId::Coverage,
            reason: ReasonCode::IncompleteCoverage,
            detail: format!(
                "target set {:?}: {} of {} targeted symbols have no usable quote or are unknown to the venue \
                 ({} of its gross weight, allowed {}): {}{tail}; nothing of the set is traded",
                set.id,
                missing.len(),
                set.targets
                    .iter()
                    .filter(|t| !t.weight.is_zero())
                    .map(|t| &t.symbol)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
                pct(share),
                pct(self.max_missing_weight),
                listed.join(", "),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn one_unpriced_name_blocks_the_whole_set_by_default() {
        let fx = Fixture::new()
            .target("AAPL", "0.5")
            .quote("AAPL", "100")
            .target("MSFT", "0.4")
            .position("IBM", "10")
            .quote("IBM", "50");
        let plan = fx.plan();
        assert!(plan.orders.is_empty(), "{:?}", plan.orders);
        for s in ["AAPL", "MSFT", "IBM"] {
            assert_blocked(decision(&plan, s), ReasonCode::IncompleteCoverage);
        }
        let detail = &plan.plan_blocks[0].detail;
        assert!(detail.contains("1 of 2 targeted symbols"), "{detail}");
        assert!(detail.contains("44.44%"), "{detail}");
        assert!(detail.contains(": MSFT;"), "{detail}");
    }

    #[test]
    fn within_the_allowance_the_priced_names_trade() {
        let fx = Fixture::new()
            .target("AAPL", "0.5")
            .quote("AAPL", "100")
            .target("MSFT", "0.1")
            .with(|f| f.cfg.guards.coverage.max_missing_weight = d("0.2"));
        let plan = fx.plan();
        assert_eq!(plan.orders.len(), 1);
        assert_eq!(plan.orders[0].symbol, sym("AAPL"));
        assert_blocked(decision(&plan, "MSFT"), ReasonCode::MissingQuote);
    }

    #[test]
    fn five_hundred_names_mostly_unpriced_trade_nothing() {
        let mut fx = Fixture::new();
        for i in 0..500 {
            let s = format!("S{i:03}");
            fx = fx.target(&s, "0.0018");
            if i % 10 == 0 {
                fx = fx.quote(&s, "20");
            }
        }
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert_eq!(plan.plan_blocks.len(), 1, "one reason: {:?}", plan.plan_blocks);
        let detail = &plan.plan_blocks[0].detail;
        assert!(detail.contains("450 of 500 targeted symbols"), "{detail}");
        assert!(detail.contains("90.00%"), "{detail}");
        assert!(detail.contains("S001, S002, S003"), "{detail}");
        assert!(detail.contains("and 440 more"), "{detail}");
        assert!(plan.decisions.iter().all(|d| !d.is_sent()));
    }

    #[test]
    fn zero_weights_and_a_quote_without_price_count_right() {
        let g = Coverage::default();
        let fx = Fixture::new()
            .target("AAPL", "0.5")
            .quote("AAPL", "100")
            .target("MSFT", "0")
            .quote("IBM", "0")
            .target("IBM", "0.1");
        assert!(
            g.assess(&fx.targets, &fx.snapshot).is_some(),
            "IBM has no positive price"
        );
        let fx = fx.with(|f| f.targets.targets.retain(|t| t.symbol != sym("IBM")));
        assert_eq!(
            g.assess(&fx.targets, &fx.snapshot),
            None,
            "MSFT exits, no exposure"
        );
        let off = Coverage {
            enabled: false,
            ..Coverage::default()
        };
        let fx = Fixture::new().target("AAPL", "0.5");
        assert_eq!(off.assess(&fx.targets, &fx.snapshot), None);
    }
}
