//! Stale and missing quotes (invariant 3): an order is sized and priced from
//! the quote, so an old quote means a wrong size and a wrong limit, and no
//! quote means no order at all.

use super::{Guard, Verdict};
use crate::context::{Candidate, Ctx, CycleAccumulator, PreBlock};
use crate::num::{ms_between, secs_to_ms};
use crate::output::{GuardId, ReasonCode};
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use keel_domain::Symbol;
use serde::{Deserialize, Serialize};

/// The quote-freshness guard. Missing quotes are refused whether or not it
/// is enabled: without a price nothing can be sized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StaleQuote {
    /// Check quote age. Default `true`.
    pub enabled: bool,
    /// Oldest acceptable quote, in seconds before `now`. Default 60: the
    /// worker snapshots quotes right before planning, so anything older
    /// means the feed stalled.
    #[schemars(range(min = 1, max = 3600))]
    pub max_age_secs: u64,
    /// How far after `now` a quote may be stamped (clock skew). Default 5.
    #[schemars(range(min = 0, max = 300))]
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

/// The instants that bound a fresh quote at one `now`, computed once per
/// plan so that each order's check is two comparisons instead of a date
/// subtraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuoteWindow {
    /// Quotes stamped at or before this are stale (`None`: none are).
    stale_upto: Option<DateTime<Utc>>,
    /// Quotes stamped at or after this are from the future (`None`: none are).
    future_from: Option<DateTime<Utc>>,
}

/// A leap second (chrono's `nanosecond() ≥ 10⁹`), where date subtraction
/// has its own rules; such instants take the general path.
fn leap(t: DateTime<Utc>) -> bool {
    t.naive_utc().nanosecond() >= 1_000_000_000
}

impl StaleQuote {
    /// The window at `now`: with `age` = `(now − ts)` in whole milliseconds
    /// toward zero (what [`ms_between`] returns), `age > max` holds exactly
    /// when `now − ts ≥ max + 1 ms`, i.e. `ts ≤ now − (max + 1) ms`, and
    /// `−age > max_future` exactly when `ts ≥ now + (max_future + 1) ms`.
    /// An instant beyond chrono's range bounds nothing. `None` when `now`
    /// is a leap second.
    pub(crate) fn window(&self, now: DateTime<Utc>) -> Option<QuoteWindow> {
        if leap(now) {
            return None;
        }
        let ms = |secs: u64| {
            secs_to_ms(secs)
                .checked_add(1)
                .and_then(TimeDelta::try_milliseconds)
        };
        Some(QuoteWindow {
            stale_upto: ms(self.max_age_secs).and_then(|d| now.checked_sub_signed(d)),
            future_from: ms(self.max_future_secs).and_then(|d| now.checked_add_signed(d)),
        })
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
        let Some(ts) = c.quote_ts() else {
            return Verdict::Pass;
        };
        // The configured guard checks against the plan's precomputed window (another
        // instance, in tests, takes the general path); a quote outside it, or a leap
        // second, gets the general check below, which also words the detail.
        if let Some(w) = ctx
            .quote_window
            .filter(|_| std::ptr::eq(self, &ctx.cfg.guards.stale_quote))
        {
            let fresh = w.stale_upto.is_none_or(|t| ts > t) && w.future_from.is_none_or(|t| ts < t);
            if fresh && !leap(ts) {
                return Verdict::Pass;
            }
        }
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

    #[test]
    fn window_agrees_with_the_millisecond_ages() {
        let now = t(NOW) + TimeDelta::nanoseconds(123_456_789);
        for (max_age, max_future) in [(0, 0), (1, 5), (60, 5), (u64::MAX, u64::MAX)] {
            let g = StaleQuote {
                enabled: true,
                max_age_secs: max_age,
                max_future_secs: max_future,
            };
            let w = g.window(now).unwrap();
            let mut offsets: Vec<i64> = (-8_000..70_000).step_by(250).collect();
            for edge in [0i64, 1_000, 5_000, 6_000, 60_000, 61_000] {
                for e in [-edge, edge] {
                    offsets.extend([e * 1_000_000 - 1, e * 1_000_000, e * 1_000_000 + 1]);
                    offsets.extend([(e - 1) * 1_000_000 + 1, (e + 1) * 1_000_000 - 1]);
                }
            }
            for ns in offsets
                .iter()
                .map(|o| if o.abs() < 100_000 { o * 1_000_000 } else { *o })
            {
                let ts = now - TimeDelta::nanoseconds(ns);
                let age_ms = ms_between(ts, now);
                let fresh =
                    !(age_ms > secs_to_ms(max_age) || age_ms.saturating_neg() > secs_to_ms(max_future));
                let by_window = w.stale_upto.is_none_or(|b| ts > b) && w.future_from.is_none_or(|b| ts < b);
                assert_eq!(
                    by_window, fresh,
                    "max {max_age}/{max_future}, ts {ts}, age {age_ms} ms"
                );
            }
        }
    }
}
