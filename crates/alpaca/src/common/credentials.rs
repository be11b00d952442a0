//! API keys: from `APCA_API_KEY_ID` / `APCA_API_SECRET_KEY`, or from the files
//! named in config. They leave this module only as request headers; `Debug`
//! redacts them so a logged config or error can never carry them.

use std::fmt;
use std::path::Path;

/// Environment variable holding the key id.
pub const ENV_KEY_ID: &str = "APCA_API_KEY_ID";
/// Environment variable holding the secret key.
pub const ENV_SECRET_KEY: &str = "APCA_API_SECRET_KEY";

/// An Alpaca key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    key_id: String,
    secret_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key_id", &"<redacted>")
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Why no usable key pair was found. Never contains a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// Neither the variable nor a file gave a value.
    #[error("no Alpaca {what}: set {var} or broker.alpaca.{file_key}")]
    Missing {
        /// `key id` or `secret key`.
        what: &'static str,
        /// The environment variable.
        var: &'static str,
        /// The config key naming a file.
        file_key: &'static str,
    },
    /// A named key file could not be read.
    #[error("broker.alpaca.{file_key} = {path}: cannot read ({reason})")]
    Unreadable {
        /// The config key.
        file_key: &'static str,
        /// The path (not secret).
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The value had characters that cannot go in an HTTP header.
    #[error("the Alpaca {what} contains characters not allowed in an HTTP header")]
    Malformed {
        /// `key id` or `secret key`.
        what: &'static str,
    },
}

impl Credentials {
    /// A key pair from values (tests, fakes).
    pub fn new(key_id: impl Into<String>, secret_key: impl Into<String>) -> Result<Self, CredentialsError> {
        let c = Self {
            key_id: key_id.into().trim().to_string(),
            secret_key: secret_key.into().trim().to_string(),
        };
        for (what, v) in [("key id", &c.key_id), ("secret key", &c.secret_key)] {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(CredentialsError::Malformed { what });
            }
        }
        Ok(c)
    }

    /// Resolves keys: the environment wins, then the named files.
    pub fn resolve(
        key_id_file: Option<&Path>,
        secret_key_file: Option<&Path>,
    ) -> Result<Self, CredentialsError> {
        Self::resolve_with(|v| std::env::var(v).ok(), key_id_file, secret_key_file)
    }

    /// [`Credentials::resolve`] with an injectable environment (tests).
    pub fn resolve_with(
        env: impl Fn(&str) -> Option<String>,
        key_id_file: Option<&Path>,
        secret_key_file: Option<&Path>,
    ) -> Result<Self, CredentialsError> {
        let one = |what: &'static str, var: &'static str, file_key: &'static str, file: Option<&Path>| {
            if let Some(v) = env(var).filter(|v| !v.trim().is_empty()) {
                return Ok(v);
            }
            match file {
                Some(p) => std::fs::read_to_string(p).map_err(|e| CredentialsError::Unreadable {
                    file_key,
                    path: p.display().to_string(),
                    reason: e.kind().to_string(),
                }),
                None => Err(CredentialsError::Missing { what, var, file_key }),
            }
        };
        let k = one("key id", ENV_KEY_ID, "key_id_file", key_id_file)?;
        let s = one("secret key", ENV_SECRET_KEY, "secret_key_file", secret_key_file)?;
        Self::new(k, s)
    }

    /// For the `APCA-API-KEY-ID` header and the stream's authenticate message only.
    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    /// For the `APCA-API-SECRET-KEY` header and the stream's authenticate message only.
    pub(crate) fn secret_key(&self) -> &str {
        &self.secret_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_keys() {
        let c = Credentials::new("AKIDSECRET1", "verysecret2").unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("AKIDSECRET1") && !s.contains("verysecret2"), "{s}");
    }

    #[test]
    fn env_wins_then_files_then_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let kf = dir.path().join("k");
        let sf = dir.path().join("s");
        std::fs::write(&kf, "FILEKEY\n").unwrap();
        std::fs::write(&sf, "FILESECRET\n").unwrap();
        let none = |_: &str| None;
        let c = Credentials::resolve_with(none, Some(&kf), Some(&sf)).unwrap();
        assert_eq!((c.key_id(), c.secret_key()), ("FILEKEY", "FILESECRET"));
        let env = |v: &str| Some(format!("ENV{}", v.len()));
        let c = Credentials::resolve_with(env, Some(&kf), Some(&sf)).unwrap();
        assert_eq!(c.key_id(), "ENV15");
        let e = Credentials::resolve_with(none, None, None).unwrap_err();
        assert!(e.to_string().contains("APCA_API_KEY_ID"), "{e}");
        let e = Credentials::resolve_with(none, Some(&dir.path().join("nope")), None).unwrap_err();
        assert!(e.to_string().contains("key_id_file"), "{e}");
        assert!(Credentials::new("a b", "x").is_err());
    }
}
