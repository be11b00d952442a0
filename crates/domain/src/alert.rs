//! What needs a person: which events become notifications, of what kind and
//! how severe.
//!
//! One function, [`notice_of`], decides it from the event alone, so the
//! store's outbox (written in the same transaction as the event) and a replay
//! of the log always agree on what should have been sent.

use crate::event::{Event, KillSource};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How urgent a notification is. Ordered: a channel with a minimum severity
/// receives that severity and everything above it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record (EOD summary, a kill switch released).
    Info,
    /// Someone should look today (a cycle error, a superseded set).
    Warning,
    /// Someone should look now (kill switch engaged, reconciliation mismatch).
    Critical,
}

impl Severity {
    /// The stable name used in config and the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parses [`Severity::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of notification a channel can subscribe to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The kill switch was engaged (any source).
    KillSwitchEngaged,
    /// The kill switch was released.
    KillSwitchReleased,
    /// Store and broker disagreed beyond tolerance.
    ReconciliationMismatch,
    /// Too many rejects in one cycle (the kill switch trips too).
    RejectStorm,
    /// Too many orders whose outcome was unknown (the kill switch trips too).
    UnknownOutcomes,
    /// This worker lost its single-writer lease.
    LeaseLost,
    /// Another worker took the lease over from a holder that had not released it.
    LeaseTakenOver,
    /// A cycle ended in an error.
    CycleError,
    /// The broker's order-update stream was down longer than the threshold.
    StreamDown,
    /// A target set was refused.
    TargetSetRefused,
    /// A queued target set was superseded by a newer one.
    TargetSetSuperseded,
    /// The end-of-day summary.
    EodSummary,
    /// `keel notify test`.
    Test,
}

impl AlertKind {
    /// Every kind, for config validation and docs.
    pub const ALL: &'static [AlertKind] = &[
        AlertKind::KillSwitchEngaged,
        AlertKind::KillSwitchReleased,
        AlertKind::ReconciliationMismatch,
        AlertKind::RejectStorm,
        AlertKind::UnknownOutcomes,
        AlertKind::LeaseLost,
        AlertKind::LeaseTakenOver,
        AlertKind::CycleError,
        AlertKind::StreamDown,
        AlertKind::TargetSetRefused,
        AlertKind::TargetSetSuperseded,
        AlertKind::EodSummary,
        AlertKind::Test,
    ];

    /// The stable name used in config and the outbox.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::KillSwitchEngaged => "kill_switch_engaged",
            AlertKind::KillSwitchReleased => "kill_switch_released",
            AlertKind::ReconciliationMismatch => "reconciliation_mismatch",
            AlertKind::RejectStorm => "reject_storm",
            AlertKind::UnknownOutcomes => "unknown_outcomes",
            AlertKind::LeaseLost => "lease_lost",
            AlertKind::LeaseTakenOver => "lease_taken_over",
            AlertKind::CycleError => "cycle_error",
            AlertKind::StreamDown => "stream_down",
            AlertKind::TargetSetRefused => "target_set_refused",
            AlertKind::TargetSetSuperseded => "target_set_superseded",
            AlertKind::EodSummary => "eod_summary",
            AlertKind::Test => "test",
        }
    }

    /// Parses [`AlertKind::as_str`]'s names.
    pub fn parse(s: &str) -> Option<AlertKind> {
        AlertKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// How severe this kind is when nothing more specific is known.
    pub fn default_severity(self) -> Severity {
        match self {
            AlertKind::KillSwitchEngaged
            | AlertKind::ReconciliationMismatch
            | AlertKind::RejectStorm
            | AlertKind::UnknownOutcomes
            | AlertKind::LeaseLost
            | AlertKind::StreamDown => Severity::Critical,
            AlertKind::LeaseTakenOver
            | AlertKind::CycleError
            | AlertKind::TargetSetRefused
            | AlertKind::TargetSetSuperseded => Severity::Warning,
            AlertKind::KillSwitchReleased | AlertKind::EodSummary | AlertKind::Test => Severity::Info,
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a person is told about one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The primary kind.
    pub kind: AlertKind,
    /// Further kinds the event also is (an automatic kill switch caused by a
    /// reject storm is both), so a channel subscribed to either receives it.
    pub also: Vec<AlertKind>,
    /// How urgent.
    pub severity: Severity,
    /// One line for a subject or a chat message.
    pub title: String,
}

impl Notice {
    /// Whether a channel subscribed to `kinds` (empty: all) at `min` receives this.
    pub fn matches(&self, kinds: &[AlertKind], min: Severity) -> bool {
        self.severity >= min
            && (kinds.is_empty() || kinds.contains(&self.kind) || self.also.iter().any(|k| kinds.contains(k)))
    }
}

/// Cuts operator or broker text for a one-line title (whole characters).
fn short(s: &str) -> String {
    const MAX: usize = 160;
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.chars().count() <= MAX {
        one_line
    } else {
        let mut t: String = one_line.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

/// The trigger kinds an automatic kill-switch reason names. The worker's
/// reasons start with these words (crates/worker: `engage_kill` callers).
fn triggers(reason: &str) -> Vec<AlertKind> {
    let r = reason.to_ascii_lowercase();
    let mut out = Vec::new();
    if r.starts_with("reject storm") {
        out.push(AlertKind::RejectStorm);
    }
    if r.starts_with("repeated unknown outcomes") {
        out.push(AlertKind::UnknownOutcomes);
    }
    if r.starts_with("reconciliation mismatch") {
        out.push(AlertKind::ReconciliationMismatch);
    }
    out
}

/// The notification an event calls for, if any.
pub fn notice_of(ev: &Event) -> Option<Notice> {
    let simple = |kind: AlertKind, title: String| Notice {
        kind,
        also: Vec::new(),
        severity: kind.default_severity(),
        title,
    };
    match ev {
        Event::KillSwitchEngaged { reason, source, .. } => Some(Notice {
            kind: AlertKind::KillSwitchEngaged,
            also: if *source == KillSource::Automatic {
                triggers(reason)
            } else {
                Vec::new()
            },
            severity: Severity::Critical,
            title: format!("kill switch engaged ({}): {}", source_str(*source), short(reason)),
        }),
        Event::KillSwitchReleased { reason, source, .. } => Some(simple(
            AlertKind::KillSwitchReleased,
            format!(
                "kill switch released ({}): {}",
                source_str(*source),
                short(reason)
            ),
        )),
        Event::Reconciled {
            ok: false,
            differences,
            ..
        } => Some(simple(
            AlertKind::ReconciliationMismatch,
            format!(
                "reconciliation mismatch: {} difference(s): {}",
                differences.len(),
                short(&differences.join("; "))
            ),
        )),
        Event::CycleFinished {
            cycle_id, outcome, ..
        } if outcome.starts_with("error") => Some(simple(
            AlertKind::CycleError,
            format!("cycle {cycle_id} failed: {}", short(outcome)),
        )),
        Event::EodSnapshot {
            date,
            equity,
            day_pnl,
            ..
        } => Some(simple(
            AlertKind::EodSummary,
            format!(
                "EOD {date}: equity {}, day P&L {}",
                equity.round_dp(2),
                day_pnl.round_dp(2)
            ),
        )),
        Event::TargetSetSuperseded {
            target_set_id, by, ..
        } => Some(simple(
            AlertKind::TargetSetSuperseded,
            format!("target set {target_set_id} superseded by {by}: it will not be traded"),
        )),
        Event::Alert { alert, detail, .. } => Some(Notice {
            kind: *alert,
            also: Vec::new(),
            severity: alert.default_severity(),
            title: format!("{}: {}", alert.as_str().replace('_', " "), short(detail)),
        }),
        _ => None,
    }
}

fn source_str(s: KillSource) -> &'static str {
    match s {
        KillSource::Cli => "cli",
        KillSource::Http => "http",
        KillSource::FlagFile => "flag file",
        KillSource::Automatic => "automatic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn names_round_trip() {
        for k in AlertKind::ALL {
            assert_eq!(AlertKind::parse(k.as_str()), Some(*k));
        }
        for s in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert_eq!(AlertKind::parse("nope"), None);
    }

    #[test]
    fn automatic_reject_storm_kill_is_both_kinds() {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap();
        let ev = Event::KillSwitchEngaged {
            reason: "reject storm: 5 rejects in cycle x#0".into(),
            source: KillSource::Automatic,
            at,
        };
        let n = notice_of(&ev).unwrap();
        assert_eq!(n.kind, AlertKind::KillSwitchEngaged);
        assert_eq!(n.also, vec![AlertKind::RejectStorm]);
        assert!(n.matches(&[AlertKind::RejectStorm], Severity::Critical));
        assert!(n.matches(&[], Severity::Info));
        assert!(!n.matches(&[AlertKind::EodSummary], Severity::Info));
        // An operator's kill naming the words is not a trigger.
        let manual = Event::KillSwitchEngaged {
            reason: "reject storm drill".into(),
            source: KillSource::Cli,
            at,
        };
        assert!(notice_of(&manual).unwrap().also.is_empty());
    }

    #[test]
    fn severity_filter_and_quiet_events() {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap();
        let released = Event::KillSwitchReleased {
            reason: "ok".into(),
            source: KillSource::Cli,
            at,
        };
        let n = notice_of(&released).unwrap();
        assert!(!n.matches(&[], Severity::Warning));
        assert!(notice_of(&Event::Reconciled {
            ok: true,
            differences: vec![],
            scope: None,
            at
        })
        .is_none());
        let fine = Event::CycleFinished {
            cycle_id: "c".into(),
            outcome: "sent 1".into(),
            at,
        };
        assert!(notice_of(&fine).is_none());
        let title = notice_of(&Event::KillSwitchEngaged {
            reason: "a\nb\u{1b}[31m".repeat(100),
            source: KillSource::Cli,
            at,
        })
        .unwrap()
        .title;
        assert!(!title.contains('\n') && !title.contains('\u{1b}'));
        assert!(title.chars().count() < 220);
    }

    #[test]
    fn a_superseded_set_is_a_warning_naming_both_sets() {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap();
        let n = notice_of(&Event::TargetSetSuperseded {
            target_set_id: "old".into(),
            by: "new".into(),
            at,
        })
        .unwrap();
        assert_eq!(n.kind, AlertKind::TargetSetSuperseded);
        assert_eq!(n.severity, Severity::Warning);
        assert!(n.title.contains("old") && n.title.contains("new"), "{}", n.title);
    }
}
