//! keel's HTTP face: a read-only dashboard, its JSON API, Prometheus
//! `/metrics`, and an opt-in control API.
//!
//! - **Dashboard** (`/`, `/positions`, `/orders`, `/slippage`, `/eod`,
//!   `/guards`, `/audit`): static pages whose script fetches the JSON API
//!   every few seconds and writes values with `textContent`. Charts are drawn
//!   by a small canvas module compiled into the binary; nothing is loaded
//!   from the network, so it works offline.
//! - **JSON API** under `/api/v1/`, documented in `openapi.json` (served at
//!   `/api/v1/openapi.json`; a test checks it against the router).
//! - **`/metrics`**: store-derived gauges computed at scrape time plus the
//!   worker's counters and histograms (see [`metrics_names`]).
//! - **Control API** under `/api/v1/control/`: only mounted when a token is
//!   configured and the binary provides a [`ControlPort`]; bearer token
//!   compared in constant time; every action goes through the port, which
//!   audits it.
//!
//! Nothing reachable without the token changes state: the read-only router
//! has GET routes only, so any other method gets 405.
//!
//! Binds to `127.0.0.1:8080` by default. Another address is an explicit
//! configuration choice and is logged as a warning.

#![warn(missing_docs)]

mod api;
mod cache;
mod conn;
mod control;
mod error;
mod metrics;
mod model;
mod pages;
pub mod report;
mod state;

pub use api::OPENAPI_JSON;
pub use cache::HEAD_CHECK_INTERVAL;
pub use conn::ConnLimits;
pub use control::{
    load_control_token, ControlError, ControlPort, TokenError, MAX_CONTROL_BODY, MAX_REASON_LEN,
    MIN_TOKEN_LEN,
};
pub use metrics::{install_metrics_recorder, metrics_names, metrics_recorder};
pub use metrics_exporter_prometheus::PrometheusHandle;
pub use model::{
    Book, Bucket, CycleDecisions, EodView, GuardAction, KillView, Mark, MarketStatus, OrderView, Overview,
    PositionView, PositionsResponse, PriceSource, Shortfall, SlipGroup, SlipSummary, SlippageResponse,
};
/// The dashboard's chart library, for pages rendered elsewhere (the HTML report).
pub use pages::CHART_JS;

use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use keel_store::Store;
use state::AppState;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The default bind address: loopback only, so the dashboard is private to
/// the machine unless an operator decides otherwise.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Default seconds between dashboard refreshes.
pub const DEFAULT_REFRESH_SECS: u64 = 5;

/// Server configuration.
#[derive(Clone)]
pub struct ServerConfig {
    /// Listen address; [`DEFAULT_BIND`] (127.0.0.1:8080) unless configured.
    pub bind: SocketAddr,
    /// Bearer token for the control API; `None` (or empty) leaves the control
    /// API unmounted. The binary loads it from `KEEL_CONTROL_TOKEN` or a file;
    /// it is never logged (`Debug` redacts it).
    pub control_token: Option<String>,
    /// Seconds between dashboard refreshes (at least 1).
    pub refresh_secs: u64,
    /// Host names (the `Host` header without its port) requests may carry;
    /// others get 421, so a DNS-rebinding page cannot read or drive the API
    /// through a victim's browser. Empty: [`default_allowed_hosts`] of `bind`.
    pub allowed_hosts: Vec<String>,
    /// Connection limit and timeouts.
    pub limits: ConnLimits,
    /// What the account trades against (`PAPER (embedded)`, `PAPER (alpaca)`,
    /// `LIVE (alpaca)`): every page shows it as a badge.
    pub venue: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND,
            control_token: None,
            refresh_secs: DEFAULT_REFRESH_SECS,
            allowed_hosts: Vec::new(),
            limits: ConnLimits::default(),
            venue: "PAPER (embedded)".into(),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field(
                "control_token",
                &self.control_token.as_ref().map(|_| "<redacted>"),
            )
            .field("refresh_secs", &self.refresh_secs)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("limits", &self.limits)
            .field("venue", &self.venue)
            .finish()
    }
}

impl ServerConfig {
    /// The token, when it is set and non-empty.
    fn token(&self) -> Option<&str> {
        self.control_token.as_deref().filter(|t| !t.is_empty())
    }

    /// The Host names accepted: the configured list, else the defaults for `bind`.
    fn hosts(&self) -> Vec<String> {
        if self.allowed_hosts.is_empty() {
            default_allowed_hosts(self.bind)
        } else {
            self.allowed_hosts.iter().map(|h| normalize_host(h)).collect()
        }
    }
}

/// The Host names accepted when `server.allowed_hosts` is empty: the bind
/// address itself and the loopback names (`localhost`, `127.0.0.1`, `::1`).
pub fn default_allowed_hosts(bind: SocketAddr) -> Vec<String> {
    let mut v = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let own = normalize_host(&bind.ip().to_string());
    if !v.contains(&own) {
        v.push(own);
    }
    v
}

/// `Host` header value → bare lower-case host: port and IPv6 brackets removed.
fn normalize_host(h: &str) -> String {
    let h = h.trim();
    let bare = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if h.matches(':').count() == 1 {
        h.split(':').next().unwrap_or(h)
    } else {
        h
    };
    bare.trim_end_matches('.').to_ascii_lowercase()
}

/// Middleware: 421 for a request whose `Host` is not allowed. A request
/// without `Host` passes: browsers always send one, and DNS rebinding needs a
/// browser.
async fn check_host(
    axum::extract::State(allowed): axum::extract::State<Arc<Vec<String>>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().map(normalize_host).unwrap_or_default())
        .or_else(|| req.uri().host().map(normalize_host));
    match host {
        Some(h) if !allowed.contains(&h) => {
            tracing::debug!(host = %keel_domain::log_safe(&h), "request for a host not in server.allowed_hosts");
            error::ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "unknown Host: add it to server.allowed_hosts to serve it",
            )
            .into_response()
        }
        _ => next.run(req).await,
    }
}

/// What can stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound (in use, no permission, ...).
    #[error("cannot bind the dashboard to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("dashboard server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The metrics recorder could not be built or installed (for example a
    /// global recorder is already installed).
    #[error("cannot set up the metrics recorder: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
}

/// One mounted route (method and path pattern), as [`router_with_table`]
/// reports it: the OpenAPI test compares this list with `openapi.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteInfo {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path pattern in OpenAPI/axum syntax (`/api/v1/cycles/{cycle_id}/decisions`).
    pub path: &'static str,
    /// True for control routes (token required).
    pub control: bool,
}

/// Registers routes and records each one, so the route list cannot drift
/// from what is mounted.
struct Routes {
    router: Router<AppState>,
    table: Vec<RouteInfo>,
    control: bool,
}

impl Routes {
    fn new(control: bool) -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
            control,
        }
    }

    fn get<H, T>(mut self, path: &'static str, h: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, axum::routing::get(h));
        self.table.push(RouteInfo {
            method: "GET",
            path,
            control: self.control,
        });
        self
    }

    fn post<H, T>(mut self, path: &'static str, h: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, axum::routing::post(h));
        self.table.push(RouteInfo {
            method: "POST",
            path,
            control: self.control,
        });
        self
    }
}

/// The application: dashboard, JSON API, `/metrics`, and the control API
/// when `cfg.control_token` is set and `control` is given.
///
/// `metrics` is the handle from [`install_metrics_recorder`]; without it
/// `/metrics` still serves the store-derived gauges.
pub fn router(
    store: Arc<dyn Store>,
    control: Option<Arc<dyn ControlPort>>,
    cfg: &ServerConfig,
    metrics: Option<PrometheusHandle>,
) -> Router {
    router_with_table(store, control, cfg, metrics).0
}

/// [`router`], plus the list of routes it mounted.
pub fn router_with_table(
    store: Arc<dyn Store>,
    control: Option<Arc<dyn ControlPort>>,
    cfg: &ServerConfig,
    metrics: Option<PrometheusHandle>,
) -> (Router, Vec<RouteInfo>) {
    router_for_accounts(
        vec![Account {
            id: String::new(),
            store,
            control,
        }],
        cfg,
        metrics,
    )
}

/// One account the server shows.
pub struct Account {
    /// The configured account id; with several accounts each one's dashboard
    /// is also served under `/a/<id>/`. Empty: an unnamed single store.
    pub id: String,
    /// Its store.
    pub store: Arc<dyn Store>,
    /// Its control port (the control API needs a token as well).
    pub control: Option<Arc<dyn ControlPort>>,
}

/// The application for several accounts: the first account's dashboard and
/// API at the root (as with one account), every named account's under
/// `/a/<id>/` (same pages and API), and `/accounts` with
/// `GET /api/v1/accounts` showing them all, each and together.
pub fn router_for_accounts(
    accounts: Vec<Account>,
    cfg: &ServerConfig,
    metrics: Option<PrometheusHandle>,
) -> (Router, Vec<RouteInfo>) {
    let caches: Vec<Arc<cache::Cache>> = accounts
        .iter()
        .map(|a| Arc::new(cache::Cache::new(a.store.clone())))
        .collect();
    let peers = Arc::new(
        accounts
            .iter()
            .zip(&caches)
            .map(|(a, c)| state::Peer {
                id: a.id.clone(),
                base: if a.id.is_empty() {
                    String::new()
                } else {
                    format!("/a/{}", a.id)
                },
                cache: c.clone(),
            })
            .collect::<Vec<_>>(),
    );
    let mut root: Option<(Router, Vec<RouteInfo>)> = None;
    let mut nested = Vec::new();
    for (i, (a, c)) in accounts.into_iter().zip(caches).enumerate() {
        let (app, table) = account_app(a.store, c, peers.clone(), a.control, cfg, metrics.clone());
        if !a.id.is_empty() {
            nested.push((format!("/a/{}", a.id), app.clone()));
        }
        if i == 0 {
            root = Some((app, table));
        }
    }
    let (mut app, table) = root.unwrap_or_else(|| (Router::new(), Vec::new()));
    for (path, sub) in nested {
        // The account's overview is `/a/<id>`; `/a/<id>/` is where people type.
        let to = path.clone();
        app = app
            .route(
                &format!("{path}/"),
                axum::routing::get(move || async move { axum::response::Redirect::permanent(&to) }),
            )
            .nest(&path, sub);
    }
    let app = app
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::new(cfg.hosts()), check_host))
        .layer(middleware::from_fn(security_headers));
    (app, table)
}

/// Every route of one account's dashboard, API and control, with its state.
fn account_app(
    store: Arc<dyn Store>,
    cache: Arc<cache::Cache>,
    peers: Arc<Vec<state::Peer>>,
    control: Option<Arc<dyn ControlPort>>,
    cfg: &ServerConfig,
    metrics: Option<PrometheusHandle>,
) -> (Router, Vec<RouteInfo>) {
    let token = cfg.token();
    let control = match (token, control) {
        (Some(_), Some(c)) => Some(c),
        _ => None,
    };
    let control_on = control.is_some();
    let state = AppState::with_cache(
        store,
        cache,
        peers,
        control,
        token.filter(|_| control_on),
        metrics,
        cfg.refresh_secs.max(1),
        cfg.venue.clone(),
    );

    let read = Routes::new(false)
        .get("/", pages::overview)
        .get("/accounts", pages::accounts)
        .get("/positions", pages::positions)
        .get("/orders", pages::orders)
        .get("/slippage", pages::slippage)
        .get("/eod", pages::eod)
        .get("/guards", pages::guards)
        .get("/audit", pages::audit)
        .get("/assets/app.js", pages::app_js)
        .get("/assets/chart.js", pages::chart_js)
        .get("/assets/style.css", pages::style_css)
        .get("/metrics", metrics::handler)
        .get("/api/v1/health", api::health)
        .get("/api/v1/openapi.json", api::openapi)
        .get("/api/v1/overview", api::overview)
        .get("/api/v1/accounts", api::accounts)
        .get("/api/v1/positions", api::positions)
        .get("/api/v1/orders", api::orders)
        .get("/api/v1/fills", api::fills)
        .get("/api/v1/slippage", api::slippage)
        .get("/api/v1/eod", api::eod)
        .get("/api/v1/cycles", api::cycles)
        .get("/api/v1/cycles/{cycle_id}/decisions", api::cycle_decisions)
        .get("/api/v1/guard-decisions", api::guard_decisions)
        .get("/api/v1/audit", api::audit)
        .get("/api/v1/audit/verify", api::audit_verify)
        .get("/api/v1/report/{day}", api::day_report);
    let mut table = read.table;
    let mut app = read.router;

    if control_on {
        let ctl = Routes::new(true)
            .post("/api/v1/control/kill", control::kill)
            .post("/api/v1/control/resume", control::resume)
            .post("/api/v1/control/target-sets", control::submit);
        table.extend(ctl.table);
        // route_layer: the token check runs only for matched control routes,
        // before any extractor reads the body.
        let ctl = ctl
            .router
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                control::require_token,
            ))
            .layer(DefaultBodyLimit::max(MAX_CONTROL_BODY));
        app = app.merge(ctl);
    }
    (app.with_state(state), table)
}

/// 404 for anything unrouted (including the control paths when the control API is off).
async fn not_found() -> Response {
    error::ApiError::new(StatusCode::NOT_FOUND, "not found").into_response()
}

/// The Content-Security-Policy: scripts, styles and fetches only from this
/// origin, no inline script, no framing, no forms. Even a rendering bug that
/// turned data into markup could not run script under it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds the security headers to every response.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Live figures must never come from a browser or proxy cache.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The warning logged for a listen address reachable from other machines.
fn exposure_warning(addr: SocketAddr) -> Option<&'static str> {
    (!addr.ip().is_loopback()).then_some(
        "dashboard bound to a non-loopback address: it is reachable from the network; \
         use 127.0.0.1 unless that is intended",
    )
}

/// Binds `cfg.bind` and serves until `shutdown` completes.
///
/// Warns when the address is not loopback (see [`serve_listener`]): the
/// dashboard then is reachable from the network, which must be a deliberate choice.
pub async fn serve<F>(
    cfg: ServerConfig,
    store: Arc<dyn Store>,
    control: Option<Arc<dyn ControlPort>>,
    metrics: Option<PrometheusHandle>,
    shutdown: F,
) -> Result<(), ServerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(cfg.bind)
        .await
        .map_err(|source| ServerError::Bind {
            addr: cfg.bind,
            source,
        })?;
    serve_listener(listener, cfg, store, control, metrics, shutdown).await
}

/// Serves on an already-bound listener (tests bind `127.0.0.1:0` and read
/// the port; the binary can print the address before serving). Logs a
/// warning when the listener is not on a loopback address.
pub async fn serve_listener<F>(
    listener: tokio::net::TcpListener,
    cfg: ServerConfig,
    store: Arc<dyn Store>,
    control: Option<Arc<dyn ControlPort>>,
    metrics: Option<PrometheusHandle>,
    shutdown: F,
) -> Result<(), ServerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let accounts = vec![Account {
        id: String::new(),
        store,
        control,
    }];
    serve_listener_accounts(listener, cfg, accounts, metrics, shutdown).await
}

/// [`serve_listener`] for several accounts (see [`router_for_accounts`]).
pub async fn serve_listener_accounts<F>(
    listener: tokio::net::TcpListener,
    cfg: ServerConfig,
    accounts: Vec<Account>,
    metrics: Option<PrometheusHandle>,
    shutdown: F,
) -> Result<(), ServerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    if let Some(w) = exposure_warning(addr) {
        tracing::warn!(bind = %addr, "{w}");
    }
    let control_on = cfg.token().is_some() && accounts.first().is_some_and(|a| a.control.is_some());
    if cfg.token().is_some() && !control_on {
        tracing::warn!("a control token is configured but no control port was given: control API is off");
    }
    tracing::info!(addr = %addr, control_api = control_on, accounts = accounts.len(), "dashboard listening on http://{addr}/");
    if cfg.allowed_hosts.is_empty() && !addr.ip().is_loopback() {
        tracing::warn!(
            "server.allowed_hosts is empty: only requests for {:?} are served; list the names clients use",
            cfg.hosts()
        );
    }
    let limits = cfg.limits;
    let (app, _) = router_for_accounts(accounts, &cfg, metrics);
    conn::serve_bounded(listener, app, limits, shutdown)
        .await
        .map_err(ServerError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_normalization_and_defaults() {
        assert_eq!(normalize_host("LocalHost:8080"), "localhost");
        assert_eq!(normalize_host("[::1]:8080"), "::1");
        assert_eq!(normalize_host("::1"), "::1");
        assert_eq!(normalize_host("example.com."), "example.com");
        let d = default_allowed_hosts("10.1.2.3:80".parse().unwrap_or(DEFAULT_BIND));
        assert!(d.contains(&"10.1.2.3".to_string()) && d.contains(&"localhost".to_string()));
        assert_eq!(default_allowed_hosts(DEFAULT_BIND).len(), 3);
    }

    #[test]
    fn only_loopback_is_quiet() {
        for a in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.2:1"] {
            let addr: SocketAddr = a.parse().unwrap_or(DEFAULT_BIND);
            assert_eq!(exposure_warning(addr), None, "{a}");
        }
        for a in ["0.0.0.0:8080", "[::]:8080", "192.168.1.10:8080", "10.0.0.1:80"] {
            let addr: SocketAddr = a.parse().unwrap_or(DEFAULT_BIND);
            assert!(exposure_warning(addr).is_some(), "{a}");
        }
        assert!(exposure_warning(ServerConfig::default().bind).is_none());
    }
}
