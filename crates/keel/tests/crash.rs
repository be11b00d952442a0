//! Invariant 8 (nothing lost on crash) and invariant 2 (no duplicate orders),
//! proven the hard way: the real `keel` binary is SIGKILLed at random points
//! of live cycles against the paper broker, restarted, and at the end the
//! store must agree with the broker exactly and the audit chain must verify.
//!
//! The seed is printed; rerun a failure with `KEEL_CRASH_SEED=<seed>`.

use chrono::{DateTime, Duration, Utc};
use keel_broker::{Broker, PaperBroker, PaperConfig};
use keel_domain::{Clock, FixedClock};
use keel_store::{FillFilter, SqliteStore, Store};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

const MIN_KILLS: u32 = 50;

fn keel(dir: &Path, args: &[&str], at: DateTime<Utc>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keel"));
    c.args(args)
        .arg("--data-dir")
        .arg(dir)
        .arg("--at")
        .arg(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run_ok(dir: &Path, args: &[&str], at: DateTime<Utc>) -> String {
    let out = keel(dir, args, at).output().expect("run keel");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "keel {args:?} at {at} failed: {stdout}\n{stderr}"
    );
    stdout
}

use keel_broker::universe::splitmix as mix;

const NAMES: &[&str] = &[
    "AAPL", "MSFT", "NVDA", "JPM", "XOM", "KO", "PG", "WMT", "HD", "V", "MA", "CVX",
];

fn target_file(dir: &Path, id: &str, at: DateTime<Utc>, rng: &mut u64) -> std::path::PathBuf {
    let mut targets = Vec::new();
    for name in NAMES {
        *rng = mix(*rng);
        if !(*rng).is_multiple_of(3) {
            // 2%..9% each: roughly 0.5–0.8 gross, enough turnover between sets to trade both ways.
            targets.push(format!(
                "{{\"symbol\":\"{name}\",\"weight\":\"0.0{}\"}}",
                2 + *rng % 8
            ));
        }
    }
    let json = format!(
        "{{\"id\":\"{id}\",\"as_of\":\"{}\",\"liquidate\":true,\"targets\":[{}]}}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        targets.join(",")
    );
    let path = dir.join(format!("{id}.json"));
    std::fs::write(&path, json).expect("write target file");
    path
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_sends_nothing_twice() {
    let seed: u64 = std::env::var("KEEL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_124);
    println!("crash test seed {seed} (rerun with KEEL_CRASH_SEED={seed})");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    // Partial fills that complete later, a little latency on every venue call
    // (to widen the windows a kill can land in), and some unknown outcomes.
    std::fs::write(
        dir.join("keel.toml"),
        "account_id = \"crash\"\n\
         [paper]\nseed = 5\npartial_fill_prob = 0.5\nfill_delay_secs = 90\n\
         [paper.faults]\ndelay_ms = 2\ntimeout_after_send = 0.05\n\
         [worker]\nretry_backoff_ms = 1\nstale_order_secs = 240\nmax_attempts = 20\n\
         [kill_switch]\nunknown_outcome_limit = 1000\n\
         [guards.cooldown]\nsymbol_secs = 0\naccount_secs = 0\n",
    )
    .unwrap();

    let sessions = keel_calendar::sessions("2026-11-02".parse().unwrap(), "2026-11-30".parse().unwrap());
    let mut times = Vec::new();
    for s in &sessions {
        let mut t = s.open + Duration::minutes(10);
        while t < s.close - Duration::minutes(10) {
            times.push(t);
            t += Duration::minutes(4);
        }
    }

    let mut rng = mix(seed);
    let (mut kills, mut steps) = (0u32, 0usize);
    let mut last = times[0];
    for (i, &t) in times.iter().enumerate() {
        if kills >= MIN_KILLS + 10 {
            break;
        }
        last = t;
        steps += 1;
        if i.is_multiple_of(5) {
            let f = target_file(tmp.path(), &format!("set-{i}"), t, &mut rng);
            run_ok(&dir, &["submit", f.to_str().unwrap()], t);
        }
        let mut child = keel(&dir, &["cycle"], t).spawn().expect("spawn keel cycle");
        rng = mix(rng);
        std::thread::sleep(std::time::Duration::from_millis(rng % 150));
        if child.try_wait().expect("try_wait").is_none() {
            child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
            kills += 1;
        }
        let _ = child.wait();
        // Restart: recovery must always succeed and never trip the kill switch.
        let out = run_ok(&dir, &["cycle"], t);
        assert!(!out.contains("killed"), "step {i} at {t}: {out}");
    }
    println!("{steps} steps, {kills} SIGKILLs");
    assert!(kills >= MIN_KILLS, "only {kills} kills landed mid-run");

    // Let working orders finish, then compare everything with the venue.
    let end = last + Duration::minutes(5);
    run_ok(&dir, &["cycle"], end);
    let verify = run_ok(&dir, &["audit", "verify"], end);
    assert!(verify.contains("audit chain ok"), "{verify}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(end));
        let cfg = PaperConfig {
            account_id: "crash".into(),
            seed: 5,
            partial_fill_prob: 0.5,
            fill_delay_secs: 90,
            ..Default::default()
        };
        let paper = PaperBroker::open(&dir.join("paper-broker.db"), cfg, clock)
            .await
            .expect("open paper");
        let store = SqliteStore::open(&dir.join("keel.db")).await.expect("open store");

        let received = paper.submissions_received().await.unwrap();
        assert!(received.len() > 20, "the test traded: {} orders", received.len());
        for (id, n) in &received {
            assert_eq!(*n, 1, "client order id {id} was sent {n} times");
        }

        let broker_fills: BTreeSet<String> = paper
            .orders()
            .await
            .unwrap()
            .into_iter()
            .flat_map(|o| o.fills.into_iter().map(|f| f.fill_id))
            .collect();
        let store_fills: BTreeSet<String> = store
            .fills(&FillFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.fill_id)
            .collect();
        let lost: Vec<_> = broker_fills.difference(&store_fills).collect();
        assert!(lost.is_empty(), "fills lost: {lost:?}");
        assert_eq!(broker_fills, store_fills);

        let acct = paper.account().await.unwrap();
        assert_eq!(store.cash().await.unwrap(), acct.cash, "cash equals the broker's");
        let mine = store.positions().await.unwrap();
        let theirs = paper.positions().await.unwrap();
        assert_eq!(mine.len(), theirs.len(), "{mine:?} vs {theirs:?}");
        for p in theirs {
            assert_eq!(mine.get(&p.symbol).map(|r| r.qty), Some(p.qty), "{}", p.symbol);
        }
        assert!(store.kill_switch().await.unwrap().is_none(), "no false kill");
    });
}
