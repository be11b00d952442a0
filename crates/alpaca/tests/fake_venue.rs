//! The adapter against `alpaca-fake` (crates/alpaca-fake), the stateful
//! local Alpaca held to Alpaca's OpenAPI files: real orders, fills, faults,
//! the stream and the budget.
//!
//! The fake is a binary of another package, so it is located next to this
//! test's own executable (`target/debug/alpaca-fake`) after `cargo build -p
//! alpaca-fake` (run here once; `ALPACA_FAKE_BIN` overrides the path).

use keel_alpaca::{AlpacaConfig, Credentials, Venue};
use keel_broker::BrokerError;
use keel_domain::{Clock, FixedClock, Order, OrderStatus, OrderType, Side, Symbol, TimeInForce};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const AT: &str = "2026-12-01T15:00:00Z";

fn fake_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("ALPACA_FAKE_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<this test> -> target/<profile>/alpaca-fake
        let dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target dir")
            .to_path_buf();
        let bin = dir.join("alpaca-fake");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "-q", "-p", "alpaca-fake"])
            .env("CARGO_TARGET_DIR", dir.parent().expect("target root"))
            .status();
        match built {
            Ok(s) if s.success() => {}
            other if bin.exists() => {
                eprintln!("cargo build -p alpaca-fake: {other:?}; using the existing binary")
            }
            other => panic!("cannot build alpaca-fake: {other:?}"),
        }
        bin
    })
    .clone()
}

struct Fake {
    child: Child,
    addr: String,
    http: reqwest::Client,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fake {
    fn start(args: &[&str]) -> Fake {
        let mut child = Command::new(fake_bin())
            .args(["--bind", "127.0.0.1:0", "--at", AT, "--seed", "7"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn alpaca-fake");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("the listening line");
        let addr = line
            .trim()
            .strip_prefix("alpaca-fake listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        // Keep draining stdout so the fake never blocks or dies on a closed pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Fake {
            child,
            addr,
            http: reqwest::Client::new(),
        }
    }

    fn cfg(&self, per_minute: u32, burst: u32) -> AlpacaConfig {
        AlpacaConfig {
            trading_url: Some(format!("http://{}", self.addr)),
            data_url: Some(format!("http://{}", self.addr)),
            stream_url: Some(format!("ws://{}/stream", self.addr)),
            requests_per_minute: per_minute,
            burst,
            request_timeout_ms: 5_000,
            stream_silence_secs: 5,
            ..Default::default()
        }
    }

    /// A venue for this fake under its own key (each key has its own budget).
    fn venue(&self, key: &str, cfg: &AlpacaConfig) -> Venue {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(
            chrono::DateTime::parse_from_rfc3339(AT).unwrap().to_utc(),
        ));
        keel_alpaca::connect(cfg, Credentials::new(key, "secret").unwrap(), clock).unwrap()
    }

    async fn fake_get(&self, path: &str) -> Value {
        self.http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn fake_post(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    async fn submissions(&self, cid: &str) -> u64 {
        self.fake_get("/_fake/submissions").await["by_client_order_id"][cid]
            .as_u64()
            .unwrap_or(0)
    }
}

fn buy(cid: &str, sym: &str, qty: Decimal) -> Order {
    Order {
        client_order_id: cid.into(),
        symbol: Symbol::new(sym).unwrap(),
        side: Side::Buy,
        qty,
        order_type: OrderType::Market,
        limit_price: None,
        time_in_force: TimeInForce::Day,
    }
}

async fn until_final(v: &Venue, cid: &str) -> keel_broker::BrokerOrder {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(o) = v.broker().order_by_client_id(cid).await.unwrap() {
            if o.status.is_final() {
                return o;
            }
        }
        assert!(Instant::now() < deadline, "{cid} never became final");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_fill_and_every_fill_is_counted_once() {
    let fake = Fake::start(&["--partial-fill-prob", "0.7"]);
    let cfg = fake.cfg(1200, 10);
    let v = fake.venue("KEY-fill", &cfg);
    let b = v.broker();
    let m = v.market();
    let acct = b.account().await.unwrap();
    assert_eq!(acct.cash, dec!(1000000));
    let syms = [
        Symbol::new("AAPL").unwrap(),
        Symbol::new("MSFT").unwrap(),
        Symbol::new("NOPE").unwrap(),
    ];
    let q = m.quotes(&syms).await.unwrap();
    assert_eq!(q.len(), 2, "unknown symbols have no quote");
    assert!(q.values().all(|q| q.bid > Decimal::ZERO && q.ask >= q.bid));
    let facts = m.assets(&syms).await.unwrap();
    assert!(facts[&syms[0]].tradable && !facts.contains_key(&syms[2]));
    let closes = m.daily_closes(&syms[0], 10).await.unwrap();
    assert_eq!(closes.len(), 10, "{closes:?}");
    assert!(m.adv(&syms[..1]).await.unwrap()[&syms[0]] > Decimal::ZERO);

    let placed = b
        .submit(&buy("keel-fill-AAPL-0", "AAPL", dec!(37)))
        .await
        .unwrap();
    assert_eq!(placed.qty, dec!(37));
    let done = until_final(&v, "keel-fill-AAPL-0").await;
    assert_eq!(done.status, OrderStatus::Filled);
    let total: Decimal = done.fills.iter().map(|f| f.qty).sum();
    assert_eq!(total, dec!(37), "{:?}", done.fills);
    let ids: std::collections::HashSet<_> = done.fills.iter().map(|f| &f.fill_id).collect();
    assert_eq!(ids.len(), done.fills.len());
    // The venue's own fills agree, execution for execution.
    let state = fake.fake_get("/_fake/state").await;
    let venue_fills = state["fills"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.to_string().contains(&placed.broker_order_id))
        .count();
    assert_eq!(venue_fills, done.fills.len(), "{state}");
    let pos = b.positions().await.unwrap();
    assert_eq!(
        pos.iter().find(|p| p.symbol.as_str() == "AAPL").unwrap().qty,
        dec!(37)
    );
    assert!(b.open_orders().await.unwrap().is_empty());
    assert_eq!(fake.submissions("keel-fill-AAPL-0").await, 1);
    assert!(b.trading_blocks().await.unwrap().is_empty());
    // Cancelling a filled order is refused; the same id again is a duplicate.
    assert!(matches!(
        b.cancel("keel-fill-AAPL-0").await,
        Err(BrokerError::Rejected { .. })
    ));
    assert_eq!(
        b.submit(&buy("keel-fill-AAPL-0", "AAPL", dec!(37)))
            .await
            .unwrap_err(),
        BrokerError::DuplicateClientOrderId
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_504_is_an_unknown_outcome_resolved_by_client_id_and_never_resent() {
    let fake = Fake::start(&["--fault-profile", "submit_504=1"]);
    let cfg = fake.cfg(1200, 10);
    let v = fake.venue("KEY-504", &cfg);
    let e = v
        .broker()
        .submit(&buy("keel-504-MSFT-0", "MSFT", dec!(5)))
        .await
        .unwrap_err();
    assert!(e.is_unknown_outcome(), "{e:?}");
    assert_eq!(fake.submissions("keel-504-MSFT-0").await, 1, "sent exactly once");
    let o = until_final(&v, "keel-504-MSFT-0").await;
    assert_eq!(o.fills.iter().map(|f| f.qty).sum::<Decimal>(), dec!(5));
    assert_eq!(fake.submissions("keel-504-MSFT-0").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_accounts_block() {
    let fake = Fake::start(&[]);
    let v = fake.venue("KEY-block", &fake.cfg(1200, 10));
    fake.fake_post("/_fake/account", serde_json::json!({"trading_blocked": true}))
        .await;
    let blocks = v.broker().trading_blocks().await.unwrap();
    assert!(blocks.iter().any(|b| b.contains("trading_blocked")), "{blocks:?}");
    match v
        .broker()
        .submit(&buy("keel-block-0", "AAPL", dec!(1)))
        .await
        .unwrap_err()
    {
        BrokerError::Rejected { reason } => assert!(reason.contains("403"), "{reason}"),
        e => panic!("{e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_budget_never_meets_a_429() {
    // The fake enforces 600/min with a bucket of 5; the adapter paces evenly at 600/min.
    let fake = Fake::start(&["--requests-per-minute", "600", "--burst", "5"]);
    let cfg = fake.cfg(600, 1);
    let v = fake.venue("KEY-pace", &cfg);
    let m = v.market();
    let b = v.broker();
    let sym = [Symbol::new("AAPL").unwrap()];
    let started = Instant::now();
    for i in 0..60 {
        if i % 2 == 0 {
            m.quotes(&sym).await.unwrap();
        } else {
            b.account().await.unwrap();
        }
    }
    let took = started.elapsed();
    let stats = v.stats();
    let state = fake.fake_get("/_fake/state").await;
    assert_eq!(stats.throttled, 0, "adapter saw 429s: {stats:?}");
    assert_eq!(stats.requests, 60);
    assert!(took >= Duration::from_secs(5), "not paced: {took:?}");
    eprintln!(
        "60 requests at 600/min: {took:?}, paced {:?}; fake counters {}",
        stats.waited, state["counters"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_lost_on_the_stream_come_back_through_the_backfill() {
    // Every event on a live connection is lost: only REST knows the fills.
    let fake = Fake::start(&["--fault-profile", "stream_skip=1"]);
    let cfg = fake.cfg(1200, 10);
    let mut v = fake.venue("KEY-stream", &cfg);
    let status = v.start_stream(&cfg);
    let b = v.broker();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !status.backfilled() {
        assert!(
            Instant::now() < deadline,
            "never backfilled: {:?}",
            status.last_error()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.submit(&buy("keel-stream-AAPL-0", "AAPL", dec!(12)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Drop the connection: the reconnect backfills over REST before trading resumes.
    let connects = status.connects();
    fake.fake_post("/_fake/stream/drop", serde_json::json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while status.connects() <= connects || !status.backfilled() {
        assert!(
            Instant::now() < deadline,
            "never reconnected: {:?}",
            status.last_error()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ev = b.events_since(0).await.unwrap();
    let filled: Decimal = ev
        .iter()
        .filter_map(|(_, e)| match e {
            keel_broker::BrokerEvent::Fill {
                client_order_id,
                fill,
                ..
            } if client_order_id == "keel-stream-AAPL-0" => Some(fill.qty),
            _ => None,
        })
        .sum();
    assert_eq!(filled, dec!(12), "{ev:?}");
    let seqs: Vec<u64> = ev.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}
