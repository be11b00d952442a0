//! Invariants 2 (no duplicate orders) and 8 (nothing lost on crash) against
//! the Alpaca adapter: the real `keel` binary — one-shot `keel cycle`s and
//! long-running `keel run`s listening to the trade_updates stream — is
//! SIGKILLed at random points while `alpaca-fake` injects every fault it
//! has (504s on accepted submits, rejects after accept, 429 storms, 5xx on
//! reads, and on the stream: drops, silent sockets, lost, duplicated and
//! reordered events), plus explicit stream drops. At the end no client order
//! id reached the venue twice, every fill the venue made is in keel's store
//! (per order, quantity and notional), keel's cash and positions are the
//! venue's, and the audit chain verifies.
//!
//! The seed is printed; rerun a failure with `KEEL_CRASH_SEED=<seed>`.

mod alpaca_fake;

use alpaca_fake::*;
use keel_broker::universe::splitmix as mix;
use keel_store::{FillFilter, SqliteStore, Store};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

const MIN_KILLS: u32 = 50;

const NAMES: &[&str] = &["AAPL", "MSFT", "NVDA", "JPM", "XOM", "KO", "PG", "WMT", "HD", "V"];

fn set_file(dir: &Path, id: &str, at: &str, rng: &mut u64) -> String {
    let mut w = Vec::new();
    let mut weights: Vec<String> = Vec::new();
    for name in NAMES {
        *rng = mix(*rng);
        if !(*rng).is_multiple_of(3) {
            weights.push(format!("0.0{}", 2 + *rng % 8));
            w.push(*name);
        }
    }
    let pairs: Vec<(&str, &str)> = w
        .iter()
        .copied()
        .zip(weights.iter().map(String::as_str))
        .collect();
    target_file(dir, id, &plus(at, -30), true, &pairs)
}

fn d(v: &serde_json::Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or("0")).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// `keel cycle` until one succeeds (a venue fault may fail a cycle: exit 1,
/// nothing lost); never the kill switch (exit 3).
fn settle(cfg: &Path, at: &str) {
    for _ in 0..5 {
        let o = run(cfg, &["cycle"], at);
        match o.status.code() {
            Some(0) => return,
            Some(3) => panic!(
                "the kill switch tripped at {at}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let o = run(cfg, &["cycle"], at);
    panic!(
        "keel cycle at {at} never succeeded: {:?}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `keel submit`, again if a venue fault failed it (exit 1; nothing queued).
fn submit(cfg: &Path, file: &str, at: &str) {
    for _ in 0..5 {
        let o = run(cfg, &["submit", file], at);
        if o.status.success() {
            return;
        }
        assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(cfg, &["submit", file], at);
}

#[test]
fn sigkill_against_a_faulty_alpaca_loses_nothing_and_sends_nothing_twice() {
    let seed: u64 = std::env::var("KEEL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_202);
    println!("alpaca crash test seed {seed} (rerun with KEEL_CRASH_SEED={seed})");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let fake = Fake::start(
        OPEN_AT,
        &[
            "--seed",
            &(seed % 1_000_000).to_string(),
            "--faults",
            "all",
            // Every kind at its default rate but the 429 storms: each costs
            // seconds of Retry-After, and a few are enough to prove the point.
            "--fault-profile",
            "rate_storm=0.002",
            "--partial-fill-prob",
            "0.4",
            "--cancel-delay-ms",
            "300",
            "--tick-ms",
            "50",
            "--non-tradable",
            "",
        ],
        &dir.join("fake.log"),
    );
    let cfg = alpaca_config(
        dir,
        "crash",
        &fake.base(),
        &fake.base(),
        &fake.ws(),
        "[worker]\nretry_backoff_ms = 1\nstale_order_secs = 240\nmax_attempts = 20\n\
         [kill_switch]\nunknown_outcome_limit = 1000\nreject_storm = 1000\n\
         [guards.cooldown]\nsymbol_secs = 0\naccount_secs = 0\n\
         [schedule]\ncycle_every_secs = 1\n\
         [server]\nbind = \"127.0.0.1:0\"\n",
    );

    // The file ends in [broker.alpaca]: ride out the fake's 429 storms
    // (5 to 20 refused requests) on reads.
    let mut text = std::fs::read_to_string(&cfg).expect("read keel.toml");
    text.push_str("read_tries = 8\n");
    std::fs::write(&cfg, text).expect("write keel.toml");

    let sessions = keel_calendar::sessions("2026-12-01".parse().unwrap(), "2026-12-04".parse().unwrap());
    let mut times = Vec::new();
    for s in &sessions {
        let mut t = s.open + chrono::Duration::minutes(10);
        while t < s.close - chrono::Duration::minutes(10) {
            times.push(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            t += chrono::Duration::minutes(4);
        }
    }

    let mut rng = mix(seed);
    let (mut kills, mut runs_killed, mut drops) = (0u32, 0u32, 0u32);
    let mut last = times[0].clone();
    for (i, t) in times.iter().enumerate() {
        if kills >= MIN_KILLS + 2 {
            break;
        }
        last = t.clone();
        fake.set_clock(t);
        if i.is_multiple_of(4) {
            let f = set_file(dir, &format!("set-{i}"), t, &mut rng);
            submit(&cfg, &f, t);
        }
        rng = mix(rng);
        let long = rng.is_multiple_of(2);
        let mut child = if long {
            keel(&cfg, &["run"], t)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn keel run")
        } else {
            keel(&cfg, &["cycle"], t).spawn().expect("spawn keel cycle")
        };
        rng = mix(rng);
        if long {
            // Long enough to connect the stream and trade a cycle or two;
            // now and then the venue drops every stream connection mid-run.
            std::thread::sleep(Duration::from_millis(300 + rng % 1200));
            if rng.is_multiple_of(3) {
                fake.post("/_fake/stream/drop", "{}");
                drops += 1;
                std::thread::sleep(Duration::from_millis(rng % 400));
            }
        } else {
            std::thread::sleep(Duration::from_millis(rng % 200));
        }
        if child.try_wait().expect("try_wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
            runs_killed += u32::from(long);
        }
        let _ = child.wait();
        settle(&cfg, t);
    }
    println!("{kills} SIGKILLs ({runs_killed} of keel run), {drops} explicit stream drops");
    assert!(kills >= MIN_KILLS, "only {kills} kills landed mid-run");

    // Faults off, let working orders finish, and settle.
    fake.post("/_fake/faults", "{}");
    let end = plus(&last, 300);
    fake.set_clock(&end);
    std::thread::sleep(Duration::from_millis(500));
    settle(&cfg, &end);
    std::thread::sleep(Duration::from_millis(500));
    settle(&cfg, &end);
    let verify = ok(&cfg, &["audit", "verify"], &end);
    assert!(verify.contains("audit chain ok"), "{verify}");

    let subs = fake.submissions();
    let counts = subs["by_client_order_id"].as_object().expect("counts");
    assert!(counts.len() > 20, "the test traded: {} orders", counts.len());
    for (cid, n) in counts {
        assert_eq!(n, 1, "client order id {cid} reached the venue {n} times");
    }
    let state = fake.state();
    println!("venue counters: {}", state["counters"]);

    // The venue's fills, per client order id: (shares, notional).
    let cid_of: BTreeMap<String, String> = state["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            (
                o["id"].as_str().expect("id").to_string(),
                o["client_order_id"].as_str().expect("cid").to_string(),
            )
        })
        .collect();
    let mut venue_fills: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for f in state["fills"].as_array().expect("fills") {
        let cid = cid_of[f["order_id"].as_str().expect("order_id")].clone();
        let e = venue_fills.entry(cid).or_default();
        e.0 += d(&f["qty"]);
        e.1 += d(&f["qty"]) * d(&f["price"]);
    }
    let venue_cash = d(&state["account"]["cash"]);
    let venue_positions: BTreeMap<String, Decimal> = state["positions"]
        .as_array()
        .expect("positions")
        .iter()
        .map(|p| (p["symbol"].as_str().expect("symbol").to_string(), d(&p["qty"])))
        .collect();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = SqliteStore::open(&dir.join("data/keel.db"))
            .await
            .expect("open store");
        let mut mine: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
        for f in store.fills(&FillFilter::default()).await.expect("fills") {
            let e = mine.entry(f.client_order_id).or_default();
            e.0 += f.qty;
            e.1 += f.qty * f.price;
        }
        let lost: Vec<_> = venue_fills
            .iter()
            .filter(|(cid, v)| mine.get(*cid) != Some(v))
            .map(|(cid, v)| (cid, v, mine.get(cid)))
            .collect();
        assert!(
            lost.is_empty(),
            "fills lost or miscounted (venue, keel): {lost:?}"
        );
        assert_eq!(mine, venue_fills, "keel records no fill the venue did not make");
        assert_eq!(
            store.cash().await.expect("cash"),
            venue_cash,
            "cash equals the venue's"
        );
        let held: BTreeMap<String, Decimal> = store
            .positions()
            .await
            .expect("positions")
            .into_iter()
            .filter(|(_, r)| !r.qty.is_zero())
            .map(|(s, r)| (s.to_string(), r.qty))
            .collect();
        assert_eq!(held, venue_positions, "positions equal the venue's");
        assert!(
            store.kill_switch().await.expect("kill switch").is_none(),
            "no false kill"
        );
    });
}
