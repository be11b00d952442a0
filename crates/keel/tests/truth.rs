//! Operator truth through the real binary: a newer target set supersedes an
//! older queued one, and `keel status`, the EOD snapshot and the dashboard
//! API report the same figures, to the cent, on one seeded state.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const AT: &str = "2026-11-24T15:00:00Z";

fn keel(dir: &Path, at: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keel"));
    c.args(args).arg("--data-dir").arg(dir).arg("--at").arg(at);
    c.current_dir(dir);
    c
}

fn ok(dir: &Path, at: &str, args: &[&str]) -> Output {
    let o = keel(dir, at, args).output().expect("run keel");
    assert!(
        o.status.success(),
        "keel {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn set(id: &str, as_of: &str, weights: &[(&str, &str)]) -> String {
    let t: Vec<String> = weights
        .iter()
        .map(|(s, w)| format!("{{\"symbol\":\"{s}\",\"weight\":\"{w}\"}}"))
        .collect();
    format!(
        "{{\"id\":\"{id}\",\"as_of\":\"{as_of}\",\"targets\":[{}]}}",
        t.join(",")
    )
}

fn submit(dir: &Path, name: &str, body: &str) {
    let f = dir.join(name);
    std::fs::write(&f, body).unwrap();
    ok(dir, AT, &["submit", f.to_str().unwrap()]);
}

#[test]
fn a_newer_set_supersedes_the_queued_one_and_only_it_trades() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    submit(
        dir,
        "old.json",
        &set("old", "2026-11-24T14:50:00Z", &[("AAPL", "0.3"), ("KO", "0.3")]),
    );
    submit(
        dir,
        "new.json",
        &set("new", "2026-11-24T14:55:00Z", &[("MSFT", "0.3"), ("XOM", "0.3")]),
    );
    let s = json(&ok(dir, AT, &["status", "--json"]));
    assert_eq!(s["queued_target_sets"], serde_json::json!(["new"]), "{s}");
    ok(dir, AT, &["cycle"]);
    let s = json(&ok(dir, "2026-11-24T15:05:00Z", &["status", "--json"]));
    let held: Vec<&str> = s["positions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["symbol"].as_str())
        .collect();
    assert!(
        held.iter().all(|s| ["MSFT", "XOM"].contains(s)) && !held.is_empty(),
        "only the newest set traded: {held:?}"
    );
    // Re-submitting the superseded id changes nothing and says why.
    let again = keel(dir, AT, &["submit", dir.join("old.json").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("superseded"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let v = keel(dir, AT, &["audit", "verify"]).output().unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

/// A free loopback port (bound, read, released: the server binds it next).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A bare HTTP/1.1 GET; the body of a 200, else `None`.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn status_eod_and_the_dashboard_agree_to_the_cent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    std::fs::write(
        dir.join("keel.toml"),
        format!("[server]\nbind = \"127.0.0.1:{port}\"\n\n[paper]\npartial_fill_prob = 0.0\n"),
    )
    .unwrap();
    submit(
        dir,
        "book.json",
        &set(
            "book",
            "2026-11-24T14:55:00Z",
            &[("AAPL", "0.2"), ("MSFT", "0.2"), ("JPM", "0.15"), ("KO", "0.1")],
        ),
    );
    ok(dir, AT, &["cycle"]);
    ok(dir, "2026-11-24T15:10:00Z", &["cycle"]);
    // After the close: the cycle writes the session's EOD snapshot first.
    let after = "2026-11-24T21:10:00Z";
    ok(dir, after, &["cycle"]);
    let status = json(&ok(dir, after, &["status", "--json"]));
    assert!(
        status["positions"].as_array().is_some_and(|p| p.len() == 4),
        "{status}"
    );

    let mut child = Killed(
        keel(dir, after, &["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let overview = loop {
        if let Some(b) = get(port, "/api/v1/overview") {
            break b;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "dashboard did not start"
        );
        if let Some(s) = child.0.try_wait().unwrap() {
            panic!("keel serve exited: {s:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let overview: serde_json::Value = serde_json::from_str(&overview).unwrap();
    let eod: serde_json::Value = serde_json::from_str(&get(port, "/api/v1/eod").unwrap()).unwrap();
    let positions: serde_json::Value =
        serde_json::from_str(&get(port, "/api/v1/positions").unwrap()).unwrap();
    let snap = eod["snapshots"].as_array().unwrap().last().cloned().unwrap();

    let cents = |v: &serde_json::Value| -> String {
        let d: rust_decimal::Decimal = v.as_str().unwrap_or_else(|| panic!("{v}")).parse().unwrap();
        keel_domain::valuation::fmt_money(d)
    };
    for (status_key, api_key, eod_key) in [
        ("equity", "equity", "equity"),
        ("cash", "cash", "cash"),
        ("gross_exposure", "gross_exposure", "gross_exposure"),
        ("net_exposure", "net_exposure", "net_exposure"),
    ] {
        let st = status[status_key].as_str().unwrap().to_string();
        assert_eq!(st, cents(&overview[api_key]), "{status_key}: status vs dashboard");
        assert_eq!(st, cents(&snap[eod_key]), "{status_key}: status vs EOD snapshot");
        assert_eq!(
            st,
            cents(&positions[api_key]),
            "{status_key}: status vs positions page"
        );
    }
    // Per position too: the same price and market value.
    for p in status["positions"].as_array().unwrap() {
        let sym = p["symbol"].as_str().unwrap();
        let d = positions["positions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["symbol"] == sym)
            .unwrap_or_else(|| panic!("{sym} missing from the dashboard"));
        assert_eq!(
            p["market_value"].as_str().unwrap(),
            cents(&d["market_value"]),
            "{sym}"
        );
        assert_eq!(p["price_source"], "eod", "{sym}: marked at the close");
        let qty = p["qty"].as_str().unwrap();
        assert!(
            !qty.contains('.') || qty.len() < 12,
            "no long decimal tails: {qty}"
        );
    }
    assert!(cents(&overview["equity"]) != "0.00");
}
