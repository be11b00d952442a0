//! Prometheus metrics.
//!
//! Two sources end up in one `/metrics` body:
//!
//! - **gauges derived from the store** (equity, cash, exposure, open orders,
//!   kill switch, audit sequence, ...) are computed at scrape time from the
//!   dashboard's cache, so they are right even when the dashboard runs in a
//!   different process from the worker (`keel serve`);
//! - **counters and histograms** (orders sent/filled/rejected, guard blocks,
//!   cycle duration, broker latency and errors) are emitted by the worker
//!   through the `metrics` facade with the names in [`metrics_names`], and
//!   rendered from the [`PrometheusHandle`] that [`install_metrics_recorder`] returns.
//!
//! The two sets of names are disjoint, so the body never holds two `# TYPE`
//! lines for one metric.

use crate::cache::Core;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use rust_decimal::Decimal;
use std::fmt::Write as _;

/// Metric names and label keys, defined once in `keel-domain` so the
/// worker (which emits the counters and histograms) and the server (which
/// renders the scrape-time gauges) cannot disagree.
///
/// ```
/// use keel_server::metrics_names as m;
/// let (elapsed, secs) = (std::time::Duration::from_millis(300), 0.02);
/// metrics::counter!(m::ORDERS_SENT, m::LABEL_SIDE => "buy").increment(1);
/// metrics::counter!(m::GUARD_BLOCKS, m::LABEL_GUARD => "kill_switch", m::LABEL_REASON => "kill_switch").increment(1);
/// metrics::histogram!(m::CYCLE_DURATION).record(elapsed.as_secs_f64());
/// metrics::histogram!(m::BROKER_REQUEST_DURATION, m::LABEL_OP => "submit_order").record(secs);
/// metrics::counter!(m::BROKER_ERRORS, m::LABEL_OP => "submit_order", m::LABEL_KIND => "timeout").increment(1);
/// ```
pub use keel_domain::metrics_names;

use metrics_names as m;

/// Buckets (seconds) for cycle durations: a cycle is a few broker round trips.
const CYCLE_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Buckets (seconds) for broker requests.
const BROKER_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The builder keel uses: real histograms (not summaries) with buckets
/// suited to each duration, no HTTP listener (the dashboard serves `/metrics`).
fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(m::CYCLE_DURATION.to_string()), CYCLE_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(m::BROKER_REQUEST_DURATION.to_string()),
            BROKER_BUCKETS,
        )
}

/// Describes the worker's metrics so `# HELP` lines appear.
fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(m::ORDERS_SENT, "Orders sent to the broker");
    describe_counter!(m::ORDERS_FILLED, "Orders that reached filled");
    describe_counter!(m::FILLS, "Fills recorded");
    describe_counter!(m::ORDERS_REJECTED, "Orders rejected by the broker, by reason");
    describe_counter!(m::ORDERS_CANCELED, "Orders cancelled by keel, by reason");
    describe_counter!(
        m::GUARD_BLOCKS,
        "Proposed orders blocked by a guard, by guard and reason"
    );
    describe_counter!(
        m::GUARD_RESIZES,
        "Proposed orders resized by a guard, by guard and reason"
    );
    describe_counter!(m::CYCLES, "Execution cycles, by outcome");
    describe_histogram!(
        m::CYCLE_DURATION,
        Unit::Seconds,
        "Wall time of one execution cycle"
    );
    describe_histogram!(
        m::BROKER_REQUEST_DURATION,
        Unit::Seconds,
        "Latency of broker requests, by operation"
    );
    describe_counter!(m::BROKER_ERRORS, "Failed broker requests, by operation and kind");
    describe_counter!(m::KILL_SWITCH_ENGAGEMENTS, "Kill-switch engagements, by source");
    describe_counter!(m::RECONCILIATIONS, "Reconciliations with the broker, by outcome");
    describe_counter!(m::ALERTS, "Operational alerts logged, by kind");
    describe_counter!(
        m::LEASE_ACQUISITIONS,
        "Single-writer lease acquisitions, by account"
    );
    describe_counter!(
        m::NOTIFICATIONS,
        "Notification delivery attempts, by channel and outcome"
    );
    // Registered at zero so `increase(keel_alerts_total{kind="stream_down"}[10m])`
    // has a series to work on before the first alert.
    for k in keel_domain::AlertKind::ALL {
        metrics::counter!(m::ALERTS, m::LABEL_KIND => k.as_str()).increment(0);
    }
}

/// Installs the global `metrics` recorder (call once, early in `main`) and
/// returns the handle to pass to [`crate::router`] / [`crate::serve`].
///
/// Fails if a global recorder is already installed.
pub fn install_metrics_recorder() -> Result<PrometheusHandle, crate::ServerError> {
    let handle = builder()?.install_recorder()?;
    describe();
    Ok(handle)
}

/// A recorder that is *not* installed globally, with its handle: for tests
/// and embedders that scope metrics with `metrics::with_local_recorder`.
pub fn metrics_recorder() -> Result<(PrometheusRecorder, PrometheusHandle), crate::ServerError> {
    let recorder = builder()?.build_recorder();
    let handle = recorder.handle();
    Ok((recorder, handle))
}

/// Appends one gauge with its HELP and TYPE lines.
fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
}

/// A decimal as a Prometheus sample value: the exact decimal text is a valid
/// float literal, so no binary rounding happens here.
fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

/// Renders the scrape-time gauges.
pub(crate) fn store_gauges(
    core: &Core,
    day_pnl: Option<Decimal>,
    chain_ok: Option<bool>,
    market_open: bool,
) -> String {
    let mut out = String::with_capacity(2048);
    let b = &core.book;
    gauge(
        &mut out,
        m::EQUITY,
        "Equity: cash plus marked positions",
        dec(b.equity),
    );
    gauge(&mut out, m::CASH, "Cash", dec(b.cash));
    gauge(
        &mut out,
        m::GROSS_EXPOSURE,
        "Sum of absolute market values",
        dec(b.gross_exposure),
    );
    gauge(
        &mut out,
        m::NET_EXPOSURE,
        "Sum of signed market values",
        dec(b.net_exposure),
    );
    gauge(
        &mut out,
        m::UNREALIZED_PNL,
        "Unrealized P&L of open positions",
        dec(b.unrealized_pnl),
    );
    if let Some(p) = day_pnl {
        gauge(
            &mut out,
            m::DAY_PNL,
            "Equity minus the last close before the current session",
            dec(p),
        );
    }
    gauge(
        &mut out,
        m::OPEN_ORDERS,
        "Orders that can still fill",
        core.open_orders,
    );
    let held = b.positions.iter().filter(|p| !p.qty.is_zero()).count();
    gauge(&mut out, m::POSITIONS, "Held positions", held);
    gauge(
        &mut out,
        m::KILL_SWITCH_ENGAGED,
        "1 when the kill switch is engaged",
        u8::from(core.kill.is_some()),
    );
    gauge(&mut out, m::AUDIT_SEQ, "Audit log head sequence number", core.seq);
    if let Some(ok) = chain_ok {
        gauge(
            &mut out,
            m::AUDIT_CHAIN_OK,
            "1 when the last audit chain verification passed",
            u8::from(ok),
        );
    }
    gauge(
        &mut out,
        m::MARKET_OPEN,
        "1 inside a regular NYSE session",
        u8::from(market_open),
    );
    if let Some(r) = &core.reconciliation {
        gauge(
            &mut out,
            m::RECONCILIATION_OK,
            "1 when the latest reconciliation agreed",
            u8::from(r.ok),
        );
    }
    if let Some(c) = &core.last_cycle {
        gauge(
            &mut out,
            m::LAST_CYCLE_START,
            "Unix time the latest cycle started",
            c.started_at.timestamp(),
        );
    }
    if let Some(e) = core.eod.last() {
        let t = e.date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp();
        gauge(
            &mut out,
            m::LAST_EOD_DATE,
            "Unix time of the latest EOD snapshot's date",
            t,
        );
    }
    out
}

/// `GET /metrics`.
pub(crate) async fn handler(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let core = state.cache().core().await?;
    let now = chrono::Utc::now();
    let session = crate::model::pnl_session_date(now);
    let day_pnl = crate::model::day_pnl(core.book.equity, &core.eod, session).map(|p| p.0);
    let chain_ok = state.cache().last_verified().await.map(|v| v.report.is_ok());
    let market_open = keel_calendar::is_open(now);
    let mut body = store_gauges(&core, day_pnl, chain_ok, market_open);
    if let Some(h) = state.metrics() {
        // Upkeep drains histogram samples; doing it per scrape keeps memory
        // bounded without a background task when nobody scrapes.
        h.run_upkeep();
        body.push_str(&h.render());
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    ))
}
