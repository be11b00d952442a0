//! Stale or future-dated target sets: weights computed from yesterday's
//! prices, or stamped by a skewed clock, are not an instruction to trade now.

use crate::context::PreBlock;
use crate::num::{ms_between, secs_to_ms};
use crate::output::{GuardId, ReasonCode};
use chrono::{DateTime, Utc};
use keel_domain::TargetSet;
use serde::{Deserialize, Serialize};

/// The target-staleness guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StaleTargets {
    /// Run the guard. Default `true`.
    pub enabled: bool,
    /// Oldest acceptable `as_of`, in seconds before `now`. Default 64,800
    /// (18 h): a set computed after one close (16:00 New York) is still
    /// tradable after the next open plus buffer (09:35), one from the day
    /// before is not. Use `valid_until` in the set for tighter windows.
    #[schemars(range(min = 1, max = 604800))]
    pub max_age_secs: u64,
    /// How far in the future `as_of` may be, for clock skew between the
    /// allocator and keel. Default 60.
    #[schemars(range(min = 0, max = 3600))]
    pub max_future_secs: u64,
}

impl Default for StaleTargets {
    fn default() -> Self {
        Self {
            enabled: true,
            max_age_secs: 64_800,
            max_future_secs: 60,
        }
    }
}

impl StaleTargets {
    /// Blocks the whole plan when the set has expired (`now` after
    /// `valid_until`), is older than `max_age_secs`, or is dated in the future.
    pub(crate) fn assess(&self, set: &TargetSet, now: DateTime<Utc>) -> Option<PreBlock> {
        if !self.enabled {
            return None;
        }
        let block = |reason, detail| {
            Some(PreBlock {
                guard: GuardId::StaleTargets,
                reason,
                detail,
            })
        };
        if let Some(until) = set.valid_until {
            if now > until {
                return block(
                    ReasonCode::StaleTargets,
                    format!("target set {:?} expired at {until} (now {now})", set.id),
                );
            }
        }
        let age_ms = ms_between(set.as_of, now);
        if age_ms > secs_to_ms(self.max_age_secs) {
            return block(
                ReasonCode::StaleTargets,
                format!(
                    "target set {:?} as_of {} is {}s old at {now}; max {}s",
                    set.id,
                    set.as_of,
                    age_ms / 1000,
                    self.max_age_secs
                ),
            );
        }
        if age_ms.saturating_neg() > secs_to_ms(self.max_future_secs) {
            return block(
                ReasonCode::FutureDatedTargets,
                format!(
                    "target set {:?} as_of {} is after now {now} by more than {}s",
                    set.id, set.as_of, self.max_future_secs
                ),
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    fn set(as_of: &str, valid_until: Option<&str>) -> TargetSet {
        let mut s = Fixture::new().targets;
        s.as_of = t(as_of);
        s.valid_until = valid_until.map(t);
        s
    }

    #[test]
    fn fresh_set_passes() {
        let g = StaleTargets::default();
        assert_eq!(
            g.assess(&set("2026-11-24T16:50:00Z", Some("2026-11-24T17:00:00Z")), t(NOW)),
            None
        );
        // Exactly at valid_until is still valid: the set says "after this instant".
        assert_eq!(g.assess(&set("2026-11-24T16:50:00Z", Some(NOW)), t(NOW)), None);
    }

    #[test]
    fn expired_old_and_future_sets_block() {
        let g = StaleTargets::default();
        let b = g
            .assess(&set("2026-11-24T16:50:00Z", Some("2026-11-24T16:59:59Z")), t(NOW))
            .unwrap();
        assert_eq!(b.reason, ReasonCode::StaleTargets);
        assert!(b.detail.contains("expired"));
        let b = g.assess(&set("2026-11-23T17:00:00Z", None), t(NOW)).unwrap();
        assert_eq!(b.reason, ReasonCode::StaleTargets);
        assert!(b.detail.contains("86400s old"), "{}", b.detail);
        let b = g.assess(&set("2026-11-24T17:01:01Z", None), t(NOW)).unwrap();
        assert_eq!(b.reason, ReasonCode::FutureDatedTargets);
        assert_eq!(g.assess(&set("2026-11-24T17:01:00Z", None), t(NOW)), None);
    }

    #[test]
    fn disabled_and_extreme_values_do_not_panic() {
        let g = StaleTargets {
            enabled: false,
            ..Default::default()
        };
        assert_eq!(g.assess(&set("2000-01-01T00:00:00Z", None), t(NOW)), None);
        let g = StaleTargets {
            enabled: true,
            max_age_secs: u64::MAX,
            max_future_secs: u64::MAX,
        };
        assert_eq!(g.assess(&set("1970-01-01T00:00:00Z", None), t(NOW)), None);
    }

    #[test]
    fn stale_set_blocks_every_order() {
        let fx = Fixture::new()
            .target("AAPL", "0.10")
            .quote("AAPL", "100")
            .with(|f| f.targets.valid_until = Some(t("2026-11-24T16:00:00Z")));
        let plan = fx.plan();
        assert!(plan.orders.is_empty());
        assert_blocked(decision(&plan, "AAPL"), ReasonCode::StaleTargets);
    }
}
