//! The notification outbox on SQLite (always) and PostgreSQL (with
//! `KEEL_TEST_PG_URL`, in a fresh schema): a notification commits with its
//! event or not at all, is derived again by a rebuild without forgetting
//! what was delivered, and each channel's delivery state is its own.

mod common;

use chrono::Duration;
use common::*;
use keel_domain::{AlertKind, Event};
use keel_store::{Delivery, Outbox, PgStore, SqliteStore, Store};
use sqlx::{Connection, PgConnection};

async fn check(s: &(impl Store + Outbox)) {
    let since = t(-3600);
    s.append(&account("1000")).await.unwrap();
    s.append(&target_set("ts-1", 1)).await.unwrap();
    assert!(
        s.outbox_pending("ch", since, 100).await.unwrap().is_empty(),
        "quiet events make no notification"
    );

    let seq = s.append(&kill("first", 2)).await.unwrap().unwrap();
    let p = s.outbox_pending("ch", since, 100).await.unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].seq, seq);
    assert_eq!(p[0].event_id, kill("first", 2).event_id());
    assert_eq!(p[0].kind, "kill_switch_engaged");
    assert_eq!(p[0].severity, "critical");
    assert_eq!(p[0].attempts, 0);
    assert_eq!(
        serde_json::from_str::<Event>(&p[0].payload).unwrap(),
        kill("first", 2)
    );

    // A batch that fails writes neither its events nor their notifications.
    let refused = s
        .append_batch(&[
            kill("second", 3),
            Event::AccountOpened {
                account_id: "SOMEONE-ELSE".into(),
                cash: d("1"),
                at: t(3),
            },
        ])
        .await;
    assert!(refused.is_err());
    assert_eq!(s.outbox_pending("ch", since, 100).await.unwrap().len(), 1);

    // A duplicate event is a no-op, and so is its notification.
    assert_eq!(s.append(&kill("first", 2)).await.unwrap(), None);
    assert_eq!(s.outbox_pending("ch", since, 100).await.unwrap().len(), 1);

    // Failure keeps it pending with the attempt counted; delivery clears it
    // for that channel only.
    let fail = Delivery::Failed {
        error: "HTTP 503".into(),
        next_at: t(10),
    };
    s.outbox_record("ch", seq, 1, &fail, t(5)).await.unwrap();
    let p = s.outbox_pending("ch", since, 100).await.unwrap();
    assert_eq!((p.len(), p[0].attempts, p[0].next_at), (1, 1, Some(t(10))));
    s.outbox_record("ch", seq, 2, &Delivery::Delivered, t(11))
        .await
        .unwrap();
    assert!(s.outbox_pending("ch", since, 100).await.unwrap().is_empty());
    assert_eq!(s.outbox_pending("other", since, 100).await.unwrap().len(), 1);

    // An alert and a mismatch, in log order; too old for a max-age window.
    s.append(&Event::Alert {
        alert: AlertKind::StreamDown,
        detail: "trade_updates down 95 s".into(),
        key: "2026-03-02T14:30:20Z".into(),
        at: t(20),
    })
    .await
    .unwrap();
    s.append(&Event::Reconciled {
        ok: false,
        differences: vec!["AAPL: store 1, broker 2".into()],
        scope: None,
        at: t(21),
    })
    .await
    .unwrap();
    let p = s.outbox_pending("ch", since, 100).await.unwrap();
    let kinds: Vec<&str> = p.iter().map(|i| i.kind.as_str()).collect();
    assert_eq!(kinds, ["stream_down", "reconciliation_mismatch"]);
    assert!(s
        .outbox_pending("ch", t(21) + Duration::seconds(1), 100)
        .await
        .unwrap()
        .is_empty());

    // A rebuild re-derives the outbox and keeps every delivery state.
    s.rebuild_projections().await.unwrap();
    assert_eq!(s.outbox_pending("ch", since, 100).await.unwrap().len(), 2);
    assert_eq!(s.outbox_pending("other", since, 100).await.unwrap().len(), 3);
    let c = s.outbox_counts().await.unwrap();
    assert_eq!(c.total, 3);
    assert_eq!(c.by_channel, vec![("ch".to_string(), "delivered".to_string(), 1)]);
    assert!(s.verify_chain().await.unwrap().first_bad.is_none());
}

#[tokio::test]
async fn sqlite_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("keel.db")).await.unwrap();
    check(&s).await;
}

#[tokio::test]
async fn pg_outbox() {
    let Ok(url) = std::env::var("KEEL_TEST_PG_URL") else {
        println!("skipped: no PostgreSQL (KEEL_TEST_PG_URL unset)");
        return;
    };
    if let Err(e) = PgConnection::connect(&url).await {
        println!("skipped: no PostgreSQL ({e})");
        return;
    }
    let schema = format!("keel_notify_outbox_{}", std::process::id());
    let s = PgStore::connect_schema(&url, &schema).await.unwrap();
    check(&s).await;
    s.close().await;
    if let Ok(mut c) = PgConnection::connect(&url).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut c)
            .await;
    }
}
