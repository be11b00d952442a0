//! Reads retried within a budget, submits never retried blindly, and a venue
//! that will not take new risk stopping the cycle: the worker against the
//! paper broker behind a test double that injects a 503 on exactly the
//! calls it is told to, and reports the trading blocks it is given.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use keel_broker::{
    AssetFacts, Broker, BrokerAccount, BrokerError, BrokerEvent, BrokerOrder, MarketData, PaperBroker,
    PaperConfig,
};
use keel_domain::{Clock, Decimal, Event, FixedClock, OpenOrder, Order, Position, Quote, Symbol};
use keel_planner::RiskConfig;
use keel_store::{SqliteStore, Store};
use keel_worker::{CycleOutcome, KillSwitchConfig, ReadRetry, Retrying, Worker, WorkerConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// 2026-11-24 10:00 New York: inside the session.
fn t0() -> DateTime<Utc> {
    "2026-11-24T15:00:00Z".parse().unwrap()
}

/// The paper broker, with scripted failures per operation.
struct Flaky {
    paper: Arc<PaperBroker>,
    /// Operation → how many of its next calls fail with a 503.
    fail: Mutex<HashMap<&'static str, u32>>,
    /// Operation → calls seen.
    calls: Mutex<HashMap<&'static str, u32>>,
    blocks: Mutex<Vec<String>>,
}

impl Flaky {
    fn fail_next(&self, op: &'static str, n: u32) {
        self.fail.lock().unwrap().insert(op, n);
    }
    fn calls(&self, op: &str) -> u32 {
        self.calls.lock().unwrap().get(op).copied().unwrap_or(0)
    }
    fn gate(&self, op: &'static str) -> Result<(), BrokerError> {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
        let mut f = self.fail.lock().unwrap();
        match f.get_mut(op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(BrokerError::Retryable {
                    message: format!("503 Service Unavailable on {op}"),
                    retry_after: None,
                })
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Broker for Flaky {
    async fn account(&self) -> Result<BrokerAccount, BrokerError> {
        self.gate("account")?;
        self.paper.account().await
    }
    async fn positions(&self) -> Result<Vec<Position>, BrokerError> {
        self.gate("positions")?;
        self.paper.positions().await
    }
    async fn open_orders(&self) -> Result<Vec<OpenOrder>, BrokerError> {
        self.gate("open_orders")?;
        self.paper.open_orders().await
    }
    async fn submit(&self, order: &Order) -> Result<BrokerOrder, BrokerError> {
        self.gate("submit")?;
        self.paper.submit(order).await
    }
    async fn cancel(&self, id: &str) -> Result<(), BrokerError> {
        self.gate("cancel")?;
        self.paper.cancel(id).await
    }
    async fn order_by_client_id(&self, id: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        self.gate("order_by_client_id")?;
        self.paper.order_by_client_id(id).await
    }
    async fn events_since(&self, cursor: u64) -> Result<Vec<(u64, BrokerEvent)>, BrokerError> {
        self.gate("events_since")?;
        self.paper.events_since(cursor).await
    }
    async fn trading_blocks(&self) -> Result<Vec<String>, BrokerError> {
        self.gate("trading_blocks")?;
        Ok(self.blocks.lock().unwrap().clone())
    }
}

#[async_trait]
impl MarketData for Flaky {
    async fn quotes(&self, s: &[Symbol]) -> Result<BTreeMap<Symbol, Quote>, BrokerError> {
        self.gate("quotes")?;
        self.paper.quotes(s).await
    }
    async fn daily_closes(&self, s: &Symbol, n: usize) -> Result<Vec<Decimal>, BrokerError> {
        self.gate("daily_closes")?;
        self.paper.daily_closes(s, n).await
    }
    async fn adv(&self, s: &[Symbol]) -> Result<BTreeMap<Symbol, Decimal>, BrokerError> {
        self.gate("adv")?;
        self.paper.adv(s).await
    }
    async fn assets(&self, s: &[Symbol]) -> Result<BTreeMap<Symbol, AssetFacts>, BrokerError> {
        self.gate("assets")?;
        self.paper.assets(s).await
    }
}

struct World {
    _dir: tempfile::TempDir,
    clock: Arc<FixedClock>,
    paper: Arc<PaperBroker>,
    venue: Arc<Flaky>,
    worker: Worker,
}

async fn world(read_retry_budget: u32) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(FixedClock::new(t0()));
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("keel.db"))
            .await
            .expect("store"),
    );
    let paper = Arc::new(
        PaperBroker::open(
            &dir.path().join("paper.db"),
            PaperConfig {
                account_id: "test".into(),
                seed: 11,
                partial_fill_prob: 0.0,
                ..Default::default()
            },
            clock.clone() as Arc<dyn Clock>,
        )
        .await
        .expect("paper broker"),
    );
    let venue = Arc::new(Flaky {
        paper: paper.clone(),
        fail: Mutex::default(),
        calls: Mutex::default(),
        blocks: Mutex::default(),
    });
    let worker = Worker::new(
        "test",
        store,
        venue.clone(),
        venue.clone(),
        clock.clone(),
        RiskConfig::default(),
        WorkerConfig {
            retry_backoff_ms: 1,
            read_retry_budget,
            ..Default::default()
        },
        KillSwitchConfig::default(),
    );
    worker.recover().await.expect("recover");
    World {
        _dir: dir,
        clock,
        paper,
        venue,
        worker,
    }
}

fn set(id: &str, at: DateTime<Utc>) -> keel_domain::TargetSet {
    let json = format!(
        r#"{{"id":"{id}","as_of":"{}","targets":[{{"symbol":"AAPL","weight":"0.2"}},{{"symbol":"MSFT","weight":"0.2"}},{{"symbol":"JPM","weight":"0.2"}}]}}"#,
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    keel_intake::parse_json("test", json.as_bytes(), &Default::default(), at).expect("valid set")
}

/// Every read the cycle makes, broker and market data.
const READS: &[&str] = &[
    "account",
    "positions",
    "open_orders",
    "trading_blocks",
    "quotes",
    "daily_closes",
    "adv",
    "assets",
];

async fn audit_kinds(w: &World) -> Vec<String> {
    let rows = w.worker.store().audit_page(0, 10_000).await.expect("audit");
    rows.into_iter().map(|r| r.kind).collect()
}

#[tokio::test]
async fn one_503_on_every_read_does_not_abort_the_cycle() {
    let w = world(2).await;
    w.worker.submit_target_set(set("s1", t0())).await.unwrap();
    for op in READS {
        w.venue.fail_next(op, 1);
    }
    let o = w
        .worker
        .cycle()
        .await
        .expect("the cycle survives one 503 per read");
    assert!(
        matches!(
            o,
            CycleOutcome::Submitted {
                sent: 3,
                rejected: 0,
                ..
            }
        ),
        "{o:?}"
    );
    for op in READS {
        assert!(
            w.venue.calls(op) >= 2,
            "{op} was retried ({} calls)",
            w.venue.calls(op)
        );
    }
    // Each order reached the venue once.
    for (id, n) in w.paper.submissions_received().await.unwrap() {
        assert_eq!(n, 1, "{id} received {n} times");
    }
}

#[tokio::test]
async fn without_a_read_budget_the_same_503_aborts_the_cycle() {
    // The control: the double's 503 really reaches the worker.
    let w = world(0).await;
    w.worker.submit_target_set(set("s1", t0())).await.unwrap();
    w.venue.fail_next("quotes", 1);
    let e = w
        .worker
        .cycle()
        .await
        .expect_err("no retries, so the cycle fails closed");
    assert!(e.to_string().contains("503"), "{e}");
    assert!(w.paper.submissions_received().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_outage_longer_than_the_budget_still_fails_closed() {
    let w = world(2).await;
    w.worker.submit_target_set(set("s1", t0())).await.unwrap();
    w.venue.fail_next("positions", 10);
    assert!(w.worker.cycle().await.is_err());
    assert_eq!(w.venue.calls("positions"), 3, "first try plus a budget of 2");
    assert!(w.paper.submissions_received().await.unwrap().is_empty());
}

#[tokio::test]
async fn order_lookups_are_retried_reads() {
    let w = world(2).await;
    // A crash between the write-ahead intent and the submit: recovery must
    // look the order up, and one 503 on that lookup must not stop it.
    w.worker
        .store()
        .append(&Event::OrderIntent {
            cycle_id: "s0#0".into(),
            order: order("k-crashed-1", Decimal::from(100)),
            arrival_price: Decimal::from(100),
            arrival_spread: None,
            at: t0(),
        })
        .await
        .unwrap();
    let before = w.venue.calls("order_by_client_id");
    w.venue.fail_next("order_by_client_id", 1);
    w.worker.recover().await.expect("lookup retried");
    assert_eq!(w.venue.calls("order_by_client_id"), before + 2);
    let row = w.worker.store().order("k-crashed-1").await.unwrap().unwrap();
    assert_eq!(
        row.status,
        keel_domain::OrderStatus::Canceled,
        "never reached the broker: closed"
    );
}

fn order(id: &str, limit: Decimal) -> Order {
    Order {
        client_order_id: id.into(),
        symbol: Symbol::new("AAPL").unwrap(),
        side: keel_domain::Side::Buy,
        qty: Decimal::ONE,
        order_type: keel_domain::OrderType::Limit,
        limit_price: Some(limit),
        time_in_force: keel_domain::TimeInForce::Day,
    }
}

#[tokio::test]
async fn submits_are_never_retried_by_the_read_wrapper() {
    let w = world(3).await;
    let retrying = Retrying::<dyn Broker>::new(
        w.venue.clone(),
        ReadRetry {
            budget: 3,
            backoff_ms: 1,
        },
    );
    w.venue.fail_next("submit", 1);
    let quote = w.paper.quotes(&[Symbol::new("AAPL").unwrap()]).await.unwrap();
    let order = order("k-test-1", quote.values().next().unwrap().ask);
    assert!(
        retrying.submit(&order).await.is_err(),
        "the failure is the caller's to resolve"
    );
    assert_eq!(w.venue.calls("submit"), 1, "one submit, no blind resend");
    assert!(w.paper.submissions_received().await.unwrap().is_empty());
    // Reads through the same wrapper are retried.
    let before = w.venue.calls("account");
    w.venue.fail_next("account", 1);
    retrying.account().await.expect("retried");
    assert_eq!(w.venue.calls("account"), before + 2);
}

#[tokio::test]
async fn venue_blocks_stop_new_orders_and_are_audited_once() {
    let w = world(2).await;
    w.worker.submit_target_set(set("s1", t0())).await.unwrap();
    *w.venue.blocks.lock().unwrap() = vec!["account trading_blocked".into()];
    for _ in 0..3 {
        let o = w.worker.cycle().await.expect("cycle");
        assert_eq!(
            o,
            CycleOutcome::VenueBlocked(vec!["account trading_blocked".into()])
        );
        w.clock.advance(Duration::minutes(1));
    }
    assert!(
        w.paper.submissions_received().await.unwrap().is_empty(),
        "nothing sent"
    );
    assert_eq!(w.venue.calls("submit"), 0);
    let kinds = audit_kinds(&w).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "trading_blocked").count(),
        1,
        "recorded once while the reasons stay the same: {kinds:?}"
    );
    assert!(
        !kinds.iter().any(|k| k == "cycle_started"),
        "no attempt was used up: {kinds:?}"
    );
    let rows = w.worker.store().audit_page(0, 10_000).await.unwrap();
    let blocked = rows.iter().find(|r| r.kind == "trading_blocked").unwrap();
    let ev: Event = blocked.event().expect("event payload");
    assert!(
        matches!(&ev, Event::TradingBlocked { reasons, .. } if reasons == &["account trading_blocked".to_string()]),
        "{ev:?}"
    );
    // The JSON `keel cycle` prints carries the reasons.
    let json = serde_json::to_string(&CycleOutcome::VenueBlocked(vec!["x".into()])).unwrap();
    assert_eq!(json, r#"{"outcome":"venue_blocked","detail":["x"]}"#);
    // Once the venue clears, the same set trades.
    w.venue.blocks.lock().unwrap().clear();
    let o = w.worker.cycle().await.expect("cycle");
    assert!(matches!(o, CycleOutcome::Submitted { sent: 3, .. }), "{o:?}");
}
