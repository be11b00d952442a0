//! `[audit]`: the audit key and the witnesses the chain head is anchored to.
//!
//! ```toml
//! [audit]
//! key_file = "/etc/keel/audit.key"      # or KEEL_AUDIT_KEY; outside the data directory, mode 0600
//! witness_dir = "/var/lib/keel-witness" # default: <data_dir>/witness
//! witness_command = "logger -t keel-checkpoint"   # optional: each checkpoint on stdin
//! ```
//!
//! The default witness directory sits beside `keel.db`, not inside it: it
//! catches truncation, an emptied or deleted `keel.db` and a restored backup
//! of the database file. Against someone who can write the whole data
//! directory, point `witness_dir` elsewhere (another disk, another user) or
//! add a `witness_command` that ships checkpoints off the host.

use crate::error::{input, CliError};
use keel_store::{AuditKey, Witness};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable holding the audit key (at least 16 bytes).
pub const KEY_ENV: &str = "KEEL_AUDIT_KEY";

/// The `[audit]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// A file holding the audit key (used when `KEEL_AUDIT_KEY` is unset).
    /// Refused inside the data directory or when readable by group or others.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub key_file: Option<PathBuf>,
    /// Directory of the append-only checkpoint files (default `<data_dir>/witness`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub witness_dir: Option<PathBuf>,
    /// A command (run with `sh -c`) that receives each checkpoint as a JSON line on stdin.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub witness_command: Option<String>,
}

impl AuditConfig {
    /// The witness for an account whose data directory is `data_dir`.
    pub fn witness(&self, data_dir: &Path) -> Witness {
        let dir = self
            .witness_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("witness"));
        Witness::new(dir, self.witness_command.clone())
    }

    /// The audit key: `KEEL_AUDIT_KEY`, else `key_file`, else none. Errors
    /// (exit 2) name the source and never the key.
    pub fn key(&self, data_dir: &Path) -> Result<Option<AuditKey>, CliError> {
        if let Some(v) = std::env::var_os(KEY_ENV) {
            let bytes = v.as_encoded_bytes();
            return AuditKey::new(bytes)
                .map(Some)
                .map_err(|e| input(format!("{KEY_ENV}: {e}")));
        }
        let Some(path) = &self.key_file else {
            return Ok(None);
        };
        let what = format!("audit.key_file = {:?}", path.display().to_string());
        let meta = std::fs::metadata(path).map_err(|e| input(format!("{what}: cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(input(format!("{what}: not a regular file")));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(input(format!(
                    "{what}: readable by group or others (mode {mode:03o}); allowed: 0600 or 0400 (chmod 600)"
                )));
            }
        }
        if let (Ok(k), Ok(d)) = (path.canonicalize(), data_dir.canonicalize()) {
            if k.starts_with(&d) {
                return Err(input(format!(
                    "{what}: inside the data directory {}; the key must live elsewhere, or a copy \
                     of the data directory carries the means to forge it",
                    d.display()
                )));
            }
        }
        let bytes = std::fs::read(path).map_err(|e| input(format!("{what}: cannot read: {e}")))?;
        // A trailing newline from `echo > file` is not part of the key.
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        AuditKey::new(trimmed)
            .map(Some)
            .map_err(|e| input(format!("{what}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_rules() {
        use std::os::unix::fs::PermissionsExt;
        let data = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let write = |p: &Path, mode: u32| {
            std::fs::write(p, "a-secret-of-enough-length\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let cfg = |p: &Path| AuditConfig {
            key_file: Some(p.to_path_buf()),
            ..AuditConfig::default()
        };
        if std::env::var_os(KEY_ENV).is_some() {
            return; // the environment wins; nothing to test here
        }
        let ok = other.path().join("k");
        write(&ok, 0o600);
        assert!(cfg(&ok).key(data.path()).unwrap().is_some());
        let open = other.path().join("k2");
        write(&open, 0o644);
        let e = cfg(&open).key(data.path()).unwrap_err().to_string();
        assert!(e.contains("group or others") && !e.contains("a-secret"), "{e}");
        let inside = data.path().join("k");
        write(&inside, 0o600);
        let e = cfg(&inside).key(data.path()).unwrap_err().to_string();
        assert!(e.contains("inside the data directory"), "{e}");
        assert!(AuditConfig::default().key(data.path()).unwrap().is_none());
    }
}
