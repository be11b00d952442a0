//! Where the configuration comes from: `--config`, else `KEEL_CONFIG`, else
//! `./keel.toml`, else the data directory's `keel.toml` (the one `keel demo`
//! writes), else the built-in defaults. A file named explicitly (flag or
//! environment) must exist; the two implicit places are used only when they do.

use crate::error::{input, CliError};
use std::path::{Path, PathBuf};

/// The environment variable naming the config file.
pub const ENV_CONFIG: &str = "KEEL_CONFIG";

/// The data directory used when neither `--data-dir` nor a config names one
/// (the default of `data_dir` in keel.toml).
pub const DEFAULT_DATA_DIR: &str = "keel-data";

/// The config file a command uses, and why that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config FILE`.
    Flag(PathBuf),
    /// `KEEL_CONFIG=FILE`.
    Env(PathBuf),
    /// `./keel.toml` in the working directory.
    WorkingDir(PathBuf),
    /// `<data dir>/keel.toml`.
    DataDir(PathBuf),
    /// No file: built-in defaults.
    Defaults,
}

impl ConfigSource {
    /// The file to load, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Flag(p)
            | ConfigSource::Env(p)
            | ConfigSource::WorkingDir(p)
            | ConfigSource::DataDir(p) => Some(p),
            ConfigSource::Defaults => None,
        }
    }

    /// For the one stderr line every state verb prints.
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::Flag(p) => format!("{} (--config)", p.display()),
            ConfigSource::Env(p) => format!("{} ({ENV_CONFIG})", p.display()),
            ConfigSource::WorkingDir(p) => format!("{} (working directory)", p.display()),
            ConfigSource::DataDir(p) => format!("{} (data directory)", p.display()),
            ConfigSource::Defaults => "defaults (no keel.toml found)".to_string(),
        }
    }
}

/// Picks the config file by the documented order. `env_value` is
/// `KEEL_CONFIG`'s value (passed in so the order is testable without
/// touching the process environment).
pub fn discover(
    flag: Option<&Path>,
    env_value: Option<&str>,
    cwd: &Path,
    data_dir: Option<&Path>,
) -> Result<ConfigSource, CliError> {
    if let Some(p) = flag {
        return Ok(ConfigSource::Flag(p.to_path_buf()));
    }
    if let Some(v) = env_value.filter(|v| !v.trim().is_empty()) {
        let p = PathBuf::from(v);
        if !p.is_file() {
            return Err(input(format!(
                "{ENV_CONFIG} = {v:?}: no such config file (unset it to use ./keel.toml or the data directory's)"
            )));
        }
        return Ok(ConfigSource::Env(p));
    }
    let here = cwd.join("keel.toml");
    if here.is_file() {
        return Ok(ConfigSource::WorkingDir(here));
    }
    let dir = data_dir.unwrap_or(Path::new(DEFAULT_DATA_DIR));
    let there = dir.join("keel.toml");
    if there.is_file() {
        return Ok(ConfigSource::DataDir(there));
    }
    Ok(ConfigSource::Defaults)
}

static USED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records which config this process uses (for `keel run`'s start-up log).
pub fn record_used(source: &ConfigSource) {
    let _ = USED.set(source.describe());
}

/// The config this process uses, once [`record_used`] ran.
pub fn used() -> Option<&'static str> {
    USED.get().map(String::as_str)
}

/// [`discover`] over the real environment and working directory.
pub fn discover_here(flag: Option<&Path>, data_dir: Option<&Path>) -> Result<ConfigSource, CliError> {
    let env_value = std::env::var(ENV_CONFIG).ok();
    discover(flag, env_value.as_deref(), Path::new("."), data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_flag_env_working_dir_data_dir_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let cwd = tmp.path().join("cwd");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let named = tmp.path().join("named.toml");
        std::fs::write(&named, "").unwrap();
        let named_s = named.to_str().unwrap();
        let flag = tmp.path().join("flag.toml");

        assert_eq!(
            discover(None, None, &cwd, Some(&data)).unwrap(),
            ConfigSource::Defaults
        );
        std::fs::write(data.join("keel.toml"), "").unwrap();
        assert_eq!(
            discover(None, None, &cwd, Some(&data)).unwrap(),
            ConfigSource::DataDir(data.join("keel.toml"))
        );
        std::fs::write(cwd.join("keel.toml"), "").unwrap();
        assert_eq!(
            discover(None, None, &cwd, Some(&data)).unwrap(),
            ConfigSource::WorkingDir(cwd.join("keel.toml"))
        );
        assert_eq!(
            discover(None, Some(named_s), &cwd, Some(&data)).unwrap(),
            ConfigSource::Env(named.clone())
        );
        // An empty variable counts as unset.
        assert_eq!(
            discover(None, Some(""), &cwd, Some(&data)).unwrap(),
            ConfigSource::WorkingDir(cwd.join("keel.toml"))
        );
        assert_eq!(
            discover(Some(&flag), Some(named_s), &cwd, Some(&data)).unwrap(),
            ConfigSource::Flag(flag.clone())
        );
        let missing = tmp.path().join("nope.toml");
        let e = discover(None, Some(missing.to_str().unwrap()), &cwd, Some(&data)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("KEEL_CONFIG"), "{e}");
    }
}
