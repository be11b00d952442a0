//! The tamper battery: a demo data directory, edited the way an attacker, a
//! careless operator or a restored backup would, with SQL on keel.db. For
//! every edit `keel audit verify` must exit non-zero naming the sequence
//! number, projection row or checkpoint at fault, and `keel cycle` must send
//! no order. Run unkeyed (SHA-256 chain: the anchors catch what a
//! recomputed chain hides) and keyed (HMAC: a recomputed chain is caught
//! at the first forged row). An untouched copy is the control: there the
//! same cycle sends orders and verify passes, so the battery can fail.

use keel_store::chain_hash;
use rust_decimal::Decimal;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Row, SqlitePool};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

const KEY: &str = "battery-audit-key-0123456789";

struct Base {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// When the follow-up cycle runs (market open, after the demo's last day).
    at: String,
    keyed: bool,
}

fn keel(keyed: bool, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keel"));
    c.args(args);
    if keyed {
        c.env("KEEL_AUDIT_KEY", KEY);
    } else {
        c.env_remove("KEEL_AUDIT_KEY");
    }
    c
}

fn run(c: &mut Command) -> Output {
    c.output().expect("running keel")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The first NYSE session after `date`, as "open + 30 min" in RFC 3339.
fn next_session_time(date: &str) -> String {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    let from = (d + chrono::Duration::days(1)).to_string();
    let to = (d + chrono::Duration::days(10)).to_string();
    let o = run(&mut keel(false, &["calendar", "--from", &from, "--to", &to]));
    let csv = String::from_utf8_lossy(&o.stdout).to_string();
    let line = csv
        .lines()
        .find(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .expect("a session");
    let open = line.split(',').nth(1).unwrap();
    let t = chrono::DateTime::parse_from_rfc3339(open).unwrap() + chrono::Duration::minutes(30);
    t.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn pool(dir: &Path) -> SqlitePool {
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", dir.join("keel.db").display()))
        .unwrap()
        .busy_timeout(std::time::Duration::from_secs(10));
    SqlitePool::connect_with(opts).await.unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A demo directory plus a queued target set, so a healthy cycle would trade.
fn base(keyed: bool) -> Base {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let o = run(keel(keyed, &["demo", "--no-serve", "--days", "2", "--dir"]).arg(&dir));
    assert!(o.status.success(), "demo: {}", text(&o));
    let last_day: String = rt().block_on(async {
        let p = pool(&dir).await;
        let d: String = sqlx::query("SELECT MAX(date) FROM eod_snapshots")
            .fetch_one(&p)
            .await
            .unwrap()
            .get(0);
        p.close().await;
        d
    });
    let at = next_session_time(&last_day);
    let set = tmp.path().join("next.json");
    std::fs::write(
        &set,
        format!(
            "{{\"id\":\"battery-next\",\"as_of\":\"{at}\",\"targets\":[\
             {{\"symbol\":\"AAPL\",\"weight\":\"0.2\"}},{{\"symbol\":\"MSFT\",\"weight\":\"0.2\"}},\
             {{\"symbol\":\"JPM\",\"weight\":\"0.2\"}}]}}"
        ),
    )
    .unwrap();
    if keyed {
        // A start-up before the set arrives seals a verified state, so the
        // keyed battery's cycles prove projections from it (replaying only
        // the rows after it) while the unkeyed battery's replay the whole log.
        let before = order_intents(&dir);
        let o = run(keel(keyed, &["cycle", "--at", &at, "--data-dir"]).arg(&dir));
        assert!(o.status.success(), "cycle before the set: {}", text(&o));
        assert_eq!(order_intents(&dir), before, "nothing was queued: {}", text(&o));
        let state = std::fs::read_dir(dir.join("witness"))
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with(".verified-state"));
        assert!(state, "start-up sealed no verified state: {}", text(&o));
    }
    let o = run(keel(keyed, &["submit", "--at", &at, "--data-dir"])
        .arg(&dir)
        .arg(&set));
    assert!(o.status.success(), "submit: {}", text(&o));
    Base {
        _tmp: tmp,
        dir,
        at,
        keyed,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// A scratch copy of the base directory.
fn scratch(b: &Base, name: &str) -> PathBuf {
    let d = b.dir.parent().unwrap().join(format!("case-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    copy_dir(&b.dir, &d);
    d
}

async fn head(p: &SqlitePool) -> i64 {
    sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM audit")
        .fetch_one(p)
        .await
        .unwrap()
        .get(0)
}

async fn exec(p: &SqlitePool, sql: &str) {
    sqlx::query(sql)
        .execute(p)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// What an attacker without the key does after an edit: recompute every
/// SHA-256 hash from `from` to the end.
async fn recompute_chain(p: &SqlitePool, from: i64) {
    let prev: String = if from <= 1 {
        keel_store::GENESIS_HASH.to_string()
    } else {
        sqlx::query("SELECT hash FROM audit WHERE seq = ?")
            .bind(from - 1)
            .fetch_one(p)
            .await
            .unwrap()
            .get(0)
    };
    let rows = sqlx::query("SELECT seq, at, kind, event_id, payload FROM audit WHERE seq >= ? ORDER BY seq")
        .bind(from)
        .fetch_all(p)
        .await
        .unwrap();
    let mut prev = prev;
    for r in rows {
        let seq: i64 = r.get(0);
        let h = chain_hash(
            &prev,
            seq as u64,
            r.get::<String, _>(1).as_str(),
            r.get::<String, _>(2).as_str(),
            r.get::<String, _>(3).as_str(),
            r.get::<String, _>(4).as_str(),
        );
        sqlx::query("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?")
            .bind(&prev)
            .bind(&h)
            .bind(seq)
            .execute(p)
            .await
            .unwrap();
        prev = h;
    }
}

/// A seq in the middle of the log holding an event of `kind`.
async fn middle(p: &SqlitePool, kind: &str) -> i64 {
    let n = head(p).await;
    sqlx::query("SELECT seq FROM audit WHERE kind = ? AND seq >= ? ORDER BY seq LIMIT 1")
        .bind(kind)
        .bind(n / 2)
        .fetch_one(p)
        .await
        .unwrap()
        .get(0)
}

fn order_intents(dir: &Path) -> i64 {
    rt().block_on(async {
        let p = pool(dir).await;
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit WHERE kind = 'order_intent'")
            .fetch_one(&p)
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        p.close().await;
        n
    })
}

fn verify(b: &Base, dir: &Path) -> Output {
    run(keel(b.keyed, &["audit", "verify", "--data-dir"]).arg(dir))
}

fn cycle(b: &Base, dir: &Path) -> Output {
    run(keel(b.keyed, &["cycle", "--at", &b.at, "--data-dir"]).arg(dir))
}

/// Runs `f` on a pool over `dir`'s keel.db.
fn with_db<T>(dir: &Path, f: impl for<'a> FnOnce(&'a SqlitePool) -> BoxFut<'a, T>) -> T {
    rt().block_on(async {
        let p = pool(dir).await;
        let out = f(&p).await;
        p.close().await;
        out
    })
}

type BoxFut<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

/// One tampering on a scratch copy: `edit` returns the seq it touched; verify
/// must fail with a message containing `expect(seq)`, and the cycle must send nothing.
fn case(b: &Base, name: &str, edit: impl FnOnce(&Path) -> i64, expect: impl FnOnce(i64) -> String) {
    let d = scratch(b, name);
    let at = edit(&d);
    let want = expect(at);
    let v = verify(b, &d);
    let out = text(&v);
    assert!(
        !v.status.success(),
        "[{name}] verify passed a tampered log:\n{out}"
    );
    assert!(
        out.contains(&want),
        "[{name}] verify should name {want:?}:\n{out}"
    );
    let before = order_intents(&d);
    let c = cycle(b, &d);
    let after = order_intents(&d);
    assert_eq!(
        before,
        after,
        "[{name}] the cycle traded on a tampered log:\n{}",
        text(&c)
    );
    assert!(
        !c.status.success(),
        "[{name}] the cycle did not fail closed:\n{}",
        text(&c)
    );
    assert_eq!(c.status.code(), Some(1), "[{name}] {}", text(&c));
    eprintln!(
        "[{name}] verify: {}\n[{name}] cycle: {}",
        out.lines().find(|l| l.contains(&want)).unwrap_or(""),
        String::from_utf8_lossy(&c.stderr).lines().last().unwrap_or("")
    );
}

fn sql(dir: &Path, stmts: Vec<String>) {
    with_db(dir, move |p| {
        Box::pin(async move {
            for s in stmts {
                exec(p, &s).await;
            }
        })
    });
}

fn mid(dir: &Path, kind: &'static str) -> i64 {
    with_db(dir, move |p| Box::pin(middle(p, kind)))
}

fn head_of(dir: &Path) -> i64 {
    with_db(dir, |p| Box::pin(head(p)))
}

fn battery(keyed: bool) {
    let b = base(keyed);

    // Control: the untouched copy verifies, and the same cycle trades.
    let d = scratch(&b, "control");
    let v = verify(&b, &d);
    assert!(v.status.success(), "control verify: {}", text(&v));
    let before = order_intents(&d);
    let c = run(keel(b.keyed, &["cycle", "--at", &b.at, "--data-dir"])
        .arg(&d)
        .env("KEEL_LOG", "info"));
    assert!(c.status.success(), "control cycle: {}", text(&c));
    let from_state = text(&c).contains("projections proven from the verified state");
    assert_eq!(from_state, keyed, "which replay start-up did: {}", text(&c));
    assert!(
        order_intents(&d) > before,
        "control cycle sent nothing: {}",
        text(&c)
    );
    let v = verify(&b, &d);
    assert!(v.status.success(), "verify after a healthy cycle: {}", text(&v));

    // A verified state edited (keyed) or planted (unkeyed, where none is ever
    // used) is not trusted: start-up replays the whole log and still trades.
    let d = scratch(&b, "state-file");
    let state = d.join("witness").join("demo.verified-state");
    let forged = match std::fs::read_to_string(&state) {
        Ok(t) => t.replacen("\"seq\":", "\"seq\":1", 1),
        Err(_) => "keel-verified-state-v1 0\n{}\n".to_string(),
    };
    std::fs::write(&state, forged).unwrap();
    let c = run(keel(b.keyed, &["cycle", "--at", &b.at, "--data-dir"])
        .arg(&d)
        .env("KEEL_LOG", "info"));
    assert!(c.status.success(), "cycle with a forged state file: {}", text(&c));
    assert!(text(&c).contains("whole log replayed"), "{}", text(&c));

    let at_seq = |s: i64| format!("sequence {s}:");
    let n = head_of(&b.dir);
    let ends = |have: i64| {
        format!(
            "the log ends at {}; the checkpoint of",
            keel_store::grouped(have as u64)
        )
    };

    case(
        &b,
        "payload",
        |d| {
            let s = mid(d, "order_filled");
            sql(
                d,
                vec![format!(
            "UPDATE audit SET payload = replace(payload, '\"price\":\"', '\"price\":\"1') WHERE seq = {s}"
        )],
            );
            s
        },
        at_seq,
    );
    case(
        &b,
        "hash",
        |d| {
            let s = mid(d, "order_intent");
            sql(
                d,
                vec![format!(
                    "UPDATE audit SET hash = '{}' WHERE seq = {s}",
                    "ab".repeat(32)
                )],
            );
            s
        },
        at_seq,
    );
    case(
        &b,
        "time",
        |d| {
            let s = mid(d, "order_filled");
            sql(
                d,
                vec![format!(
                    "UPDATE audit SET at = '2020-01-01T00:00:00.000000000Z' WHERE seq = {s}"
                )],
            );
            s
        },
        at_seq,
    );
    case(
        &b,
        "kind",
        |d| {
            let s = mid(d, "order_accepted");
            sql(
                d,
                vec![format!("UPDATE audit SET kind = 'reconciled' WHERE seq = {s}")],
            );
            s
        },
        at_seq,
    );
    case(
        &b,
        "middle-deletion",
        |d| {
            let s = mid(d, "order_filled");
            sql(d, vec![format!("DELETE FROM audit WHERE seq = {s}")]);
            s
        },
        at_seq,
    );
    case(
        &b,
        "reorder",
        |d| {
            let s = mid(d, "order_intent");
            sql(
                d,
                vec![
                    format!("UPDATE audit SET seq = -1 WHERE seq = {s}"),
                    format!("UPDATE audit SET seq = {s} WHERE seq = {}", s + 1),
                    format!("UPDATE audit SET seq = {} WHERE seq = -1", s + 1),
                ],
            );
            s
        },
        at_seq,
    );
    case(
        &b,
        "last-row",
        |d| {
            sql(d, vec![format!("DELETE FROM audit WHERE seq = {n}")]);
            n - 1
        },
        ends,
    );
    case(
        &b,
        "last-day",
        |d| {
            let day: String = with_db(d, |p| {
                Box::pin(async move {
                    sqlx::query("SELECT MAX(date) FROM eod_snapshots")
                        .fetch_one(p)
                        .await
                        .unwrap()
                        .get(0)
                })
            });
            sql(d, vec![format!("DELETE FROM audit WHERE at >= '{day}'")]);
            head_of(d)
        },
        ends,
    );
    case(
        &b,
        "every-row",
        |d| {
            sql(d, vec!["DELETE FROM audit".to_string()]);
            0
        },
        ends,
    );

    // The attacker recomputes the SHA-256 chain after the edit: with a key the
    // first recomputed row is unkeyed and caught; without, the checkpoint's
    // head no longer matches.
    let recomputed = |s: i64| {
        if keyed {
            format!("sequence {s}: unkeyed (SHA-256) row")
        } else {
            format!("row {}", keel_store::grouped(n as u64))
        }
    };
    case(
        &b,
        "recomputed-after-edit",
        |d| {
            let s = mid(d, "order_filled");
            sql(
                d,
                vec![format!(
            "UPDATE audit SET payload = replace(payload, '\"price\":\"', '\"price\":\"1') WHERE seq = {s}"
        )],
            );
            with_db(d, move |p| Box::pin(recompute_chain(p, s)));
            s
        },
        recomputed,
    );
    case(
        &b,
        "recomputed-after-renumbered-deletion",
        |d| {
            let s = mid(d, "order_filled");
            let last = head_of(d);
            let mut stmts = vec![format!("DELETE FROM audit WHERE seq = {s}")];
            for k in (s + 1)..=last {
                stmts.push(format!("UPDATE audit SET seq = {} WHERE seq = {k}", k - 1));
            }
            sql(d, stmts);
            with_db(d, move |p| Box::pin(recompute_chain(p, s)));
            s
        },
        move |s| {
            if keyed {
                format!("sequence {s}: unkeyed (SHA-256) row")
            } else {
                format!(
                    "the log ends at {}; the checkpoint of",
                    keel_store::grouped(n as u64 - 1)
                )
            }
        },
    );
    // A forged fill appended with a valid SHA-256 link, and the projections
    // updated to match it (positions, cash, fills), as a careful attacker would.
    case(
        &b,
        "forged-fill",
        |d| {
            let (seq, prev, cash): (i64, String, String) = with_db(d, |p| {
                Box::pin(async move {
                    let r = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                        .fetch_one(p)
                        .await
                        .unwrap();
                    let c: String = sqlx::query("SELECT amount FROM cash WHERE id = 1")
                        .fetch_one(p)
                        .await
                        .unwrap()
                        .get(0);
                    (r.get(0), r.get(1), c)
                })
            });
            let seq = seq + 1;
            let payload = "{\"kind\":\"order_filled\",\"client_order_id\":\"forged\",\"fill_id\":\"forged-1\",\"symbol\":\"ZZZZ\",\
             \"side\":\"buy\",\"qty\":\"10\",\"price\":\"100\",\"at\":\"2030-01-02T15:00:00Z\"}".to_string();
            let ev: keel_domain::Event = serde_json::from_str(&payload).expect("forged payload is an event");
            let payload = serde_json::to_string(&ev).unwrap();
            let id = ev.event_id();
            let at = keel_store::fmt_time(ev.at());
            let h = chain_hash(&prev, seq as u64, &at, "order_filled", &id, &payload);
            let cash = (Decimal::from_str(&cash).unwrap() - Decimal::from(1000)).normalize();
            sql(d, vec![
            format!("INSERT INTO audit (seq, at, kind, event_id, payload, prev_hash, hash) VALUES \
                     ({seq}, '{at}', 'order_filled', '{id}', '{}', '{prev}', '{h}')", payload.replace('\'', "''")),
            format!("UPDATE cash SET amount = '{cash}' WHERE id = 1"),
            "INSERT INTO positions (symbol, qty, avg_cost) VALUES ('ZZZZ', '10', '100')".to_string(),
            format!("INSERT INTO fills (fill_id, client_order_id, symbol, side, qty, price, at, slippage_bps) VALUES \
                     ('forged-1', 'forged', 'ZZZZ', 'buy', '10', '100', '{at}', NULL)"),
        ]);
            seq
        },
        move |s| {
            if keyed {
                format!("sequence {s}: unkeyed (SHA-256) row")
            } else {
                format!("rows {s}..{s} come after the newest checkpoint")
            }
        },
    );
    case(
        &b,
        "kill-switch-table",
        |d| {
            let o = run(keel(
                keyed,
                &["kill", "--reason", "battery", "--at", &b.at, "--data-dir"],
            )
            .arg(d));
            assert!(o.status.success(), "kill: {}", text(&o));
            sql(
                d,
                vec!["UPDATE kill_switch SET engaged = 0, reason = 'released by hand'".to_string()],
            );
            0
        },
        |_| "kill_switch 1: engaged is \"0\" in the table, \"1\" by the log".to_string(),
    );
    case(
        &b,
        "cash-table",
        |d| {
            sql(
                d,
                vec!["UPDATE cash SET amount = '99999999' WHERE id = 1".to_string()],
            );
            0
        },
        |_| "cash 1: amount is \"99999999\" in the table".to_string(),
    );
    case(
        &b,
        "positions-table",
        |d| {
            sql(
                d,
                vec![
                    "UPDATE positions SET qty = '100000' WHERE symbol = (SELECT MIN(symbol) FROM positions)"
                        .to_string(),
                ],
            );
            0
        },
        |_| "positions ".to_string(),
    );

    // A deleted keel.db beside checkpoints is refused, not recreated.
    let d = scratch(&b, "deleted-db");
    for f in ["keel.db", "keel.db-wal", "keel.db-shm"] {
        let _ = std::fs::remove_file(d.join(f));
    }
    let v = verify(&b, &d);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    assert!(text(&v).contains("holds checkpoints"), "{}", text(&v));
    let c = cycle(&b, &d);
    assert_eq!(c.status.code(), Some(1), "{}", text(&c));
    assert!(
        !d.join("keel.db").exists(),
        "the cycle recreated an empty keel.db"
    );
}

#[test]
fn tamper_battery_unkeyed() {
    battery(false);
}

#[test]
fn tamper_battery_keyed() {
    battery(true);
}
