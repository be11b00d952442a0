//! The worker under a single-writer lease: it trades while the lease is
//! held, sends nothing once the lease's local deadline has passed, and the
//! store refuses what a worker whose lease was taken over still tries to write.

use chrono::{DateTime, Utc};
use keel_broker::{PaperBroker, PaperConfig};
use keel_domain::{Clock, Decimal, FixedClock, Symbol, Target, TargetSet};
use keel_planner::RiskConfig;
use keel_store::{Lease, LeaseAttempt, LeaseStore, LeaseTerms, SqliteStore, StoreError};
use keel_worker::{CycleOutcome, KillSwitchConfig, Worker, WorkerConfig, WorkerError};
use std::sync::Arc;
use std::time::Duration;

fn t0() -> DateTime<Utc> {
    "2026-11-24T15:00:00Z".parse().unwrap()
}

fn set(id: &str, w: i64) -> TargetSet {
    TargetSet {
        id: id.into(),
        as_of: t0(),
        valid_until: None,
        targets: ["AAPL", "MSFT"]
            .iter()
            .map(|s| Target {
                symbol: Symbol::new(s).unwrap(),
                weight: Decimal::new(w, 2),
            })
            .collect(),
        // Small books on purpose: say so, or the suspicious-set guard blocks them.
        liquidate: true,
    }
}

async fn acquire(store: &Arc<dyn LeaseStore>, holder: &str, ttl_ms: u64) -> Arc<Lease> {
    let terms = LeaseTerms {
        ttl: Duration::from_millis(ttl_ms),
        margin: Duration::from_millis(ttl_ms / 4),
    };
    match Lease::acquire(store.clone(), "test", holder, terms)
        .await
        .unwrap()
    {
        LeaseAttempt::Acquired(l) => l,
        LeaseAttempt::Busy(r) => panic!("busy: {r:?}"),
    }
}

fn leased_worker(lease: &Arc<Lease>, paper: Arc<PaperBroker>, clock: Arc<FixedClock>) -> Worker {
    // The clock stands still: no cooldowns between the two target sets.
    let mut risk = RiskConfig::default();
    risk.guards.cooldown.enabled = false;
    Worker::new(
        "test",
        Arc::new(lease.fenced_store()),
        paper.clone(),
        paper,
        clock,
        risk,
        WorkerConfig {
            retry_backoff_ms: 1,
            ..Default::default()
        },
        KillSwitchConfig::default(),
    )
    .with_lease(lease.clone())
}

#[tokio::test]
async fn a_worker_stops_sending_when_its_lease_lapses_and_is_fenced_after_a_takeover() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(t0()));
    let paper = Arc::new(
        PaperBroker::open(
            &dir.path().join("paper.db"),
            PaperConfig {
                account_id: "test".into(),
                partial_fill_prob: 0.0,
                ..Default::default()
            },
            clock.clone() as Arc<dyn Clock>,
        )
        .await
        .unwrap(),
    );
    let store: Arc<dyn LeaseStore> = Arc::new(SqliteStore::open(dir.path().join("keel.db")).await.unwrap());

    // Held: trades.
    let la = acquire(&store, "a", 800).await;
    let wa = leased_worker(&la, paper.clone(), clock.clone());
    wa.recover().await.unwrap();
    wa.submit_target_set(set("s1", 10)).await.unwrap();
    let out = wa.cycle().await.unwrap();
    assert!(matches!(out, CycleOutcome::Submitted { sent: 2, .. }), "{out:?}");
    let sent_before = paper.submissions_received().await.unwrap().len();

    // Lapsed (a paused process, say): nothing more reaches the broker.
    wa.submit_target_set(set("s2", 15)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    match wa.cycle().await {
        Err(WorkerError::Store(StoreError::LeaseLost { token: 1, .. })) => {}
        other => panic!("expected LeaseLost, got {other:?}"),
    }
    assert!(wa.maybe_eod().await.is_err());
    assert_eq!(paper.submissions_received().await.unwrap().len(), sent_before);

    // Taken over (after the database's expiry): the old worker's writes are refused.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lb = acquire(&store, "b", 60_000).await;
    assert_eq!(lb.token(), 2);
    let head = store.audit_head().await.unwrap();
    let e = wa.submit_target_set(set("s3", 5)).await.unwrap_err();
    assert!(
        matches!(&e, WorkerError::Store(StoreError::Fenced { token: 1, .. })),
        "{e}"
    );
    assert_eq!(store.audit_head().await.unwrap(), head, "nothing written");

    // The new holder carries on from the same state.
    let wb = leased_worker(&lb, paper.clone(), clock.clone());
    wb.recover().await.unwrap();
    // s1 was superseded when the newer s2 was queued, so s2 trades at once.
    assert_eq!(
        store.target_set_status("s1").await.unwrap().as_deref(),
        Some("superseded")
    );
    let out = wb.cycle().await.unwrap();
    assert!(matches!(out, CycleOutcome::Submitted { sent: 2, .. }), "{out:?}");
    for (id, n) in paper.submissions_received().await.unwrap() {
        assert_eq!(n, 1, "{id} sent {n} times");
    }
    assert!(store.verify_chain().await.unwrap().is_ok());
}
