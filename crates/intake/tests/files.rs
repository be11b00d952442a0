//! `read_file` and the example files in `examples-data/`.

mod common;

use common::*;
use keel_domain::Symbol;
use keel_intake::{read_file, IntakeConfig};
use std::path::{Path, PathBuf};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples-data")
        .join(name)
}

/// A scratch directory removed on drop, unique per test and process.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("keel-intake-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn good_examples_are_accepted_and_agree() {
    let json = read_file(&example("good.json"), None, &cfg(), now()).unwrap();
    let csv = read_file(&example("good.csv"), Some("2026-11-24-close"), &cfg(), now()).unwrap();
    assert_eq!(json.id, "2026-11-24-close");
    assert_eq!(json.targets, csv.targets);
    assert_eq!(json.gross(), dec("0.9"));
    assert_eq!(json.weight(&Symbol::new("BRK.B").unwrap()), dec("0.1"));
    assert_eq!(csv.as_of, now());
}

#[test]
fn bad_examples_are_refused_naming_field_and_value() {
    let cases: [(&str, &str, &str, &str); 7] = [
        (
            "bad_truncated.json",
            "line 7 column 40",
            "(end of input)",
            "truncated",
        ),
        (
            "bad_nan.json",
            "line 6 column 34",
            " {\"symbol\": \"MSFT\", \"weight\": NaN}",
            "NaN",
        ),
        (
            "bad_duplicate.json",
            "targets[2].symbol",
            "\"AAPL\"",
            "also at targets[0].symbol",
        ),
        (
            "bad_text_weight.json",
            "targets[1].weight",
            "\"five\"",
            "not a decimal number",
        ),
        (
            "bad_empty_without_liquidate.json",
            "targets",
            "sum 0 (0 targets)",
            "near-empty",
        ),
        (
            "bad_gross_too_high.json",
            "targets",
            "gross 1.2",
            "exceeds max_gross",
        ),
        (
            "bad_symbol.json",
            "targets[1].symbol",
            "\"msft\"",
            "not a valid symbol",
        ),
    ];
    for (name, field, value, reason) in cases {
        let path = example(name);
        let e = read_file(&path, None, &cfg(), now()).unwrap_err();
        assert_eq!(e.source, path.display().to_string());
        assert_refusal(&e, field, value, reason);
    }
}

#[test]
fn examples_go_stale() {
    let e = read_file(&example("good.json"), None, &cfg(), ts("2026-11-24T21:00:00Z")).unwrap_err();
    assert_refusal(&e, "valid_until", "\"2026-11-24T20:58:00Z\"", "expired");
    let e = read_file(&example("good.json"), None, &cfg(), ts("2026-11-25T20:45:00Z")).unwrap_err();
    assert_refusal(&e, "as_of", "\"2026-11-24T20:40:00Z\"", "stale");
}

#[test]
fn csv_needs_id_and_json_refuses_one() {
    let e = read_file(&example("good.csv"), None, &cfg(), now()).unwrap_err();
    assert_refusal(&e, "--id", "(missing)", "pass --id");
    let e = read_file(&example("good.json"), Some("x"), &cfg(), now()).unwrap_err();
    assert_refusal(&e, "--id", "\"x\"", "only to .csv files");
}

#[test]
fn csv_extension_is_case_insensitive() {
    let dir = Scratch::new("ext");
    let p = dir.file("T.CSV", b"symbol,weight\nAAPL,0.5\n");
    assert_eq!(read_file(&p, Some("x"), &cfg(), now()).unwrap().targets.len(), 1);
    let p = dir.file("targets.txt", b"symbol,weight\nAAPL,0.5\n");
    let e = read_file(&p, None, &cfg(), now()).unwrap_err();
    assert!(e.reason.contains("malformed JSON"), "{e}");
}

#[test]
fn size_is_checked_before_reading() {
    let dir = Scratch::new("size");
    let p = dir.file("big.json", &vec![b' '; 4096]);
    let cfg = IntakeConfig {
        max_file_bytes: 1000,
        ..IntakeConfig::default()
    };
    let e = read_file(&p, None, &cfg, now()).unwrap_err();
    assert_refusal(&e, "size", "4096 bytes", "larger than max_file_bytes (1000)");
}

#[test]
fn io_errors_name_the_file() {
    let dir = Scratch::new("io");
    let missing = dir.0.join("nope.json");
    let e = read_file(&missing, None, &cfg(), now()).unwrap_err();
    assert_eq!(e.field, "file");
    assert!(e.reason.starts_with("cannot open:"), "{e}");
    assert!(e.to_string().starts_with(&missing.display().to_string()));
    let e = read_file(&dir.0, None, &cfg(), now()).unwrap_err();
    assert_eq!(e.field, "file");
    assert!(e.reason.contains("directory"), "{e}");
}
