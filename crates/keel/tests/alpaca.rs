//! `[broker] kind = "alpaca"` end to end: the real `keel` binary trades the
//! real `alpaca-fake` venue with the same verbs and the same results as on
//! the embedded paper broker, and (through Prism proxies of Alpaca's own
//! OpenAPI files, `--errors`) never sends a request or receives an answer
//! that breaks Alpaca's contract.

mod alpaca_fake;

use alpaca_fake::*;
use keel_broker::{Broker, PaperBroker, PaperConfig};
use keel_domain::FixedClock;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// (side, qty, limit price) by client order id, decimals normalized.
type Orders = BTreeMap<String, (String, String, Option<String>)>;

fn dec(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.parse::<Decimal>()
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .normalize()
        .to_string()
}

/// Orders as `keel plan --json` and alpaca-fake's state both write them.
fn orders_of(list: &Value) -> Orders {
    list.as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            let limit = (!o["limit_price"].is_null()).then(|| dec(&o["limit_price"]));
            (
                o["client_order_id"].as_str().expect("id").to_string(),
                (
                    o["side"].as_str().expect("side").to_string(),
                    dec(&o["qty"]),
                    limit,
                ),
            )
        })
        .collect()
}

fn planned(plan: &str) -> Orders {
    let v: Value = serde_json::from_str(plan).unwrap_or_else(|e| panic!("plan --json: {e}: {plan}"));
    orders_of(&v["orders"])
}

const KEEL_SETTINGS: &str = "[paper]\npartial_fill_prob = 0\n\
    [guards.cooldown]\nsymbol_secs = 0\naccount_secs = 0\n";

/// The venue a flow trades: what it received and what it holds.
trait Venue {
    fn at(&self, t: &str);
    fn orders(&self, t: &str) -> Orders;
    fn positions(&self, t: &str) -> BTreeMap<String, String>;
}

struct OnFake<'a>(&'a Fake);

impl Venue for OnFake<'_> {
    fn at(&self, t: &str) {
        self.0.set_clock(t);
    }
    fn orders(&self, _t: &str) -> Orders {
        let subs = self.0.submissions();
        for (cid, n) in subs["by_client_order_id"].as_object().expect("counts") {
            assert_eq!(n, 1, "{cid} reached the venue {n} times");
        }
        orders_of(&self.0.state()["orders"])
    }
    fn positions(&self, _t: &str) -> BTreeMap<String, String> {
        self.0.state()["positions"]
            .as_array()
            .expect("positions")
            .iter()
            .map(|p| (p["symbol"].as_str().expect("symbol").to_string(), dec(&p["qty"])))
            .collect()
    }
}

struct OnPaper<'a>(&'a Path, &'a str);

impl OnPaper<'_> {
    fn with<T>(&self, t: &str, f: impl AsyncFnOnce(&PaperBroker) -> T) -> T {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let cfg = PaperConfig {
                account_id: self.1.into(),
                partial_fill_prob: 0.0,
                ..PaperConfig::default()
            };
            let b = PaperBroker::open_read_only(
                &self.0.join("data/paper-broker.db"),
                cfg,
                Arc::new(FixedClock::new(t.parse().expect("instant"))),
            )
            .await
            .expect("open the paper venue");
            let out = f(&b).await;
            b.close().await;
            out
        })
    }
}

impl Venue for OnPaper<'_> {
    fn at(&self, _t: &str) {}
    fn orders(&self, t: &str) -> Orders {
        self.with(t, async |b| {
            b.orders()
                .await
                .expect("orders")
                .into_iter()
                .map(|o| {
                    (
                        o.client_order_id,
                        (
                            o.side.as_str().to_string(),
                            o.qty.normalize().to_string(),
                            o.limit_price.map(|p| p.normalize().to_string()),
                        ),
                    )
                })
                .collect()
        })
    }
    fn positions(&self, t: &str) -> BTreeMap<String, String> {
        self.with(t, async |b| {
            b.positions()
                .await
                .expect("positions")
                .into_iter()
                .map(|p| (p.symbol.to_string(), p.qty.normalize().to_string()))
                .collect()
        })
    }
}

/// What a flow did, venue-independently: the symbols and sides of each
/// set's orders and what was held at the end.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    first: BTreeSet<(String, String)>,
    second: BTreeSet<(String, String)>,
    held: BTreeSet<String>,
}

fn shape(orders: &Orders) -> BTreeSet<(String, String)> {
    orders
        .iter()
        .map(|(cid, (side, _, _))| {
            // k-<SYMBOL>-<side>-<attempt>-<hash>
            let sym = cid.split('-').nth(1).expect("symbol in the id").to_string();
            (sym, side.clone())
        })
        .collect()
}

fn status_positions(cfg: &Path, t: &str) -> BTreeMap<String, String> {
    let s: Value = serde_json::from_str(&ok(cfg, &["status", "--json"], t)).expect("status --json");
    s["positions"]
        .as_array()
        .expect("positions")
        .iter()
        .map(|p| (p["symbol"].as_str().expect("symbol").to_string(), dec(&p["qty"])))
        .collect()
}

/// Buys a set, then liquidates most of it with a second one; at every step
/// `keel plan` printed exactly what the next `keel cycle` sent, and at the
/// end keel's positions are the venue's and the audit chain verifies.
fn flow(dir: &Path, cfg: &Path, venue: &dyn Venue) -> Shape {
    let t0 = OPEN_AT.to_string();
    let weights = [("AAPL", "0.2"), ("MSFT", "0.2"), ("KO", "0.1"), ("JPM", "0.05")];
    let s1 = target_file(dir, "s1", &plus(&t0, -60), false, &weights);
    venue.at(&t0);
    let p1 = planned(&ok(cfg, &["plan", "--targets", &s1, "--json"], &t0));
    assert_eq!(p1.len(), 4, "{p1:?}");
    ok(cfg, &["submit", &s1], &t0);
    let out = ok(cfg, &["cycle"], &t0);
    assert!(out.contains("sent 4"), "{out}");
    assert_eq!(venue.orders(&t0), p1, "the cycle sent exactly what plan printed");
    for i in 1..=3 {
        let t = plus(&t0, 60 * i);
        venue.at(&t);
        ok(cfg, &["cycle"], &t);
    }

    let t1 = plus(&t0, 600);
    let s2 = target_file(dir, "s2", &plus(&t1, -60), true, &[("AAPL", "0.1")]);
    venue.at(&t1);
    let p2 = planned(&ok(cfg, &["plan", "--targets", &s2, "--json"], &t1));
    ok(cfg, &["submit", &s2], &t1);
    let before = venue.orders(&t1);
    let out = ok(cfg, &["cycle"], &t1);
    assert!(out.contains(&format!("sent {}", p2.len())), "{out}");
    let sent: Orders = venue
        .orders(&t1)
        .into_iter()
        .filter(|(cid, _)| !before.contains_key(cid))
        .collect();
    assert_eq!(sent, p2, "the cycle sent exactly what plan printed");
    let mut end = t1.clone();
    for i in 1..=3 {
        end = plus(&t1, 60 * i);
        venue.at(&end);
        ok(cfg, &["cycle"], &end);
    }

    let mine = status_positions(cfg, &end);
    let theirs = venue.positions(&end);
    assert_eq!(mine, theirs, "keel's positions are the venue's");
    let verify = ok(cfg, &["audit", "verify"], &end);
    assert!(verify.contains("audit chain ok"), "{verify}");
    Shape {
        first: shape(&p1),
        second: shape(&p2),
        held: theirs.keys().cloned().collect(),
    }
}

#[test]
fn plan_submit_and_cycle_on_alpaca_work_as_on_the_paper_broker() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let paper_dir = tmp.path().join("paper");
    std::fs::create_dir_all(&paper_dir).unwrap();
    let paper_cfg = paper_dir.join("keel.toml");
    std::fs::write(
        &paper_cfg,
        format!(
            "data_dir = {:?}\naccount_id = \"same\"\n{KEEL_SETTINGS}",
            paper_dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    let on_paper = flow(&paper_dir, &paper_cfg, &OnPaper(&paper_dir, "same"));

    let alpaca_dir = tmp.path().join("alpaca");
    std::fs::create_dir_all(&alpaca_dir).unwrap();
    let fake = Fake::start(
        OPEN_AT,
        &["--partial-fill-prob", "0", "--seed", "42"],
        &alpaca_dir.join("fake.log"),
    );
    let cfg = alpaca_config(
        &alpaca_dir,
        "same",
        &fake.base(),
        &fake.base(),
        &fake.ws(),
        KEEL_SETTINGS,
    );
    let on_alpaca = flow(&alpaca_dir, &cfg, &OnFake(&fake));

    assert_eq!(
        on_alpaca, on_paper,
        "the same sets trade the same way on both venues"
    );
    assert_eq!(
        on_alpaca.second,
        BTreeSet::from([
            ("AAPL".to_string(), "sell".to_string()),
            ("JPM".to_string(), "sell".to_string()),
            ("KO".to_string(), "sell".to_string()),
            ("MSFT".to_string(), "sell".to_string()),
        ])
    );
    assert_eq!(on_alpaca.held, BTreeSet::from(["AAPL".to_string()]));
}

#[test]
fn through_prism_every_request_and_answer_keeps_alpacas_contract() {
    let Some(prism) = find_prism() else {
        println!("skipped: no prism (`npm install -g @stoplight/prism-cli`; .ci/run installs it)");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let fake = Fake::start(
        OPEN_AT,
        &["--partial-fill-prob", "0.3", "--seed", "7"],
        &dir.join("fake.log"),
    );
    let trading = Prism::start(
        &prism,
        &trading_spec_with_assets(dir),
        &fake.base(),
        dir,
        "trading",
    );
    let data = Prism::start(
        &prism,
        &spec_dir().join("market-data-openapi.yaml"),
        &fake.base(),
        dir,
        "data",
    );
    trading.wait_ready("/v2/clock");
    data.wait_ready("/v2/stocks/quotes/latest?symbols=AAPL");
    // The stream is a websocket, which Prism does not proxy: straight to the fake.
    let cfg = alpaca_config(
        dir,
        "contract",
        &trading.base,
        &data.base,
        &fake.ws(),
        KEEL_SETTINGS,
    );
    flow_through_proxies(dir, &cfg, &fake);

    std::thread::sleep(std::time::Duration::from_millis(500));
    for (name, p) in [("trading", &trading), ("data", &data)] {
        let log = p.log();
        let violations: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("Violation") || l.contains("violation"))
            .collect();
        assert!(
            violations.is_empty(),
            "{name}: contract violations:\n{violations:#?}"
        );
        assert!(
            !log.contains("Request terminated"),
            "{name}: prism refused a request of keel's:\n{log}"
        );
        assert!(log.contains("Forwarding"), "{name}: nothing went through:\n{log}");
    }
}

/// The flow of `plan_submit_and_cycle...` with partial fills on, through the
/// proxies: buys, a liquidation, cycles until both sets are done.
fn flow_through_proxies(dir: &Path, cfg: &Path, fake: &Fake) {
    let venue = OnFake(fake);
    let t0 = OPEN_AT.to_string();
    let s1 = target_file(
        dir,
        "c1",
        &plus(&t0, -60),
        false,
        &[("AAPL", "0.2"), ("MSFT", "0.2"), ("KO", "0.1"), ("BRK.B", "0.05")],
    );
    let p1 = planned(&ok(cfg, &["plan", "--targets", &s1, "--json"], &t0));
    assert!(!p1.is_empty());
    ok(cfg, &["submit", &s1], &t0);
    ok(cfg, &["cycle"], &t0);
    assert_eq!(venue.orders(&t0), p1);
    let mut t = t0.clone();
    for i in 1..=4 {
        t = plus(&t0, 60 * i);
        venue.at(&t);
        ok(cfg, &["cycle"], &t);
    }
    let s2 = target_file(dir, "c2", &plus(&t, -30), true, &[("AAPL", "0.1")]);
    ok(cfg, &["submit", &s2], &t);
    for i in 1..=4 {
        let ti = plus(&t, 60 * i);
        venue.at(&ti);
        ok(cfg, &["cycle"], &ti);
    }
    let end = plus(&t, 300);
    venue.at(&end);
    ok(cfg, &["cycle"], &end);
    assert_eq!(status_positions(cfg, &end), venue.positions(&end));
    let verify = ok(cfg, &["audit", "verify"], &end);
    assert!(verify.contains("audit chain ok"), "{verify}");
}

/// `keel run` on an Alpaca account whose trade_updates stream cannot
/// connect: no order is sent (the stream is not backfilled), and after
/// `[notify] stream_down_secs` one `stream_down` notification reaches the
/// configured channel, once for the outage.
#[test]
fn a_stream_that_stays_down_is_an_alert_and_blocks_new_orders() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let fake = Fake::start(OPEN_AT, &["--partial-fill-prob", "0"], &dir.join("fake.log"));
    let out = dir.join("notes.jsonl");
    let settings = format!(
        "{KEEL_SETTINGS}[schedule]\ncycle_every_secs = 1\n[server]\nbind = \"127.0.0.1:0\"\n\
         [notify]\npoll_ms = 100\nstream_down_secs = 5\n\
         [[notify.channel]]\nname = \"script\"\ntype = \"command\"\n\
         command = [\"sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]\nmin_severity = \"warning\"\n",
        out.display(),
        out.display()
    );
    // Nothing listens on port 9: every connect fails.
    let cfg = alpaca_config(
        dir,
        "down",
        &fake.base(),
        &fake.base(),
        "ws://127.0.0.1:9/stream",
        &settings,
    );
    let s1 = target_file(
        dir,
        "d1",
        &plus(OPEN_AT, -60),
        false,
        &[("AAPL", "0.3"), ("MSFT", "0.3")],
    );
    ok(&cfg, &["submit", &s1], OPEN_AT);
    let mut child = keel(&cfg, &["run"], OPEN_AT)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).expect("log"))
        .spawn()
        .expect("spawn keel run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let mut notes = String::new();
    while std::time::Instant::now() < deadline {
        notes = std::fs::read_to_string(&out).unwrap_or_default();
        if notes.contains("stream_down") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A few more ticks: the same outage must not alert again.
    std::thread::sleep(std::time::Duration::from_secs(3));
    notes = std::fs::read_to_string(&out).unwrap_or(notes);
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();
    let downs: Vec<&str> = notes.lines().filter(|l| l.contains("\"stream_down\"")).collect();
    assert_eq!(downs.len(), 1, "one alert per outage:\n{notes}\n{log}");
    assert!(downs[0].contains("critical"), "{}", downs[0]);
    assert!(
        !notes.contains("never-shown") && !log.contains("never-shown"),
        "the secret leaked"
    );
    let subs = fake.submissions();
    assert_eq!(
        subs["total"], 0,
        "nothing is sent while the stream is down: {subs}"
    );
}
