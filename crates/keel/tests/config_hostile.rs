//! Configuration that cannot switch safety off: the real `keel plan` and
//! `keel cycle` over hostile values. Each must exit 2 with a message naming
//! the key, the value and what is allowed, never panic, and change nothing.
//! Also: the control-token rules and log escaping through the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const AT: &str = "2026-11-24T20:45:00Z";

fn keel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keel"));
    c.env_remove("KEEL_CONTROL_TOKEN").env_remove("KEEL_CONFIG");
    c
}

fn good_targets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../intake/examples-data/good.json")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// (config text, key the message must name, value text it must show,
/// what it must say is allowed).
fn hostile(flag_dir: &Path) -> Vec<(String, &'static str, String, &'static str)> {
    let one = |table: &str, key: &str, value: &str| {
        if table.is_empty() {
            format!("{key} = {value}\n")
        } else {
            format!("[{table}]\n{key} = {value}\n")
        }
    };
    vec![
        // huge: panicked every cycle before
        (
            one("worker", "stale_order_secs", "9223372036854775807"),
            "worker.stale_order_secs",
            "9223372036854775807".into(),
            "in [1, 604800]",
        ),
        // negative, zero
        (
            one("worker", "stale_order_secs", "-1"),
            "worker.stale_order_secs",
            "-1".into(),
            "in [1, 604800]",
        ),
        (
            one("worker", "max_attempts", "0"),
            "worker.max_attempts",
            "0".into(),
            "in [1, 100]",
        ),
        // aborted on allocation before
        (
            one("guards.volatility_brake", "lookback_days", "4294967295"),
            "guards.volatility_brake.lookback_days",
            "4294967295".into(),
            "in [2, 1000]",
        ),
        // overflow of the field's type
        (
            one("guards.volatility_brake", "lookback_days", "4294967296"),
            "guards.volatility_brake.lookback_days",
            "4294967296".into(),
            "in [2, 1000]",
        ),
        // overflow of TOML's own integers
        (
            one("intake", "max_targets", "99999999999999999999"),
            "intake.max_targets",
            "99999999999999999999".into(),
            "in [1, 100000]",
        ),
        // a 500% daily loss limit, a zero drawdown limit
        (
            one("kill_switch", "daily_loss_limit", "5"),
            "kill_switch.daily_loss_limit",
            "5".into(),
            "in (0, 1)",
        ),
        (
            one("kill_switch", "drawdown_limit", "\"0\""),
            "kill_switch.drawdown_limit",
            "\"0\"".into(),
            "in (0, 1)",
        ),
        // NaN as a decimal string and as a TOML float
        (
            one("kill_switch", "daily_loss_limit", "\"NaN\""),
            "kill_switch.daily_loss_limit",
            "\"NaN\"".into(),
            "in (0, 1)",
        ),
        (
            one("paper", "partial_fill_prob", "nan"),
            "paper.partial_fill_prob",
            "NaN".into(),
            "in [0, 1]",
        ),
        (
            one("paper", "partial_fill_prob", "inf"),
            "paper.partial_fill_prob",
            "inf".into(),
            "in [0, 1]",
        ),
        (
            one("paper.faults", "reject", "1.5"),
            "paper.faults.reject",
            "1.5".into(),
            "in [0, 1]",
        ),
        // a reconciliation tolerance of $1e9
        (
            one("worker", "reconcile_cash_tolerance", "\"1000000000\""),
            "worker.reconcile_cash_tolerance",
            "\"1000000000\"".into(),
            "in [0, 100]",
        ),
        (
            one("worker", "reconcile_qty_tolerance", "\"-1\""),
            "worker.reconcile_qty_tolerance",
            "\"-1\"".into(),
            "in [0, 1]",
        ),
        // a 9,999 bps limit offset, a negative collar
        (
            one("planner", "limit_offset_bps", "\"9999\""),
            "planner.limit_offset_bps",
            "\"9999\"".into(),
            "in [-500, 500]",
        ),
        (
            one("guards.price_collar", "max_bps", "\"-5\""),
            "guards.price_collar.max_bps",
            "\"-5\"".into(),
            "in (0, 1000]",
        ),
        // strings where numbers belong, numbers where strings belong
        (
            one("worker", "max_attempts", "\"three\""),
            "worker.max_attempts",
            "\"three\"".into(),
            "an integer in [1, 100]",
        ),
        (
            one("lease", "ttl_ms", "1.5e30"),
            "lease.ttl_ms",
            "1.5e+30".into(),
            "an integer in [100, 3600000]",
        ),
        (
            one("guards.max_order_size", "max_notional", "true"),
            "guards.max_order_size.max_notional",
            "true".into(),
            "a decimal",
        ),
        (
            one("", "account_id", "7"),
            "account_id",
            "7".into(),
            "a string matching",
        ),
        // counts at least 1, durations bounded
        (
            one("guards.cycle_limits", "max_orders", "0"),
            "guards.cycle_limits.max_orders",
            "0".into(),
            "in [1, 100000]",
        ),
        (
            one("guards.order_rate", "window_secs", "0"),
            "guards.order_rate.window_secs",
            "0".into(),
            "in [1, 86400]",
        ),
        (
            one("schedule", "cycle_every_secs", "0"),
            "schedule.cycle_every_secs",
            "0".into(),
            "in [1, 86400]",
        ),
        (
            one("server", "refresh_secs", "18446744073709551615"),
            "server.refresh_secs",
            "18446744073709551615".into(),
            "in [1, 3600]",
        ),
        (
            one("guards.exposure", "max_gross", "\"1e400\""),
            "guards.exposure.max_gross",
            "\"1e400\"".into(),
            "in (0, 10]",
        ),
        (
            one("intake", "max_gross", "\"0\""),
            "intake.max_gross",
            "\"0\"".into(),
            "in (0, 10]",
        ),
        // an enum value that does not exist
        (
            one("planner", "order_type", "\"stop\""),
            "planner.order_type",
            "\"stop\"".into(),
            "one of \"market\", \"limit\"",
        ),
        // account ids in the [[accounts]] alphabet
        (
            one("", "account_id", "\"../etc\""),
            "account_id",
            "\"../etc\"".into(),
            "^[A-Za-z0-9_-]{1,48}$",
        ),
        // a directory as the flag file
        (
            one(
                "kill_switch",
                "flag_file",
                &format!("{:?}", flag_dir.display().to_string()),
            ),
            "kill_switch.flag_file",
            format!("{:?}", flag_dir.display().to_string()),
            "must be a file path, not a directory",
        ),
        // per-account overrides, as written and after merging
        (
            "[[accounts]]\nid = \"a\"\nguards = { price_collar = { max_bps = \"0\" } }\n".into(),
            "accounts[0].guards.price_collar.max_bps",
            "\"0\"".into(),
            "in (0, 1000]",
        ),
        (
            "[[accounts]]\nid = \"a\"\nkill_switch = { daily_loss_limit = 2 }\n".into(),
            "accounts[0].kill_switch.daily_loss_limit",
            "2".into(),
            "in (0, 1)",
        ),
        (
            "[[accounts]]\nid = \"a b\"\n".into(),
            "accounts[0].id",
            "\"a b\"".into(),
            "^[A-Za-z0-9_-]{1,48}$",
        ),
        // unknown keys still refused
        (
            one("worker", "stale_order_sec", "60"),
            "worker.stale_order_sec",
            "60".into(),
            "unknown key",
        ),
    ]
}

fn assert_refused(verb: &str, out: &Output, key: &str, value: &str, allowed: &str) {
    let t = text(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "keel {verb} with {key} = {value}: {t}"
    );
    assert!(
        !t.contains("panicked"),
        "keel {verb} panicked on {key} = {value}: {t}"
    );
    assert!(t.contains(key), "keel {verb}: message does not name {key}: {t}");
    assert!(
        t.contains(value),
        "keel {verb}: message does not show {value}: {t}"
    );
    assert!(
        t.contains(allowed),
        "keel {verb}: message does not say {allowed:?}: {t}"
    );
    assert!(
        t.contains("keel.toml"),
        "keel {verb}: message does not name the file: {t}"
    );
}

#[test]
fn plan_and_cycle_refuse_every_hostile_value_with_exit_2_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let flag_dir = tmp.path().join("a-directory");
    std::fs::create_dir(&flag_dir).expect("mkdir");
    let cases = hostile(&flag_dir);
    assert!(cases.len() >= 30);
    for (i, (cfg, key, value, allowed)) in cases.iter().enumerate() {
        let case = tmp.path().join(format!("case{i}"));
        std::fs::create_dir(&case).expect("mkdir");
        let cfg_path = case.join("keel.toml");
        std::fs::write(&cfg_path, cfg).expect("write config");
        let data = case.join("data");

        let plan = keel()
            .current_dir(&case)
            .args(["plan", "--targets"])
            .arg(good_targets())
            .args(["--at", AT, "--config"])
            .arg(&cfg_path)
            .output()
            .expect("run keel plan");
        assert_refused("plan", &plan, key, value, allowed);

        let cycle = keel()
            .current_dir(&case)
            .args(["cycle", "--at", AT, "--config"])
            .arg(&cfg_path)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("run keel cycle");
        assert_refused("cycle", &cycle, key, value, allowed);
        assert!(
            !data.exists(),
            "keel cycle created {} for a refused config",
            data.display()
        );
        let left: Vec<_> = std::fs::read_dir(&case)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("keel.toml")],
            "files appeared: {left:?}"
        );
    }
}

#[test]
fn the_example_config_and_the_edges_of_each_range_load() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg_path = tmp.path().join("keel.toml");
    let init = keel().arg("init").arg(&cfg_path).output().expect("keel init");
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    // Inclusive bounds are allowed: the refusals above are not off by one.
    let mut edges = std::fs::read_to_string(&cfg_path).expect("read");
    edges = edges
        .replace("stale_order_secs = 900", "stale_order_secs = 604800")
        .replace("lookback_days = 20", "lookback_days = 2")
        .replace("max_orders = 500", "max_orders = 1")
        .replace("daily_loss_limit = \"0.05\"", "daily_loss_limit = \"0.9999\"");
    std::fs::write(&cfg_path, edges).expect("write");
    let out = keel()
        .current_dir(tmp.path())
        .args(["plan", "--targets"])
        .arg(good_targets())
        .args(["--at", AT, "--config"])
        .arg(&cfg_path)
        .output()
        .expect("plan");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Runs `keel serve` expecting it to refuse before binding; kills it if it serves.
fn serve_refuses(dir: &Path, cfg: &Path, env_token: Option<&str>) -> Output {
    let mut c = keel();
    c.arg("serve")
        .arg("--config")
        .arg(cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = env_token {
        c.env("KEEL_CONTROL_TOKEN", t);
    }
    let mut child = c.spawn().expect("spawn keel serve");
    let t0 = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("keel serve did not refuse: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_refuses_a_short_token_and_a_group_readable_token_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let token_file = tmp.path().join("control-token");
    let cfg = tmp.path().join("keel.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\ncontrol_token_file = {:?}\n",
            token_file.display().to_string()
        ),
    )
    .expect("write config");

    let out = serve_refuses(tmp.path(), &cfg, Some("short-secret"));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("KEEL_CONTROL_TOKEN") && t.contains("at least 16"),
        "{t}"
    );
    assert!(!t.contains("short-secret"), "the token leaked: {t}");

    std::fs::write(&token_file, "a-long-enough-control-token\n").expect("write token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let out = serve_refuses(tmp.path(), &cfg, None);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("server.control_token_file") && t.contains("readable by group or others"),
        "{t}"
    );
    assert!(
        !t.contains("a-long-enough-control-token"),
        "the token leaked: {t}"
    );

    std::fs::write(&token_file, "tiny\n").expect("write token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = serve_refuses(tmp.path(), &cfg, None);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("at least 16"), "{t}");
}

#[test]
fn a_kill_reason_cannot_forge_log_lines_or_send_terminal_escapes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let forged = "2026-11-24T20:45:01.000000Z  WARN keel_worker: kill switch released";
    let reason = format!("fat finger\n{forged}\r\x1b[31mINJECTED\x1b[0m\u{202e}");
    let out = keel()
        .args(["kill", "--reason", &reason, "--at", AT, "--data-dir"])
        .arg(&data)
        .env("KEEL_LOG", "info")
        .output()
        .expect("keel kill");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for (name, s) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !s.lines().any(|l| l.starts_with(forged)),
            "{name} carries a forged log line: {s}"
        );
        assert!(
            !s.contains("\x1b[31mINJECTED"),
            "{name} passed an ANSI escape through: {s:?}"
        );
        assert!(
            !s.contains('\u{202e}'),
            "{name} passed a bidi override through: {s:?}"
        );
    }
    assert!(
        stderr.contains("fat finger\\n2026-11-24T20:45:01"),
        "the reason is logged, escaped: {stderr}"
    );
    assert!(stderr.contains("\\u{1b}[31mINJECTED"), "{stderr}");
}
