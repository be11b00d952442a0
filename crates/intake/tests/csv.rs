//! CSV intake.

mod common;

use common::*;
use keel_domain::Symbol;
use keel_intake::{parse_csv, IntakeConfig};

#[test]
fn accepts_good_csv_exactly_and_sorted() {
    let set = csv_ok("symbol,weight\nMSFT,0.2\nAAPL,0.1\nBRK.B,\"0.3\"\nTSLA,0\n");
    assert_eq!(set.id, "set-1");
    assert_eq!(set.as_of, now());
    assert_eq!(set.valid_until, None);
    assert!(!set.liquidate);
    let symbols: Vec<&str> = set.targets.iter().map(|t| t.symbol.as_str()).collect();
    assert_eq!(symbols, ["AAPL", "BRK.B", "MSFT", "TSLA"]);
    let w = |s: &str| set.weight(&Symbol::new(s).unwrap());
    assert_eq!(w("AAPL") + w("MSFT"), dec("0.3"));
    assert_eq!(w("BRK.B"), dec("0.3"));
    assert_eq!(w("TSLA"), dec("0"));
}

#[test]
fn accepts_crlf_bom_whitespace_and_exponents() {
    let set = csv_ok("\u{feff}symbol , weight\r\n AAPL , 5e-1 \r\nMSFT,0.050\r\n");
    let shown: Vec<String> = set
        .targets
        .iter()
        .map(|t| format!("{}={}", t.symbol, t.weight))
        .collect();
    assert_eq!(shown, ["AAPL=0.5", "MSFT=0.05"]);
}

#[test]
fn refuses_non_utf8() {
    let e = parse_csv("t.csv", b"symbol,weight\nAAPL,0.\xC3(\n", "x", &cfg(), now()).unwrap_err();
    assert_refusal(&e, "line 2 column 8 (byte 21)", "0xC3", "not valid UTF-8");
}

#[test]
fn refuses_bad_or_missing_header() {
    assert_refusal(
        &csv_err(""),
        "line 1 (header)",
        "(empty file)",
        "header symbol,weight",
    );
    assert_refusal(
        &csv_err("AAPL,0.5\n"),
        "line 1 (header)",
        "AAPL,0.5",
        "header symbol,weight",
    );
    assert_refusal(
        &csv_err("weight,symbol\n0.5,AAPL\n"),
        "line 1 (header)",
        "weight,symbol",
        "header",
    );
    assert_refusal(
        &csv_err("Symbol,Weight\nAAPL,0.5\n"),
        "line 1 (header)",
        "Symbol,Weight",
        "header",
    );
    assert_refusal(
        &csv_err("symbol,weight,note\n"),
        "line 1 (header)",
        "symbol,weight,note",
        "header",
    );
}

#[test]
fn refuses_wrong_cell_count() {
    let e = csv_err("symbol,weight\nAAPL,0.5\nMSFT\n");
    assert_refusal(&e, "line 3", "MSFT", "expected 2 cells");
    let e = csv_err("symbol,weight\nAAPL,0.5,0.1\n");
    assert_refusal(&e, "line 2", "AAPL,0.5,0.1", "found 3");
}

#[test]
fn refuses_bad_symbols_and_weights() {
    assert_refusal(
        &csv_err("symbol,weight\naapl,0.5\n"),
        "line 2.symbol",
        "aapl",
        "lowercase is refused",
    );
    assert_refusal(
        &csv_err("symbol,weight\n,0.5\n"),
        "line 2.symbol",
        "",
        "symbol is empty",
    );
    let e = csv_err("symbol,weight\nAAPL,0.5\nMSFT,five\n");
    assert_refusal(&e, "line 3.weight", "five", "not a decimal number");
    assert_refusal(
        &csv_err("symbol,weight\nAAPL,NaN\n"),
        "line 2.weight",
        "NaN",
        "not a finite number",
    );
    assert_refusal(
        &csv_err("symbol,weight\nAAPL,inf\n"),
        "line 2.weight",
        "inf",
        "not a finite number",
    );
    assert_refusal(
        &csv_err("symbol,weight\nAAPL,1e308\n"),
        "line 2.weight",
        "1e308",
        "out of range",
    );
    assert_refusal(
        &csv_err("symbol,weight\nAAPL,\n"),
        "line 2.weight",
        "",
        "not a decimal number",
    );
    assert_refusal(
        &csv_err("symbol,weight\nAAPL,\"0,5\"\n"),
        "line 2.weight",
        "0,5",
        "not a decimal number",
    );
    assert_refusal(
        &csv_err("symbol,weight\nAAPL,1.5\n"),
        "line 2.weight",
        "1.5",
        "above 1",
    );
    assert_refusal(
        &csv_err("symbol,weight\nAAPL,-0.5\n"),
        "line 2.weight",
        "-0.5",
        "allow_short is off",
    );
}

#[test]
fn refuses_duplicates_naming_both_lines() {
    let e = csv_err("symbol,weight\nAAPL,0.3\nMSFT,0.3\nAAPL,0.2\n");
    assert_refusal(
        &e,
        "line 4.symbol",
        "AAPL",
        "duplicate symbol: also at line 2.symbol",
    );
}

#[test]
fn refuses_gross_and_count_limits() {
    let e = csv_err("symbol,weight\nAAPL,0.6\nMSFT,0.5\n");
    assert_refusal(&e, "rows", "gross 1.1", "exceeds max_gross (1)");
    let cfg = IntakeConfig {
        max_targets: 1,
        ..IntakeConfig::default()
    };
    let e = parse_csv("t.csv", b"symbol,weight\nAAPL,0.5\nMSFT,0.3\n", "x", &cfg, now()).unwrap_err();
    assert_refusal(&e, "rows", "2 targets", "more than max_targets (1)");
}

#[test]
fn near_empty_csv_cannot_liquidate() {
    for text in ["symbol,weight\n", "symbol,weight\nAAPL,0.1\n"] {
        let e = csv_err(text);
        assert_eq!(e.field, "rows");
        assert!(e.reason.contains("near-empty target set"), "{e}");
        assert!(e.reason.contains("CSV target sets cannot liquidate"), "{e}");
        assert!(e.reason.contains("\"liquidate\": true"), "{e}");
    }
}

#[test]
fn refuses_missing_final_newline() {
    // The last line may be cut short: "0.5" could have been "0.55".
    let e = csv_err("symbol,weight\nAAPL,0.5");
    assert_refusal(&e, "line 2", "AAPL,0.5", "may be truncated");
}

#[test]
fn refuses_bad_id() {
    let e = parse_csv("t.csv", b"symbol,weight\nAAPL,0.5\n", "", &cfg(), now()).unwrap_err();
    assert_refusal(&e, "--id", "\"\"", "must not be empty");
    let e = parse_csv("t.csv", b"symbol,weight\nAAPL,0.5\n", "a b", &cfg(), now()).unwrap_err();
    assert_refusal(&e, "--id", "\"a b\"", "contains ' '");
}

#[test]
fn refuses_oversized_input() {
    let cfg = IntakeConfig {
        max_file_bytes: 8,
        ..IntakeConfig::default()
    };
    let e = parse_csv("t.csv", b"symbol,weight\nAAPL,0.5\n", "x", &cfg, now()).unwrap_err();
    assert_refusal(&e, "size", "23 bytes", "max_file_bytes (8)");
}

#[test]
fn blank_lines_are_ignored() {
    let set = csv_ok("symbol,weight\n\nAAPL,0.5\n\n");
    assert_eq!(set.targets.len(), 1);
}
