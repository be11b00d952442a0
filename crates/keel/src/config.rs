//! `keel.toml`: one file, every key documented with its default (`keel init`
//! writes a commented example). Unknown keys are errors, so a misspelt limit
//! is never silently ignored.
//!
//! # Adding a setting (the pattern every section follows)
//!
//! 1. Put the field in a struct deriving `Serialize, Deserialize,
//!    schemars::JsonSchema` with `#[serde(default, deny_unknown_fields)]`, and
//!    give it a doc comment: that comment is the key's documentation in
//!    `keel init` and in `docs/keel.schema.json`.
//! 2. Declare its allowed values on the field itself, with schemars' validation
//!    attributes: `#[schemars(range(min = 1, max = 86_400))]` for numbers
//!    (decimals too), `extend("exclusiveMinimum" = 0)` / `"exclusiveMaximum"`
//!    for open bounds, `length(min = 1, max = 4096)` for strings and paths,
//!    `pattern(r"^[a-z]+$")` for identifiers. Every number and path needs one
//!    (a test lists the ones without). Unbounded integers are how a value makes
//!    keel panic or allocate without bound.
//! 3. A rule that relates two keys or needs the filesystem goes in
//!    [`KeelConfig::check_semantics`], naming the key, the value and the rule.
//! 4. Regenerate the schema: `cargo run -p keel -- init --schema > docs/keel.schema.json`
//!    (the `schema_is_up_to_date` test fails until you do).
//!
//! [`KeelConfig::load`] checks the file against the schema *before* serde
//! builds the structs ([`crate::config_schema::check`]), so every refusal says
//! `file: key = value: must be <allowed>` and exits 2 with nothing changed.
//! `[[accounts]]` overrides are checked as written and again after merging.

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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KeelConfig {
    /// Account id; part of every client order id.
    #[schemars(pattern(r"^[A-Za-z0-9_-]{1,48}$"))]
    pub account_id: String,
    /// Directory for the store, the paper broker and the inbox.
    #[schemars(length(min = 1, max = 4096))]
    pub data_dir: PathBuf,
    /// Where state lives.
    pub store: StoreSection,
    /// Which venue: `[broker]` (see `venue.rs`); the embedded paper broker by default.
    pub broker: crate::venue::BrokerSection,
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
            broker: crate::venue::BrokerSection::default(),
            paper: keel_broker::PaperConfig::default(),
            intake: IntakeConfig::default(),
            planner: PlannerConfig::default(),
            guards: GuardsConfig::default(),
            worker: WorkerConfig::default(),
            kill_switch: KillSwitchConfig::default(),
            schedule: ScheduleSection::default(),
            server: ServerSection::default(),
            lease: LeaseSection::default(),
            accounts: Vec::new(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite file path; default `<data_dir>/keel.db`.
    #[schemars(length(min = 1, max = 4096))]
    pub path: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://user@host:port/db`): when set, state lives
    /// there instead of in SQLite, one schema per account.
    #[schemars(length(min = 1, max = 4096))]
    pub url: Option<String>,
    /// Prefix of each account's PostgreSQL schema (`<prefix><account id>`).
    #[schemars(length(min = 0, max = 32))]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LeaseSection {
    /// Validity granted by each acquisition or renewal, in milliseconds of the database's clock.
    #[schemars(range(min = 100, max = 3600000))]
    pub ttl_ms: u64,
    /// Renewal period (and how often a standby tries to acquire), in milliseconds.
    #[schemars(range(min = 1, max = 3600000))]
    pub renew_ms: u64,
    /// Safety margin: a holder stops sending this long before its lease can expire.
    #[schemars(range(min = 0, max = 3600000))]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSection {
    /// Account id (letters, digits, `_`, `-`); part of every client order id.
    #[schemars(pattern(r"^[A-Za-z0-9_-]{1,48}$"))]
    pub id: String,
    /// This account's directory (SQLite store, paper venue, inbox); default `<data_dir>/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub data_dir: Option<PathBuf>,
    /// This account's inbox; default `<its data_dir>/inbox`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub inbox: Option<PathBuf>,
    /// Overrides of `[paper]` (e.g. `seed`, `initial_cash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<keel_broker::PaperConfig>")]
    pub paper: Option<toml::Table>,
    /// Overrides of `[guards]` (e.g. `guards.max_order_size.max_notional`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<GuardsConfig>")]
    pub guards: Option<toml::Table>,
    /// Overrides of `[kill_switch]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<KillSwitchConfig>")]
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

/// Largest keel.toml read: a config is a few kilobytes; anything near this is
/// not one, and reading it must not exhaust memory.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn read_bounded(path: &Path) -> Result<String, CliError> {
    use std::io::Read as _;
    let f = std::fs::File::open(path)
        .map_err(|e| input(format!("{}: cannot read config: {e}", path.display())))?;
    let meta = f
        .metadata()
        .map_err(|e| input(format!("{}: cannot read config: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(input(format!("{}: not a regular file", path.display())));
    }
    let mut text = String::new();
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| input(format!("{}: cannot read config: {e}", path.display())))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(input(format!(
            "{}: larger than {MAX_CONFIG_BYTES} bytes; not a keel config",
            path.display()
        )));
    }
    Ok(text)
}

/// A TOML syntax or type error, with the dotted key and its allowed range
/// when the error points at a `key = value` line (e.g. an integer too large
/// for 64 bits).
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.to_string().trim().to_string();
    let Some(span) = e.span() else { return msg };
    let Some(line_start) = text.get(..span.start).map(|t| t.rfind('\n').map_or(0, |i| i + 1)) else {
        return msg;
    };
    let line = text[line_start..].lines().next().unwrap_or("");
    let Some((key, _)) = line.split_once('=') else {
        return msg;
    };
    let mut table = String::new();
    for l in text[..line_start].lines() {
        let t = l.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    let key = key.trim().trim_matches('"');
    let path = if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    };
    match crate::config_schema::allowed_at(&path) {
        Some(allowed) => format!("{path}: must be {allowed}; {msg}"),
        None => msg,
    }
}

/// A path that must name a file (which need not exist yet), never a directory.
fn check_file_path(key: &str, p: &Path) -> Result<(), String> {
    let text = p.to_string_lossy();
    if p.is_dir() || text.ends_with('/') || p.file_name().is_none() {
        return Err(format!("{key} = {text:?}: must be a file path, not a directory"));
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Listen address. Anything but loopback is logged as a warning.
    #[schemars(length(min = 1, max = 256))]
    pub bind: String,
    /// File holding the control-API bearer token (the `KEEL_CONTROL_TOKEN`
    /// environment variable wins). Without a token the control API is off.
    #[schemars(length(min = 1, max = 4096))]
    pub control_token_file: Option<PathBuf>,
    /// Dashboard auto-refresh period in seconds.
    #[schemars(range(min = 1, max = 3600))]
    pub refresh_secs: u64,
    /// Host names the dashboard and control API answer to (the `Host`
    /// header, port ignored), against DNS rebinding. Empty (the default): the
    /// bind address, `localhost` and `127.0.0.1`/`[::1]`.
    #[schemars(length(max = 64))]
    pub allowed_hosts: Vec<String>,
    /// Most connections served at once; more are closed at once (they would
    /// otherwise take file descriptors `keel run` needs).
    #[schemars(range(min = 1, max = 10000))]
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers.
    #[schemars(range(min = 1, max = 60))]
    pub header_read_timeout_secs: u64,
    /// Seconds an idle keep-alive connection stays open.
    #[schemars(range(min = 1, max = 600))]
    pub idle_timeout_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            control_token_file: None,
            refresh_secs: 5,
            allowed_hosts: Vec::new(),
            max_connections: 256,
            header_read_timeout_secs: 5,
            idle_timeout_secs: 30,
        }
    }
}

/// `[schedule]`: when `keel run` cycles.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSection {
    /// Seconds between cycles while the market is open.
    #[schemars(range(min = 1, max = 86400))]
    pub cycle_every_secs: u64,
    /// Inbox directory watched for target files; default `<data_dir>/inbox`.
    #[schemars(length(min = 1, max = 4096))]
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
    /// Loads `path`, or the defaults when `None`. Errors name the file, key,
    /// value and allowed range.
    pub fn load(path: Option<&Path>) -> Result<Self, CliError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = read_bounded(path)?;
        Self::from_toml(&text).map_err(|e| input(format!("{}: {e}", path.display())))
    }

    /// Parses and checks a keel.toml text (see the module docs).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
        let problems = crate::config_schema::check(&table);
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(list.join("; "));
        }
        let cfg: KeelConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string().trim().to_string())?;
        cfg.check_semantics()?;
        cfg.check_accounts_and_stores()?;
        cfg.broker.validate(cfg.accounts.len())?;
        Ok(cfg)
    }

    /// Rules that relate keys or look at the filesystem; the ranges of single
    /// keys are in the schema. Run for the top level and for every merged account.
    pub fn check_semantics(&self) -> Result<(), String> {
        check_account_id("account_id", &self.account_id)?;
        self.risk().validate().map_err(|ps| {
            let list: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
            list.join("; ")
        })?;
        if let Some(f) = &self.kill_switch.flag_file {
            check_file_path("kill_switch.flag_file", f)?;
        }
        if let Some(f) = &self.server.control_token_file {
            check_file_path("server.control_token_file", f)?;
        }
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "server.bind = {:?}: must be an IP address and port, e.g. \"127.0.0.1:8080\"",
                self.server.bind
            ));
        }
        for (i, h) in self.server.allowed_hosts.iter().enumerate() {
            if h.is_empty()
                || h.len() > 253
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            {
                return Err(format!(
                    "server.allowed_hosts[{i}] = {h:?}: must be a host name or address (letters, digits, '.', '-', ':', '[', ']'; at most 253)"
                ));
            }
        }
        Ok(())
    }

    /// Checks `[store]`, `[lease]` and `[[accounts]]` (each account's merged
    /// config must be valid on its own).
    pub fn check_accounts_and_stores(&self) -> Result<(), String> {
        self.lease.validate()?;
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
            // The merged account must stand on its own: ranges again (an
            // override can only be checked against the schema as written) and
            // the cross-key rules.
            let merged_problems = crate::config_schema::check_value(&c);
            if let Some(p) = merged_problems.first() {
                return Err(format!("{at} ({}) after merging: {p}", a.id));
            }
            c.check_semantics().map_err(|e| format!("{at} ({}): {e}", a.id))?;
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
