//! The worker against the real paper broker and SQLite store: duplicate
//! submissions, every kill-switch trigger, stickiness across restart, and
//! fail-closed reconciliation.

use chrono::{DateTime, Duration, Utc};
use keel_broker::{Broker, FaultConfig, PaperBroker, PaperConfig};
use keel_domain::{
    Clock, Decimal, Event, FixedClock, KillSource, Order, OrderType, Side, Symbol, TimeInForce,
};
use keel_planner::RiskConfig;
use keel_store::{SqliteStore, Store};
use keel_worker::{CycleOutcome, KillSwitchConfig, SubmitOutcome, Worker, WorkerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// 2026-11-24 10:00 New York: well inside the session.
fn t0() -> DateTime<Utc> {
    "2026-11-24T15:00:00Z".parse().unwrap()
}

struct World {
    dir: tempfile::TempDir,
    clock: Arc<FixedClock>,
    paper: Arc<PaperBroker>,
    worker: Worker,
}

struct Setup {
    paper: PaperConfig,
    worker: WorkerConfig,
    kill: KillSwitchConfig,
}

impl Default for Setup {
    fn default() -> Self {
        let paper = PaperConfig {
            account_id: "test".into(),
            seed: 11,
            partial_fill_prob: 0.0,
            ..Default::default()
        };
        let worker = WorkerConfig {
            retry_backoff_ms: 1,
            ..Default::default()
        };
        Self {
            paper,
            worker,
            kill: KillSwitchConfig::default(),
        }
    }
}

async fn open(dir: &Path, clock: Arc<FixedClock>, s: &Setup) -> (Arc<PaperBroker>, Worker) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("keel.db")).await.expect("store"));
    let paper = Arc::new(
        PaperBroker::open(
            &dir.join("paper.db"),
            s.paper.clone(),
            clock.clone() as Arc<dyn Clock>,
        )
        .await
        .expect("paper broker"),
    );
    let worker = Worker::new(
        "test",
        store,
        paper.clone(),
        paper.clone(),
        clock,
        RiskConfig::default(),
        s.worker.clone(),
        s.kill.clone(),
    );
    worker.recover().await.expect("recover");
    (paper, worker)
}

async fn world(s: &Setup) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(FixedClock::new(t0()));
    let (paper, worker) = open(dir.path(), clock.clone(), s).await;
    World {
        dir,
        clock,
        paper,
        worker,
    }
}

impl World {
    async fn restart(self, s: &Setup) -> World {
        let World {
            dir,
            clock,
            paper,
            worker,
        } = self;
        drop(worker);
        paper.close().await;
        drop(paper);
        let (paper, worker) = open(dir.path(), clock.clone(), s).await;
        World {
            dir,
            clock,
            paper,
            worker,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

fn set(id: &str, at: DateTime<Utc>, weights: &[(&str, &str)]) -> keel_domain::TargetSet {
    let targets: Vec<String> = weights
        .iter()
        .map(|(s, w)| format!("{{\"symbol\":\"{s}\",\"weight\":\"{w}\"}}"))
        .collect();
    let json = format!(
        "{{\"id\":\"{id}\",\"as_of\":\"{}\",\"targets\":[{}]}}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        targets.join(",")
    );
    keel_intake::parse_json("test", json.as_bytes(), &Default::default(), at).expect("valid set")
}

const BOOK: &[(&str, &str)] = &[
    ("AAPL", "0.1"),
    ("MSFT", "0.1"),
    ("JPM", "0.1"),
    ("XOM", "0.1"),
    ("KO", "0.1"),
    ("PG", "0.1"),
];

/// Runs cycles a minute apart until the worker has nothing left to do.
async fn run_until_quiet(w: &World) -> Vec<CycleOutcome> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let o = w.worker.cycle().await.expect("cycle");
        let done = matches!(
            o,
            CycleOutcome::Idle | CycleOutcome::Killed(_) | CycleOutcome::MarketClosed
        );
        out.push(o);
        if done {
            break;
        }
        w.clock.advance(Duration::minutes(1));
    }
    out
}

async fn broker_order_count(w: &World) -> usize {
    w.paper.orders().await.expect("orders").len()
}

#[tokio::test]
async fn a_target_set_submitted_twice_executes_once() {
    let s = Setup::default();
    let w = world(&s).await;
    let ts = set("day-1", t0(), BOOK);
    assert_eq!(
        w.worker.submit_target_set(ts.clone()).await.unwrap(),
        SubmitOutcome::Queued
    );
    assert!(matches!(
        w.worker.submit_target_set(ts.clone()).await.unwrap(),
        SubmitOutcome::AlreadyKnown(_)
    ));
    run_until_quiet(&w).await;
    let sent = broker_order_count(&w).await;
    assert!(sent >= 6, "the book was bought: {sent} orders");

    // After completion, and after a restart, the same id changes nothing.
    let w = w.restart(&s).await;
    assert!(matches!(
        w.worker.submit_target_set(ts).await.unwrap(),
        SubmitOutcome::AlreadyKnown(_)
    ));
    run_until_quiet(&w).await;
    assert_eq!(broker_order_count(&w).await, sent);
    for (id, n) in w.paper.submissions_received().await.unwrap() {
        assert_eq!(n, 1, "{id} received {n} times");
    }
}

#[tokio::test]
async fn manual_kill_cancels_blocks_and_survives_restart_until_resume() {
    // Every order fills half now and the rest an hour later, so orders stay open.
    let mut s = Setup::default();
    s.paper.partial_fill_prob = 1.0;
    s.paper.fill_delay_secs = 3600;
    let w = world(&s).await;
    w.worker
        .submit_target_set(set("day-1", t0(), BOOK))
        .await
        .unwrap();
    let first = w.worker.cycle().await.unwrap();
    assert!(
        matches!(first, CycleOutcome::Submitted { sent, .. } if sent >= 6),
        "{first:?}"
    );
    assert!(
        !w.paper.open_orders().await.unwrap().is_empty(),
        "partials left working orders"
    );

    w.worker
        .engage_kill("operator says stop", KillSource::Cli)
        .await
        .unwrap();
    assert!(
        w.paper.open_orders().await.unwrap().is_empty(),
        "engaging cancels open orders at the broker"
    );
    assert!(w.worker.store().open_orders().await.unwrap().is_empty());
    let before = broker_order_count(&w).await;

    let w = w.restart(&s).await;
    let k = w
        .worker
        .store()
        .kill_switch()
        .await
        .unwrap()
        .expect("still engaged after restart");
    assert_eq!(k.reason, "operator says stop");
    w.worker
        .submit_target_set(set("day-1b", t0(), &[("NVDA", "0.2"), ("AAPL", "0.6")]))
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(1));
    assert!(matches!(w.worker.cycle().await.unwrap(), CycleOutcome::Killed(_)));
    assert_eq!(broker_order_count(&w).await, before, "nothing new while engaged");

    assert!(w.worker.release_kill("checked", KillSource::Cli).await.unwrap());
    assert!(w.worker.store().kill_switch().await.unwrap().is_none());
    let outs = run_until_quiet(&w).await;
    assert!(
        broker_order_count(&w).await > before,
        "trading resumes after release: {outs:?}"
    );
}

#[tokio::test]
async fn flag_file_engages_the_kill_switch() {
    let mut s = Setup::default();
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("STOP");
    s.kill.flag_file = Some(flag.clone());
    let w = world(&s).await;
    w.worker
        .submit_target_set(set("day-1", t0(), BOOK))
        .await
        .unwrap();
    std::fs::write(&flag, b"").unwrap();
    assert!(matches!(w.worker.cycle().await.unwrap(), CycleOutcome::Killed(_)));
    let k = w.worker.store().kill_switch().await.unwrap().unwrap();
    assert_eq!(k.source, KillSource::FlagFile);
    assert_eq!(broker_order_count(&w).await, 0);
    // Removing the file does not release it: only an operator does.
    std::fs::remove_file(&flag).unwrap();
    assert!(matches!(w.worker.cycle().await.unwrap(), CycleOutcome::Killed(_)));
}

async fn eod(w: &World, date: &str, equity: i64) {
    w.worker
        .store()
        .append(&Event::EodSnapshot {
            date: date.parse().unwrap(),
            equity: Decimal::from(equity),
            cash: Decimal::from(equity),
            gross_exposure: Decimal::ZERO,
            net_exposure: Decimal::ZERO,
            day_pnl: Decimal::ZERO,
            positions: vec![],
            slippage_mean_bps: None,
            at: w.clock.now() - Duration::days(1),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn daily_loss_limit_engages() {
    let s = Setup::default();
    let w = world(&s).await;
    // Yesterday's close at 1.2M; the account holds 1.0M now: a 16.7% daily loss.
    eod(&w, "2026-11-23", 1_200_000).await;
    w.worker
        .submit_target_set(set("day-1", t0(), BOOK))
        .await
        .unwrap();
    let o = w.worker.cycle().await.unwrap();
    assert!(
        matches!(&o, CycleOutcome::Killed(r) if r.contains("daily loss")),
        "{o:?}"
    );
    assert_eq!(broker_order_count(&w).await, 0);
}

#[tokio::test]
async fn drawdown_limit_engages() {
    let mut s = Setup::default();
    s.kill.daily_loss_limit = Decimal::ONE; // isolate the drawdown trigger
    let w = world(&s).await;
    eod(&w, "2026-11-20", 1_300_000).await;
    eod(&w, "2026-11-23", 1_010_000).await;
    w.worker
        .submit_target_set(set("day-1", t0(), BOOK))
        .await
        .unwrap();
    let o = w.worker.cycle().await.unwrap();
    assert!(
        matches!(&o, CycleOutcome::Killed(r) if r.contains("drawdown")),
        "{o:?}"
    );
}

#[tokio::test]
async fn reject_storm_engages() {
    let mut s = Setup::default();
    s.paper.faults = FaultConfig {
        reject: 1.0,
        ..Default::default()
    };
    let w = world(&s).await;
    w.worker
        .submit_target_set(set("day-1", t0(), BOOK))
        .await
        .unwrap();
    let o = w.worker.cycle().await.unwrap();
    assert!(
        matches!(o, CycleOutcome::Submitted { rejected, .. } if rejected >= 5),
        "{o:?}"
    );
    let k = w.worker.store().kill_switch().await.unwrap().expect("engaged");
    assert!(k.reason.contains("reject storm"), "{}", k.reason);
    assert_eq!(k.source, KillSource::Automatic);
}

#[tokio::test]
async fn repeated_unknown_outcomes_engage_and_nothing_is_sent_twice() {
    let mut s = Setup::default();
    s.paper.faults = FaultConfig {
        timeout_after_send: 1.0,
        ..Default::default()
    };
    let w = world(&s).await;
    w.worker
        .submit_target_set(set("day-1", t0(), BOOK))
        .await
        .unwrap();
    let _ = w.worker.cycle().await.unwrap();
    let k = w.worker.store().kill_switch().await.unwrap().expect("engaged");
    assert!(k.reason.contains("unknown outcomes"), "{}", k.reason);
    // Each unknown outcome was resolved by lookup, never by a blind resend.
    for (id, n) in w.paper.submissions_received().await.unwrap() {
        assert_eq!(n, 1, "{id} received {n} times");
    }
}

#[tokio::test]
async fn reconciliation_mismatch_engages_and_fails_closed() {
    let s = Setup::default();
    let w = world(&s).await;
    // Someone trades the account behind keel's back.
    let rogue = Order {
        client_order_id: "manual-1".into(),
        symbol: Symbol::new("KO").unwrap(),
        side: Side::Buy,
        qty: Decimal::from(10),
        order_type: OrderType::Market,
        limit_price: None,
        time_in_force: TimeInForce::Day,
    };
    w.paper.submit(&rogue).await.unwrap();
    w.worker
        .submit_target_set(set("day-1", t0(), BOOK))
        .await
        .unwrap();
    let r = w.worker.cycle().await;
    assert!(r.is_err(), "the cycle fails closed: {r:?}");
    let k = w.worker.store().kill_switch().await.unwrap().expect("engaged");
    assert!(
        k.reason.contains("reconciliation mismatch") && k.reason.contains("KO"),
        "{}",
        k.reason
    );
    assert_eq!(broker_order_count(&w).await, 1, "only the rogue order exists");
    let rec = w
        .worker
        .store()
        .last_reconciliation()
        .await
        .unwrap()
        .expect("recorded");
    assert!(!rec.ok);
}

#[tokio::test]
async fn closed_market_sends_nothing() {
    let s = Setup::default();
    let w = world(&s).await;
    w.clock.set("2026-11-26T15:00:00Z".parse().unwrap()); // Thanksgiving
    w.worker
        .submit_target_set(set("thanksgiving", w.clock.now(), BOOK))
        .await
        .unwrap();
    assert_eq!(w.worker.cycle().await.unwrap(), CycleOutcome::MarketClosed);
    assert_eq!(broker_order_count(&w).await, 0);
}

#[tokio::test]
async fn eod_snapshot_is_recorded_once_per_session() {
    let s = Setup::default();
    let w = world(&s).await;
    w.worker
        .submit_target_set(set("day-1", t0(), BOOK))
        .await
        .unwrap();
    run_until_quiet(&w).await;
    w.clock.set("2026-11-24T21:05:00Z".parse().unwrap());
    assert!(w.worker.maybe_eod().await.unwrap().is_some());
    assert!(w.worker.maybe_eod().await.unwrap().is_none());
    let w = w.restart(&s).await;
    assert!(w.worker.maybe_eod().await.unwrap().is_none());
    let eods = w.worker.store().eod_snapshots().await.unwrap();
    assert_eq!(eods.len(), 1);
    // The snapshot agrees with the broker to the cent.
    let snap = keel_broker::snapshot(w.paper.as_ref(), w.paper.as_ref(), &[])
        .await
        .unwrap();
    assert_eq!(eods[0].cash, snap.cash);
    let _ = w.path();
}

/// Three disjoint two-name books (intake wants a gross weight of at least 0.5).
const AAPL_KO: &[(&str, &str)] = &[("AAPL", "0.3"), ("KO", "0.3")];
const MS_XOM: &[(&str, &str)] = &[("MSFT", "0.3"), ("XOM", "0.3")];
const JPM_PG: &[(&str, &str)] = &[("JPM", "0.3"), ("PG", "0.3")];

/// Status of a target set in the store's projection.
async fn status_of(w: &World, id: &str) -> Option<String> {
    w.worker.store().target_set_status(id).await.unwrap()
}

/// Symbols the broker ever received an order for.
async fn ordered_symbols(w: &World) -> std::collections::BTreeSet<String> {
    w.paper
        .orders()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.symbol.to_string())
        .collect()
}

#[tokio::test]
async fn the_newest_target_set_supersedes_older_queued_ones() {
    let s = Setup::default();
    let w = world(&s).await;
    // Queued first but computed later: it is the newer portfolio.
    w.worker
        .submit_target_set(set("late-as-of", t0() - Duration::minutes(1), MS_XOM))
        .await
        .unwrap();
    w.worker
        .submit_target_set(set("old-a", t0() - Duration::minutes(10), AAPL_KO))
        .await
        .unwrap();
    w.worker
        .submit_target_set(set("old-b", t0() - Duration::minutes(5), JPM_PG))
        .await
        .unwrap();
    assert_eq!(status_of(&w, "old-a").await.as_deref(), Some("superseded"));
    assert_eq!(status_of(&w, "old-b").await.as_deref(), Some("superseded"));
    assert_eq!(status_of(&w, "late-as-of").await.as_deref(), Some("queued"));
    run_until_quiet(&w).await;
    // Only the newest set was ever traded.
    let syms = ordered_symbols(&w).await;
    assert_eq!(
        syms.into_iter().collect::<Vec<_>>(),
        vec!["MSFT".to_string(), "XOM".to_string()]
    );

    // Audited once per superseded set, naming the newer one; replay-proof.
    let rows = w.worker.store().audit_page(0, 10_000).await.unwrap();
    let sup: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| match r.event() {
            Ok(Event::TargetSetSuperseded {
                target_set_id, by, ..
            }) => Some((target_set_id, by)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sup,
        vec![
            ("old-a".to_string(), "late-as-of".to_string()),
            ("old-b".to_string(), "late-as-of".to_string())
        ]
    );
    w.worker.store().rebuild_projections().await.unwrap();
    assert_eq!(status_of(&w, "old-a").await.as_deref(), Some("superseded"));
    assert_eq!(status_of(&w, "late-as-of").await.as_deref(), Some("completed"));
    assert!(w.worker.store().verify_chain().await.unwrap().is_ok());
}

#[tokio::test]
async fn a_partly_executed_set_is_superseded_and_the_newest_wins() {
    let s = Setup::default();
    let w = world(&s).await;
    w.worker
        .submit_target_set(set("first", t0() - Duration::minutes(5), AAPL_KO))
        .await
        .unwrap();
    let out = w.worker.cycle().await.unwrap();
    assert!(matches!(out, CycleOutcome::Submitted { sent: 2, .. }), "{out:?}");
    assert_eq!(status_of(&w, "first").await.as_deref(), Some("executing"));
    w.clock.advance(Duration::minutes(1));
    w.worker
        .submit_target_set(set("second", w.clock.now(), MS_XOM))
        .await
        .unwrap();
    assert_eq!(status_of(&w, "first").await.as_deref(), Some("superseded"));
    run_until_quiet(&w).await;
    // The newest set is the whole portfolio: the AAPL bought by the first is sold.
    let held = w.worker.store().positions().await.unwrap();
    assert!(!held.contains_key(&Symbol::new("AAPL").unwrap()), "{held:?}");
    assert!(!held.contains_key(&Symbol::new("KO").unwrap()), "{held:?}");
    assert!(held.contains_key(&Symbol::new("MSFT").unwrap()), "{held:?}");
    assert_eq!(status_of(&w, "second").await.as_deref(), Some("completed"));
    assert_eq!(status_of(&w, "first").await.as_deref(), Some("superseded"));
}

#[tokio::test]
async fn fifo_trades_queued_sets_in_turn() {
    let mut s = Setup::default();
    s.worker.queue_policy = keel_worker::QueuePolicy::Fifo;
    let w = world(&s).await;
    w.worker
        .submit_target_set(set("first", t0() - Duration::minutes(5), AAPL_KO))
        .await
        .unwrap();
    w.worker
        .submit_target_set(set("second", t0() - Duration::minutes(1), MS_XOM))
        .await
        .unwrap();
    assert_eq!(status_of(&w, "first").await.as_deref(), Some("queued"));
    run_until_quiet(&w).await;
    assert_eq!(status_of(&w, "first").await.as_deref(), Some("completed"));
    assert_eq!(status_of(&w, "second").await.as_deref(), Some("completed"));
    let syms = ordered_symbols(&w).await;
    assert!(syms.contains("AAPL") && syms.contains("MSFT"), "{syms:?}");
}

#[tokio::test]
async fn a_set_mostly_without_quotes_is_blocked_whole() {
    let s = Setup::default();
    let w = world(&s).await;
    // 500 names, 5 of them known to the paper venue; the other 495 have no quote.
    let known = ["AAPL", "MSFT", "JPM", "XOM", "KO"];
    let names: Vec<String> = (0..495)
        .map(|i| format!("ZQ{i:03}"))
        .chain(known.iter().map(|s| s.to_string()))
        .collect();
    let weights: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "0.0018")).collect();
    w.worker
        .submit_target_set(set("wide", t0(), &weights))
        .await
        .unwrap();
    let out = w.worker.cycle().await.unwrap();
    assert!(
        matches!(
            out,
            CycleOutcome::Submitted {
                sent: 0,
                blocked: 500,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(broker_order_count(&w).await, 0, "nothing of the set traded");
    let cycle = w.worker.store().cycles(1).await.unwrap().remove(0);
    let plan = w
        .worker
        .store()
        .guard_decisions(&cycle.cycle_id)
        .await
        .unwrap()
        .unwrap();
    let blocks = plan["plan_blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0]["reason"], "incomplete_coverage");
    let detail = blocks[0]["detail"].as_str().unwrap();
    assert!(detail.contains("495 of 500 targeted symbols"), "{detail}");
    assert!(detail.contains("ZQ000, ZQ001"), "{detail}");
    assert!(detail.contains("and 485 more"), "{detail}");
}

#[tokio::test]
async fn eod_values_with_the_one_valuation() {
    let s = Setup::default();
    let w = world(&s).await;
    w.worker
        .submit_target_set(set("day-1", t0(), BOOK))
        .await
        .unwrap();
    run_until_quiet(&w).await;
    w.clock.set("2026-11-24T21:05:00Z".parse().unwrap());
    w.worker.maybe_eod().await.unwrap();
    let store = w.worker.store();
    let eod = store.eod_snapshots().await.unwrap().remove(0);
    let positions = store.positions().await.unwrap();
    let symbols: Vec<Symbol> = positions.keys().cloned().collect();
    let quotes = keel_broker::MarketData::quotes(w.paper.as_ref(), &symbols)
        .await
        .unwrap();
    let v = keel_domain::valuation::mark(
        store.cash().await.unwrap(),
        positions.iter().map(|(s, p)| (s, p.qty, p.avg_cost)),
        |s| quotes.get(s).map(keel_domain::valuation::Mark::of_quote),
    );
    assert_eq!(eod.equity, v.equity);
    assert_eq!(eod.gross_exposure, v.gross);
    assert_eq!(eod.net_exposure, v.net);
    assert!(eod.gross_exposure > Decimal::ZERO);
}
