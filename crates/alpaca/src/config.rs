//! `[broker.alpaca]` in keel.toml.

use crate::common::retry::RetryPolicy;
use crate::common::urls::AlpacaEnv;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Which market-data feed quotes and bars come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Feed {
    /// IEX only: free with every account.
    Iex,
    /// The consolidated tape: needs a paid data plan (otherwise 403).
    Sip,
}

impl Feed {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Iex => "iex",
            Feed::Sip => "sip",
        }
    }
}

/// The Alpaca venue's settings. Every key is optional; hosts default from `env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlpacaConfig {
    /// `paper` or `live`. Live trades real money and also needs `--live` on
    /// the command line; either signal alone is refused.
    pub env: AlpacaEnv,
    /// Trading REST base URL; default from `env` (paper-api / api.alpaca.markets).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub trading_url: Option<String>,
    /// Market Data REST base URL; default `https://data.alpaca.markets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub data_url: Option<String>,
    /// trade_updates websocket URL; default from `env` (`wss://.../stream`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub stream_url: Option<String>,
    /// Market-data feed: `iex` (free) or `sip` (paid plan).
    pub feed: Feed,
    /// The key's REST budget per minute, shared by every call and paced so a
    /// large rebalance never meets a 429 (Alpaca allows 200).
    #[schemars(range(min = 2, max = 10_000))]
    pub requests_per_minute: u32,
    /// Requests that may go back to back before pacing starts (1: always
    /// evenly spaced; at most half of `requests_per_minute`).
    #[schemars(range(min = 1, max = 50))]
    pub burst: u32,
    /// TCP/TLS connect timeout, milliseconds.
    #[schemars(range(min = 100, max = 60_000))]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout, milliseconds (a submit that times out is an
    /// unknown outcome, resolved by client order id).
    #[schemars(range(min = 100, max = 120_000))]
    pub request_timeout_ms: u64,
    /// Attempts per read (account, positions, orders, quotes, bars, assets,
    /// clock), with backoff and `Retry-After`.
    #[schemars(range(min = 1, max = 10))]
    pub read_tries: u32,
    /// Listen to the trade_updates stream while `keel run` trades (backfilled
    /// over REST after every reconnect).
    pub stream: bool,
    /// Watchdog: seconds without any frame (not even a pong) after which the
    /// stream is presumed dead and reconnected.
    #[schemars(range(min = 2, max = 600))]
    pub stream_silence_secs: u64,
    /// File holding the key id (`APCA_API_KEY_ID` wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub key_id_file: Option<PathBuf>,
    /// File holding the secret key (`APCA_API_SECRET_KEY` wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub secret_key_file: Option<PathBuf>,
}

impl Default for AlpacaConfig {
    fn default() -> Self {
        Self {
            env: AlpacaEnv::Paper,
            trading_url: None,
            data_url: None,
            stream_url: None,
            feed: Feed::Iex,
            requests_per_minute: 200,
            burst: 1,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            read_tries: 3,
            stream: true,
            stream_silence_secs: 30,
            key_id_file: None,
            secret_key_file: None,
        }
    }
}

fn range<T: PartialOrd + std::fmt::Display>(key: &str, v: T, lo: T, hi: T) -> Result<(), String> {
    if v < lo || v > hi {
        return Err(format!(
            "broker.alpaca.{key} = {v}: must be between {lo} and {hi}"
        ));
    }
    Ok(())
}

fn url(key: &str, v: &Option<String>, schemes: &[&str]) -> Result<(), String> {
    let Some(s) = v else { return Ok(()) };
    let parsed = url::Url::parse(s).map_err(|e| format!("broker.alpaca.{key} = {s:?}: not a URL ({e})"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!(
            "broker.alpaca.{key} = {s:?}: scheme must be one of {}",
            schemes.join(", ")
        ));
    }
    if parsed.host_str().is_none() {
        return Err(format!("broker.alpaca.{key} = {s:?}: no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "broker.alpaca.{key}: must not carry credentials (use the key settings)"
        ));
    }
    Ok(())
}

impl AlpacaConfig {
    /// Checks every range; the error names the key, the value and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        range("requests_per_minute", self.requests_per_minute, 2, 10_000)?;
        range("burst", self.burst, 1, 50)?;
        if self.burst > self.requests_per_minute / 2 {
            return Err(format!(
                "broker.alpaca.burst = {}: must be at most half of requests_per_minute = {}",
                self.burst, self.requests_per_minute
            ));
        }
        range("connect_timeout_ms", self.connect_timeout_ms, 100, 60_000)?;
        range("request_timeout_ms", self.request_timeout_ms, 100, 120_000)?;
        range("read_tries", self.read_tries, 1, 10)?;
        range("stream_silence_secs", self.stream_silence_secs, 2, 600)?;
        url("trading_url", &self.trading_url, &["http", "https"])?;
        url("data_url", &self.data_url, &["http", "https"])?;
        url("stream_url", &self.stream_url, &["ws", "wss"])?;
        Ok(())
    }

    /// The trading host in effect.
    pub fn trading_base(&self) -> String {
        self.trading_url
            .clone()
            .unwrap_or_else(|| self.env.trading_url().into())
    }

    /// The data host in effect.
    pub fn data_base(&self) -> String {
        self.data_url
            .clone()
            .unwrap_or_else(|| self.env.data_url().into())
    }

    /// The stream URL in effect.
    pub fn stream_endpoint(&self) -> String {
        self.stream_url
            .clone()
            .unwrap_or_else(|| self.env.stream_url().into())
    }

    /// The retry budget for reads.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_tries: self.read_tries,
            ..RetryPolicy::default()
        }
    }

    /// Connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<AlpacaConfig, String> {
        let c: AlpacaConfig = toml::from_str(t).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn defaults_follow_env_and_overrides_win() {
        let c = parse("").unwrap();
        assert_eq!(c.trading_base(), "https://paper-api.alpaca.markets");
        assert_eq!(c.data_base(), "https://data.alpaca.markets");
        let c = parse("env = \"live\"\ntrading_url = \"http://127.0.0.1:9\"\n").unwrap();
        assert_eq!(c.env, AlpacaEnv::Live);
        assert_eq!(c.trading_base(), "http://127.0.0.1:9");
        assert_eq!(c.stream_endpoint(), "wss://api.alpaca.markets/stream");
    }

    #[test]
    fn bad_values_name_key_value_and_range() {
        let e = parse("requests_per_minute = 0").unwrap_err();
        assert!(
            e.contains("broker.alpaca.requests_per_minute = 0") && e.contains("between 2 and 10000"),
            "{e}"
        );
        let e = parse("request_timeout_ms = 99999999").unwrap_err();
        assert!(e.contains("request_timeout_ms = 99999999"), "{e}");
        assert!(parse("stream_url = \"http://x\"")
            .unwrap_err()
            .contains("stream_url"));
        assert!(parse("trading_url = \"http://u:pw@x\"")
            .unwrap_err()
            .contains("credentials"));
        assert!(parse("feed = \"bats\"").is_err());
        assert!(parse("env = \"prod\"").is_err());
        assert!(parse("colour = 1").unwrap_err().contains("colour"));
    }
}
