//! `keel plan` is a true dry run: on an account with positions and history
//! (scripted cycles through the binary), the orders it prints are exactly the
//! ones `keel cycle` then sends at the same instant, it writes nothing, and
//! with the kill switch engaged it shows the block while the cycle sends
//! nothing and exits 3.

use chrono::{DateTime, Duration, Utc};
use keel_broker::{PaperBroker, PaperConfig};
use keel_domain::{Decimal, FixedClock};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

const ACCOUNT: &str = "dryrun";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn keel(dir: &Path, t: DateTime<Utc>, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .arg("--at")
        .arg(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .env_remove("KEEL_CONFIG")
        .output()
        .unwrap()
}

fn ok(dir: &Path, t: DateTime<Utc>, args: &[&str]) -> String {
    let o = keel(dir, t, args);
    assert!(
        o.status.success(),
        "keel {args:?} at {t}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write_set(dir: &Path, id: &str, as_of: DateTime<Utc>, weights: &[(&str, &str)]) -> String {
    let targets: Vec<String> = weights
        .iter()
        .map(|(s, w)| format!("{{\"symbol\":\"{s}\",\"weight\":\"{w}\"}}"))
        .collect();
    let body = format!(
        "{{\"id\":\"{id}\",\"as_of\":\"{}\",\"targets\":[{}]}}",
        as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        targets.join(",")
    );
    let p = dir.join(format!("{id}.json"));
    std::fs::write(&p, body).unwrap();
    p.to_str().unwrap().to_string()
}

/// (side, qty, limit price) by client order id, as strings of normalized decimals.
type Orders = BTreeMap<String, (String, String, Option<String>)>;

fn norm(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.parse::<Decimal>().unwrap().normalize().to_string()
}

fn planned(plan: &serde_json::Value) -> Orders {
    plan["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let limit = (!o["limit_price"].is_null()).then(|| norm(&o["limit_price"]));
            (
                o["client_order_id"].as_str().unwrap().to_string(),
                (o["side"].as_str().unwrap().to_string(), norm(&o["qty"]), limit),
            )
        })
        .collect()
}

/// Every order the paper venue has received, read without changing the file.
fn venue_orders(dir: &Path, t: DateTime<Utc>) -> Orders {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = PaperConfig {
            account_id: ACCOUNT.into(),
            ..PaperConfig::default()
        };
        let b = PaperBroker::open_read_only(&dir.join("paper-broker.db"), cfg, Arc::new(FixedClock::new(t)))
            .await
            .unwrap();
        let out = b
            .orders()
            .await
            .unwrap()
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
            .collect();
        b.close().await;
        out
    })
}

/// Every row of every table of both databases (store and venue), as text:
/// what "writes nothing" means, whatever SQLite does with its -wal and -shm
/// side files when a reader opens them.
fn contents(dir: &Path) -> BTreeMap<String, Vec<String>> {
    use sqlx::{Connection, Row};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut out = BTreeMap::new();
        for db in ["keel.db", "paper-broker.db"] {
            let url = format!("sqlite://{}?mode=ro", dir.join(db).display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let tables: Vec<String> =
                sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect();
            for t in tables {
                let cols: Vec<String> = sqlx::query(&format!("SELECT name FROM pragma_table_info('{t}')"))
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| format!("quote(\"{}\")", r.get::<String, _>(0)))
                    .collect();
                let q = format!("SELECT {} FROM \"{t}\" ORDER BY rowid", cols.join(" || '|' || "));
                let rows: Vec<String> = sqlx::query(&q)
                    .fetch_all(&mut c)
                    .await
                    .unwrap_or_default()
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect();
                out.insert(format!("{db}:{t}"), rows);
            }
            c.close().await.unwrap();
        }
        out
    })
}

fn assert_unchanged(dir: &Path, before: &BTreeMap<String, Vec<String>>) {
    let after = contents(dir);
    let changed: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(changed.is_empty(), "keel plan changed {changed:?}");
    assert!(before.get("keel.db:audit").is_some_and(|r| !r.is_empty()));
    assert!(before
        .get("paper-broker.db:counters")
        .is_some_and(|r| !r.is_empty()));
}

/// Cycles set `id` until it completes, so no order is left working.
fn trade_until_done(dir: &Path, mut t: DateTime<Utc>) -> DateTime<Utc> {
    for _ in 0..20 {
        let out = ok(dir, t, &["cycle"]);
        if out.contains("completed") || out.contains("idle") {
            return t;
        }
        t += Duration::minutes(3);
    }
    panic!("the set never completed");
}

#[test]
fn plan_prints_exactly_what_the_next_cycle_sends_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("keel.toml"),
        format!("account_id = \"{ACCOUNT}\"\n[paper]\naccount_id = \"{ACCOUNT}\"\n"),
    )
    .unwrap();

    // History: a first set bought positions (fills, cooldowns, order-rate
    // history, one executed set id), then completed.
    let t0 = at("2026-11-24T15:00:00Z");
    let a = write_set(
        dir,
        "set-a",
        t0 - Duration::minutes(1),
        &[("AAPL", "0.3"), ("MSFT", "0.3"), ("JPM", "0.2")],
    );
    ok(dir, t0, &["submit", &a]);
    let out = ok(dir, t0, &["cycle"]);
    assert!(out.contains("submitted"), "{out}");
    // Minutes later the venue has filled orders the store has not seen yet:
    // the dry run adopts them (on its private copy) exactly as the cycle will.
    let t0b = t0 + Duration::minutes(3);
    let seen = venue_orders(dir, t0b);
    let before = contents(dir);
    let p: serde_json::Value =
        serde_json::from_str(&ok(dir, t0b, &["plan", "--targets", &a, "--json"])).unwrap();
    assert_unchanged(dir, &before);
    assert_eq!(p["cycle_id"], "set-a#1", "{p}");
    ok(dir, t0b, &["cycle"]);
    let sent: Orders = venue_orders(dir, t0b)
        .into_iter()
        .filter(|(id, _)| !seen.contains_key(id))
        .collect();
    println!("second attempt: {} planned, notes {}", sent.len(), p["notes"]);
    assert_eq!(sent, planned(&p), "second attempt: sent differs from planned");
    let t1 = trade_until_done(dir, t0b + Duration::minutes(3));
    let held = venue_orders(dir, t1);
    assert!(!held.is_empty(), "the first set traded");

    // A new set that sells some, buys others.
    let t2 = t1 + Duration::minutes(20);
    let b = write_set(
        dir,
        "set-b",
        t2 - Duration::minutes(1),
        &[("AAPL", "0.1"), ("MSFT", "0.3"), ("NVDA", "0.25")],
    );
    let before = contents(dir);
    let plan_out = ok(dir, t2, &["plan", "--targets", &b, "--json"]);
    assert_unchanged(dir, &before);
    let plan: serde_json::Value = serde_json::from_str(&plan_out).unwrap();
    assert_eq!(plan["would_send"], true, "{plan_out}");
    assert_eq!(plan["cycle_id"], "set-b#0");
    let want = planned(&plan);
    assert!(!want.is_empty(), "the plan has orders: {plan_out}");
    assert!(
        want.values().any(|(s, ..)| s == "sell") && want.values().any(|(s, ..)| s == "buy"),
        "{want:?}"
    );
    // The same plan in text, for people, with normalized numbers.
    let text = ok(dir, t2, &["plan", "--targets", &b]);
    assert!(text.contains("would send these"), "{text}");
    for (id, (_, qty, _)) in &want {
        assert!(
            text.contains(id.as_str()) && text.contains(qty.as_str()),
            "{text}"
        );
    }

    ok(dir, t2, &["submit", &b]);
    let out = ok(dir, t2, &["cycle"]);
    assert!(out.contains("submitted"), "{out}");
    let after = venue_orders(dir, t2);
    let sent: Orders = after
        .into_iter()
        .filter(|(id, _)| !held.contains_key(id))
        .collect();
    assert_eq!(sent, want, "orders sent differ from the orders planned");

    // Kill switch engaged: the plan shows the block, the cycle sends nothing, exit 3.
    let t3 = trade_until_done(dir, t2 + Duration::minutes(3)) + Duration::minutes(20);
    ok(dir, t3, &["kill", "--reason", "desk says stop"]);
    let c = write_set(
        dir,
        "set-c",
        t3 - Duration::minutes(1),
        &[("AAPL", "0.3"), ("XOM", "0.2")],
    );
    let plan_out = ok(dir, t3, &["plan", "--targets", &c, "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan_out).unwrap();
    assert_eq!(plan["would_send"], false);
    assert!(plan["orders"].as_array().unwrap().is_empty(), "{plan_out}");
    assert_eq!(plan["plan_blocks"][0]["reason"], "kill_switch", "{plan_out}");
    assert!(
        plan["holds"][0].as_str().unwrap().contains("desk says stop"),
        "{plan_out}"
    );
    assert!(
        !plan["decisions"].as_array().unwrap().is_empty(),
        "every order shown blocked: {plan_out}"
    );
    let before = venue_orders(dir, t3);
    ok(dir, t3, &["submit", &c]);
    let cycle = keel(dir, t3, &["cycle"]);
    assert_eq!(
        cycle.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&cycle.stderr)
    );
    assert!(String::from_utf8_lossy(&cycle.stdout).contains("killed"));
    assert_eq!(venue_orders(dir, t3), before, "a killed cycle sent an order");
}
