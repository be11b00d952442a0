//! CSV target sets: a `symbol,weight` header and one target per line.
//!
//! CSV carries no id, timestamp or liquidate flag, so the id comes from the
//! caller (`--id`), `as_of` is the moment of intake, and a CSV set can never
//! liquidate: an emptied spreadsheet must not sell the whole book.

use crate::validate::{check_id, check_size, decode_utf8, Collector, Format};
use crate::{IntakeConfig, IntakeError};
use chrono::{DateTime, Utc};
use keel_domain::TargetSet;

/// Parses and validates a CSV target set.
///
/// The first line must be the header `symbol,weight`; cells are trimmed and
/// may be quoted. The input must end with a newline: a file cut off in the
/// middle of its last line (a partial write, a full disk) could otherwise be
/// read as a smaller weight such as `0.0` for `0.05`. `id` is validated like a
/// JSON id and reported as `--id`. The result has `as_of = now`, no
/// `valid_until` and `liquidate = false`.
pub fn parse_csv(
    source: &str,
    bytes: &[u8],
    id: &str,
    cfg: &IntakeConfig,
    now: DateTime<Utc>,
) -> Result<TargetSet, IntakeError> {
    check_size(source, bytes.len() as u64, cfg)?;
    let text = decode_utf8(source, bytes)?;
    check_id(source, "--id", id)?;
    if !text.is_empty() && !text.ends_with('\n') {
        let lines: Vec<&str> = text.split('\n').collect();
        return Err(IntakeError::new(
            source,
            format!("line {}", lines.len()),
            lines.last().copied().unwrap_or_default(),
            "last line does not end with a newline: the file may be truncated",
        ));
    }

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| csv_error(source, &e))?.clone();
    let names: Vec<&str> = header.iter().collect();
    if names != ["symbol", "weight"] {
        let shown = if names.is_empty() {
            "(empty file)".to_string()
        } else {
            names.join(",")
        };
        return Err(IntakeError::new(
            source,
            "line 1 (header)",
            shown,
            "the first line must be the header symbol,weight",
        ));
    }

    let mut collector = Collector::new(source, cfg);
    for (n, record) in reader.records().enumerate() {
        collector.check_count("rows", n + 1)?;
        let record = record.map_err(|e| csv_error(source, &e))?;
        let line = record.position().map_or(n as u64 + 2, |p| p.line());
        let location = format!("line {line}");
        if record.len() != 2 {
            let cells: Vec<&str> = record.iter().collect();
            return Err(IntakeError::new(
                source,
                &location,
                cells.join(","),
                format!("expected 2 cells (symbol,weight), found {}", record.len()),
            ));
        }
        let (symbol_text, weight_text) = (&record[0], &record[1]);
        let symbol_field = format!("{location}.symbol");
        let symbol = collector.symbol(&symbol_field, symbol_text, symbol_text)?;
        let weight = collector.weight(&format!("{location}.weight"), weight_text, weight_text)?;
        collector.push(&symbol_field, symbol_text, symbol, weight)?;
    }
    let targets = collector.finish("rows", false, Format::Csv)?;

    Ok(TargetSet {
        id: id.to_string(),
        as_of: now,
        valid_until: None,
        targets,
        liquidate: false,
    })
}

/// Turns a csv crate error into a refusal naming its line.
fn csv_error(source: &str, e: &csv::Error) -> IntakeError {
    let field = e
        .position()
        .map_or_else(|| "(csv)".to_string(), |p| format!("line {}", p.line()));
    IntakeError::new(source, field, "(unreadable row)", format!("malformed CSV: {e}"))
}
