//! The single-writer lease through the real binary, against PostgreSQL
//! (`KEEL_TEST_PG_URL`; prints "skipped: no PostgreSQL" without it).
//!
//! Two `keel run` processes on one account (one store schema, one shared
//! paper-venue file, one inbox): only the lease holder trades. SIGKILL it and
//! the standby takes over within the lease timeout. SIGSTOP the new holder, a
//! third process takes over; resumed, the stopped one finds its lease lost,
//! sends nothing and does not get the lease back, and a write with its
//! fencing token is refused by the database. At the end: every client order
//! id reached the venue exactly once, the store equals the venue, the audit
//! chain verifies, and no kill switch tripped.
//!
//! Each run uses a unique account id, hence its own schema, dropped at the end.

use keel_store::{Fence, LeaseStore, PgStore, Store, StoreError};
use sqlx::{Connection, PgConnection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AT: &str = "2026-11-24T15:00:00Z";
const TTL_MS: u64 = 2_000;
const RENEW_MS: u64 = 400;

struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(name: &'static str, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let err = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["run", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--at", AT])
            .env("KEEL_LOG", "keel=info,warn")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn keel run");
        Proc { name, child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.pid() as i32, sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.name);
    }

    /// SIGTERM, then the exit status (must be 0: a clean stop).
    fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                let log = self.log();
                assert!(s.success(), "{} exited with {s:?}:\n{log}", self.name);
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{} did not stop on SIGTERM:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A failed assertion must not leave processes behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The test's view of the database.
struct Db {
    rt: tokio::runtime::Runtime,
    url: String,
    schema: String,
    account: String,
}

impl Db {
    async fn conn(&self) -> PgConnection {
        let mut c = PgConnection::connect(&self.url).await.expect("connect");
        sqlx::query(&format!("SET search_path TO \"{}\"", self.schema))
            .execute(&mut c)
            .await
            .expect("search_path");
        c
    }

    /// (holder pid, token) of the lease, once it exists.
    fn lease(&self) -> Option<(u32, i64)> {
        self.rt.block_on(async {
            let mut c = self.conn().await;
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT holder, token FROM leases WHERE account_id = $1")
                    .bind(&self.account)
                    .fetch_optional(&mut c)
                    .await
                    .ok()
                    .flatten();
            row.map(|(h, t)| {
                let pid = h.split('|').nth(3).and_then(|p| p.parse().ok()).unwrap_or(0);
                (pid, t)
            })
        })
    }

    fn set_status(&self, id: &str) -> Option<String> {
        self.rt.block_on(async {
            let mut c = self.conn().await;
            sqlx::query_scalar("SELECT status FROM target_sets WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut c)
                .await
                .ok()
                .flatten()
        })
    }

    fn store(&self) -> PgStore {
        self.rt
            .block_on(PgStore::connect_schema(&self.url, &self.schema))
            .expect("store")
    }

    fn drop_schema(&self) {
        self.rt.block_on(async {
            if let Ok(mut c) = PgConnection::connect(&self.url).await {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema))
                    .execute(&mut c)
                    .await;
            }
        });
    }
}

fn target_file(inbox: &Path, id: &str, weights: &[(&str, &str)]) {
    let targets: Vec<String> = weights
        .iter()
        .map(|(s, w)| format!("{{\"symbol\":\"{s}\",\"weight\":\"{w}\"}}"))
        .collect();
    let json = format!(
        "{{\"id\":\"{id}\",\"as_of\":\"2026-11-24T14:55:00Z\",\"targets\":[{}]}}",
        targets.join(",")
    );
    // Written under a dot name and renamed: the inbox ignores dot files.
    let tmp = inbox.join(format!(".{id}.json"));
    std::fs::write(&tmp, json).expect("write target file");
    std::fs::rename(&tmp, inbox.join(format!("{id}.json"))).expect("rename target file");
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[test]
fn one_trader_per_account_takeover_on_kill_and_fencing_on_pause() {
    let Ok(url) = std::env::var("KEEL_TEST_PG_URL") else {
        println!("skipped: no PostgreSQL (KEEL_TEST_PG_URL unset)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    if let Err(e) = rt.block_on(PgConnection::connect(&url)) {
        println!("skipped: no PostgreSQL ({e})");
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let account = format!("lease-{}-{nanos}", std::process::id());
    let db = Db {
        rt,
        url: url.clone(),
        schema: format!("keel_{account}"),
        account: account.clone(),
    };
    struct DropSchema<'a>(&'a Db);
    impl Drop for DropSchema<'_> {
        fn drop(&mut self) {
            self.0.drop_schema();
        }
    }
    let _cleanup = DropSchema(&db);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let inbox = data.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        data.join("keel.toml"),
        format!(
            "account_id = \"{account}\"\n\
             [store]\nurl = \"{url}\"\n\
             [lease]\nttl_ms = {TTL_MS}\nrenew_ms = {RENEW_MS}\nmargin_ms = 500\n\
             [schedule]\ncycle_every_secs = 1\n\
             [server]\nbind = \"127.0.0.1:0\"\n\
             [paper]\npartial_fill_prob = 0.0\n\
             [guards.cooldown]\nsymbol_secs = 0\naccount_secs = 0\n"
        ),
    )
    .unwrap();

    // 1. Two processes start together; exactly one gets the lease and trades.
    let a = Proc::start("a", dir);
    let b = Proc::start("b", dir);
    let (holder, token) = wait_for("a lease holder", Duration::from_secs(30), || db.lease());
    assert_eq!(token, 1);
    let (first, second) = if holder == a.pid() {
        (a, b)
    } else {
        assert_eq!(holder, b.pid(), "the holder is one of the two");
        (b, a)
    };
    target_file(&inbox, "set-1", &[("AAPL", "0.3"), ("MSFT", "0.3")]);
    wait_for("set-1 to complete", Duration::from_secs(30), || {
        (db.set_status("set-1").as_deref() == Some("completed")).then_some(())
    });
    assert_eq!(
        db.lease(),
        Some((first.pid(), 1)),
        "no take-over while the holder lives"
    );
    let standby_log = second.log();
    assert_eq!(count(&standby_log, "lease acquired"), 0, "{standby_log}");
    assert!(count(&standby_log, "standing by") >= 1, "{standby_log}");
    assert_eq!(
        count(&standby_log, "cycle"),
        0,
        "the standby never cycles:\n{standby_log}"
    );
    assert!(count(&first.log(), "lease acquired") == 1);

    // 2. SIGKILL the holder (not reaped yet: the standby cannot tell it is
    //    dead, so it must wait for the lease to expire by the database's clock).
    let mut first = first;
    first.signal(libc::SIGKILL);
    let killed = Instant::now();
    let (h2, t2) = wait_for("the standby to take over", Duration::from_secs(30), || {
        db.lease().filter(|(_, t)| *t == 2)
    });
    let took = killed.elapsed();
    let _ = first.child.wait();
    assert_eq!(h2, second.pid());
    assert_eq!(t2, 2);
    let bound = Duration::from_millis(TTL_MS + RENEW_MS + 1_000);
    assert!(took <= bound, "take-over took {took:?}, more than {bound:?}");
    println!("take-over after SIGKILL: {took:?} (ttl {TTL_MS} ms)");
    target_file(
        &inbox,
        "set-2",
        &[("AAPL", "0.2"), ("MSFT", "0.4"), ("NVDA", "0.1")],
    );
    wait_for("set-2 to complete", Duration::from_secs(30), || {
        (db.set_status("set-2").as_deref() == Some("completed")).then_some(())
    });

    // 3. SIGSTOP the new holder; a third process takes over and trades.
    second.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let third = Proc::start("c", dir);
    let (h3, t3) = wait_for("the third process to take over", Duration::from_secs(30), || {
        db.lease().filter(|(_, t)| *t == 3)
    });
    assert_eq!(h3, third.pid());
    assert_eq!(t3, 3);
    let took = stopped.elapsed();
    assert!(
        took <= bound + Duration::from_secs(2),
        "take-over from a paused holder took {took:?}"
    );
    println!("take-over from a SIGSTOPped holder: {took:?}");
    target_file(
        &inbox,
        "set-3",
        &[("AAPL", "0.1"), ("MSFT", "0.3"), ("JPM", "0.2")],
    );
    wait_for("set-3 to complete", Duration::from_secs(30), || {
        (db.set_status("set-3").as_deref() == Some("completed")).then_some(())
    });

    // 4. Resume the paused one: it finds its lease lost, stops, stands by.
    second.signal(libc::SIGCONT);
    wait_for("the resumed process to notice", Duration::from_secs(15), || {
        let log = second.log();
        (log.contains("lease lost") && log.contains("standing by")).then_some(())
    });
    std::thread::sleep(Duration::from_millis(3 * RENEW_MS));
    assert_eq!(
        db.lease(),
        Some((third.pid(), 3)),
        "the resumed process did not get it back"
    );
    let log = second.log();
    assert_eq!(count(&log, "lease acquired"), 1, "{log}");

    // Its writes are refused by the database: an append and a renewal
    // carrying its token (2) are fenced off, nothing is written.
    let store = db.store();
    let head = db.rt.block_on(store.audit_head()).unwrap();
    let stale = Fence {
        account_id: account.clone(),
        token: 2,
    };
    let ev = keel_domain::Event::KillSwitchEngaged {
        reason: "stale writer".into(),
        source: keel_domain::KillSource::Cli,
        at: chrono::DateTime::parse_from_rfc3339(AT).unwrap().into(),
    };
    match db.rt.block_on(store.append_batch_fenced(&[ev], &stale)) {
        Err(StoreError::Fenced { why, .. }) => assert!(why.contains("token 3"), "{why}"),
        other => panic!("a write with the stale token was not refused: {other:?}"),
    }
    assert_eq!(
        db.rt.block_on(store.audit_head()).unwrap(),
        head,
        "nothing written"
    );

    // 5. Stop both cleanly; check the venue against the store.
    let third_log = third.stop();
    let second_log = second.stop();
    for (name, log) in [("paused", &second_log), ("third", &third_log)] {
        for line in log
            .lines()
            .filter(|l| l.contains("lease") || l.contains("standing by"))
        {
            println!("[{name}] {line}");
        }
    }
    assert!(third_log.contains("lease released"), "{third_log}");
    assert!(
        !second_log.contains("lease released"),
        "it held nothing to release"
    );

    let received = db.rt.block_on(async {
        let url = format!("sqlite://{}", data.join("paper-broker.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let subs: Vec<(String, i64)> = sqlx::query_as("SELECT client_order_id, received FROM submissions")
            .fetch_all(&mut c)
            .await
            .unwrap();
        let pos: Vec<(String, String)> = sqlx::query_as("SELECT symbol, qty FROM positions")
            .fetch_all(&mut c)
            .await
            .unwrap();
        (subs, pos)
    });
    let (subs, venue_positions) = received;
    assert!(subs.len() >= 6, "three target sets traded: {subs:?}");
    for (id, n) in &subs {
        assert_eq!(*n, 1, "client order id {id} reached the venue {n} times");
    }
    let mine: BTreeMap<String, String> = db
        .rt
        .block_on(store.positions())
        .unwrap()
        .into_iter()
        .map(|(s, p)| (s.to_string(), p.qty.normalize().to_string()))
        .collect();
    let theirs: BTreeMap<String, String> = venue_positions
        .into_iter()
        .map(|(s, q)| {
            (
                s,
                q.parse::<rust_decimal::Decimal>()
                    .unwrap()
                    .normalize()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(mine, theirs, "store positions equal the venue's");
    assert!(
        db.rt.block_on(store.kill_switch()).unwrap().is_none(),
        "no false kill"
    );
    let verify = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    println!("{}", String::from_utf8_lossy(&verify.stdout).trim());
    db.rt.block_on(store.close());
}
