//! `[broker]`: which venue an account trades — the embedded paper broker
//! (default) or Alpaca — and the two-signal rule for real money: a live
//! Alpaca account is only opened when the config says `env = "live"` AND
//! the command line says `--live`.

use crate::commands::Env;
use crate::error::{input, CliError};
use anyhow::Context;
use keel_alpaca::{AlpacaConfig, AlpacaEnv, Credentials};
use keel_broker::{Broker, MarketData, PaperBroker};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// The embedded paper broker (`<data_dir>/paper-broker.db`).
    #[default]
    Paper,
    /// Alpaca (paper or live account, per `broker.alpaca.env`).
    Alpaca,
}

/// `[broker]` in keel.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerSection {
    /// Venue: `paper` (the embedded paper broker, the default) or `alpaca`
    /// (keys from `APCA_API_KEY_ID` / `APCA_API_SECRET_KEY` or the key files
    /// below; never logged).
    pub kind: BrokerKind,
    /// `[broker.alpaca]`: used when `kind = "alpaca"`.
    pub alpaca: AlpacaConfig,
    /// `--live` was given on the command line (never read from the file).
    #[serde(skip)]
    #[schemars(skip)]
    pub live_flag: bool,
}

/// What an account trades against, for people: `keel status`, every dashboard page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VenueMode {
    /// The embedded paper broker.
    PaperEmbedded,
    /// An Alpaca paper account.
    PaperAlpaca,
    /// An Alpaca live (real-money) account.
    LiveAlpaca,
}

impl VenueMode {
    /// `PAPER (embedded)`, `PAPER (alpaca)` or `LIVE (alpaca)`.
    pub fn label(self) -> &'static str {
        match self {
            VenueMode::PaperEmbedded => "PAPER (embedded)",
            VenueMode::PaperAlpaca => "PAPER (alpaca)",
            VenueMode::LiveAlpaca => "LIVE (alpaca)",
        }
    }
}

impl BrokerSection {
    /// The venue mode this section selects.
    pub fn mode(&self) -> VenueMode {
        match (self.kind, self.alpaca.env) {
            (BrokerKind::Paper, _) => VenueMode::PaperEmbedded,
            (BrokerKind::Alpaca, AlpacaEnv::Paper) => VenueMode::PaperAlpaca,
            (BrokerKind::Alpaca, AlpacaEnv::Live) => VenueMode::LiveAlpaca,
        }
    }

    /// Range checks of `[broker.alpaca]` (named key, value, allowed range).
    /// `accounts`: how many `[[accounts]]` the file lists.
    pub fn validate(&self, accounts: usize) -> Result<(), String> {
        if self.kind == BrokerKind::Alpaca && accounts > 1 {
            // One key pair is one Alpaca account: several keel accounts on it
            // would trade and reconcile the same positions.
            return Err(format!(
                "broker.kind = \"alpaca\" with {accounts} [[accounts]]: one Alpaca key pair is one account; \
                 run one keel config per Alpaca account"
            ));
        }
        self.alpaca.validate()
    }

    /// Lets a risk-reducing command (engaging the kill switch, which cancels
    /// open orders) open a live venue without `--live`: stopping must never
    /// need more than the one word.
    pub fn allow_live_for_risk_reduction(&mut self) {
        if self.mode() == VenueMode::LiveAlpaca {
            self.live_flag = true;
        }
    }

    /// The two-signal rule: live needs both `env = "live"` and `--live`; a
    /// `--live` that the config does not back is refused too (the operator
    /// expected real money and would get something else).
    pub fn check_live(&self) -> Result<(), String> {
        match (self.mode(), self.live_flag) {
            (VenueMode::LiveAlpaca, true) => Ok(()),
            (VenueMode::LiveAlpaca, false) => Err(
                "broker.alpaca.env = \"live\" trades real money: live trading needs two separate signals, \
                 env = \"live\" in the config AND --live on the command line; --live was not given, nothing was done"
                    .into(),
            ),
            (_, true) => Err(format!(
                "--live given, but the config selects {} (live trading needs broker.kind = \"alpaca\" and \
                 broker.alpaca.env = \"live\" as well); nothing was done",
                self.mode().label()
            )),
            (_, false) => Ok(()),
        }
    }
}

/// An account's opened venue: execution and market data.
pub struct Opened {
    /// Execution.
    pub broker: Arc<dyn Broker>,
    /// Prices and asset facts.
    pub market: Arc<dyn MarketData>,
}

/// Opens the configured venue for `env`. `stream`: listen to Alpaca's
/// trade_updates while trading (`keel run`); one-shot commands rely on REST
/// lookups alone.
pub async fn open(env: &Env, stream: bool) -> Result<Opened, CliError> {
    let b = &env.cfg.broker;
    b.check_live().map_err(input)?;
    match b.kind {
        BrokerKind::Paper => {
            let path = env.cfg.paper_path();
            let paper = PaperBroker::open(&path, env.paper_config(), env.clock.clone())
                .await
                .with_context(|| format!("opening paper broker {}", path.display()))?;
            let paper = Arc::new(paper);
            Ok(Opened {
                broker: paper.clone(),
                market: paper,
            })
        }
        BrokerKind::Alpaca => {
            let cfg = &b.alpaca;
            let creds = Credentials::resolve(cfg.key_id_file.as_deref(), cfg.secret_key_file.as_deref())
                .map_err(|e| input(e.to_string()))?;
            let mut venue = keel_alpaca::connect(cfg, creds, env.clock.clone())
                .map_err(|e| input(format!("broker.alpaca: {e}")))?
                .for_keel_account(&env.cfg.account_id);
            if stream && cfg.stream {
                venue.start_stream(cfg);
            }
            tracing::info!(venue = b.mode().label(), trading = %cfg.trading_base(), "venue opened");
            Ok(Opened {
                broker: venue.broker(),
                market: venue.market(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(t: &str) -> BrokerSection {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn paper_is_the_default_and_modes_are_labelled() {
        assert_eq!(BrokerSection::default().mode().label(), "PAPER (embedded)");
        assert_eq!(section("kind = \"alpaca\"").mode().label(), "PAPER (alpaca)");
        assert_eq!(
            section("kind = \"alpaca\"\n[alpaca]\nenv = \"live\"")
                .mode()
                .label(),
            "LIVE (alpaca)"
        );
        assert!(toml::from_str::<BrokerSection>("kind = \"ib\"").is_err());
        assert!(
            toml::from_str::<BrokerSection>("live_flag = true").is_err(),
            "the flag is never read from a file"
        );
    }

    #[test]
    fn live_needs_both_signals() {
        let mut live = section("kind = \"alpaca\"\n[alpaca]\nenv = \"live\"");
        let e = live.check_live().unwrap_err();
        assert!(e.contains("--live") && e.contains("two separate signals"), "{e}");
        live.live_flag = true;
        live.check_live().unwrap();
        let mut paper = section("kind = \"alpaca\"");
        paper.check_live().unwrap();
        paper.live_flag = true;
        assert!(paper.check_live().unwrap_err().contains("PAPER (alpaca)"));
        // env = "live" alone, without kind = "alpaca", is the embedded paper broker: no money at risk.
        section("[alpaca]\nenv = \"live\"").check_live().unwrap();
    }
}
