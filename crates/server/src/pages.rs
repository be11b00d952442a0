//! The dashboard's HTML pages and static assets.
//!
//! Pages are static skeletons: headings, empty tables and element ids. No
//! store data is ever rendered into HTML on the server; `app.js` fills the
//! skeleton from the JSON API with `textContent`, so data can never become
//! markup. The Content-Security-Policy (see `lib.rs`) forbids inline scripts
//! as a second line of defence. Assets are compiled into the binary, so the
//! dashboard works offline and loads nothing from elsewhere.

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The chart module (canvas line and bar charts), written for keel.
pub const CHART_JS: &str = include_str!("../assets/chart.js");
/// The page logic.
pub const APP_JS: &str = include_str!("../assets/app.js");
/// The stylesheet.
pub const STYLE_CSS: &str = include_str!("../assets/style.css");

/// One dashboard page: its id (`data-page`), path, nav label and title.
struct Page {
    id: &'static str,
    path: &'static str,
    nav: &'static str,
    title: &'static str,
    body: &'static str,
}

/// Every page, in navigation order.
const PAGES: &[Page] = &[
    Page {
        id: "overview",
        path: "/",
        nav: "Overview",
        title: "Overview",
        body: OVERVIEW,
    },
    Page {
        id: "accounts",
        path: "/accounts",
        nav: "Accounts",
        title: "All accounts",
        body: ACCOUNTS,
    },
    Page {
        id: "positions",
        path: "/positions",
        nav: "Positions",
        title: "Positions",
        body: POSITIONS,
    },
    Page {
        id: "orders",
        path: "/orders",
        nav: "Orders & fills",
        title: "Orders and fills",
        body: ORDERS,
    },
    Page {
        id: "slippage",
        path: "/slippage",
        nav: "Slippage",
        title: "Slippage",
        body: SLIPPAGE,
    },
    Page {
        id: "eod",
        path: "/eod",
        nav: "EOD",
        title: "End-of-day snapshots",
        body: EOD,
    },
    Page {
        id: "guards",
        path: "/guards",
        nav: "Guards",
        title: "Guard decisions",
        body: GUARDS,
    },
    Page {
        id: "audit",
        path: "/audit",
        nav: "Audit log",
        title: "Audit log",
        body: AUDIT,
    },
];

/// The PAPER/LIVE badge. The mode comes from config, not from a request, but
/// is escaped all the same.
fn venue_badge(venue: &str) -> String {
    let class = if venue.starts_with("LIVE") {
        "live"
    } else {
        "paper"
    };
    let text: String = venue
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!("<span id=\"hdr-venue\" class=\"badge {class}\" title=\"venue\">{text}</span>")
}

/// Renders a page. Only compile-time strings, an integer and the escaped
/// venue badge go into the markup.
fn render(page: &Page, refresh_secs: u64, venue: &str) -> String {
    let mut nav = String::new();
    for p in PAGES {
        let current = if p.id == page.id {
            " aria-current=\"page\""
        } else {
            ""
        };
        nav.push_str(&format!("<a href=\"{}\"{current}>{}</a>", p.path, p.nav));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>keel · {title}</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\n\
<body data-page=\"{id}\" data-refresh=\"{refresh_secs}\">\n\
<header><span class=\"brand\">keel</span>{badge}<nav>{nav}</nav>\
<label class=\"acct\">account <select id=\"hdr-account\" aria-label=\"Account\"></select></label><span class=\"spacer\"></span>\
<span id=\"hdr-kill\" class=\"badge\">…</span><span id=\"hdr-market\" class=\"badge\">…</span></header>\n\
<div id=\"error\" hidden></div>\n<main><h1>{title}</h1>\n{body}\n</main>\n\
<footer><span id=\"updated\">loading…</span> · read-only view, refreshes every {refresh_secs} s</footer>\n\
<script src=\"/assets/chart.js\"></script><script src=\"/assets/app.js\"></script>\n</body></html>\n",
        title = page.title,
        id = page.id,
        body = page.body,
        badge = venue_badge(venue),
    )
}

fn page_response(state: &AppState, id: &str) -> impl IntoResponse {
    // PAGES is a constant table and every route names an entry in it.
    let page = PAGES.iter().find(|p| p.id == id).unwrap_or(&PAGES[0]);
    Html(render(page, state.refresh_secs(), state.venue()))
}

/// `GET /`.
pub(crate) async fn overview(State(s): State<AppState>) -> impl IntoResponse {
    page_response(&s, "overview")
}
/// `GET /accounts`.
pub(crate) async fn accounts(State(s): State<AppState>) -> impl IntoResponse {
    page_response(&s, "accounts")
}
/// `GET /positions`.
pub(crate) async fn positions(State(s): State<AppState>) -> impl IntoResponse {
    page_response(&s, "positions")
}
/// `GET /orders`.
pub(crate) async fn orders(State(s): State<AppState>) -> impl IntoResponse {
    page_response(&s, "orders")
}
/// `GET /slippage`.
pub(crate) async fn slippage(State(s): State<AppState>) -> impl IntoResponse {
    page_response(&s, "slippage")
}
/// `GET /eod`.
pub(crate) async fn eod(State(s): State<AppState>) -> impl IntoResponse {
    page_response(&s, "eod")
}
/// `GET /guards`.
pub(crate) async fn guards(State(s): State<AppState>) -> impl IntoResponse {
    page_response(&s, "guards")
}
/// `GET /audit`.
pub(crate) async fn audit(State(s): State<AppState>) -> impl IntoResponse {
    page_response(&s, "audit")
}

/// Assets change only with the binary; a short max-age spares reloads
/// without risking a stale script after an upgrade.
const ASSET_CACHE: &str = "public, max-age=300";

/// `GET /assets/chart.js`.
pub(crate) async fn chart_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        CHART_JS,
    )
}
/// `GET /assets/app.js`.
pub(crate) async fn app_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        APP_JS,
    )
}
/// `GET /assets/style.css`.
pub(crate) async fn style_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        STYLE_CSS,
    )
}

const OVERVIEW: &str = r#"<section class="cards">
<div class="card"><div class="label">Equity</div><div class="value" id="equity">—</div><div class="sub">account <span id="account-id">—</span></div></div>
<div class="card"><div class="label">Cash</div><div class="value" id="cash">—</div></div>
<div class="card"><div class="label">Gross exposure</div><div class="value" id="gross-exposure">—</div></div>
<div class="card"><div class="label">Net exposure</div><div class="value" id="net-exposure">—</div></div>
<div class="card"><div class="label">Day P&amp;L</div><div class="value" id="day-pnl">—</div><div class="sub" id="day-pnl-basis"></div></div>
<div class="card"><div class="label">Unrealized P&amp;L</div><div class="value" id="unrealized-pnl">—</div></div>
</section>
<section class="cards">
<div class="card"><div class="label">Kill switch</div><div class="value" id="kill-switch">—</div><div class="sub" id="kill-reason"></div></div>
<div class="card"><div class="label">Market</div><div class="value" id="market-status">—</div><div class="sub" id="market-session"></div></div>
<div class="card"><div class="label">Last cycle</div><div class="value" id="last-cycle-outcome">—</div><div class="sub" id="last-cycle"></div></div>
<div class="card"><div class="label">Open orders</div><div class="value" id="open-orders">—</div><div class="sub"><span id="positions-count">—</span> positions</div></div>
<div class="card"><div class="label">Reconciliation</div><div class="value" id="reconciliation">—</div><div class="sub" id="reconciliation-detail"></div><div class="sub">last ok: <span id="reconciliation-ok-at">—</span></div><div class="sub" id="reconciliation-scope"></div></div>
<div class="card"><div class="label">Audit sequence</div><div class="value" id="audit-seq">—</div></div>
</section>
<h2>Equity curve (end-of-day)</h2>
<canvas id="equity-chart" width="900" height="260"></canvas>
<p class="muted" id="equity-chart-note"></p>
<h2>Target sets (newest first)</h2>
<p class="muted">The newest set is the portfolio; older ones still queued are closed as superseded, not traded.</p>
<table id="sets-table"><thead><tr><th>Id</th><th>As of</th><th>Queued</th><th class="num">Targets</th><th class="num">Gross weight</th><th>Status</th><th>Superseded by</th></tr></thead><tbody id="sets-body"></tbody></table>"#;

const ACCOUNTS: &str = r#"<p class="muted">Every configured account, each with its own dashboard (follow its id), and all of them together. Figures are each account's own valuation; the total is their sum.</p>
<table id="accounts-table"><thead><tr><th>Account</th><th class="num">Equity</th><th class="num">Cash</th><th class="num">Gross</th><th class="num">Net</th><th class="num">Unrealized P&amp;L</th><th class="num">Day P&amp;L</th><th class="num">Positions</th><th class="num">Open orders</th><th>Kill switch</th><th>Last cycle</th></tr></thead><tbody id="accounts-body"></tbody>
<tfoot><tr id="accounts-total"><th>All accounts</th><td class="num" id="total-equity">—</td><td class="num" id="total-cash">—</td><td class="num" id="total-gross">—</td><td class="num" id="total-net">—</td><td class="num" id="total-unrealized">—</td><td class="num" id="total-day-pnl">—</td><td class="num" id="total-positions">—</td><td class="num" id="total-open-orders">—</td><td id="total-killed">—</td><td></td></tr></tfoot></table>"#;

const POSITIONS: &str = r#"<section class="cards">
<div class="card"><div class="label">Equity</div><div class="value" id="pos-equity">—</div></div>
<div class="card"><div class="label">Cash</div><div class="value" id="pos-cash">—</div></div>
<div class="card"><div class="label">Gross exposure</div><div class="value" id="pos-gross">—</div></div>
<div class="card"><div class="label">Net exposure</div><div class="value" id="pos-net">—</div></div>
<div class="card"><div class="label">Unrealized P&amp;L</div><div class="value" id="pos-unrealized">—</div></div>
</section>
<p class="muted">Target set: <span id="target-set">—</span>. Prices are the latest keel recorded (a fill or an end-of-day close); "cost" means no price is known and the position is valued at its average cost.</p>
<table id="positions-table"><thead><tr><th>Symbol</th><th class="num">Qty</th><th class="num">Avg cost</th><th class="num">Price</th><th>Price source</th><th class="num">Market value</th><th class="num">Weight</th><th class="num">Target</th><th class="num">Weight − target</th><th class="num">Unrealized P&amp;L</th></tr></thead><tbody id="positions-body"></tbody></table>"#;

const ORDERS: &str = r#"<div class="filters">
<label>Day (UTC)<input type="date" id="f-day"></label>
<label>Symbol<input id="f-symbol" placeholder="AAPL" autocomplete="off" size="8"></label>
<label>Status<select id="f-status"><option value="">any</option><option>intent</option><option>accepted</option><option>partially_filled</option><option>filled</option><option>canceled</option><option>rejected</option><option>expired</option></select></label>
<button type="button" id="f-clear">Clear filters</button>
</div>
<h2>Orders <span class="muted" id="orders-count"></span></h2>
<table id="orders-table"><thead><tr><th>Created</th><th>Symbol</th><th>Side</th><th class="num">Qty</th><th class="num">Filled</th><th>Status</th><th class="num">Arrival</th><th class="num">Avg fill</th><th class="num">Slippage (bps)</th><th>Reason</th><th>Client order id</th></tr></thead><tbody id="orders-body"></tbody></table>
<h2>Fills <span class="muted" id="fills-count"></span></h2>
<p class="muted">Fills follow the day and symbol filters; status applies to orders only.</p>
<table id="fills-table"><thead><tr><th>Time</th><th>Symbol</th><th>Side</th><th class="num">Qty</th><th class="num">Price</th><th class="num">Slippage (bps)</th><th>Client order id</th></tr></thead><tbody id="fills-body"></tbody></table>"#;

const SLIPPAGE: &str = r#"<div class="filters">
<label>Day (UTC)<input type="date" id="f-day"></label>
<label>Symbol<input id="f-symbol" placeholder="AAPL" autocomplete="off" size="8"></label>
<button type="button" id="f-clear">Clear filters</button>
</div>
<p class="muted">Signed slippage of each fill against its order's arrival (decision-time reference) price, in basis points; positive means it cost money. <span id="slip-truncated"></span></p>
<section class="cards">
<div class="card"><div class="label">Fills</div><div class="value" id="slip-count">—</div></div>
<div class="card"><div class="label">Mean (bps)</div><div class="value" id="slip-mean">—</div></div>
<div class="card"><div class="label">Notional-weighted mean (bps)</div><div class="value" id="slip-wmean">—</div></div>
<div class="card"><div class="label">Median (bps)</div><div class="value" id="slip-p50">—</div></div>
<div class="card"><div class="label">95th pct (bps)</div><div class="value" id="slip-p95">—</div></div>
<div class="card"><div class="label">Implementation shortfall</div><div class="value" id="is-cost">—</div><div class="sub"><span id="is-bps">—</span> bps · <span id="is-orders"></span></div></div>
</section>
<p class="muted">Percentiles (bps): p5 <span id="slip-p5">—</span> · p25 <span id="slip-p25">—</span> · p75 <span id="slip-p75">—</span> · p99 <span id="slip-p99">—</span></p>
<div class="grid2">
<div><h2>Distribution (fills per bps bucket)</h2><canvas id="slip-hist" class="small" width="600" height="200"></canvas></div>
<div><h2>Mean slippage per day (bps)</h2><canvas id="slip-daily" class="small" width="600" height="200"></canvas></div>
</div>
<div class="grid2">
<div><h2>Per day</h2><table id="slip-day-table"><thead><tr><th>Day</th><th class="num">Fills</th><th class="num">Mean</th><th class="num">Wtd mean</th><th class="num">Median</th><th class="num">p95</th><th class="num">Notional</th></tr></thead><tbody id="slip-day-body"></tbody></table></div>
<div><h2>Per symbol</h2><table id="slip-symbol-table"><thead><tr><th>Symbol</th><th class="num">Fills</th><th class="num">Mean</th><th class="num">Wtd mean</th><th class="num">Median</th><th class="num">p95</th><th class="num">Notional</th></tr></thead><tbody id="slip-symbol-body"></tbody></table></div>
</div>"#;

const EOD: &str = r#"<div class="grid2">
<div><h2>Equity at the close</h2><canvas id="eod-chart" class="small" width="600" height="200"></canvas></div>
<div><h2>Day P&amp;L</h2><canvas id="eod-pnl-chart" class="small" width="600" height="200"></canvas></div>
</div>
<h2>Snapshots (newest first)</h2>
<table id="eod-table"><thead><tr><th>Date</th><th class="num">Equity</th><th class="num">Cash</th><th class="num">Gross</th><th class="num">Net</th><th class="num">Day P&amp;L</th><th class="num">Mean slippage (bps)</th><th class="num">Positions</th></tr></thead><tbody id="eod-body"></tbody></table>"#;

const GUARDS: &str = r#"<div class="filters">
<label>Day (UTC)<input type="date" id="f-day"></label>
<label>Symbol<input id="f-symbol" placeholder="AAPL" autocomplete="off" size="8"></label>
<label>Guard<input id="f-guard" placeholder="coverage" autocomplete="off" size="14" list="guard-ids"></label>
<datalist id="guard-ids"><option>planner</option><option>kill_switch</option><option>replayed_target_set</option><option>stale_targets</option><option>suspicious_target_set</option><option>coverage</option><option>market_hours</option><option>stale_quote</option><option>restricted_list</option><option>open_order</option><option>no_trade_band</option><option>position_existence</option><option>cooldown</option><option>volatility_brake</option><option>price_collar</option><option>max_order_size</option><option>adv_limit</option><option>max_position_weight</option><option>exposure_limits</option><option>buying_power</option><option>cycle_limits</option><option>order_rate_throttle</option></datalist>
<button type="button" id="f-clear">Clear filters</button>
<button type="button" id="guards-newer">Newer</button><button type="button" id="guards-older">Older</button><span class="muted" id="guards-range"></span>
</div>
<p class="muted">What the guard pipeline blocked or resized, 20 cycles a page, newest first, and why. With a symbol or guard filter only the cycles with matching actions are listed. Orders that passed untouched are only counted.</p>
<div class="grid2">
<div><h2>Cycles</h2><table id="cycles-table"><thead><tr><th>Started</th><th>Cycle</th><th>Outcome</th><th class="num">Passed</th><th class="num">Resized</th><th class="num">Blocked</th></tr></thead><tbody id="cycles-body"></tbody></table></div>
<div><h2>By action and reason</h2><table id="guard-summary"><thead><tr><th>Action · reason</th><th class="num">Count</th></tr></thead><tbody id="guard-summary-body"></tbody></table></div>
</div>
<h2>Blocks and resizes</h2>
<table id="guard-table"><thead><tr><th>Cycle</th><th>Symbol</th><th>Side</th><th>Action</th><th>Guard</th><th>Reason</th><th>Detail</th><th class="num">Proposed</th><th class="num">Final</th></tr></thead><tbody id="guard-body"></tbody></table>"#;

const AUDIT: &str = r#"<p>Hash chain: <span id="chain-status" class="badge">checking…</span> <span class="muted" id="chain-detail"></span></p>
<div class="filters"><button type="button" id="audit-newest">Newest</button><button type="button" id="audit-newer">Newer</button><button type="button" id="audit-older">Older</button><span class="muted" id="audit-range"></span></div>
<table id="audit-table"><thead><tr><th class="num">Seq</th><th>Time</th><th>Kind</th><th>Event id</th><th>Payload</th><th>Hash</th></tr></thead><tbody id="audit-body"></tbody></table>"#;
