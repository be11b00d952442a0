//! The config check refuses these values at load; the worker's own code paths
//! must still not panic, overflow or allocate without bound if one got
//! through (a library user building configs in code skips the loader).
//! Before: `stale_order_secs = i64::MAX` panicked every cycle and
//! `lookback_days = u32::MAX` aborted on allocation.

use chrono::{DateTime, Duration, Utc};
use keel_broker::{FaultConfig, PaperBroker, PaperConfig};
use keel_domain::{Clock, FixedClock};
use keel_planner::RiskConfig;
use keel_store::{SqliteStore, Store};
use keel_worker::{KillSwitchConfig, Worker, WorkerConfig};
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    "2026-11-24T15:00:00Z".parse().expect("time")
}

#[tokio::test]
async fn extreme_values_neither_panic_nor_allocate_without_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(FixedClock::new(t0()));
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("keel.db"))
            .await
            .expect("store"),
    );
    let paper_cfg = PaperConfig {
        account_id: "test".into(),
        seed: 11,
        partial_fill_prob: 0.0,
        // Retryable errors exercise the backoff arithmetic.
        faults: FaultConfig {
            server_error: 0.3,
            ..FaultConfig::default()
        },
        ..Default::default()
    };
    let paper = Arc::new(
        PaperBroker::open(
            &dir.path().join("paper.db"),
            paper_cfg,
            clock.clone() as Arc<dyn Clock>,
        )
        .await
        .expect("paper broker"),
    );
    let mut risk = RiskConfig::default();
    risk.guards.volatility_brake.lookback_days = u32::MAX;
    risk.guards.order_rate.window_secs = u64::MAX;
    risk.guards.cooldown.symbol_secs = u64::MAX;
    risk.guards.cooldown.account_secs = u64::MAX;
    risk.guards.stale_quote.max_age_secs = u64::MAX;
    risk.guards.stale_targets.max_age_secs = u64::MAX;
    let worker_cfg = WorkerConfig {
        stale_order_secs: i64::MAX,
        retry_backoff_ms: u64::MAX,
        retry_budget: 1,
        max_attempts: u32::MAX,
        ..WorkerConfig::default()
    };
    let kill = KillSwitchConfig {
        reject_storm: u32::MAX,
        unknown_outcome_limit: u32::MAX,
        ..KillSwitchConfig::default()
    };
    let worker = Worker::new(
        "test",
        store,
        paper.clone(),
        paper.clone(),
        clock.clone(),
        risk,
        worker_cfg,
        kill,
    );
    worker.recover().await.expect("recover");
    let targets: Vec<String> = ["AAPL", "MSFT", "JPM", "XOM", "KO", "PG"]
        .iter()
        .map(|s| format!("{{\"symbol\":\"{s}\",\"weight\":\"0.1\"}}"))
        .collect();
    let json = format!(
        "{{\"id\":\"hostile\",\"as_of\":\"{}\",\"targets\":[{}]}}",
        t0().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        targets.join(",")
    );
    let set = keel_intake::parse_json("test", json.as_bytes(), &Default::default(), t0()).expect("set");
    worker.submit_target_set(set).await.expect("submit");
    let run = async {
        for _ in 0..3 {
            // An error is acceptable (fail closed); a panic or abort is not.
            let r = worker.cycle().await;
            eprintln!("{r:?}");
            clock.advance(Duration::minutes(1));
        }
    };
    // The capped backoff keeps each retry short: bounded well under this.
    tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("cycles finished in bounded time");
}
