//! The channel types: webhook, email, command hook.

use crate::config::{resolve_secret, ChannelConfig, ChannelKind, Secret, StartTls, WebhookFormat};
use crate::message::Message;
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Sends one message. Errors are short, human-readable and hold no secret.
#[async_trait]
pub trait Send: std::marker::Send + Sync {
    /// Delivers `msg`; `Ok` only when the receiver accepted it.
    async fn send(&self, msg: &Message) -> Result<(), String>;
}

/// A configured channel, secrets resolved.
pub struct Channel {
    /// Its config (no secrets in it).
    pub cfg: ChannelConfig,
    sender: Box<dyn Send>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", &self.cfg.name).finish()
    }
}

impl Channel {
    /// Builds a channel, reading its secrets from the environment or files.
    pub fn build(cfg: &ChannelConfig) -> Result<Channel, String> {
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let sender: Box<dyn Send> = match &cfg.kind {
            ChannelKind::Webhook {
                url_env,
                url_file,
                format,
            } => {
                let url = resolve_secret(&cfg.name, "url", url_env.as_deref(), url_file.as_ref())?
                    .ok_or_else(|| format!("[[notify.channel]] {:?}: no webhook URL", cfg.name))?;
                if !(url.expose().starts_with("https://") || url.expose().starts_with("http://")) {
                    // Say where it came from, never what it is.
                    return Err(format!(
                        "[[notify.channel]] {:?}: the webhook URL must start with https:// or http://",
                        cfg.name
                    ));
                }
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| {
                        format!(
                            "[[notify.channel]] {:?}: HTTP client: {}",
                            cfg.name,
                            e.without_url()
                        )
                    })?;
                Box::new(Webhook {
                    url,
                    format: *format,
                    client,
                })
            }
            ChannelKind::Email {
                host,
                port,
                starttls,
                username,
                password_env,
                password_file,
                from,
                to,
            } => {
                let password = resolve_secret(
                    &cfg.name,
                    "password",
                    password_env.as_deref(),
                    password_file.as_ref(),
                )?;
                let tls = match starttls {
                    StartTls::Off => Tls::None,
                    StartTls::Required | StartTls::Opportunistic => {
                        let params = TlsParameters::new(host.clone())
                            .map_err(|e| format!("[[notify.channel]] {:?}: TLS: {e}", cfg.name))?;
                        if *starttls == StartTls::Required {
                            Tls::Required(params)
                        } else {
                            Tls::Opportunistic(params)
                        }
                    }
                };
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    .port(*port)
                    .tls(tls)
                    .timeout(Some(timeout));
                if let (Some(user), Some(pw)) = (username, password) {
                    b = b.credentials(Credentials::new(user.clone(), pw.expose().to_string()));
                }
                Box::new(Email {
                    transport: b.build(),
                    from: from.clone(),
                    to: to.clone(),
                })
            }
            ChannelKind::Command { command } => Box::new(Hook {
                command: command.clone(),
                timeout,
            }),
        };
        Ok(Channel {
            cfg: cfg.clone(),
            sender,
        })
    }

    /// Sends with the channel's timeout as an outer bound.
    pub async fn send(&self, msg: &Message) -> Result<(), String> {
        let limit = Duration::from_secs(self.cfg.timeout_secs.saturating_add(5));
        match tokio::time::timeout(limit, self.sender.send(msg)).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {}s", limit.as_secs())),
        }
    }
}

struct Webhook {
    url: Secret,
    format: WebhookFormat,
    client: reqwest::Client,
}

#[async_trait]
impl Send for Webhook {
    async fn send(&self, msg: &Message) -> Result<(), String> {
        let body = match self.format {
            WebhookFormat::Json => serde_json::to_value(msg).map_err(|e| e.to_string())?,
            WebhookFormat::Slack => serde_json::json!({ "text": msg.line() }),
        };
        let resp = self
            .client
            .post(self.url.expose())
            .header("Idempotency-Key", &msg.event_id)
            .header("X-Keel-Event-Id", &msg.event_id)
            .json(&body)
            .send()
            .await
            // The URL is the secret: errors are reported without it.
            .map_err(|e| format!("webhook: {}", e.without_url()))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("webhook: HTTP {}", status.as_u16()))
        }
    }
}

struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
    to: Vec<String>,
}

/// A Message-ID made of the event id's safe characters: the receivers'
/// deduplication key in mail (the event id is also in the body).
fn message_id(msg: &Message) -> String {
    let safe: String = msg
        .event_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(180)
        .collect();
    format!("<keel.{}.{}.{safe}@keel.invalid>", msg.account, msg.seq)
}

#[async_trait]
impl Send for Email {
    async fn send(&self, msg: &Message) -> Result<(), String> {
        let mut b = lettre::Message::builder()
            .from(self.from.parse().map_err(|e| format!("email from: {e}"))?)
            .subject(msg.line())
            .message_id(Some(message_id(msg)))
            .header(ContentType::TEXT_PLAIN);
        for t in &self.to {
            b = b.to(t.parse().map_err(|e| format!("email to: {e}"))?);
        }
        let body = format!(
            "{}\n\nevent id: {}\naudit seq: {}\naccount: {}\nseverity: {}\nat: {}\n\n{}\n",
            msg.title,
            msg.event_id,
            msg.seq,
            msg.account,
            msg.severity,
            msg.at.to_rfc3339(),
            serde_json::to_string_pretty(msg).unwrap_or_default()
        );
        let email = b.body(body).map_err(|e| format!("email: {e}"))?;
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| format!("smtp: {e}"))
    }
}

struct Hook {
    command: Vec<String>,
    timeout: Duration,
}

#[async_trait]
impl Send for Hook {
    async fn send(&self, msg: &Message) -> Result<(), String> {
        let Some((prog, args)) = self.command.split_first() else {
            return Err("command: empty".into());
        };
        let json = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(prog)
            .args(args)
            .env("KEEL_EVENT_ID", &msg.event_id)
            .env("KEEL_EVENT_KIND", msg.kind.as_str())
            .env("KEEL_SEVERITY", msg.severity.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("command {prog:?}: {e}"))?;
        let run = async {
            if let Some(mut stdin) = child.stdin.take() {
                // A hook that does not read stdin is fine: a broken pipe is not a failure.
                let _ = stdin.write_all(&json).await;
            }
            child.wait().await
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("command {prog:?} exited with {status}")),
            Ok(Err(e)) => Err(format!("command {prog:?}: {e}")),
            Err(_) => Err(format!(
                "command {prog:?} timed out after {}s",
                self.timeout.as_secs()
            )),
        }
    }
}
