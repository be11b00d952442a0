//! Operator-facing truths through the real binary: which config a verb uses,
//! `keel run` failing closed when it cannot serve, the kill-switch flag file
//! on every tick, repeated `keel kill`, the inbox (CSV, no overwrite,
//! symlinks and FIFOs refused unread), and logs people and machines can read.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A Tuesday, market open.
const OPEN: &str = "2026-11-24T15:00:00Z";
/// A Saturday: no session.
const WEEKEND: &str = "2026-11-28T15:00:00Z";

fn keel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keel"));
    c.env_remove("KEEL_CONFIG")
        .env_remove("KEEL_LOG")
        .env_remove("KEEL_LOG_FORMAT")
        .env_remove("KEEL_CONTROL_TOKEN");
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn set_json(id: &str) -> String {
    format!(
        "{{\"id\":\"{id}\",\"as_of\":\"2026-11-24T14:55:00Z\",\"targets\":[\
         {{\"symbol\":\"AAPL\",\"weight\":\"0.3\"}},{{\"symbol\":\"MSFT\",\"weight\":\"0.3\"}}]}}"
    )
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for `child` to exit within `secs`, killing it (and failing) otherwise.
fn wait_exit(child: &mut Child, secs: u64, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    wait_exit(child, 15, "keel run after SIGTERM")
}

/// `keel run` in `dir` at `at`, stderr to `dir/run.log`.
fn spawn_run(dir: &Path, at: &str, envs: &[(&str, &str)]) -> (Child, PathBuf) {
    let log = dir.join("run.log");
    let mut c = keel();
    c.args(["run", "--data-dir"])
        .arg(dir)
        .args(["--at", at])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in envs {
        c.env(k, v);
    }
    (c.spawn().unwrap(), log)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

fn audit_events(dir: &Path) -> String {
    let o = keel()
        .args(["audit", "verify", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    out
}

#[test]
fn config_is_found_flag_then_env_then_working_dir_then_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path().join("work");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let toml = |acct: &str| format!("account_id = \"{acct}\"\n");
    let flag = tmp.path().join("flag.toml");
    let envf = tmp.path().join("env.toml");
    std::fs::write(&flag, toml("from-flag")).unwrap();
    std::fs::write(&envf, toml("from-env")).unwrap();
    std::fs::write(cwd.join("keel.toml"), toml("from-cwd")).unwrap();
    std::fs::write(data.join("keel.toml"), toml("from-datadir")).unwrap();
    let targets = tmp.path().join("t.json");
    std::fs::write(&targets, set_json("disc")).unwrap();

    // `keel plan --json` prints the account the plan is for, and stderr names the config.
    let used = |flag_arg: Option<&Path>, env: Option<&Path>| -> (String, String) {
        let mut c = keel();
        c.current_dir(&cwd)
            .args(["plan", "--json", "--at", OPEN, "--targets"])
            .arg(&targets)
            .arg("--data-dir")
            .arg(&data);
        if let Some(f) = flag_arg {
            c.arg("--config").arg(f);
        }
        if let Some(e) = env {
            c.env("KEEL_CONFIG", e);
        }
        let o = c.output().unwrap();
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}{err}");
        let line: Vec<&str> = err.lines().filter(|l| l.starts_with("keel: config ")).collect();
        assert_eq!(line.len(), 1, "exactly one config line: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let cid = v["orders"][0]["client_order_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (line[0].to_string(), cid)
    };
    let (line, _) = used(Some(&flag), Some(&envf));
    assert!(
        line.contains("flag.toml (--config)") && line.contains("account from-flag"),
        "{line}"
    );
    assert!(
        line.contains(&format!("data directory {}", data.display())),
        "{line}"
    );
    let (line, _) = used(None, Some(&envf));
    assert!(
        line.contains("env.toml (KEEL_CONFIG)") && line.contains("account from-env"),
        "{line}"
    );
    let (line, _) = used(None, None);
    assert!(
        line.contains("(working directory)") && line.contains("account from-cwd"),
        "{line}"
    );
    std::fs::remove_file(cwd.join("keel.toml")).unwrap();
    let (line, _) = used(None, None);
    assert!(
        line.contains("(data directory)") && line.contains("account from-datadir"),
        "{line}"
    );
    std::fs::remove_file(data.join("keel.toml")).unwrap();
    let (line, _) = used(None, None);
    assert!(
        line.contains("config defaults") && line.contains("account paper"),
        "{line}"
    );

    // A KEEL_CONFIG naming a missing file is an error, not a silent fallback.
    let o = keel()
        .current_dir(&cwd)
        .args(["status"])
        .env("KEEL_CONFIG", tmp.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    assert!(text(&o).1.contains("KEEL_CONFIG"));
}

#[test]
fn run_exits_1_before_trading_when_the_dashboard_cannot_bind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    std::fs::write(
        dir.join("keel.toml"),
        format!("[server]\nbind = \"{addr}\"\n[schedule]\ncycle_every_secs = 1\n"),
    )
    .unwrap();
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("a.json"), set_json("never")).unwrap();
    let (mut child, log) = spawn_run(dir, OPEN, &[]);
    let status = wait_exit(&mut child, 20, "keel run on a taken port");
    let err = read(&log);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot serve the dashboard and control API on {addr}")),
        "{err}"
    );
    assert!(!err.contains("http://"), "printed a URL it does not serve: {err}");
    assert!(
        inbox.join("a.json").exists(),
        "the inbox was taken before failing"
    );
    // Nothing was recorded: not even the account was opened.
    let events = audit_events(dir);
    assert!(events.contains("audit chain ok: 0 events"), "{events}");

    // `keel serve --bind` on the taken port fails the same way.
    let o = keel()
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--bind", &addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(!text(&o).1.contains("http://"));
    drop(taken);
}

#[test]
fn flag_file_engages_the_kill_switch_on_a_tick_with_the_market_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let flag = dir.join("STOP");
    std::fs::write(
        dir.join("keel.toml"),
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\n[kill_switch]\nflag_file = \"{}\"\n",
            flag.display()
        ),
    )
    .unwrap();
    let (mut child, log) = spawn_run(dir, WEEKEND, &[("KEEL_LOG_FORMAT", "json")]);
    wait_for("keel run to start", 20, || {
        read(&log).contains("dashboard on http://127.0.0.1:")
    });
    std::fs::write(&flag, "").unwrap();
    let status_json = || {
        let o = keel()
            .args(["status", "--json", "--data-dir"])
            .arg(dir)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()
    };
    wait_for("the flag file to engage the kill switch", 20, || {
        status_json()["kill_switch"]["reason"] == "flag file present"
    });
    assert!(sigterm(&mut child).success());
    let err = read(&log);
    assert!(
        !err.contains("\u{1b}["),
        "ANSI colour on a non-terminal stderr: {err}"
    );
    // JSON logs: structured fields, not Debug strings.
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let start = lines
        .iter()
        .find(|v| v["message"] == "keel run: starting")
        .unwrap_or_else(|| panic!("no start line: {err}"));
    assert_eq!(start["level"], "INFO");
    assert!(start["config"].as_str().unwrap().contains("keel.toml"), "{start}");
    assert!(
        start["account"].is_string() && start["data_dir"].is_string(),
        "{start}"
    );
    let engaged = lines
        .iter()
        .find(|v| v["message"] == "kill switch engaged")
        .unwrap_or_else(|| panic!("no kill-switch line: {err}"));
    assert_eq!(engaged["source"], "flag_file", "{engaged}");
    assert_eq!(engaged["reason"], "flag file present");
}

#[test]
fn kill_while_engaged_says_so_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let kill = |reason: &str| {
        let o = keel()
            .args(["kill", "--reason", reason, "--at", OPEN, "--data-dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{:?}", text(&o));
        text(&o).0
    };
    assert!(kill("first").contains("kill switch engaged: first"));
    let before = audit_events(dir);
    let again = kill("second");
    assert!(
        again.contains("already engaged since 2026-11-24T15:00:00Z by cli: first; nothing changed"),
        "{again}"
    );
    assert_eq!(
        audit_events(dir),
        before,
        "a repeated kill appended to the audit log"
    );
}

#[test]
fn cycle_prints_text_or_json_and_exits_3_when_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cycle = |json: bool| {
        let mut c = keel();
        c.args(["cycle", "--at", OPEN, "--data-dir"]).arg(dir);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let o = cycle(false);
    assert!(o.status.success());
    assert_eq!(text(&o).0.trim(), "cycle idle: no target set waiting");
    let o = cycle(true);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"], "idle");
    keel()
        .args(["kill", "--reason", "stop", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    let o = cycle(false);
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    assert!(text(&o).0.starts_with("cycle killed"), "{:?}", text(&o));
    let o = cycle(true);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"], "killed");

    let help = keel().arg("--help").output().unwrap();
    let h = text(&help).0;
    for s in [
        "KEEL_LOG",
        "KEEL_LOG_FORMAT",
        "KEEL_CONFIG",
        "3  `keel cycle` stopped by the kill switch",
    ] {
        assert!(h.contains(s), "--help lacks {s:?}: {h}");
    }
}

#[test]
fn plan_and_submit_refuse_a_fifo_and_a_symlink_without_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fifo = dir.join("pipe.json");
    mkfifo(&fifo);
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "hunter2-SECRET\n").unwrap();
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    for (path, what) in [(&fifo, "FIFO"), (&link, "symbolic link")] {
        for verb in [&["plan", "--targets"][..], &["submit"][..]] {
            let mut child = keel()
                .args(verb)
                .arg(path)
                .args(["--at", OPEN, "--data-dir"])
                .arg(dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let status = wait_exit(&mut child, 20, "keel plan/submit on a FIFO");
            let o = child.wait_with_output().unwrap();
            let (out, err) = text(&o);
            assert_eq!(status.code(), Some(2), "{verb:?} {path:?}: {out}{err}");
            assert!(
                err.contains(what) && err.contains("refused without reading"),
                "{err}"
            );
            assert!(!out.contains("SECRET") && !err.contains("SECRET"));
        }
    }
}

#[test]
fn inbox_takes_csv_never_overwrites_and_refuses_links_and_fifos_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("keel.toml"), "[server]\nbind = \"127.0.0.1:0\"\n").unwrap();
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(inbox.join("rejected")).unwrap();
    std::fs::create_dir_all(inbox.join("processed")).unwrap();
    // An earlier rejection under the name the next bad file will have.
    std::fs::write(inbox.join("rejected/bad.json"), "earlier").unwrap();
    std::fs::write(inbox.join("rejected/bad.json.error"), "earlier reason\n").unwrap();
    std::fs::write(inbox.join("rebal-1.csv"), "symbol,weight\nAAPL,0.3\nMSFT,0.3\n").unwrap();
    std::fs::write(
        inbox.join("whatever.csv"),
        "# id: close-7\nsymbol,weight\nAAPL,0.3\nMSFT,0.3\n",
    )
    .unwrap();
    std::fs::write(inbox.join("bad.json"), "{\"id\": \"x\", \"targets\": [").unwrap();
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "{\"id\": \"hunter2-SECRET-TOKEN\"\n").unwrap();
    std::os::unix::fs::symlink(&secret, inbox.join("link.json")).unwrap();
    mkfifo(&inbox.join("pipe.json"));

    let (mut child, log) = spawn_run(dir, WEEKEND, &[]);
    wait_for("every inbox file to be handled", 30, || {
        [
            "rebal-1.csv",
            "whatever.csv",
            "bad.json",
            "link.json",
            "pipe.json",
        ]
        .iter()
        .all(|f| inbox.join(f).symlink_metadata().is_err())
    });
    assert!(sigterm(&mut child).success(), "{}", read(&log));

    assert!(inbox.join("processed/rebal-1.csv").exists());
    assert!(inbox.join("processed/whatever.csv").exists());
    // Both sets queued under their ids (name stem and header line): the
    // same ids are now refused as already submitted.
    for id in ["rebal-1", "close-7"] {
        let again = dir.join(format!("{id}.json"));
        std::fs::write(&again, set_json(id)).unwrap();
        let o = keel()
            .args(["submit"])
            .arg(&again)
            .args(["--at", OPEN, "--data-dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{id} was not queued from the inbox: {:?}",
            text(&o)
        );
    }

    // The earlier rejection is intact; the new one sits beside it.
    assert_eq!(read(&inbox.join("rejected/bad.json")), "earlier");
    assert_eq!(read(&inbox.join("rejected/bad.json.error")), "earlier reason\n");
    assert!(read(&inbox.join("rejected/bad.json.1")).starts_with("{\"id\""));
    assert!(read(&inbox.join("rejected/bad.json.1.error")).contains("bad.json"));

    // The link and the FIFO were moved aside as they are, never read.
    let link = inbox.join("rejected/link.json");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    let why = read(&inbox.join("rejected/link.json.error"));
    assert!(why.contains("symbolic link"), "{why}");
    assert!(!why.contains("SECRET"), "the secret leaked: {why}");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mode = std::fs::metadata(inbox.join("rejected/link.json.error"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "error file readable by others: {mode:o}");
    assert!(inbox
        .join("rejected/pipe.json")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(read(&inbox.join("rejected/pipe.json.error")).contains("FIFO"));
    assert!(!read(&log).contains("SECRET"), "the secret reached the log");
}

#[test]
fn demo_takes_bind_and_its_directory_is_ignored_by_git() {
    let tmp = tempfile::tempdir().unwrap();
    let o = keel()
        .args([
            "demo",
            "--days",
            "1",
            "--no-serve",
            "--bind",
            "not-an-address",
            "--dir",
        ])
        .arg(tmp.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    assert!(text(&o).1.contains("--bind = \"not-an-address\""));
    let ignore = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "keel-demo/"), "{ignore}");
}
