//! End to end in real headless Chromium: every page renders the store's
//! numbers, charts draw pixels, hostile text stays text, and a screenshot of
//! the overview is saved to `target/artifacts/overview.png` (or
//! `$KEEL_ARTIFACTS_DIR`).
//!
//! Skips (printing "skipped: no chromium") when /usr/bin/chromium or
//! /usr/bin/chromedriver is missing; CI installs both, so it runs there.

mod common;

use common::{expected, fmt2, seed, HOSTILE};
use fantoccini::{Client, ClientBuilder, Locator};
use keel_domain::Event;
use keel_server::ServerConfig;
use keel_store::{FillFilter, OrderFilter, Store};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The chart series colour in chart.js/app.js (#2563eb).
const BLUE: (u8, u8, u8) = (0x25, 0x63, 0xeb);

/// Kills chromedriver (started by this test, by pid) however the test ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

async fn start_driver(user_data: &Path) -> (Driver, Client) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start chromedriver: {e}"));
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let caps: serde_json::Map<String, Value> = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000",
                format!("--user-data-dir={}", user_data.display()),
            ]
        }
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    // chromedriver needs a moment to listen.
    let mut last_err = String::new();
    for _ in 0..100 {
        let mut b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        b.capabilities(caps.clone());
        match b.connect(&url).await {
            Ok(c) => return (driver, c),
            Err(e) => last_err = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to chromedriver: {last_err}");
}

/// Waits until app.js finished a refresh of the page.
async fn loaded(c: &Client, page: &str) {
    for _ in 0..200 {
        let v = c
            .execute(
                "return document.body.dataset.loaded === 'true' && document.body.dataset.page;",
                vec![],
            )
            .await
            .unwrap_or(Value::Null);
        if v.as_str() == Some(page) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = c
        .execute("return document.getElementById('error').textContent;", vec![])
        .await;
    panic!("page {page} never finished loading; error banner: {err:?}");
}

async fn open(c: &Client, base: &str, path: &str, page: &str) {
    c.goto(&format!("{base}{path}"))
        .await
        .unwrap_or_else(|e| panic!("goto {path}: {e}"));
    loaded(c, page).await;
}

/// Saves a PNG of the current page as `<name>.png` in the artifacts directory.
async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.unwrap_or_else(|e| panic!("screenshot: {e}"));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let out = artifacts_dir();
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    let file = out.join(format!("{name}.png"));
    std::fs::write(&file, &png).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    file
}

async fn text(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("#{id} text: {e}"))
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// The exact value app.js stored next to the formatted text.
async fn exact(c: &Client, id: &str) -> Decimal {
    let v = js(
        c,
        &format!("return document.getElementById('{id}').dataset.value;"),
    )
    .await;
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("#{id} data-value: {v}"))
}

/// Pixels of the series colour on a canvas (read back with getImageData).
async fn blue_pixels(c: &Client, id: &str) -> u64 {
    let script = format!(
        "const c = document.getElementById('{id}'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
         let n = 0, any = 0; for (let i = 0; i < d.length; i += 4) {{ if (d[i+3] > 0) any++; \
         if (d[i+3] > 200 && Math.abs(d[i]-{r}) < 24 && Math.abs(d[i+1]-{g}) < 24 && Math.abs(d[i+2]-{b}) < 24) n++; }} return [n, any];",
        r = BLUE.0,
        g = BLUE.1,
        b = BLUE.2
    );
    let v = js(c, &script).await;
    let any = v[1].as_u64().unwrap_or(0);
    assert!(any > 0, "canvas #{id} is blank");
    v[0].as_u64().unwrap_or(0)
}

/// No element or script from hostile data exists in the DOM.
async fn not_injected(c: &Client, page: &str) {
    let v = js(
        c,
        "return [typeof window.__pwned, document.getElementById('pwned') === null, document.getElementById('pwned-b') === null, \
         document.querySelectorAll('main img, main script, main b').length];",
    )
    .await;
    assert_eq!(
        v,
        json!(["undefined", true, true, 0]),
        "{page}: hostile markup was interpreted"
    );
}

async fn body_rows(c: &Client, tbody: &str) -> Vec<Vec<String>> {
    let v = js(
        c,
        &format!(
            "return Array.from(document.querySelectorAll('#{tbody} tr')).map(tr => Array.from(tr.cells).map(td => td.textContent));"
        ),
    )
    .await;
    serde_json::from_value(v).unwrap_or_default()
}

fn artifacts_dir() -> PathBuf {
    if let Ok(d) = std::env::var("KEEL_ARTIFACTS_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("artifacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        println!("skipped: no chromium");
        return;
    }
    let r = tokio::time::timeout(Duration::from_secs(240), run()).await;
    assert!(r.is_ok(), "browser test timed out");
}

/// Cycles written before the seeded history, each blocked whole by the
/// coverage guard: enough that the guard page must page back past 20.
const EARLY_CYCLES: usize = 30;

/// History older than the seed: a target set superseded by a newer one, and
/// [`EARLY_CYCLES`] cycles blocked by the coverage guard.
async fn prehistory(store: &dyn Store) {
    let t = |s: &str| -> chrono::DateTime<chrono::Utc> { s.parse().unwrap_or_else(|e| panic!("{s}: {e}")) };
    let set = |id: &str, as_of: &str| keel_domain::TargetSet {
        id: id.into(),
        as_of: t(as_of),
        valid_until: None,
        targets: vec![keel_domain::Target {
            symbol: common::sym("SPY"),
            weight: Decimal::new(9, 1),
        }],
        liquidate: false,
    };
    let mut evs = vec![
        Event::TargetSetQueued {
            set: set("old-alloc", "2025-12-01T14:00:00Z"),
            at: t("2025-12-01T14:01:00Z"),
        },
        Event::TargetSetQueued {
            set: set("newer-alloc", "2025-12-01T14:30:00Z"),
            at: t("2025-12-01T14:31:00Z"),
        },
        Event::TargetSetSuperseded {
            target_set_id: "old-alloc".into(),
            by: "newer-alloc".into(),
            at: t("2025-12-01T14:31:00Z"),
        },
    ];
    for i in 0..EARLY_CYCLES {
        let cycle_id = format!("newer-alloc#{i}");
        let when = t("2025-12-01T15:00:00Z") + chrono::Duration::minutes(i as i64);
        let detail =
            format!("target set \"newer-alloc\": 1 of 1 targeted symbols have no usable quote: ZZZ{i}");
        evs.push(Event::CycleStarted {
            cycle_id: cycle_id.clone(),
            target_set_id: "newer-alloc".into(),
            attempt: i as u32,
            at: when,
        });
        evs.push(Event::GuardDecisions {
            cycle_id: cycle_id.clone(),
            decisions: json!({
                "plan_blocks": [{"guard": "coverage", "reason": "incomplete_coverage", "detail": detail}],
                "decisions": [{"symbol": format!("ZZZ{i}"), "side": "buy", "proposed_qty": "10", "final_qty": "0",
                    "outcome": {"kind": "block", "guard": "coverage", "reason": "incomplete_coverage", "detail": detail}, "steps": []}]
            }),
            at: when,
        });
        evs.push(Event::CycleFinished {
            cycle_id,
            outcome: "every order blocked".into(),
            at: when,
        });
    }
    evs.push(Event::TargetSetCompleted {
        target_set_id: "newer-alloc".into(),
        at: t("2025-12-01T16:00:00Z"),
    });
    store
        .append_batch(&evs)
        .await
        .unwrap_or_else(|e| panic!("prehistory: {e}"));
}

/// Cash of the second, otherwise empty account.
const BETA_CASH: i64 = 500_000;

async fn run() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = common::open_store(dir.path()).await;
    prehistory(store.as_ref()).await;
    let seeded = seed(store.as_ref()).await;
    let exp = expected(store.as_ref()).await;
    let dir_b = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let beta = common::open_store(dir_b.path()).await;
    beta.append(&Event::AccountOpened {
        account_id: "beta".into(),
        cash: Decimal::from(BETA_CASH),
        at: "2026-01-05T13:00:00Z".parse().unwrap_or_default(),
    })
    .await
    .unwrap_or_else(|e| panic!("beta: {e}"));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr: SocketAddr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let cfg = ServerConfig {
        refresh_secs: 2,
        ..ServerConfig::default()
    };
    let accounts = vec![
        keel_server::Account {
            id: "alpha".into(),
            store: store.clone(),
            control: None,
        },
        keel_server::Account {
            id: "beta".into(),
            store: beta.clone(),
            control: None,
        },
    ];
    let server = tokio::spawn(keel_server::serve_listener_accounts(
        listener,
        cfg,
        accounts,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    let base = format!("http://{addr}");

    let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("profile dir: {e}"));
    let (_driver, c) = start_driver(profile.path()).await;
    let result = pages(&c, &base, store.as_ref(), &seeded, &exp).await;
    let _ = c.close().await;
    let _ = stop.send(());
    let _ = server.await;
    result
}

async fn pages(c: &Client, base: &str, store: &dyn Store, seeded: &common::Seeded, exp: &common::Expected) {
    // ---- overview
    open(c, base, "/", "overview").await;
    assert_eq!(text(c, "equity").await, fmt2(exp.equity));
    assert_eq!(exact(c, "equity").await, exp.equity);
    assert_eq!(text(c, "cash").await, fmt2(exp.cash));
    assert_eq!(exact(c, "cash").await, exp.cash);
    assert_eq!(text(c, "gross-exposure").await, fmt2(exp.gross));
    assert_eq!(text(c, "net-exposure").await, fmt2(exp.net));
    let pnl = exp.day_pnl.unwrap_or_else(|| panic!("fixture has closes"));
    assert_eq!(text(c, "day-pnl").await, fmt2(pnl));
    assert_eq!(text(c, "kill-switch").await, "ENGAGED");
    let reason = text(c, "kill-reason").await;
    assert!(
        reason.contains(&seeded.kill_reason),
        "kill reason shown as text: {reason}"
    );
    assert!(reason.contains(HOSTILE));
    let (head, _) = store.audit_head().await.unwrap_or_default();
    assert_eq!(text(c, "audit-seq").await, head.to_string());
    assert_eq!(text(c, "last-cycle-outcome").await, "blocked: kill switch");
    let open_orders = store.open_orders().await.map(|v| v.len()).unwrap_or_default();
    assert_eq!(text(c, "open-orders").await, open_orders.to_string());
    assert_eq!(text(c, "hdr-kill").await, "KILL SWITCH ENGAGED");
    not_injected(c, "overview").await;
    // Reconciliation: when the last successful one ran, and what it compared.
    let last_ok = last_ok_reconciliation(store).await;
    let shown: chrono::DateTime<chrono::Utc> = js(
        c,
        "return document.getElementById('reconciliation-ok-at').dataset.value;",
    )
    .await
    .as_str()
    .and_then(|s| s.parse().ok())
    .unwrap_or_else(|| panic!("no last-ok reconciliation time shown"));
    assert_eq!(shown, last_ok);
    assert!(
        text(c, "reconciliation-ok-at")
            .await
            .starts_with(&last_ok.format("%Y-%m-%d %H:%M:%S").to_string()),
        "readable time"
    );
    let scope = text(c, "reconciliation-scope").await;
    assert!(
        scope.contains("compared cash") && scope.contains("6 symbol(s)"),
        "{scope}"
    );
    // The superseded target set is listed as such, with what superseded it.
    let sets = body_rows(c, "sets-body").await;
    let old = sets
        .iter()
        .find(|r| r[0] == "old-alloc")
        .unwrap_or_else(|| panic!("superseded set not listed: {sets:?}"));
    assert_eq!(old[5], "superseded");
    assert!(
        old[6].starts_with("newer-alloc at 2025-12-01 14:31:00"),
        "{old:?}"
    );
    assert_eq!(sets[0][0], "alloc-2026-01-12", "newest first");
    // The equity curve is drawn (the chart loads after the figures; wait for it).
    let mut px = 0;
    for _ in 0..100 {
        px = blue_pixels(c, "equity-chart").await;
        if px > 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(px > 200, "equity curve has only {px} line pixels");
    let file = screenshot(c, "overview").await;
    println!("screenshot: {}", file.display());

    // Auto-refresh happens in place: the page object survives a refresh cycle.
    js(
        c,
        "window.__marker = 42; document.body.dataset.loaded = 'false'; return null;",
    )
    .await;
    loaded(c, "overview").await;
    assert_eq!(
        js(c, "return window.__marker;").await,
        json!(42),
        "refresh reloaded the page"
    );

    // ---- positions
    open(c, base, "/positions", "positions").await;
    assert_eq!(exact(c, "pos-equity").await, exp.equity);
    let rows = body_rows(c, "positions-body").await;
    let held = store.positions().await.unwrap_or_default();
    for (s, p) in &held {
        let row = rows
            .iter()
            .find(|r| r.first().map(String::as_str) == Some(s.as_str()))
            .unwrap_or_else(|| panic!("{s} missing from the positions table: {rows:?}"));
        assert_eq!(row[1].replace(',', ""), p.qty.normalize().to_string(), "{s} qty");
        assert_eq!(row[3], fmt2(exp.marks[s.as_str()]), "{s} price");
        assert_eq!(row[5], fmt2(p.qty * exp.marks[s.as_str()]), "{s} market value");
    }
    assert_eq!(text(c, "target-set").await, "alloc-2026-01-12");
    screenshot(c, "positions").await;

    // ---- orders and fills (with a filter from the address bar)
    open(c, base, "/orders?symbol=AAPL", "orders").await;
    let aapl = store
        .orders(&OrderFilter {
            symbol: Some(common::sym("AAPL")),
            ..OrderFilter::default()
        })
        .await
        .unwrap_or_default();
    let rows = body_rows(c, "orders-body").await;
    assert_eq!(rows.len(), aapl.len());
    assert!(rows.iter().all(|r| r[1] == "AAPL"));
    let fills = store
        .fills(&FillFilter {
            symbol: Some(common::sym("AAPL")),
            ..FillFilter::default()
        })
        .await
        .unwrap_or_default();
    assert_eq!(body_rows(c, "fills-body").await.len(), fills.len());
    open(c, base, "/orders?status=rejected", "orders").await;
    let rows = body_rows(c, "orders-body").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0][9], seeded.rejected_reason,
        "reject reason rendered as text"
    );
    not_injected(c, "orders").await;
    screenshot(c, "orders").await;

    // ---- slippage
    open(c, base, "/slippage", "slippage").await;
    let all = store.fills(&FillFilter::default()).await.unwrap_or_default();
    let bps: Vec<Decimal> = all.iter().filter_map(|f| f.slippage_bps).collect();
    assert_eq!(text(c, "slip-count").await, bps.len().to_string());
    let mean = (bps.iter().sum::<Decimal>() / Decimal::from(bps.len())).round_dp(4);
    assert_eq!(exact(c, "slip-mean").await, mean);
    assert!(blue_pixels(c, "slip-hist").await > 200, "histogram bars drawn");
    histogram_labels(c).await;
    screenshot(c, "slippage").await;

    // ---- EOD
    open(c, base, "/eod", "eod").await;
    let eod = store.eod_snapshots().await.unwrap_or_default();
    let rows = body_rows(c, "eod-body").await;
    assert_eq!(rows.len(), eod.len());
    let newest = eod.last().unwrap_or_else(|| panic!("no eod"));
    assert_eq!(rows[0][0], newest.date.to_string());
    assert_eq!(rows[0][1], fmt2(newest.equity));
    assert!(blue_pixels(c, "eod-chart").await > 200);
    screenshot(c, "eod").await;

    // ---- guard decisions
    open(c, base, "/guards", "guards").await;
    let rows = body_rows(c, "guard-body").await;
    assert!(
        rows.iter()
            .any(|r| r[3] == "block" && r[5] == "restricted_symbol" && r[6] == seeded.blocked_detail),
        "{rows:?}"
    );
    assert!(rows
        .iter()
        .any(|r| r[3] == "resize" && r[4] == "max_position_weight"));
    assert!(rows.iter().any(|r| r[3] == "plan_block" && r[5] == "kill_switch"));
    let total_cycles = seeded.cycles.len() + EARLY_CYCLES;
    assert_eq!(body_rows(c, "cycles-body").await.len(), total_cycles.min(20));
    not_injected(c, "guards").await;
    screenshot(c, "guards").await;
    guard_filters(c, base, seeded, total_cycles).await;

    // ---- audit log
    open(c, base, "/audit", "audit").await;
    let rows = body_rows(c, "audit-body").await;
    assert_eq!(rows.len(), 50);
    assert_eq!(rows[0][0], head.to_string(), "newest row first");
    assert_eq!(
        js(c, "return document.getElementById('chain-status').dataset.value;").await,
        json!("ok")
    );
    not_injected(c, "audit").await;
    screenshot(c, "audit").await;
    // Paging moves to older rows without changing anything.
    c.find(Locator::Id("audit-older"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let want = (head - 50).to_string();
    let mut ok = false;
    for _ in 0..100 {
        let rows = body_rows(c, "audit-body").await;
        if rows.first().map(|r| r[0].as_str()) == Some(want.as_str()) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "older page did not load");
    assert_eq!(
        store.audit_head().await.map(|h| h.0).unwrap_or_default(),
        head,
        "browsing changed the store"
    );
    several_accounts(c, base, exp).await;
}

/// The time of the newest agreeing reconciliation in the log.
async fn last_ok_reconciliation(store: &dyn Store) -> chrono::DateTime<chrono::Utc> {
    let rows = store.audit_page(0, 100_000).await.unwrap_or_default();
    rows.iter()
        .rev()
        .find_map(|r| match r.event() {
            Ok(Event::Reconciled { ok: true, at, .. }) => Some(at),
            _ => None,
        })
        .unwrap_or_else(|| panic!("fixture has an ok reconciliation"))
}

/// Every bucket of the slippage histogram is labelled, with the API's label,
/// centred under its own bar; the tallest bar is under its bucket's label.
async fn histogram_labels(c: &Client) {
    let hist = js(
        c,
        "return fetch('/api/v1/slippage').then(r => r.json()).then(s => s.histogram);",
    )
    .await;
    let hist = hist.as_array().cloned().unwrap_or_default();
    let bars = js(
        c,
        "return JSON.parse(document.getElementById('slip-hist').dataset.bars || '[]');",
    )
    .await;
    let bars = bars.as_array().cloned().unwrap_or_default();
    assert_eq!(bars.len(), hist.len(), "one bar per bucket");
    assert!(hist.len() >= 10, "{hist:?}");
    for (b, h) in bars.iter().zip(&hist) {
        assert_eq!(b["label"], h["label"], "label drawn for every bucket");
        assert_eq!(b["labelX"], b["x"], "{}: label centred under its bar", h["label"]);
        assert_eq!(b["value"].as_f64(), h["count"].as_f64(), "{}", h["label"]);
    }
    let tallest = |v: &[Value], k: &str| {
        v.iter()
            .max_by(|a, b| {
                a[k].as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&b[k].as_f64().unwrap_or(0.0))
            })
            .map(|x| x["label"].clone())
    };
    assert_eq!(tallest(&bars, "value"), tallest(&hist, "count"));
}

/// The guard page filters by day, symbol and guard, and pages back past the
/// newest 20 cycles.
async fn guard_filters(c: &Client, base: &str, seeded: &common::Seeded, total: usize) {
    // Day: only that day's cycle.
    let day = seeded.days[2].to_string();
    open(c, base, &format!("/guards?day={day}"), "guards").await;
    let cycles = body_rows(c, "cycles-body").await;
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0][0].starts_with(&day), "{cycles:?}");
    // Symbol: only its actions (and whole-plan blocks, which concern it too).
    open(c, base, "/guards?symbol=XOM", "guards").await;
    let rows = body_rows(c, "guard-body").await;
    assert!(rows.iter().any(|r| r[1] == "XOM"), "{rows:?}");
    assert!(
        rows.iter().all(|r| r[1] == "XOM" || r[3] == "plan_block"),
        "{rows:?}"
    );
    // Guard: only that guard, and paging to the older cycles.
    open(c, base, "/guards?guard=coverage", "guards").await;
    let rows = body_rows(c, "guard-body").await;
    assert_eq!(rows.len(), 40, "20 cycles, a plan block and a block each");
    assert!(rows.iter().all(|r| r[4] == "coverage"), "{rows:?}");
    assert_eq!(body_rows(c, "cycles-body").await.len(), 20);
    c.find(Locator::Id("guards-older"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut older = Vec::new();
    for _ in 0..100 {
        older = body_rows(c, "cycles-body").await;
        if older.len() == EARLY_CYCLES - 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(older.len(), EARLY_CYCLES - 20, "older page: {older:?}");
    assert_eq!(
        older.last().map(|r| r[1].as_str()),
        Some("newer-alloc#0"),
        "oldest last"
    );
    // Unfiltered, the second page holds the rest of all cycles.
    open(c, base, "/guards", "guards").await;
    c.find(Locator::Id("guards-older"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let want = (total - 20).min(20);
    let mut n = 0;
    for _ in 0..100 {
        n = body_rows(c, "cycles-body").await.len();
        if n == want && text(c, "guards-range").await.starts_with("cycles 21") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n, want);
}

/// Every account on its own (`/a/<id>/`) and together (`/accounts`).
async fn several_accounts(c: &Client, base: &str, exp: &common::Expected) {
    open(c, base, "/accounts", "accounts").await;
    let rows = body_rows(c, "accounts-body").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], "alpha");
    assert_eq!(rows[1][0], "beta");
    assert_eq!(rows[0][1], fmt2(exp.equity));
    assert_eq!(rows[1][1], fmt2(Decimal::from(BETA_CASH)));
    assert_eq!(
        exact(c, "total-equity").await,
        exp.equity + Decimal::from(BETA_CASH)
    );
    assert_eq!(text(c, "total-killed").await, "1 engaged");
    screenshot(c, "accounts").await;

    open(c, base, "/a/beta/", "overview").await;
    assert_eq!(exact(c, "equity").await, Decimal::from(BETA_CASH));
    assert_eq!(text(c, "kill-switch").await, "released");
    assert_eq!(
        js(
            c,
            "return document.querySelector('header nav a[href$=\"/positions\"]').getAttribute('href');"
        )
        .await,
        json!("/a/beta/positions"),
        "navigation stays in the account"
    );
    let sel = js(
        c,
        "const s = document.getElementById('hdr-account'); return [s.options.length, s.value];",
    )
    .await;
    assert_eq!(sel, json!([2, "/a/beta"]));
    open(c, base, "/a/beta/positions", "positions").await;
    assert_eq!(exact(c, "pos-cash").await, Decimal::from(BETA_CASH));
    open(c, base, "/a/alpha/", "overview").await;
    assert_eq!(exact(c, "equity").await, exp.equity);
}
