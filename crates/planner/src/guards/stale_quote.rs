//! Stale and missing quotes (invariant 3): an order is sized and priced from
//! the quote, so an old quote means a wrong size and a wrong limit, and no
//! quote means no order at all.

use super::{Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator, PreBlock};
use crate::num::{ms_between, secs_to_ms};
use crate::output::{GuardId, ReasonCode};
use keel_domain::Symbol;
use serde::{Deserialize, Serialize};

/// The quote-freshness guard. Missing quotes are refused whether or not it
/// is enabled: without a price nothing can be sized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaleQuote {
    /// Check quote age. Default `true`.
    pub enabled: bool,
    /// Oldest acceptable quote, in seconds before `now`. Default 60: the
    /// worker snapshots quotes right before planning, so anything older
    /// means the feed stalled.
    pub max_age_secs: u64,
    /// How far after `now` a quote may be stamped (clock skew). Default 5.
    pub max_future_secs: u64,
}

impl Default for StaleQuote {
    fn default() -> Self {
        Self {
            enabled: true,
            max_age_secs: 60,
            max_future_secs: 5,
        }
    }
}

/// The planner's refusal for a symbol without a usable quote. Risk-reducing
/// orders are refused too: a sell needs a limit price as much as a buy does.
pub(crate) fn missing(symbol: &Symbol, quote_present: bool) -> PreBlock {
    let detail = if quote_present {
        format!("quote for {symbol} has no positive reference price (mid or last)")
    } else {
        format!("no quote for {symbol}")
    };
    PreBlock {
        guard: GuardId::StaleQuote,
        reason: ReasonCode::MissingQuote,
        detail,
    }
}

impl Guard for StaleQuote {
    fn id(&self) -> GuardId {
        GuardId::StaleQuote
    }

    fn enabled(&self) -> bool {
        self.enabled
    }

    /// Blocks every order (risk-reducing ones too: their limit price comes
    /// from the same stale quote) whose quote is too old or from the future.
    fn check(&self, c: &Candidate<'_>, ctx: &Ctx<'_>, _acc: &CycleAccumulator) -> Verdict {
        let Some(ts) = c.quote_ts else {
            return Verdict::Pass;
        };
        let age_ms = ms_between(ts, ctx.now);
        if age_ms > secs_to_ms(self.max_age_secs) {
            return Verdict::Block {
                reason: ReasonCode::StaleQuote,
                detail: format!(
                    "quote for {} at {ts} is {}s old at {}; max {}s",
                    c.symbol,
                    age_ms / 1000,
                    ctx.now,
                    self.max_age_secs
                ),
            };
        }
        if age_ms.saturating_neg() > secs_to_ms(self.max_future_secs) {
            return Verdict::Block {
                reason: ReasonCode::StaleQuote,
                detail: format!(
                    "quote for {} at {ts} is after now {} by more than {}s",
                    c.symbol, ctx.now, self.max_future_secs
                ),
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
    fn fresh_quote_passes() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote_at("AAPL", "100", "2026-11-24T16:59:00Z");
        assert_eq!(check(&StaleQuote::default(), &fx, "AAPL"), Verdict::Pass);
    }

    #[test]
    fn old_or_future_quote_blocks() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote_at("AAPL", "100", "2026-11-24T16:58:59Z");
        let v = check(&StaleQuote::default(), &fx, "AAPL");
        assert!(
            matches!(&v, Verdict::Block { reason: ReasonCode::StaleQuote, detail } if detail.contains("61s old"))
        );
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .quote_at("AAPL", "100", "2026-11-24T17:00:06Z");
        assert!(matches!(
            check(&StaleQuote::default(), &fx, "AAPL"),
            Verdict::Block { .. }
        ));
    }

    #[test]
    fn stale_quote_blocks_reducing_sells_end_to_end() {
        let fx = Fixture::new()
            .position("AAPL", "10")
            .quote_at("AAPL", "100", "2026-11-24T16:00:00Z");
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::StaleQuote);
        let fx = fx.with(|f| f.cfg.guards.stale_quote.enabled = false);
        assert_eq!(fx.plan().orders.len(), 1);
    }

    #[test]
    fn missing_quote_blocks_even_when_disabled() {
        let fx = Fixture::new()
            .target("AAPL", "0.1")
            .position("MSFT", "10")
            .with(|f| f.cfg.guards.stale_quote.enabled = false);
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        let aapl = decision(&plan, "AAPL");
        assert_blocked(aapl, ReasonCode::MissingQuote);
        assert_eq!(aapl.proposed_qty, d("0"));
        assert_eq!(aapl.target_qty, None);
        let msft = decision(&plan, "MSFT");
        assert_blocked(msft, ReasonCode::MissingQuote);
        assert_eq!(msft.proposed_qty, d("10"));
        assert_eq!(msft.target_qty, Some(d("0")));
    }

    #[test]
    fn crossed_book_with_bad_last_is_missing() {
        let fx = Fixture::new().target("AAPL", "0.1").with(|f| {
            let q = quote_obj("AAPL", "0", t(NOW));
            f.snapshot.quotes.insert(sym("AAPL"), q);
        });
        let plan = fx.plan();
        let dd = decision(&plan, "AAPL");
        assert_blocked(dd, ReasonCode::MissingQuote);
        assert!(block_detail(dd).contains("no positive reference"));
    }
}
