//! The JSON API against a seeded store: every figure equals what the store says.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{d, expected, seed, Seeded};
use http_body_util::BodyExt;
use keel_server::{router, ServerConfig};
use keel_store::{FillFilter, OrderFilter, SqliteStore, Store};
use rust_decimal::Decimal;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

async fn setup() -> (tempfile::TempDir, Arc<SqliteStore>, axum::Router, Seeded) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = common::open_store(dir.path()).await;
    let seeded = seed(store.as_ref()).await;
    let app = router(store.clone(), None, &ServerConfig::default(), None);
    (dir, store, app, seeded)
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap_or_default())
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v)
}

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[tokio::test]
async fn overview_matches_store() {
    let (_dir, store, app, seeded) = setup().await;
    let exp = expected(store.as_ref()).await;
    let (status, o) = get(&app, "/api/v1/overview").await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert_eq!(dec(&o["cash"]), exp.cash);
    assert_eq!(dec(&o["equity"]), exp.equity);
    assert_eq!(dec(&o["gross_exposure"]), exp.gross);
    assert_eq!(dec(&o["net_exposure"]), exp.net);
    assert_eq!(o["day_pnl"].as_str().map(d), exp.day_pnl);
    assert_eq!(o["day_pnl_basis_date"], "2026-01-09");
    assert_eq!(o["kill_switch"]["engaged"], true);
    assert_eq!(
        o["kill_switch"]["reason"].as_str(),
        Some(seeded.kill_reason.as_str())
    );
    assert_eq!(o["kill_switch"]["source"], "automatic");
    assert_eq!(o["account_id"], common::ACCOUNT);
    let (head, _) = store.audit_head().await.unwrap_or_default();
    assert_eq!(o["audit_seq"].as_u64(), Some(head));
    assert_eq!(
        o["open_orders"].as_u64(),
        Some(store.open_orders().await.map(|v| v.len() as u64).unwrap_or(99))
    );
    assert_eq!(o["last_cycle"]["outcome"], "blocked: kill switch");
    assert_eq!(o["eod_count"].as_u64(), Some(5));
    assert_eq!(o["reconciliation"]["ok"], true);
    // Money is never a JSON number.
    assert!(o["equity"].is_string() && o["cash"].is_string());
}

#[tokio::test]
async fn positions_weights_and_targets() {
    let (_dir, store, app, _) = setup().await;
    let exp = expected(store.as_ref()).await;
    let (status, p) = get(&app, "/api/v1/positions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dec(&p["equity"]), exp.equity);
    // The newest queued set (the last day's, still executing) is the target.
    assert_eq!(p["target_set_id"], "alloc-2026-01-12");
    let rows = p["positions"].as_array().cloned().unwrap_or_default();
    let held = store.positions().await.unwrap_or_default();
    for (s, pos) in &held {
        let row = rows
            .iter()
            .find(|r| r["symbol"] == s.as_str())
            .unwrap_or_else(|| panic!("{s} missing"));
        assert_eq!(dec(&row["qty"]), pos.qty);
        assert_eq!(dec(&row["avg_cost"]), pos.avg_cost);
        let px = exp.marks[s.as_str()];
        assert_eq!(dec(&row["price"]), px);
        assert_eq!(dec(&row["market_value"]), pos.qty * px);
        assert_eq!(
            dec(&row["unrealized_pnl"]),
            (pos.qty * (px - pos.avg_cost)).round_dp(6)
        );
        let w = (pos.qty * px / exp.equity).round_dp(6);
        assert_eq!(dec(&row["weight"]), w);
        assert!(row["target_weight"].is_string(), "{row}");
    }
}

#[tokio::test]
async fn orders_and_fills_filter() {
    let (_dir, store, app, seeded) = setup().await;
    let (status, all) = get(&app, "/api/v1/orders?limit=5000").await;
    assert_eq!(status, StatusCode::OK);
    let n = store
        .orders(&OrderFilter::default())
        .await
        .map(|v| v.len())
        .unwrap_or(0);
    assert_eq!(all["orders"].as_array().map(Vec::len), Some(n));

    let (_, aapl) = get(&app, "/api/v1/orders?symbol=AAPL&day=2026-01-05").await;
    let rows = aapl["orders"].as_array().cloned().unwrap_or_default();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["symbol"] == "AAPL"
        && r["created_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-01-05"))));
    // Slippage of a filled order is computed from its average fill.
    let filled = &rows[0];
    let avg = dec(&filled["avg_fill_price"]);
    let arr = dec(&filled["arrival_price"]);
    let sign = if filled["side"] == "buy" {
        Decimal::ONE
    } else {
        Decimal::NEGATIVE_ONE
    };
    assert_eq!(
        dec(&filled["slippage_bps"]),
        (sign * (avg - arr) * Decimal::from(10_000) / arr).round_dp(4)
    );

    let (_, rej) = get(&app, "/api/v1/orders?status=rejected").await;
    let rej = rej["orders"].as_array().cloned().unwrap_or_default();
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0]["reason"].as_str(), Some(seeded.rejected_reason.as_str()));

    let (_, fills) = get(&app, "/api/v1/fills?day=2026-01-06&symbol=SPY").await;
    let expect = store
        .fills(&FillFilter {
            day: chrono::NaiveDate::from_ymd_opt(2026, 1, 6),
            symbol: Some(common::sym("SPY")),
            ..FillFilter::default()
        })
        .await
        .unwrap_or_default();
    assert_eq!(fills["fills"].as_array().map(Vec::len), Some(expect.len()));

    for bad in [
        "/api/v1/orders?day=2026-13-01",
        "/api/v1/orders?symbol=aapl",
        "/api/v1/orders?status=done",
        "/api/v1/orders?limit=0",
        "/api/v1/fills?limit=abc",
        "/api/v1/audit?after=-1",
    ] {
        let (status, body) = get(&app, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string());
    }
}

#[tokio::test]
async fn slippage_statistics() {
    let (_dir, store, app, _) = setup().await;
    let (status, s) = get(&app, "/api/v1/slippage").await;
    assert_eq!(status, StatusCode::OK);
    let fills = store.fills(&FillFilter::default()).await.unwrap_or_default();
    let mut bps: Vec<Decimal> = fills.iter().filter_map(|f| f.slippage_bps).collect();
    bps.sort();
    assert_eq!(s["overall"]["count"].as_u64(), Some(bps.len() as u64));
    let mean = (bps.iter().sum::<Decimal>() / Decimal::from(bps.len())).round_dp(4);
    assert_eq!(dec(&s["overall"]["mean_bps"]), mean);
    let p50 = bps[(bps.len() * 50).div_ceil(100) - 1];
    assert_eq!(dec(&s["overall"]["p50_bps"]), p50);
    assert_eq!(s["truncated"], false);
    let hist: u64 = s["histogram"]
        .as_array()
        .map_or(0, |h| h.iter().filter_map(|b| b["count"].as_u64()).sum());
    assert_eq!(hist, bps.len() as u64);
    let days: Vec<&str> = s["per_day"]
        .as_array()
        .map_or(vec![], |v| v.iter().filter_map(|g| g["key"].as_str()).collect());
    assert_eq!(days.first(), Some(&"2026-01-05"));
    // Shortfall: Σ sign × (avg − arrival) × filled over orders.
    let orders = store.orders(&OrderFilter::default()).await.unwrap_or_default();
    let cost: Decimal = orders
        .iter()
        .filter_map(|o| {
            o.avg_fill_price
                .map(|a| o.side.sign() * (a - o.arrival_price) * o.filled_qty)
        })
        .sum();
    assert_eq!(dec(&s["shortfall"]["execution_cost"]), cost.round_dp(6));

    let (_, one) = get(&app, "/api/v1/slippage?symbol=MSFT").await;
    assert_eq!(one["per_symbol"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn eod_guards_cycles_audit() {
    let (_dir, store, app, seeded) = setup().await;
    let (_, e) = get(&app, "/api/v1/eod").await;
    let snaps = e["snapshots"].as_array().cloned().unwrap_or_default();
    let rows = store.eod_snapshots().await.unwrap_or_default();
    assert_eq!(snaps.len(), rows.len());
    for (a, b) in snaps.iter().zip(&rows) {
        assert_eq!(dec(&a["equity"]), b.equity);
        assert_eq!(dec(&a["day_pnl"]), b.day_pnl);
    }

    let (_, g) = get(&app, "/api/v1/guard-decisions?limit=50").await;
    let cycles = g["cycles"].as_array().cloned().unwrap_or_default();
    assert_eq!(cycles.len(), seeded.cycles.len());
    let actions: Vec<Value> = cycles
        .iter()
        .flat_map(|c| c["actions"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(actions.iter().any(|a| a["action"] == "block"
        && a["reason"] == "restricted_symbol"
        && a["detail"].as_str() == Some(seeded.blocked_detail.as_str())));
    assert!(actions
        .iter()
        .any(|a| a["action"] == "resize" && a["guard"] == "max_position_weight"));
    assert!(actions
        .iter()
        .any(|a| a["action"] == "plan_block" && a["reason"] == "kill_switch"));

    let (_, c) = get(&app, "/api/v1/cycles").await;
    let first = &c["cycles"][0];
    assert_eq!(
        first["cycle"]["cycle_id"].as_str(),
        seeded.cycles.last().map(String::as_str)
    );
    assert_eq!(first["actions"].as_array().map(Vec::len), Some(0));

    let id = &seeded.cycles[0];
    let (status, p) = get(
        &app,
        &format!("/api/v1/cycles/{}/decisions", id.replace('#', "%23")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert!(p["plan"]["decisions"].is_array());
    let (status, _) = get(&app, "/api/v1/cycles/nope/decisions").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (head, hash) = store.audit_head().await.unwrap_or_default();
    let (_, a) = get(&app, "/api/v1/audit?limit=10").await;
    let rows = a["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows.last().and_then(|r| r["seq"].as_u64()), Some(head));
    assert_eq!(a["head_hash"].as_str(), Some(hash.as_str()));
    let (_, older) = get(&app, &format!("/api/v1/audit?before={}&limit=10", head - 9)).await;
    let older = older["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(older.last().and_then(|r| r["seq"].as_u64()), Some(head - 10));
    assert_eq!(older.len(), 10);
    let (_, first_page) = get(&app, "/api/v1/audit?after=0&limit=3").await;
    assert_eq!(first_page["rows"][0]["seq"].as_u64(), Some(1));

    let (_, v) = get(&app, "/api/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["events"].as_u64(), Some(head));
}

#[tokio::test]
async fn cache_follows_the_audit_head() {
    let (_dir, store, app, _) = setup().await;
    let (_, before) = get(&app, "/api/v1/overview").await;
    store
        .append(&keel_domain::Event::KillSwitchReleased {
            reason: "all clear".into(),
            source: keel_domain::KillSource::Cli,
            at: chrono::Utc::now(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Within HEAD_CHECK_INTERVAL the cached version may still be served; after it, never.
    tokio::time::sleep(keel_server::HEAD_CHECK_INTERVAL + std::time::Duration::from_millis(50)).await;
    let (_, after) = get(&app, "/api/v1/overview").await;
    assert_eq!(before["kill_switch"]["engaged"], true);
    assert_eq!(after["kill_switch"]["engaged"], false);
    assert_eq!(
        after["audit_seq"].as_u64(),
        before["audit_seq"].as_u64().map(|s| s + 1)
    );
}

#[tokio::test]
async fn empty_store_is_served() {
    let store = Arc::new(
        SqliteStore::open_in_memory()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let app = router(store, None, &ServerConfig::default(), None);
    for uri in [
        "/api/v1/overview",
        "/api/v1/positions",
        "/api/v1/slippage",
        "/api/v1/eod",
        "/api/v1/guard-decisions",
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/health",
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    let (_, o) = get(&app, "/api/v1/overview").await;
    assert_eq!(o["equity"], "0");
    assert_eq!(o["day_pnl"], Value::Null);
}
