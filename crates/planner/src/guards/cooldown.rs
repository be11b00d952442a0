//! Rebalance cooldown: a symbol that just traded, or an account that just
//! rebalanced, waits before adding risk again, so a looping worker or a
//! flapping allocator cannot churn the book.

use super::{Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator};
use crate::input::GuardState;
use crate::num::{ms_between, secs_to_ms};
use crate::output::{GuardId, ReasonCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The cooldown guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Cooldown {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Seconds after a symbol's last trade before it may add risk again.
    /// Default 300: stops a loop resubmitting every tick, short enough for
    /// the next scheduled cycle.
    #[schemars(range(min = 0, max = 604800))]
    pub symbol_secs: u64,
    /// Seconds after the account's last rebalance before the next may add
    /// risk. Default 60.
    #[schemars(range(min = 0, max = 604800))]
    pub account_secs: u64,
}

impl Default for Cooldown {
    fn default() -> Self {
        Self {
            enabled: true,
            symbol_secs: 300,
            account_secs: 60,
        }
    }
}

impl Cooldown {
    /// The account cooldown's explanation when it is active at `now`
    /// (computed once per plan). A last-rebalance time in the future counts
    /// as active: a skewed clock must not open the gate.
    pub(crate) fn account_active(&self, state: &GuardState, now: DateTime<Utc>) -> Option<String> {
        let last = state.last_account_rebalance_at?;
        let elapsed = ms_between(last, now);
        (elapsed < secs_to_ms(self.account_secs)).then(|| {
            format!(
                "account rebalanced at {last}, {}s before {now}; cooldown {}s",
                elapsed / 1000,
                self.account_secs
            )
        })
    }
}

impl Guard for Cooldown {
    fn id(&self) -> GuardId {
        GuardId::Cooldown
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    fn exempts_risk_reducing(&self) -> bool {
        true
    }

    /// Blocks risk-increasing orders inside either cooldown.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        if let Some(&last) = c.last_trade_at {
            let elapsed = ms_between(last, ctx.now);
            if elapsed < secs_to_ms(self.symbol_secs) {
                return Verdict::Block {
                    reason: ReasonCode::CooldownSymbol,
                    detail: format!(
                        "{} traded at {last}, {}s before {}; cooldown {}s",
                        c.symbol,
                        elapsed / 1000,
                        ctx.now,
                        self.symbol_secs
                    ),
                };
            }
        }
        if let Some(detail) = &ctx.account_cooldown {
            return Verdict::Block {
                reason: ReasonCode::CooldownAccount,
                detail: detail.clone(),
            };
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn recent_symbol_trade_blocks_buys_not_sells() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .position("MSFT", "10")
            .quote("MSFT", "100")
            .with(|f| {
                f.state
                    .last_trade_at
                    .insert(sym("AAPL"), t("2026-11-24T16:56:00Z"));
                f.state
                    .last_trade_at
                    .insert(sym("MSFT"), t("2026-11-24T16:56:00Z"));
            });
        let plan = fx.plan();
        let dd = decision(&plan, "AAPL");
        assert_blocked(dd, ReasonCode::CooldownSymbol);
        assert!(block_detail(dd).contains("240s before"));
        assert!(decision(&plan, "MSFT").is_sent());
    }

    #[test]
    fn expired_cooldown_passes() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .with(|f| {
                f.state
                    .last_trade_at
                    .insert(sym("AAPL"), t("2026-11-24T16:55:00Z"));
                f.state.last_account_rebalance_at = Some(t("2026-11-24T16:59:00Z"));
            });
        assert_eq!(check(&Cooldown::default(), &fx, "AAPL"), Verdict::Pass);
    }

    #[test]
    fn account_cooldown_and_future_timestamps() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .with(|f| {
                f.state.last_account_rebalance_at = Some(t("2026-11-24T17:05:00Z"));
            });
        let v = check(&Cooldown::default(), &fx, "AAPL");
        assert!(
            matches!(
                v,
                Verdict::Block {
                    reason: ReasonCode::CooldownAccount,
                    ..
                }
            ),
            "{v:?}"
        );
    }

    #[test]
    fn crossing_order_keeps_its_reducing_part() {
        // Short 50 at 100 (equity 95,000), target 95 long: buy 145 = cover 50 (reducing) + 95 (increasing).
        let fx = Fixture::new()
            .position("AAPL", "-50")
            .target("AAPL", "0.1")
            .quote("AAPL", "100")
            .with(|f| {
                f.cfg.planner.allow_short = true;
                f.state
                    .last_trade_at
                    .insert(sym("AAPL"), t("2026-11-24T16:59:00Z"));
            });
        let plan = fx.plan();
        let dd = decision(&plan, "AAPL");
        assert_eq!(dd.proposed_qty, d("145"));
        assert_eq!(dd.final_qty, d("50"));
        assert!(matches!(
            dd.outcome,
            Outcome::Resize {
                reason: ReasonCode::CooldownSymbol,
                ..
            }
        ));
    }
}
