//! The message every channel sends, built from one outbox item.

use chrono::{DateTime, Utc};
use keel_domain::{notice_of, AlertKind, Event, Notice, Severity};
use keel_store::OutboxItem;
use serde::Serialize;

/// What a receiver gets (the webhook's JSON body, the command's stdin, the
/// email's body). `event_id` is the deduplication key: delivery is at least
/// once, so a receiver may see the same `event_id` twice after a crash.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    /// The causing event's id.
    pub event_id: String,
    /// The causing event's audit sequence number (0 for a test message).
    pub seq: u64,
    /// Which account.
    pub account: String,
    /// Primary kind.
    pub kind: AlertKind,
    /// Further kinds.
    pub also: Vec<AlertKind>,
    /// How urgent.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// The event as logged.
    pub event: serde_json::Value,
}

impl Message {
    /// The message for an outbox item. The notice is recomputed from the
    /// logged event (one source: `keel_domain::notice_of`); `None` when the
    /// payload no longer calls for one (an outbox row from a newer keel).
    pub fn from_item(account: &str, item: &OutboxItem) -> Option<(Message, Notice)> {
        let ev: Event = serde_json::from_str(&item.payload).ok()?;
        let notice = notice_of(&ev)?;
        let event = serde_json::from_str(&item.payload).unwrap_or(serde_json::Value::Null);
        Some((
            Message {
                event_id: item.event_id.clone(),
                seq: item.seq,
                account: account.to_string(),
                kind: notice.kind,
                also: notice.also.clone(),
                severity: notice.severity,
                title: notice.title.clone(),
                at: item.at,
                event,
            },
            notice,
        ))
    }

    /// A test message for `keel notify test`.
    pub fn test(account: &str, at: DateTime<Utc>) -> Message {
        Message {
            event_id: format!("test:{}", at.to_rfc3339()),
            seq: 0,
            account: account.to_string(),
            kind: AlertKind::Test,
            also: Vec::new(),
            severity: Severity::Info,
            title: "test notification from keel notify test".to_string(),
            at,
            event: serde_json::Value::Null,
        }
    }

    /// One line for chat and subjects.
    pub fn line(&self) -> String {
        format!(
            "[keel {} {}] {} (event {})",
            self.account, self.severity, self.title, self.event_id
        )
    }
}
