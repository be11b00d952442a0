//! Market hours: orders go out only while an NYSE session is open, and not in
//! the first or last minutes of it, when spreads are wide and auctions are
//! forming. Uses `keel-calendar` (holidays, early closes, special closures).

use crate::context::PreBlock;
use crate::num::{ms_between, secs_to_ms};
use crate::output::{GuardId, ReasonCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The market-hours guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MarketHours {
    /// Run the guard. Default `true`; switching it off is for simulations
    /// with a synthetic clock only.
    pub enabled: bool,
    /// Seconds after the open during which nothing is sent. Default 300: the
    /// opening auction and the widest spreads of the day are over by then.
    #[schemars(range(min = 0, max = 10800))]
    pub after_open_secs: u64,
    /// Seconds before the close (early closes included) during which nothing
    /// is sent. Default 300: a Day order sent later may not have time to work.
    #[schemars(range(min = 0, max = 10800))]
    pub before_close_secs: u64,
}

impl Default for MarketHours {
    fn default() -> Self {
        Self {
            enabled: true,
            after_open_secs: 300,
            before_close_secs: 300,
        }
    }
}

impl MarketHours {
    /// Blocks the whole plan outside `[open + after_open, close − before_close)`.
    /// Risk-reducing orders are blocked too: there is no market to take them.
    pub(crate) fn assess(&self, now: DateTime<Utc>) -> Option<PreBlock> {
        if !self.enabled {
            return None;
        }
        let block = |detail| {
            Some(PreBlock {
                guard: GuardId::MarketHours,
                reason: ReasonCode::MarketClosed,
                detail,
            })
        };
        let Some(session) = keel_calendar::session_containing(now) else {
            return block(format!("no NYSE session is open at {now}"));
        };
        if ms_between(session.open, now) < secs_to_ms(self.after_open_secs) {
            return block(format!(
                "{now} is within {}s after the {} open",
                self.after_open_secs, session.open
            ));
        }
        if ms_between(now, session.close) <= secs_to_ms(self.before_close_secs) {
            let kind = if session.early_close {
                "early close"
            } else {
                "close"
            };
            return block(format!(
                "{now} is within {}s before the {} {kind}",
                self.before_close_secs, session.close
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
    fn regular_session_with_buffers() {
        let g = MarketHours::default();
        // 2026-11-24 is a Tuesday; New York is UTC-5: 09:30 = 14:30Z, 16:00 = 21:00Z.
        assert_eq!(g.assess(t("2026-11-24T17:00:00Z")), None);
        assert_eq!(g.assess(t("2026-11-24T14:35:00Z")), None);
        assert!(g
            .assess(t("2026-11-24T14:34:59Z"))
            .unwrap()
            .detail
            .contains("after the"));
        assert!(g
            .assess(t("2026-11-24T14:00:00Z"))
            .unwrap()
            .detail
            .contains("no NYSE session"));
        assert_eq!(g.assess(t("2026-11-24T20:54:59Z")), None);
        assert!(g
            .assess(t("2026-11-24T20:55:00Z"))
            .unwrap()
            .detail
            .contains("before the"));
        assert!(g.assess(t("2026-11-24T21:00:00Z")).is_some());
    }

    #[test]
    fn holidays_weekends_and_early_closes() {
        let g = MarketHours::default();
        // Thanksgiving 2026 (Thursday 26th), then the 13:00 early close on Friday 27th (18:00Z).
        assert!(g.assess(t("2026-11-26T17:00:00Z")).is_some());
        assert_eq!(g.assess(t("2026-11-27T17:00:00Z")), None);
        let b = g.assess(t("2026-11-27T17:56:00Z")).unwrap();
        assert!(b.detail.contains("early close"), "{}", b.detail);
        assert!(g.assess(t("2026-11-28T17:00:00Z")).is_some());
        let b = g.assess(t("2026-11-28T17:00:00Z")).unwrap();
        assert_eq!(b.reason, ReasonCode::MarketClosed);
    }

    #[test]
    fn disabled_or_zero_buffers() {
        assert_eq!(
            MarketHours {
                enabled: false,
                ..Default::default()
            }
            .assess(t("2026-11-28T17:00:00Z")),
            None
        );
        let g = MarketHours {
            enabled: true,
            after_open_secs: 0,
            before_close_secs: 0,
        };
        assert_eq!(g.assess(t("2026-11-24T14:30:00Z")), None);
        assert!(g.assess(t("2026-11-24T21:00:00Z")).is_some());
        let g = MarketHours {
            enabled: true,
            after_open_secs: u64::MAX,
            before_close_secs: u64::MAX,
        };
        assert!(g.assess(t("2026-11-24T17:00:00Z")).is_some());
    }

    #[test]
    fn closed_market_blocks_reducing_orders_too() {
        let fx = Fixture::new()
            .position("AAPL", "10")
            .quote("AAPL", "100")
            .with(|f| f.cfg.guards.market_hours.enabled = true)
            .at("2026-11-28T17:00:00Z");
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::MarketClosed);
    }
}
