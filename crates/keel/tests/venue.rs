//! `[broker]` wiring in the real binary: the two-signal rule for live
//! trading, the venue line of `keel status`, the PAPER/LIVE badge on every
//! dashboard page, and `[broker.alpaca]` range errors.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const AT: &str = "2026-12-01T15:00:00Z";

fn keel(cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .arg("--config")
        .arg(cfg)
        .arg("--at")
        .arg(AT)
        .env("APCA_API_KEY_ID", "KEYID")
        .env("APCA_API_SECRET_KEY", "NOT-A-REAL-SECRET")
        .env_remove("KEEL_CONTROL_TOKEN")
        .output()
        .expect("runs keel")
}

fn write_cfg(dir: &Path, broker: &str) -> std::path::PathBuf {
    let p = dir.join("keel.toml");
    let text = format!(
        "data_dir = {:?}\n{broker}\n",
        dir.join("data").display().to_string()
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A closed local port: the venue there answers nothing, so any command that
/// got past the live check would fail with a runtime error (1), not 2.
const DEAD: &str = "trading_url = \"http://127.0.0.1:9\"\ndata_url = \"http://127.0.0.1:9\"\nstream_url = \"ws://127.0.0.1:9/stream\"\nrequest_timeout_ms = 500\nread_tries = 1\n";

#[test]
fn live_needs_the_config_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_cfg(
        dir.path(),
        &format!("[broker]\nkind = \"alpaca\"\n[broker.alpaca]\nenv = \"live\"\n{DEAD}"),
    );
    let targets = dir.path().join("t.json");
    std::fs::write(
        &targets,
        r#"{"id":"s1","as_of":"2026-12-01T14:59:00Z","targets":[{"symbol":"AAPL","weight":"0.5"},{"symbol":"MSFT","weight":"0.4"}]}"#,
    )
    .unwrap();
    let t = targets.to_str().unwrap();
    for args in [vec!["cycle"], vec!["plan", "--targets", t], vec!["submit", t]] {
        let o = keel(&cfg, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("--live") && e.contains("two separate signals"),
            "{args:?}: {e}"
        );
        assert!(!e.contains("NOT-A-REAL-SECRET"), "secret leaked: {e}");
    }
    // With --live, the live check passes and keel talks to the (dead) venue: a runtime error, not a refusal.
    let o = keel(&cfg, &["plan", "--targets", t, "--live"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stderr(&o).contains("two separate signals"));
    assert!(
        !stderr(&o).contains("NOT-A-REAL-SECRET"),
        "secret leaked: {}",
        stderr(&o)
    );

    // --live against a paper config is refused too.
    let paper = write_cfg(
        dir.path(),
        &format!("[broker]\nkind = \"alpaca\"\n[broker.alpaca]\n{DEAD}"),
    );
    let o = keel(&paper, &["plan", "--targets", t, "--live"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("PAPER (alpaca)"), "{}", stderr(&o));
}

#[test]
fn engaging_the_kill_switch_never_needs_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_cfg(
        dir.path(),
        &format!("[broker]\nkind = \"alpaca\"\n[broker.alpaca]\nenv = \"live\"\n{DEAD}"),
    );
    let o = keel(&cfg, &["kill", "--reason", "stop now"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = keel(&cfg, &["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("venue: LIVE (alpaca)"), "{out}");
    assert!(out.contains("KILL SWITCH ENGAGED"), "{out}");
    // Releasing it is not risk-reducing: it needs both signals.
    let o = keel(&cfg, &["resume", "--reason", "ok"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn status_names_the_embedded_paper_venue_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_cfg(dir.path(), "");
    let o = keel(&cfg, &["kill", "--reason", "x"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = keel(&cfg, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["venue"], "PAPER (embedded)");
}

#[test]
fn bad_alpaca_settings_are_refused_naming_key_value_and_range() {
    let dir = tempfile::tempdir().unwrap();
    for (body, needle) in [
        (
            "[broker]\nkind = \"alpaca\"\n[broker.alpaca]\nrequests_per_minute = 0\n",
            "broker.alpaca.requests_per_minute = 0",
        ),
        ("[broker.alpaca]\nrequest_timeout_ms = 5\n", "[100, 120000]"),
        ("[broker.alpaca]\nfeed = \"nasdaq\"\n", "feed"),
        ("[broker]\nkind = \"ibkr\"\n", "kind"),
        ("[broker.alpaca]\nstream_url = \"https://x\"\n", "stream_url"),
        ("[broker.alpaca]\nkey_file = \"x\"\n", "key_file"),
    ] {
        let cfg = write_cfg(dir.path(), body);
        let o = keel(&cfg, &["status"]);
        assert_eq!(o.status.code(), Some(2), "{body}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{body}: {}", stderr(&o));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn every_dashboard_page_shows_the_venue_badge() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_cfg(
        dir.path(),
        &format!("[server]\nbind = \"127.0.0.1:{port}\"\n[broker]\nkind = \"alpaca\"\n[broker.alpaca]\nenv = \"live\"\n{DEAD}"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env_remove("KEEL_CONTROL_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        if let Some(p) = get(port, "/") {
            break p;
        }
        assert!(Instant::now() < deadline, "dashboard never came up");
        std::thread::sleep(Duration::from_millis(100));
    };
    let result = std::panic::catch_unwind(|| {
        assert!(
            page.contains("hdr-venue") && page.contains("LIVE (alpaca)"),
            "{page}"
        );
        assert!(page.contains("badge live"), "{page}");
        for p in ["/positions", "/orders", "/guards", "/audit"] {
            let body = get(port, p).unwrap_or_default();
            assert!(body.contains("LIVE (alpaca)"), "{p}: {body}");
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap();
}
