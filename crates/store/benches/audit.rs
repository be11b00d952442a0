//! Audit-log benchmarks.
//!
//! 1. Durable append rate: `append_batch` with batches of 100 events against a
//!    raw sqlx batch insert of the same audit rows (same file settings: WAL,
//!    synchronous=FULL; one transaction per 100 rows). Goal: ≥ 80% of raw.
//! 2. Restart-to-ready: `SqliteStore::open` + `audit_head` on a log of
//!    1,000,000 events. Goal: ≤ 1 s. The database is built once by a bulk
//!    path (one transaction of raw inserts with a valid chain) and cached
//!    under `target/keel-store-bench/`.
//! 3. Tamper-proof state (`tamper_proof`): on the same 1M-event log with its
//!    projections rebuilt, a full `verify_log` (chain + replay of every event +
//!    comparison with every projection table + anchor: `keel audit verify`);
//!    restart-to-ready with start-up's verification from the sealed verified
//!    state (open, whole chain, replay after the state, every table's digest,
//!    seal the renewed state); and the durable append rate with an
//!    HMAC-SHA-256 (keyed) chain against SHA-256, interleaved in blocks.
//!    Goals: verify ≤ 2 s, restart ≤ 1 s, keyed within 10%.

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use keel_domain::{Event, Order, OrderStatus, OrderType, Side, Symbol, TimeInForce};
use keel_store::{chain_hash, fmt_time, SqliteStore, Store, GENESIS_HASH};
use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const BATCH: usize = 100;
const BIG_LOG: u64 = 1_000_000;
const SYMBOLS: [&str; 8] = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "BRK.B", "SPY"];

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 30, 0)
        .single()
        .expect("valid time")
}

fn symbol(i: u64) -> Symbol {
    Symbol::new(SYMBOLS[(i % SYMBOLS.len() as u64) as usize]).expect("valid symbol")
}

/// One order's life: intent, ack, fill, close — four events per `n`.
fn order_life(n: u64) -> [Event; 4] {
    let at = base() + Duration::milliseconds(n as i64);
    let coid = format!("k-{}-buy-0-{n:024x}", symbol(n));
    let side = if n % 3 == 2 { Side::Sell } else { Side::Buy };
    [
        Event::OrderIntent {
            cycle_id: format!("cycle-{}", n / 25),
            order: Order {
                client_order_id: coid.clone(),
                symbol: symbol(n),
                side,
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
            broker_order_id: format!("b-{n:016x}"),
            at,
        },
        Event::OrderFilled {
            client_order_id: coid.clone(),
            fill_id: format!("fill-{n:016x}"),
            symbol: symbol(n),
            side,
            qty: Decimal::new(10 + (n % 90) as i64, 0),
            price: Decimal::new(18_522 + (n % 7) as i64, 2),
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

/// `BATCH` trading events (25 order lives) with ids unique across the run.
fn trading_batch(counter: &AtomicU64) -> Vec<Event> {
    (0..BATCH as u64 / 4)
        .flat_map(|_| order_life(counter.fetch_add(1, Ordering::Relaxed)))
        .collect()
}

/// `BATCH` reconciliation events: one single-row projection update each, so
/// the cost is dominated by the audit row itself.
fn light_batch(counter: &AtomicU64) -> Vec<Event> {
    (0..BATCH)
        .map(|_| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            Event::Reconciled {
                ok: true,
                differences: vec![],
                scope: None,
                at: base() + Duration::nanoseconds(n as i64),
            }
        })
        .collect()
}

/// The same settings the store uses, for the raw baseline.
async fn raw_pool(path: &Path) -> SqlitePool {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(std::time::Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .expect("raw pool");
    // The audit table exactly as the store's migration creates it.
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, \
         event_id TEXT NOT NULL UNIQUE, payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("create audit");
    pool
}

/// An audit row as the store would write it (serialised, hashed).
struct RawRow {
    seq: i64,
    at: String,
    kind: &'static str,
    event_id: String,
    payload: String,
    prev_hash: String,
    hash: String,
}

/// Chained rows for `evs`, continuing from `(seq, prev)`.
fn rows_for(evs: &[Event], seq: &mut u64, prev: &mut String) -> Vec<RawRow> {
    evs.iter()
        .map(|ev| {
            *seq += 1;
            let at = fmt_time(ev.at());
            let event_id = ev.event_id();
            let payload = serde_json::to_string(ev).expect("serialise");
            let hash = chain_hash(prev, *seq, &at, ev.kind(), &event_id, &payload);
            RawRow {
                seq: *seq as i64,
                at,
                kind: ev.kind(),
                event_id,
                payload,
                prev_hash: std::mem::replace(prev, hash.clone()),
                hash,
            }
        })
        .collect()
}

/// Raw baseline: insert precomputed rows in one transaction.
async fn raw_insert(pool: &SqlitePool, rows: &[RawRow]) {
    let mut tx = pool.begin().await.expect("begin");
    for r in rows {
        sqlx::query(
            "INSERT INTO audit (seq, at, kind, event_id, payload, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.seq)
        .bind(&r.at)
        .bind(r.kind)
        .bind(&r.event_id)
        .bind(&r.payload)
        .bind(&r.prev_hash)
        .bind(&r.hash)
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
}

/// Raw baseline, multi-row form: the same rows in one `INSERT ... VALUES
/// (...), (...)` statement (what the store itself does for audit rows).
async fn raw_insert_multirow(pool: &SqlitePool, rows: &[RawRow]) {
    let mut tx = pool.begin().await.expect("begin");
    // Anonymous `?`: with SQLite, binding hundreds of named `$N` parameters is
    // quadratic (see keel_store's conn.rs), which would handicap the baseline.
    let sql = format!(
        "INSERT INTO audit (seq, at, kind, event_id, payload, prev_hash, hash) VALUES {}",
        vec!["(?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ")
    );
    let mut q = sqlx::query(&sql);
    for r in rows {
        q = q
            .bind(r.seq)
            .bind(&r.at)
            .bind(r.kind)
            .bind(&r.event_id)
            .bind(&r.payload)
            .bind(&r.prev_hash)
            .bind(&r.hash);
    }
    q.execute(&mut *tx).await.expect("insert");
    tx.commit().await.expect("commit");
}

fn append_rate(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("durable_append_batch_100");
    g.throughput(Throughput::Elements(BATCH as u64));

    // Raw baseline. Rows are prepared outside the timed section: the baseline is
    // the cost of durably inserting equivalent rows, nothing else.
    {
        let pool = rt.block_on(raw_pool(&dir.path().join("raw.db")));
        let counter = AtomicU64::new(0);
        let mut seq = 0u64;
        let mut prev = GENESIS_HASH.to_string();
        g.bench_function("raw_sqlx_insert", |b| {
            b.iter_batched(
                || rows_for(&trading_batch(&counter), &mut seq, &mut prev),
                |rows| rt.block_on(raw_insert(&pool, &rows)),
                BatchSize::PerIteration,
            )
        });
        rt.block_on(pool.close());
    }
    {
        let pool = rt.block_on(raw_pool(&dir.path().join("raw-multirow.db")));
        let counter = AtomicU64::new(0);
        let mut seq = 0u64;
        let mut prev = GENESIS_HASH.to_string();
        g.bench_function("raw_sqlx_multirow_insert", |b| {
            b.iter_batched(
                || rows_for(&trading_batch(&counter), &mut seq, &mut prev),
                |rows| rt.block_on(raw_insert_multirow(&pool, &rows)),
                BatchSize::PerIteration,
            )
        });
        rt.block_on(pool.close());
    }

    // The store with a trading mix (intent/ack/fill/close): serialisation,
    // hashing, idempotency and all projections included.
    {
        let store = rt
            .block_on(SqliteStore::open(dir.path().join("store-trading.db")))
            .expect("open");
        let counter = AtomicU64::new(0);
        g.bench_function("store_trading_mix", |b| {
            b.iter_batched(
                || trading_batch(&counter),
                |evs| black_box(rt.block_on(store.append_batch(&evs)).expect("append")),
                BatchSize::PerIteration,
            )
        });
        rt.block_on(store.close());
    }

    // The store with light events (one single-row projection upsert each).
    {
        let store = rt
            .block_on(SqliteStore::open(dir.path().join("store-light.db")))
            .expect("open");
        let counter = AtomicU64::new(0);
        g.bench_function("store_light_events", |b| {
            b.iter_batched(
                || light_batch(&counter),
                |evs| black_box(rt.block_on(store.append_batch(&evs)).expect("append")),
                BatchSize::PerIteration,
            )
        });
        rt.block_on(store.close());
    }
    g.finish();
}

/// Median of a sample, in milliseconds.
fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2] * 1e3
}

/// The same comparison as `append_rate`, but interleaved in blocks (20
/// batches of each variant in turn, 15 times over), so that load from other
/// processes on a shared machine hits every variant alike. Blocks rather than
/// single batches, because a commit's fsync also pays for whatever another
/// file left in the filesystem journal. Prints medians and the store's rate as
/// a share of each raw rate.
fn paired_append_rate(_: &mut Criterion) {
    const BLOCKS: usize = 15;
    const PER_BLOCK: usize = 20;
    let rt = rt();
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = rt.block_on(raw_pool(&dir.path().join("raw.db")));
    let multi = rt.block_on(raw_pool(&dir.path().join("multi.db")));
    let trading = rt
        .block_on(SqliteStore::open(dir.path().join("trading.db")))
        .expect("open");
    let light = rt
        .block_on(SqliteStore::open(dir.path().join("light.db")))
        .expect("open");
    let (c1, c2, c3, c4) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let (mut s1, mut p1, mut s2, mut p2) = (0u64, GENESIS_HASH.to_string(), 0u64, GENESIS_HASH.to_string());
    let mut times: [Vec<f64>; 4] = Default::default();
    for _ in 0..BLOCKS {
        for _ in 0..PER_BLOCK {
            let rows = rows_for(&trading_batch(&c1), &mut s1, &mut p1);
            let t = Instant::now();
            rt.block_on(raw_insert(&raw, &rows));
            times[0].push(t.elapsed().as_secs_f64());
        }
        for _ in 0..PER_BLOCK {
            let rows = rows_for(&trading_batch(&c2), &mut s2, &mut p2);
            let t = Instant::now();
            rt.block_on(raw_insert_multirow(&multi, &rows));
            times[1].push(t.elapsed().as_secs_f64());
        }
        for _ in 0..PER_BLOCK {
            let evs = trading_batch(&c3);
            let t = Instant::now();
            black_box(rt.block_on(trading.append_batch(&evs)).expect("append"));
            times[2].push(t.elapsed().as_secs_f64());
        }
        for _ in 0..PER_BLOCK {
            let evs = light_batch(&c4);
            let t = Instant::now();
            black_box(rt.block_on(light.append_batch(&evs)).expect("append"));
            times[3].push(t.elapsed().as_secs_f64());
        }
    }
    let [raw_ms, multi_ms, trading_ms, light_ms] = times.map(median_ms);
    eprintln!(
        "interleaved medians over {} batches of {BATCH} each (ms per batch):",
        BLOCKS * PER_BLOCK
    );
    eprintln!("  raw per-row insert     {raw_ms:7.3}");
    eprintln!("  raw multi-row insert   {multi_ms:7.3}");
    for (name, ms) in [
        ("store trading mix", trading_ms),
        ("store light events", light_ms),
    ] {
        eprintln!(
            "  {name:<22} {ms:7.3}  = {:.0}% of raw per-row rate, {:.0}% of raw multi-row rate",
            100.0 * raw_ms / ms,
            100.0 * multi_ms / ms
        );
    }
}

/// Where the 1M-event database is cached between runs.
fn big_log_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("keel-store-bench").join("audit-1m.db")
}

/// Builds (once) a store file whose log holds `BIG_LOG` chained events.
fn ensure_big_log(rt: &tokio::runtime::Runtime) -> PathBuf {
    let path = big_log_path();
    let ready = rt.block_on(async {
        if !path.exists() {
            return false;
        }
        let s = SqliteStore::open(&path).await.expect("open cached log");
        let (seq, _) = s.audit_head().await.expect("head");
        s.close().await;
        seq == BIG_LOG
    });
    if ready {
        return path;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create cache dir");
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let started = Instant::now();
    rt.block_on(async {
        // The store creates the schema; the bulk path then writes audit rows
        // (valid chain, real payloads) in one transaction, skipping
        // projections, which opening never reads.
        let s = SqliteStore::open(&path).await.expect("create store");
        s.close().await;
        let pool = raw_pool(&path).await;
        let mut tx = pool.begin().await.expect("begin");
        let mut seq = 0u64;
        let mut prev = GENESIS_HASH.to_string();
        let mut n = 0u64;
        while seq < BIG_LOG {
            let evs = order_life(n);
            n += 1;
            let take = ((BIG_LOG - seq) as usize).min(evs.len());
            for r in rows_for(&evs[..take], &mut seq, &mut prev) {
                sqlx::query(
                    "INSERT INTO audit (seq, at, kind, event_id, payload, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(r.seq)
                .bind(&r.at)
                .bind(r.kind)
                .bind(&r.event_id)
                .bind(&r.payload)
                .bind(&r.prev_hash)
                .bind(&r.hash)
                .execute(&mut *tx)
                .await
                .expect("insert");
            }
        }
        tx.commit().await.expect("commit");
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await
            .expect("checkpoint");
        pool.close().await;
    });
    eprintln!(
        "built {} with {BIG_LOG} events in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    path
}

fn restart_to_ready(c: &mut Criterion) {
    let rt = rt();
    let path = ensure_big_log(&rt);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!("1M-event store file: {:.0} MiB", size as f64 / (1024.0 * 1024.0));

    let mut g = c.benchmark_group("restart_to_ready_1m_events");
    g.sample_size(20);
    g.bench_function("open_plus_audit_head", |b| {
        b.iter(|| {
            rt.block_on(async {
                let s = SqliteStore::open(&path).await.expect("open");
                let head = s.audit_head().await.expect("head");
                assert_eq!(head.0, BIG_LOG);
                s.close().await;
                black_box(head)
            })
        })
    });
    g.finish();

    // Not a goal, but operators will ask: a full `keel audit verify` of 1M rows.
    let started = Instant::now();
    let report = rt.block_on(async {
        let s = SqliteStore::open(&path).await.expect("open");
        let r = s.verify_chain().await.expect("verify");
        s.close().await;
        r
    });
    assert!(report.is_ok(), "{report:?}");
    eprintln!(
        "verify_chain over {} events: {:.2} s",
        report.events,
        started.elapsed().as_secs_f64()
    );
}

/// The 1M-event log with its projections built (cached beside the bare one).
fn ensure_big_log_with_projections(rt: &tokio::runtime::Runtime) -> PathBuf {
    let bare = ensure_big_log(rt);
    let path = bare.with_file_name("audit-1m-projections.db");
    let ready = rt.block_on(async {
        if !path.exists() {
            return false;
        }
        let s = SqliteStore::open(&path).await.expect("open cached log");
        let ok = s.audit_head().await.expect("head").0 == BIG_LOG
            && !s.positions().await.expect("positions").is_empty();
        s.close().await;
        ok
    });
    if ready {
        return path;
    }
    std::fs::copy(&bare, &path).expect("copy the bare log");
    let started = Instant::now();
    rt.block_on(async {
        let s = SqliteStore::open(&path).await.expect("open");
        s.rebuild_projections().await.expect("rebuild");
        s.close().await;
    });
    eprintln!(
        "rebuilt the projections of {BIG_LOG} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    path
}

/// The audit key of the keyed 1M-event log.
const BENCH_KEY: &[u8] = b"bench-audit-key-0123456789";

/// The 1M-event log with projections, rekeyed under [`BENCH_KEY`] (cached):
/// start-up uses a verified state only for a keyed log.
fn ensure_big_keyed_log(rt: &tokio::runtime::Runtime) -> PathBuf {
    let plain = ensure_big_log_with_projections(rt);
    let path = plain.with_file_name("audit-1m-keyed.db");
    let key = || Some(keel_store::AuditKey::new(BENCH_KEY).expect("key"));
    let ready = rt.block_on(async {
        if !path.exists() {
            return false;
        }
        let s = SqliteStore::open(&path).await.expect("open cached log");
        let (seq, head) = s.audit_head().await.expect("head");
        s.close().await;
        seq == BIG_LOG && head.starts_with("v2:")
    });
    if ready {
        return path;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::copy(&plain, &path).expect("copy the log");
    let started = Instant::now();
    rt.block_on(async {
        let s = SqliteStore::open(&path)
            .await
            .expect("open")
            .with_audit_key(key());
        s.rekey().await.expect("rekey");
        s.close().await;
    });
    eprintln!(
        "rekeyed {BIG_LOG} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    path
}

fn tamper_proof(_: &mut Criterion) {
    let rt = rt();
    let path = ensure_big_log_with_projections(&rt);
    // `keel audit verify`: the whole log replayed (chain, replay of every
    // event, every projection table compared, anchor).
    let mut verify_s = Vec::new();
    for _ in 0..3 {
        let report = rt.block_on(async {
            let s = SqliteStore::open(&path).await.expect("open");
            let (seq, head) = s.audit_head().await.expect("head");
            let cp = keel_store::Checkpoint::new(None, "bench", seq, &head, base());
            let t = Instant::now();
            let (r, _) = s.verify_log_from(Some(&cp), None).await.expect("verify");
            verify_s.push(t.elapsed().as_secs_f64());
            s.close().await;
            r
        });
        assert!(report.is_ok(), "{:?}", report.failures());
        assert_eq!((report.events, report.replayed_from), (BIG_LOG, 1));
    }
    eprintln!(
        "full verify_log over {BIG_LOG} events (chain + replay + every projection + anchor): median {:.2} s",
        median_ms(verify_s) / 1e3
    );
    // Restart-to-ready with the start-up verification, on the keyed log:
    // open the store, read the sealed verified state from the witness
    // directory, check the whole chain (HMAC per row), replay what follows
    // the state (here nothing, as after a checkpointed cycle) and compare
    // every projection table's digest; then seal the renewed state, as
    // start-up does.
    let keyed_path = ensure_big_keyed_log(&rt);
    let key = keel_store::AuditKey::new(BENCH_KEY).expect("key");
    let dir = tempfile::tempdir().expect("tempdir");
    let witness = keel_store::Witness::new(dir.path(), None);
    let state = rt.block_on(async {
        let s = SqliteStore::open(&keyed_path)
            .await
            .expect("open")
            .with_audit_key(Some(key.clone()));
        let (r, proven) = s.verify_log_from(None, None).await.expect("verify");
        assert!(r.is_ok() && r.keyed, "{:?}", r.failures());
        s.close().await;
        proven.expect("a verified log yields a state")
    });
    witness
        .save_state(Some(&key), "bench", &state)
        .expect("save state");
    let mut ready_s = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let report = rt.block_on(async {
            let s = SqliteStore::open(&keyed_path)
                .await
                .expect("open")
                .with_audit_key(Some(key.clone()));
            let (seq, head) = s.audit_head().await.expect("head");
            let cp = keel_store::Checkpoint::new(Some(&key), "bench", seq, &head, base());
            let st = witness.load_state(Some(&key), "bench").expect("load state");
            let (r, proven) = s.verify_log_from(Some(&cp), st.as_ref()).await.expect("verify");
            witness
                .save_state(Some(&key), "bench", &proven.expect("state"))
                .expect("save state");
            s.close().await;
            r
        });
        ready_s.push(t.elapsed().as_secs_f64());
        assert!(report.is_ok(), "{:?}", report.failures());
        assert_eq!(
            report.replayed_from,
            BIG_LOG + 1,
            "start-up used the verified state"
        );
    }
    eprintln!(
        "restart-to-ready incl. start-up verification from the verified state, keyed, {BIG_LOG} events: median {:.2} s",
        median_ms(ready_s) / 1e3
    );

    // Append rate, keyed vs unkeyed, interleaved so machine load hits both alike.
    const BLOCKS: usize = 15;
    const PER_BLOCK: usize = 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = rt
        .block_on(SqliteStore::open(dir.path().join("sha.db")))
        .expect("open");
    let keyed = rt
        .block_on(SqliteStore::open(dir.path().join("hmac.db")))
        .expect("open")
        .with_audit_key(Some(key));
    let (c1, c2) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut times: [Vec<f64>; 2] = Default::default();
    for _ in 0..BLOCKS {
        for (i, (store, counter)) in [(&plain, &c1), (&keyed, &c2)].into_iter().enumerate() {
            for _ in 0..PER_BLOCK {
                let evs = trading_batch(counter);
                let t = Instant::now();
                black_box(rt.block_on(store.append_batch(&evs)).expect("append"));
                times[i].push(t.elapsed().as_secs_f64());
            }
        }
    }
    let [sha_ms, hmac_ms] = times.map(median_ms);
    eprintln!(
        "durable append, trading mix, batches of {BATCH}: SHA-256 {sha_ms:.3} ms, HMAC-SHA-256 {hmac_ms:.3} ms \
         per batch (keyed = {:.1}% of the unkeyed rate)",
        100.0 * sha_ms / hmac_ms
    );
    // Pure hashing cost per row, for scale.
    let (at, payload) = ("2026-03-02T14:30:00.000000000Z", "x".repeat(300));
    let k = keel_store::AuditKey::new(b"bench-audit-key-0123456789").expect("key");
    let n = 200_000u64;
    let t = Instant::now();
    for i in 0..n {
        black_box(chain_hash(
            GENESIS_HASH,
            i,
            at,
            "order_filled",
            "fill:x",
            &payload,
        ));
    }
    let sha_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    for i in 0..n {
        black_box(k.row_hash(GENESIS_HASH, i, at, "order_filled", "fill:x", &payload));
    }
    let hmac_ns = t.elapsed().as_nanos() as f64 / n as f64;
    eprintln!("row hash alone: SHA-256 {sha_ns:.0} ns, HMAC-SHA-256 {hmac_ns:.0} ns");
    rt.block_on(plain.close());
    rt.block_on(keyed.close());
}

criterion_group!(
    benches,
    append_rate,
    paired_append_rate,
    restart_to_ready,
    tamper_proof
);
criterion_main!(benches);
