//! keel's notifications: people are told about events that need them, and no
//! message is lost on a crash.
//!
//! The store derives an outbox row from every logged event that needs a
//! person (`keel_domain::notice_of`), in the append's own transaction
//! (keel-store's `outbox` module). This crate delivers those rows: per
//! channel, in audit order, at least once, with exponential backoff, and
//! records each channel's delivery state in the store. A restart resumes
//! where the last run stopped; a message whose delivery was interrupted
//! after the receiver took it but before it was marked is sent again with
//! the same `event_id`, which receivers use to drop the duplicate.
//!
//! Delivery runs in its own tasks ([`Dispatcher::spawn`]) and only reads the
//! store and writes its own table, so trading never waits for it.

#![warn(missing_docs)]

pub mod channel;
pub mod config;
pub mod message;

pub use channel::Channel;
pub use config::{ChannelConfig, ChannelKind, NotifyConfig, StartTls, WebhookFormat};
pub use message::Message;

use chrono::{DateTime, Utc};
use keel_domain::Clock;
use keel_store::{Delivery, Outbox};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Items read per round trip from the outbox.
const BATCH: u32 = 100;

/// Builds every configured channel (reading secrets), or says which one cannot be built.
pub fn build_channels(cfg: &NotifyConfig) -> Result<Vec<Channel>, String> {
    cfg.validate()?;
    cfg.channels.iter().map(Channel::build).collect()
}

/// What one pass over a channel did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Delivered now.
    pub delivered: u32,
    /// Not for this channel (kind or severity).
    pub skipped: u32,
    /// Failed now (will be retried).
    pub failed: u32,
    /// Still waiting for a retry time.
    pub waiting: bool,
}

/// Delivers the outbox on a set of channels.
pub struct Dispatcher {
    outbox: Arc<dyn Outbox>,
    channels: Vec<Arc<Channel>>,
    clock: Arc<dyn Clock>,
    account: String,
    cfg: NotifyConfig,
    /// Per channel, when its failed head item may be tried again. Kept on
    /// the monotonic clock, not the domain clock (which `--at` fixes): retry
    /// pacing is about the receiver, not about market time. A restart
    /// forgets it and retries at once, which is what a restart is for.
    not_before: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// The retry delay after `attempts` failures: initial × 2^(attempts-1), capped.
pub fn backoff(cfg: &NotifyConfig, attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(30);
    let ms = cfg
        .backoff_initial_ms
        .saturating_mul(1u64 << shift)
        .min(cfg.backoff_max_ms);
    Duration::from_millis(ms)
}

impl Dispatcher {
    /// A dispatcher for `account`'s outbox.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        channels: Vec<Channel>,
        clock: Arc<dyn Clock>,
        account: &str,
        cfg: NotifyConfig,
    ) -> Self {
        Self {
            outbox,
            channels: channels.into_iter().map(Arc::new).collect(),
            clock,
            account: account.to_string(),
            cfg,
            not_before: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// One pass over one channel: sends what is due, in order, and stops at
    /// the first failure (later items wait for it, so order is kept and a
    /// receiver that is down is not hammered).
    pub async fn pass(&self, ch: &Channel) -> Result<PassStats, keel_store::StoreError> {
        let mut stats = PassStats::default();
        let max_age = chrono::Duration::hours(i64::try_from(self.cfg.max_age_hours).unwrap_or(720));
        loop {
            let now = self.now();
            let items = self
                .outbox
                .outbox_pending(&ch.cfg.name, now - max_age, BATCH)
                .await?;
            if items.is_empty() {
                return Ok(stats);
            }
            let full = items.len() == BATCH as usize;
            for item in &items {
                let now = self.now();
                let Some((msg, notice)) = Message::from_item(&self.account, item) else {
                    self.outbox
                        .outbox_record(&ch.cfg.name, item.seq, item.attempts, &Delivery::Skipped, now)
                        .await?;
                    stats.skipped += 1;
                    count(&ch.cfg.name, "skipped");
                    continue;
                };
                if !notice.matches(&ch.cfg.events, ch.cfg.min_severity) {
                    self.outbox
                        .outbox_record(&ch.cfg.name, item.seq, item.attempts, &Delivery::Skipped, now)
                        .await?;
                    stats.skipped += 1;
                    count(&ch.cfg.name, "skipped");
                    continue;
                }
                let due = self
                    .not_before
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&ch.cfg.name)
                    .is_none_or(|t| *t <= std::time::Instant::now());
                if !due {
                    stats.waiting = true;
                    return Ok(stats);
                }
                let attempts = item.attempts.saturating_add(1);
                match ch.send(&msg).await {
                    Ok(()) => {
                        self.not_before
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&ch.cfg.name);
                        self.outbox
                            .outbox_record(&ch.cfg.name, item.seq, attempts, &Delivery::Delivered, self.now())
                            .await?;
                        stats.delivered += 1;
                        count(&ch.cfg.name, "delivered");
                        tracing::info!(channel = %ch.cfg.name, event_id = %msg.event_id, seq = msg.seq, kind = %msg.kind, "notification delivered");
                    }
                    Err(error) => {
                        let wait = backoff(&self.cfg, attempts);
                        self.not_before
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(ch.cfg.name.clone(), std::time::Instant::now() + wait);
                        let next_at =
                            self.now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                        tracing::warn!(channel = %ch.cfg.name, event_id = %msg.event_id, attempts, retry_in_ms = wait.as_millis() as u64, %error, "notification delivery failed");
                        self.outbox
                            .outbox_record(
                                &ch.cfg.name,
                                item.seq,
                                attempts,
                                &Delivery::Failed { error, next_at },
                                self.now(),
                            )
                            .await?;
                        stats.failed += 1;
                        count(&ch.cfg.name, "failed");
                        return Ok(stats);
                    }
                }
            }
            if !full {
                return Ok(stats);
            }
        }
    }

    /// One pass over every channel (for tests and `keel cycle`-style one-shots).
    pub async fn pass_all(&self) -> Result<Vec<PassStats>, keel_store::StoreError> {
        let mut out = Vec::with_capacity(self.channels.len());
        for ch in &self.channels {
            out.push(self.pass(ch).await?);
        }
        Ok(out)
    }

    /// Runs one task per channel until `stop` turns true. A store error is
    /// logged and retried on the next poll: delivery never takes keel down.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let me = Arc::new(self);
        let mut handles = Vec::new();
        for ch in me.channels.clone() {
            let me = me.clone();
            let mut stop = stop.clone();
            handles.push(tokio::spawn(async move {
                let poll = Duration::from_millis(me.cfg.poll_ms);
                loop {
                    if *stop.borrow() {
                        return;
                    }
                    if let Err(e) = me.pass(&ch).await {
                        tracing::warn!(channel = %ch.cfg.name, error = %e, "notification outbox unreadable; retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = stop.changed() => {}
                    }
                }
            }));
        }
        handles
    }
}

fn count(channel: &str, outcome: &'static str) {
    use keel_domain::metrics_names as m;
    metrics::counter!(m::NOTIFICATIONS, m::LABEL_CHANNEL => channel.to_string(), m::LABEL_OUTCOME => outcome)
        .increment(1);
}

/// Sends a test message on every channel: `(name, Ok | Err(why))` per channel.
pub async fn send_test(
    channels: &[Channel],
    account: &str,
    at: DateTime<Utc>,
) -> Vec<(String, Result<(), String>)> {
    let msg = Message::test(account, at);
    let mut out = Vec::new();
    for ch in channels {
        out.push((ch.cfg.name.clone(), ch.send(&msg).await));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = NotifyConfig {
            backoff_initial_ms: 1_000,
            backoff_max_ms: 10_000,
            ..NotifyConfig::default()
        };
        assert_eq!(backoff(&cfg, 1), Duration::from_millis(1_000));
        assert_eq!(backoff(&cfg, 2), Duration::from_millis(2_000));
        assert_eq!(backoff(&cfg, 4), Duration::from_millis(8_000));
        assert_eq!(backoff(&cfg, 5), Duration::from_millis(10_000));
        assert_eq!(backoff(&cfg, u32::MAX), Duration::from_millis(10_000));
    }

    fn parse(text: &str) -> Result<NotifyConfig, String> {
        let cfg: NotifyConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate().map(|_| cfg)
    }

    #[test]
    fn config_is_checked_naming_the_key() {
        assert!(parse("").is_ok());
        let e = parse("poll_ms = 0").unwrap_err();
        assert!(e.contains("poll_ms = 0") && e.contains("100..=60000"), "{e}");
        let e = parse("[[channel]]\nname = \"w\"\ntype = \"webhook\"\n").unwrap_err();
        assert!(e.contains("url_env or url_file"), "{e}");
        let e =
            parse("[[channel]]\nname = \"m\"\ntype = \"email\"\nhost = \"h\"\nfrom = \"a@b.c\"\nto = []\n")
                .unwrap_err();
        assert!(e.contains("at least one recipient"), "{e}");
        let e = parse("[[channel]]\nname = \"c\"\ntype = \"command\"\ncommand = []\n").unwrap_err();
        assert!(e.contains("must name a program"), "{e}");
        let e =
            parse("[[channel]]\nname = \"c\"\ntype = \"command\"\ncommand = [\"x\"]\nevents = [\"nope\"]\n")
                .unwrap_err();
        assert!(e.contains("nope"), "{e}");
        let e = parse("[[channel]]\nname = \"c c\"\ntype = \"command\"\ncommand = [\"x\"]\n").unwrap_err();
        assert!(e.contains("name must be"), "{e}");
        let e =
            parse("[[channel]]\nname = \"c\"\ntype = \"command\"\ncommand = [\"x\"]\nurl = \"https://x\"\n")
                .unwrap_err();
        assert!(e.contains("url"), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        std::env::set_var("KEEL_NOTIFY_UNIT_URL", "https://hooks.example/SECRET-TOKEN");
        let cfg =
            parse("[[channel]]\nname = \"w\"\ntype = \"webhook\"\nurl_env = \"KEEL_NOTIFY_UNIT_URL\"\n")
                .unwrap();
        let chans = build_channels(&cfg).unwrap();
        assert!(!format!("{chans:?}").contains("SECRET"));
        let missing =
            parse("[[channel]]\nname = \"w\"\ntype = \"webhook\"\nurl_env = \"KEEL_NOTIFY_UNIT_UNSET\"\n")
                .unwrap();
        let e = build_channels(&missing).unwrap_err();
        assert!(e.contains("KEEL_NOTIFY_UNIT_UNSET") && e.contains("unset"), "{e}");
    }
}
