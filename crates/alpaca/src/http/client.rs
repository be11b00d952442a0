//! One reqwest client (rustls, timeouts) for both Alpaca REST hosts, every
//! request under the key's shared [`RateLimiter`].

use super::models::{AlpacaOrder, OrderRequest};
use super::parse::{cancel_error, read_error, submit_error, Outcome};
use crate::common::credentials::Credentials;
use crate::common::rate_limit::{BudgetStats, RateLimiter};
use crate::common::retry::{parse_retry_after, RetryPolicy};
use crate::common::urls::join;
use crate::config::AlpacaConfig;
use keel_broker::BrokerError;
use reqwest::Method;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// Longest body read from any answer; Alpaca's largest pages are far smaller.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Which REST host a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// Trading API.
    Trading,
    /// Market Data API.
    Data,
}

/// The REST client.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    creds: Credentials,
    limiter: Arc<RateLimiter>,
    retry: RetryPolicy,
    trading: String,
    data: String,
}

impl RestClient {
    /// Builds the client; the budget is the process-wide one for this key.
    pub fn new(cfg: &AlpacaConfig, creds: Credentials) -> Result<Self, BrokerError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(cfg.connect_timeout())
            .timeout(cfg.request_timeout())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BrokerError::Other(format!("building the HTTP client: {e}")))?;
        let limiter = RateLimiter::for_key(creds.key_id(), cfg.requests_per_minute, cfg.burst);
        Ok(Self {
            http,
            creds,
            limiter,
            retry: cfg.retry_policy(),
            trading: cfg.trading_base(),
            data: cfg.data_base(),
        })
    }

    /// The shared budget's counters (requests sent, 429s, pacing time).
    pub fn stats(&self) -> BudgetStats {
        self.limiter.stats()
    }

    /// The key pair (for the stream's authenticate message).
    pub(crate) fn credentials(&self) -> &Credentials {
        &self.creds
    }

    fn url(&self, host: Host, path: &str) -> String {
        join(
            match host {
                Host::Trading => &self.trading,
                Host::Data => &self.data,
            },
            path,
        )
    }

    /// One exchange, paced by the budget; never retried here.
    async fn exchange(
        &self,
        method: Method,
        host: Host,
        path: &str,
        query: &[(&str, String)],
        body: Option<&OrderRequest>,
    ) -> Outcome {
        self.limiter.acquire().await;
        let mut rb = self
            .http
            .request(method, self.url(host, path))
            .header("APCA-API-KEY-ID", self.creds.key_id())
            .header("APCA-API-SECRET-KEY", self.creds.secret_key());
        if !query.is_empty() {
            rb = rb.query(query);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Outcome::TimedOut,
            Err(e) if e.is_connect() => return Outcome::NotConnected(strip(&e)),
            Err(e) => return Outcome::Broken(strip(&e)),
        };
        let status = resp.status().as_u16();
        let retry_after = parse_retry_after(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()));
        if status == 429 {
            self.limiter
                .throttled(retry_after.unwrap_or(Duration::from_secs(1)));
        }
        match read_body(resp).await {
            Ok(body) => Outcome::Answer {
                status,
                body,
                retry_after,
            },
            Err(o) => o,
        }
    }

    /// A read: retried within the budget on transient failures. `Ok(None)` on 404.
    pub async fn get<T: DeserializeOwned>(
        &self,
        host: Host,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>, BrokerError> {
        let mut attempt = 1;
        loop {
            let o = self.exchange(Method::GET, host, path, query, None).await;
            let err = match &o {
                Outcome::Answer { status: 404, .. } => return Ok(None),
                Outcome::Answer { status, body, .. } if (200..300).contains(status) => {
                    return serde_json::from_str(body)
                        .map(Some)
                        .map_err(|e| BrokerError::Other(format!("GET {path}: unreadable answer: {e}")));
                }
                _ => read_error(&o),
            };
            match &err {
                BrokerError::Retryable { retry_after, .. } if self.retry.again(attempt) => {
                    let wait = self.retry.wait(attempt, *retry_after);
                    tracing::debug!(path, attempt, ?wait, error = %err, "alpaca read failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(with_path(err, "GET", path)),
            }
        }
    }

    /// `POST /v2/orders`, exactly once.
    pub async fn submit(&self, req: &OrderRequest) -> Result<AlpacaOrder, BrokerError> {
        let o = self
            .exchange(Method::POST, Host::Trading, "/v2/orders", &[], Some(req))
            .await;
        match &o {
            Outcome::Answer { status, body, .. } if (200..300).contains(status) => {
                // Accepted but unreadable: the order exists; only a lookup can say what it is.
                serde_json::from_str(body).map_err(|e| BrokerError::UnknownOutcome {
                    message: format!("order accepted (HTTP {status}) but the answer is unreadable: {e}"),
                })
            }
            _ => Err(submit_error(&o)),
        }
    }

    /// `DELETE /v2/orders/{id}`, exactly once. `Ok(true)`: accepted;
    /// `Ok(false)`: 422, the order is not cancelable (already final).
    pub async fn cancel(&self, order_id: &str) -> Result<bool, BrokerError> {
        let path = format!("/v2/orders/{order_id}");
        let o = self
            .exchange(Method::DELETE, Host::Trading, &path, &[], None)
            .await;
        match &o {
            Outcome::Answer { status, .. } if (200..300).contains(status) => Ok(true),
            Outcome::Answer { status: 422, .. } => Ok(false),
            _ => Err(cancel_error(&o)),
        }
    }
}

fn with_path(e: BrokerError, method: &str, path: &str) -> BrokerError {
    match e {
        BrokerError::Retryable { message, retry_after } => BrokerError::Retryable {
            message: format!("{method} {path}: {message}"),
            retry_after,
        },
        BrokerError::Other(m) => BrokerError::Other(format!("{method} {path}: {m}")),
        other => other,
    }
}

/// reqwest's error text without the URL (which carries no secret, but a query
/// may be long): the kind and the source chain.
fn strip(e: &reqwest::Error) -> String {
    let mut s = e.without_url_ref().to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s.chars().take(300).collect()
}

async fn read_body(mut resp: reqwest::Response) -> Result<String, Outcome> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if buf.len() + c.len() > MAX_BODY {
                    return Err(Outcome::Broken(format!("answer larger than {MAX_BODY} bytes")));
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err(Outcome::TimedOut),
            Err(e) => return Err(Outcome::Broken(strip(&e))),
        }
    }
    String::from_utf8(buf).map_err(|_| Outcome::Broken("answer is not UTF-8".into()))
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let kind = if self.is_timeout() {
            "timeout"
        } else if self.is_connect() {
            "connect error"
        } else if self.is_body() || self.is_decode() {
            "body error"
        } else if self.is_request() {
            "request error"
        } else {
            "http error"
        };
        kind.to_string()
    }
}
