//! Notifications through the real binary, to real receivers on loopback:
//! a webhook server that can be "down" (503), a command hook, and an SMTP
//! server (aiosmtpd). `keel run` is SIGKILLed between an event and its
//! delivery; after the restart every event arrives, exactly once per event
//! id, in log order.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AT: &str = "2026-11-24T15:00:00Z";
const SECRET: &str = "SECRET-hook-token-5f1c";

/// One request the webhook receiver saw, and what it answered.
#[derive(Debug, Clone)]
struct Hit {
    event_id: String,
    body: serde_json::Value,
    status: u16,
}

/// A minimal HTTP/1.1 server: answers 200 while `up`, 503 otherwise.
struct Receiver {
    url: String,
    up: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook/{SECRET}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (u, h) = (up.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (u, h) = (u.clone(), h.clone());
                std::thread::spawn(move || serve(conn, &u, &h));
            }
        });
        Receiver { url, up, hits }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn delivered(&self) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.status == 200).collect()
    }
}

fn serve(conn: TcpStream, up: &AtomicBool, hits: &Mutex<Vec<Hit>>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut len = 0usize;
    let mut event_id = String::new();
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "x-keel-event-id" => event_id = v.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; len.min(1 << 20)];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let status = if up.load(Ordering::SeqCst) { 200 } else { 503 };
    hits.lock().unwrap().push(Hit {
        event_id,
        body: serde_json::from_slice(&body).unwrap_or_default(),
        status,
    });
    let mut w = conn;
    let _ = write!(
        w,
        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
}

fn keel(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keel"));
    c.args(args).arg("--data-dir").arg(dir).arg("--at").arg(AT);
    c.arg("--config").arg(dir.join("keel.toml"));
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, hook_out: &Path) {
    std::fs::write(
        dir.join("keel.toml"),
        format!(
            "data_dir = {dir:?}\n\
             [server]\nbind = \"127.0.0.1:{port}\"\n\
             [notify]\npoll_ms = 100\nbackoff_initial_ms = 100\nbackoff_max_ms = 300\n\
             [[notify.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl_env = \"KEEL_TEST_HOOK_URL\"\nmin_severity = \"info\"\n\
             [[notify.channel]]\nname = \"script\"\ntype = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >> '{out}'; echo >> '{out}'\"]\n\
             events = [\"kill_switch_engaged\"]\nmin_severity = \"info\"\n",
            port = free_port(),
            out = hook_out.display(),
        ),
    )
    .unwrap();
}

fn spawn_run(dir: &Path, url: &str, log: &Path) -> Child {
    keel(dir, &["run"])
        .env("KEEL_TEST_HOOK_URL", url)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn sigkill(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn sigterm(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "keel run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn notifications_survive_sigkill_and_a_receiver_that_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hook_out = dir.join("hook.jsonl");
    config(dir, &hook_out);
    let rx = Receiver::start();

    // The receiver is down. An event happens before keel run even starts.
    ok(keel(dir, &["kill", "--reason", "first"]).env("KEEL_TEST_HOOK_URL", &rx.url));
    let log1 = dir.join("run1.log");
    let mut run = spawn_run(dir, &rx.url, &log1);
    wait_for("retries against the down receiver", 30, || rx.hits().len() >= 3);
    // More events while the receiver stays down.
    ok(keel(dir, &["resume", "--reason", "second"]).env("KEEL_TEST_HOOK_URL", &rx.url));
    ok(keel(dir, &["kill", "--reason", "third"]).env("KEEL_TEST_HOOK_URL", &rx.url));
    std::thread::sleep(Duration::from_millis(500));
    // Killed between the events and their delivery.
    sigkill(&mut run);
    assert!(rx.delivered().is_empty(), "nothing could be delivered yet");
    let attempts_while_down = rx.hits().len();
    assert!(attempts_while_down >= 3);
    // Backoff: in ~1.5 s of 100..300 ms delays, a handful of attempts, not hundreds.
    assert!(
        attempts_while_down < 40,
        "{attempts_while_down} attempts: no backoff?"
    );

    // The receiver comes back; keel run restarts and delivers everything.
    rx.up.store(true, Ordering::SeqCst);
    let log2 = dir.join("run2.log");
    let mut run = spawn_run(dir, &rx.url, &log2);
    wait_for("all three notifications", 30, || rx.delivered().len() >= 3);
    std::thread::sleep(Duration::from_millis(800)); // room for any duplicate to show up
    sigterm(&mut run);

    let delivered = rx.delivered();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for h in &delivered {
        *per_id.entry(h.event_id.clone()).or_default() += 1;
        assert_eq!(
            h.body["event_id"].as_str(),
            Some(h.event_id.as_str()),
            "{:?}",
            h.body
        );
        assert!(h.body["seq"].as_u64().unwrap() > 0);
    }
    assert_eq!(per_id.len(), 3, "{per_id:?}");
    assert!(
        per_id.values().all(|n| *n == 1),
        "exactly once per event id: {per_id:?}"
    );
    // In log order, with the right kinds and reasons.
    let seqs: Vec<u64> = delivered
        .iter()
        .map(|h| h.body["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let kinds: Vec<&str> = delivered
        .iter()
        .map(|h| h.body["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "kill_switch_engaged",
            "kill_switch_released",
            "kill_switch_engaged"
        ]
    );
    assert!(delivered[0].body["title"].as_str().unwrap().contains("first"));
    assert!(delivered[2].body["title"].as_str().unwrap().contains("third"));
    // Each failed attempt was for the oldest event (order kept while down).
    let first_id = &delivered[0].event_id;
    assert!(rx.hits()[..attempts_while_down]
        .iter()
        .all(|h| &h.event_id == first_id));

    // The command hook takes only kill_switch_engaged: both engagements, at least once.
    let text = std::fs::read_to_string(&hook_out).unwrap_or_default();
    let ids: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let engaged: BTreeSet<String> = [&delivered[0].event_id, &delivered[2].event_id]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(ids, engaged, "{text}");

    // The webhook URL is a secret: never in keel's logs.
    for log in [&log1, &log2] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(!text.contains(SECRET), "secret in {}: {text}", log.display());
    }
    // Nor in the audit log.
    let db = std::fs::read(dir.join("keel.db")).unwrap();
    assert!(!db.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
}

/// aiosmtpd, when installed (`.ci/run` installs it).
fn smtp_server(port: u16) -> Option<Child> {
    let probe = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .output()
        .ok()?;
    if !probe.status.success() {
        return None;
    }
    let child = Command::new("python3")
        .args(["-u", "-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(15) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(child)
}

#[test]
fn notify_test_sends_on_every_channel_and_says_which_failed() {
    let port = free_port();
    let Some(mut smtp) = smtp_server(port) else {
        eprintln!("skipped: no aiosmtpd (pip install aiosmtpd)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rx = Receiver::start();
    rx.up.store(true, Ordering::SeqCst);
    let dead = format!("http://127.0.0.1:{}/gone/{SECRET}", free_port());
    let write = |extra: &str| {
        std::fs::write(
            dir.join("keel.toml"),
            format!(
                "data_dir = {dir:?}\n\
                 [[notify.channel]]\nname = \"mail\"\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\n\
                 starttls = \"off\"\nfrom = \"keel@example.com\"\nto = [\"pm@example.com\"]\n\
                 [[notify.channel]]\nname = \"slack\"\ntype = \"webhook\"\nurl_env = \"KEEL_TEST_HOOK_URL\"\nformat = \"slack\"\n{extra}"
            ),
        )
        .unwrap();
    };
    write("");
    let out = keel(dir, &["notify", "test"])
        .env("KEEL_TEST_HOOK_URL", &rx.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("mail: ok") && stdout.contains("slack: ok"),
        "{stdout}"
    );
    // The Slack-compatible body.
    let hit = rx.delivered().pop().unwrap();
    assert!(
        hit.body["text"].as_str().unwrap().contains("test notification"),
        "{:?}",
        hit.body
    );
    assert!(hit.event_id.starts_with("test:"));

    // A dead webhook: exit 1, the failure named, the URL not.
    write("[[notify.channel]]\nname = \"dead\"\ntype = \"webhook\"\nurl_env = \"KEEL_TEST_DEAD_URL\"\n");
    let out = keel(dir, &["notify", "test"])
        .env("KEEL_TEST_HOOK_URL", &rx.url)
        .env("KEEL_TEST_DEAD_URL", &dead)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("dead: FAILED") && all.contains("mail: ok"), "{all}");
    assert!(!all.contains(SECRET), "{all}");

    // A missing secret: exit 2 naming the variable.
    let out = keel(dir, &["notify", "test"])
        .env("KEEL_TEST_HOOK_URL", &rx.url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("KEEL_TEST_DEAD_URL"), "{err}");

    // The SMTP server received the messages, with the event id.
    smtp.kill().unwrap();
    let mut text = String::new();
    smtp.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    smtp.wait().unwrap();
    assert!(text.contains("test notification from keel notify test"), "{text}");
    assert!(text.contains("event id: test:"), "{text}");
    assert!(text.contains("pm@example.com"), "{text}");
}

/// The outbox's kinds, in log order (read-only).
fn outbox_kinds(dir: &Path) -> Vec<(String, String)> {
    use sqlx::{Connection, Row};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=ro", dir.join("keel.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT kind, severity FROM outbox ORDER BY seq")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect()
    })
}

/// A set closed as superseded and a set refused whole (a coverage block on
/// its first attempt) each become one durable notification, written with
/// the event that caused it; a refused set's later attempts add none.
#[test]
fn superseded_and_refused_sets_are_notifications() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    config(dir, &dir.join("hook.jsonl"));
    let set = |id: &str, body: &str| {
        let p = dir.join(format!("{id}.json"));
        std::fs::write(
            &p,
            format!("{{\"id\":\"{id}\",\"as_of\":\"2026-11-24T14:59:00Z\",\"targets\":[{body}]}}"),
        )
        .unwrap();
        p.to_str().unwrap().to_string()
    };
    let old = set("old", "{\"symbol\":\"AAPL\",\"weight\":\"0.6\"}");
    let new = set(
        "new",
        "{\"symbol\":\"MSFT\",\"weight\":\"0.3\"},{\"symbol\":\"ZZZQ\",\"weight\":\"0.3\"}",
    );
    ok(&mut keel(dir, &["submit", &old]));
    ok(&mut keel(dir, &["submit", &new]));
    for _ in 0..2 {
        ok(&mut keel(dir, &["cycle"]));
    }
    let kinds = outbox_kinds(dir);
    let superseded: Vec<_> = kinds
        .iter()
        .filter(|(k, _)| k == "target_set_superseded")
        .collect();
    let refused: Vec<_> = kinds.iter().filter(|(k, _)| k == "target_set_refused").collect();
    assert_eq!(superseded.len(), 1, "{kinds:?}");
    assert_eq!(refused.len(), 1, "{kinds:?}");
    assert_eq!(superseded[0].1, "warning");
    assert_eq!(refused[0].1, "warning");
}
