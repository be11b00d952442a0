//! Keyed chain, projections proven by replay, the kill switch read from the
//! log, rekeying and anchors — on SQLite, and on PostgreSQL when
//! `KEEL_TEST_PG_URL` is set.

mod common;

use common::*;
use keel_store::{AuditKey, Checkpoint, Conn, SqlStore, SqliteStore, Store};
use sqlx::Database;

fn key(s: &str) -> Option<AuditKey> {
    Some(AuditKey::new(s.as_bytes()).expect("key"))
}

/// Runs `sql` on the store's own pool (a tamper simulation).
async fn tamper<DB>(s: &SqlStore<DB>, sql: &str)
where
    DB: Database,
    DB::Connection: Conn,
{
    let mut c = s.pool().acquire().await.expect("conn");
    Conn::exec(&mut *c, sql, &[]).await.expect(sql);
}

async fn check_all<DB>(fresh: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = SqlStore<DB>>>>)
where
    DB: Database,
    DB::Connection: Conn,
{
    // Keyed: verifies under its key, not under another key, not without one.
    let s = fresh().await.with_audit_key(key("first-key-0123456789"));
    s.append_batch(&scenario()).await.expect("append");
    let (n, head) = s.audit_head().await.expect("head");
    assert!(head.starts_with("v2:"), "{head}");
    let r = s.verify_log(None).await.expect("verify");
    assert!(r.is_ok() && r.keyed && r.events == n, "{:?}", r.failures());
    let s = s.with_audit_key(key("other-key-0123456789"));
    assert_eq!(
        s.verify_log(None).await.expect("verify").chain.map(|c| c.0),
        Some(1)
    );
    let s = s.with_audit_key(None);
    let (seq, why) = s.verify_chain().await.expect("verify").first_bad.expect("no key");
    assert!(seq == 1 && why.contains("no audit key"), "{why}");
    let s = s.with_audit_key(key("first-key-0123456789"));

    // An engaged kill switch cannot be released by editing its table.
    s.append(&resume("checked", 49)).await.expect("resume");
    assert!(s.kill_switch().await.expect("kill").is_none());
    s.append(&kill("manual", 50)).await.expect("kill");
    tamper(&s, "UPDATE kill_switch SET engaged = 0").await;
    let k = s.kill_switch().await.expect("kill").expect("still engaged");
    assert_eq!(k.reason, "manual");
    let r = s.verify_log(None).await.expect("verify");
    assert!(
        r.projections
            .iter()
            .any(|p| p.starts_with("kill_switch 1: engaged is \"0\" in the table")),
        "{:?}",
        r.projections
    );
    // A forged release row (kind edited) does not verify, and the switch stays engaged.
    let (last, _) = s.audit_head().await.expect("head");
    tamper(
        &s,
        &format!("UPDATE audit SET kind = 'kill_switch_released' WHERE seq = {last}"),
    )
    .await;
    let k = s
        .kill_switch()
        .await
        .expect("kill")
        .expect("a forged release releases nothing");
    assert!(k.reason.contains("does not verify"), "{}", k.reason);
    assert_eq!(
        s.verify_log(None).await.expect("verify").chain.map(|c| c.0),
        Some(last)
    );

    // Anchors: a checkpoint beyond the head, or with another hash, is named.
    let s = fresh().await;
    s.append_batch(&scenario()).await.expect("append");
    let (n, head) = s.audit_head().await.expect("head");
    let cp = Checkpoint::new(None, "a", n + 5, "x", t(0));
    let r = s.verify_log(Some(&cp)).await.expect("verify");
    assert!(
        r.anchor
            .as_deref()
            .is_some_and(|a| a.contains(&format!("the log ends at {n}"))),
        "{r:?}"
    );
    let cp = Checkpoint::new(None, "a", n, "not-the-head", t(0));
    assert!(s.verify_log(Some(&cp)).await.expect("verify").anchor.is_some());
    let cp = Checkpoint::new(None, "a", n, &head, t(0));
    let r = s.verify_log(Some(&cp)).await.expect("verify");
    assert!(r.is_ok() && r.unanchored.is_none(), "{:?}", r.failures());

    // Rekey: the unkeyed log becomes keyed, projections untouched.
    let before = s.dump_projections().await.expect("dump");
    let s = s.with_audit_key(key("rekey-key-0123456789"));
    assert!(
        !s.verify_chain().await.expect("verify").is_ok(),
        "unkeyed rows refused under a key"
    );
    assert_eq!(s.rekey().await.expect("rekey"), n);
    let r = s.verify_log(None).await.expect("verify");
    assert!(r.is_ok() && r.keyed, "{:?}", r.failures());
    assert_eq!(s.dump_projections().await.expect("dump"), before);
    // New appends chain on under the key.
    s.append(&kill("after rekey", 60)).await.expect("append");
    assert!(s.verify_log(None).await.expect("verify").is_ok());
    assert!(s.rekey().await.is_err(), "a keyed log is not rekeyed twice");
}

#[tokio::test]
async fn sqlite_keyed_chain_projections_anchors_rekey() {
    check_all(|| Box::pin(async { SqliteStore::open_in_memory().await.expect("open") })).await;
}

#[tokio::test]
async fn pg_keyed_chain_projections_anchors_rekey() {
    use sqlx::Connection;
    let Ok(url) = std::env::var("KEEL_TEST_PG_URL") else {
        println!("skipped: no PostgreSQL (KEEL_TEST_PG_URL unset)");
        return;
    };
    let Ok(mut admin) = sqlx::PgConnection::connect(&url).await else {
        println!("skipped: no PostgreSQL");
        return;
    };
    let name = format!("keel_tamper_verify_{}", std::process::id());
    let mut schemas = Vec::new();
    for i in 0..3 {
        let s = format!("{name}_{i}");
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
            .execute(&mut admin)
            .await
            .expect("drop");
        sqlx::query(&format!("CREATE SCHEMA {s}"))
            .execute(&mut admin)
            .await
            .expect("create");
        schemas.push(s);
    }
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (u, sc) = (url.clone(), schemas.clone());
    check_all(move || {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (u, s) = (u.clone(), sc[i].clone());
        Box::pin(async move {
            keel_store::PgStore::connect_schema(&u, &s)
                .await
                .expect("connect")
        })
    })
    .await;
    for s in schemas {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
            .execute(&mut admin)
            .await;
    }
}

/// Start-up's partial replay from a verified state: taken when the state
/// fits the log, and every tamper a full replay catches is still caught.
async fn check_from_state<DB>(s: SqlStore<DB>)
where
    DB: Database,
    DB::Connection: Conn,
{
    let s = s.with_audit_key(key("state-key-0123456789"));
    let evs = scenario();
    s.append_batch(&evs[..12]).await.expect("append");
    let (r, state) = s.verify_log_from(None, None).await.expect("verify");
    assert!(r.is_ok(), "{:?}", r.failures());
    let state = state.expect("state");
    assert_eq!(state.seq, 12);
    s.append_batch(&evs[12..]).await.expect("append");
    let (n, head) = s.audit_head().await.expect("head");
    let cp = Checkpoint::new(key("state-key-0123456789").as_ref(), "a", n, &head, t(0));
    let (r, next) = s.verify_log_from(Some(&cp), Some(&state)).await.expect("verify");
    assert!(r.is_ok(), "{:?}", r.failures());
    assert_eq!(r.replayed_from, 13, "the rows after the state only");
    let next = next.expect("state");
    assert_eq!((next.seq, next.head.as_str()), (n, head.as_str()));
    // A checkpoint carries the state over the rows since, each checked first.
    let k = key("state-key-0123456789");
    let after = s.audit_page(state.seq, 1000).await.expect("rows");
    let carried = state.continue_with(k.as_ref(), &after).expect("carried");
    assert_eq!(&carried, &next);
    let mut forged = after.clone();
    forged[1].payload.push(' ');
    let e = state.continue_with(k.as_ref(), &forged).unwrap_err();
    assert!(
        e.starts_with(&format!("row {}: keyed hash mismatch", forged[1].seq)),
        "{e}"
    );
    let e = state.continue_with(k.as_ref(), &after[1..]).unwrap_err();
    assert!(e.contains("seq gap"), "{e}");
    // From the newest state nothing is left to replay.
    let (r, _) = s.verify_log_from(Some(&cp), Some(&next)).await.expect("verify");
    assert!(r.is_ok() && r.replayed_from == n + 1, "{:?}", r.failures());
    // A state under another key (or none) is not used, and nothing is lost by that.
    let s = s.with_audit_key(None);
    let (r, _) = s.verify_log_from(None, Some(&next)).await.expect("verify");
    assert_eq!(r.replayed_from, 1);
    let s = s.with_audit_key(key("state-key-0123456789"));

    // Projection edits, in rows the state holds and in rows it does not.
    for (sql, named) in [
        (
            "UPDATE positions SET qty = '999' WHERE symbol = 'AAPL'",
            "positions AAPL: qty",
        ),
        ("UPDATE cash SET amount = '1000000'", "cash 1: amount"),
        (
            "UPDATE fills SET price = '1.00' WHERE fill_id = 'f1'",
            "fills f1: price",
        ),
        (
            "DELETE FROM orders WHERE client_order_id = 'o-msft'",
            "orders o-msft: missing",
        ),
        ("UPDATE kill_switch SET engaged = 0", "kill_switch 1: engaged"),
        (
            "INSERT INTO guard_decisions (cycle_id, decisions) VALUES ('forged', '{}')",
            "guard_decisions forged: row exists",
        ),
    ] {
        let before = s.dump_projections().await.expect("dump");
        tamper(&s, sql).await;
        let (r, st) = s.verify_log_from(Some(&cp), Some(&next)).await.expect("verify");
        assert!(st.is_none(), "{sql}: a tampered store yields no state");
        assert!(
            r.projections.iter().any(|p| p.starts_with(named)),
            "{sql}: {:?}",
            r.projections
        );
        s.rebuild_projections().await.expect("rebuild");
        assert_eq!(s.dump_projections().await.expect("dump"), before);
    }

    // A payload edited in the middle of the log, before the state's row.
    tamper(
        &s,
        "UPDATE audit SET payload = replace(payload, '100.10', '100.11') WHERE seq = 9",
    )
    .await;
    let (r, st) = s.verify_log_from(Some(&cp), Some(&next)).await.expect("verify");
    assert!(st.is_none());
    assert_eq!(r.chain.map(|c| c.0), Some(9), "the edited row is named");
}

#[tokio::test]
async fn sqlite_file_replay_from_verified_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    check_from_state(SqliteStore::open(dir.path().join("keel.db")).await.expect("open")).await;
}

#[tokio::test]
async fn sqlite_memory_replay_from_verified_state() {
    check_from_state(SqliteStore::open_in_memory().await.expect("open")).await;
}

#[tokio::test]
async fn pg_replay_from_verified_state() {
    use sqlx::Connection;
    let Ok(url) = std::env::var("KEEL_TEST_PG_URL") else {
        println!("skipped: no PostgreSQL (KEEL_TEST_PG_URL unset)");
        return;
    };
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("PostgreSQL");
    let schema = format!("keel_state_verify_{}", std::process::id());
    for sql in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
    ] {
        sqlx::query(&sql).execute(&mut admin).await.expect("schema");
    }
    check_from_state(
        keel_store::PgStore::connect_schema(&url, &schema)
            .await
            .expect("connect"),
    )
    .await;
    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut admin)
        .await;
}

/// A row whose hash is right but whose payload is not the event it names
/// (only keel's own bug, or someone recomputing an unkeyed chain, can make
/// one) is named by the full replay's decoding stage, at that row, on the
/// raw scan of a store file as on the sqlx scan.
#[tokio::test]
async fn a_recomputed_chain_over_a_foreign_payload_is_named_at_its_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = SqliteStore::open(dir.path().join("keel.db")).await.expect("open");
    let memory = SqliteStore::open_in_memory().await.expect("open");
    for s in [&file, &memory] {
        s.append_batch(&scenario()).await.expect("append");
        let rows = s.audit_page(0, 1000).await.expect("rows");
        let mut prev = keel_store::GENESIS_HASH.to_string();
        for r in &rows {
            let payload = if r.seq == 7 {
                r.payload.replace("order_accepted", "order_closed")
            } else {
                r.payload.clone()
            };
            let h = keel_store::chain_hash(&prev, r.seq, &r.at, &r.kind, &r.event_id, &payload);
            tamper(
                s,
                &format!(
                    "UPDATE audit SET payload = '{}', prev_hash = '{prev}', hash = '{h}' WHERE seq = {}",
                    payload.replace('\'', "''"),
                    r.seq
                ),
            )
            .await;
            prev = h;
        }
        let r = s.verify_log(None).await.expect("verify");
        let (seq, why) = r.chain.clone().expect("named");
        assert_eq!(seq, 7, "{why}");
        assert!(why.contains("payload"), "{why}");
        assert_eq!(r.events, 7);
    }
}
