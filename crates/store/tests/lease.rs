//! Single-writer leases, fencing tokens and verbatim log import, held to the
//! same behaviour on SQLite (always) and PostgreSQL (with `KEEL_TEST_PG_URL`;
//! each PostgreSQL test works in its own fresh schema and drops it).
//!
//! Two store handles on one database stand for two processes.

mod common;

use common::*;
use keel_store::{
    Fence, FencedStore, Lease, LeaseAttempt, LeaseStore, LeaseTerms, PgStore, SqliteStore, Store, StoreError,
};
use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ACCT: &str = "PA-TEST";

fn terms(ttl_ms: u64, margin_ms: u64) -> LeaseTerms {
    LeaseTerms {
        ttl: Duration::from_millis(ttl_ms),
        margin: Duration::from_millis(margin_ms),
    }
}

async fn acquire(s: &Arc<dyn LeaseStore>, holder: &str, t: LeaseTerms) -> Arc<Lease> {
    match Lease::acquire(s.clone(), ACCT, holder, t).await.expect("acquire") {
        LeaseAttempt::Acquired(l) => l,
        LeaseAttempt::Busy(row) => panic!("{holder}: lease busy: {row:?}"),
    }
}

async fn busy(s: &Arc<dyn LeaseStore>, holder: &str, t: LeaseTerms) -> keel_store::LeaseRow {
    match Lease::acquire(s.clone(), ACCT, holder, t).await.expect("acquire") {
        LeaseAttempt::Acquired(l) => panic!("{holder}: acquired token {} but it should be busy", l.token()),
        LeaseAttempt::Busy(row) => row,
    }
}

/// Acquire, exclusion, fenced writes, release and take-over with a new token.
async fn check_lease_and_fencing(a: Arc<dyn LeaseStore>, b: Arc<dyn LeaseStore>) {
    let t = terms(60_000, 5_000);
    let la = acquire(&a, "proc-a", t).await;
    assert_eq!(la.token(), 1);
    assert!(la.is_valid());
    let row = busy(&b, "proc-b", t).await;
    assert_eq!((row.holder.as_str(), row.token), ("proc-a", 1));
    assert!(row.expires_in_ms > 50_000, "{row:?}");

    let fa: FencedStore = la.fenced_store();
    let evs = scenario();
    fa.append_batch(&evs[..5]).await.expect("holder writes");
    la.renew().await.expect("renew");

    // The holder gives the lease up; b takes it over with a higher token.
    assert!(la.release().await.expect("release"));
    assert!(!la.is_valid());
    let lb = acquire(&b, "proc-b", t).await;
    assert_eq!(lb.token(), 2, "every acquisition increments the token");

    // a's stale token is refused by the database, nothing is written.
    let head = b.audit_head().await.expect("head");
    let stale = Fence {
        account_id: ACCT.into(),
        token: 1,
    };
    match a.append_batch_fenced(&evs[5..7], &stale).await {
        Err(StoreError::Fenced { token, why, .. }) => {
            assert_eq!(token, 1);
            assert!(why.contains("token 2"), "{why}");
            assert!(why.contains("proc-b"), "{why}");
        }
        other => panic!("stale write not fenced: {other:?}"),
    }
    // Through the FencedStore too, which then counts its lease lost.
    let err = fa.append(&evs[5]).await.expect_err("fenced");
    assert!(err.is_fenced(), "{err}");
    assert_eq!(b.audit_head().await.expect("head"), head, "nothing written");
    // A stale renewal is refused as well.
    assert!(!a.renew_lease(&stale, "proc-a", 60_000).await.expect("renew"));
    assert!(!a.release_lease(&stale).await.expect("release"));

    // The new holder writes on; the chain is one chain.
    let fb = lb.fenced_store();
    let r = fb.append_batch(&evs[5..]).await.expect("new holder writes");
    assert!(r.iter().all(Option::is_some));
    check_scenario(&fb).await;
    assert!(a.verify_chain().await.expect("verify").is_ok());

    // Unfenced appends (operator commands) still work beside the lease.
    a.append(&kill("operator", 5_000)).await.expect("unfenced");
    assert!(fb.kill_switch().await.expect("kill").is_some());
}

/// Expiry by the database's clock, refused renewal, and the local deadline.
async fn check_expiry(a: Arc<dyn LeaseStore>, b: Arc<dyn LeaseStore>) {
    let la = acquire(&a, "proc-a", terms(3_000, 2_000)).await;
    let fa = la.fenced_store();
    fa.append(&account("1000")).await.expect("write while held");
    // The local deadline (ttl − margin) passes before the database's expiry;
    // the windows are a second or more so a loaded CI machine cannot skip one.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let e = la.check().expect_err("local deadline passed");
    assert!(matches!(e, StoreError::LeaseLost { .. }), "{e}");
    assert!(la.renew().await.is_err(), "a lost lease is not renewed");
    // Still unexpired in the database: b must wait.
    busy(&b, "proc-b", terms(3_000, 2_000)).await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    // Expired now: the database refuses a's writes even before anyone takes over.
    let e = fa.append(&target_set("ts-late", 10)).await.expect_err("expired");
    match &e {
        StoreError::Fenced { why, .. } => assert!(why.contains("expired"), "{why}"),
        other => panic!("{other}"),
    }
    let lb = acquire(&b, "proc-b", terms(60_000, 1_000)).await;
    assert_eq!(lb.token(), 2);
    assert!(a.lease(ACCT).await.expect("row").expect("row").token == 2);
    lb.fenced_store()
        .append(&target_set("ts-b", 11))
        .await
        .expect("b writes");
}

/// A holder that is a dead process on this host is taken over at once.
async fn check_dead_holder(a: Arc<dyn LeaseStore>, b: Arc<dyn LeaseStore>) {
    let me = keel_store::holder_id();
    let parts: Vec<&str> = me.split('|').collect();
    if parts[..3].contains(&"?") {
        println!("skipped dead-holder check: no /proc identity here");
        return;
    }
    // A pid that certainly existed and is gone: a reaped child.
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("reap");
    let dead = format!("{}|{}|{}|{pid}|deadbeef", parts[0], parts[1], parts[2]);
    assert!(keel_store::holder_is_dead_here(&dead));
    assert!(!keel_store::holder_is_dead_here(&me), "we are alive");
    let long = terms(600_000, 1_000);
    assert!(a
        .try_acquire_lease(ACCT, &dead, 600_000)
        .await
        .expect("fake")
        .is_some());
    let lb = acquire(&b, &me, long).await;
    assert_eq!(lb.token(), 2, "taken over from the dead holder without waiting");
    // A live holder (us) is not taken over by anyone.
    let other_live = format!(
        "{}|{}|{}|{}|cafe",
        parts[0],
        parts[1],
        parts[2],
        std::process::id()
    );
    busy(&a, &other_live, long).await;
}

/// Verbatim import: same chain (same head hash), verifies, same projections;
/// re-import skips; a tampered or disconnected row is refused.
async fn check_import<S: LeaseStore + ?Sized>(src: &dyn Store, dst: &S, dst_import: impl ImportFn) {
    let mut after = 0;
    loop {
        let page = src.audit_page(after, 7).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        dst_import.import(page).await.expect("import");
    }
    assert_eq!(dst.audit_head().await.unwrap(), src.audit_head().await.unwrap());
    assert!(dst.verify_chain().await.unwrap().is_ok());
    // Re-import is a no-op.
    let all = src.audit_page(0, 1_000).await.unwrap();
    assert_eq!(dst_import.import(all.clone()).await.expect("again"), 0);
    // A tampered row that the target does not have yet is refused.
    let mut more = all.clone();
    let mut extra = all.last().unwrap().clone();
    extra.seq += 1;
    extra.prev_hash = all.last().unwrap().hash.clone();
    extra.event_id = "tampered".into();
    more.push(extra);
    let e = dst_import.import(more).await.expect_err("tampered");
    assert!(e.to_string().contains("importing audit row"), "{e}");
    assert_eq!(dst.audit_head().await.unwrap(), src.audit_head().await.unwrap());
}

trait ImportFn {
    fn import(&self, rows: Vec<keel_store::AuditRow>) -> impl Future<Output = Result<u64, StoreError>>;
}

impl ImportFn for &SqliteStore {
    fn import(&self, rows: Vec<keel_store::AuditRow>) -> impl Future<Output = Result<u64, StoreError>> {
        let s = *self;
        async move { s.import_audit(&rows).await }
    }
}

impl ImportFn for &PgStore {
    fn import(&self, rows: Vec<keel_store::AuditRow>) -> impl Future<Output = Result<u64, StoreError>> {
        let s = *self;
        async move { s.import_audit(&rows).await }
    }
}

// ---------------------------------------------------------------- SQLite

async fn sqlite_pair(dir: &tempfile::TempDir) -> (Arc<dyn LeaseStore>, Arc<dyn LeaseStore>) {
    let p = dir.path().join("keel.db");
    let a = SqliteStore::open(&p).await.expect("open a");
    let b = SqliteStore::open(&p).await.expect("open b");
    (Arc::new(a), Arc::new(b))
}

#[tokio::test]
async fn sqlite_lease_and_fencing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = sqlite_pair(&dir).await;
    check_lease_and_fencing(a, b).await;
}

#[tokio::test]
async fn sqlite_lease_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = sqlite_pair(&dir).await;
    check_expiry(a, b).await;
}

#[tokio::test]
async fn sqlite_dead_holder_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = sqlite_pair(&dir).await;
    check_dead_holder(a, b).await;
}

#[tokio::test]
async fn sqlite_import_is_verbatim() {
    let src = SqliteStore::open_in_memory().await.unwrap();
    src.append_batch(&scenario()).await.unwrap();
    let dst = SqliteStore::open_in_memory().await.unwrap();
    check_import(&src, &dst, &dst).await;
    assert_eq!(
        src.dump_projections().await.unwrap(),
        dst.dump_projections().await.unwrap()
    );
}

// ---------------------------------------------------------------- PostgreSQL

struct Schema {
    url: String,
    name: String,
}

impl Schema {
    async fn store(&self) -> PgStore {
        PgStore::connect_schema(&self.url, &self.name)
            .await
            .expect("connect schema")
    }

    async fn drop_schema(self) {
        if let Ok(mut c) = PgConnection::connect(&self.url).await {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name))
                .execute(&mut c)
                .await;
        }
    }
}

/// A fresh schema name (created by `connect_schema`), or `None` without a server.
async fn pg() -> Option<Schema> {
    static N: AtomicU32 = AtomicU32::new(0);
    let Ok(url) = std::env::var("KEEL_TEST_PG_URL") else {
        println!("skipped: no PostgreSQL (KEEL_TEST_PG_URL unset)");
        return None;
    };
    if let Err(e) = PgConnection::connect(&url).await {
        println!("skipped: no PostgreSQL ({e})");
        return None;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // A '-' on purpose: schema names are quoted identifiers.
    let name = format!(
        "keel_lease-{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    Some(Schema { url, name })
}

async fn pg_pair(sc: &Schema) -> (Arc<dyn LeaseStore>, Arc<dyn LeaseStore>) {
    (Arc::new(sc.store().await), Arc::new(sc.store().await))
}

#[tokio::test]
async fn pg_lease_and_fencing() {
    let Some(sc) = pg().await else { return };
    let (a, b) = pg_pair(&sc).await;
    check_lease_and_fencing(a, b).await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_lease_expiry() {
    let Some(sc) = pg().await else { return };
    let (a, b) = pg_pair(&sc).await;
    check_expiry(a, b).await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_dead_holder_taken_over() {
    let Some(sc) = pg().await else { return };
    let (a, b) = pg_pair(&sc).await;
    check_dead_holder(a, b).await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_import_is_verbatim_both_ways() {
    let Some(sc) = pg().await else { return };
    let lite = SqliteStore::open_in_memory().await.unwrap();
    lite.append_batch(&scenario()).await.unwrap();
    let pg = sc.store().await;
    check_import(&lite, &pg, &pg).await;
    let back = SqliteStore::open_in_memory().await.unwrap();
    check_import(&pg, &back, &back).await;
    let want = lite.dump_projections().await.unwrap();
    assert_eq!(pg.dump_projections().await.unwrap(), want);
    assert_eq!(back.dump_projections().await.unwrap(), want);
    pg.close().await;
    sc.drop_schema().await;
}

/// A fenced append racing a take-over: PostgreSQL orders them through the
/// lease row's lock, so the append either commits before the take-over or is
/// refused after it, never in between.
#[tokio::test]
async fn pg_fenced_appends_racing_a_takeover() {
    let Some(sc) = pg().await else { return };
    let (a, b) = pg_pair(&sc).await;
    let la = acquire(&a, "proc-a", terms(300, 100)).await;
    let fa = Arc::new(la.fenced_store());
    fa.append(&account("1000")).await.unwrap();
    let writer = {
        let fa = fa.clone();
        tokio::spawn(async move {
            let mut ok = 0u32;
            for i in 0..10_000 {
                match fa.append(&target_set(&format!("ts-{i}"), i)).await {
                    Ok(_) => ok += 1,
                    Err(e) if e.is_fenced() => return (ok, Some(e)),
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, None)
        })
    };
    let lb = loop {
        match Lease::acquire(b.clone(), ACCT, "proc-b", terms(60_000, 1_000))
            .await
            .unwrap()
        {
            LeaseAttempt::Acquired(l) => break l,
            LeaseAttempt::Busy(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let (ok, err) = writer.await.unwrap();
    assert!(err.is_some(), "the stale writer was fenced after {ok} writes");
    // Everything a wrote is before b's first write; the chain is one chain.
    let n_before = b.audit_head().await.unwrap().0;
    assert_eq!(n_before, u64::from(ok) + 1);
    lb.fenced_store().append(&kill("b", 99_999)).await.unwrap();
    assert!(b.verify_chain().await.unwrap().is_ok());
    sc.drop_schema().await;
}
