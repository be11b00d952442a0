//! Alpaca's hosts. Paper and live differ only in the trading host; every one
//! can be overridden so tests point the adapter at 127.0.0.1.

/// Paper trading REST host.
pub const PAPER_TRADING: &str = "https://paper-api.alpaca.markets";
/// Live trading REST host.
pub const LIVE_TRADING: &str = "https://api.alpaca.markets";
/// Market Data REST host (same for paper and live).
pub const DATA: &str = "https://data.alpaca.markets";
/// Paper trade_updates stream.
pub const PAPER_STREAM: &str = "wss://paper-api.alpaca.markets/stream";
/// Live trade_updates stream.
pub const LIVE_STREAM: &str = "wss://api.alpaca.markets/stream";

/// Which account family a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlpacaEnv {
    /// Paper trading (simulated fills, separate keys).
    Paper,
    /// Real money.
    Live,
}

impl AlpacaEnv {
    /// Default trading host.
    pub fn trading_url(self) -> &'static str {
        match self {
            AlpacaEnv::Paper => PAPER_TRADING,
            AlpacaEnv::Live => LIVE_TRADING,
        }
    }

    /// Default data host.
    pub fn data_url(self) -> &'static str {
        DATA
    }

    /// Default stream URL.
    pub fn stream_url(self) -> &'static str {
        match self {
            AlpacaEnv::Paper => PAPER_STREAM,
            AlpacaEnv::Live => LIVE_STREAM,
        }
    }

    /// `paper` / `live`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlpacaEnv::Paper => "paper",
            AlpacaEnv::Live => "live",
        }
    }
}

/// `base` + `path` with exactly one slash between them.
pub fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_join() {
        assert_eq!(AlpacaEnv::Live.trading_url(), "https://api.alpaca.markets");
        assert_eq!(
            AlpacaEnv::Paper.stream_url(),
            "wss://paper-api.alpaca.markets/stream"
        );
        assert_eq!(join("http://h:1/", "/v2/orders"), "http://h:1/v2/orders");
        assert_eq!(join("http://h:1", "v2/orders"), "http://h:1/v2/orders");
    }
}
