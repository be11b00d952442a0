//! PostgreSQL store: the same behaviour as SQLite, against `KEEL_TEST_PG_URL`.
//!
//! Each test works in its own fresh schema (selected with `search_path`), so
//! tests run in parallel and leave nothing behind. Without the variable, or
//! when the server is unreachable, each test prints "skipped: no PostgreSQL".

mod common;

use common::*;
use keel_store::{PgStore, Store};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

/// A private schema on the test server.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url)
            .expect("KEEL_TEST_PG_URL parses")
            .options([("search_path", self.name.as_str())])
    }

    async fn store(&self) -> PgStore {
        PgStore::connect_with(self.options())
            .await
            .expect("connect store")
    }

    async fn raw(&self) -> PgConnection {
        self.options().connect().await.expect("raw connection")
    }

    async fn exec(&self, sqls: &[&str]) {
        let mut c = self.raw().await;
        for sql in sqls {
            sqlx::query(sql).execute(&mut c).await.expect(sql);
        }
        c.close().await.expect("close");
    }

    async fn drop_schema(self) {
        if let Ok(mut c) = PgConnection::connect(&self.url).await {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
                .execute(&mut c)
                .await;
        }
    }
}

/// Creates a fresh schema, or `None` (after printing why) without a server.
async fn schema() -> Option<Schema> {
    static N: AtomicU32 = AtomicU32::new(0);
    let Ok(url) = std::env::var("KEEL_TEST_PG_URL") else {
        println!("skipped: no PostgreSQL (KEEL_TEST_PG_URL unset)");
        return None;
    };
    let mut c = match PgConnection::connect(&url).await {
        Ok(c) => c,
        Err(e) => {
            println!("skipped: no PostgreSQL ({e})");
            return None;
        }
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "keel_test_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    sqlx::query(&format!("CREATE SCHEMA {name}"))
        .execute(&mut c)
        .await
        .expect("create schema");
    Some(Schema { url, name })
}

#[tokio::test]
async fn pg_scenario_projections() {
    let Some(sc) = schema().await else { return };
    let s = sc.store().await;
    s.append_batch(&scenario()).await.expect("append");
    check_scenario(&s).await;
    assert!(s.verify_chain().await.expect("verify").is_ok());
    s.close().await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_matches_sqlite_byte_for_byte() {
    let Some(sc) = schema().await else { return };
    let pg = sc.store().await;
    let lite = keel_store::SqliteStore::open_in_memory().await.expect("sqlite");
    pg.append_batch(&scenario()).await.expect("append pg");
    lite.append_batch(&scenario()).await.expect("append sqlite");
    // Same hashes (the chain is backend-independent) and same projections.
    assert_eq!(
        pg.audit_head().await.expect("head"),
        lite.audit_head().await.expect("head")
    );
    assert_eq!(
        pg.dump_projections().await.expect("dump"),
        lite.dump_projections().await.expect("dump")
    );
    pg.close().await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_idempotent_replay() {
    let Some(sc) = schema().await else { return };
    let s = sc.store().await;
    check_idempotent_replay(&s, &s).await;
    s.close().await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_batches_are_atomic() {
    let Some(sc) = schema().await else { return };
    let s = sc.store().await;
    check_batch_semantics(&s, &s).await;
    s.close().await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_money_is_exact() {
    let Some(sc) = schema().await else { return };
    let s = sc.store().await;
    check_exact_money(&s).await;
    s.close().await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_rebuild_equals_incremental() {
    let Some(sc) = schema().await else { return };
    let s = sc.store().await;
    check_rebuild(&s, &s).await;
    s.close().await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_kill_switch_sticky_across_reconnect() {
    let Some(sc) = schema().await else { return };
    let s = sc.store().await;
    check_kill_switch(&s).await;
    s.close().await;
    let s = sc.store().await;
    assert_eq!(
        s.kill_switch()
            .await
            .expect("kill")
            .expect("still engaged")
            .reason,
        "manual"
    );
    s.append(&resume("ok", 10)).await.expect("release");
    s.close().await;
    let s = sc.store().await;
    assert!(s.kill_switch().await.expect("kill").is_none());
    s.close().await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_tampering_is_named() {
    let Some(sc) = schema().await else { return };
    let s = sc.store().await;
    s.append_batch(&scenario()).await.expect("append");

    sc.exec(&["UPDATE audit SET payload = replace(payload, '100.25', '100.05') WHERE seq = 10"])
        .await;
    let (bad, why) = s
        .verify_chain()
        .await
        .expect("verify")
        .first_bad
        .expect("edit detected");
    assert_eq!(bad, 10, "{why}");
    assert!(why.contains("hash mismatch"), "{why}");
    sc.exec(&["UPDATE audit SET payload = replace(payload, '100.05', '100.25') WHERE seq = 10"])
        .await;
    assert!(s.verify_chain().await.expect("verify").is_ok(), "edit undone");

    sc.exec(&[
        "UPDATE audit SET seq = -1 WHERE seq = 5",
        "UPDATE audit SET seq = 5 WHERE seq = 6",
        "UPDATE audit SET seq = 6 WHERE seq = -1",
    ])
    .await;
    let (bad, why) = s
        .verify_chain()
        .await
        .expect("verify")
        .first_bad
        .expect("swap detected");
    assert_eq!(bad, 5, "{why}");
    assert!(why.contains("prev_hash mismatch"), "{why}");

    sc.exec(&["DELETE FROM audit WHERE seq = 3"]).await;
    let (bad, why) = s
        .verify_chain()
        .await
        .expect("verify")
        .first_bad
        .expect("removal detected");
    assert_eq!(bad, 3, "{why}");
    assert!(why.contains("seq gap"), "{why}");
    s.close().await;
    sc.drop_schema().await;
}

#[tokio::test]
async fn pg_two_writers_keep_one_chain() {
    let Some(sc) = schema().await else { return };
    let a = sc.store().await;
    let b = sc.store().await;
    a.append_batch(&scenario()[..3]).await.expect("a");
    assert_eq!(b.append(&kill("from the CLI", 5)).await.expect("b"), Some(4));
    assert_eq!(
        a.append(&resume("from the API", 6)).await.expect("a again"),
        Some(5)
    );
    let r = b.verify_chain().await.expect("verify");
    assert_eq!((r.events, r.first_bad), (5, None));
    a.close().await;
    b.close().await;
    sc.drop_schema().await;
}
