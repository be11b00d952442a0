//! Reading a target set from disk.

use crate::validate::check_size;
use crate::{parse_csv, parse_json, IntakeConfig, IntakeError};
use chrono::{DateTime, Utc};
use keel_domain::TargetSet;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The id header a CSV file in the inbox may start with (`# id: rebalance-7`);
/// without it the file name's stem is the id.
pub const CSV_ID_HEADER: &str = "# id:";

/// Reads and validates the target set at `path`.
///
/// A `.csv` extension (any case) selects CSV, which needs `csv_id` because
/// CSV has no id column; anything else is JSON, which carries its own id, so
/// `csv_id` is refused there rather than silently ignored. The size is
/// checked from the open file's metadata before reading, and the read itself
/// is capped, so a file that grows meanwhile (or a pipe, whose metadata says
/// nothing) still cannot exceed `max_file_bytes`.
///
/// Only regular files are read: a symbolic link, FIFO, socket or device is
/// refused from its `lstat` without being opened (a link could point at a
/// secret whose first line would end up in an error message; opening a FIFO
/// blocks until a writer comes), and the open itself uses `O_NOFOLLOW |
/// O_NONBLOCK` and re-checks the opened file, so swapping the path between
/// the check and the open changes nothing.
pub fn read_file(
    path: &Path,
    csv_id: Option<&str>,
    cfg: &IntakeConfig,
    now: DateTime<Utc>,
) -> Result<TargetSet, IntakeError> {
    let source = path.display().to_string();
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    match (is_csv, csv_id) {
        (true, None) => {
            return Err(IntakeError::new(
                &source,
                "--id",
                "(missing)",
                "a CSV target set has no id column: pass --id ID",
            ))
        }
        (false, Some(id)) => {
            return Err(IntakeError::new(
                &source,
                "--id",
                format!("{id:?}"),
                "--id applies only to .csv files; a JSON target set carries its own \"id\"",
            ))
        }
        _ => {}
    }

    let bytes = read_regular(path, &source, cfg)?;
    match csv_id {
        Some(id) => parse_csv(&source, &bytes, id, cfg, now),
        None => parse_json(&source, &bytes, cfg, now),
    }
}

/// Reads a target file from the inbox, where no `--id` can be given: JSON
/// carries its own id; a `.csv` file takes its id from a first line
/// `# id: ID` ([`CSV_ID_HEADER`]) if it has one, else from its file name
/// without the extension (`rebalance-7.csv` is set `rebalance-7`).
pub fn read_inbox_file(
    path: &Path,
    cfg: &IntakeConfig,
    now: DateTime<Utc>,
) -> Result<TargetSet, IntakeError> {
    let source = path.display().to_string();
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !is_csv {
        return read_file(path, None, cfg, now);
    }
    let bytes = read_regular(path, &source, cfg)?;
    let (id, body) = match bytes.strip_prefix(CSV_ID_HEADER.as_bytes()) {
        Some(rest) => {
            let end = rest.iter().position(|b| *b == b'\n').ok_or_else(|| {
                IntakeError::new(
                    &source,
                    "line 1",
                    CSV_ID_HEADER,
                    "the id header line does not end",
                )
            })?;
            let id = String::from_utf8_lossy(&rest[..end]).trim().to_string();
            (id, &rest[end + 1..])
        }
        None => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (stem, &bytes[..])
        }
    };
    parse_csv(&source, body, &id, cfg, now)
}

/// The bytes of the regular file at `path`, at most `max_file_bytes`.
fn read_regular(path: &Path, source: &str, cfg: &IntakeConfig) -> Result<Vec<u8>, IntakeError> {
    let io_error = |what: &str, e: std::io::Error| {
        IntakeError::new(source, "file", source, format!("cannot {what}: {e}"))
    };
    let refuse = |what: &str| {
        IntakeError::new(
            source,
            "file",
            source,
            format!("is {what}, not a regular file: refused without reading it"),
        )
    };
    let kind = |ft: std::fs::FileType| -> Option<&'static str> {
        if ft.is_file() {
            None
        } else if ft.is_symlink() {
            Some("a symbolic link")
        } else if ft.is_dir() {
            Some("a directory")
        } else if ft.is_fifo() {
            Some("a FIFO (named pipe)")
        } else if ft.is_socket() {
            Some("a socket")
        } else if ft.is_block_device() || ft.is_char_device() {
            Some("a device")
        } else {
            Some("not a regular file")
        }
    };
    let lmeta = std::fs::symlink_metadata(path).map_err(|e| io_error("open", e))?;
    if let Some(what) = kind(lmeta.file_type()) {
        return Err(refuse(what));
    }
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_error("open", e))?;
    let meta = file.metadata().map_err(|e| io_error("stat", e))?;
    if let Some(what) = kind(meta.file_type()) {
        return Err(refuse(what));
    }
    if (meta.dev(), meta.ino()) != (lmeta.dev(), lmeta.ino()) {
        return Err(refuse("replaced while being opened"));
    }
    check_size(source, meta.len(), cfg)?;
    let mut bytes = Vec::new();
    file.take(cfg.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("read", e))?;
    check_size(source, bytes.len() as u64, cfg)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap()
    }

    #[test]
    fn symlink_fifo_and_device_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret.json");
        std::fs::write(&secret, "TOPSECRET-TOKEN\n").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let fifo = dir.path().join("pipe.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let cfg = IntakeConfig::default();
        for (p, what) in [
            (&link, "symbolic link"),
            (&fifo, "FIFO"),
            (&Path::new("/dev/null").to_path_buf(), "device"),
        ] {
            // A FIFO opened for reading would block this test for ever.
            let e = read_file(p, None, &cfg, now()).unwrap_err();
            assert!(e.reason.contains(what), "{p:?}: {e}");
            assert!(!e.to_string().contains("TOPSECRET"), "{e}");
            let e = read_inbox_file(p, &cfg, now()).unwrap_err();
            assert!(e.reason.contains(what), "{p:?}: {e}");
        }
        let csv_link = dir.path().join("l.csv");
        std::os::unix::fs::symlink(&secret, &csv_link).unwrap();
        let e = read_inbox_file(&csv_link, &cfg, now()).unwrap_err();
        assert!(!e.to_string().contains("TOPSECRET"), "{e}");
    }

    #[test]
    fn inbox_csv_id_from_header_or_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = IntakeConfig::default();
        let named = dir.path().join("rebalance-7.csv");
        std::fs::write(&named, "symbol,weight\nAAPL,0.3\nMSFT,0.3\n").unwrap();
        let set = read_inbox_file(&named, &cfg, now()).unwrap();
        assert_eq!(set.id, "rebalance-7");
        assert_eq!(set.targets.len(), 2);
        let headed = dir.path().join("whatever.CSV");
        std::fs::write(
            &headed,
            "# id: close-2026-11-24\nsymbol,weight\nAAPL,0.3\nMSFT,0.3\n",
        )
        .unwrap();
        let set = read_inbox_file(&headed, &cfg, now()).unwrap();
        assert_eq!(set.id, "close-2026-11-24");
        assert_eq!(set.targets.len(), 2);
        let bad = dir.path().join("bad id!.csv");
        std::fs::write(&bad, "symbol,weight\nAAPL,0.3\nMSFT,0.3\n").unwrap();
        let e = read_inbox_file(&bad, &cfg, now()).unwrap_err();
        assert_eq!(e.field, "--id", "{e}");
    }
}
