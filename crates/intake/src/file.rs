//! Reading a target set from disk.

use crate::validate::check_size;
use crate::{parse_csv, parse_json, IntakeConfig, IntakeError};
use chrono::{DateTime, Utc};
use keel_domain::TargetSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Reads and validates the target set at `path`.
///
/// A `.csv` extension (any case) selects CSV, which needs `csv_id` because
/// CSV has no id column; anything else is JSON, which carries its own id, so
/// `csv_id` is refused there rather than silently ignored. The size is
/// checked from the open file's metadata before reading, and the read itself
/// is capped, so a file that grows meanwhile (or a pipe, whose metadata says
/// nothing) still cannot exceed `max_file_bytes`.
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

    let io_error = |what: &str, e: std::io::Error| {
        IntakeError::new(&source, "file", &source, format!("cannot {what}: {e}"))
    };
    let file = File::open(path).map_err(|e| io_error("open", e))?;
    let meta = file.metadata().map_err(|e| io_error("stat", e))?;
    if meta.is_dir() {
        return Err(IntakeError::new(
            &source,
            "file",
            &source,
            "is a directory, not a target set file",
        ));
    }
    check_size(&source, meta.len(), cfg)?;
    let mut bytes = Vec::new();
    file.take(cfg.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("read", e))?;
    check_size(&source, bytes.len() as u64, cfg)?;

    match csv_id {
        Some(id) => parse_csv(&source, &bytes, id, cfg, now),
        None => parse_json(&source, &bytes, cfg, now),
    }
}
