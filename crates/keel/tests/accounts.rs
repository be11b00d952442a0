//! Several accounts in one config, `keel migrate`, `keel export`, and
//! `keel cycle` under the lease, through the real binary. SQLite always;
//! PostgreSQL too with `KEEL_TEST_PG_URL` (else "skipped: no PostgreSQL").

use keel_store::{SqliteStore, Store};
use sqlx::{Connection, PgConnection};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const AT: &str = "2026-11-24T15:00:00Z";

fn keel(cfg: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keel"));
    c.args(args).arg("--config").arg(cfg).arg("--at").arg(AT);
    c
}

fn ok(cfg: &Path, args: &[&str]) -> String {
    let out = keel(cfg, args).output().expect("run keel");
    assert!(
        out.status.success(),
        "keel {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(cfg: &Path, args: &[&str]) -> Output {
    keel(cfg, args).output().expect("run keel")
}

fn set(dir: &Path, id: &str, weights: &[(&str, &str)]) -> std::path::PathBuf {
    let targets: Vec<String> = weights
        .iter()
        .map(|(s, w)| format!("{{\"symbol\":\"{s}\",\"weight\":\"{w}\"}}"))
        .collect();
    let p = dir.join(format!("{id}.json"));
    std::fs::write(
        &p,
        format!(
            "{{\"id\":\"{id}\",\"as_of\":\"2026-11-24T14:55:00Z\",\"targets\":[{}]}}",
            targets.join(",")
        ),
    )
    .unwrap();
    p
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status(cfg: &Path, account: &str) -> serde_json::Value {
    let out = run(cfg, &["status", "--json", "--account", account]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn pg_url() -> Option<String> {
    let Ok(url) = std::env::var("KEEL_TEST_PG_URL") else {
        println!("skipped: no PostgreSQL (KEEL_TEST_PG_URL unset)");
        return None;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    if let Err(e) = rt.block_on(PgConnection::connect(&url)) {
        println!("skipped: no PostgreSQL ({e})");
        return None;
    }
    Some(url)
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

fn drop_schemas(url: &str, schemas: &[String]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if let Ok(mut c) = PgConnection::connect(url).await {
            for s in schemas {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
                    .execute(&mut c)
                    .await;
            }
        }
    });
}

/// Two accounts, one `keel run`: each trades its own inbox into its own store.
fn two_accounts(store_section: &str, tag: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, b) = (format!("{tag}-alpha"), format!("{tag}-beta"));
    let cfg = dir.join("keel.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n{store_section}\n\
             [lease]\nttl_ms = 1500\nrenew_ms = 300\nmargin_ms = 300\n\
             [schedule]\ncycle_every_secs = 1\n\
             [server]\nbind = \"127.0.0.1:0\"\n\
             [paper]\npartial_fill_prob = 0.0\n\
             [[accounts]]\nid = \"{a}\"\n\
             [[accounts]]\nid = \"{b}\"\npaper = {{ seed = 9, initial_cash = \"500000\" }}\n\
             guards = {{ max_position_weight = {{ max_weight = \"0.25\" }} }}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();

    // Verbs that act on one account need --account.
    let out = run(&cfg, &["status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--account") && err.contains(&a) && err.contains(&b),
        "{err}"
    );

    let migrated = ok(&cfg, &["migrate"]);
    assert!(migrated.contains(&format!("account {a}:")), "{migrated}");
    assert!(migrated.contains(&format!("account {b}:")), "{migrated}");
    // Every migration applied (0003 and later ones: the number only grows).
    let version: u32 = migrated
        .split("schema version ")
        .nth(1)
        .and_then(|v| v.split(')').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(version >= 3, "{migrated}");

    let mut child = keel(&cfg, &["run"])
        .env("KEEL_LOG", "keel=info,warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for (acct, w) in [(&a, "0.3"), (&b, "0.3")] {
        let inbox = dir.join("data").join(acct).join("inbox");
        wait_for("the inbox to exist", || inbox.exists());
        let f = set(dir, &format!("{acct}-set"), &[("AAPL", w), ("MSFT", w)]);
        std::fs::rename(&f, inbox.join("set.json")).unwrap();
    }
    wait_for("both accounts to trade", || {
        [&a, &b].iter().all(|acct| {
            status(&cfg, acct)["positions"]
                .as_array()
                .is_some_and(|p| p.len() == 2)
        })
    });
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let st = child.wait().unwrap();
    let mut log = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(st.success(), "{log}");
    assert_eq!(log.matches("lease acquired").count(), 2, "{log}");
    assert_eq!(log.matches("lease released").count(), 2, "{log}");

    let sa = status(&cfg, &a);
    let sb = status(&cfg, &b);
    assert_eq!(sa["account_id"], a.as_str());
    assert_eq!(sb["account_id"], b.as_str());
    // beta's own paper venue (500k) and its guard override (25% cap) applied.
    let equity = |s: &serde_json::Value| s["equity"].as_str().unwrap().parse::<f64>().unwrap();
    assert!(equity(&sa) > 900_000.0, "{sa}");
    assert!(equity(&sb) < 600_000.0, "{sb}");
    // The default cap is 0.20 of equity; beta's override raises it to 0.25.
    let weight = |p: &serde_json::Value| p["weight"].as_str().unwrap().parse::<f64>().unwrap();
    for p in sa["positions"].as_array().unwrap() {
        assert!(weight(p) <= 0.2001, "alpha keeps the default cap: {p}");
    }
    for p in sb["positions"].as_array().unwrap() {
        assert!(
            weight(p) > 0.21 && weight(p) <= 0.2501,
            "beta's max_weight override: {p}"
        );
    }
    for acct in [&a, &b] {
        let v = ok(&cfg, &["audit", "verify", "--account", acct]);
        assert!(v.contains("audit chain ok"), "{v}");
    }
}

#[test]
fn two_accounts_on_sqlite() {
    two_accounts("", "acct");
}

#[test]
fn two_accounts_on_postgres() {
    let Some(url) = pg_url() else { return };
    let tag = unique("acct");
    two_accounts(&format!("[store]\nurl = \"{url}\"\n"), &tag);
    drop_schemas(&url, &[format!("keel_{tag}-alpha"), format!("keel_{tag}-beta")]);
}

/// Trades a little on SQLite and returns (config, data dir).
fn traded_sqlite(dir: &Path, account: &str) -> std::path::PathBuf {
    let cfg = dir.join("keel.toml");
    std::fs::write(
        &cfg,
        format!(
            "account_id = \"{account}\"\ndata_dir = \"{}\"\n\
             [paper]\npartial_fill_prob = 0.5\n\
             [guards.cooldown]\nsymbol_secs = 0\naccount_secs = 0\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let f = set(dir, "s1", &[("AAPL", "0.3"), ("MSFT", "0.2"), ("JPM", "0.1")]);
    ok(&cfg, &["submit", f.to_str().unwrap()]);
    ok(&cfg, &["cycle"]);
    ok(&cfg, &["kill", "--reason", "exported with the switch engaged"]);
    cfg
}

async fn same_state(a: &SqliteStore, b: &SqliteStore) {
    assert_eq!(a.audit_head().await.unwrap(), b.audit_head().await.unwrap());
    assert!(b.verify_chain().await.unwrap().is_ok());
    assert_eq!(
        a.dump_projections().await.unwrap(),
        b.dump_projections().await.unwrap()
    );
    assert_eq!(
        b.kill_switch().await.unwrap().map(|k| k.reason),
        Some("exported with the switch engaged".to_string())
    );
}

#[test]
fn export_sqlite_to_jsonl_and_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = traded_sqlite(dir, "exp");
    let jsonl = dir.join("log.jsonl");
    let out = ok(&cfg, &["export", "--to", &format!("jsonl:{}", jsonl.display())]);
    assert!(out.contains("chain verified"), "{out}");
    let lines = std::fs::read_to_string(&jsonl).unwrap().lines().count();
    assert!(lines > 10, "{lines} rows");
    // Not overwritten.
    let again = run(&cfg, &["export", "--to", &format!("jsonl:{}", jsonl.display())]);
    assert_eq!(again.status.code(), Some(2));

    let copy = dir.join("copy.db");
    let out = ok(
        &cfg,
        &[
            "export",
            "--from",
            &format!("jsonl:{}", jsonl.display()),
            "--to",
            &format!("sqlite:{}", copy.display()),
        ],
    );
    assert!(out.contains(&format!("exported {lines} events")), "{out}");
    // Resuming / repeating is a no-op.
    ok(&cfg, &["export", "--to", &format!("sqlite:{}", copy.display())]);

    // A JSONL file with an edited row is refused, naming the row.
    let text = std::fs::read_to_string(&jsonl).unwrap();
    // The AAPL weight inside the first row's payload (a JSON string, so its quotes are escaped).
    let edited = text.replacen("0.3\\\"", "0.9\\\"", 1);
    assert!(edited != text, "the edit found its target");
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, edited).unwrap();
    let out = run(
        &cfg,
        &[
            "export",
            "--from",
            &format!("jsonl:{}", bad.display()),
            "--to",
            &format!("sqlite:{}", dir.join("bad.db").display()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("importing audit row") && err.contains("edited"),
        "{err}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let src = SqliteStore::open(dir.join("data/keel.db")).await.unwrap();
        let dst = SqliteStore::open(&copy).await.unwrap();
        same_state(&src, &dst).await;
    });
}

#[test]
fn export_sqlite_to_postgres_and_back() {
    let Some(url) = pg_url() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let account = unique("exp");
    let cfg = traded_sqlite(dir, &account);
    let out = ok(&cfg, &["export", "--to", &url]);
    assert!(out.contains(&format!("schema keel_{account}")), "{out}");
    // The PostgreSQL copy verifies through the binary too.
    let pg_cfg = dir.join("pg.toml");
    std::fs::write(
        &pg_cfg,
        format!(
            "account_id = \"{account}\"\ndata_dir = \"{}\"\n[store]\nurl = \"{url}\"\n",
            dir.join("pgdata").display()
        ),
    )
    .unwrap();
    let v = ok(&pg_cfg, &["audit", "verify"]);
    assert!(v.contains("audit chain ok"), "{v}");
    let back = dir.join("back.db");
    ok(
        &pg_cfg,
        &["export", "--to", &format!("sqlite:{}", back.display())],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let src = SqliteStore::open(dir.join("data/keel.db")).await.unwrap();
        let dst = SqliteStore::open(&back).await.unwrap();
        same_state(&src, &dst).await;
    });
    drop_schemas(&url, &[format!("keel_{account}")]);
}

#[test]
fn cycle_waits_for_and_then_refuses_a_live_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = dir.join("keel.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n[lease]\nttl_ms = 1000\nrenew_ms = 200\nmargin_ms = 200\n\
             [server]\nbind = \"127.0.0.1:0\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut child = keel(&cfg, &["run"])
        .env("KEEL_LOG", "keel=info,warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let db = dir.join("data/keel.db");
    wait_for("keel run to take the lease", || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        db.exists()
            && rt.block_on(async {
                let Ok(s) = SqliteStore::open(&db).await else {
                    return false;
                };
                s.leases()
                    .await
                    .map(|l| !l.is_empty() && l[0].1.expires_in_ms > 0)
                    .unwrap_or(false)
            })
    });
    let start = Instant::now();
    let out = run(&cfg, &["cycle"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lease is held by") && err.contains("keel run"),
        "{err}"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "it waited one TTL first"
    );
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    // Released on exit: a cycle now runs at once.
    let start = Instant::now();
    ok(&cfg, &["cycle"]);
    assert!(start.elapsed() < Duration::from_secs(5));
}
