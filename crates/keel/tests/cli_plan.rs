//! Runs the real `keel` binary on good and bad target files and checks exit
//! codes, messages, and that `plan` writes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AT: &str = "2026-11-24T20:45:00Z";

fn keel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keel"))
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../intake/examples-data")
        .join(name)
}

fn plan(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = keel()
        .current_dir(dir.path())
        .arg("plan")
        .args(args)
        .output()
        .expect("run keel");
    // `plan` is a dry run: it must leave nothing behind.
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read tempdir").collect();
    assert!(left.is_empty(), "keel plan wrote files: {left:?}");
    out
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn good_json_prints_orders_and_decisions() {
    let out = plan(&["--targets", data("good.json").to_str().unwrap(), "--at", AT]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stdout.contains("plan for target set 2026-11-24-close"),
        "{stdout}"
    );
    assert!(stdout.contains("orders ("), "{stdout}");
    assert!(stdout.contains("decisions ("), "{stdout}");
    assert!(
        stdout.contains("k-AAPL-buy-0-"),
        "client order ids shown: {stdout}"
    );
}

#[test]
fn plan_json_is_byte_identical_across_runs() {
    let good = data("good.json");
    let args = ["--targets", good.to_str().unwrap(), "--at", AT, "--json"];
    let a = plan(&args);
    let b = plan(&args);
    assert_eq!(a.status.code(), Some(0), "{}", text(&a).1);
    assert!(!a.stdout.is_empty());
    assert_eq!(
        a.stdout, b.stdout,
        "same inputs must give the same plan, byte for byte"
    );
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).expect("valid JSON plan");
    assert!(v["orders"].as_array().is_some_and(|o| !o.is_empty()), "{v}");
    for o in v["orders"].as_array().unwrap() {
        assert!(o["qty"].is_string(), "quantities are exact decimal strings: {o}");
    }
}

#[test]
fn csv_needs_an_id_and_then_matches_json() {
    let csv = data("good.csv");
    let out = plan(&["--targets", csv.to_str().unwrap(), "--at", AT]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("--id"), "{stderr}");

    let out = plan(&[
        "--targets",
        csv.to_str().unwrap(),
        "--id",
        "2026-11-24-close",
        "--at",
        AT,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let from_json = plan(&[
        "--targets",
        data("good.json").to_str().unwrap(),
        "--at",
        AT,
        "--json",
    ]);
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&from_json.stdout).unwrap();
    assert_eq!(
        a["orders"], b["orders"],
        "CSV and JSON forms of the same set plan the same orders"
    );
}

#[test]
fn bad_files_exit_2_naming_file_field_and_value() {
    let cases = [
        ("bad_truncated.json", "line 7"),
        ("bad_nan.json", "NaN"),
        ("bad_duplicate.json", "targets[2].symbol = \"AAPL\""),
        ("bad_text_weight.json", "targets[1].weight = \"five\""),
        ("bad_empty_without_liquidate.json", "liquidate"),
        ("bad_gross_too_high.json", "gross 1.2"),
        ("bad_symbol.json", "targets[1].symbol = \"msft\""),
    ];
    for (file, needle) in cases {
        let out = plan(&["--targets", data(file).to_str().unwrap(), "--at", AT]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: stderr {stderr}");
        assert!(stderr.contains(file), "{file}: message names the file: {stderr}");
        assert!(stderr.contains(needle), "{file}: expected {needle:?} in {stderr}");
        assert!(
            stdout.is_empty(),
            "{file}: a refused file prints no plan: {stdout}"
        );
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
    }
}

#[test]
fn stale_and_future_targets_are_refused() {
    let good = data("good.json");
    for at in ["2026-11-24T23:00:00Z", "2026-11-24T19:00:00Z"] {
        let out = plan(&["--targets", good.to_str().unwrap(), "--at", at]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "at {at}: {stderr}");
        assert!(
            stderr.contains("as_of") || stderr.contains("valid_until"),
            "at {at}: {stderr}"
        );
    }
}

#[test]
fn missing_file_bad_flag_and_bad_config_are_usage_errors() {
    let out = plan(&["--targets", "/nonexistent/targets.json", "--at", AT]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("/nonexistent/targets.json"));

    let out = plan(&[
        "--targets",
        data("good.json").to_str().unwrap(),
        "--at",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("--at = \"yesterday\""), "{}", text(&out).1);

    let out = plan(&["--nope"]);
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("keel.toml");
    std::fs::write(&cfg, "[guards.price_collar]\nmax_bsp = 5\n").unwrap();
    let out = keel()
        .args([
            "plan",
            "--targets",
            data("good.json").to_str().unwrap(),
            "--at",
            AT,
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("keel.toml") && stderr.contains("max_bsp"),
        "misspelt key named: {stderr}"
    );
}

#[test]
fn config_limits_change_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("keel.toml");
    std::fs::write(&cfg, "[guards.restricted_list]\nsymbols = [\"AAPL\"]\n").unwrap();
    let out = keel()
        .args([
            "plan",
            "--targets",
            data("good.json").to_str().unwrap(),
            "--at",
            AT,
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("restricted_symbol"), "{stdout}");
    assert!(
        !stdout.contains("k-AAPL-buy-0-") || stdout.contains("BLOCK restricted_symbol"),
        "{stdout}"
    );
}

#[test]
fn calendar_prints_sessions_as_csv() {
    let out = keel()
        .args(["calendar", "--from", "2026-11-25", "--to", "2026-11-30"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        s,
        "date,open_utc,close_utc\n\
         2026-11-25,2026-11-25T14:30:00Z,2026-11-25T21:00:00Z\n\
         2026-11-27,2026-11-27T14:30:00Z,2026-11-27T18:00:00Z\n\
         2026-11-30,2026-11-30T14:30:00Z,2026-11-30T21:00:00Z\n"
    );
    let bad = keel()
        .args(["calendar", "--from", "2026-13-01", "--to", "2026-12-31"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--from = \"2026-13-01\""));
}
