//! `keel run`, `keel submit`, `keel status`, `keel kill`/`resume` and
//! `keel audit verify` through the real binary.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AT: &str = "2026-11-24T15:00:00Z";

fn keel(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keel"));
    c.args(args).arg("--data-dir").arg(dir).arg("--at").arg(AT);
    c
}

fn good_set(id: &str) -> String {
    format!(
        "{{\"id\":\"{id}\",\"as_of\":\"2026-11-24T14:55:00Z\",\"targets\":[\
         {{\"symbol\":\"AAPL\",\"weight\":\"0.3\"}},{{\"symbol\":\"MSFT\",\"weight\":0.3}}]}}"
    )
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_takes_the_inbox_trades_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("keel.toml"), "[schedule]\ncycle_every_secs = 1\n").unwrap();
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("a-good.json"), good_set("run-1")).unwrap();
    std::fs::write(inbox.join("b-bad.json"), "{\"id\": \"x\", \"targets\": [").unwrap();

    let mut child = keel(dir, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the good file to be processed", || {
        inbox.join("processed/a-good.json").exists()
    });
    wait_for("the bad file to be rejected", || {
        inbox.join("rejected/b-bad.json.error").exists()
    });
    let why = std::fs::read_to_string(inbox.join("rejected/b-bad.json.error")).unwrap();
    assert!(why.contains("b-bad.json"), "{why}");
    wait_for("orders to fill", || {
        let out = keel(dir, &["status", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["positions"].as_array().is_some_and(|p| p.len() == 2)
    });

    // SIGTERM: finish the current step, exit 0.
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "keel run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit: {status:?}");

    let out = keel(dir, &["audit", "verify"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn submit_twice_is_refused_the_second_time_and_kill_is_sticky() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let f = dir.join("set.json");
    std::fs::write(&f, good_set("twice")).unwrap();
    let first = keel(dir, &["submit", f.to_str().unwrap()]).output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = keel(dir, &["submit", f.to_str().unwrap()]).output().unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already submitted"));

    let k = keel(dir, &["kill", "--reason", "fat finger"]).output().unwrap();
    assert!(k.status.success());
    let c = keel(dir, &["cycle"]).output().unwrap();
    assert_eq!(c.status.code(), Some(3), "a killed cycle exits 3");
    assert!(
        String::from_utf8_lossy(&c.stdout).contains("killed"),
        "{}",
        String::from_utf8_lossy(&c.stdout)
    );
    let s = keel(dir, &["status", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(v["kill_switch"]["reason"], "fat finger");
    assert_eq!(v["positions"].as_array().map(|p| p.len()), Some(0));

    let r = keel(dir, &["resume", "--reason", "checked"]).output().unwrap();
    assert!(r.status.success());
    let c = keel(dir, &["cycle"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&c.stdout).contains("submitted"),
        "{}",
        String::from_utf8_lossy(&c.stdout)
    );
}

#[test]
fn audit_verify_names_the_tampered_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let f = dir.join("set.json");
    std::fs::write(&f, good_set("tamper")).unwrap();
    assert!(keel(dir, &["submit", f.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    assert!(keel(dir, &["cycle"]).status().unwrap().success());
    let ok = keel(dir, &["audit", "verify"]).output().unwrap();
    assert!(ok.status.success());

    // Edit one payload behind keel's back, as an attacker with file access would.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seq: i64 = rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.join("keel.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let seq: i64 = sqlx::query_scalar("SELECT seq FROM audit WHERE kind = 'target_set_queued'")
            .fetch_one(&mut c)
            .await
            .unwrap();
        let changed = sqlx::query("UPDATE audit SET payload = replace(payload, '0.3', '0.9') WHERE seq = ?")
            .bind(seq)
            .execute(&mut c)
            .await
            .unwrap();
        assert_eq!(changed.rows_affected(), 1);
        seq
    });
    let bad = keel(dir, &["audit", "verify"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("sequence {seq}:")), "{stderr}");
}
