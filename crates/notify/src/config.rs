//! `[notify]` in keel.toml: the channels and how delivery retries.
//!
//! Secrets (webhook URLs, SMTP passwords) are never written in the file
//! itself: each names an environment variable (`url_env`, `password_env`) or
//! a file (`url_file`, `password_file`) to read at start-up, so keel.toml can
//! be shared and logged. The values are wrapped in [`Secret`], whose `Debug`
//! and `Display` print nothing of them.

use keel_domain::{AlertKind, Severity};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// `[notify]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// How often the delivery loop looks for new notifications, in milliseconds (100..=60000).
    #[schemars(range(min = 100, max = 60_000))]
    pub poll_ms: u64,
    /// First retry delay after a failed delivery, in milliseconds (100..=600000); doubles per attempt.
    #[schemars(range(min = 100, max = 600_000))]
    pub backoff_initial_ms: u64,
    /// Longest retry delay, in milliseconds (backoff_initial_ms..=3600000).
    #[schemars(range(min = 100, max = 3_600_000))]
    pub backoff_max_ms: u64,
    /// Notifications older than this many hours are not sent (1..=720): a
    /// channel added today does not replay last month.
    #[schemars(range(min = 1, max = 720))]
    pub max_age_hours: u64,
    /// A venue's order-update stream (Alpaca's trade_updates) down longer
    /// than this many seconds is a `stream_down` alert (5..=3600).
    #[schemars(range(min = 5, max = 3600))]
    pub stream_down_secs: u64,
    /// The channels. Empty (the default): nothing is sent, but the outbox
    /// still records every notification.
    #[serde(rename = "channel", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub channels: Vec<ChannelConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            poll_ms: 1_000,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 300_000,
            max_age_hours: 24,
            stream_down_secs: 60,
            channels: Vec::new(),
        }
    }
}

/// One `[[notify.channel]]`. (Unknown keys are refused by [`ChannelKind`]:
/// serde cannot deny them on a struct with a flattened part.)
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ChannelConfig {
    /// Unique name (letters, digits, `_`, `-`; 1..=64): the key of its delivery state.
    #[schemars(pattern(r"^[A-Za-z0-9_-]{1,64}$"))]
    pub name: String,
    /// Kinds this channel receives (`kill_switch_engaged`, `eod_summary`, ...). Empty: every kind.
    #[serde(default)]
    pub events: Vec<AlertKind>,
    /// Least severity sent: `info`, `warning` (default) or `critical`.
    #[serde(default = "default_severity")]
    pub min_severity: Severity,
    /// Per-attempt timeout in seconds (1..=300).
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_secs: u64,
    /// What kind of channel, and its settings.
    #[serde(flatten)]
    pub kind: ChannelKind,
}

fn default_severity() -> Severity {
    Severity::Warning
}

fn default_timeout() -> u64 {
    10
}

/// The channel types.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelKind {
    /// An HTTP(S) POST of the notification as JSON.
    Webhook {
        /// Environment variable holding the URL.
        #[serde(default)]
        #[schemars(length(min = 1, max = 256))]
        url_env: Option<String>,
        /// File holding the URL (first line).
        #[serde(default)]
        #[schemars(length(min = 1, max = 4096))]
        url_file: Option<PathBuf>,
        /// `json` (keel's message, default) or `slack` (`{"text": ...}`, for
        /// Slack-compatible incoming webhooks).
        #[serde(default)]
        format: WebhookFormat,
    },
    /// Email over SMTP.
    Email {
        /// SMTP server host name.
        #[schemars(length(min = 1, max = 253))]
        host: String,
        /// SMTP port (default 587, the submission port).
        #[serde(default = "default_smtp_port")]
        #[schemars(range(min = 1, max = 65_535))]
        port: u16,
        /// `required` (default: refuse to send unencrypted), `opportunistic`
        /// (STARTTLS when offered) or `off` (plain text; loopback test servers only).
        #[serde(default)]
        starttls: StartTls,
        /// SMTP user name (no authentication without it).
        #[serde(default)]
        #[schemars(length(min = 1, max = 256))]
        username: Option<String>,
        /// Environment variable holding the password.
        #[serde(default)]
        #[schemars(length(min = 1, max = 256))]
        password_env: Option<String>,
        /// File holding the password (first line).
        #[serde(default)]
        #[schemars(length(min = 1, max = 4096))]
        password_file: Option<PathBuf>,
        /// Sender address.
        #[schemars(length(min = 3, max = 320))]
        from: String,
        /// Recipients (at least one).
        #[schemars(length(min = 1, max = 100))]
        to: Vec<String>,
    },
    /// A program run once per notification with the message as JSON on stdin.
    Command {
        /// Program and arguments (no shell).
        #[schemars(length(min = 1, max = 64))]
        command: Vec<String>,
    },
}

fn default_smtp_port() -> u16 {
    587
}

/// Webhook body style.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// keel's message as JSON.
    #[default]
    Json,
    /// A Slack-compatible incoming-webhook body.
    Slack,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartTls {
    /// STARTTLS or nothing is sent (the default).
    #[default]
    Required,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// Never encrypt (for a loopback test server).
    Off,
}

/// A secret value: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where a secret comes from, resolved at start-up.
pub(crate) fn resolve_secret(
    channel: &str,
    what: &str,
    env: Option<&str>,
    file: Option<&PathBuf>,
) -> Result<Option<Secret>, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err(format!(
            "[[notify.channel]] {channel:?}: set {what}_env or {what}_file, not both"
        )),
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
            _ => Err(format!(
                "[[notify.channel]] {channel:?}: {what}_env = {var:?}: the environment variable is unset or empty"
            )),
        },
        (None, Some(path)) => {
            // Bounded read: a secret is one short line, whatever the file is.
            let meta = std::fs::metadata(path).map_err(|e| {
                format!(
                    "[[notify.channel]] {channel:?}: {what}_file = {}: {e}",
                    path.display()
                )
            })?;
            if !meta.is_file() || meta.len() > 64 * 1024 {
                return Err(format!(
                    "[[notify.channel]] {channel:?}: {what}_file = {}: must be a regular file of at most 64 KiB",
                    path.display()
                ));
            }
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "[[notify.channel]] {channel:?}: {what}_file = {}: {e}",
                    path.display()
                )
            })?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if line.is_empty() {
                return Err(format!(
                    "[[notify.channel]] {channel:?}: {what}_file = {}: the file is empty",
                    path.display()
                ));
            }
            Ok(Some(Secret(line)))
        }
        (None, None) => Ok(None),
    }
}

impl NotifyConfig {
    /// Checks every range and cross-field rule; the message names the key, the value and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        let range = |key: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("[notify] {key} = {v}: must be in {lo}..={hi}"))
            }
        };
        range("poll_ms", self.poll_ms, 100, 60_000)?;
        range("backoff_initial_ms", self.backoff_initial_ms, 100, 600_000)?;
        range(
            "backoff_max_ms",
            self.backoff_max_ms,
            self.backoff_initial_ms,
            3_600_000,
        )?;
        range("max_age_hours", self.max_age_hours, 1, 720)?;
        range("stream_down_secs", self.stream_down_secs, 5, 3600)?;
        let mut names = std::collections::BTreeSet::new();
        for c in &self.channels {
            let at = format!("[[notify.channel]] {:?}", c.name);
            if c.name.is_empty()
                || c.name.len() > 64
                || !c
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(format!(
                    "{at}: name must be 1 to 64 ASCII letters, digits, '_' or '-'"
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(format!("{at}: name is used by another channel"));
            }
            if !(1..=300).contains(&c.timeout_secs) {
                return Err(format!(
                    "{at}: timeout_secs = {}: must be in 1..=300",
                    c.timeout_secs
                ));
            }
            match &c.kind {
                ChannelKind::Webhook {
                    url_env, url_file, ..
                } => {
                    if url_env.is_none() && url_file.is_none() {
                        return Err(format!(
                            "{at}: a webhook needs url_env or url_file (the URL is a secret, never written in keel.toml)"
                        ));
                    }
                }
                ChannelKind::Email {
                    host,
                    to,
                    from,
                    username,
                    password_env,
                    password_file,
                    ..
                } => {
                    if host.is_empty() {
                        return Err(format!("{at}: host must not be empty"));
                    }
                    if to.is_empty() {
                        return Err(format!("{at}: to must list at least one recipient"));
                    }
                    for a in to.iter().chain(std::iter::once(from)) {
                        if a.parse::<lettre::Address>().is_err() {
                            return Err(format!("{at}: {a:?} is not an email address"));
                        }
                    }
                    if username.is_some() != (password_env.is_some() || password_file.is_some()) {
                        return Err(format!(
                            "{at}: username and password_env/password_file go together"
                        ));
                    }
                }
                ChannelKind::Command { command } => {
                    if command.first().is_none_or(|p| p.is_empty()) {
                        return Err(format!("{at}: command must name a program"));
                    }
                }
            }
        }
        Ok(())
    }
}
