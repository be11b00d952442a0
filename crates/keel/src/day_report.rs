//! `keel report --day`: renders keel-server's report model (the one
//! `/api/v1/report/{day}` serves) as text, CSV, JSON or one self-contained
//! HTML file with the dashboard's own chart library inlined.

use crate::cli::ReportFormat;
use crate::commands::Env;
use crate::error::{input, CliError};
use anyhow::Context;
use chrono::NaiveDate;
use keel_server::report::DayReport;
use std::path::Path;

/// Runs the verb.
pub async fn run(env: Env, day: &str, format: ReportFormat, out: Option<&Path>) -> Result<(), CliError> {
    let day = NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|e| input(format!("--day = {day:?}: expected YYYY-MM-DD ({e})")))?;
    if crate::stores::missing(&env.cfg) {
        return Err(input(format!(
            "no store at {}: nothing to report",
            crate::stores::describe(&env.cfg)
        )));
    }
    let backend = crate::stores::open(&env.cfg).await?;
    let report = keel_server::report::build(backend.store().as_ref(), day)
        .await
        .context("building the report")?;
    let text = match format {
        ReportFormat::Json => serde_json::to_string_pretty(&report).context("encoding the report")? + "\n",
        ReportFormat::Text => text(&report),
        ReportFormat::Csv => csv(&report),
        ReportFormat::Html => html(&report)?,
    };
    backend.close().await;
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("writing the report")?;
        }
    }
    Ok(())
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), |x| x.to_string())
}

/// A price for people: at most 4 decimals, no 26-digit tails.
fn px(v: Option<rust_decimal::Decimal>) -> String {
    v.map_or_else(|| "-".to_string(), |d| d.round_dp(4).normalize().to_string())
}

/// Plain text.
pub fn text(r: &DayReport) -> String {
    let mut s = String::new();
    let acct = r.account_id.as_deref().unwrap_or("-");
    s += &format!(
        "keel execution report {} (account {acct}, audit seq {})\n\n",
        r.day, r.audit_seq
    );
    if let Some(e) = &r.eod {
        s += &format!(
            "EOD: equity {} cash {} gross {} net {} day P&L {}\n",
            e.equity.round_dp(2),
            e.cash.round_dp(2),
            e.gross_exposure.round_dp(2),
            e.net_exposure.round_dp(2),
            e.day_pnl.round_dp(2)
        );
    } else {
        s += "EOD: no snapshot for this day\n";
    }
    s += &format!("\nTarget sets received: {}\n", r.target_sets.len());
    for t in &r.target_sets {
        s += &format!(
            "  {} at {} ({} targets): {}\n",
            t.id,
            t.queued_at.to_rfc3339(),
            t.targets,
            t.status.as_deref().unwrap_or("-")
        );
    }
    let x = &r.execution;
    s += &format!(
        "\nOrders {} (filled {}, partial {}, partial-fill rate {}), fills {}, time to fill median {}s max {}s\n",
        x.orders,
        x.filled_orders,
        x.partial_orders,
        opt(&x.partial_fill_rate),
        x.fills,
        opt(&x.median_time_to_fill_secs),
        opt(&x.max_time_to_fill_secs)
    );
    s += &format!(
        "Slippage vs arrival: mean {} bps, notional-weighted {} bps over {} fills; shortfall {} ({} bps) on {} orders\n",
        opt(&r.slippage.mean_bps),
        opt(&r.slippage.weighted_mean_bps),
        r.slippage.count,
        r.shortfall.execution_cost,
        opt(&r.shortfall.execution_cost_bps),
        r.shortfall.orders
    );
    s += &format!(
        "Spread paid (filled x half the arrival spread, part of the shortfall): {} over {} orders\n",
        px(r.execution.spread_paid),
        r.orders.iter().filter(|o| o.spread_paid.is_some()).count()
    );
    if !r.slippage_per_symbol.is_empty() {
        s += "\nPer symbol (fills, mean bps, weighted bps):\n";
        for g in &r.slippage_per_symbol {
            s += &format!(
                "  {:<8} {:>4} {:>10} {:>10}\n",
                g.key,
                g.stats.count,
                opt(&g.stats.mean_bps),
                opt(&g.stats.weighted_mean_bps)
            );
        }
    }
    if !r.orders.is_empty() {
        s += "\nOrders (id, side, qty, filled, status, arrival, avg fill, bps, shortfall):\n";
        for o in &r.orders {
            s += &format!(
                "  {} {} {} {} {} {} {} {} {}\n",
                o.client_order_id,
                o.side,
                o.qty,
                o.filled_qty,
                o.status,
                px(Some(o.arrival_price)),
                px(o.avg_fill_price),
                opt(&o.slippage_bps),
                px(o.shortfall)
            );
        }
    }
    if !r.weights.is_empty() {
        s += &format!(
            "\nWeights at the close vs {} (symbol, target, achieved, difference):\n",
            r.weights_target_set.as_deref().unwrap_or("-")
        );
        for w in &r.weights {
            s += &format!(
                "  {:<8} {:>10} {:>10} {:>10}\n",
                w.symbol, w.target, w.achieved, w.difference
            );
        }
    }
    s += &format!("\nGuard blocks and resizes: {}\n", r.guards.len());
    for g in &r.guards {
        s += &format!("  {} {} {}: {}\n", g.guard, g.action, g.reason, g.count);
    }
    for (title, rows) in [
        ("Kill switch", &r.kill_switch),
        ("Reconciliations", &r.reconciliations),
        ("Alerts", &r.alerts),
    ] {
        s += &format!("\n{title}: {}\n", rows.len());
        for e in rows {
            s += &format!("  #{} {} {}: {}\n", e.seq, e.at.to_rfc3339(), e.kind, e.detail);
        }
    }
    s
}

/// A CSV field, quoted when needed.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV: `section,...` rows, one header row per section.
pub fn csv(r: &DayReport) -> String {
    let mut s = String::new();
    let mut row = |cells: &[String]| {
        let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
        s += &line.join(",");
        s.push('\n');
    };
    let o = |v: &Option<rust_decimal::Decimal>| v.map(|d| d.to_string()).unwrap_or_default();
    row(&["section".into(), "key".into(), "value".into()]);
    if let Some(e) = &r.eod {
        for (k, v) in [
            ("equity", e.equity),
            ("cash", e.cash),
            ("gross_exposure", e.gross_exposure),
            ("net_exposure", e.net_exposure),
            ("day_pnl", e.day_pnl),
        ] {
            row(&["eod".into(), k.into(), v.to_string()]);
        }
    }
    row(&[
        "execution".into(),
        "orders".into(),
        r.execution.orders.to_string(),
    ]);
    row(&["execution".into(), "fills".into(), r.execution.fills.to_string()]);
    row(&[
        "execution".into(),
        "partial_fill_rate".into(),
        o(&r.execution.partial_fill_rate),
    ]);
    row(&["slippage".into(), "mean_bps".into(), o(&r.slippage.mean_bps)]);
    row(&[
        "slippage".into(),
        "weighted_mean_bps".into(),
        o(&r.slippage.weighted_mean_bps),
    ]);
    row(&[
        "shortfall".into(),
        "execution_cost".into(),
        r.shortfall.execution_cost.to_string(),
    ]);
    row(&[
        "shortfall".into(),
        "execution_cost_bps".into(),
        o(&r.shortfall.execution_cost_bps),
    ]);
    row(&[
        "execution".into(),
        "spread_paid".into(),
        o(&r.execution.spread_paid),
    ]);
    row(&[]);
    row(&[
        "order".into(),
        "client_order_id".into(),
        "symbol".into(),
        "side".into(),
        "qty".into(),
        "filled_qty".into(),
        "status".into(),
        "arrival_price".into(),
        "avg_fill_price".into(),
        "slippage_bps".into(),
        "shortfall".into(),
        "time_to_fill_secs".into(),
    ]);
    for x in &r.orders {
        row(&[
            "order".into(),
            x.client_order_id.clone(),
            x.symbol.clone(),
            x.side.clone(),
            x.qty.to_string(),
            x.filled_qty.to_string(),
            x.status.clone(),
            x.arrival_price.to_string(),
            o(&x.avg_fill_price),
            o(&x.slippage_bps),
            o(&x.shortfall),
            x.time_to_fill_secs.map(|t| t.to_string()).unwrap_or_default(),
        ]);
    }
    row(&[]);
    row(&[
        "weight".into(),
        "symbol".into(),
        "target".into(),
        "achieved".into(),
        "difference".into(),
    ]);
    for w in &r.weights {
        row(&[
            "weight".into(),
            w.symbol.clone(),
            w.target.to_string(),
            w.achieved.to_string(),
            w.difference.to_string(),
        ]);
    }
    row(&[]);
    row(&[
        "guard".into(),
        "guard".into(),
        "action".into(),
        "reason".into(),
        "count".into(),
    ]);
    for g in &r.guards {
        row(&[
            "guard".into(),
            g.guard.clone(),
            g.action.clone(),
            g.reason.clone(),
            g.count.to_string(),
        ]);
    }
    row(&[]);
    row(&[
        "event".into(),
        "seq".into(),
        "at".into(),
        "kind".into(),
        "detail".into(),
    ]);
    for e in r.kill_switch.iter().chain(&r.reconciliations).chain(&r.alerts) {
        row(&[
            "event".into(),
            e.seq.to_string(),
            e.at.to_rfc3339(),
            e.kind.clone(),
            e.detail.clone(),
        ]);
    }
    s
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained HTML file: the report's JSON and the dashboard's chart
/// library are inlined, so it opens offline and from an email attachment.
pub fn html(r: &DayReport) -> Result<String, CliError> {
    // `</` cannot appear inside the inline JSON, so no data can close the script.
    let data = serde_json::to_string(r)
        .context("encoding the report")?
        .replace("</", "<\\/");
    let mut rows = String::new();
    for o in &r.orders {
        rows += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>\n",
            esc(&o.client_order_id),
            esc(&o.symbol),
            esc(&o.side),
            o.qty,
            o.filled_qty,
            esc(&o.status),
            px(Some(o.arrival_price)),
            px(o.avg_fill_price),
            opt(&o.slippage_bps)
        );
    }
    let summary = esc(&text(r));
    Ok(format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>\
<title>keel report {day}</title>\
<style>body{{font:14px system-ui,sans-serif;margin:24px;color:#1f2937}}\
canvas{{width:100%;height:220px;display:block;border:1px solid #e5e7eb;margin:8px 0 20px}}\
table{{border-collapse:collapse;font-size:12px}}td,th{{border-bottom:1px solid #e5e7eb;padding:2px 8px}}\
td.n{{text-align:right;font-variant-numeric:tabular-nums}}pre{{background:#f9fafb;padding:12px;overflow:auto}}</style>\
</head><body>\n<h1>keel execution report {day}</h1>\n\
<h2>Equity at the close</h2><canvas id=equity></canvas>\n\
<h2>Slippage vs arrival (bps, fills per bucket)</h2><canvas id=slippage></canvas>\n\
<h2>Target vs achieved weight at the close</h2><canvas id=weights></canvas>\n\
<h2>Orders</h2><table><tr><th>id</th><th>symbol</th><th>side</th><th>qty</th><th>filled</th><th>status</th><th>arrival</th><th>avg fill</th><th>bps</th></tr>\n{rows}</table>\n\
<h2>Summary</h2><pre>{summary}</pre>\n\
<script id=report-data type=application/json>{data}</script>\n\
<script>{chart}</script>\n<script>{draw}</script>\n</body></html>\n",
        day = r.day,
        chart = keel_server::CHART_JS,
        draw = DRAW_JS,
    ))
}

/// Draws the report's charts with the dashboard's `KeelChart`.
const DRAW_JS: &str = r#"'use strict';
(function () {
  var r = JSON.parse(document.getElementById('report-data').textContent);
  var eq = r.equity_history || [];
  KeelChart.line(document.getElementById('equity'), {
    labels: eq.map(function (e) { return e.date; }),
    series: [{ name: 'equity', color: '#2563eb', values: eq.map(function (e) { return e.equity; }) }]
  });
  var h = r.histogram || [];
  KeelChart.bars(document.getElementById('slippage'), {
    labels: h.map(function (b) { return b.label; }),
    values: h.map(function (b) { return b.count; })
  });
  var w = r.weights || [];
  KeelChart.line(document.getElementById('weights'), {
    labels: w.map(function (x) { return x.symbol; }),
    series: [
      { name: 'target', color: '#9ca3af', values: w.map(function (x) { return x.target; }) },
      { name: 'achieved', color: '#2563eb', values: w.map(function (x) { return x.achieved; }) }
    ]
  });
  document.body.setAttribute('data-charts', 'drawn');
})();
"#;
