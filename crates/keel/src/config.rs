//! `keel.toml`: one file, every key documented with its default (`keel init`
//! writes a commented example). Unknown keys are errors, so a misspelt limit
//! is never silently ignored.

use crate::error::{input, CliError};
use keel_intake::IntakeConfig;
use keel_planner::{GuardsConfig, PlannerConfig, RiskConfig};
use keel_worker::{KillSwitchConfig, WorkerConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KeelConfig {
    /// Account id; part of every client order id.
    pub account_id: String,
    /// Directory for the store, the paper broker and the inbox.
    pub data_dir: PathBuf,
    /// Where state lives.
    pub store: StoreSection,
    /// The embedded paper broker.
    pub paper: keel_broker::PaperConfig,
    /// Target-set intake limits.
    pub intake: IntakeConfig,
    /// Sizing and pricing.
    pub planner: PlannerConfig,
    /// Guard thresholds.
    pub guards: GuardsConfig,
    /// Cycle behaviour.
    pub worker: WorkerConfig,
    /// Kill-switch triggers.
    pub kill_switch: KillSwitchConfig,
    /// Live loop schedule.
    pub schedule: ScheduleSection,
    /// Dashboard and control API.
    pub server: ServerSection,
}

impl Default for KeelConfig {
    fn default() -> Self {
        Self {
            account_id: "paper".into(),
            data_dir: PathBuf::from("keel-data"),
            store: StoreSection::default(),
            paper: keel_broker::PaperConfig::default(),
            intake: IntakeConfig::default(),
            planner: PlannerConfig::default(),
            guards: GuardsConfig::default(),
            worker: WorkerConfig::default(),
            kill_switch: KillSwitchConfig::default(),
            schedule: ScheduleSection::default(),
            server: ServerSection::default(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite file path; default `<data_dir>/keel.db`.
    pub path: Option<PathBuf>,
}

/// `[server]`: the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Listen address. Anything but loopback is logged as a warning.
    pub bind: String,
    /// File holding the control-API bearer token (the `KEEL_CONTROL_TOKEN`
    /// environment variable wins). Without a token the control API is off.
    pub control_token_file: Option<PathBuf>,
    /// Dashboard auto-refresh period in seconds.
    pub refresh_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            control_token_file: None,
            refresh_secs: 5,
        }
    }
}

/// `[schedule]`: when `keel run` cycles.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSection {
    /// Seconds between cycles while the market is open.
    pub cycle_every_secs: u64,
    /// Inbox directory watched for target files; default `<data_dir>/inbox`.
    pub inbox: Option<PathBuf>,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            cycle_every_secs: 60,
            inbox: None,
        }
    }
}

impl KeelConfig {
    /// Loads `path`, or the defaults when `None`. Errors name the file, key and value.
    pub fn load(path: Option<&Path>) -> Result<Self, CliError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| input(format!("{}: cannot read config: {e}", path.display())))?;
        let cfg: KeelConfig = toml::from_str(&text)
            .map_err(|e| input(format!("{}: {}", path.display(), e.to_string().trim())))?;
        cfg.risk().validate().map_err(|ps| {
            let list: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
            input(format!("{}: {}", path.display(), list.join("; ")))
        })?;
        if cfg.account_id.is_empty() {
            return Err(input(format!(
                "{}: account_id = \"\": must not be empty",
                path.display()
            )));
        }
        Ok(cfg)
    }

    /// The planner's view of the config.
    pub fn risk(&self) -> RiskConfig {
        RiskConfig {
            planner: self.planner.clone(),
            guards: self.guards.clone(),
        }
    }

    /// The store's SQLite file.
    pub fn store_path(&self) -> PathBuf {
        self.store
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keel.db"))
    }

    /// The paper broker's own SQLite file (a separate "venue").
    pub fn paper_path(&self) -> PathBuf {
        self.data_dir.join("paper-broker.db")
    }

    /// The inbox directory.
    pub fn inbox(&self) -> PathBuf {
        self.schedule
            .inbox
            .clone()
            .unwrap_or_else(|| self.data_dir.join("inbox"))
    }
}

/// The commented example `keel init` writes: every key with its default.
pub fn example() -> String {
    match crate::config_doc::render() {
        Ok(s) => s,
        // Unreachable in a tested build (a unit test keeps every key documented).
        Err(missing) => format!("# undocumented keys: {missing:?}\n"),
    }
}
