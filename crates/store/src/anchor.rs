//! Anchors: checkpoints of the chain head kept outside the database.
//!
//! The chain proves that rows were not edited in place, but a shorter chain
//! (rows deleted from the end, every row deleted, yesterday's backup
//! restored) is still a valid chain. A checkpoint — account, `seq`, head
//! hash, time and a MAC — written after each cycle, each EOD and each
//! operator action to a witness outside `keel.db` says how far the log
//! reached; verification then requires the log to extend the newest one.
//!
//! The default witness is an append-only JSON-lines file per account
//! (`<witness_dir>/<account>.checkpoints.jsonl`, fsynced after every line);
//! a command may also receive each line on stdin (syslog, an object store
//! with retention, another host). With an audit key the MAC is
//! HMAC-SHA-256, so a checkpoint cannot be forged without the key; without
//! one it is SHA-256 and catches accidents (truncation, a restored backup)
//! only.

use crate::chain::{digest_with, AuditKey, CHECKPOINT_TAG};
use crate::codec::field;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a witness command may take before it is abandoned (and reported).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest checkpoint line read back; longer lines are not checkpoints (and
/// bound the memory a tampered witness file can make keel use).
const MAX_LINE: usize = 4096;

/// One checkpoint of the chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The account whose log it anchors.
    pub account: String,
    /// The head's sequence number.
    pub seq: u64,
    /// The head's hash.
    pub head: String,
    /// When it was written (RFC 3339 UTC, seconds).
    pub at: String,
    /// Whether `mac` is keyed (HMAC-SHA-256) or plain SHA-256.
    pub keyed: bool,
    /// The MAC over account, seq, head and at.
    pub mac: String,
}

impl Checkpoint {
    /// A checkpoint of `(seq, head)` at `at`, MACed under `key` when given.
    pub fn new(key: Option<&AuditKey>, account: &str, seq: u64, head: &str, at: DateTime<Utc>) -> Self {
        let at = at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut c = Checkpoint {
            account: account.to_string(),
            seq,
            head: head.to_string(),
            at,
            keyed: key.is_some(),
            mac: String::new(),
        };
        c.mac = c.expected_mac(key).unwrap_or_default();
        c
    }

    /// The MAC this checkpoint should carry; `None` for a keyed checkpoint without a key.
    fn expected_mac(&self, key: Option<&AuditKey>) -> Option<String> {
        let seq = self.seq.to_string();
        let fields = [
            self.account.as_str(),
            seq.as_str(),
            self.head.as_str(),
            self.at.as_str(),
        ];
        // An unkeyed checkpoint is a plain hash whatever key is configured.
        let key = match (self.keyed, key) {
            (true, None) => return None,
            (true, key) => key,
            (false, _) => None,
        };
        Some(hex::encode(digest_with(key, |h| {
            h.update(CHECKPOINT_TAG);
            for f in fields {
                field(h, f.as_bytes());
            }
        })))
    }
}

/// What went wrong reading or writing a witness.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The witness file could not be read or written.
    #[error("witness {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the witness file is not a valid checkpoint.
    #[error("witness {path} line {line}: {why}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why it was refused.
        why: String,
    },
}

/// Where checkpoints are written and read back.
#[derive(Debug, Clone)]
pub struct Witness {
    pub(crate) dir: PathBuf,
    command: Option<String>,
}

impl Witness {
    /// Checkpoints go to files in `dir` and, when given, to `command`'s stdin
    /// (run with `sh -c`).
    pub fn new(dir: impl Into<PathBuf>, command: Option<String>) -> Self {
        Self {
            dir: dir.into(),
            command,
        }
    }

    /// The witness file of `account`.
    pub fn path(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{}.checkpoints.jsonl", file_stem(account)))
    }

    /// Appends `cp` to the file (durably) and pipes it to the command.
    /// `Ok(Some(warning))` when the file was written but the command failed:
    /// the file is the witness keel reads back, the command an extra copy.
    pub fn append(&self, cp: &Checkpoint) -> Result<Option<String>, AnchorError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AnchorError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.path(&cp.account);
        let line = serde_json::to_string(cp).map_err(|e| AnchorError::Bad {
            path: path.clone(),
            line: 0,
            why: e.to_string(),
        })?;
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&path).map_err(io(&path))?;
        f.write_all(format!("{line}\n").as_bytes()).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        Ok(self.command.as_deref().and_then(|c| run_command(c, &line).err()))
    }

    /// Whether any checkpoint was ever written for `account` (a data
    /// directory with checkpoints must not get a silently recreated store).
    pub fn has_checkpoints(&self, account: &str) -> bool {
        std::fs::metadata(self.path(account)).is_ok_and(|m| m.len() > 0)
    }

    /// The newest checkpoint the log must extend: the highest `seq` among the
    /// lines whose MAC verifies. With a key, only keyed lines count (an
    /// unkeyed line could be written by anyone), and a keyed line whose MAC
    /// fails is an error: someone forged or edited the witness. Without a
    /// key, keyed lines cannot be checked and are reported.
    pub fn newest(&self, key: Option<&AuditKey>, account: &str) -> Result<Option<Checkpoint>, AnchorError> {
        let path = self.path(account);
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(AnchorError::Io { path, source }),
        };
        let mut best: Option<Checkpoint> = None;
        let mut reader = std::io::BufReader::new(f);
        let mut buf = Vec::new();
        let mut n = 0;
        loop {
            buf.clear();
            let read = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|source| AnchorError::Io {
                    path: path.clone(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            n += 1;
            let bad = |why: String| AnchorError::Bad {
                path: path.clone(),
                line: n,
                why,
            };
            if buf.len() > MAX_LINE {
                return Err(bad(format!("longer than {MAX_LINE} bytes")));
            }
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let cp: Checkpoint =
                serde_json::from_str(text).map_err(|e| bad(format!("not a checkpoint: {e}")))?;
            if cp.account != account {
                return Err(bad(format!(
                    "checkpoint of account {:?}, not {account:?}",
                    cp.account
                )));
            }
            if key.is_some() && !cp.keyed {
                continue;
            }
            match cp.expected_mac(key) {
                None => {
                    return Err(bad(
                        "keyed checkpoint, but no audit key is configured to check it".to_string(),
                    ))
                }
                Some(m) if m != cp.mac => {
                    return Err(bad("MAC mismatch (edited or forged checkpoint)".to_string()))
                }
                Some(_) => {}
            }
            if best.as_ref().is_none_or(|b| cp.seq >= b.seq) {
                best = Some(cp);
            }
        }
        Ok(best)
    }
}

/// An account id as a file name: whatever the id holds, the file stays
/// inside the witness directory.
pub(crate) fn file_stem(account: &str) -> String {
    account
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Pipes `line` to `sh -c command`, waiting at most [`COMMAND_TIMEOUT`].
fn run_command(command: &str, line: &str) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("witness command could not start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that exits without reading is its own failure, reported below.
        let _ = stdin.write_all(format!("{line}\n").as_bytes());
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("witness command failed: {status}")),
            Ok(None) if start.elapsed() >= COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "witness command did not finish within {}s; killed",
                    COMMAND_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("witness command: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn newest_verified_checkpoint_wins_and_forgeries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let w = Witness::new(dir.path(), None);
        let k = AuditKey::new(b"0123456789abcdef").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 21, 5, 0).unwrap();
        assert!(w.newest(Some(&k), "a").unwrap().is_none());
        w.append(&Checkpoint::new(Some(&k), "a", 10, "h10", t)).unwrap();
        w.append(&Checkpoint::new(Some(&k), "a", 20, "h20", t)).unwrap();
        // An unkeyed line is ignored when a key is configured.
        w.append(&Checkpoint::new(None, "a", 99, "h99", t)).unwrap();
        let cp = w.newest(Some(&k), "a").unwrap().unwrap();
        assert_eq!(
            (cp.seq, cp.head.as_str(), cp.at.as_str()),
            (20, "h20", "2026-12-01T21:05:00Z")
        );
        // A keyed line edited without the key is an error naming the line.
        let mut forged = Checkpoint::new(Some(&k), "a", 30, "h30", t);
        forged.seq = 31;
        w.append(&forged).unwrap();
        let e = w.newest(Some(&k), "a").unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("MAC mismatch"), "{e}");
        assert!(w.has_checkpoints("a"));
        assert!(!w.has_checkpoints("b"));
    }

    #[test]
    fn command_receives_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("copy");
        let w = Witness::new(dir.path(), Some(format!("cat >> {}", out.display())));
        let cp = Checkpoint::new(None, "a", 1, "h", Utc::now());
        assert_eq!(w.append(&cp).unwrap(), None);
        let copy = std::fs::read_to_string(&out).unwrap();
        assert_eq!(serde_json::from_str::<Checkpoint>(copy.trim()).unwrap(), cp);
        let w = Witness::new(dir.path(), Some("exit 3".into()));
        assert!(w.append(&cp).unwrap().is_some());
    }
}
