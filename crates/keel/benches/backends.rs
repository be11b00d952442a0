//! SQLite vs PostgreSQL: audit appends per second and execution cycles per
//! second, through the same store code and the same single-writer lease.
//!
//! ```text
//! KEEL_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p keel --bench backends
//! ```
//!
//! Without `KEEL_TEST_PG_URL` only SQLite is measured. PostgreSQL runs in a
//! fresh schema that is dropped afterwards. SQLite is a file with the
//! production settings (WAL, synchronous=FULL), so every commit is an fsync;
//! PostgreSQL commits with its server's settings (see the printed
//! `synchronous_commit`/`fsync`).
//!
//! Measured:
//! * single appends: one event per `append` (one durable transaction each),
//!   unfenced and fenced (the lease check runs inside each transaction);
//! * batched appends: `append_batch` of 100 events, fenced;
//! * cycles: a leased worker over the paper venue (in memory, so only the
//!   store differs). Each rebalance queues a target set of 12 symbols and
//!   runs two cycles: one plans and sends (≈12 orders: intent, ack, fills,
//!   close each), one finds the book at target and completes the set.

use chrono::{DateTime, Duration, TimeZone, Utc};
use keel_broker::{PaperBroker, PaperConfig};
use keel_domain::{
    Clock, Decimal, Event, FixedClock, Order, OrderStatus, OrderType, Side, Symbol, Target, TargetSet,
    TimeInForce,
};
use keel_store::{Lease, LeaseAttempt, LeaseStore, LeaseTerms, PgStore, SqliteStore, Store};
use keel_worker::{CycleOutcome, KillSwitchConfig, Worker, WorkerConfig};
use std::sync::Arc;
use std::time::Instant;

const SINGLE: u64 = 400;
const BATCHES: u64 = 40;
const BATCH: u64 = 100;
const REBALANCES: u32 = 30;
const NAMES: &[&str] = &[
    "AAPL", "MSFT", "NVDA", "JPM", "XOM", "KO", "PG", "WMT", "HD", "V", "MA", "CVX",
];

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 30, 0).single().unwrap()
}

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

/// One order's life, four events, unique by `n`.
fn order_life(tag: &str, n: u64) -> [Event; 4] {
    let at = base() + Duration::milliseconds(n as i64);
    let s = sym(NAMES[(n % NAMES.len() as u64) as usize]);
    let coid = format!("{tag}-{n:012x}");
    [
        Event::OrderIntent {
            cycle_id: format!("{tag}-cycle-{}", n / 25),
            order: Order {
                client_order_id: coid.clone(),
                symbol: s.clone(),
                side: Side::Buy,
                qty: Decimal::new(10 + (n % 90) as i64, 0),
                order_type: OrderType::Limit,
                limit_price: Some(Decimal::new(18_525, 2)),
                time_in_force: TimeInForce::Day,
            },
            arrival_price: Decimal::new(18_520, 2),
            arrival_spread: None,
            at,
        },
        Event::OrderAccepted {
            client_order_id: coid.clone(),
            broker_order_id: format!("b-{tag}-{n:012x}"),
            at,
        },
        Event::OrderFilled {
            client_order_id: coid.clone(),
            fill_id: format!("f-{tag}-{n:012x}"),
            symbol: s,
            side: Side::Buy,
            qty: Decimal::new(10 + (n % 90) as i64, 0),
            price: Decimal::new(18_522, 2),
            at,
        },
        Event::OrderClosed {
            client_order_id: coid,
            status: OrderStatus::Filled,
            reason: None,
            at,
        },
    ]
}

fn events(tag: &str, n: u64) -> Vec<Event> {
    (0..n.div_ceil(4))
        .flat_map(|i| order_life(tag, i))
        .take(n as usize)
        .collect()
}

async fn lease(store: Arc<dyn LeaseStore>, account: &str) -> Arc<Lease> {
    let terms = LeaseTerms {
        ttl: std::time::Duration::from_secs(3600),
        margin: std::time::Duration::from_secs(1),
    };
    match Lease::acquire(store, account, &keel_store::holder_id(), terms)
        .await
        .expect("acquire")
    {
        LeaseAttempt::Acquired(l) => l,
        LeaseAttempt::Busy(r) => panic!("lease busy: {r:?}"),
    }
}

struct Row {
    backend: &'static str,
    single: f64,
    single_fenced: f64,
    batched: f64,
    cycles: f64,
    rebalances: f64,
    orders: f64,
}

async fn measure(
    backend: &'static str,
    open: impl Fn(u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = Arc<dyn LeaseStore>>>>,
) -> Row {
    // Single appends, unfenced.
    let s = open(0).await;
    s.append(&Event::AccountOpened {
        account_id: "bench".into(),
        cash: Decimal::from(1_000_000),
        at: base(),
    })
    .await
    .unwrap();
    // Warm-up (file growth, WAL creation, connection pool, statement caches).
    for e in &events("w", 100) {
        s.append(e).await.unwrap();
    }
    let evs = events("u", SINGLE);
    let t = Instant::now();
    for e in &evs {
        s.append(e).await.unwrap();
    }
    let single = SINGLE as f64 / t.elapsed().as_secs_f64();

    // Single appends, fenced.
    let l = lease(s.clone(), "bench").await;
    let f = l.fenced_store();
    let evs = events("f", SINGLE);
    let t = Instant::now();
    for e in &evs {
        f.append(e).await.unwrap();
    }
    let single_fenced = SINGLE as f64 / t.elapsed().as_secs_f64();

    // Batches of 100, fenced.
    let evs = events("b", BATCHES * BATCH);
    let t = Instant::now();
    for chunk in evs.chunks(BATCH as usize) {
        f.append_batch(chunk).await.unwrap();
    }
    let batched = (BATCHES * BATCH) as f64 / t.elapsed().as_secs_f64();
    assert!(s.verify_chain().await.unwrap().is_ok());

    // Leased cycles on a fresh store.
    let s = open(1).await;
    let l = lease(s.clone(), "bench").await;
    let clock = Arc::new(FixedClock::new(base() + Duration::minutes(30)));
    let paper = PaperBroker::open_in_memory(
        PaperConfig {
            account_id: "bench".into(),
            partial_fill_prob: 0.0,
            ..Default::default()
        },
        clock.clone(),
    )
    .await
    .map(Arc::new)
    .unwrap();
    let mut risk = keel_planner::RiskConfig::default();
    risk.guards.cooldown.symbol_secs = 0;
    risk.guards.cooldown.account_secs = 0;
    let worker = Worker::new(
        "bench",
        Arc::new(l.fenced_store()),
        paper.clone(),
        paper,
        clock.clone(),
        risk,
        WorkerConfig::default(),
        KillSwitchConfig::default(),
    )
    .with_lease(l.clone());
    worker.recover().await.unwrap();
    let (mut cycles, mut orders) = (0u32, 0u32);
    let t = Instant::now();
    for i in 0..REBALANCES {
        // A minute apart, so the order-rate window never fills up.
        clock.set(base() + Duration::minutes(30) + Duration::seconds(61 * i as i64));
        let now = clock.now();
        let mut targets: Vec<Target> = NAMES
            .iter()
            .enumerate()
            .map(|(k, n)| Target {
                symbol: sym(n),
                // Alternating tilts: every rebalance trades every name.
                weight: Decimal::new(if (k as u32 + i).is_multiple_of(2) { 3 } else { 6 }, 2),
            })
            .collect();
        targets.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        worker
            .submit_target_set(TargetSet {
                id: format!("bench-{i}"),
                as_of: now,
                valid_until: None,
                targets,
                liquidate: true,
            })
            .await
            .unwrap();
        for _ in 0..2 {
            let out = worker.cycle().await.unwrap();
            cycles += 1;
            if let CycleOutcome::Submitted { sent, .. } = out {
                orders += sent;
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    assert!(orders >= REBALANCES * 6, "the benchmark traded: {orders} orders");
    assert!(s.verify_chain().await.unwrap().is_ok());
    Row {
        backend,
        single,
        single_fenced,
        batched,
        cycles: cycles as f64 / secs,
        rebalances: REBALANCES as f64 / secs,
        orders: orders as f64 / secs,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful either way: this harness always runs its fixed workload.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let path = dir.path().to_path_buf();
    rows.push(rt.block_on(measure("sqlite", move |i| {
        let p = path.join(format!("bench-{i}.db"));
        Box::pin(async move { Arc::new(SqliteStore::open(p).await.unwrap()) as Arc<dyn LeaseStore> })
    })));
    if let Ok(url) = std::env::var("KEEL_TEST_PG_URL") {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let prefix = format!("keel_bench_{}_{nanos}", std::process::id());
        let settings = rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
            let sc: String = sqlx::query_scalar("SHOW synchronous_commit")
                .fetch_one(&mut c)
                .await
                .ok()?;
            let fs: String = sqlx::query_scalar("SHOW fsync").fetch_one(&mut c).await.ok()?;
            Some(format!("synchronous_commit={sc}, fsync={fs}"))
        });
        match settings {
            None => println!("PostgreSQL at KEEL_TEST_PG_URL unreachable: measuring SQLite only"),
            Some(settings) => {
                println!("PostgreSQL: {settings}");
                let (u, p) = (url.clone(), prefix.clone());
                rows.push(rt.block_on(measure("postgres", move |i| {
                    let (u, schema) = (u.clone(), format!("{p}_{i}"));
                    Box::pin(async move {
                        Arc::new(PgStore::connect_schema(&u, &schema).await.unwrap()) as Arc<dyn LeaseStore>
                    })
                })));
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                        for i in 0..2 {
                            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{prefix}_{i}\" CASCADE"))
                                .execute(&mut c)
                                .await;
                        }
                    }
                });
            }
        }
    } else {
        println!("KEEL_TEST_PG_URL unset: measuring SQLite only");
    }
    println!(
        "\n{:<9} {:>16} {:>18} {:>18} {:>11} {:>13} {:>10}",
        "backend",
        "appends/s single",
        "appends/s fenced",
        "appends/s batch100",
        "cycles/s",
        "rebalances/s",
        "orders/s"
    );
    for r in rows {
        println!(
            "{:<9} {:>16.0} {:>18.0} {:>18.0} {:>11.1} {:>13.1} {:>10.1}",
            r.backend, r.single, r.single_fenced, r.batched, r.cycles, r.rebalances, r.orders
        );
    }
}
