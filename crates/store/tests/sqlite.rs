//! SQLite store: projections, idempotency, tamper detection, stickiness, durability.

mod common;

use common::*;
use keel_domain::Side;
use keel_store::{SqliteStore, Store};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

async fn file_store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("keel.db"))
        .await
        .expect("open store")
}

/// A second, raw connection to the file: the "attacker" editing the database behind keel's back.
async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("raw connection")
}

async fn raw_exec(path: &Path, sqls: &[&str]) {
    let mut c = raw(path).await;
    for sql in sqls {
        sqlx::query(sql).execute(&mut c).await.expect(sql);
    }
    c.close().await.expect("close raw connection");
}

#[tokio::test]
async fn scenario_projections_in_memory() {
    let s = SqliteStore::open_in_memory().await.expect("open");
    let r = s.append_batch(&scenario()).await.expect("append");
    assert!(r.iter().all(Option::is_some));
    check_scenario(&s).await;
    assert!(s.verify_chain().await.expect("verify").is_ok());
}

#[tokio::test]
async fn scenario_one_event_at_a_time_matches_batch() {
    let a = SqliteStore::open_in_memory().await.expect("open");
    let b = SqliteStore::open_in_memory().await.expect("open");
    a.append_batch(&scenario()).await.expect("append");
    for (i, ev) in scenario().iter().enumerate() {
        assert_eq!(b.append(ev).await.expect("append"), Some(i as u64 + 1));
    }
    assert_eq!(
        a.audit_head().await.expect("head"),
        b.audit_head().await.expect("head")
    );
    assert_eq!(
        a.dump_projections().await.expect("dump"),
        b.dump_projections().await.expect("dump")
    );
}

#[tokio::test]
async fn idempotent_replay() {
    let s = SqliteStore::open_in_memory().await.expect("open");
    check_idempotent_replay(&s, &s).await;
}

#[tokio::test]
async fn batches_are_atomic_and_skip_duplicates() {
    let s = SqliteStore::open_in_memory().await.expect("open");
    check_batch_semantics(&s, &s).await;
}

#[tokio::test]
async fn money_is_exact() {
    let s = SqliteStore::open_in_memory().await.expect("open");
    check_exact_money(&s).await;
}

#[tokio::test]
async fn rebuild_equals_incremental() {
    let s = SqliteStore::open_in_memory().await.expect("open");
    check_rebuild(&s, &s).await;
}

#[tokio::test]
async fn kill_switch_semantics() {
    let s = SqliteStore::open_in_memory().await.expect("open");
    check_kill_switch(&s).await;
}

#[tokio::test]
async fn works_as_arc_dyn_store() {
    let s: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.expect("open"));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                for j in 0..10 {
                    s.append(&fill("", &format!("t{i}-{j}"), "AAPL", Side::Buy, "1", "10", j))
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    // Concurrent writers were serialised: 80 consecutive seqs, a valid chain.
    assert_eq!(s.audit_head().await.expect("head").0, 80);
    let report = s.verify_chain().await.expect("verify");
    assert_eq!((report.events, report.first_bad), (80, None));
    assert_eq!(s.positions().await.expect("positions")[&sym("AAPL")].qty, d("80"));
}

#[tokio::test]
async fn empty_store() {
    let s = SqliteStore::open_in_memory().await.expect("open");
    assert_eq!(
        s.audit_head().await.expect("head"),
        (0, keel_store::GENESIS_HASH.to_string())
    );
    assert_eq!(
        s.append_batch(&[]).await.expect("empty batch"),
        Vec::<Option<u64>>::new()
    );
    assert_eq!(s.cash().await.expect("cash"), d("0"));
    assert!(s.account().await.expect("account").is_none());
    assert!(s.positions().await.expect("positions").is_empty());
    let r = s.verify_chain().await.expect("verify");
    assert_eq!((r.events, r.first_bad), (0, None));
}

// ---- tamper detection -------------------------------------------------------

/// A fresh file store holding the scenario (22 events).
async fn tamper_fixture() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = file_store(&dir).await;
    s.append_batch(&scenario()).await.expect("append");
    assert!(s.verify_chain().await.expect("verify").is_ok());
    (dir, s)
}

fn db(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("keel.db")
}

#[tokio::test]
async fn edited_payload_is_named() {
    for seq in [1u64, 10, 22] {
        let (dir, s) = tamper_fixture().await;
        let sql =
            format!("UPDATE audit SET payload = replace(payload, '\"at\"', '\"at\" ') WHERE seq = {seq}");
        raw_exec(&db(&dir), &[&sql]).await;
        let r = s.verify_chain().await.expect("verify");
        let (bad, why) = r.first_bad.expect("tampering detected");
        assert_eq!(bad, seq, "{why}");
        assert!(why.contains("hash mismatch"), "{why}");
        assert_eq!(r.events, seq);
    }
}

#[tokio::test]
async fn edited_price_is_named_even_if_json_stays_valid() {
    let (dir, s) = tamper_fixture().await;
    // seq 10 is fill f2 at 100.25: make it look cheaper.
    raw_exec(
        &db(&dir),
        &["UPDATE audit SET payload = replace(payload, '100.25', '100.05') WHERE seq = 10"],
    )
    .await;
    let page = s.audit_page(9, 1).await.expect("page");
    assert!(page[0].payload.contains("100.05"), "the edit happened");
    assert_eq!(
        s.verify_chain().await.expect("verify").first_bad.map(|b| b.0),
        Some(10)
    );
}

#[tokio::test]
async fn edited_then_rehashed_row_breaks_the_next_link() {
    let (dir, s) = tamper_fixture().await;
    // A careful forger fixes row 7's own hash; row 8 still links to the old one.
    let row = &s.audit_page(6, 1).await.expect("page")[0];
    let payload = row.payload.replace("B1", "B9");
    let hash = keel_store::chain_hash(&row.prev_hash, 7, &row.at, &row.kind, &row.event_id, &payload);
    let sql = format!("UPDATE audit SET payload = '{payload}', hash = '{hash}' WHERE seq = 7");
    raw_exec(&db(&dir), &[&sql]).await;
    let (bad, why) = s
        .verify_chain()
        .await
        .expect("verify")
        .first_bad
        .expect("detected");
    assert_eq!(bad, 8, "{why}");
    assert!(why.contains("prev_hash mismatch"), "{why}");
}

#[tokio::test]
async fn removed_row_is_named() {
    for seq in [1u64, 5, 21] {
        let (dir, s) = tamper_fixture().await;
        raw_exec(&db(&dir), &[&format!("DELETE FROM audit WHERE seq = {seq}")]).await;
        let (bad, why) = s
            .verify_chain()
            .await
            .expect("verify")
            .first_bad
            .expect("detected");
        assert_eq!(bad, seq, "{why}");
        assert!(why.contains("seq gap"), "{why}");
    }
}

#[tokio::test]
async fn removed_last_row_is_named_by_the_writer() {
    let (dir, s) = tamper_fixture().await;
    raw_exec(&db(&dir), &["DELETE FROM audit WHERE seq = 22"]).await;
    let (bad, why) = s
        .verify_chain()
        .await
        .expect("verify")
        .first_bad
        .expect("detected");
    assert_eq!(bad, 22, "{why}");
    assert!(why.contains("removed from the end"), "{why}");
}

#[tokio::test]
async fn swapped_rows_are_named() {
    for (a, b) in [(5u64, 6u64), (1, 2), (12, 20)] {
        let (dir, s) = tamper_fixture().await;
        let sqls = [
            format!("UPDATE audit SET seq = -1 WHERE seq = {a}"),
            format!("UPDATE audit SET seq = {a} WHERE seq = {b}"),
            format!("UPDATE audit SET seq = {b} WHERE seq = -1"),
        ];
        raw_exec(&db(&dir), &sqls.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let (bad, why) = s
            .verify_chain()
            .await
            .expect("verify")
            .first_bad
            .expect("detected");
        assert_eq!(bad, a, "{why}");
        assert!(why.contains("prev_hash mismatch"), "{why}");
    }
}

// ---- restarts ----------------------------------------------------------------

#[tokio::test]
async fn kill_switch_is_sticky_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = file_store(&dir).await;
        s.append(&kill("drawdown 5%", 1)).await.expect("engage");
        s.close().await;
    }
    for _ in 0..2 {
        let s = file_store(&dir).await;
        let k = s
            .kill_switch()
            .await
            .expect("kill")
            .expect("still engaged after restart");
        assert_eq!(k.reason, "drawdown 5%");
        // Replaying the same engagement (e.g. the flag file seen again) is a no-op.
        assert_eq!(s.append(&kill("drawdown 5%", 1)).await.expect("replay"), None);
        // Anything but a release leaves it engaged.
        s.append_batch(&scenario()[..3]).await.expect("append");
        s.close().await;
    }
    {
        let s = file_store(&dir).await;
        assert!(s.kill_switch().await.expect("kill").is_some());
        s.append(&resume("operator checked", 2)).await.expect("release");
        s.close().await;
    }
    let s = file_store(&dir).await;
    assert!(s.kill_switch().await.expect("kill").is_none());
    // Rebuilding from the log agrees.
    s.rebuild_projections().await.expect("rebuild");
    assert!(s.kill_switch().await.expect("kill").is_none());
}

#[tokio::test]
async fn reopen_after_drop_sees_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (head, dump) = {
        let s = file_store(&dir).await;
        s.append_batch(&scenario()).await.expect("append");
        // Dropped without close(): no orderly shutdown.
        (
            s.audit_head().await.expect("head"),
            s.dump_projections().await.expect("dump"),
        )
    };
    let s = file_store(&dir).await;
    assert_eq!(s.audit_head().await.expect("head"), head);
    assert_eq!(s.dump_projections().await.expect("dump"), dump);
    check_scenario(&s).await;
    // The chain continues where it stopped.
    let next = s
        .append(&resume("after restart", 100))
        .await
        .expect("append after reopen");
    assert_eq!(next, Some(head.0 + 1));
    let page = s.audit_page(head.0, 10).await.expect("page");
    assert_eq!(page[0].prev_hash, head.1);
    assert!(s.verify_chain().await.expect("verify").is_ok());
}

#[tokio::test]
async fn open_creates_missing_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a/b/keel.db");
    let s = SqliteStore::open(&path).await.expect("open");
    s.append(&account("1")).await.expect("append");
    assert!(path.exists());
}

#[tokio::test]
async fn open_reports_the_path_on_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory where the file should be.
    let path = dir.path().join("is-a-dir");
    std::fs::create_dir(&path).expect("mkdir");
    let err = SqliteStore::open(&path)
        .await
        .err()
        .expect("cannot open a directory");
    assert!(err.to_string().contains("is-a-dir"), "{err}");
}

#[tokio::test]
async fn pragmas_are_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = file_store(&dir).await;
    s.append(&account("1")).await.expect("append");
    let mut c = raw(&db(&dir)).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    drop(c);
    // synchronous is per connection: check it on one of the store's own.
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(s.pool())
        .await
        .expect("pragma");
    assert_eq!(sync, 2, "FULL");
}

#[tokio::test]
async fn two_writers_on_one_file_keep_one_chain() {
    // Two stores on one file stand for two processes (`keel run` and `keel kill`):
    // each caches its head, and the seq primary key makes the stale one retry.
    let dir = tempfile::tempdir().expect("tempdir");
    let a = file_store(&dir).await;
    let b = file_store(&dir).await;
    a.append_batch(&scenario()[..3]).await.expect("a");
    assert_eq!(b.append(&kill("from the CLI", 5)).await.expect("b"), Some(4));
    assert_eq!(
        a.append(&resume("from the API", 6)).await.expect("a again"),
        Some(5)
    );
    assert_eq!(b.append(&scenario()[0]).await.expect("dup"), None);
    assert!(a.kill_switch().await.expect("kill").is_none());
    let r = b.verify_chain().await.expect("verify");
    assert_eq!((r.events, r.first_bad), (5, None));
}

// ---- crash (kill -9) ------------------------------------------------------------

/// Child half of `acknowledged_appends_survive_kill_9`: appends until killed,
/// printing each acknowledged seq. Does nothing when run normally.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var("KEEL_STORE_CRASH_CHILD") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let s = SqliteStore::open(&path).await.expect("open");
        s.append(&account("1000000")).await.expect("account");
        for i in 0i64.. {
            let side = if i % 3 == 2 { Side::Sell } else { Side::Buy };
            let batch = [
                intent(&format!("o{i}"), "c", "AAPL", side, "1", "10", i),
                fill(&format!("o{i}"), &format!("f{i}"), "AAPL", side, "1", "10.01", i),
            ];
            let r = s.append_batch(&batch).await.expect("append");
            println!("acked {}", r[1].expect("new event"));
        }
    });
}

#[tokio::test]
async fn acknowledged_appends_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db(&dir);
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("KEEL_STORE_CRASH_CHILD", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut last_acked = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        if let Some(n) = line.strip_prefix("acked ") {
            last_acked = n.trim().parse().expect("seq");
            if last_acked >= 301 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL the child mid-append");
    child.wait().expect("reap child");
    assert!(last_acked >= 301, "child never got going");

    let s = SqliteStore::open(&path).await.expect("reopen after kill -9");
    let (head, _) = s.audit_head().await.expect("head");
    assert!(
        head >= last_acked,
        "acknowledged seq {last_acked} lost; head is {head}"
    );
    let report = s.verify_chain().await.expect("verify");
    assert_eq!((report.events, report.first_bad), (head, None));
    // Batches are atomic: the log holds whole (intent, fill) pairs only.
    assert_eq!(head % 2, 1, "account + pairs");
    let dump = s.dump_projections().await.expect("dump");
    s.rebuild_projections().await.expect("rebuild");
    assert_eq!(s.dump_projections().await.expect("dump"), dump);
    // Exactly one order per pair and none sent twice.
    let pairs = (head - 1) / 2;
    let orders = s.orders(&Default::default()).await.expect("orders");
    assert_eq!(orders.len() as u64, pairs);
}
