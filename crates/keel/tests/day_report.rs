//! `keel report` on a seeded three-day demo: its numbers are the store's and
//! the dashboard API's (`/api/v1/report/{day}` serves the same model), every
//! format renders, and the HTML report draws non-empty charts in headless
//! Chromium, offline (screenshot: `target/artifacts/report.png`, or
//! `$KEEL_ARTIFACTS_DIR`). The browser part prints "skipped: no chromium"
//! without /usr/bin/chromium and /usr/bin/chromedriver; CI installs both.

use fantoccini::{Client, ClientBuilder};
use keel_store::{FillFilter, OrderFilter, SqliteStore, Store};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

fn keel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keel"))
}

fn run_ok(c: &mut Command) -> Vec<u8> {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out.split_once("\r\n\r\n")?.1.to_string())
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}"))).unwrap()
}

fn seeded() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(
        keel()
            .args([
                "demo",
                "--no-serve",
                "--days",
                "3",
                "--before",
                "2026-12-02",
                "--dir",
            ])
            .arg(tmp.path()),
    );
    tmp
}

fn report(dir: &Path, day: &str, format: &str) -> Vec<u8> {
    run_ok(
        keel()
            .args(["report", "--day", day, "--format", format, "--config"])
            .arg(dir.join("keel.toml"))
            .arg("--data-dir")
            .arg(dir),
    )
}

#[test]
fn report_numbers_are_the_stores_and_the_apis() {
    let tmp = seeded();
    let dir = tmp.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(SqliteStore::open(&dir.join("keel.db"))).unwrap();
    let eods = rt.block_on(store.eod_snapshots()).unwrap();
    assert_eq!(eods.len(), 3);

    // The dashboard, serving the same state.
    let port = free_port();
    let cfg = std::fs::read_to_string(dir.join("keel.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    std::fs::write(dir.join("serve.toml"), cfg).unwrap();
    let _serve = Killed(
        keel()
            .args(["serve", "--config"])
            .arg(dir.join("serve.toml"))
            .arg("--data-dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while get(port, "/api/v1/health").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "keel serve did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut traded_days = 0;
    for eod in &eods {
        let day = eod.date.format("%Y-%m-%d").to_string();
        let cli: Value = serde_json::from_slice(&report(dir, &day, "json")).unwrap();
        let api: Value = serde_json::from_str(&get(port, &format!("/api/v1/report/{day}")).unwrap()).unwrap();
        // One model: byte-for-byte the same numbers from the CLI and the API.
        assert_eq!(cli, api, "{day}: keel report and /api/v1/report differ");

        // EOD figures are the stored snapshot's.
        let e = &cli["eod"];
        assert_eq!(dec(&e["equity"]), eod.equity, "{day}");
        assert_eq!(dec(&e["cash"]), eod.cash, "{day}");
        assert_eq!(dec(&e["gross_exposure"]), eod.gross_exposure, "{day}");
        assert_eq!(dec(&e["net_exposure"]), eod.net_exposure, "{day}");
        assert_eq!(dec(&e["day_pnl"]), eod.day_pnl, "{day}");

        // Orders and fills are the store's rows of that day.
        let orders = rt
            .block_on(store.orders(&OrderFilter {
                day: Some(eod.date),
                ..OrderFilter::default()
            }))
            .unwrap();
        let fills = rt
            .block_on(store.fills(&FillFilter {
                day: Some(eod.date),
                ..FillFilter::default()
            }))
            .unwrap();
        assert_eq!(cli["orders"].as_array().unwrap().len(), orders.len(), "{day}");
        assert_eq!(
            cli["execution"]["fills"].as_u64().unwrap() as usize,
            fills.len(),
            "{day}"
        );
        if !fills.is_empty() {
            traded_days += 1;
        }
        // Traded notional and shortfall, recomputed here from the rows.
        let notional: Decimal = fills.iter().map(|f| f.qty * f.price).sum();
        assert_eq!(dec(&cli["slippage"]["notional"]), notional, "{day}");
        let cost: Decimal = orders
            .iter()
            .filter(|o| o.filled_qty > Decimal::ZERO)
            .filter_map(|o| {
                o.avg_fill_price
                    .map(|p| o.side.sign() * (p - o.arrival_price) * o.filled_qty)
            })
            .sum();
        assert_eq!(
            dec(&cli["shortfall"]["execution_cost"]),
            cost.round_dp(6),
            "{day}"
        );
        let per_order: Decimal = cli["orders"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| !o["shortfall"].is_null())
            .map(|o| dec(&o["shortfall"]))
            .sum();
        assert_eq!(
            per_order.round_dp(6),
            cost.round_dp(6),
            "{day}: per-order shortfall adds up"
        );
        // Spread paid: filled × half the arrival spread, from the rows.
        let spread: Option<Decimal> = orders
            .iter()
            .filter_map(|o| {
                o.arrival_spread
                    .map(|s| (o.filled_qty * s / Decimal::TWO).round_dp(6))
            })
            .reduce(|a, b| a + b);
        let reported = cli["execution"]["spread_paid"]
            .as_str()
            .map(|s| Decimal::from_str(s).unwrap());
        assert_eq!(reported, spread, "{day}: spread paid");
        if !fills.is_empty() {
            assert!(
                spread.is_some_and(|s| s > Decimal::ZERO),
                "{day}: the demo's quotes are two-sided, so filled orders paid a spread"
            );
        }
        // Per-symbol fill counts add up to the day's.
        let per_symbol: u64 = cli["slippage_per_symbol"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["count"].as_u64().unwrap())
            .sum();
        assert_eq!(
            per_symbol as usize,
            fills.iter().filter(|f| f.slippage_bps.is_some()).count()
        );
        // Achieved weights are the snapshot's positions over its equity.
        let held: Decimal = cli["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| dec(&w["achieved"]))
            .sum();
        let expected = eod.gross_exposure / eod.equity;
        assert!(
            (held - expected).abs() < Decimal::new(1, 4),
            "{day}: {held} vs {expected}"
        );
        assert!(
            !cli["target_sets"].as_array().unwrap().is_empty(),
            "{day}: the demo queues a set a day"
        );

        // Text and CSV carry the same equity.
        let eq = eod.equity.round_dp(2).to_string();
        let text = String::from_utf8(report(dir, &day, "text")).unwrap();
        assert!(text.contains(&format!("equity {eq}")), "{text}");
        let csv = String::from_utf8(report(dir, &day, "csv")).unwrap();
        assert!(csv.contains(&format!("eod,equity,{}", eod.equity)), "{csv}");
        assert_eq!(
            csv.lines().filter(|l| l.starts_with("order,k-")).count(),
            orders.len()
        );
    }
    assert!(traded_days >= 2, "the demo should trade on most days");

    // Bad input: exit 2 naming the flag.
    let out = keel()
        .args(["report", "--day", "2026-13-01", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--day"));
    assert!(get(port, "/api/v1/report/yesterday").unwrap().contains("day"));
}

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn artifacts_dir() -> PathBuf {
    if let Ok(d) = std::env::var("KEEL_ARTIFACTS_DIR") {
        return PathBuf::from(d);
    }
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("artifacts")
}

async fn browser(user_data: &Path) -> (Killed, Client) {
    let port = free_port();
    let driver = Killed(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let caps: serde_json::Map<String, Value> = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--window-size=1200,1600",
                format!("--user-data-dir={}", user_data.display()),
            ]
        }
    })
    .as_object()
    .cloned()
    .unwrap();
    let mut last = String::new();
    for _ in 0..100 {
        let mut b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        b.capabilities(caps.clone());
        match b.connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(c) => return (driver, c),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to chromedriver: {last}");
}

#[test]
fn html_report_is_self_contained_and_draws_its_charts() {
    let tmp = seeded();
    let dir = tmp.path();
    let out = dir.join("report.html");
    run_ok(
        keel()
            .args(["report", "--day", "2026-11-27", "--format", "html", "--out"])
            .arg(&out)
            .arg("--config")
            .arg(dir.join("keel.toml"))
            .arg("--data-dir")
            .arg(dir),
    );
    let html = std::fs::read_to_string(&out).unwrap();
    // Self-contained: nothing is fetched (no src/href to anything).
    assert!(
        !html.contains(" src=") && !html.contains("href="),
        "external reference in the report"
    );
    assert!(
        html.contains("KeelChart"),
        "the dashboard's chart library is inlined"
    );
    if !(Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()) {
        eprintln!("skipped: no chromium");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let profile = tempfile::tempdir().unwrap();
        let (_driver, c) = browser(profile.path()).await;
        c.goto(&format!("file://{}", out.display())).await.unwrap();
        let mut drawn = false;
        for _ in 0..100 {
            let v = c.execute("return document.body.getAttribute('data-charts');", vec![]).await.unwrap();
            if v.as_str() == Some("drawn") {
                drawn = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(drawn, "the report's script did not run");
        for id in ["equity", "slippage", "weights"] {
            // Coloured (series) pixels, not just axes and labels.
            let n = c
                .execute(
                    "var c = document.getElementById(arguments[0]); var d = c.getContext('2d')\
                     .getImageData(0, 0, c.width, c.height).data; var n = 0;\
                     for (var i = 0; i < d.length; i += 4) { if (d[i+3] > 0 && d[i+2] > d[i] + 60) n++; } return n;",
                    vec![json!(id)],
                )
                .await
                .unwrap();
            // A 3-day equity line is short: 49 coloured pixels were seen, axes and labels give none.
            assert!(n.as_u64().unwrap_or(0) > 20, "chart {id} is empty ({n})");
        }
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("report.png"), png).unwrap();
        c.close().await.unwrap();
    });
}
