//! `/metrics` parses as Prometheus text format (with a real parser) and
//! carries the store gauges and the worker's counters and histograms.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use keel_server::{install_metrics_recorder, metrics_names as m, router, ServerConfig};
use keel_store::Store;
use prometheus_parse::{Scrape, Value};
use rust_decimal::prelude::ToPrimitive;
use tower::ServiceExt;

fn sample<'a>(s: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'a prometheus_parse::Sample> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
}

fn scalar(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match sample(s, name, labels).map(|x| &x.value) {
        Some(Value::Gauge(v)) | Some(Value::Counter(v)) | Some(Value::Untyped(v)) => *v,
        other => panic!("{name}{labels:?}: {other:?}"),
    }
}

// One test: the recorder is process-global.
#[tokio::test]
async fn metrics_scrape_parses_and_matches_store() {
    let handle = install_metrics_recorder().unwrap_or_else(|e| panic!("install: {e}"));
    // A second install must fail cleanly, not panic.
    assert!(install_metrics_recorder().is_err());

    // What the worker emits.
    metrics::counter!(m::ORDERS_SENT, m::LABEL_SIDE => "buy").increment(3);
    metrics::counter!(m::ORDERS_SENT, m::LABEL_SIDE => "sell").increment(2);
    metrics::counter!(m::ORDERS_FILLED, m::LABEL_SIDE => "buy").increment(3);
    metrics::counter!(m::ORDERS_REJECTED, m::LABEL_REASON => "insufficient_buying_power").increment(1);
    metrics::counter!(m::GUARD_BLOCKS, m::LABEL_GUARD => "restricted_list", m::LABEL_REASON => "restricted_symbol").increment(4);
    metrics::counter!(m::CYCLES, m::LABEL_OUTCOME => "submitted").increment(1);
    metrics::histogram!(m::CYCLE_DURATION).record(0.3);
    metrics::histogram!(m::CYCLE_DURATION).record(1.7);
    metrics::histogram!(m::BROKER_REQUEST_DURATION, m::LABEL_OP => "submit_order").record(0.02);
    metrics::counter!(m::BROKER_ERRORS, m::LABEL_OP => "submit_order", m::LABEL_KIND => "timeout")
        .increment(1);

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = common::open_store(dir.path()).await;
    common::seed(store.as_ref()).await;
    let exp = common::expected(store.as_ref()).await;
    let app = router(store.clone(), None, &ServerConfig::default(), Some(handle));

    let resp = app
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap_or_default())
        .await
        .unwrap_or_else(|e| match e {});
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8(body.to_vec()).unwrap_or_else(|e| panic!("not UTF-8: {e}"));
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("parse: {e}\n{text}"));

    // No metric is declared twice (the two sources are disjoint).
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let mut names: Vec<&str> = types.iter().filter_map(|l| l.split_whitespace().nth(2)).collect();
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "duplicate TYPE lines:\n{text}");

    // Store gauges equal the store's figures.
    let f = |d: rust_decimal::Decimal| d.to_f64().unwrap_or(f64::NAN);
    assert!((scalar(&scrape, m::EQUITY, &[]) - f(exp.equity)).abs() < 1e-6);
    assert!((scalar(&scrape, m::CASH, &[]) - f(exp.cash)).abs() < 1e-6);
    assert!((scalar(&scrape, m::GROSS_EXPOSURE, &[]) - f(exp.gross)).abs() < 1e-6);
    assert!((scalar(&scrape, m::NET_EXPOSURE, &[]) - f(exp.net)).abs() < 1e-6);
    if let Some(p) = exp.day_pnl {
        assert!((scalar(&scrape, m::DAY_PNL, &[]) - f(p)).abs() < 1e-6);
    }
    assert_eq!(scalar(&scrape, m::KILL_SWITCH_ENGAGED, &[]), 1.0);
    let (head, _) = store.audit_head().await.unwrap_or_default();
    assert_eq!(scalar(&scrape, m::AUDIT_SEQ, &[]), head as f64);
    let open = store.open_orders().await.map(|v| v.len()).unwrap_or_default();
    assert_eq!(scalar(&scrape, m::OPEN_ORDERS, &[]), open as f64);
    assert_eq!(scalar(&scrape, m::POSITIONS, &[]), exp.marks.len() as f64);
    assert_eq!(scalar(&scrape, m::RECONCILIATION_OK, &[]), 1.0);
    assert!(scalar(&scrape, m::LAST_CYCLE_START, &[]) > 1.7e9);

    // Worker counters and histograms.
    assert_eq!(scalar(&scrape, m::ORDERS_SENT, &[("side", "buy")]), 3.0);
    assert_eq!(scalar(&scrape, m::ORDERS_SENT, &[("side", "sell")]), 2.0);
    assert_eq!(
        scalar(
            &scrape,
            m::ORDERS_REJECTED,
            &[("reason", "insufficient_buying_power")]
        ),
        1.0
    );
    assert_eq!(
        scalar(
            &scrape,
            m::GUARD_BLOCKS,
            &[("guard", "restricted_list"), ("reason", "restricted_symbol")]
        ),
        4.0
    );
    assert_eq!(
        scalar(
            &scrape,
            m::BROKER_ERRORS,
            &[("op", "submit_order"), ("kind", "timeout")]
        ),
        1.0
    );
    match sample(&scrape, m::CYCLE_DURATION, &[]).map(|s| &s.value) {
        Some(Value::Histogram(buckets)) => {
            let le = |b: f64| buckets.iter().find(|h| h.less_than == b).map(|h| h.count);
            assert_eq!(le(0.5), Some(1.0));
            assert_eq!(le(2.5), Some(2.0));
        }
        other => panic!("cycle duration is not a histogram: {other:?}\n{text}"),
    }
    assert!(matches!(
        sample(&scrape, m::BROKER_REQUEST_DURATION, &[("op", "submit_order")]).map(|s| &s.value),
        Some(Value::Histogram(_))
    ));
    assert!(text.contains(&format!("{}_count 2", m::CYCLE_DURATION)), "{text}");
    assert!(scrape.docs.contains_key(m::EQUITY));
    assert!(
        scrape.docs.contains_key(m::ORDERS_SENT),
        "worker metrics are described"
    );
}
