//! `keel.toml`: one file, every key documented with its default (`keel init`
//! writes a commented example). Unknown keys are errors, so a misspelt limit
//! is never silently ignored.

use crate::error::{input, CliError};
use keel_intake::IntakeConfig;
use keel_planner::{GuardsConfig, PlannerConfig, RiskConfig};
use keel_worker::{KillSwitchConfig, WorkerConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// The single-writer lease `keel run` and `keel cycle` trade under.
    pub lease: LeaseSection,
    /// Notification channels (`[notify]`, `[[notify.channel]]`; see keel-notify).
    pub notify: keel_notify::NotifyConfig,
    /// More than one account: `[[accounts]]` entries, each with its own
    /// store, paper venue and inbox, inheriting everything else from the
    /// top level. Empty (the default): the one top-level account.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountSection>,
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
            lease: LeaseSection::default(),
            notify: keel_notify::NotifyConfig::default(),
            accounts: Vec::new(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite file path; default `<data_dir>/keel.db`.
    pub path: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://user@host:port/db`): when set, state lives
    /// there instead of in SQLite, one schema per account.
    pub url: Option<String>,
    /// Prefix of each account's PostgreSQL schema (`<prefix><account id>`).
    pub schema_prefix: String,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            path: None,
            url: None,
            schema_prefix: "keel_".into(),
        }
    }
}

/// `[lease]`: the single-writer lease per account (see keel-store's `lease` module).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LeaseSection {
    /// Validity granted by each acquisition or renewal, in milliseconds of the database's clock.
    pub ttl_ms: u64,
    /// Renewal period (and how often a standby tries to acquire), in milliseconds.
    pub renew_ms: u64,
    /// Safety margin: a holder stops sending this long before its lease can expire.
    pub margin_ms: u64,
}

impl Default for LeaseSection {
    fn default() -> Self {
        Self {
            ttl_ms: 15_000,
            renew_ms: 5_000,
            margin_ms: 3_000,
        }
    }
}

impl LeaseSection {
    /// The lease terms for keel-store.
    pub fn terms(&self) -> keel_store::LeaseTerms {
        keel_store::LeaseTerms {
            ttl: Duration::from_millis(self.ttl_ms),
            margin: Duration::from_millis(self.margin_ms),
        }
    }

    /// The renewal (and standby polling) period.
    pub fn renew_every(&self) -> Duration {
        Duration::from_millis(self.renew_ms.max(1))
    }

    fn validate(&self) -> Result<(), String> {
        if self.ttl_ms < 100 {
            return Err(format!("lease.ttl_ms = {}: must be at least 100", self.ttl_ms));
        }
        if self.renew_ms == 0 || self.renew_ms + self.margin_ms >= self.ttl_ms {
            return Err(format!(
                "lease.renew_ms = {}, lease.margin_ms = {}: renew_ms must be positive and \
                 renew_ms + margin_ms below ttl_ms = {} (a renewal must land before the local deadline)",
                self.renew_ms, self.margin_ms, self.ttl_ms
            ));
        }
        Ok(())
    }
}

/// One `[[accounts]]` entry. Everything not set here comes from the top level;
/// `paper`, `guards` and `kill_switch` tables are merged key by key over the
/// top-level ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountSection {
    /// Account id (letters, digits, `_`, `-`); part of every client order id.
    pub id: String,
    /// This account's directory (SQLite store, paper venue, inbox); default `<data_dir>/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// This account's inbox; default `<its data_dir>/inbox`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox: Option<PathBuf>,
    /// Overrides of `[paper]` (e.g. `seed`, `initial_cash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<toml::Table>,
    /// Overrides of `[guards]` (e.g. `guards.max_order_size.max_notional`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guards: Option<toml::Table>,
    /// Overrides of `[kill_switch]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_switch: Option<toml::Table>,
}

/// Longest account id: it names a directory and a PostgreSQL schema.
const MAX_ACCOUNT_ID: usize = 48;

fn check_account_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ACCOUNT_ID {
        return Err(format!(
            "{what} = {id:?}: must be 1 to {MAX_ACCOUNT_ID} characters"
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "{what} = {id:?}: only ASCII letters, digits, '_' and '-' (it names a directory and a schema)"
        ));
    }
    Ok(())
}

/// `base` with the keys of `over` replaced, recursively, re-checked as a `T`.
fn merged<T: Serialize + DeserializeOwned>(base: &T, over: &toml::Table, what: &str) -> Result<T, String> {
    fn merge(into: &mut toml::Table, over: &toml::Table) {
        for (k, v) in over {
            match (into.get_mut(k), v) {
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
                _ => {
                    into.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let mut v = toml::Value::try_from(base).map_err(|e| format!("{what}: {e}"))?;
    if let toml::Value::Table(t) = &mut v {
        merge(t, over);
    }
    v.try_into()
        .map_err(|e: toml::de::Error| format!("{what}: {}", e.to_string().trim()))
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
        cfg.check_accounts_and_stores()
            .map_err(|e| input(format!("{}: {e}", path.display())))?;
        Ok(cfg)
    }

    /// Checks `[store]`, `[lease]` and `[[accounts]]` (each account's merged
    /// config must be valid on its own).
    pub fn check_accounts_and_stores(&self) -> Result<(), String> {
        self.lease.validate()?;
        self.notify.validate()?;
        if let Some(url) = &self.store.url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                // Never echo the URL: it may carry a password.
                return Err("store.url: must be a postgres:// or postgresql:// URL".into());
            }
        }
        for acct in self.account_configs()? {
            if self.store.url.is_some() {
                keel_store::check_schema_name(&acct.pg_schema())
                    .map_err(|e| format!("store.schema_prefix + account id: {e}"))?;
            }
        }
        Ok(())
    }

    /// One complete config per account this file describes: itself when
    /// there are no `[[accounts]]`, else one per entry (top-level values as
    /// defaults, the entry's overrides merged in, `accounts` emptied).
    pub fn account_configs(&self) -> Result<Vec<KeelConfig>, String> {
        if self.accounts.is_empty() {
            return Ok(vec![self.clone()]);
        }
        if self.store.path.is_some() {
            return Err(
                "store.path: with [[accounts]] every account has its own SQLite file \
                 (<its data_dir>/keel.db); remove store.path"
                    .into(),
            );
        }
        if self.schedule.inbox.is_some() {
            return Err(
                "schedule.inbox: with [[accounts]] every account has its own inbox; \
                 set `inbox` per account instead"
                    .into(),
            );
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let at = format!("accounts[{i}]");
            check_account_id(&format!("{at}.id"), &a.id)?;
            if !seen.insert(a.id.clone()) {
                return Err(format!("{at}.id = {:?}: listed twice", a.id));
            }
            let mut c = self.clone();
            c.accounts.clear();
            c.account_id = a.id.clone();
            c.data_dir = a.data_dir.clone().unwrap_or_else(|| self.data_dir.join(&a.id));
            c.schedule.inbox = a.inbox.clone();
            if let Some(t) = &a.paper {
                c.paper = merged(&self.paper, t, &format!("{at}.paper"))?;
            }
            if let Some(t) = &a.guards {
                c.guards = merged(&self.guards, t, &format!("{at}.guards"))?;
            }
            if let Some(t) = &a.kill_switch {
                c.kill_switch = merged(&self.kill_switch, t, &format!("{at}.kill_switch"))?;
            }
            c.risk().validate().map_err(|ps| {
                let list: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
                format!("{at} ({}): {}", a.id, list.join("; "))
            })?;
            out.push(c);
        }
        // One store, venue and inbox per account: a shared file would mix two
        // accounts' events into one audit chain.
        let mut paths = BTreeSet::new();
        for c in &out {
            let mut mine = vec![c.paper_path(), c.inbox()];
            if c.store.url.is_none() {
                mine.push(c.store_path());
            }
            for p in mine {
                if !paths.insert(p.clone()) {
                    return Err(format!(
                        "accounts: {} would be shared by two accounts; give each its own data_dir and inbox",
                        p.display()
                    ));
                }
            }
        }
        Ok(out)
    }

    /// This account's PostgreSQL schema.
    pub fn pg_schema(&self) -> String {
        format!("{}{}", self.store.schema_prefix, self.account_id)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> KeelConfig {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn one_account_by_default() {
        let c = KeelConfig::default();
        let all = c.account_configs().unwrap();
        assert_eq!(all, vec![c]);
    }

    #[test]
    fn accounts_inherit_and_override() {
        let c = parse(
            "data_dir = \"d\"\n[paper]\nseed = 5\nslippage_bps = \"3\"\n\
             [guards.max_position_weight]\nmax_weight = \"0.10\"\n\
             [[accounts]]\nid = \"a\"\n\
             [[accounts]]\nid = \"b\"\ndata_dir = \"elsewhere\"\ninbox = \"in-b\"\n\
             paper = { seed = 9 }\nguards = { max_position_weight = { max_weight = \"0.25\" } }\n",
        );
        let all = c.account_configs().unwrap();
        assert_eq!(all.len(), 2);
        let (a, b) = (&all[0], &all[1]);
        assert_eq!(a.account_id, "a");
        assert_eq!(a.data_dir, PathBuf::from("d/a"));
        assert_eq!(a.inbox(), PathBuf::from("d/a/inbox"));
        assert_eq!(a.store_path(), PathBuf::from("d/a/keel.db"));
        assert_eq!(a.paper.seed, 5);
        assert_eq!(a.guards.max_position_weight.max_weight.to_string(), "0.10");
        assert_eq!(b.data_dir, PathBuf::from("elsewhere"));
        assert_eq!(b.inbox(), PathBuf::from("in-b"));
        assert_eq!(b.paper.seed, 9, "overridden");
        assert_eq!(b.paper.slippage_bps.to_string(), "3", "inherited");
        assert_eq!(b.guards.max_position_weight.max_weight.to_string(), "0.25");
        assert!(b.accounts.is_empty());
    }

    #[test]
    fn bad_account_lists_are_refused_naming_the_key() {
        let err = |text: &str| parse(text).account_configs().unwrap_err();
        assert!(err("[[accounts]]\nid = \"a\"\n[[accounts]]\nid = \"a\"\n").contains("accounts[1].id"));
        assert!(err("[[accounts]]\nid = \"a b\"\n").contains("accounts[0].id"));
        assert!(err("[store]\npath = \"x.db\"\n[[accounts]]\nid = \"a\"\n").contains("store.path"));
        assert!(err(
            "[[accounts]]\nid = \"a\"\ndata_dir = \"s\"\n[[accounts]]\nid = \"b\"\ndata_dir = \"s\"\n"
        )
        .contains("shared by two accounts"));
        assert!(err("[[accounts]]\nid = \"a\"\npaper = { seeed = 1 }\n").contains("accounts[0].paper"));
    }

    #[test]
    fn store_and_lease_settings_are_checked() {
        let ok = parse("[store]\nurl = \"postgres://u@h/db\"\n");
        ok.check_accounts_and_stores().unwrap();
        assert_eq!(ok.pg_schema(), "keel_paper");
        let e = parse("[store]\nurl = \"mysql://u:secret@h/db\"\n")
            .check_accounts_and_stores()
            .unwrap_err();
        assert!(e.contains("store.url") && !e.contains("secret"), "{e}");
        let e = parse("[lease]\nttl_ms = 1000\nrenew_ms = 600\nmargin_ms = 500\n")
            .check_accounts_and_stores()
            .unwrap_err();
        assert!(e.contains("renew_ms"), "{e}");
    }
}
